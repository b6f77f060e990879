"""The shared core every intent connector stands on: signals, the engine's score, the ranking,
queries and cursors.

The score is checked against the formula of the issue written out by hand, so a change to the
implementation cannot change what "the engine's score" means without failing here.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.adapters.intent_adapters import (
    DEFAULT_THRESHOLD,
    Intent,
    Signal,
    decode_intent_cursor,
    encode_intent_cursor,
    explain,
    page_of,
    parse_intent_query,
    parse_signal,
    rank_key,
    score,
    score_data,
    signal_problem,
    verification_from,
)
from integrations.adapters.intent_adapters._intent import verdict
from integrations.adapters.intent_adapters._scoring import decayed_score, rank_key_of, strength_of
from integrations.base import FetchQuery, InvalidRequest

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def signal(**fields: Any) -> Signal:
    """A valid signal dated `NOW`, with `fields` changed."""
    data: dict[str, Any] = {
        "source": "social",
        "topic": "AI governance",
        "momentum": "rising",
        "confidence": 0.8,
        "authenticity": {"human_source_pct": 85},
        "streak_days": 5,
        "created_at": NOW.isoformat(),
        **fields,
    }
    return parse_signal(data)


def by_hand(m: float, confidence: float, pct: float, streak: int, age_hours: float) -> float:
    """The issue's formula, written out."""
    bonus = 1 + min(streak / 14, 0.3)
    return round(m * confidence * (pct / 100) * bonus * math.exp(-age_hours / 24), 3)


# -- the score --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("momentum", "weight"),
    [("surging", 1.3), ("rising", 1.1), ("steady", 0.9), ("viral", 1.0), ("Surging", 1.0)],
)
def test_each_momentum_weighs_as_the_engine_weighs_it(momentum: str, weight: float) -> None:
    fresh = signal(momentum=momentum, confidence=1.0, authenticity={"human_source_pct": 100})
    assert score(fresh.model_copy(update={"streak_days": 0}), now=NOW) == weight
    assert score(fresh, now=NOW) == by_hand(weight, 1.0, 100, 5, 0)


def test_the_legacy_samples_score_as_the_engine_scores_them() -> None:
    social = signal()
    enterprise = signal(
        source="enterprise",
        momentum="steady",
        confidence=0.9,
        authenticity={"human_source_pct": 95},
        streak_days=12,
    )
    assert score(social, now=NOW) == by_hand(1.1, 0.8, 85, 5, 0) == 0.972
    assert score(enterprise, now=NOW) == by_hand(0.9, 0.9, 95, 12, 0) == 1.0
    assert score(enterprise, now=NOW) < DEFAULT_THRESHOLD == 1.2


def test_the_streak_bonus_stops_at_thirty_percent() -> None:
    base = {"momentum": "x", "confidence": 1.0, "authenticity": {"human_source_pct": 100}}
    scores = [score(signal(**base, streak_days=days), now=NOW) for days in (0, 2, 4, 5, 14, 999)]
    assert scores == [1.0, round(1 + 2 / 14, 3), round(1 + 4 / 14, 3), 1.3, 1.3, 1.3]


@pytest.mark.parametrize("hours", [0, 1, 6, 24, 48, 24 * 9, -3])
def test_scores_decay_by_a_factor_e_per_day(hours: float) -> None:
    dated = signal(momentum="surging", confidence=0.9, authenticity={"human_source_pct": 70})
    later = NOW + timedelta(hours=hours)
    assert score(dated, now=later) == by_hand(1.3, 0.9, 70, 5, hours)
    if hours == 24:
        assert score(dated, now=later) == round(score(dated, now=NOW) / math.e, 3)


def test_scores_are_rounded_to_three_decimals() -> None:
    value = score(signal(confidence=0.123456789), now=NOW + timedelta(minutes=7))
    assert value == round(value, 3)
    assert score(signal(confidence=0.0), now=NOW) == 0.0
    # Nine days on, even the strongest signal rounds to nothing.
    strongest = signal(
        momentum="surging", confidence=1.0, authenticity={"human_source_pct": 100}, streak_days=30
    )
    assert score(strongest, now=NOW + timedelta(days=9)) == 0.0


def test_a_date_years_ahead_scores_a_finite_number() -> None:
    ahead = signal(created_at="2030-01-01T00:00:00Z")
    value = score(ahead, now=NOW)
    assert math.isfinite(value)
    assert value > 1e300
    assert score(signal(created_at="2030-01-01T00:00:00Z", confidence=0), now=NOW) == 0.0
    assert math.isfinite(dict(explain(ahead, now=NOW))["decay"])


