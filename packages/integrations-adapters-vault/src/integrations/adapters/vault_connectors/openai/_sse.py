"""Server-sent events, read as the HTML standard's event-stream parsing rules say.

A stream is lines; an event ends at a blank line; its ``data:`` lines are joined with
newlines; a line starting with ``:`` is a comment (keep-alives); other fields (``event``,
``id``, ``retry``) do not concern chat completions and are skipped. One space after the colon
is dropped. A stream that ends without a final blank line still delivers its last event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["event_data"]


def event_data(lines: Iterable[str]) -> Iterator[str]:
    """The data of each event in `lines` (lines without their line endings), in order."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)
