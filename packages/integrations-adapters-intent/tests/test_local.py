"""intent.local against real SQLite files, through governed sessions.

Time is a `Clock` the tests move by hand and give to the connector, which scores, dates
undated signals, stamps changes and schedules compaction by it: "three days later" never
waits three days. The store is held to the shared core: for the same signals and the same
moment, every fetch answers what `page_of`, `verification_from` and `Intent.to_record` answer.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.adapters.intent_adapters import (
    Intent,
    Verification,
    encode_intent_cursor,
    intent_aligned,
    page_of,
    parse_intent_query,
    parse_signal,
    rank_key,
    verification_from,
    verify_intent,
)
from integrations.adapters.intent_adapters._scoring import strength
from integrations.adapters.intent_adapters.local import LocalIntentConfig, LocalIntentConnector
from integrations.adapters.intent_adapters.local._backend import ranked_statement
from integrations.adapters.intent_adapters.local._paths import default_path
from integrations.adapters.intent_adapters.local._records import intent_record, tombstone_record
from integrations.adapters.intent_adapters.local._rows import (
    _encode_dict,
    canonical_json,
    micros,
    moment_of,
    row_of,
)
from integrations.adapters.intent_adapters.local._schema import SCHEMA_VERSION, migrate
from integrations.adapters.intent_adapters.local._sync import encode_sync_state
from integrations.base import (
    NO_RETRY,
    AuthContext,
    AuthError,
    ConfigError,
    ConnectionFailed,
    ConnectorError,
    EgressDenied,
    FetchQuery,
    FetchResult,
    Governance,
    InvalidRequest,
    JsonObject,
    MemoryAuditSink,
    NotFound,
    PushPayload,
    Record,
    ResyncRequired,
    Session,
    SyncState,
    TransientError,
    UntrustedConfig,
    registry,
)

QUICK = Governance(audit=MemoryAuditSink(), retry=NO_RETRY)
"""Errors surface at once: the tests check which error, not the retries."""

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
MAX_CALLS = 1000


class Clock:
    """A clock a test moves by hand; `now` is what the connector is given."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        step = timedelta(**delta)
        assert step >= timedelta(0), "the clock only moves forward"
        with self._lock:
            self._now += step
            return self._now


def signal(topic: str = "AI governance", **fields: Any) -> JsonObject:
    """A valid signal's JSON, dated `START` unless `fields` say otherwise."""
    data: JsonObject = {
        "source": "social",
        "topic": topic,
        "momentum": "rising",
        "confidence": 0.8,
        "authenticity": {"human_source_pct": 85.0},
        "streak_days": 5,
        "created_at": "2025-03-01T12:00:00Z",
    }
    data.update(fields)
    return data


def intent(intent_id: str, topic: str = "AI governance", **fields: Any) -> Record:
    return Record(id=intent_id, data=signal(topic, **fields))


def open_store(
    path: Path | str, clock: Clock | None = None, tenant: str = "acme", **config: Any
) -> Session:
    """A governed session on the store at `path` whose connector tells time by `clock`."""
    connector = LocalIntentConnector(clock=(clock or Clock()).now)
    return Session(
        connector,
        config={"path": str(path), **config},
        context=AuthContext(tenant=tenant, actor="tester"),
        governance=QUICK,
    )


def push(session: Session, *records: Record) -> None:
    result = session.push(PushPayload(records=records))
    assert result.rejected == ()
    assert list(result.accepted) == [record.id for record in records]


def ids(records: tuple[Record, ...] | list[Record]) -> list[str]:
    return [record.id for record in records]


def fetch_all(session: Session, query: FetchQuery, limit: int = 3) -> list[Record]:
    records: list[Record] = []
    cursor: str | None = None
    for _ in range(MAX_CALLS):
        page = session.fetch(query.model_copy(update={"limit": limit, "cursor": cursor}))
        assert len(page.records) <= limit
        records.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            return records
    raise AssertionError("paging never ended")


def sync_all(session: Session, state: SyncState) -> tuple[list[Record], SyncState]:
    changes: list[Record] = []
    for _ in range(MAX_CALLS):
        result = session.sync(state)
        changes.extend(result.changes)
        state = result.state
        if not result.has_more:
            return changes, state
    raise AssertionError("sync never ended")


def changes_of(records: list[Record]) -> list[tuple[str, bool]]:
    return [(record.id, record.deleted) for record in records]


def connector_of(session: Session) -> LocalIntentConnector:
    connector = session.connector
    assert isinstance(connector, LocalIntentConnector)
    return connector


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "intents.sqlite3"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def session(path: Path, clock: Clock) -> Iterator[Session]:
    with open_store(path, clock) as opened:
        yield opened


# -- push and fetch -----------------------------------------------------------------------------


def test_pushed_signals_come_back_ranked_as_the_shared_core_ranks_them(
    session: Session, clock: Clock
) -> None:
    pushed = [
        intent("social", region="EMEA"),
        intent("enterprise", momentum="steady", confidence=0.9, streak_days=12),
        intent("weak", confidence=0.1, created_at="2025-03-01T14:30:00+02:30"),
    ]
    push(session, *pushed)
    clock.advance(hours=5)
    page = session.fetch(FetchQuery())
    core = {r.id: Intent.from_json(r.id, r.data).to_record(now=clock.now()) for r in pushed}
    assert page.records == tuple(core[name] for name in ("social", "enterprise", "weak"))
    assert [record.data["intent_score"] for record in page.records] == [0.79, 0.727, 0.099]
    assert page.records[0].data["region"] == "EMEA"
    assert page.records[2].data["created_at"] == "2025-03-01T12:00:00Z"
    assert page.records[2].updated_at == START
    assert page.next_cursor is None