def test_the_time_zone_of_a_date_changes_nothing() -> None:
    there = timezone(timedelta(hours=5, minutes=30))
    shifted = signal(created_at=NOW.astimezone(there).isoformat())
    assert score(shifted, now=NOW + timedelta(hours=3)) == score(
        signal(), now=NOW + timedelta(hours=3)
    )
    assert rank_key(shifted) == rank_key(signal())


def test_without_created_at_stored_json_scores_zero() -> None:
    data = signal().to_json()
    assert score_data(data, now=NOW) == 0.972
    del data["created_at"]
    assert score_data(data, now=NOW) == 0.0
    assert score_data({"created_at": "not a time", "topic": "x"}, now=NOW) == 0.0


def test_the_explanation_lists_the_factors_in_the_formula_order() -> None:
    factors = dict(explain(signal(), now=NOW + timedelta(hours=12)))
    assert list(factors) == [
        "momentum",
        "confidence",
        "human_source_pct",
        "streak_bonus",
        "age_hours",
        "decay",
    ]
    assert factors["momentum"] == 1.1
    assert factors["age_hours"] == 12.0
    assert factors["decay"] == round(math.exp(-0.5), 6)


def test_the_parts_stores_use_compute_the_score_and_key_bit_for_bit() -> None:
    dated = signal(momentum="steady", confidence=0.37, streak_days=3)
    base = strength_of("steady", 0.37, 85.0, 3)
    later = NOW + timedelta(hours=31, seconds=7)
    assert decayed_score(base, dated.created_at, later) == score(dated, now=later)
    assert rank_key_of(base, dated.created_at) == rank_key(dated)
    assert rank_key_of(0.0, NOW) == -math.inf == rank_key(signal(confidence=0))


# -- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"confidence": math.nan}, "finite"),
        ({"confidence": math.inf}, "finite"),
        ({"authenticity": {"human_source_pct": math.nan}}, "finite"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"authenticity": {"human_source_pct": 101}}, "authenticity.human_source_pct"),
        ({"streak_days": -1}, "streak_days"),
        ({"created_at": "2025-03-01T12:00:00"}, "created_at"),
        ({"created_at": datetime(2025, 3, 1, 12)}, "created_at"),
        ({"topic": None}, "topic"),
        ({"topic": "   "}, "topic"),
        ({"momentum": ""}, "momentum"),
    ],
)
def test_bad_signals_are_rejected_naming_the_field(change: dict[str, Any], field: str) -> None:
    data = {**signal().to_json(), **change}
    with pytest.raises(InvalidRequest, match="invalid signal") as raised:
        parse_signal(data)
    assert field in str(raised.value)
    assert signal_problem(data) == str(raised.value)


def test_a_missing_topic_is_named_and_values_are_never_shown() -> None:
    data = signal().to_json()
    del data["topic"]
    data["confidence"] = "secret-looking value"
    problem = signal_problem(data)
    assert problem is not None
    assert "topic" in problem
    assert "confidence" in problem
    assert "secret-looking value" not in problem
    assert signal_problem([data]) == "a signal must be a JSON object, not list"
    assert signal_problem(signal().to_json()) is None


def test_extra_fields_are_kept_and_created_at_defaults_to_now() -> None:
    before = datetime.now(UTC)
    kept = parse_signal(
        {
            "source": "crm",
            "topic": "Pricing",
            "momentum": "rising",
            "confidence": 0.5,
            "authenticity": {"human_source_pct": 50, "panel": "b2b"},
            "streak_days": 0,
            "region": "EMEA",
            "tags": ["a", "b"],
        }
    )
    assert kept.extra == {"region": "EMEA", "tags": ["a", "b"]}
    data = kept.to_json()
    assert data["region"] == "EMEA"
    assert data["tags"] == ["a", "b"]
    assert data["authenticity"] == {"human_source_pct": 50.0, "panel": "b2b"}
    assert before <= kept.created_at <= datetime.now(UTC)
    assert isinstance(data["created_at"], str)
    assert data["created_at"].endswith("Z")


# -- the ranking holds over time --------------------------------------------------------------

