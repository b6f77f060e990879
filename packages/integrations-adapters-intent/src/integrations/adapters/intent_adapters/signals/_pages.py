"""Pages of a source's signals: the filters a fetch may use, and cursors that hold.

A fetch without a cursor asks the source; the connector keeps that answer (a *snapshot*,
named by a token) and pages of it follow in the source's order. A cursor holds the filters'
fingerprint, the snapshot's token and the id of the last signal returned:

- presented to the connector that still holds the snapshot, the next page comes from the same
  answer, so paging neither repeats nor skips a signal even when the source answers
  differently from one call to the next (signals dated "now", a feed that moves);
- presented anywhere else (another session, after a newer fetch), the source is asked again
  and the page starts after the last signal returned; when that signal is no longer among
  the source's signals, `InvalidRequest` says to fetch from the start rather than guess.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from integrations.base import FetchQuery, FetchResult, InvalidRequest, JsonObject, Record

__all__ = ["FILTER_KEYS", "PageRequest", "Snapshot", "page_of", "parse_page_request"]

FILTER_KEYS: Final = frozenset({"topic", "source"})


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One answer of the source, kept for the pages that follow it."""

    token: str
    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A fetch, understood: filters, limit, and where the page starts."""

    topic: str | None
    source: str | None
    limit: int
    fingerprint: str
    token: str | None = None
    after: str | None = None

    def resumes(self, snapshot: Snapshot | None) -> bool:
        """Whether this page continues `snapshot` (its cursor was made from it)."""
        return snapshot is not None and self.after is not None and self.token == snapshot.token

    def matches(self, record: Record) -> bool:
        """Whether `record` passes the filters (topic case-insensitive, source exact)."""
        data = record.data
        if self.source is not None and data.get("source") != self.source:
            return False
        topic = data.get("topic")
        return self.topic is None or (
            isinstance(topic, str) and topic.casefold() == self.topic.casefold()
        )


def parse_page_request(query: FetchQuery, *, max_page_size: int) -> PageRequest:
    """Read `query`'s filters, limit and cursor; `InvalidRequest` for anything else."""
    if query.text is not None:
        raise InvalidRequest("signal sources are filtered by topic and source, not by text")
    unknown = set(query.filters) - FILTER_KEYS
    if unknown:
        raise InvalidRequest(f"unknown signal filter(s): {', '.join(sorted(unknown))}")
    fingerprint = _fingerprint(query.filters)
    token, after = (None, None) if query.cursor is None else _decode(query.cursor, fingerprint)
    return PageRequest(
        topic=_optional_str(query.filters, "topic"),
        source=_optional_str(query.filters, "source"),
        limit=min(query.limit, max_page_size),
        fingerprint=fingerprint,
        token=token,
        after=after,
    )


def page_of(snapshot: Snapshot, request: PageRequest) -> FetchResult:
    """The page of `snapshot` that `request` asks for, with the cursor of the next one."""
    matching: Sequence[Record] = snapshot.records
    if request.topic is not None or request.source is not None:
        matching = [record for record in matching if request.matches(record)]
    start = _start(matching, request)
    page = matching[start : start + request.limit]
    cursor = None
    if start + len(page) < len(matching):
        cursor = _encode(request.fingerprint, snapshot.token, page[-1].id)
    return FetchResult(records=tuple(page), next_cursor=cursor)


def _start(matching: Sequence[Record], request: PageRequest) -> int:
    if request.after is None:
        return 0
    for index, record in enumerate(matching):
        if record.id == request.after:
            return index + 1
    raise InvalidRequest(
        "the signal this cursor resumes after is no longer among the source's signals: "
        "fetch again from the start"
    )


def _encode(fingerprint: str, token: str, after: str) -> str:
    raw = json.dumps({"f": fingerprint, "s": token, "a": after}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, fingerprint: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest("the cursor is not one this connector made") from None
    if not isinstance(position, dict) or position.get("f") != fingerprint:
        raise InvalidRequest("the cursor belongs to another query")
    token, after = position.get("s"), position.get("a")
    if not isinstance(token, str) or not isinstance(after, str):
        raise InvalidRequest("the cursor is not one this connector made")
    return token, after


def _fingerprint(filters: JsonObject) -> str:
    if not filters:
        return _NO_FILTERS
    text = json.dumps(filters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_NO_FILTERS: Final = hashlib.sha256(b"{}").hexdigest()[:16]
"""`_fingerprint` of a fetch without filters (most fetches), worked out once."""


def _optional_str(filters: JsonObject, key: str) -> str | None:
    value = filters.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"filter {key} must be a non-empty string")
    return value
