"""What a pushed record becomes in the intent store: a row to write, or a rejection and its reason.

A row holds the signal's canonical JSON (sorted keys, compact; what fetch and sync return and
what "the same signal" compares) and the columns derived from it (casefolded topic, source,
strength, rank key, date), computed here once so that queries never parse JSON.

Validation is `parse_signal`'s: a record it rejects is rejected with its reason. Because
pydantic's validation costs several times what SQLite takes to write a row, a signal in the
plain form every collector sends (the known fields with exactly their JSON types and in range,
``created_at`` in RFC 3339 with an offset, extra fields of plain JSON) is read by hand instead;
anything else, and every record that might be rejected, goes through `parse_signal`. The plain
reading only accepts what `parse_signal` accepts and yields the same row (the tests hold the two
to that), so which path a signal takes never shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple, TypeGuard

from integrations.adapters.intent_adapters._intent import _DERIVED as DERIVED
from integrations.adapters.intent_adapters._scoring import rank_key_of, strength_of
from integrations.adapters.intent_adapters._signal import parse_signal
from integrations.base import InvalidRequest, JsonObject, PushPayload, Rejection, format_utc

__all__ = [
    "EPOCH",
    "MICROSECOND",
    "IntentRow",
    "WriteBatch",
    "canonical_json",
    "check_push",
    "micros",
    "moment_of",
    "row_of",
]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND: Final = timedelta(microseconds=1)
"""The unit of the store's times: `micros` counts them since `EPOCH`."""

_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)

_KNOWN: Final = frozenset(
    {"source", "topic", "momentum", "confidence", "authenticity", "streak_days", "created_at"}
)
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)
_DUPLICATE: Final = "duplicate id in this payload: a push holds one change per intent"
_SURROGATE: Final = "holds characters that are not valid Unicode (a lone surrogate)"


def _dict_encoder() -> Callable[[dict[str, Any]], str]:
    """`_ENCODER.encode` for a dict, with the C encoder made once instead of once per call.

    The same encoder ``encode`` makes each time (the same spelling, the same ValueError for a
    non-finite number), without its check for circular references: a pushed record's data
    is JSON, and the validation a record takes fails on a cycle anyway.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    encode = make(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )
    join = "".join

    def encoded(value: dict[str, Any]) -> str:
        return join(encode(value, 0))

    return encoded


_encode_dict: Final = _dict_encoder()


def canonical_json(value: object) -> str:
    """The one JSON spelling the store keeps and compares (sorted keys, compact, finite)."""
    return _ENCODER.encode(value)


def micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch: exact, and ordered like the times."""
    return (moment - EPOCH) // MICROSECOND


def moment_of(stamp: int) -> datetime:
    """The UTC time `micros` made `stamp` of (exact: a timedelta times an int is)."""
    return EPOCH + MICROSECOND * stamp


class IntentRow(NamedTuple):
    """One intent to upsert, with every column the store derives from its signal.

    A named tuple: one is built per pushed record, and a tuple is what SQLite binds.
    """

    id: str
    signal: str
    """The canonical JSON of the signal (``created_at`` in RFC 3339, UTC)."""
    topic_key: str
    source: str
    strength: float
    rank_key: float
    created_at: int
    """The signal's date, in microseconds since the epoch."""
    undated: JsonObject | None = None
    """The pushed data when it gave no ``created_at``: the store keeps the date it already has
    for this id (the signal is dated when first stored), so pushing it again changes nothing."""

    def as_params(self, tenant: str, now: int, seq: int) -> tuple[Any, ...]:
        """The upsert's parameters (see the backend's ``UPSERT``)."""
        return (tenant, *self[:7], now, seq)


@dataclass(frozen=True, slots=True)
class WriteBatch:
    """The accepted part of one push: upserts and deletions, written in one transaction."""

    upserts: tuple[IntentRow, ...] = ()
    deletes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes)

    def __len__(self) -> int:
        return len(self.upserts) + len(self.deletes)


def check_push(
    payload: PushPayload, now: datetime
) -> tuple[WriteBatch, tuple[str, ...], tuple[Rejection, ...]]:
    """Split `payload` into the batch to write, the accepted ids (in payload order) and rejections.

    A tombstone (``deleted=True``) deletes its intent; any other record must hold a signal.
    What a fetch adds to a signal (``intent_score``, ``explanation``, an ``id``) is not part of
    it and is dropped, as `Intent.from_json` drops it, so a fetched intent pushed back is the
    same signal. A signal without ``created_at`` is dated `now` unless the store holds its id
    already. A record
    whose id came earlier in the payload is rejected: a batch holds one change per intent, so
    the outcome never depends on the order they are applied in.
    """
    upserts: list[IntentRow] = []
    deletes: list[str] = []
    accepted: list[str] = []
    rejected: list[Rejection] = []
    seen: set[str] = set()
    stamp = format_utc(now)
    for record in payload.records:
        record_id = record.id
        if record_id in seen:
            rejected.append(Rejection(id=record_id, reason=_DUPLICATE))
            continue
        seen.add(record_id)
        if not _is_utf8(record_id):
            rejected.append(Rejection(id=record_id, reason=f"the id {_SURROGATE}"))
            continue
        if record.deleted:
            deletes.append(record_id)
            accepted.append(record_id)
            continue
        data = record.data
        if "intent_score" in data or "explanation" in data or "id" in data:
            data = {key: value for key, value in data.items() if key not in DERIVED}
        if "created_at" in data:
            outcome = row_of(record_id, data)
        else:
            outcome = row_of(record_id, {**data, "created_at": stamp}, undated=data)
        if isinstance(outcome, str):
            rejected.append(Rejection(id=record_id, reason=outcome))
            continue
        upserts.append(outcome)
        accepted.append(record_id)
    return WriteBatch(tuple(upserts), tuple(deletes)), tuple(accepted), tuple(rejected)


