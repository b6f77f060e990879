"""Reading a signal once: the shortcuts of `read_signal`, `Signal.to_json` and the ids, held to
the plain ways they replace.

A collection validates thousands of signals, so reading one is written for speed: one walk
looks for non-finite numbers and notes whether the data is plain JSON, a signal without extra
fields is written to JSON directly, the canonical JSON of such a signal (what its id hashes)
is spelled directly, and a *settled* signal is handed to the collector instead of being
parsed again from its JSON. Each shortcut must give exactly what the plain way gives; the
plain ways are written out here as they were, and generated data compares the two.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from integrations.adapters.intent_adapters import Signal, parse_signal
from integrations.adapters.intent_adapters._signal import read_signal, utc_text
from integrations.adapters.intent_adapters.signals import signal_id
from integrations.adapters.intent_adapters.signals._answer import (
    _CANONICAL,
    _plain_canonical,
    json_signal_id,
    read_answer,
)
from integrations.base import InvalidRequest, JsonObject, Record, format_utc

# -- the plain ways, as they were written before the shortcuts ---------------------------------


def reference_holds_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(reference_holds_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(reference_holds_non_finite(item) for item in value)
    return False


def reference_parse(data: object) -> Signal:
    if isinstance(data, Signal):
        return data
    if not isinstance(data, Mapping):
        raise InvalidRequest(f"a signal must be a JSON object, not {type(data).__name__}")
    if reference_holds_non_finite(data):
        raise InvalidRequest("invalid signal: numbers must be finite (no NaN or infinity)")
    try:
        return Signal.model_validate(dict(data))
    except ValidationError as error:
        detail = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        )
        raise InvalidRequest(f"invalid signal: {detail}") from None


def reference_to_json(signal: Signal) -> JsonObject:
    data: JsonObject = signal.model_dump(mode="json")
    data["created_at"] = format_utc(signal.created_at)
    return data


def reference_id(signal: Signal) -> str:
    text = json.dumps(
        reference_to_json(signal),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    import hashlib

    return "sig-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def outcome(read: Any, data: object) -> tuple[str, object]:
    """What reading `data` gives: the signal's full state, or the error's message."""
    try:
        signal = read(data)
    except InvalidRequest as error:
        return "error", str(error)
    return "signal", state(signal)


def state(signal: Signal) -> tuple[object, ...]:
    """Everything a signal is made of, types and time zones included."""
    return (
        repr(signal),
        signal.model_dump(),
        signal.model_fields_set,
        signal.model_extra,
        repr(signal.authenticity),
        signal.authenticity.model_fields_set,
        {key: type(value) for key, value in vars(signal).items()},
    )


# -- generated signals ---------------------------------------------------------------------------


class Level(enum.IntEnum):
    LOW = 1


class Momentum(enum.StrEnum):
    RISING = "rising"


_offsets = st.sampled_from(["Z", "z", "+00:00", "-00:00", "+02:00", "-11:30", ""])
_times = st.one_of(
    st.builds(
        lambda moment, fraction, offset: moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset,
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        st.sampled_from(["", ".5", ".123456", ".1234567", ".000000"]),
        _offsets,
    ),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5)), None])),
    st.sampled_from(["1700000000", "2025-03-01 12:00:00Z", "2025-02-30T00:00:00Z", "soon"]),
    st.integers(0, 2_000_000_000),
)
_json_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=4))
_json = st.recursive(
    _json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
_odd = st.one_of(
    st.tuples(st.floats()),
    st.just(Level.LOW),
    st.just(Momentum.RISING),
    st.dictionaries(st.integers(0, 3), st.text(max_size=2), min_size=1, max_size=2),
    st.datetimes(timezones=st.just(UTC)),
)
_numbers = st.one_of(
    st.floats(0, 1),
    st.integers(-1, 2),
    st.floats(),
    st.just("0.5"),
    st.booleans(),
    st.just(Level.LOW),
)
_signals = st.fixed_dictionaries(
    {
        "source": st.one_of(st.text(max_size=6), st.just(Momentum.RISING)),
        "topic": st.sampled_from(["AI governance", " ", "x" * 501, "é\u2028\ud800"]),
        "momentum": st.one_of(st.sampled_from(["surging", "rising", "steady", "new"]), _odd),
        "confidence": _numbers,
        "authenticity": st.one_of(
            st.fixed_dictionaries({"human_source_pct": st.one_of(st.floats(0, 100), _numbers)}),
            st.fixed_dictionaries(
                {"human_source_pct": st.floats(0, 100), "panel": st.one_of(_json, _odd)}
            ),
            st.just([50]),
        ),
        "streak_days": st.one_of(st.integers(-1, 100_001), st.just(3.0), st.just(True)),
        "created_at": _times,
    },
    optional={
        "region": st.one_of(_json, _odd),
        "weights": st.lists(st.one_of(st.floats(), st.integers()), max_size=3),
        "meta": _json,
    },
)
_finite_json = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
    )
    | st.text(max_size=4),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)
_valid = st.fixed_dictionaries(
    {
        "source": st.text(min_size=1, max_size=6).filter(lambda text: not text.isspace()),
        "topic": st.sampled_from(["AI governance", "é\u2028", "x" * 500]),
        "momentum": st.sampled_from(["surging", "rising", "steady", "new"]),
        "confidence": st.one_of(st.floats(0, 1), st.integers(0, 1), st.just("0.25")),
        "authenticity": st.one_of(
            st.fixed_dictionaries(
                {"human_source_pct": st.one_of(st.floats(0, 100), st.integers(0, 100))}
            ),
            st.fixed_dictionaries({"human_source_pct": st.floats(0, 100), "panel": _finite_json}),
        ),
        "streak_days": st.integers(0, 100_000),
        "created_at": st.one_of(
            st.builds(
                lambda moment, fraction, offset: (
                    moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset
                ),
                st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
                st.sampled_from(["", ".5", ".123456", ".1234567", ".000000"]),
                st.sampled_from(["Z", "+00:00", "-00:00", "+02:00"]),
            ),
            st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=5))])),
        ),
    },
    optional={"region": _finite_json, "meta": _finite_json, "odd": _odd},
)
"""Signals that are mostly valid (plain JSON, dated in or out of UTC, extra fields or not)."""
_with_extras = st.builds(
    lambda signal, extras: {**signal, **extras},
    _valid,
    st.dictionaries(
        st.sampled_from(["region", "tags", "id", "model_config"]),
        _finite_json,
        min_size=1,
        max_size=3,
    ),
)
_any_signal = st.one_of(_valid, _with_extras, _with_extras, _signals)


@settings(max_examples=800, deadline=None)
@given(_any_signal)
def test_parse_signal_accepts_and_refuses_exactly_as_before(data: dict[str, Any]) -> None:
    assert outcome(parse_signal, data) == outcome(reference_parse, data)


@settings(max_examples=800, deadline=None)
@given(_any_signal)
def test_a_settled_signal_is_the_one_its_json_reads_back_as(data: dict[str, Any]) -> None:
    """Settled is a promise to the collector: parsing the record's data would change nothing."""
    try:
        signal, settled = read_signal(data)
        body = signal.to_json()
    except (InvalidRequest, ValueError, OverflowError):
        return
    if settled:
        assert state(parse_signal(body)) == state(signal)


