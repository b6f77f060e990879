"""Stored intents, the fetch queries every intent connector understands, and their pages.

An intent is a stored signal with an id. Through the contract it is a `Record`: ``id`` is the
intent's id, ``data`` the signal's JSON plus ``intent_score`` (the score when fetched), and
``explanation`` (the score's factors) when one intent is fetched by id; ``updated_at`` is the
signal's ``created_at``.

A fetch's ``filters`` may hold ``topic`` (case-insensitive, exact), ``source``, ``min_score``
(the current score, inclusive) and ``id`` (that one intent, with its explanation), or
``verify`` (a topic) with an optional ``threshold``: the answer is then one `Verification`.
Pages follow `rank_key` order (best first, then by id), which does not change as scores
decay: the cursor holds the last intent's key and id, and the next page starts after it, so
a pagination neither repeats nor skips an intent that existed when it began (intents added
meanwhile appear in it only if they rank after the cursor).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from integrations.base import (
    FetchQuery,
    FetchResult,
    InvalidRequest,
    JsonObject,
    Record,
)

from ._construct import builder
from ._scoring import DEFAULT_THRESHOLD, explain, rank_key, score
from ._signal import Signal, parse_signal

__all__ = [
    "FILTER_KEYS",
    "Intent",
    "IntentQuery",
    "Verification",
    "cursor_after",
    "decode_intent_cursor",
    "encode_intent_cursor",
    "page_of",
    "parse_intent_query",
    "verdict",
    "verification_from",
    "verification_of",
    "verification_query",
    "verification_record",
    "verify_target",
]

FILTER_KEYS: Final = frozenset({"topic", "source", "min_score", "id", "verify", "threshold"})
VERIFY_RECORD_PREFIX: Final = "verify:"


class Verification(BaseModel):
    """Whether an action on a topic is allowed by the topic's intent, and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: str
    allowed: bool
    reason: str
    intent_score: float | None = Field(default=None)
    """The topic's best score, when the topic has intents."""

    def to_record(self) -> Record:
        """The verification as the one record a ``verify`` fetch returns."""
        return Record(id=VERIFY_RECORD_PREFIX + self.topic, data=self.model_dump(mode="json"))


@dataclass(frozen=True, slots=True)
class Intent:
    """A stored signal with its id, and where it ranks."""

    id: str
    signal: Signal

    @property
    def key(self) -> float:
        """Its place in the ranking (see `rank_key`): higher first."""
        return rank_key(self.signal)

    def score(self, now: datetime | None = None) -> float:
        """Its score at `now`."""
        return score(self.signal, now=now)

    def to_record(self, *, now: datetime | None = None, explained: bool = False) -> Record:
        """The intent as a fetch returns it: the signal, its score, and the explanation if asked."""
        data: JsonObject = self.signal.to_json()
        data["intent_score"] = self.score(now)
        if explained:
            data["explanation"] = [
                {"signal": name, "value": value} for name, value in explain(self.signal, now=now)
            ]
        return Record(id=self.id, data=data, updated_at=self.signal.created_at)

    @classmethod
    def from_json(cls, intent_id: str, data: JsonObject) -> Intent:
        """An intent from its stored JSON; `InvalidRequest` when it is not a signal."""
        fields = {key: value for key, value in data.items() if key not in _DERIVED}
        return cls(intent_id, parse_signal(fields))


_DERIVED: Final = frozenset({"id", "intent_score", "explanation"})
"""Keys a stored or listed intent carries that are not part of its signal."""


@dataclass(frozen=True, slots=True)
class IntentQuery:
    """A fetch, understood: its filters, its limit, and where its page starts."""

    topic: str | None = None
    source: str | None = None
    min_score: float | None = None
    intent_id: str | None = None
    verify: str | None = None
    threshold: float = DEFAULT_THRESHOLD
    limit: int = 100
    after: tuple[float, str] | None = None
    filters: JsonObject = field(default_factory=dict, compare=False, repr=False)
    """The filters as the fetch gave them: what its cursors are bound to (`fingerprint`)."""

    @property
    def fingerprint(self) -> str:
        """A digest of `filters`, which cursors carry so that they only resume this query.

        Computed when asked, since only a cursor made or read needs it (never a verification,
        an intent by id or a last page).
        """
        return _fingerprint(self.filters)

    def matches(self, intent: Intent, now: datetime | None = None) -> bool:
        """Whether `intent` passes the filters (not the cursor)."""
        signal = intent.signal
        if self.intent_id is not None and intent.id != self.intent_id:
            return False
        if self.topic is not None and signal.topic.casefold() != self.topic.casefold():
            return False
        if self.source is not None and signal.source != self.source:
            return False
        return self.min_score is None or intent.score(now) >= self.min_score

    def starts_after(self, intent: Intent) -> bool:
        """Whether `intent` comes after the cursor (always, without one)."""
        if self.after is None:
            return True
        key, last_id = self.after
        return _order(intent.key, intent.id) > _order(key, last_id)