def random_signals(seed: int, count: int) -> list[Record]:
    """Signals of every kind: topics in several spellings, zero strengths, dates around START."""
    rng = random.Random(seed)
    topics = ["AI governance", "ai GOVERNANCE", "Pricing", "Straße", "STRASSE", "Cloud"]
    records = []
    for index in range(count):
        moment = START + timedelta(minutes=rng.randint(-5 * 24 * 60, 6 * 60))
        data = signal(
            rng.choice(topics),
            source=rng.choice(["social", "enterprise", "crm"]),
            momentum=rng.choice(["surging", "rising", "steady", "viral"]),
            confidence=rng.choice([0.0, 1.0, round(rng.random(), 3)]),
            authenticity={"human_source_pct": rng.choice([100, round(rng.random() * 100, 1)])},
            streak_days=rng.randint(0, 20),
            created_at=moment.astimezone(timezone(timedelta(hours=rng.randint(-9, 9)))).isoformat(),
        )
        if index % 7 == 0:
            data["campaign"] = {"name": f"c{index}", "weights": [1, 2.5]}
        records.append(Record(id=f"i{rng.randint(0, 10**6):07d}-{index}", data=data))
    return records


QUERIES: list[JsonObject] = [
    {},
    {"topic": "ai governance"},
    {"topic": "strasse"},
    {"source": "crm"},
    {"min_score": 0.3},
    {"min_score": 0},
    {"topic": "PRICING", "source": "social", "min_score": 0.05},
]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_filter_and_page_agrees_with_the_shared_core(
    path: Path, clock: Clock, seed: int
) -> None:
    pushed = random_signals(seed, 150)
    core = [Intent.from_json(record.id, record.data) for record in pushed]
    with open_store(path, clock) as session:
        push(session, *pushed)
        clock.advance(hours=2)
        for filters in QUERIES:
            for limit in (1, 7, 200):
                cursor: str | None = None
                for _ in range(MAX_CALLS):
                    query = FetchQuery(filters=filters, limit=limit, cursor=cursor)
                    expected = page_of(
                        core, parse_intent_query(query, max_limit=1000), now=clock.now()
                    )
                    assert session.fetch(query) == expected, (filters, limit)
                    cursor = expected.next_cursor
                    if cursor is None:
                        break
                    clock.advance(minutes=17)  # pages keep their order as scores decay


@pytest.mark.parametrize("seed", [4, 5])
def test_explanations_and_verifications_agree_with_the_shared_core(
    path: Path, clock: Clock, seed: int
) -> None:
    pushed = random_signals(seed, 120)
    core = [Intent.from_json(record.id, record.data) for record in pushed]
    with open_store(path, clock) as session:
        push(session, *pushed)
        clock.advance(hours=1)
        now = clock.now()
        for record in pushed[:10]:
            query = FetchQuery(filters={"id": record.id})
            explained = session.fetch(query)
            assert explained == page_of(core, parse_intent_query(query, max_limit=10), now=now)
            assert "explanation" in explained.records[0].data
        for topic in ["ai governance", "STRASSE", "Cloud", "nobody asked"]:
            for threshold in (None, 0.01, 0.5, 1.2):
                filters: JsonObject = {"verify": topic}
                if threshold is not None:
                    filters["threshold"] = threshold
                parsed = parse_intent_query(FetchQuery(filters=filters), max_limit=10)
                assert verify_intent(session, topic, threshold) == verification_from(
                    core, parsed, now
                )


def test_alignment_is_the_best_score_against_the_threshold(session: Session, clock: Clock) -> None:
    push(
        session,
        intent(
            "strong", momentum="surging", confidence=1.0, authenticity={"human_source_pct": 100}
        ),
        intent("weak", confidence=0.2),
        intent("other", topic="Pricing", confidence=0.1),
    )
    assert intent_aligned(session, "ai governance")  # 1.3 * 1.3 = 1.69
    verdict = verify_intent(session, "AI GOVERNANCE")
    assert verdict == Verification(
        topic="AI GOVERNANCE",
        allowed=True,
        reason="intent score 1.69 reaches the threshold 1.2",
        intent_score=1.69,
    )
    assert not intent_aligned(session, "Pricing")
    assert verify_intent(session, "unknown").reason == "no intent for this topic"
    clock.advance(hours=24)  # 1.69 / e < 1.2
    assert not intent_aligned(session, "ai governance")
    assert intent_aligned(session, "ai governance", threshold=0.6)


