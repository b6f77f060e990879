"""``intent.engine`` against a real Intent Engine API served on 127.0.0.1.

Sessions are opened through the registry, as platform code opens them, so the manifest's
declarations (push not idempotent) are what the retry machinery sees; tests that let time
pass open a session on a connector whose clock is the server's. Failures are real: the
server answers 503 or 422, drops the connection, or holds an answer back until the client's
timeout fires.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpcore
import pytest

from integrations.adapters.intent_adapters import (
    Verification,
    intent_aligned,
    score_data,
    verify_intent,
)
from integrations.adapters.intent_adapters.engine import (
    DEFAULT_URL,
    IntentEngineConfig,
    IntentEngineConnector,
)
from integrations.adapters.intent_adapters.testing import IntentEngineServer
from integrations.base import (
    NO_RETRY,
    AuthContext,
    AuthError,
    ConfigError,
    ConnectionFailed,
    ConnectorError,
    Destination,
    EgressDenied,
    EgressPolicy,
    EgressRule,
    FetchQuery,
    Governance,
    InvalidRequest,
    LifecycleError,
    MemoryAuditSink,
    NotFound,
    NotSupported,
    PushPayload,
    PushResult,
    Record,
    Registry,
    RetryPolicy,
    Session,
    SyncState,
    TransientError,
    UntrustedConfig,
    UntrustedPolicy,
    format_utc,
)

pytestmark = pytest.mark.timeout(60)

NAME = "intent.engine"
ALICE = AuthContext(tenant="acme", actor="alice")
FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02, jitter=0, deadline=5)
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when told: shared by a server and a connector."""

    def __init__(self, moment: datetime = START) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


@pytest.fixture
def engine() -> Iterator[IntentEngineServer]:
    with IntentEngineServer() as server:
        yield server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def timed_engine(clock: ManualClock) -> Iterator[IntentEngineServer]:
    """An engine whose time is `clock`."""
    with IntentEngineServer(clock=clock) as server:
        yield server


def governance(retry: RetryPolicy = FAST) -> Governance:
    return Governance(audit=MemoryAuditSink(), retry=retry, breaker=None)


def open_session(
    registry: Registry, server: IntentEngineServer, *, retry: RetryPolicy = FAST, **config: Any
) -> Session:
    return registry.open(
        NAME,
        config={"url": server.url, "timeout_seconds": 5, **config},
        context=ALICE,
        governance=governance(retry),
    )


def timed_session(server: IntentEngineServer, clock: ManualClock, **config: Any) -> Session:
    """A session on a connector that computes scores at `clock`, as the server does."""
    return Session(
        IntentEngineConnector(clock=clock),
        config={"url": server.url, "timeout_seconds": 5, **config},
        context=ALICE,
        governance=governance(),
    )


@pytest.fixture
def session(registry: Registry, engine: IntentEngineServer) -> Iterator[Session]:
    with open_session(registry, engine) as opened:
        yield opened


def signal(
    topic: str = "AI governance",
    *,
    source: str = "social",
    momentum: str = "rising",
    confidence: float = 0.8,
    human: float = 85,
    streak: int = 5,
    created_at: datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": source,
        "topic": topic,
        "momentum": momentum,
        "confidence": confidence,
        "authenticity": {"human_source_pct": human},
        "streak_days": streak,
        **extra,
    }
    if created_at is not None:
        data["created_at"] = format_utc(created_at)
    return data


def records(*signals: dict[str, Any]) -> tuple[Record, ...]:
    return tuple(Record(id=f"r{index}", data=data) for index, data in enumerate(signals))


def push(session: Session, *signals: dict[str, Any]) -> list[str]:
    result = session.push(PushPayload(records=records(*signals)))
    assert result.rejected == ()
    assert len(result.accepted) == len(signals)
    return list(result.accepted)


def fetch_ids(session: Session, **filters: Any) -> list[str]:
    result = session.fetch(FetchQuery(filters=filters))
    assert result.next_cursor is None
    return [record.id for record in result.records]


