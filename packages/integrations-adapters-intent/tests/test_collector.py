"""The collector against real sources: loopback HTTP servers, files, and sessions of connectors.

Every source runs at once in a governed session with its own deadline; sources that fail,
hang (a blocking HTTP read of a server that holds its answer back) or answer garbage are
reported and cost the others nothing. Pushes go through governed sessions too: to the
Intent Engine served on 127.0.0.1, and to a connector written here that records what it
receives and how many pushes ran at once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from integrations.adapters.intent_adapters import (
    CollectReport,
    SourceStatus,
    collect,
    collect_async,
    parse_signal,
)
from integrations.adapters.intent_adapters.signals import SignalSourceConfig, signal_id
from integrations.adapters.intent_adapters.testing import IntentEngineServer, SignalSourceServer
from integrations.adapters.intent_adapters.testing._signal_sources import write_signal_file
from integrations.base import (
    NO_RETRY,
    AuthContext,
    AuthToken,
    BaseConnector,
    Capability,
    CapabilityAllowlist,
    Connection,
    ConnectorConfig,
    FetchQuery,
    Governance,
    InvalidRequest,
    MemoryAuditSink,
    PolicySet,
    PushPayload,
    PushResult,
    Registry,
    Rejection,
    RevokeResult,
    Secret,
    TenantAndActorRequired,
    TransientError,
    UntrustedConfig,
)

pytestmark = pytest.mark.timeout(60)

CONTEXT = AuthContext(tenant="acme", actor="collector")
FILE_SOURCE = "integrations.adapters.intent_adapters.testing:JsonFileSignalSource"
STATIC_SOURCE = "integrations.adapters.intent_adapters.testing:StaticSignalSource"


def signal(topic: str, source: str = "test", **changes: Any) -> dict[str, Any]:
    """A valid, dated signal."""
    data: dict[str, Any] = {
        "source": source,
        "topic": topic,
        "momentum": "surging",
        "confidence": 0.9,
        "authenticity": {"human_source_pct": 90},
        "streak_days": 3,
        "created_at": "2025-03-01T12:00:00Z",
    }
    return {**data, **changes}


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def governance(audit: MemoryAuditSink) -> Governance:
    return Governance(audit=audit, retry=NO_RETRY)


@pytest.fixture
def servers() -> Iterator[list[SignalSourceServer]]:
    """Three servers: two signals after 0.2 s, one after 0.3 s, nothing after 5 s."""
    with (
        SignalSourceServer([signal("a1", "fast"), signal("a2", "fast")], delay=0.2) as fast,
        SignalSourceServer([signal("b1", "slower")], delay=0.3) as slower,
        SignalSourceServer([signal("c1", "hung")], delay=5) as hung,
    ):
        yield [fast, slower, hung]


def topics(report: CollectReport) -> list[str]:
    return [item.signal.topic for item in report.signals]


def statuses(report: CollectReport) -> dict[str, SourceStatus]:
    return {item.source: item.status for item in report.sources}


# -- concurrency and deadlines ----------------------------------------------------------------


def test_sources_run_at_once_and_one_past_its_deadline_costs_only_its_own_signals(
    servers: list[SignalSourceServer], governance: Governance
) -> None:
    fast, slower, hung = servers
    sources = {"fast": fast.source(), "slower": slower.source(), "hung": hung.source()}
    began = time.perf_counter()
    report = collect(sources, context=CONTEXT, deadline_seconds=1.0, governance=governance)
    took = time.perf_counter() - began
    assert 1.0 <= took < 2.0  # the deadline, not the hung source's 5 s, nor 0.2 + 0.3 + 1
    assert topics(report) == ["a1", "a2", "b1"]
    assert statuses(report) == {
        "fast": SourceStatus.OK,
        "slower": SourceStatus.OK,
        "hung": SourceStatus.TIMED_OUT,
    }
    hung_report = report.sources[2]
    assert 1.0 <= hung_report.elapsed_seconds < 1.5
    assert hung_report.error_type == "TimeoutError"
    assert "deadline of 1 s" in (hung_report.error or "")
    assert [item.source for item in report.failed] == ["hung"]


def test_a_blocking_source_that_hangs_never_holds_the_result(
    servers: list[SignalSourceServer], governance: Governance, audit: MemoryAuditSink
) -> None:
    fast, _, hung = servers
    sources = [fast.blocking_source(), hung.blocking_source(timeout=30)]
    began = time.perf_counter()
    report = collect(sources, context=CONTEXT, deadline_seconds=0.6, governance=governance)
    assert time.perf_counter() - began < 1.5
    assert [item.status for item in report.sources] == [SourceStatus.OK, SourceStatus.TIMED_OUT]
    assert topics(report) == ["a1", "a2"]
    hung_session = {e.correlation_id for e in audit.events if e.operation == "fetch"} - {
        e.correlation_id
        for e in audit.events
        if e.operation == "fetch" and e.phase == "finished" and e.outcome == "ok"
    }
    (correlation,) = hung_session
    steps = [
        (e.operation, e.outcome, e.error_type)
        for e in audit.events
        if e.correlation_id == correlation and e.phase == "finished"
    ]
    assert steps == [
        ("auth", "ok", None),
        ("connect", "ok", None),
        ("fetch", "error", "CancelledError"),
        ("revoke", "ok", None),
    ]


def test_an_async_source_past_its_deadline_is_cancelled(governance: Governance) -> None:
    cancelled = threading.Event()

    class Stuck:
        async def fetch_signals(self) -> list[dict[str, Any]]:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return []

    report = collect([Stuck()], context=CONTEXT, deadline_seconds=0.3, governance=governance)
    assert report.sources[0].status is SourceStatus.TIMED_OUT
    assert cancelled.is_set()


def test_fifty_loopback_sources_take_about_as_long_as_one(governance: Governance) -> None:
    with SignalSourceServer([signal("one", "single")], delay=0.1) as single:
        began = time.perf_counter()
        collect([single.source()], context=CONTEXT, governance=governance)
        alone = time.perf_counter() - began
        servers = [SignalSourceServer([signal(f"s{index}")], delay=0.1) for index in range(50)]
        try:
            for server in servers:
                server.start()
            began = time.perf_counter()
            report = collect([s.source() for s in servers], context=CONTEXT, governance=governance)
            together = time.perf_counter() - began
        finally:
            for server in servers:
                server.stop()
    assert len(report.signals) == 50
    assert not report.failed
    assert together < max(alone, 0.1) * 4  # sequentially it would be 50 times


# -- failures -----------------------------------------------------------------------------------


def test_a_failing_source_and_a_garbage_answer_are_reported_with_kind_and_time(
    servers: list[SignalSourceServer], governance: Governance
) -> None:
    fast, slower, _ = servers
    slower.fail_next(count=5, status=503)
    with SignalSourceServer() as garbage:
        garbage.answer_garbage()
        sources = {"fast": fast.source(), "failing": slower.source(), "garbage": garbage.source()}
        report = collect(sources, context=CONTEXT, deadline_seconds=5, governance=governance)
    assert topics(report) == ["a1", "a2"]
    by_name = {item.source: item for item in report.sources}
    assert by_name["failing"].status is SourceStatus.FAILED
    assert by_name["failing"].error_type == "TransientError"
    assert "503" in (by_name["failing"].error or "")
    assert by_name["garbage"].status is SourceStatus.INVALID_ANSWER
    assert by_name["garbage"].error_type == "InvalidSourceAnswer"
    assert all(item.elapsed_seconds < 5 for item in report.sources)


def test_a_transient_failure_is_retried_by_the_session(
    servers: list[SignalSourceServer], audit: MemoryAuditSink
) -> None:
    fast = servers[0]
    fast.fail_next(status=503)
    report = collect([fast.source()], context=CONTEXT, governance=Governance(audit=audit))
    assert topics(report) == ["a1", "a2"]
    attempts = [e.attempt for e in audit.events if e.operation == "fetch" and e.phase == "finished"]
    assert attempts == [1, 2]


def test_a_source_that_raises_is_reported_failed(governance: Governance) -> None:
    class Broken:
        def fetch_signals(self) -> list[dict[str, Any]]:
            raise RuntimeError("the upstream API changed")

    report = collect([Broken()], context=CONTEXT, governance=governance)
    (item,) = report.sources
    assert item.status is SourceStatus.FAILED
    assert item.error_type == "ConnectorError"
    assert "RuntimeError: the upstream API changed" in (item.error or "")


# -- validation, duplicates, order --------------------------------------------------------------


def test_signals_are_validated_deduplicated_and_kept_in_source_order(
    governance: Governance,
) -> None:
    shared = signal("shared", "a")
    first = [signal("a1", "a"), {**signal("bad", "a"), "confidence": 7}, shared]
    second = [shared, signal("b1", "b"), {"topic": "no fields"}]
    with (
        SignalSourceServer(first, delay=0.3) as late,  # answers last, comes first
        SignalSourceServer(second) as early,
    ):
        report = collect(
            {"first": late.source(), "second": early.source()},
            context=CONTEXT,
            governance=governance,
        )
    assert topics(report) == ["a1", "shared", "b1"]
    assert [item.source for item in report.signals] == ["first", "first", "second"]
    assert report.signals[1].id == signal_id(parse_signal(shared))
    assert [(r.source, r.index) for r in report.rejections] == [("first", 1), ("second", 2)]
    assert "confidence" in report.rejections[0].reason
    counts = [(s.received, s.collected, s.rejected, s.duplicates) for s in report.sources]
    assert counts == [(3, 2, 1, 0), (3, 1, 1, 1)]
    assert report.duplicates == 1


def test_sources_get_unique_names(servers: list[SignalSourceServer], signal_file: Path) -> None:
    fast = servers[0]
    config = SignalSourceConfig(source=FILE_SOURCE, options={"path": str(signal_file)})
    report = collect([fast.source(), fast.source(), config], context=CONTEXT, deadline_seconds=5)
    assert [item.source for item in report.sources] == [
        "HttpSignalSource",
        "HttpSignalSource#2",
        FILE_SOURCE,
    ]


def test_what_is_not_a_source_is_refused_before_anything_runs(
    servers: list[SignalSourceServer],
) -> None:
    with pytest.raises(InvalidRequest, match=r"sources\[1\] is a int"):
        collect([servers[0].source(), 42], context=CONTEXT)  # type: ignore[list-item]
    with pytest.raises(InvalidRequest, match=r"sources\['x'\] is a str"):
        collect({"x": "module:Class"}, context=CONTEXT)  # type: ignore[dict-item]
    assert servers[0].count() == 0
    with pytest.raises(InvalidRequest, match="deadline_seconds"):
        collect([], context=CONTEXT, deadline_seconds=0)


# -- governance -----------------------------------------------------------------------------------


def test_each_source_is_an_audited_intent_signals_session(
    servers: list[SignalSourceServer], governance: Governance, audit: MemoryAuditSink
) -> None:
    fast, slower, _ = servers
    collect([fast.source(), slower.source()], context=CONTEXT, governance=governance)
    sessions: dict[str, list[str]] = {}
    for event in audit.events:
        assert event.connector.name == "intent.signals"
        assert (event.tenant, event.actor) == ("acme", "collector")
        if event.phase == "finished":
            sessions.setdefault(event.correlation_id, []).append(event.operation)
    assert list(sessions.values()) == [["auth", "connect", "fetch", "revoke"]] * 2
    assert {e.connector.connector_version for e in audit.events} == {"0.1.0"}
    assert {e.connector.distribution for e in audit.events} == {"integrations-adapters-intent"}


def test_policies_decide_for_every_source(
    servers: list[SignalSourceServer], audit: MemoryAuditSink
) -> None:
    policies = PolicySet(
        [TenantAndActorRequired(), CapabilityAllowlist({"acme": ["intent.signals:fetch"]})]
    )
    governance = Governance(policies=policies, audit=audit)
    sources = [servers[0].source(), servers[1].source()]
    allowed = collect(sources, context=CONTEXT, governance=governance)
    other = AuthContext(tenant="globex", actor="collector")
    refused = collect(sources, context=other, governance=governance)
    anonymous = collect(sources, context=AuthContext(), governance=governance)
    assert topics(allowed) == ["a1", "a2", "b1"]
    for report in (refused, anonymous):
        assert report.signals == ()
        assert {item.status for item in report.sources} == {SourceStatus.REFUSED}
        assert {item.error_type for item in report.sources} == {"PolicyError"}
    denied = [e for e in audit.events if e.outcome == "denied"]
    assert {(e.tenant, e.operation) for e in denied} == {("globex", "fetch"), (None, "auth")}


# -- configs and sessions as sources ------------------------------------------------------------


@pytest.fixture
def signal_file(tmp_path: Path) -> Path:
    path = tmp_path / "signals.json"
    write_signal_file(path, [signal("from file", "file")])
    return path


def test_configs_name_sources_and_the_allowlist_still_applies(
    signal_file: Path, governance: Governance
) -> None:
    options = {"path": str(signal_file)}
    static = {"signals": [signal("from a tenant", "tenant")]}
    report = collect(
        {
            "model": SignalSourceConfig(source=FILE_SOURCE, options=options),
            "mapping": {"source": FILE_SOURCE, "options": options},
            "tenant file": UntrustedConfig({"source": FILE_SOURCE, "options": options}),
            "tenant static": UntrustedConfig({"source": STATIC_SOURCE, "options": static}),
            "refused": {"source": "os:system"},
        },
        context=CONTEXT,
        governance=governance,
    )
    assert topics(report) == ["from file", "from a tenant"]
    assert [(s.source, s.status, s.duplicates) for s in report.sources] == [
        ("model", SourceStatus.OK, 0),
        ("mapping", SourceStatus.OK, 1),
        ("tenant file", SourceStatus.REFUSED, 0),
        ("tenant static", SourceStatus.OK, 0),
        ("refused", SourceStatus.REFUSED, 0),
    ]
    # A tenant may not point a source at the platform's files: the class is not tenant-safe.
    assert report.sources[2].error_type == "PolicyError"
    assert "not marked safe for configs from tenants" in (report.sources[2].error or "")
    assert report.sources[4].error_type == "ConfigError"
    assert "allowlist" in (report.sources[4].error or "")


def test_open_sessions_are_read_as_they_are(signal_file: Path, governance: Governance) -> None:
    registry = Registry(governance=governance)
    config = {"source": FILE_SOURCE, "options": {"path": str(signal_file)}, "max_page_size": 1}
    write_signal_file(signal_file, [signal("one"), signal("two"), signal("three")])
    with registry.open("intent.signals", config=config, context=CONTEXT) as session:
        report = collect([session], context=CONTEXT)
        assert session.state == "connected"  # the caller's session stays open
    assert topics(report) == ["one", "two", "three"]  # every page was followed
    assert report.sources[0].source == "SignalSourceConnector"

    async def through_an_async_session() -> CollectReport:
        async with registry.open_async("intent.signals", config=config, context=CONTEXT) as s:
            return await collect_async([s], context=CONTEXT)

    assert topics(asyncio.run(through_an_async_session())) == ["one", "two", "three"]


def test_a_session_of_an_intent_store_gives_its_signals_without_derived_fields(
    governance: Governance,
) -> None:
    with IntentEngineServer() as engine:
        stored = [signal("engine one"), signal("engine two", confidence=0.5)]
        for data in stored:
            engine.store(data)
        registry = Registry(governance=governance)
        with registry.open("intent.engine", config={"url": engine.url}, context=CONTEXT) as s:
            report = collect({"engine": s}, context=CONTEXT)
    assert topics(report) == ["engine one", "engine two"]
    assert "intent_score" not in report.signals[0].signal.extra
    assert report.signals[0].id == signal_id(parse_signal(stored[0]))


def test_an_async_session_needs_collect_async(signal_file: Path) -> None:
    async def try_sync() -> None:
        config = {"source": FILE_SOURCE, "options": {"path": str(signal_file)}}
        async with Registry().open_async("intent.signals", config=config, context=CONTEXT) as s:
            with pytest.raises(InvalidRequest, match="collect_async"):
                collect([s], context=CONTEXT)

    asyncio.run(try_sync())


def test_collect_works_from_a_thread_that_runs_a_loop_and_collect_async_on_it(
    servers: list[SignalSourceServer], governance: Governance
) -> None:
    fast = servers[0]

    async def both() -> tuple[CollectReport, CollectReport]:
        loop_bound = asyncio.Event()  # an async source using what belongs to this loop

        class OnThisLoop:
            async def fetch_signals(self) -> list[dict[str, Any]]:
                loop_bound.set()
                await loop_bound.wait()
                return [signal("on the caller's loop")]

        inside = collect([fast.source()], context=CONTEXT, governance=governance)
        on_loop = await collect_async([OnThisLoop()], context=CONTEXT, governance=governance)
        return inside, on_loop

    inside, on_loop = asyncio.run(both())
    assert topics(inside) == ["a1", "a2"]
    assert topics(on_loop) == ["on the caller's loop"]


# -- pushing ----------------------------------------------------------------------------------


class Received:
    """What the recording connector was sent, and how many pushes ran at once at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[list[str]] = []
        self.running = 0
        self.most = 0