def test_intents_tied_for_the_lead_are_all_scored_for_a_verification(
    session: Session, clock: Clock
) -> None:
    """Tied keys (the same signal under two ids) and keys a rounding error apart: the
    verification's best score is the shared core's, whichever of them the index lists first."""
    pushed = [
        intent("tie-b", confidence=0.7),
        intent("tie-a", confidence=0.7),
        intent("close", confidence=0.7000000000001),
        intent("behind", confidence=0.69),
        intent("elsewhere", topic="Pricing", confidence=0.9),
    ]
    push(session, *pushed)
    core = [Intent.from_json(record.id, record.data) for record in pushed]
    clock.advance(minutes=95)
    for threshold in (None, 0.5, 0.7, 1):
        filters: JsonObject = {"verify": "ai GOVERNANCE"}
        if threshold is not None:
            filters["threshold"] = threshold
        parsed = parse_intent_query(FetchQuery(filters=filters), max_limit=10)
        expected = verification_from(core, parsed, clock.now())
        assert verify_intent(session, "ai GOVERNANCE", threshold) == expected
        (record,) = session.fetch(FetchQuery(filters=filters)).records
        assert record == expected.to_record()


def test_a_verify_query_out_of_the_ordinary_is_read_or_refused_as_parsing_says(
    session: Session,
) -> None:
    push(session, intent("a"))
    plain = session.fetch(FetchQuery(filters={"verify": "AI governance", "threshold": 0.5}))
    paged = session.fetch(
        FetchQuery(filters={"verify": "AI governance", "threshold": 0.5}, limit=3)
    )
    assert plain == paged
    assert plain.next_cursor is None
    with pytest.raises(InvalidRequest, match="finite number"):
        session.fetch(FetchQuery(filters={"verify": "AI governance", "threshold": True}))
    with pytest.raises(InvalidRequest, match="topic and a threshold only"):
        session.fetch(FetchQuery(filters={"verify": "AI governance", "source": "social"}))
    with pytest.raises(InvalidRequest, match="cursor"):
        session.fetch(FetchQuery(filters={"verify": "AI governance"}, cursor="not-ours"))


def test_text_sqlite_cannot_encode_in_a_filter_is_an_invalid_request(session: Session) -> None:
    push(session, intent("a"))
    with pytest.raises(InvalidRequest, match="not valid Unicode"):
        session.fetch(FetchQuery(filters={"topic": "half \ud800"}))
    with pytest.raises(InvalidRequest, match="not valid Unicode"):
        verify_intent(session, "half \ud800")
    assert intent_aligned(session, "AI governance", threshold=0.5)  # the session goes on


def test_pages_neither_repeat_nor_skip_while_another_session_writes(
    path: Path, clock: Clock
) -> None:
    original = random_signals(11, 60)
    with open_store(path, clock) as reader, open_store(path, clock) as writer:
        push(reader, *original)
        newcomers = [r.model_copy(update={"id": f"new-{r.id}"}) for r in random_signals(12, 40)]
        done = threading.Event()

        def write() -> None:
            try:
                for start in range(0, len(newcomers), 2):
                    push(writer, *newcomers[start : start + 2])
            finally:
                done.set()

        thread = threading.Thread(target=write)
        thread.start()
        try:
            seen = ids(fetch_all(reader, FetchQuery(), limit=4))
        finally:
            assert done.wait(60)
            thread.join(60)
    assert len(seen) == len(set(seen))
    assert {record.id for record in original} <= set(seen)


def test_an_id_is_explained_filtered_or_not_found(session: Session) -> None:
    push(session, intent("known"), intent("elsewhere", topic="Pricing"))
    (explained,) = session.fetch(FetchQuery(filters={"id": "known"})).records
    factors = explained.data["explanation"]
    assert isinstance(factors, list)
    assert [item["signal"] for item in factors if isinstance(item, dict)] == [
        "momentum",
        "confidence",
        "human_source_pct",
        "streak_bonus",
        "age_hours",
        "decay",
    ]
    assert session.fetch(FetchQuery(filters={"id": "known", "topic": "Pricing"})).records == ()
    with pytest.raises(NotFound, match="no intent 'missing'"):
        session.fetch(FetchQuery(filters={"id": "missing"}))


def test_min_score_keeps_a_score_that_rounds_up_to_it(session: Session, clock: Clock) -> None:
    # 0.5 * 1.1 * 0.85 * 1.3 = 0.60775: rounded 0.608, whatever the unrounded value.
    push(session, intent("edge", confidence=0.5), intent("below", confidence=0.49))
    assert ids(session.fetch(FetchQuery(filters={"min_score": 0.608})).records) == ["edge"]
    assert ids(session.fetch(FetchQuery(filters={"min_score": 0.6081})).records) == []
    clock.advance(hours=1)
    assert ids(session.fetch(FetchQuery(filters={"min_score": 0.608})).records) == []