def reasons(result: PushResult) -> dict[str, str]:
    return {rejection.id: rejection.reason for rejection in result.rejected}


# -- push: one /inject-intent per signal, the engine's ids ---------------------------------


def test_push_accepts_the_engine_ids_in_payload_order(
    session: Session, engine: IntentEngineServer
) -> None:
    accepted = push(session, *(signal(n=index) for index in range(12)))
    stored = engine.intents()
    assert engine.count("/inject-intent") == 12
    assert sorted(accepted) == sorted(intent["id"] for intent in stored)
    by_id = {intent["id"]: intent for intent in stored}
    assert [by_id[intent_id]["n"] for intent_id in accepted] == list(range(12))


def test_the_engine_stores_the_signal_as_validated(
    session: Session, engine: IntentEngineServer
) -> None:
    observed = datetime(2025, 2, 1, 8, 30, tzinfo=UTC)
    (intent_id,) = push(session, signal(created_at=observed, campaign={"name": "spring"}))
    (stored,) = engine.intents()
    assert stored == {
        **signal(created_at=observed, campaign={"name": "spring"}),
        "authenticity": {"human_source_pct": 85.0},
        "confidence": 0.8,
        "id": intent_id,
    }


def test_push_rejects_what_is_not_a_signal_without_sending_it(
    session: Session, engine: IntentEngineServer
) -> None:
    result = session.push(
        PushPayload(
            records=(
                Record(id="ok", data=signal()),
                Record(id="nan", data=signal(confidence=float("nan"))),
                Record(id="range", data=signal(human=120)),
                Record(id="naive", data={**signal(), "created_at": "2025-01-01T00:00:00"}),
                Record(id="no-topic", data={k: v for k, v in signal().items() if k != "topic"}),
                Record(id="gone", deleted=True),
                Record(id="ok", data=signal(topic="again")),
            )
        )
    )
    assert len(result.accepted) == 1
    why = reasons(result)
    assert "finite" in why["nan"]
    assert "authenticity.human_source_pct" in why["range"]
    assert "created_at" in why["naive"]
    assert "topic" in why["no-topic"]
    assert "cannot delete" in why["gone"]
    assert "repeated" in why["ok"]
    assert engine.count("/inject-intent") == 1


def test_the_engine_fields_of_a_fetched_record_are_not_sent_back(
    session: Session, engine: IntentEngineServer
) -> None:
    push(session, signal())
    (fetched,) = session.fetch(FetchQuery()).records
    push(session, fetched.data)
    newest = engine.intents()[-1]
    assert "intent_score" not in newest
    assert newest["id"] != fetched.id


def test_a_signal_the_engine_refuses_is_rejected_with_its_detail(
    registry: Registry, engine: IntentEngineServer
) -> None:
    detail = [{"loc": ["body", "confidence"], "msg": "too confident", "type": "value_error"}]
    engine.delay_next(0, path="/inject-intent")  # the first injection answers normally
    engine.fail_next(status=422, path="/inject-intent", body={"detail": detail})
    engine.fail_next(status=422, path="/inject-intent", body={"detail": "topic is banned"})
    with open_session(registry, engine, push_concurrency=1) as serial:
        result = serial.push(PushPayload(records=records(*(signal(n=i) for i in range(4)))))
    assert len(result.accepted) == 2
    assert reasons(result) == {
        "r1": "the Intent Engine refused it: confidence: too confident",
        "r2": "the Intent Engine refused it: topic is banned",
    }
    assert [intent["n"] for intent in engine.intents()] == [0, 3]


def test_a_push_with_an_idempotency_key_is_refused(
    session: Session, engine: IntentEngineServer
) -> None:
    payload = PushPayload(records=records(signal()), idempotency_key="once")
    with pytest.raises(NotSupported, match="idempotency"):
        session.push(payload)
    assert engine.count("/inject-intent") == 0


