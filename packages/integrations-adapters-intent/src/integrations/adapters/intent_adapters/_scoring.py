"""The Intent Engine's score, reproduced exactly, its explanation, and a ranking that holds.

``score = m * confidence * (human_source_pct / 100) * (1 + min(streak_days / 14, 0.3))
* exp(-age_hours / 24)``, rounded to 3 decimals, where ``m`` is 1.3 for surging, 1.1 for
rising, 0.9 for steady and 1.0 otherwise. Every intent decays by the same factor per hour, so
the *order* of two intents never changes with time: `rank_key` is that time-free order (the
logarithm of the score at a fixed reference moment), which is what cursors page through.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from integrations.base import InvalidRequest

from ._signal import Signal

__all__ = [
    "DEFAULT_THRESHOLD",
    "MOMENTUM_WEIGHTS",
    "decayed_score",
    "decayed_score_micros",
    "explain",
    "rank_key",
    "rank_key_of",
    "score",
    "score_data",
    "strength",
    "strength_of",
]

MOMENTUM_WEIGHTS: Final[Mapping[str, float]] = {"surging": 1.3, "rising": 1.1, "steady": 0.9}
"""The weight `m` of each known momentum; any other momentum weighs 1.0."""

DEFAULT_THRESHOLD: Final = 1.2
"""The best score a topic needs to be aligned, unless a threshold is given (the legacy value)."""

STREAK_DAYS: Final = 14
STREAK_CAP: Final = 0.3
DECAY_HOURS: Final = 24.0
_UNSCORABLE: Final = -math.inf
_AS_WRITTEN: Final = 700.0
"""Up to this decay exponent (a date some 700 days ahead) the formula is computed as written:
with a strength of at most 1.69, the score stays below ``exp(701)``."""
_HOLD_EXPONENT: Final = 709.0


def strength(signal: Signal) -> float:
    """The score before decay: momentum * confidence * human share * streak bonus."""
    return strength_of(
        signal.momentum,
        signal.confidence,
        signal.authenticity.human_source_pct,
        signal.streak_days,
    )


def strength_of(
    momentum: str, confidence: float, human_source_pct: float, streak_days: int
) -> float:
    """`strength` from a signal's fields, for stores that keep them without a `Signal`."""
    weight = MOMENTUM_WEIGHTS.get(momentum, 1.0)
    human = human_source_pct / 100
    streak = 1 + min(streak_days / STREAK_DAYS, STREAK_CAP)
    return weight * confidence * human * streak


def score(signal: Signal, *, now: datetime | None = None) -> float:
    """The engine's score of `signal` at `now` (default: the current time), to 3 decimals.

    The formula is applied as written: a signal dated in the future has a negative age, and
    scores above its strength until its date.
    """
    return decayed_score(strength(signal), signal.created_at, now or datetime.now(UTC))


def decayed_score(base: float, created_at: datetime, now: datetime) -> float:
    """The score at `now` of a signal of strength `base` dated `created_at` (`score`'s formula).

    Stores that keep a signal's strength and date compute its score with this, so their
    scores are the engine's to the last bit.
    """
    exponent = -(now - created_at).total_seconds() / 3600 / DECAY_HOURS
    if exponent <= _AS_WRITTEN:
        return round(base * math.exp(exponent), 3)
    return _far_ahead(base, exponent)


def decayed_score_micros(base: float, age_micros: int) -> float:
    """`decayed_score` of a signal of strength `base` that is `age_micros` microseconds old
    (negative when it is dated ahead), for stores that keep times as whole microseconds.

    The same number to the last bit: `timedelta.total_seconds` is the delta's whole
    microseconds divided by 10**6, which is what this divides, and the rest is `decayed_score`'s
    arithmetic in its order. It spares a page two datetime operations per record.
    """
    exponent = -(age_micros / 1_000_000) / 3600 / DECAY_HOURS
    if exponent <= _AS_WRITTEN:
        return round(base * math.exp(exponent), 3)
    return _far_ahead(base, exponent)


def _far_ahead(base: float, exponent: float) -> float:
    """The score of a signal dated years after `now`, where ``exp`` alone would overflow.

    Computed as ``exp(log(base) + exponent)`` and held at ``exp(709)``, the order of
    magnitude of the largest float: scores stay numbers, and still never rank two signals
    against their `rank_key` order (the formula as written stays far below the hold).
    """
    if base <= 0:
        return 0.0
    return round(math.exp(min(math.log(base) + exponent, _HOLD_EXPONENT)), 3)


def _decay(age_hours: float) -> float:
    """``exp(-age_hours / 24)``, held at ``exp(709)`` (see `_far_ahead`)."""
    return math.exp(min(-age_hours / DECAY_HOURS, _HOLD_EXPONENT))


def score_data(data: Mapping[str, object], *, now: datetime | None = None) -> float:
    """The score of a stored intent given as JSON; one without a valid ``created_at`` scores 0.

    What the engine does for the intents it lists: the formula needs an age, and a signal
    that cannot be dated has none.
    """
    from ._signal import parse_signal

    if "created_at" not in data:
        return 0.0
    try:
        signal = parse_signal(data)
    except InvalidRequest:
        return 0.0
    return score(signal, now=now)


def _age_hours(signal: Signal, now: datetime | None) -> float:
    moment = now or datetime.now(UTC)
    return (moment - signal.created_at).total_seconds() / 3600


def explain(signal: Signal, *, now: datetime | None = None) -> tuple[tuple[str, float], ...]:
    """The factors of the score, as ``(name, value)`` pairs in the formula's order."""
    age_hours = _age_hours(signal, now)
    return (
        ("momentum", MOMENTUM_WEIGHTS.get(signal.momentum, 1.0)),
        ("confidence", signal.confidence),
        ("human_source_pct", signal.authenticity.human_source_pct),
        ("streak_bonus", round(1 + min(signal.streak_days / STREAK_DAYS, STREAK_CAP), 6)),
        ("age_hours", round(age_hours, 3)),
        ("decay", round(_decay(age_hours), 6)),
    )


def rank_key(signal: Signal) -> float:
    """Where `signal` ranks, independent of when it is asked: higher ranks first.

    ``log(strength) + created_at / 24 h``: the logarithm of the score at a fixed moment. Two
    signals compare the same way at every moment (both decay alike), so a cursor holding the
    key of the last intent returned neither repeats nor skips one as scores decay. Signals
    that score zero rank last (minus infinity).
    """
    return rank_key_of(strength(signal), signal.created_at)


def rank_key_of(base: float, created_at: datetime) -> float:
    """`rank_key` of a signal of strength `base` dated `created_at`."""
    if base <= 0:
        return _UNSCORABLE
    return math.log(base) + created_at.timestamp() / 3600 / DECAY_HOURS