def test_a_ranked_page_is_an_index_scan_that_stops_after_the_page(path: Path) -> None:
    with open_store(path) as session:
        push(session, *random_signals(9, 20))
    raw = sqlite3.connect(path)
    last = Intent.from_json("i", signal())
    for filters in QUERIES:
        fingerprint = parse_intent_query(FetchQuery(filters=filters), max_limit=10).fingerprint
        for cursor in (None, encode_intent_cursor(last, fingerprint)):
            query = parse_intent_query(
                FetchQuery(filters=filters, limit=5, cursor=cursor), max_limit=10
            )
            sql, params, _ = ranked_statement("acme", query, START)
            plan = " ".join(row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            index = "intents_topics" if "topic" in filters else "intents_ranked"
            assert f"USING INDEX {index}" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
    raw.close()


# -- what a push changes ------------------------------------------------------------------------


def test_the_same_signal_again_changes_nothing_and_a_changed_one_is_one_update(
    session: Session, clock: Clock
) -> None:
    push(session, intent("a", tags={"x": 1, "y": 2}), intent("b"))
    state = sync_all(session, SyncState())[1]
    assert state.bookmarks == {"seq": 2}
    clock.advance(minutes=5)
    # The same signal, spelled differently: keys in another order, another time zone.
    push(session, intent("a", tags={"y": 2, "x": 1}, created_at="2025-03-01T13:00:00+01:00"))
    assert sync_all(session, state)[0] == []
    push(session, intent("a", tags={"y": 2, "x": 1}, confidence=0.95))
    changes, state = sync_all(session, state)
    assert changes_of(changes) == [("a", False)]
    assert changes[0].data["confidence"] == 0.95
    assert state.bookmarks == {"seq": 4}  # the unchanged push's number was left unused


def test_a_fetched_intent_pushed_back_is_the_same_signal(session: Session, clock: Clock) -> None:
    push(session, intent("a"), intent("b", topic="Pricing"))
    state = sync_all(session, SyncState())[1]
    clock.advance(hours=2)
    fetched = session.fetch(FetchQuery()).records
    explained = session.fetch(FetchQuery(filters={"id": "a"})).records
    push(session, *fetched)
    push(session, *explained)
    assert sync_all(session, state)[0] == []
    (back,) = session.fetch(FetchQuery(filters={"id": "b"})).records
    assert back.data["intent_score"] == fetched[1].data["intent_score"]


def test_an_undated_signal_keeps_the_date_it_was_first_stored_with(
    session: Session, clock: Clock
) -> None:
    undated = signal()
    del undated["created_at"]
    push(session, Record(id="u", data=undated))
    state = sync_all(session, SyncState())[1]
    clock.advance(hours=3)
    push(session, Record(id="u", data=undated))  # a retried push moves nothing
    assert sync_all(session, state)[0] == []
    (stored,) = session.fetch(FetchQuery()).records
    assert stored.data["created_at"] == "2025-03-01T12:00:00Z"
    push(session, Record(id="u", data={**undated, "confidence": 0.5}))  # updated, same date
    (updated,) = session.fetch(FetchQuery()).records
    assert (updated.data["created_at"], updated.data["confidence"]) == ("2025-03-01T12:00:00Z", 0.5)
    push(session, Record(id="u", deleted=True))
    push(session, Record(id="u", data=undated))  # created anew: dated now
    (anew,) = session.fetch(FetchQuery()).records
    assert anew.data["created_at"] == "2025-03-01T15:00:00Z"


def test_bad_records_are_rejected_with_reasons_and_never_stop_the_good_ones(
    session: Session,
) -> None:
    missing_topic = signal()
    del missing_topic["topic"]
    result = session.push(
        PushPayload(
            records=(
                intent("good-1"),
                Record(id="nan", data=signal(confidence=float("nan"))),
                Record(id="range", data=signal(confidence=1.5)),
                Record(id="naive", data=signal(created_at="2025-03-01T12:00:00")),
                Record(id="topicless", data=missing_topic),
                Record(id="surrogate", data=signal(topic="half \ud800")),
                Record.model_construct(id="id \udc00", data=signal(), deleted=False),
                intent("good-2"),
                intent("good-1", confidence=0.1),
            )
        )
    )
    assert result.accepted == ("good-1", "good-2")
    reasons = {rejection.id: rejection.reason for rejection in result.rejected}
    assert list(reasons) == [
        "nan",
        "range",
        "naive",
        "topicless",
        "surrogate",
        "id \udc00",
        "good-1",
    ]
    assert reasons["nan"] == "invalid signal: numbers must be finite (no NaN or infinity)"
    assert reasons["range"].startswith("invalid signal: confidence:")
    assert reasons["naive"].startswith("invalid signal: created_at:")
    assert reasons["topicless"] == "invalid signal: topic: Field required"
    assert "lone surrogate" in reasons["surrogate"]
    assert "lone surrogate" in reasons["id \udc00"]
    assert reasons["good-1"] == "duplicate id in this payload: a push holds one change per intent"
    assert ids(session.fetch(FetchQuery()).records) == ["good-1", "good-2"]
    assert session.fetch(FetchQuery()).records[0].data["confidence"] == 0.8


@pytest.mark.parametrize(
    "data",
    [
        signal(),
        signal(tags=["é", "\u2028", {"z": 1, "a": [1.5, None, True]}], note='\x00 \\ "'),
        {"b": 1, "a": {"d": 2.0, "c": -0.0}, "e": 10**30},
    ],
)
def test_signals_are_stored_in_the_one_canonical_spelling(data: JsonObject) -> None:
    assert _encode_dict(data) == canonical_json(data)
    assert json.loads(_encode_dict(data)) == data


def test_the_canonical_spelling_refuses_numbers_json_cannot_spell() -> None:
    for number in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="JSON compliant"):
            _encode_dict({"a": {"b": [number]}})
        with pytest.raises(ValueError, match="JSON compliant"):
            canonical_json({"a": {"b": [number]}})