def _order(key: float, intent_id: str) -> tuple[float, str]:
    """Sort position: ascending order of this tuple is the ranking (best first, then by id)."""
    return (-key, intent_id)


def parse_intent_query(query: FetchQuery, *, max_limit: int) -> IntentQuery:
    """Read `query`'s filters, limit and cursor; `InvalidRequest` for anything else."""
    filters = query.filters
    unknown = set(filters) - FILTER_KEYS
    if unknown:
        raise InvalidRequest(f"unknown intent filter(s): {', '.join(sorted(unknown))}")
    if query.text is not None:
        raise InvalidRequest("intents are filtered by topic, source and score, not by text")
    verify = _optional_str(filters, "verify")
    threshold = _optional_number(filters, "threshold")
    if threshold is not None and verify is None:
        raise InvalidRequest("threshold applies to a verify query only")
    topic, source = _optional_str(filters, "topic"), _optional_str(filters, "source")
    min_score, intent_id = _optional_number(filters, "min_score"), _optional_str(filters, "id")
    if verify is not None and (topic or source or intent_id or min_score is not None):
        raise InvalidRequest("a verify query takes a topic and a threshold only")
    after = None
    if query.cursor is not None:
        after = decode_intent_cursor(query.cursor, _fingerprint(filters))
    return IntentQuery(
        topic=topic,
        source=source,
        min_score=min_score,
        intent_id=intent_id,
        verify=verify,
        threshold=DEFAULT_THRESHOLD if threshold is None else threshold,
        limit=min(query.limit, max_limit),
        after=after,
        filters=filters,
    )


_VERIFY_KEYS: Final = frozenset({"verify", "threshold"})


def verify_target(query: FetchQuery) -> tuple[str, float] | None:
    """The topic and threshold of a plain verify query, or None for any other query.

    Plain: filters ``verify`` (a non-blank string) and optionally ``threshold`` (a finite
    number), no text and no cursor; what `parse_intent_query` reads from it, without building
    an `IntentQuery`, for the alignment check every gated action makes. Any other query,
    valid or not, is left to `parse_intent_query`, which reads or refuses it.
    """
    filters = query.filters
    if (
        "verify" not in filters
        or not filters.keys() <= _VERIFY_KEYS
        or query.text is not None
        or query.cursor is not None
    ):
        return None
    topic = filters["verify"]
    if type(topic) is not str or not topic.strip():
        return None
    threshold = filters.get("threshold")
    if threshold is None:
        return topic, DEFAULT_THRESHOLD
    if (type(threshold) is float or type(threshold) is int) and math.isfinite(threshold):
        return topic, float(threshold)
    return None


def page_of(
    intents: Iterable[Intent], query: IntentQuery, *, now: datetime | None = None
) -> FetchResult:
    """One page of `intents` for `query`, ranked, with the cursor of the next page."""
    chosen = sorted(
        (i for i in intents if query.matches(i, now) and query.starts_after(i)),
        key=lambda intent: _order(intent.key, intent.id),
    )
    page = chosen[: query.limit]
    explained = query.intent_id is not None
    records = tuple(intent.to_record(now=now, explained=explained) for intent in page)
    more = len(chosen) > len(page)
    cursor = encode_intent_cursor(page[-1], query.fingerprint) if more and page else None
    return FetchResult(records=records, next_cursor=cursor)


def verification_from(
    intents: Sequence[Intent], query: IntentQuery, now: datetime | None
) -> Verification:
    """The verification of `query.verify` from the topic's intents (its best score decides)."""
    topic = query.verify or ""
    scores = [i.score(now) for i in intents if i.signal.topic.casefold() == topic.casefold()]
    return verdict(topic, max(scores) if scores else None, query.threshold)


def verdict(topic: str, best: float | None, threshold: float) -> Verification:
    """The verification of `topic` whose best score is `best` (None: the topic has no intent).

    What `verification_from` decides, for stores that find a topic's best score themselves.
    """
    return Verification(**_verdict_fields(topic, best, threshold))


def verification_record(topic: str, best: float | None, threshold: float) -> Record:
    """``verdict(topic, best, threshold).to_record()``, built from values known to be valid.

    A store's answer to a verify fetch, on the path of every alignment check: anything out of
    the ordinary (a topic too long for a record id, a score that is not a finite float) takes
    the validating way, so the result, or the error, is always the validating way's.
    """
    if (
        type(topic) is str
        and 0 < len(topic) <= _LONGEST_VERIFIED_TOPIC
        and type(threshold) is float
        and math.isfinite(threshold)
        and (best is None or (type(best) is float and math.isfinite(best)))
    ):
        fields = _verdict_fields(topic, best, threshold)
        return _record({"id": VERIFY_RECORD_PREFIX + topic, "data": fields, **_UNDATED})
    return verdict(topic, best, threshold).to_record()