def test_a_failed_push_is_never_retried(session: Session, engine: IntentEngineServer) -> None:
    engine.fail_next(status=503, retry_after=0, path="/inject-intent")
    with pytest.raises(TransientError, match="HTTP 503"):
        session.push(PushPayload(records=records(signal())))
    assert engine.count("/inject-intent") == 1  # the session's retry policy allows 3 attempts
    assert engine.intents() == []


def test_a_push_failing_midway_accepts_what_was_injected(
    registry: Registry, engine: IntentEngineServer
) -> None:
    engine.delay_next(0, path="/inject-intent")  # the first injection answers normally
    engine.fail_next(status=503, path="/inject-intent")
    with open_session(registry, engine, push_concurrency=1) as serial:
        result = serial.push(PushPayload(records=records(*(signal(n=i) for i in range(4)))))
    assert result.accepted == (engine.intents()[0]["id"],)
    why = reasons(result)
    assert why["r1"].startswith("injection failed (TransientError: HTTP 503")
    assert why["r2"] == why["r3"] == "not sent: the injection of 'r1' failed"
    assert engine.count("/inject-intent") == 2


def test_a_concurrent_push_failing_midway_stops_and_accounts_for_every_signal(
    registry: Registry, engine: IntentEngineServer
) -> None:
    engine.latency = 0.01  # requests overlap
    engine.delay_next(0, 5, path="/inject-intent")  # five injections answer normally
    engine.drop_next(path="/inject-intent")  # then the connection of one is dropped
    with open_session(registry, engine, push_concurrency=4) as concurrent:
        result = concurrent.push(PushPayload(records=records(*(signal(n=i) for i in range(40)))))
    stored = {intent["id"]: intent["n"] for intent in engine.intents()}
    assert set(result.accepted) == set(stored)
    assert [stored[intent_id] for intent_id in result.accepted] == sorted(stored.values())
    why = reasons(result)
    failed = [rid for rid, reason in why.items() if reason.startswith("injection failed")]
    assert len(failed) == 1
    assert "TransientError" in why[failed[0]]
    assert len(result.accepted) + len(why) == 40
    assert all(reason.startswith(("injection failed", "not sent")) for reason in why.values())
    assert engine.count("/inject-intent") < 40  # no new request once one failed


def test_a_push_that_fails_entirely_raises(registry: Registry, engine: IntentEngineServer) -> None:
    engine.fail_next(3, status=503, path="/inject-intent")
    payload = PushPayload(records=records(signal(), signal(), signal()))
    serial = open_session(registry, engine, push_concurrency=3)
    with serial as concurrent, pytest.raises(TransientError):
        concurrent.push(payload)
    assert engine.intents() == []


def test_pushes_run_concurrently_up_to_the_configured_bound(
    registry: Registry, engine: IntentEngineServer
) -> None:
    engine.latency = 0.1
    with open_session(registry, engine, push_concurrency=8) as concurrent:
        started = time.monotonic()
        push(concurrent, *(signal(n=i) for i in range(16)))
        parallel = time.monotonic() - started
    with open_session(registry, engine, push_concurrency=2) as bounded:
        started = time.monotonic()
        push(bounded, *(signal(n=i) for i in range(4)))
        narrow = time.monotonic() - started
    assert parallel < 1.0  # one after another: 16 x 0.1 s
    assert narrow >= 0.2  # two at a time: two rounds of 0.1 s


# -- fetch: the ranked list, paged by the time-free key ------------------------------------