def test_stored_times_come_back_to_the_microsecond() -> None:
    for moment in (
        START,
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
        datetime(2025, 3, 1, 12, 0, 0, 123457, tzinfo=timezone(timedelta(hours=-7))),
    ):
        assert moment_of(micros(moment)) == moment


def test_a_date_years_ahead_is_kept_and_scored_as_a_number(session: Session) -> None:
    push(session, intent("ahead", created_at="2031-01-01T00:00:00Z"), intent("now"))
    page = session.fetch(FetchQuery())
    assert ids(page.records) == ["ahead", "now"]
    json.dumps([record.data for record in page.records], allow_nan=False)


_texts = st.one_of(st.text(max_size=8), st.sampled_from(["", "  ", "x" * 201, "Topic"]))
_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 150),
    st.booleans(),
    st.sampled_from(["0.5", None]),
)
_moments = st.one_of(
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))])).map(
        lambda moment: moment.isoformat()
    ),
    st.datetimes(timezones=st.just(UTC)).map(lambda moment: moment.isoformat()[:-6] + "Z"),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.sampled_from(
        [
            "2025-03-01T12:00:00.5Z",
            "2025-03-01T12:00:00.000000Z",
            "2025-03-01 12:00:00Z",
            "2025-03-01T24:00:00Z",
            "2025-03-01T12:00:00+23:59",
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "20250301T120000Z",
            1700000000,
        ]
    ),
)
_plainish = st.fixed_dictionaries(
    {
        "source": _texts,
        "topic": _texts,
        "momentum": st.one_of(_texts, st.sampled_from(["surging", "rising", "steady"])),
        "confidence": st.one_of(st.floats(0, 1), _numbers),
        "authenticity": st.one_of(
            st.fixed_dictionaries({"human_source_pct": st.one_of(st.floats(0, 100), _numbers)}),
            st.just({"human_source_pct": 50, "panel": "x"}),
            st.just({}),
            st.just([50]),
        ),
        "streak_days": st.one_of(st.integers(-2, 100_002), _numbers),
        "created_at": _moments,
    },
    optional={
        "extra": st.one_of(st.integers(), st.floats(), st.text(max_size=3)),
        "model_config": st.just({"nested": [1.5, {"deep": None}]}),
        "notes": st.lists(st.floats(), max_size=2),
    },
)


_offsets = st.sampled_from(["Z", "+00:00", "-00:00", "+05:30", "-11:00", "+14:00"])
_fractions = st.one_of(st.just(""), st.integers(0, 999_999).map(lambda n: f".{n:06d}"))
_rfc3339 = st.builds(
    lambda moment, fraction, offset: moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset,
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.one_of(_fractions, st.sampled_from([".5", ".123", ".000000"])),
    _offsets,
)
_plain = st.fixed_dictionaries(
    {
        "source": st.text(min_size=1, max_size=20),
        "topic": st.text(min_size=1, max_size=20),
        "momentum": st.one_of(
            st.sampled_from(["surging", "rising", "steady"]), st.text(max_size=5)
        ),
        "confidence": st.one_of(st.floats(0, 1), st.integers(0, 1)),
        "authenticity": st.fixed_dictionaries(
            {"human_source_pct": st.one_of(st.floats(0, 100), st.integers(0, 100))}
        ),
        "streak_days": st.integers(0, 100_000),
        "created_at": _rfc3339,
    },
    optional={
        "region": st.text(max_size=5),
        "weights": st.lists(st.one_of(st.floats(), st.integers()), max_size=3),
        "meta": st.dictionaries(st.text(max_size=3), st.one_of(st.none(), st.booleans())),
    },
)
"""Signals in the plain form, mostly valid: what the store reads without `parse_signal`."""


@settings(max_examples=600, deadline=None)
@given(st.one_of(_plain, _plainish))
def test_the_plain_reading_of_a_signal_is_exactly_parse_signals(data: dict[str, Any]) -> None:
    """Whichever path reads a record, the row (or the reason) is `parse_signal`'s."""
    assert row_of("r", data) == expected_row(data)


def expected_row(data: dict[str, Any]) -> tuple[object, ...] | str:
    """What the row of `data` must be, from `parse_signal` and the core's functions."""
    try:
        parsed = parse_signal(data)
        body = parsed.to_json()
    except InvalidRequest as error:
        return str(error)
    except (OverflowError, ValueError):
        return "invalid signal: created_at: the time cannot be expressed in UTC"
    text = canonical_json(body)
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        return (
            "invalid signal: a field holds characters that are not valid Unicode (a lone surrogate)"
        )
    return (
        "r",
        text,
        parsed.topic.casefold(),
        parsed.source,
        strength(parsed),
        rank_key(parsed),
        micros(parsed.created_at),
        None,
    )


def test_records_are_built_as_pydantic_would_build_them() -> None:
    data: JsonObject = {"topic": "x", "intent_score": 0.5}
    built = intent_record("r", data, START)
    assert built == Record(id="r", data=data, updated_at=START)
    assert built.model_dump() == Record(id="r", data=data, updated_at=START).model_dump()
    full = Record(id="r", data=data, deleted=False, updated_at=START)
    assert built.model_fields_set == full.model_fields_set
    assert tombstone_record("r", START) == Record(id="r", deleted=True, updated_at=START)
    assert FetchResult(records=(built,)).records == (built,)