@settings(max_examples=800, deadline=None)
@given(_any_signal)
def test_to_json_and_ids_are_what_pydantic_and_the_json_encoder_give(data: dict[str, Any]) -> None:
    try:
        signal = parse_signal(data)
        expected = reference_to_json(signal)
    except (InvalidRequest, ValueError, OverflowError):
        return
    body = signal.to_json()
    assert body == expected
    assert list(body) == list(expected)
    assert [type(value) for value in body.values()] == [type(value) for value in expected.values()]
    try:
        wanted = reference_id(signal)
    except ValueError:  # a lone surrogate: neither way makes an id
        with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
            signal_id(signal)
        return
    assert signal_id(signal) == wanted


def test_what_reads_as_plain_and_settled() -> None:
    dated = {
        "source": "s",
        "topic": "t",
        "momentum": "rising",
        "confidence": 1,
        "authenticity": {"human_source_pct": 50},
        "streak_days": 2,
        "created_at": "2025-03-01T12:00:00+00:00",
    }
    assert read_signal(dated)[1]
    assert read_signal({**dated, "tags": ["a", {"b": None}]})[1]
    assert not read_signal({**dated, "created_at": "2025-03-01T14:00:00+02:00"})[1]
    assert not read_signal({**dated, "created_at": datetime(2025, 3, 1, tzinfo=UTC)})[1]
    assert not read_signal({**dated, "tags": ("a",)})[1]
    assert not read_signal({**dated, "tags": {1: "a"}})[1]
    signal = parse_signal(dated)
    assert read_signal(signal) == (signal, False)