def test_fetch_ranks_and_filters_as_the_engine_scores(
    timed_engine: IntentEngineServer, clock: ManualClock
) -> None:
    earlier = START - timedelta(hours=5)
    with timed_session(timed_engine, clock) as session:
        push(
            session,
            signal("AI governance", momentum="surging", confidence=0.9, created_at=START),
            signal("AI Governance", source="tickets", momentum="steady", created_at=START),
            signal("Quantum", momentum="rising", confidence=1.0, human=100, created_at=earlier),
            signal("Quantum", source="tickets", confidence=0.3, created_at=START),
        )
        page = session.fetch(FetchQuery())
        topic = fetch_ids(session, topic="ai GOVERNANCE")
        source = fetch_ids(session, source="tickets")
        strong = fetch_ids(session, min_score=1.0)
    served = timed_engine.ranked()
    assert [(r.id, r.data["intent_score"]) for r in page.records] == [
        (item["id"], item["intent_score"]) for item in served
    ]
    by_topic = {item["id"]: item["topic"] for item in served}
    assert sorted(by_topic[i] for i in topic) == ["AI Governance", "AI governance"]
    assert len(source) == 2
    assert all(item["intent_score"] >= 1.0 for item in served if item["id"] in strong)
    assert len(strong) == sum(1 for item in served if item["intent_score"] >= 1.0)
    first = page.records[0]
    assert first.updated_at is not None
    assert first.data["created_at"] == format_utc(first.updated_at)


def test_pages_neither_repeat_nor_skip_while_intents_arrive_and_time_passes(
    timed_engine: IntentEngineServer, clock: ManualClock
) -> None:
    originals = [
        timed_engine.store(
            signal(
                f"topic {index % 3}",
                momentum=("surging", "rising", "steady", "viral")[index % 4],
                confidence=0.3 + (index * 7 % 10) / 15,
                streak=index % 9,
                created_at=START - timedelta(hours=index * 5 % 17),
            )
        )
        for index in range(23)
    ]
    seen: list[str] = []
    with timed_session(timed_engine, clock) as session:
        cursor: str | None = None
        for page_number in range(20):
            page = session.fetch(FetchQuery(limit=3, cursor=cursor))
            seen.extend(record.id for record in page.records)
            scores = [float(str(record.data["intent_score"])) for record in page.records]
            assert scores == sorted(scores, reverse=True)
            cursor = page.next_cursor
            if cursor is None:
                break
            clock.advance(hours=7)  # every score decays: the engine's own order holds
            timed_engine.store(signal("newcomer", confidence=1.0, human=100, created_at=clock()))
            timed_engine.store(signal("laggard", confidence=0.01, created_at=START))
            assert page_number < 19
    assert len(seen) == len(set(seen))
    assert set(originals) <= set(seen)
    final = {item["id"]: item["intent_score"] for item in timed_engine.ranked()}
    in_order = [final[intent_id] for intent_id in seen]  # scored at one moment: ranked
    assert in_order == sorted(in_order, reverse=True)


def test_a_page_is_capped_by_max_page_size(registry: Registry, engine: IntentEngineServer) -> None:
    with open_session(registry, engine, max_page_size=2) as capped:
        push(capped, signal(), signal(), signal())
        page = capped.fetch(FetchQuery(limit=100))
    assert len(page.records) == 2
    assert page.next_cursor is not None


def test_a_cursor_belongs_to_its_query(session: Session) -> None:
    push(session, signal(), signal(), signal())
    cursor = session.fetch(FetchQuery(filters={"topic": "AI governance"}, limit=1)).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidRequest, match="another query"):
        session.fetch(FetchQuery(filters={"source": "social"}, limit=1, cursor=cursor))
    with pytest.raises(InvalidRequest, match="not one this connector made"):
        session.fetch(FetchQuery(cursor="not a cursor"))


def test_ranked_items_that_are_not_signals_are_skipped_and_counted(
    session: Session, engine: IntentEngineServer, caplog: pytest.LogCaptureFixture
) -> None:
    (good,) = push(session, signal())
    engine.store({"topic": "written by another client"})
    engine.store({**signal(), "confidence": 7})
    with caplog.at_level(logging.WARNING, logger="integrations.intent.engine"):
        ids = [record.id for record in session.fetch(FetchQuery()).records]
    assert ids == [good]
    assert "skipped 2 of 3 ranked intents" in caplog.text


# -- one intent by id: /why-this and its 200 "not found" -----------------------------------


