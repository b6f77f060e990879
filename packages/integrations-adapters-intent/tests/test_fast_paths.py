"""The shortcuts on the hot paths build exactly what the validating way builds.

An alignment check, a ranked page and a push build models from values the connector made or
checked, skipping pydantic's per-call work; these tests hold each shortcut to the result (or
the error) of the plain, validating way, so taking it never shows.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, PrivateAttr, ValidationError

from integrations.adapters.intent_adapters import (
    DEFAULT_THRESHOLD,
    Verification,
    parse_intent_query,
    verification_query,
)
from integrations.adapters.intent_adapters._construct import builder
from integrations.adapters.intent_adapters._intent import (
    verdict,
    verification_of,
    verification_record,
    verify_target,
)
from integrations.adapters.intent_adapters._scoring import decayed_score, decayed_score_micros
from integrations.base import FetchQuery, FetchResult, JsonObject, Record

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def same_model(built: BaseModel, expected: BaseModel) -> None:
    """Equal in every part a caller can see: type, values, fields set, extra, dumps."""
    assert type(built) is type(expected)
    assert vars(built) == vars(expected)
    assert built.model_fields_set == expected.model_fields_set
    assert isinstance(built.model_fields_set, set)
    assert built.model_extra == expected.model_extra
    assert built.model_dump(mode="json") == expected.model_dump(mode="json")
    assert built.model_dump(exclude_unset=True) == expected.model_dump(exclude_unset=True)
    assert built == expected


# -- builders ---------------------------------------------------------------------------------


def test_a_builder_builds_what_the_constructor_builds() -> None:
    make = builder(
        Record, ("id", "data"), {"id": "x", "data": {}, "deleted": False, "updated_at": None}
    )
    built = make({"id": "r", "data": {"a": [1, 2.5]}, "deleted": False, "updated_at": None})
    same_model(built, Record(id="r", data={"a": [1, 2.5]}))
    with pytest.raises(ValidationError):  # still frozen
        built.id = "other"  # type: ignore[misc]  # assigning a frozen field is what is tested
    copied = built.model_copy(update={"deleted": True})
    assert copied.deleted
    assert not built.deleted
    assert built.model_fields_set == {"id", "data"}  # the copy's update did not leak back


def test_each_built_instance_has_its_own_fields_set() -> None:
    make = builder(FetchResult, ("records",), {"records": (), "next_cursor": None})
    first, second = (
        make({"records": (), "next_cursor": None}),
        make({"records": (), "next_cursor": None}),
    )
    assert first.model_fields_set == {"records"}
    assert first.model_fields_set is not second.model_fields_set


def test_a_builder_falls_back_to_model_construct_for_models_with_private_state() -> None:
    class Private(BaseModel):
        value: int
        _seen: int = PrivateAttr(default=0)

    make = builder(Private, ("value",), {"value": 1})
    built = make({"value": 3})
    same_model(built, Private.model_construct({"value"}, value=3))
    assert built._seen == 0


def test_a_sample_must_name_every_field_and_only_those() -> None:
    with pytest.raises(ValueError, match="every field"):
        builder(FetchResult, ("records",), {"records": ()})
    with pytest.raises(ValueError, match="every field"):
        builder(FetchResult, ("records",), {"records": (), "next_cursor": None, "more": 1})


# -- the score from microseconds --------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(
    st.floats(0, 1.69),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
    ),
)
def test_the_score_from_microseconds_is_the_score_bit_for_bit(
    base: float, created_at: datetime, now: datetime
) -> None:
    micros = (now - created_at) // timedelta(microseconds=1)
    assert decayed_score_micros(base, micros) == decayed_score(base, created_at, now)


def test_the_score_from_microseconds_holds_far_ahead_and_at_zero() -> None:
    ahead = NOW + timedelta(days=3000)
    micros = (NOW - ahead) // timedelta(microseconds=1)
    assert decayed_score_micros(1.2, micros) == decayed_score(1.2, ahead, NOW)
    assert math.isfinite(decayed_score_micros(1.2, micros))
    assert decayed_score_micros(0.0, micros) == 0.0
    assert decayed_score_micros(1.3, 0) == 1.3


# -- the alignment check's query --------------------------------------------------------------


@pytest.mark.parametrize("threshold", [None, 0.5, 2, 1.25e-3, math.inf])
def test_the_verification_query_is_the_validated_one(threshold: float | None) -> None:
    filters: JsonObject = {"verify": "AI governance"}
    if threshold is not None:
        filters["threshold"] = threshold
    same_model(verification_query("AI governance", threshold), FetchQuery(filters=filters, limit=1))


def test_an_unusual_verification_query_is_validated() -> None:
    with pytest.raises(ValidationError):
        verification_query("topic", threshold=object())  # type: ignore[arg-type]  # tested
    bool_threshold = verification_query("topic", threshold=True)
    same_model(bool_threshold, FetchQuery(filters={"verify": "topic", "threshold": True}, limit=1))


VERIFY_FILTERS: list[JsonObject] = [
    {"verify": "AI governance"},
    {"verify": "AI governance", "threshold": 0.5},
    {"verify": "AI governance", "threshold": 2},
    {"verify": "AI governance", "threshold": None},
    {"verify": "ÉTÉ straße"},
]


@pytest.mark.parametrize("filters", VERIFY_FILTERS)
def test_a_plain_verify_query_reads_as_parse_intent_query_reads_it(filters: JsonObject) -> None:
    query = FetchQuery(filters=filters, limit=7)
    parsed = parse_intent_query(query, max_limit=100)
    target = verify_target(query)
    assert target == (parsed.verify, parsed.threshold)
    assert target is not None
    assert type(target[1]) is float


@pytest.mark.parametrize(
    "query",
    [
        FetchQuery(),
        FetchQuery(filters={"topic": "AI governance"}),
        FetchQuery(filters={"verify": "x", "topic": "x"}),
        FetchQuery(filters={"verify": "x", "threshold": True}),
        FetchQuery(filters={"verify": "x", "threshold": math.nan}),
        FetchQuery(filters={"verify": "x", "threshold": "high"}),
        FetchQuery(filters={"verify": "  "}),
        FetchQuery(filters={"verify": 3}),
        FetchQuery(filters={"verify": "x"}, text="words"),
        FetchQuery(filters={"verify": "x"}, cursor="c"),
        FetchQuery(filters={"threshold": 1.0}),
    ],
)
def test_any_other_query_is_left_to_parse_intent_query(query: FetchQuery) -> None:
    assert verify_target(query) is None


def test_the_fingerprint_is_the_digest_of_the_filters_cursors_always_carried() -> None:
    filters: JsonObject = {"topic": "T1", "min_score": 0.2}
    parsed = parse_intent_query(FetchQuery(filters=filters), max_limit=10)
    same = parse_intent_query(FetchQuery(filters={"min_score": 0.2, "topic": "T1"}), max_limit=10)
    other = parse_intent_query(FetchQuery(filters={"topic": "T2"}), max_limit=10)
    spelled = json.dumps(filters, sort_keys=True, separators=(",", ":"))
    assert parsed.fingerprint == hashlib.sha256(spelled.encode()).hexdigest()[:16]
    assert parsed.fingerprint == same.fingerprint != other.fingerprint
    assert parsed == same
    assert hash(parsed) == hash(same)


# -- the verification's record and its reading ------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "best", "threshold"),
    [
        ("AI governance", 1.69, 1.2),
        ("AI governance", 0.3, 1.2),
        ("AI governance", 1.2, 1.2),
        ("AI governance", None, 1.2),
        ("AI governance", 0.0, 0.0),
        ("x" * 1017, 0.5, 0.25),
        ("ÉTÉ", 1e-3, DEFAULT_THRESHOLD),
    ],
)
def test_the_verification_record_is_the_verdicts_record(
    topic: str, best: float | None, threshold: float
) -> None:
    expected = verdict(topic, best, threshold).to_record()
    same_model(verification_record(topic, best, threshold), expected)


def test_a_verification_record_out_of_the_ordinary_takes_the_validating_way() -> None:
    with pytest.raises(ValidationError):  # a record id holds at most 1024 characters
        verdict("x" * 1018, 0.5, 0.25).to_record()
    with pytest.raises(ValidationError):
        verification_record("x" * 1018, 0.5, 0.25)
    same_model(verification_record("t", math.inf, 1.0), verdict("t", math.inf, 1.0).to_record())
    same_model(verification_record("t", 1, 1), verdict("t", 1, 1).to_record())


@pytest.mark.parametrize(
    "data",
    [
        {"topic": "t", "allowed": True, "reason": "r", "intent_score": 1.5},
        {"topic": "t", "allowed": False, "reason": "r", "intent_score": None},
        {"topic": "t", "allowed": False, "reason": "r", "intent_score": 2},
        {"topic": "t", "allowed": False, "reason": "r"},
        {"intent_score": 0.5, "reason": "r", "allowed": True, "topic": "t"},
    ],
)
def test_a_verification_is_read_as_validation_reads_it(data: dict[str, Any]) -> None:
    same_model(verification_of(data), Verification.model_validate(data))


@pytest.mark.parametrize(
    "data",
    [
        {"topic": "t", "allowed": "yes please", "reason": "r", "intent_score": 1.5},
        {"topic": "t", "allowed": True, "reason": "r", "intent_score": 1.5, "more": 1},
        {"topic": "t", "reason": "r"},
        {},
    ],
)
def test_a_damaged_verification_fails_as_validation_fails(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as expected:
        Verification.model_validate(data)
    with pytest.raises(ValidationError) as found:
        verification_of(data)
    assert found.value.errors() == expected.value.errors()


def test_a_verification_read_does_not_share_the_records_data() -> None:
    data: JsonObject = {"topic": "t", "allowed": True, "reason": "r", "intent_score": 1.5}
    read = verification_of(data)
    data["topic"] = "changed"
    assert read.topic == "t"
