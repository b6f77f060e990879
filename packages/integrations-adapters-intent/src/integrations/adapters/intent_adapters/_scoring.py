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
    "explain",
    "rank_key",
    "score",
    "score_data",
    "strength",
]

MOMENTUM_WEIGHTS: Final[Mapping[str, float]] = {"surging": 1.3, "rising": 1.1, "steady": 0.9}
"""The weight `m` of each known momentum; any other momentum weighs 1.0."""

DEFAULT_THRESHOLD: Final = 1.2
"""The best score a topic needs to be aligned, unless a threshold is given (the legacy value)."""

STREAK_DAYS: Final = 14
STREAK_CAP: Final = 0.3
DECAY_HOURS: Final = 24.0
_UNSCORABLE: Final = -math.inf


def strength(signal: Signal) -> float:
    """The score before decay: momentum * confidence * human share * streak bonus."""
    weight = MOMENTUM_WEIGHTS.get(signal.momentum, 1.0)
    human = signal.authenticity.human_source_pct / 100
    streak = 1 + min(signal.streak_days / STREAK_DAYS, STREAK_CAP)
    return weight * signal.confidence * human * streak


def score(signal: Signal, *, now: datetime | None = None) -> float:
    """The engine's score of `signal` at `now` (default: the current time), to 3 decimals.

    The formula is applied as written: a signal dated in the future has a negative age, and
    scores above its strength until its date.
    """
    return round(strength(signal) * math.exp(-_age_hours(signal, now) / DECAY_HOURS), 3)


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
        ("decay", round(math.exp(-age_hours / DECAY_HOURS), 6)),
    )


def rank_key(signal: Signal) -> float:
    """Where `signal` ranks, independent of when it is asked: higher ranks first.

    ``log(strength) + created_at / 24 h``: the logarithm of the score at a fixed moment. Two
    signals compare the same way at every moment (both decay alike), so a cursor holding the
    key of the last intent returned neither repeats nor skips one as scores decay. Signals
    that score zero rank last (minus infinity).
    """
    base = strength(signal)
    if base <= 0:
        return _UNSCORABLE
    return math.log(base) + signal.created_at.timestamp() / 3600 / DECAY_HOURS