def test_fetch_by_id_carries_the_engine_explanation(
    timed_engine: IntentEngineServer, clock: ManualClock
) -> None:
    with timed_session(timed_engine, clock) as session:
        target, _ = push(session, signal(created_at=START - timedelta(hours=3)), signal())
        (record,) = session.fetch(FetchQuery(filters={"id": target})).records
        assert session.fetch(FetchQuery(filters={"id": target, "topic": "other"})).records == ()
    assert record.id == target
    assert record.data["topic"] == "AI governance"
    explanation = record.data["explanation"]
    assert isinstance(explanation, list)
    factors = {f["signal"]: f["value"] for f in explanation if isinstance(f, dict)}
    assert len(factors) == len(explanation) == 6
    assert factors["age_hours"] == 3.0
    assert factors["momentum"] == 1.1
    stored = next(intent for intent in timed_engine.intents() if intent["id"] == target)
    assert record.data["intent_score"] == score_data(stored, now=clock())
    assert timed_engine.count("/why-this") == 2


def test_an_unknown_id_is_not_found_never_a_record(
    session: Session, engine: IntentEngineServer
) -> None:
    push(session, signal())
    with pytest.raises(NotFound, match="intent not found"):
        session.fetch(FetchQuery(filters={"id": "00000000-0000-4000-8000-000000000000"}))
    assert engine.count("/why-this") == 1
    assert engine.count("/ranked/intents") == 0


# -- verification and the alignment check --------------------------------------------------


def test_verify_asks_the_engine(session: Session, engine: IntentEngineServer) -> None:
    push(session, signal(momentum="surging", confidence=1.0, human=100, streak=10))
    push(session, signal("weak topic", confidence=0.2))
    strong = verify_intent(session, "ai governance")
    weak = verify_intent(session, "weak topic")
    absent = verify_intent(session, "nobody cares")
    assert strong.allowed is True
    assert strong.intent_score is not None
    assert strong.intent_score >= 1.2
    assert (weak.allowed, absent.allowed, absent.intent_score) == (False, False, None)
    assert absent == Verification(
        topic="nobody cares", allowed=False, reason="no intent for this topic"
    )
    assert intent_aligned(session, "AI governance") is True
    assert engine.count("/verify-intent") == 4
    assert engine.count("/ranked/intents") == 0


def test_verify_with_a_threshold_is_computed_from_the_ranked_list(
    session: Session, engine: IntentEngineServer
) -> None:
    push(session, signal(confidence=0.5))
    lenient = verify_intent(session, "AI governance", threshold=0.1)
    strict = verify_intent(session, "AI governance", threshold=1.2)
    assert (lenient.allowed, strict.allowed) == (True, False)
    assert "threshold 0.1" in lenient.reason
    assert engine.count("/verify-intent") == 0
    assert engine.count("/ranked/intents") == 2


# -- failures, timeouts, connecting --------------------------------------------------------


def test_a_failed_fetch_is_retried_by_the_session(
    session: Session, engine: IntentEngineServer
) -> None:
    push(session, signal())
    engine.fail_next(2, status=503, retry_after=0, path="/ranked/intents")
    assert len(session.fetch(FetchQuery()).records) == 1
    assert engine.count("/ranked/intents") == 3


def test_a_slow_answer_times_out_as_transient(
    registry: Registry, engine: IntentEngineServer
) -> None:
    with open_session(registry, engine, retry=NO_RETRY, timeout_seconds=0.05) as hasty:
        engine.delay_next(0.5, path="/ranked/intents")
        with pytest.raises(TransientError, match="timed out"):
            hasty.fetch(FetchQuery())
        engine.delay_next(0.5, path="/inject-intent")
        with pytest.raises(TransientError, match="timed out"):
            hasty.push(PushPayload(records=records(signal())))