class Frozen(Mapping[str, Any]):
    """A mapping that is not a dict."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def test_other_mappings_and_nested_containers_are_read_as_before() -> None:
    data = {
        "source": "s",
        "topic": "t",
        "momentum": "rising",
        "confidence": 0.5,
        "authenticity": {"human_source_pct": 50.0},
        "streak_days": 2,
        "created_at": "2025-03-01T12:00:00Z",
    }
    signal, settled = read_signal(Frozen(data))
    assert signal == parse_signal(data)
    assert not settled
    for nested in ([[float("nan")]], (1.0, float("inf")), Frozen({"x": float("-inf")})):
        with pytest.raises(InvalidRequest, match="finite"):
            parse_signal({**data, "extra": nested})
    with pytest.raises(InvalidRequest, match="finite"):
        parse_signal(Frozen({**data, "confidence": float("nan")}))
    with pytest.raises(InvalidRequest, match="JSON object"):
        parse_signal(["not", "a", "mapping"])


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, UTC, timezone(timedelta(0)), timezone(timedelta(hours=-3, minutes=-30))]
        ),
    )
)
def test_utc_text_is_format_utc(moment: datetime) -> None:
    assert utc_text(moment) == format_utc(moment)


_bodies = st.fixed_dictionaries(
    {
        "authenticity": st.one_of(
            st.fixed_dictionaries({"human_source_pct": st.one_of(st.floats(), st.integers())}),
            st.just({"human_source_pct": 1.0, "more": 1}),
        ),
        "confidence": st.one_of(st.floats(), st.integers(), st.text(max_size=2)),
        "created_at": st.text(),
        "momentum": st.text(),
        "source": st.one_of(st.text(), st.integers()),
        "streak_days": st.one_of(st.integers(), st.booleans(), st.floats(0, 2)),
        "topic": st.text(),
    },
    optional={"other": st.integers()},
)


@settings(max_examples=800, deadline=None)
@given(_bodies)
def test_the_canonical_spelling_is_the_encoders(body: JsonObject) -> None:
    written = _plain_canonical(body)
    if written is not None:
        assert written == _CANONICAL.encode(body)
        return
    try:
        expected = _CANONICAL.encode(body)
    except ValueError:  # non-finite numbers: refused both ways
        with pytest.raises(ValueError, match="not JSON compliant"):
            json_signal_id(body)
        return
    assert json_signal_id(body).startswith("sig-")
    assert expected


def test_a_source_answers_records_as_pydantic_would_build_them() -> None:
    moment = datetime(2025, 3, 1, 12, tzinfo=UTC)
    answer = read_answer(
        [
            {
                "source": "s",
                "topic": "t",
                "momentum": "rising",
                "confidence": 0.5,
                "authenticity": {"human_source_pct": 50.0},
                "streak_days": 2,
                "created_at": "2025-03-01T12:00:00Z",
            },
            {  # undated: dated by the read, so not settled
                "source": "s",
                "topic": "u",
                "momentum": "rising",
                "confidence": 0.5,
                "authenticity": {"human_source_pct": 50.0},
                "streak_days": 2,
            },
        ],
        max_signals=10,
        now=moment,
    )
    for record in answer.records:
        validated = Record(id=record.id, data=record.data, updated_at=record.updated_at)
        assert record == validated
        assert record.model_fields_set == validated.model_fields_set
        assert record.model_dump() == validated.model_dump()
        assert record.id == reference_id(reference_parse(record.data))
    first, second = answer.signals
    assert first is not None
    assert state(first) == state(parse_signal(answer.records[0].data))
    assert second is None
    assert list(answer.settled()) == [id(answer.records[0])]