# -- deletion and sync --------------------------------------------------------------------------


def test_tombstones_delete_and_a_later_push_creates_the_intent_anew(session: Session) -> None:
    push(session, intent("a"), intent("b"))
    state = sync_all(session, SyncState())[1]
    push(session, Record(id="a", deleted=True), Record(id="never-stored", deleted=True))
    assert ids(session.fetch(FetchQuery()).records) == ["b"]
    changes, state = sync_all(session, state)
    assert changes_of(changes) == [("a", True)]
    assert changes[0].data == {}
    assert verify_intent(session, "AI governance").intent_score is not None
    push(session, Record(id="b", deleted=True))
    assert verify_intent(session, "AI governance").reason == "no intent for this topic"
    push(session, intent("a"))
    changes, _ = sync_all(session, state)
    assert changes_of(changes) == [("b", True), ("a", False)]


def test_sync_pages_in_change_order_and_each_tenant_counts_its_own(path: Path) -> None:
    with (
        open_store(path, tenant="north", sync_page_size=2) as north,
        open_store(path, tenant="south") as south,
    ):
        push(north, *(intent(f"n{i}") for i in range(5)))
        push(south, intent("s0"))
        first = north.sync(SyncState())
        assert (ids(first.changes), first.has_more) == (["n0", "n1"], True)
        changes, state = sync_all(north, first.state)
        assert ids(changes) == ["n2", "n3", "n4"]
        assert state.bookmarks == {"seq": 5}
        assert south.sync(SyncState()).state.bookmarks == {"seq": 1}
        push(north, intent("n1", confidence=0.3), intent("n9"))
        assert ids(sync_all(north, state)[0]) == ["n1", "n9"]
        assert SyncState.from_json(state.to_json()) == state


@pytest.mark.parametrize(
    "state",
    [
        SyncState(cursor="damaged"),
        SyncState(cursor="e30"),  # {}
        SyncState(cursor="eyJ2IjoxfQ"),  # {"v":1}
        SyncState(cursor=(encode_sync_state(3).cursor or "")[:-2]),
    ],
)
def test_damaged_sync_states_are_invalid_requests(session: Session, state: SyncState) -> None:
    with pytest.raises(InvalidRequest, match="sync state"):
        session.sync(state)


def test_tenants_sharing_a_file_never_meet(path: Path) -> None:
    with (
        open_store(path, tenant="north") as north,
        open_store(path, tenant="south") as south,
    ):
        push(north, intent("same", momentum="surging"), intent("north-only"))
        push(south, intent("same", topic="Pricing"))
        assert ids(south.fetch(FetchQuery()).records) == ["same"]
        assert south.fetch(FetchQuery()).records[0].data["topic"] == "Pricing"
        assert verify_intent(south, "AI governance").reason == "no intent for this topic"
        with pytest.raises(NotFound):
            south.fetch(FetchQuery(filters={"id": "north-only"}))
        assert ids(sync_all(south, SyncState())[0]) == ["same"]
        push(south, Record(id="same", deleted=True))
        assert ids(north.fetch(FetchQuery()).records) == ["same", "north-only"]


def test_an_auth_context_without_a_tenant_is_refused() -> None:
    # Sessions refuse such a context before the connector is called; the connector does too.
    with pytest.raises(AuthError, match="names no tenant"):
        LocalIntentConnector().auth(AuthContext(actor="nobody"))


# -- retention ----------------------------------------------------------------------------------


def test_pushes_expire_intents_past_the_retention_and_sync_reports_it(
    path: Path, clock: Clock
) -> None:
    with open_store(path, clock, retention_days=2, compaction_interval_seconds=0) as session:
        push(session, intent("old", created_at="2025-02-26T12:00:00Z"), intent("fresh"))
        # The push compacted after writing: "old" was three days old.
        assert ids(session.fetch(FetchQuery()).records) == ["fresh"]
        changes, state = sync_all(session, SyncState())
        assert changes_of(changes) == [("fresh", False), ("old", True)]
        clock.advance(days=2, minutes=1)
        push(session, intent("later", created_at="2025-03-03T12:00:00Z"))
        assert ids(session.fetch(FetchQuery()).records) == ["later"]
        # The push is written first, then the compaction it triggers.
        assert changes_of(sync_all(session, state)[0]) == [("later", False), ("fresh", True)]


def test_old_tombstones_are_removed_and_old_sync_states_need_a_full_sync(
    path: Path, clock: Clock
) -> None:
    with open_store(path, clock, retention_days=1) as session:
        push(session, intent("a"), intent("b"), intent("c"))
        before = sync_all(session, SyncState())[1]
        push(session, Record(id="a", deleted=True))
        seen = sync_all(session, before)[1]
        clock.advance(hours=12)
        assert connector_of(session).compact() == 0  # nothing a day old yet
        clock.advance(hours=13)
        # a, b and c are 25 hours old: b and c expire; a's tombstone is 25 hours old: removed.
        assert connector_of(session).compact() == 2
        with pytest.raises(ResyncRequired) as raised:
            session.sync(before)
        assert str(raised.value) == (
            "the sync state (after change 3) is older than the store's compaction horizon "
            "(change 4): deletions it has not seen were removed for good; start a full sync "
            "from an empty state (SyncState())"
        )
        assert changes_of(sync_all(session, seen)[0]) == [("b", True), ("c", True)]
        full, state = sync_all(session, SyncState())
        assert changes_of(full) == [("b", True), ("c", True)]
        assert sync_all(session, state)[0] == []
    # The horizon is kept in the file.
    with open_store(path, clock, retention_days=1) as reopened, pytest.raises(ResyncRequired):
        reopened.sync(before)


