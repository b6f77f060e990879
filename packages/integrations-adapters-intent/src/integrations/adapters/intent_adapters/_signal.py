"""What an intent signal is: the typed, validated evidence every intent connector exchanges.

A signal says that people care about a topic now: where it was seen (`source`), how fast
interest grows (`momentum`), how sure the source is (`confidence`), how much of it comes from
humans (`authenticity.human_source_pct`) and for how many days in a row (`streak_days`).
Fields the model does not know are kept, as the engine keeps them. Validation is written once
here, so every connector, the collector and the legacy shim accept and reject the same signals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from integrations.base import InvalidRequest, JsonObject, format_utc

__all__ = [
    "KNOWN_MOMENTUMS",
    "Authenticity",
    "Signal",
    "parse_signal",
    "signal_problem",
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
        """The signal as the JSON object the engine accepts (``created_at`` in RFC 3339, UTC)."""
        data: JsonObject = self.model_dump(mode="json")
        data["created_at"] = format_utc(self.created_at)
        return data


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
    if isinstance(data, Signal):
        return data
    if not isinstance(data, Mapping):
        raise InvalidRequest(f"a signal must be a JSON object, not {type(data).__name__}")
    if _holds_non_finite(data):
        raise InvalidRequest("invalid signal: numbers must be finite (no NaN or infinity)")
    try:
        return Signal.model_validate(dict(data))
    except ValidationError as error:
        detail = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        )
        raise InvalidRequest(f"invalid signal: {detail}") from None


def _holds_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_holds_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_non_finite(item) for item in value)
    return False