def _verdict_fields(topic: str, best: float | None, threshold: float) -> dict[str, Any]:
    """A `Verification`'s fields, in its order (what ``model_dump`` gives of it)."""
    if best is None:
        return {
            "topic": topic,
            "allowed": False,
            "reason": "no intent for this topic",
            "intent_score": None,
        }
    if best >= threshold:
        reason = f"intent score {best} reaches the threshold {threshold}"
        return {"topic": topic, "allowed": True, "reason": reason, "intent_score": best}
    reason = f"intent score {best} is below the threshold {threshold}"
    return {"topic": topic, "allowed": False, "reason": reason, "intent_score": best}


def verification_of(data: JsonObject) -> Verification:
    """The `Verification` a verify record's data holds; pydantic's error when it holds none.

    Data of exactly a verification's fields and types (what the stores answer) is taken as
    it is; anything else is validated, so either way the result is what
    ``Verification.model_validate`` makes of `data`.
    """
    if type(data) is dict and data.keys() == _VERIFICATION_FIELDS:
        topic, allowed, reason = data["topic"], data["allowed"], data["reason"]
        best = data["intent_score"]
        if (
            type(topic) is str
            and type(allowed) is bool
            and type(reason) is str
            and (best is None or type(best) is float)
        ):
            return _verification(
                {"topic": topic, "allowed": allowed, "reason": reason, "intent_score": best}
            )
    return Verification.model_validate(data)


def verification_query(topic: str, threshold: float | None = None) -> FetchQuery:
    """The fetch that asks a connector whether `topic` is aligned (see `Verification`)."""
    filters: JsonObject = {"verify": topic}
    if threshold is not None:
        filters["threshold"] = threshold
    if type(topic) is str and (
        threshold is None or type(threshold) is float or type(threshold) is int
    ):  # values FetchQuery's validation keeps exactly as they are
        return _fetch_query({"text": None, "filters": filters, "cursor": None, "limit": 1})
    return FetchQuery(filters=filters, limit=1)


def encode_intent_cursor(last: Intent, fingerprint: str) -> str:
    """A cursor after `last`, bound to the filters it was made for."""
    return cursor_after(last.key, last.id, fingerprint)


def cursor_after(key: float, intent_id: str, fingerprint: str) -> str:
    """`encode_intent_cursor` of the intent `intent_id` whose `Intent.key` is `key`, for
    stores that keep the key."""
    position: dict[str, Any] = {
        "f": fingerprint,
        "i": intent_id,
        "k": None if math.isinf(key) else key,
    }
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_intent_cursor(cursor: str, fingerprint: str) -> tuple[float, str]:
    """The position a cursor holds; `InvalidRequest` for a foreign or damaged one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest("the cursor is not one this connector made") from None
    if not isinstance(position, dict) or position.get("f") != fingerprint:
        raise InvalidRequest("the cursor belongs to another query")
    key, last_id = position.get("k"), position.get("i")
    if not isinstance(last_id, str) or not (key is None or isinstance(key, int | float)):
        raise InvalidRequest("the cursor is not one this connector made")
    return (-math.inf if key is None else float(key), last_id)


def _fingerprint(filters: JsonObject) -> str:
    text = json.dumps(filters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _optional_str(filters: JsonObject, key: str) -> str | None:
    value = filters.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"filter {key} must be a non-empty string")
    return value


def _optional_number(filters: JsonObject, key: str) -> float | None:
    value = filters.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"filter {key} must be a finite number")
    return float(value)


# -- models built from valid values (see `._construct`) --------------------------------------

_UNDATED: Final = {"deleted": False, "updated_at": None}
_LONGEST_VERIFIED_TOPIC: Final = 1024 - len(VERIFY_RECORD_PREFIX)
"""A record id holds at most 1024 characters."""

_VERIFICATION_FIELDS: Final = frozenset(Verification.model_fields)

_record: Final = builder(
    Record,
    ("id", "data"),
    {"id": "verify:probe", "data": {"topic": "probe"}, "deleted": False, "updated_at": None},
)
_verification: Final = builder(
    Verification,
    _VERIFICATION_FIELDS,
    {"topic": "probe", "allowed": True, "reason": "probe", "intent_score": 1.5},
)
_fetch_query: Final = builder(
    FetchQuery,
    ("filters", "limit"),
    {"text": None, "filters": {"verify": "probe"}, "cursor": None, "limit": 1},
)