def test_scheduled_compaction_runs_at_most_once_per_interval(path: Path, clock: Clock) -> None:
    with open_store(path, clock, retention_days=1, compaction_interval_seconds=3600) as session:
        push(session, intent("a", created_at="2025-03-01T11:30:00Z"))  # compacts: nothing old
        clock.advance(days=1, minutes=40)
        push(session, intent("b", created_at="2025-03-02T12:00:00Z"))  # due: "a" expires
        assert ids(session.fetch(FetchQuery()).records) == ["b"]
        push(session, intent("c", created_at="2025-03-01T00:00:00Z"))  # not due: "c" stays
        assert ids(session.fetch(FetchQuery()).records) == ["b", "c"]
        clock.advance(minutes=61)
        push(session, intent("d", created_at="2025-03-02T13:00:00Z"))  # due again
        assert ids(session.fetch(FetchQuery()).records) == ["d", "b"]


def test_without_a_retention_nothing_expires_unless_asked(path: Path, clock: Clock) -> None:
    with open_store(path, clock, retention_days=None, compaction_interval_seconds=0) as session:
        push(session, intent("ancient", created_at="2020-01-01T00:00:00Z"))
        clock.advance(days=400)
        push(session, intent("fresh", created_at=clock.now().isoformat()))
        assert ids(session.fetch(FetchQuery()).records) == ["fresh", "ancient"]
        with pytest.raises(InvalidRequest, match="retention_days"):
            connector_of(session).compact()
        assert connector_of(session).compact(timedelta(days=30)) == 1
        assert connector_of(session).compact(datetime(2019, 1, 1, tzinfo=UTC)) == 0
        assert ids(session.fetch(FetchQuery()).records) == ["fresh"]


@pytest.mark.parametrize(
    ("older_than", "message"),
    [
        (timedelta(days=-1), "must not be negative"),
        (datetime(2025, 1, 1), "no timezone"),
        ("yesterday", "takes a timezone-aware datetime or a timedelta"),
        (timedelta(days=999_999), "before year 1"),
    ],
)
def test_compact_refuses_times_it_cannot_read(
    session: Session, older_than: Any, message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        connector_of(session).compact(older_than)


# -- the file -----------------------------------------------------------------------------------


def test_the_file_runs_in_wal_mode_at_the_current_schema_version(path: Path) -> None:
    with open_store(path) as session:
        push(session, intent("a"))
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("SELECT tenant, id, deleted FROM intents").fetchall() == [
            ("acme", "a", 0)
        ]


def test_without_a_path_the_store_lives_in_the_user_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    expected = tmp_path / "data" / "integrations" / "intents.sqlite3"
    assert default_path() == expected
    with registry.open(
        "intent.local",
        config={},
        context=AuthContext(tenant="acme", actor="tester"),
        governance=QUICK,
    ) as session:
        push(session, intent("a"))
    with sqlite3.connect(expected) as raw:
        assert raw.execute("SELECT id FROM intents").fetchall() == [("a",)]


def test_in_memory_databases_are_private_to_each_session() -> None:
    with open_store(":memory:") as first, open_store(":memory:") as second:
        push(first, intent("a"))
        assert first.fetch(FetchQuery()).records[0].id == "a"
        assert second.fetch(FetchQuery()).records == ()


def test_migrating_twice_changes_nothing_and_keeps_the_intents(path: Path) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    assert migrate(raw, ()) == 0
    assert migrate(raw) == SCHEMA_VERSION
    raw.close()
    with open_store(path) as session:
        push(session, intent("a"))
    with open_store(path) as again:
        assert ids(again.fetch(FetchQuery()).records) == ["a"]


def test_a_file_from_a_newer_release_is_refused_and_left_untouched(path: Path) -> None:
    with open_store(path) as session:
        push(session, intent("a"))
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ConnectorError, match="newer than this release") as raised:
        open_store(path).open()
    assert type(raised.value) is ConnectorError
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_file_that_is_not_a_database_is_a_clear_connector_error(path: Path) -> None:
    path.write_bytes(b"these are not the bytes of a SQLite database\n" * 200)
    with pytest.raises(ConnectorError, match="not a SQLite database"):
        open_store(path).open()


@pytest.mark.parametrize("stored", ["", "not json", '{"topic": '])
def test_a_signal_changed_behind_the_stores_back_is_a_clear_connector_error(
    path: Path, stored: str
) -> None:
    with open_store(path) as session:
        push(session, intent("a"), intent("b", confidence=0.1))
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE intents SET signal = ? WHERE id = 'b'", (stored,))
        raw.close()
        with pytest.raises(ConnectorError, match="not JSON") as raised:
            session.fetch(FetchQuery())
        assert type(raised.value) is ConnectorError
        assert ids(session.fetch(FetchQuery(limit=1)).records) == ["a"]