_moments = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2026, 1, 1), timezones=st.just(UTC)
)
_signals = st.builds(
    lambda momentum, confidence, pct, streak, created_at: signal(
        momentum=momentum,
        confidence=confidence,
        authenticity={"human_source_pct": pct},
        streak_days=streak,
        created_at=created_at.isoformat(),
    ),
    st.sampled_from(["surging", "rising", "steady", "other"]),
    st.floats(0, 1),
    st.floats(0, 100),
    st.integers(0, 40),
    _moments,
)


@settings(max_examples=300, deadline=None)
@given(_signals, _signals, _moments, _moments)
def test_scores_at_any_moment_follow_the_rank_key_order(
    first: Signal, second: Signal, one: datetime, other: datetime
) -> None:
    """A higher key never scores lower, at any moment; ties come only from rounding."""
    tolerance = 1e-9  # the keys' own floating-point error, far below a rounding step
    for moment in (one, other):
        a, b = score(first, now=moment), score(second, now=moment)
        if rank_key(first) > rank_key(second) + tolerance:
            assert a >= b
        if rank_key(second) > rank_key(first) + tolerance:
            assert b >= a


# -- queries, pages and cursors ---------------------------------------------------------------


def intents(count: int) -> list[Intent]:
    return [
        Intent(f"i{n:02d}", signal(confidence=round(0.05 + n / 40, 3), topic=f"T{n % 3}"))
        for n in range(count)
    ]


def test_pages_follow_the_ranking_and_cursors_survive_decay() -> None:
    stored = intents(12)
    query = parse_intent_query(FetchQuery(limit=5), max_limit=100)
    first = page_of(stored, query, now=NOW)
    assert [r.id for r in first.records] == ["i11", "i10", "i09", "i08", "i07"]
    assert first.next_cursor is not None
    later = parse_intent_query(FetchQuery(limit=5, cursor=first.next_cursor), max_limit=100)
    second = page_of(stored, later, now=NOW + timedelta(days=2))
    assert [r.id for r in second.records] == ["i06", "i05", "i04", "i03", "i02"]


def test_a_cursor_is_bound_to_the_filters_it_was_made_for() -> None:
    query = FetchQuery(filters={"topic": "T1"}, limit=1)
    page = page_of(intents(9), parse_intent_query(query, max_limit=10), now=NOW)
    assert page.next_cursor is not None
    same = query.model_copy(update={"cursor": page.next_cursor})
    assert parse_intent_query(same, max_limit=10).after is not None
    other = FetchQuery(filters={"topic": "T2"}, cursor=page.next_cursor)
    with pytest.raises(InvalidRequest, match="another query"):
        parse_intent_query(other, max_limit=10)


@pytest.mark.parametrize("cursor", ["not-base64!", "e30", "W10", "eyJmIjoiIn0"])
def test_damaged_or_foreign_cursors_are_invalid_requests(cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        parse_intent_query(FetchQuery(cursor=cursor), max_limit=10)


def test_a_cursor_round_trips_its_position_and_unscorable_keys() -> None:
    unscorable = Intent("zero", signal(confidence=0))
    cursor = encode_intent_cursor(unscorable, "fp")
    assert decode_intent_cursor(cursor, "fp") == (-math.inf, "zero")
    with pytest.raises(InvalidRequest, match="another query"):
        decode_intent_cursor(cursor, "other")


@pytest.mark.parametrize(
    "filters",
    [
        {"colour": "red"},
        {"topic": 3},
        {"min_score": "high"},
        {"min_score": math.inf},
        {"threshold": 1.0},
        {"verify": "T1", "topic": "T1"},
    ],
)
def test_unknown_or_ill_typed_filters_are_invalid_requests(filters: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        parse_intent_query(FetchQuery(filters=filters), max_limit=10)


def test_verification_takes_the_topics_best_score_case_insensitively() -> None:
    stored = intents(12)
    filters: dict[str, Any] = {"verify": "t1", "threshold": 0.3}
    query = parse_intent_query(FetchQuery(filters=filters), max_limit=1)
    result = verification_from(stored, query, NOW)
    best = max(i.score(NOW) for i in stored if i.signal.topic == "T1")
    assert (result.topic, result.intent_score, result.allowed) == ("t1", best, True)
    assert result == verdict("t1", best, 0.3)
    assert result.reason == f"intent score {best} reaches the threshold 0.3"
    assert verdict("t1", None, 0.3).reason == "no intent for this topic"
    assert not verdict("t1", 0.2, 0.3).allowed