class RecordingConnector(BaseConnector[ConnectorConfig]):
    """A push-only connector keeping what it is sent; a batch holding a signal on the topic
    "fail batch" fails, a signal on the topic "refuse" is rejected."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.PUSH})
    received: ClassVar[Received]

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("recording"))

    def connect(self, config: ConnectorConfig) -> Connection:
        return Connection(connection_id="recording")

    def push(self, payload: PushPayload) -> PushResult:
        received = self.received
        with received.lock:
            received.running += 1
            received.most = max(received.most, received.running)
        try:
            time.sleep(0.05)
            topics = [str(record.data["topic"]) for record in payload.records]
            if "fail batch" in topics:
                raise TransientError("the store is busy")
            with received.lock:
                received.batches.append([record.id for record in payload.records])
            refused = [r for r in payload.records if r.data["topic"] == "refuse"]
            return PushResult(
                accepted=tuple(r.id for r in payload.records if r not in refused),
                rejected=tuple(Rejection(id=r.id, reason="refused by the store") for r in refused),
            )
        finally:
            with received.lock:
                received.running -= 1

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)


@pytest.fixture
def received(governance: Governance) -> tuple[Registry, Received]:
    registry = Registry(distributions=False, environment=False, governance=governance)
    log = Received()
    connector = type("Recording", (RecordingConnector,), {"received": log})
    registry.register("recording", connector)
    return registry, log


def many(count: int, *special: str) -> list[dict[str, Any]]:
    return [signal(f"topic {index}") for index in range(count)] + [signal(s) for s in special]


def test_signals_are_pushed_in_batches_with_bounded_concurrency(
    received: tuple[Registry, Received],
) -> None:
    registry, log = received
    with SignalSourceServer(many(23, "refuse")) as server:
        report = collect(
            [server.source()],
            context=CONTEXT,
            registry=registry,
            push_to="recording",
            batch_size=3,
            push_concurrency=2,
        )
    assert report.push is not None
    assert report.push.batches == 8
    assert sorted(len(batch) for batch in log.batches) == [3] * 8
    assert log.most == 2
    ids = [item.id for item in report.signals]
    assert list(report.push.accepted) == ids[:-1]  # batch order, whatever finished first
    assert [(r.id, r.reason) for r in report.push.rejected] == [(ids[-1], "refused by the store")]


def test_a_failed_batch_rejects_its_signals_and_no_others(
    received: tuple[Registry, Received],
) -> None:
    registry, _ = received
    answered = [signal(topic) for topic in ("t0", "t1", "fail batch", "t3", "t4", "t5")]
    with SignalSourceServer(answered) as server:
        report = collect(
            [server.source()], context=CONTEXT, registry=registry, push_to="recording", batch_size=2
        )
    assert report.push is not None
    ids = [item.id for item in report.signals]
    assert list(report.push.accepted) == [ids[0], ids[1], ids[4], ids[5]]
    assert [r.id for r in report.push.rejected] == ids[2:4]
    assert report.push.rejected[0].reason == "push failed: TransientError: the store is busy"


def test_a_target_whose_sessions_are_refused_rejects_every_signal(
    received: tuple[Registry, Received], audit: MemoryAuditSink
) -> None:
    registry, log = received
    policies = PolicySet([CapabilityAllowlist({"*": ["intent.signals:fetch"]})])
    governance = Governance(policies=policies, audit=audit)
    with SignalSourceServer(many(3)) as server:
        report = collect(
            [server.source()],
            context=CONTEXT,
            governance=governance,
            registry=registry,
            push_to="recording",
            batch_size=2,
        )
    assert report.push is not None
    assert report.push.accepted == ()
    assert len(report.push.rejected) == 3
    assert "PolicyError" in report.push.rejected[0].reason
    assert log.batches == []


def test_signals_pushed_to_the_intent_engine_are_stored_there(governance: Governance) -> None:
    registry = Registry(governance=governance)
    with IntentEngineServer() as engine, SignalSourceServer(many(5)) as server:
        report = collect(
            [server.source()],
            context=CONTEXT,
            registry=registry,
            push_to="intent.engine",
            push_config={"url": engine.url},
            batch_size=2,
        )
        stored = engine.intents()
    assert report.push is not None
    assert report.push.rejected == ()
    assert sorted(report.push.accepted) == sorted(str(intent["id"]) for intent in stored)
    assert sorted(str(intent["topic"]) for intent in stored) == sorted(topics(report))


def test_a_session_handed_over_as_target_takes_the_batches_one_by_one(
    received: tuple[Registry, Received],
) -> None:
    registry, log = received
    with (
        SignalSourceServer(many(6)) as server,
        registry.open("recording", config={}, context=CONTEXT) as target,
    ):
        report = collect(
            [server.source()], context=CONTEXT, push_to=target, batch_size=2, push_concurrency=8
        )
    assert report.push is not None
    assert len(report.push.accepted) == 6
    assert log.most == 1


def test_nothing_collected_pushes_nothing(received: tuple[Registry, Received]) -> None:
    registry, log = received
    sources: Sequence[Any] = []
    report = collect(sources, context=CONTEXT, registry=registry, push_to="recording")
    assert report.push is not None
    assert (report.push.batches, report.push.accepted, log.batches) == (0, (), [])


def test_signals_pushed_to_intent_local_twice_are_stored_once_and_read_back(
    tmp_path: Path, governance: Governance
) -> None:
    registry = Registry(governance=governance)
    store = {"path": str(tmp_path / "intents.sqlite3")}
    now = datetime.now(UTC).isoformat()  # within the store's retention
    with SignalSourceServer([signal(f"local {i}", created_at=now) for i in range(5)]) as server:
        for _ in range(2):  # ids are content hashes and intent.local's push is idempotent by id
            report = collect(
                [server.source()],
                context=CONTEXT,
                registry=registry,
                push_to="intent.local",
                push_config=store,
                batch_size=2,
            )
            assert report.push is not None
            assert list(report.push.accepted) == [item.id for item in report.signals]
    with registry.open("intent.local", config=store, context=CONTEXT) as session:
        back = collect({"local": session}, context=CONTEXT)
        stored = session.fetch(FetchQuery(limit=100)).records
    assert sorted(record.id for record in stored) == sorted(item.id for item in report.signals)
    assert sorted(topics(back)) == sorted(topics(report))
    assert {item.id for item in back.signals} == {item.id for item in report.signals}


def test_a_source_that_cancels_itself_is_reported_failed(
    servers: list[SignalSourceServer], governance: Governance
) -> None:
    class GivesUp:
        async def fetch_signals(self) -> list[dict[str, Any]]:
            raise asyncio.CancelledError

    report = collect([GivesUp(), servers[0].source()], context=CONTEXT, governance=governance)
    assert [item.status for item in report.sources] == [SourceStatus.FAILED, SourceStatus.OK]
    assert report.sources[0].error_type == "CancelledError"
    assert topics(report) == ["a1", "a2"]