def test_a_path_that_cannot_be_opened_is_a_failed_connection(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed, match="cannot be opened"):
        open_store(tmp_path).open()  # a directory
    with pytest.raises(ConnectionFailed):
        open_store(tmp_path / "missing" / "intents.sqlite3").open()


def test_a_writer_blocked_past_the_busy_timeout_gets_a_transient_error(path: Path) -> None:
    with open_store(path, busy_timeout_seconds=0.05) as session:
        push(session, intent("a"))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(TransientError, match="busy"):
                session.push(PushPayload(records=(intent("b"),)))
            assert ids(session.fetch(FetchQuery()).records) == ["a"]  # readers go on (WAL)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        push(session, intent("b", confidence=0.1))
        assert ids(session.fetch(FetchQuery()).records) == ["a", "b"]


@pytest.mark.parametrize(
    "settings_",
    [
        {"path": ""},
        {"path": "   "},
        {"path": "file:intents.db?mode=ro"},
        {"path": "bad\x00name"},
        {"busy_timeout_seconds": -1},
        {"retention_days": 0},
        {"retention_days": float("inf")},
        {"compaction_interval_seconds": -1},
        {"max_page_size": 0},
        {"unknown": 1},
    ],
)
def test_bad_configs_are_config_errors(settings_: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        LocalIntentConfig.from_mapping(settings_)


def test_a_file_is_a_local_destination_an_untrusted_config_cannot_use(tmp_path: Path) -> None:
    assert LocalIntentConfig(path=":memory:").destinations() == ()
    (default,) = LocalIntentConfig().destinations()
    assert default.local
    (named,) = LocalIntentConfig(path=str(tmp_path / "x.sqlite3")).destinations()
    assert (named.local, named.host) == (True, str(tmp_path / "x.sqlite3"))
    untrusted = Session(
        LocalIntentConnector(),
        config=UntrustedConfig({"path": str(tmp_path / "x.sqlite3")}),
        context=AuthContext(tenant="acme", actor="tester"),
        governance=QUICK,
    )
    with pytest.raises(EgressDenied, match="local path"):
        untrusted.open()
    assert not (tmp_path / "x.sqlite3").exists()
    in_memory = Session(
        LocalIntentConnector(),
        config=UntrustedConfig({"path": ":memory:"}),
        context=AuthContext(tenant="acme", actor="tester"),
        governance=QUICK,
    )
    with in_memory:
        push(in_memory, intent("a"))


# -- several processes --------------------------------------------------------------------------

WRITER = """
import pathlib, sys, time
from integrations.base import AuthContext, PushPayload, Record, registry

path, writer, batches, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
go = pathlib.Path(path + ".go")
for _ in range(6000):
    if go.exists():
        break
    time.sleep(0.01)
context = AuthContext(tenant="shared", actor=writer)
with registry.open("intent.local", config={"path": path}, context=context) as session:
    for batch in range(batches):
        records = tuple(
            Record(
                id=f"{writer}-{batch}-{index}",
                data={"source": writer, "topic": f"batch {batch}", "momentum": "rising",
                      "confidence": 0.5, "authenticity": {"human_source_pct": 90.0},
                      "streak_days": index % 9},
            )
            for index in range(size)
        )
        result = session.push(PushPayload(records=records))
        assert not result.rejected, result.rejected
print("done", flush=True)
"""


def test_processes_writing_one_fresh_file_at_once_keep_every_batch(path: Path) -> None:
    batches, size = 20, 100
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(batches), str(size)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("left", "right", "middle")
    ]
    for process in writers:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    Path(f"{path}.go").touch()
    for process in writers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert out.strip() == "done"
    with open_store(path, tenant="shared") as session:
        changes, state = sync_all(session, SyncState())
        assert len(changes) == 3 * batches * size
        assert state.bookmarks == {"seq": 3 * batches * size}
        assert len(fetch_all(session, FetchQuery(filters={"source": "left"}), limit=500)) == (
            batches * size
        )
    with sqlite3.connect(path) as raw:
        seqs = [row[0] for row in raw.execute("SELECT seq FROM intents ORDER BY seq")]
        assert seqs == list(range(1, 3 * batches * size + 1))
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_threads_opening_a_new_file_together_all_get_the_store(tmp_path: Path) -> None:
    # Switching a file to WAL needs it to itself, and SQLite answers "database is locked" at
    # once, without its busy handler, while another connection holds it.
    from integrations.adapters.intent_adapters.local._backend import open_local

    def open_after(barrier: threading.Barrier, path: str) -> None:
        barrier.wait()
        open_local(path, busy_timeout=10).close()

    for attempt in range(20):
        path = str(tmp_path / f"together-{attempt}.sqlite3")
        barrier = threading.Barrier(4)
        with ThreadPoolExecutor(4) as pool:
            opened = [pool.submit(open_after, barrier, path) for _ in range(4)]
            for future in opened:
                future.result(timeout=60)  # raises what the thread met
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal", f"attempt {attempt}"