def row_of(
    record_id: str, data: Mapping[str, Any], undated: JsonObject | None = None
) -> IntentRow | str:
    """The row of the signal `data` holds, or why it is no signal the store can keep."""
    try:
        row = _plain_row(record_id, data, undated)
    except ValueError:  # a number JSON cannot spell, in an extra field: parse_signal says so
        row = None
    if row is not None:
        return row
    try:
        signal = parse_signal(data)
        body = signal.to_json()
    except InvalidRequest as error:
        return str(error)
    except (OverflowError, ValueError):
        return "invalid signal: created_at: the time cannot be expressed in UTC"
    base = strength_of(
        signal.momentum,
        signal.confidence,
        signal.authenticity.human_source_pct,
        signal.streak_days,
    )
    try:
        return _row(record_id, body, signal.topic, signal.source, base, signal.created_at, undated)
    except ValueError:  # parse_signal refuses non-finite numbers: only a safeguard
        return "invalid signal: numbers must be finite (no NaN or infinity)"


def _row(
    record_id: str,
    body: dict[str, Any],
    topic: str,
    source: str,
    base: float,
    created_at: datetime,
    undated: JsonObject | None,
) -> IntentRow | str:
    text = _encode_dict(body)  # ValueError for a non-finite number
    if not (text.isascii() or _is_utf8(text)):
        return f"invalid signal: a field {_SURROGATE}"
    return IntentRow(
        record_id,
        text,
        topic.casefold(),
        source,
        base,
        rank_key_of(base, created_at),
        (created_at - EPOCH) // MICROSECOND,
        undated,
    )


def _plain_row(
    record_id: str, data: Mapping[str, Any], undated: JsonObject | None
) -> IntentRow | str | None:
    """The row of a signal in the plain form, or None to leave it to `parse_signal`.

    Every test below is one `parse_signal` makes as well (types exactly as JSON gives them,
    the same bounds), so what passes here is a valid signal; anything unusual is not read
    here at all rather than read differently.
    """
    if type(data) is not dict:
        return None
    try:
        source, topic, momentum = data["source"], data["topic"], data["momentum"]
        confidence, authenticity = data["confidence"], data["authenticity"]
        streak_days, created_at = data["streak_days"], data["created_at"]
    except KeyError:
        return None
    if not (
        _text(source, 200)
        and _text(topic, 500)
        and _text(momentum, 50)
        and _number(confidence, 1)
        and type(authenticity) is dict
        and len(authenticity) == 1
        and type(streak_days) is int
        and 0 <= streak_days <= 100_000
        and type(created_at) is str
        and _RFC3339.fullmatch(created_at)
    ):
        return None
    human = authenticity.get("human_source_pct")
    if not _number(human, 100):
        return None
    try:
        moment = datetime.fromisoformat(created_at)
        stamp = _utc_spelling(created_at) or format_utc(moment)
    except (ValueError, OverflowError):
        return None
    body: dict[str, Any]
    if type(confidence) is float and type(human) is float and stamp == created_at:
        body = data  # already spelled as the store spells it
    else:
        confidence, human = float(confidence), float(human)
        body = spelled = {key: value for key, value in data.items() if key not in _KNOWN}
        spelled.update(
            source=source,
            topic=topic,
            momentum=momentum,
            confidence=confidence,
            authenticity={"human_source_pct": human},
            streak_days=streak_days,
            created_at=stamp,
        )
    base = strength_of(momentum, confidence, human, streak_days)
    return _row(record_id, body, topic, source, base, moment, undated)


def _utc_spelling(text: str) -> str | None:
    """`format_utc`'s spelling of the RFC 3339 time `text` when it is already in UTC, or None.

    `format_utc` writes ``YYYY-MM-DDTHH:MM:SS``, then ``.ffffff`` unless the microseconds are
    0, then ``Z``: most collectors send exactly that (or ``+00:00`` for ``Z``), and reading it
    is cheaper than formatting the parsed time again.
    """
    if text.endswith("Z"):
        head = text[:-1]
    elif text.endswith("+00:00"):
        head = text[:-6]
    else:
        return None
    if len(head) == 19 or (len(head) == 26 and head[20:] != "000000"):
        return head + "Z"
    return None


def _text(value: object, longest: int) -> bool:
    return type(value) is str and 0 < len(value) <= longest and not value.isspace()


def _number(value: object, highest: float) -> TypeGuard[float]:
    """A JSON number in ``[0, highest]`` (never a bool; NaN fails the comparison)."""
    if type(value) is float or type(value) is int:
        return 0 <= value <= highest
    return False


def _is_utf8(text: str) -> bool:
    """Whether `text` can be stored as UTF-8 (a lone surrogate cannot)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