def test_an_answer_that_is_not_the_api_json_is_a_connector_error(
    session: Session, engine: IntentEngineServer
) -> None:
    engine.fail_next(status=200, path="/ranked/intents", body={"intents": []})
    with pytest.raises(ConnectorError, match="without a JSON array") as raised:
        session.fetch(FetchQuery())
    assert type(raised.value) is ConnectorError


def test_an_unreachable_engine_fails_to_connect(registry: Registry) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = registry.open(
        NAME, config={"url": f"http://127.0.0.1:{port}", "timeout_seconds": 2}, context=ALICE
    )
    with pytest.raises(ConnectionFailed, match="cannot be reached"), session:
        pass


def test_an_unhealthy_engine_fails_to_connect(engine: IntentEngineServer) -> None:
    engine.fail_next(status=503, path="/health")
    with pytest.raises(ConnectionFailed):
        IntentEngineConnector().connect(IntentEngineConfig(url=engine.url))


def test_sync_is_not_supported(session: Session) -> None:
    with pytest.raises(NotSupported):
        session.sync(SyncState())


def test_the_api_key_is_sent_as_a_bearer_token(registry: Registry) -> None:
    with IntentEngineServer(api_key="s3cret") as guarded:
        with open_session(registry, guarded, api_key="s3cret") as allowed:
            push(allowed, signal())
            assert len(allowed.fetch(FetchQuery()).records) == 1
        with pytest.raises(AuthError, match="HTTP 401"), open_session(registry, guarded):
            pass


def test_revoke_closes_the_client(engine: IntentEngineServer) -> None:
    connector = IntentEngineConnector()
    token = connector.auth(ALICE)
    connector.connect(IntentEngineConfig(url=engine.url))
    other = IntentEngineConnector().auth(ALICE)
    assert connector.revoke(other).revoked is False
    assert connector.revoke(token).revoked is True
    with pytest.raises(LifecycleError, match="auth"):
        connector.fetch(FetchQuery())


def test_operations_need_auth_and_connect() -> None:
    connector = IntentEngineConnector()
    with pytest.raises(LifecycleError, match="auth"):
        connector.fetch(FetchQuery())
    connector.auth(AuthContext())  # the engine has no tenants: any context will do
    with pytest.raises(LifecycleError, match="connect"):
        connector.push(PushPayload(records=()))
    with pytest.raises(ConfigError):
        connector.connect(object())  # type: ignore[arg-type]  # the wrong config on purpose


# -- configs from tenants ------------------------------------------------------------------


def untrusted_governance(*rules: EgressRule) -> Governance:
    policy = UntrustedPolicy(egress=EgressPolicy(rules=rules))
    return Governance(audit=MemoryAuditSink(), retry=NO_RETRY, untrusted=policy)


def test_an_untrusted_config_may_not_reach_loopback(
    registry: Registry, engine: IntentEngineServer
) -> None:
    config = UntrustedConfig({"url": engine.url, "timeout_seconds": 2}, origin="tenant form")
    session = registry.open(NAME, config=config, context=ALICE, governance=untrusted_governance())
    with pytest.raises(EgressDenied), session:
        pass
    assert engine.count() == 0


