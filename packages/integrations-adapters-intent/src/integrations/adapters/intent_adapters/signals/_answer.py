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

Each signal is validated once here. The answer also keeps, next to each record, the `Signal`
its data describes whenever reading that data again would give this very signal (the source
answered plain JSON dated in UTC: `read_signal`'s *settled*), so that the collector, which
reports signals rather than records, does not validate it a second time.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from pydantic import BaseModel, ConfigDict

from integrations.adapters.intent_adapters._construct import Builder, builder
from integrations.adapters.intent_adapters._signal import Signal, read_signal
from integrations.base import InvalidRequest, JsonObject, Record

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

    signals: tuple[Signal | None, ...] = field(default=(), repr=False, compare=False)
    """For each record, the `Signal` it holds when parsing its data again would give exactly
    that signal (else None: parse the record's data to have it)."""

    def settled(self) -> dict[int, tuple[Record, Signal]]:
        """The records whose signal is known, by `id()` of the record (check it ``is`` it)."""
        return {
            id(record): (record, signal)
            for record, signal in zip(self.records, self.signals, strict=False)
            if signal is not None
        }


_record: Final[Builder[Record]] = builder(
    Record,
    ("id", "data", "updated_at"),
    {
        "id": "sig-probe",
        "data": {"topic": "probe"},
        "deleted": False,
        "updated_at": datetime(2024, 1, 1, tzinfo=UTC),
    },
)
"""A record as ``Record(id=..., data=..., updated_at=...)`` builds it, from valid values."""

_CANONICAL: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
"""The canonical JSON spelling ids hash: sorted keys, compact, finite numbers, UTF-8 text."""

_quoted: Final = json.encoder.encode_basestring  # how the encoder above writes a string
_float_text: Final = float.__repr__  # how it writes a finite float
_int_text: Final = int.__repr__  # and an int


def signal_id(signal: Signal) -> str:
    """The id of `signal`: ``sig-`` and a hash of its canonical JSON (equal signals, equal ids)."""
    return json_signal_id(signal.to_json())


def json_signal_id(body: JsonObject) -> str:
    """`signal_id` of the signal whose `Signal.to_json` is `body`."""
    text = _plain_canonical(body)
    if text is None:
        text = _CANONICAL.encode(body)
    return ID_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:32]


def _plain_canonical(body: JsonObject) -> str | None:
    """`_CANONICAL.encode(body)` for the JSON of a signal without extra fields (the seven known
    fields, each of its exact JSON type), written directly; None for any other body.

    The keys in sorted order, no spaces, strings as the encoder quotes them, numbers as their
    ``repr`` (which the encoder writes for a finite float or an int); a non-finite float is
    left to the encoder, which refuses it.
    """
    if len(body) != 7:
        return None
    try:
        authenticity, confidence = body["authenticity"], body["confidence"]
        created_at, momentum = body["created_at"], body["momentum"]
        source, streak_days, topic = body["source"], body["streak_days"], body["topic"]
    except KeyError:
        return None
    if not (
        type(authenticity) is dict
        and len(authenticity) == 1
        and type(confidence) is float
        and type(created_at) is str
        and type(momentum) is str
        and type(source) is str
        and type(streak_days) is int
        and type(topic) is str
    ):
        return None
    human = authenticity.get("human_source_pct")
    if type(human) is not float or not (math.isfinite(human) and math.isfinite(confidence)):
        return None
    return (
        f'{{"authenticity":{{"human_source_pct":{_float_text(human)}}},'
        f'"confidence":{_float_text(confidence)},"created_at":{_quoted(created_at)},'
        f'"momentum":{_quoted(momentum)},"source":{_quoted(source)},'
        f'"streak_days":{_int_text(streak_days)},"topic":{_quoted(topic)}}}'
    )


def read_answer(answer: object, *, max_signals: int, now: datetime) -> SourceAnswer:
    """Read a source's `answer` (see the module); `InvalidSourceAnswer` when it is garbage."""
    items = _items_of(answer, max_signals)
    records: list[Record] = []
    signals: list[Signal | None] = []
    rejections: list[SignalRejection] = []
    seen: set[str] = set()
    duplicates = 0
    for index, item in enumerate(items):
        try:
            record, signal = _record_of(item, now)
        except InvalidRequest as error:
            rejections.append(SignalRejection(index=index, reason=str(error)))
            continue
        if record.id in seen:
            duplicates += 1
            continue
        seen.add(record.id)
        records.append(record)
        signals.append(signal)
    return SourceAnswer(
        tuple(records), len(items), tuple(rejections), duplicates, signals=tuple(signals)
    )


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


def _record_of(item: object, now: datetime) -> tuple[Record, Signal | None]:
    """The record of one item, and its signal when settled; `InvalidRequest` saying why the
    item is not a valid signal."""
    if isinstance(item, Mapping) and "created_at" not in item:
        item = {**item, "created_at": now}
    signal, settled = read_signal(item)
    try:
        body = signal.to_json()
        # Built, not validated again: the id is a hash, the data the JSON pydantic (or
        # Signal.to_json's direct writing of the same) made of a valid signal, the date aware.
        record = _record(
            {
                "id": json_signal_id(body),
                "data": body,
                "deleted": False,
                "updated_at": signal.created_at,
            }
        )
    except ValueError as error:  # an extra field pydantic cannot write as JSON
        raise InvalidRequest(
            f"invalid signal: a field cannot be written as JSON ({type(error).__name__})"
        ) from None
    except OverflowError:  # a time at the edge of the calendar, with an offset
        raise InvalidRequest(
            "invalid signal: created_at: the time cannot be expressed in UTC"
        ) from None
    return record, signal if settled else None
