"""A source's answer, read into records: validated, dated, named by content, deduplicated.

Sources are other people's code and answer what they like. Reading an answer is written once
here, so the connector and the collector judge every source alike:

- an answer that is not a list of signals (None, a string, a mapping, more than the
  configured number of signals) is garbage: `InvalidSourceAnswer`, and none of it is used;
- each item is validated on its own: a bad one becomes a `SignalRejection` (its position and
  the reason, never its values) and never costs the good ones;
- a signal without ``created_at`` is dated by the read that finds it (one moment for the
  whole answer), as the engine dates what it receives;
- a record's id is `signal_id`: a hash of the signal's canonical JSON, so the same signal has
  the same id wherever and whenever it is read, and exact duplicates collapse into the first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pydantic import BaseModel, ConfigDict

from integrations.adapters.intent_adapters._signal import Signal, parse_signal
from integrations.base import InvalidRequest, Record

__all__ = [
    "InvalidSourceAnswer",
    "SignalRejection",
    "SourceAnswer",
    "read_answer",
    "signal_id",
]

ID_PREFIX: Final = "sig-"


class InvalidSourceAnswer(InvalidRequest):
    """A source answered something that is not a list of signals; none of it is used."""


class SignalRejection(BaseModel):
    """A signal of a source's answer that is not valid: where it was, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    """Its position in the source's answer (0 for the first)."""

    reason: str
    """What is wrong with it: the fields and the rules they break, never the values."""


@dataclass(frozen=True, slots=True)
class SourceAnswer:
    """One answer of a source, read: the valid signals as records, and what was left out."""

    records: tuple[Record, ...]
    """The valid signals, in the source's order, each once (ids from `signal_id`)."""

    received: int
    """How many items the source answered."""

    rejections: tuple[SignalRejection, ...] = ()
    """The items that are not valid signals."""

    duplicates: int = 0
    """Valid signals dropped because an earlier item was the same signal."""


def signal_id(signal: Signal) -> str:
    """The id of `signal`: ``sig-`` and a hash of its canonical JSON (equal signals, equal ids)."""
    text = json.dumps(
        signal.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return ID_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:32]


def read_answer(answer: object, *, max_signals: int, now: datetime) -> SourceAnswer:
    """Read a source's `answer` (see the module); `InvalidSourceAnswer` when it is garbage."""
    items = _items_of(answer, max_signals)
    records: list[Record] = []
    rejections: list[SignalRejection] = []
    seen: set[str] = set()
    duplicates = 0
    for index, item in enumerate(items):
        try:
            record = _record_of(item, now)
        except InvalidRequest as error:
            rejections.append(SignalRejection(index=index, reason=str(error)))
            continue
        if record.id in seen:
            duplicates += 1
            continue
        seen.add(record.id)
        records.append(record)
    return SourceAnswer(tuple(records), len(items), tuple(rejections), duplicates)


def _items_of(answer: object, max_signals: int) -> Sequence[object]:
    if not isinstance(answer, Sequence) or isinstance(answer, str | bytes | bytearray):
        raise InvalidSourceAnswer(
            f"the source answered {_kind(answer)}, not a list of signals; nothing was used"
        )
    if len(answer) > max_signals:
        raise InvalidSourceAnswer(
            f"the source answered {len(answer)} signals, more than max_signals={max_signals}; "
            "nothing was used"
        )
    return answer


def _kind(answer: object) -> str:
    return "nothing (None)" if answer is None else f"a {type(answer).__name__}"


def _record_of(item: object, now: datetime) -> Record:
    """The record of one item; `InvalidRequest` saying why it is not a valid signal."""
    if isinstance(item, Mapping) and "created_at" not in item:
        item = {**item, "created_at": now}
    signal = parse_signal(item)
    try:
        return Record(id=signal_id(signal), data=signal.to_json(), updated_at=signal.created_at)
    except ValueError as error:  # an extra field pydantic cannot write as JSON
        raise InvalidRequest(
            f"invalid signal: a field cannot be written as JSON ({type(error).__name__})"
        ) from None
