"""What an intent signal is: the typed, validated evidence every intent connector exchanges.

A signal says that people care about a topic now: where it was seen (`source`), how fast
interest grows (`momentum`), how sure the source is (`confidence`), how much of it comes from
humans (`authenticity.human_source_pct`) and for how many days in a row (`streak_days`).
Fields the model does not know are kept, as the engine keeps them. Validation is written once
here, so every connector, the collector and the legacy shim accept and reject the same signals.

A collection validates thousands of signals, so the work around pydantic's validation is kept
small: one walk over the data looks for non-finite numbers and, in the same pass, notes whether
the data is plain JSON; `read_signal` reports from that whether the signal's JSON read again
would give the same signal (then a reader of that JSON may take the signal as it is instead of
validating it a second time); `Signal.to_json` writes a signal without extra fields directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from integrations.base import InvalidRequest, JsonObject, format_utc

__all__ = [
    "KNOWN_MOMENTUMS",
    "Authenticity",
    "Signal",
    "parse_signal",
    "read_signal",
    "signal_problem",
    "utc_text",
]

KNOWN_MOMENTUMS: Final = ("surging", "rising", "steady")
"""The momentums the score weighs; any other non-empty momentum is accepted and weighs 1.0."""


class Authenticity(BaseModel):
    """How much of a signal comes from people rather than automation."""

    model_config = ConfigDict(frozen=True, extra="allow")

    human_source_pct: float = Field(ge=0, le=100, allow_inf_nan=False)
    """The share of the signal's evidence that comes from humans, in percent."""


class Signal(BaseModel):
    """One intent signal. Unknown fields are kept (`extra`), as the engine keeps them."""

    model_config = ConfigDict(frozen=True, extra="allow")

    source: str = Field(min_length=1, max_length=200)
    topic: str = Field(min_length=1, max_length=500)
    momentum: str = Field(min_length=1, max_length=50)
    confidence: float = Field(ge=0, le=1, allow_inf_nan=False)
    authenticity: Authenticity
    streak_days: int = Field(ge=0, le=100_000)
    created_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("topic", "source", "momentum")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @property
    def extra(self) -> dict[str, Any]:
        """The fields the model does not know, as they were given."""
        return dict(self.model_extra or {})

    def to_json(self) -> JsonObject:
        """The signal as the JSON object the engine accepts (``created_at`` in RFC 3339, UTC).

        A signal of this very class without extra fields (the usual one) is written directly,
        in the order and with the values ``model_dump(mode="json")`` gives (validation leaves
        its fields plain `str`, `float` and `int`); anything else goes through pydantic.
        """
        authenticity = self.authenticity
        if (
            type(self) is Signal
            and not self.__pydantic_extra__
            and type(authenticity) is Authenticity
            and not authenticity.__pydantic_extra__
        ):
            return {
                "source": self.source,
                "topic": self.topic,
                "momentum": self.momentum,
                "confidence": self.confidence,
                "authenticity": {"human_source_pct": authenticity.human_source_pct},
                "streak_days": self.streak_days,
                "created_at": utc_text(self.created_at),
            }
        data: JsonObject = self.model_dump(mode="json")
        data["created_at"] = format_utc(self.created_at)
        return data


def utc_text(moment: datetime) -> str:
    """`format_utc(moment)`, spelled without converting a time that is already at UTC (what
    nearly every signal's time is)."""
    if moment.utcoffset() == _NO_OFFSET:  # isoformat ends with "+00:00": format_utc's "Z"
        return moment.isoformat()[:-6] + "Z"
    return format_utc(moment)


def signal_problem(data: object) -> str | None:
    """Why `data` is not a valid signal (field and reason, never the value), or None."""
    try:
        parse_signal(data)
    except InvalidRequest as error:
        return str(error)
    return None


def parse_signal(data: object) -> Signal:
    """The `Signal` `data` describes; raise `InvalidRequest` naming each bad field.

    Accepts a `Signal` (returned as is) or a mapping, as the legacy adapters returned them.
    NaN and infinities are refused wherever a number is expected.
    """
    return read_signal(data)[0]


def read_signal(data: object) -> tuple[Signal, bool]:
    """`parse_signal(data)`, and whether the signal is *settled*: its `Signal.to_json` read again
    by `parse_signal` gives a signal equal to it in every respect (values, types, time zone).

    That holds when `data` is plain JSON (dicts with string keys, lists, strings, numbers,
    booleans, None: what a JSON parser returns) with ``created_at`` a string at UTC: each field
    is then written back as it was read, up to spelling (a time as `format_utc` spells it, an
    integer confidence as a float), and read again alike. Then whoever reads the signal's JSON
    may take the signal as it is; otherwise (a datetime or a time zone offset that the JSON turns
    into UTC, a tuple, a `Signal` given) it must parse the JSON again. False is always safe.
    """
    if isinstance(data, Signal):
        return data, False
    if type(data) is dict:
        fields: dict[Any, Any] = data  # validation reads it and never changes it
        found = _scan_items(data.items())
    elif isinstance(data, Mapping):
        fields = dict(data)
        found = _scan_values(data.values()) | _NOT_PLAIN
    else:
        raise InvalidRequest(f"a signal must be a JSON object, not {type(data).__name__}")
    if found & _NON_FINITE:
        raise InvalidRequest("invalid signal: numbers must be finite (no NaN or infinity)")
    try:
        signal = Signal.model_validate(fields)
    except ValidationError as error:
        detail = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        )
        raise InvalidRequest(f"invalid signal: {detail}") from None
    settled = (
        not found
        and type(fields.get("created_at")) is str
        and signal.created_at.utcoffset() == _NO_OFFSET
    )
    return signal, settled


_NON_FINITE: Final = 1
"""A float that is NaN or infinite was found (in a mapping, list or tuple, at any depth)."""
_NOT_PLAIN: Final = 2
"""Something that a JSON parser would not have returned was found (a tuple, a datetime, ...)."""
_NO_OFFSET: Final = timedelta(0)
_SCALARS: Final = frozenset({str, int, bool, type(None)})


def _scan(value: object) -> int:
    """What `value` holds: `_NON_FINITE` and `_NOT_PLAIN` flags (the walk stops at the first
    non-finite number). Mappings, lists and tuples are walked, as JSON-like containers."""
    kind = type(value)
    if kind is float:
        return 0 if math.isfinite(cast(float, value)) else _NON_FINITE
    if kind in _SCALARS:
        return 0
    if kind is dict:
        return _scan_items(cast(dict[Any, Any], value).items())
    if kind is list:
        return _scan_values(cast(list[Any], value))
    if isinstance(value, float):  # a float subclass
        return _NOT_PLAIN if math.isfinite(value) else _NON_FINITE
    if isinstance(value, Mapping):
        return _scan_values(value.values()) | _NOT_PLAIN
    if isinstance(value, list | tuple):
        return _scan_values(value) | _NOT_PLAIN
    return _NOT_PLAIN


def _scan_items(items: Iterable[tuple[object, object]]) -> int:
    """`_scan` over a dict's items: a key that is not a string is not plain JSON either."""
    found = 0
    for key, item in items:
        if type(key) is not str:
            found |= _NOT_PLAIN
        if type(item) in _SCALARS:
            continue
        found |= _scan(item)
        if found & _NON_FINITE:
            return found
    return found


def _scan_values(values: Iterable[object]) -> int:
    found = 0
    for item in values:
        if type(item) in _SCALARS:
            continue
        found |= _scan(item)
        if found & _NON_FINITE:
            return found
    return found