class ScriptedResolver:
    """The n-th lookup of a name gets its n-th answer (the last one repeats)."""

    def __init__(self, answers: dict[str, list[tuple[str, ...]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def resolve(self, host: str, port: int) -> tuple[str, ...]:
        script = self.answers[host]
        answer = script[min(self.asked.count(host), len(script) - 1)]
        self.asked.append(host)
        return answer


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("[::1]", "loopback"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.1.10", "private"),
    ],
)
def test_untrusted_configs_may_not_reach_internal_addresses(
    registry: Registry, engine: IntentEngineServer, host: str, kind: str
) -> None:
    # The rule opens the engine's port for public addresses: the address alone is refused.
    governed = untrusted_governance(EgressRule(ports=(engine.port,)))
    governed = dataclasses.replace(
        governed,
        untrusted=dataclasses.replace(
            governed.untrusted, resolver=ScriptedResolver({"localhost": [("127.0.0.1", "::1")]})
        ),
    )
    config = UntrustedConfig({"url": f"http://{host}:{engine.port}", "timeout_seconds": 2})
    session = registry.open(NAME, config=config, context=ALICE, governance=governed)
    with pytest.raises(EgressDenied, match=kind), session:
        pass
    assert engine.count() == 0
    sink = governed.audit
    assert isinstance(sink, MemoryAuditSink)
    assert [e.operation for e in sink.events if e.outcome == "denied"] == ["connect"]


def test_a_name_that_rebinds_to_loopback_is_connected_only_at_its_checked_address(
    registry: Registry, engine: IntentEngineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dialled: list[str] = []
    real_connect = httpcore.SyncBackend.connect_tcp

    def connect_tcp(self: httpcore.SyncBackend, host: str, port: int, *args: Any) -> Any:
        dialled.append(host)
        if host not in ("127.0.0.1", "::1"):  # nothing leaves the machine
            raise httpcore.ConnectError(f"{host} is not reachable from the test")
        return real_connect(self, host, port, *args)

    monkeypatch.setattr(httpcore.SyncBackend, "connect_tcp", connect_tcp)
    resolver = ScriptedResolver({"engine.tenant.test": [("1.2.3.4",), ("127.0.0.1",)]})
    governed = untrusted_governance(EgressRule(ports=(engine.port,)))
    governed = dataclasses.replace(
        governed, untrusted=dataclasses.replace(governed.untrusted, resolver=resolver)
    )
    config = UntrustedConfig({"url": f"http://engine.tenant.test:{engine.port}"})
    session = registry.open(NAME, config=config, context=ALICE, governance=governed)
    with pytest.raises(ConnectionFailed), session:
        pass
    assert resolver.asked == ["engine.tenant.test"]  # one lookup, pinned
    assert dialled
    assert set(dialled) == {"1.2.3.4"}
    assert engine.count() == 0


def test_an_egress_rule_lets_an_untrusted_config_reach_its_engine(
    registry: Registry, engine: IntentEngineServer
) -> None:
    allowed = EgressRule(
        connectors=(NAME,), tenants=("acme",), networks=("127.0.0.0/8",), ports=(engine.port,)
    )
    config = UntrustedConfig({"url": engine.url, "timeout_seconds": 2}, origin="tenant form")
    governed = untrusted_governance(allowed)
    with registry.open(NAME, config=config, context=ALICE, governance=governed) as session:
        connector = session.connector
        assert isinstance(connector, IntentEngineConnector)
        push(session, signal(), signal())
        assert len(session.fetch(FetchQuery()).records) == 2
    other = AuthContext(tenant="globex", actor="bob")
    with (
        pytest.raises(EgressDenied),
        registry.open(NAME, config=config, context=other, governance=governed),
    ):
        pass
    assert engine.count("/inject-intent") == 2


# -- the config ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1",
        "http://",
        "http://user:pass@127.0.0.1:8000",
        "http://127.0.0.1:8000/?token=x",
        "http://127.0.0.1:port",
    ],
)
def test_the_url_must_be_a_plain_http_url(url: str) -> None:
    with pytest.raises(ConfigError, match="url"):
        IntentEngineConfig.from_mapping({"url": url})


@pytest.mark.parametrize("concurrency", [0, 21])
def test_push_concurrency_is_bounded(concurrency: int) -> None:
    with pytest.raises(ConfigError, match="push_concurrency"):
        IntentEngineConfig.from_mapping({"push_concurrency": concurrency})


def test_the_config_defaults_masks_the_key_and_declares_its_destination() -> None:
    config = IntentEngineConfig.from_mapping({"api_key": "s3cret"})
    assert config.url == DEFAULT_URL == "http://127.0.0.1:8000"
    assert config.push_concurrency == 8
    assert "s3cret" not in repr(config)
    assert "s3cret" not in config.model_dump_json()
    assert config.destinations() == (Destination.from_url(DEFAULT_URL),)
