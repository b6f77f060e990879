"""``intent.signals``: signal sources as fetch-only connectors, read through governed sessions.

Sources are real: a JSON file read at each fetch, an HTTP server on 127.0.0.1 read over real
sockets, and source objects written here. Sessions are opened through a registry, as
platform code opens them; a source class named in a config is checked against the module
allowlist before anything is imported, which a module that leaves a mark when imported shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from integrations.adapters.intent_adapters import Signal, parse_signal
from integrations.adapters.intent_adapters.signals import (
    AsyncSignalSource,
    AsyncSignalSourceConnector,
    InvalidSourceAnswer,
    SignalSource,
    SignalSourceConfig,
    SignalSourceConnector,
    signal_id,
)
from integrations.adapters.intent_adapters.testing import SignalSourceServer
from integrations.adapters.intent_adapters.testing._signal_sources import (
    BlockingHttpSignalSource,
    HttpSignalSource,
    write_signal_file,
)
from integrations.base import (
    NO_RETRY,
    AsyncSession,
    AuthContext,
    ConfigError,
    ConnectionFailed,
    ConnectorError,
    FetchQuery,
    Governance,
    InvalidRequest,
    LifecycleError,
    MemoryAuditSink,
    NotFound,
    NotSupported,
    PolicyError,
    PushPayload,
    RateLimited,
    Registry,
    Session,
    TransientError,
    UntrustedConfig,
)
from integrations.base import registry as registry_module

pytestmark = pytest.mark.timeout(60)

CONTEXT = AuthContext(tenant="acme", actor="alice")
FILE_SOURCE = "integrations.adapters.intent_adapters.testing._signal_sources:JsonFileSignalSource"
STATIC_SOURCE = "integrations.adapters.intent_adapters.testing:StaticSignalSource"
HTTP_SOURCE = "integrations.adapters.intent_adapters.testing._signal_sources:HttpSignalSource"
DATED = "2025-03-01T12:00:00Z"
MARKED_MODULE = "intent_marked_source"


def signal(topic: str = "AI governance", source: str = "social", **changes: Any) -> dict[str, Any]:
    """A valid signal as a source would answer it, dated unless `created_at=None`."""
    data: dict[str, Any] = {
        "source": source,
        "topic": topic,
        "momentum": "rising",
        "confidence": 0.8,
        "authenticity": {"human_source_pct": 85},
        "streak_days": 5,
        "created_at": DATED,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


class ListSource:
    """A source answering what it is given; each call answers the next answer, the last repeats."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.calls = 0

    def fetch_signals(self) -> Any:
        self.calls += 1
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def registry(audit: MemoryAuditSink) -> Registry:
    """A registry of the installed distributions whose sessions audit into `audit`."""
    return Registry(governance=Governance(audit=audit, retry=NO_RETRY))


@pytest.fixture
def signal_file(tmp_path: Path) -> Path:
    path = tmp_path / "signals.json"
    write_signal_file(path, [])
    return path


def file_config(path: Path, **more: Any) -> dict[str, Any]:
    return {"source": FILE_SOURCE, "options": {"path": str(path)}, **more}


def bound(reading: object, audit: MemoryAuditSink, **config: Any) -> Session:
    """A governed session on a connector built with the source `reading`."""
    connector = SignalSourceConnector(reading)  # type: ignore[arg-type]  # sources under test
    governance = Governance(audit=audit, retry=NO_RETRY)
    return Session(connector, config=config, context=CONTEXT, governance=governance)


def started(audit: MemoryAuditSink) -> list[str]:
    return [event.operation for event in audit.events if event.phase == "started"]


def fetched_ids(session: Session, query: FetchQuery) -> list[str]:
    return [record.id for record in session.fetch(query).records]


# -- what a fetch returns ---------------------------------------------------------------------


def test_a_fetch_returns_the_valid_signals_as_records_in_the_sources_order(
    registry: Registry, signal_file: Path
) -> None:
    answered = [signal("b"), signal("a"), signal("c", extra_field={"kept": True})]
    write_signal_file(signal_file, answered)
    with registry.open("intent.signals", config=file_config(signal_file), context=CONTEXT) as s:
        page = s.fetch(FetchQuery())
    assert [record.data["topic"] for record in page.records] == ["b", "a", "c"]
    assert page.next_cursor is None
    third = page.records[2]
    assert third.id == signal_id(parse_signal(answered[2]))
    assert third.data["extra_field"] == {"kept": True}
    assert third.updated_at == datetime(2025, 3, 1, 12, tzinfo=UTC)


def test_the_same_signal_has_the_same_id_and_exact_duplicates_collapse(
    audit: MemoryAuditSink,
) -> None:
    first = signal(confidence=1)
    same = {**dict(reversed(list(signal(confidence=1.0).items())))}  # other order, 1.0 for 1
    other = signal(confidence=0.5)
    source = ListSource([first, other, same])
    with bound(source, audit) as session:
        records = session.fetch(FetchQuery()).records
        answer = session.connector.answer  # type: ignore[attr-defined]  # SignalSourceConnector
    assert [record.id for record in records] == [
        signal_id(parse_signal(first)),
        signal_id(parse_signal(other)),
    ]
    assert answer.received == 3
    assert answer.duplicates == 1


def test_invalid_signals_are_left_out_logged_and_kept_in_the_answer(
    registry: Registry, signal_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signal_file.write_text(
        json.dumps([signal("good"), signal(confidence=float("nan")), {"topic": ""}, "text"])
    )
    config = file_config(signal_file)
    caplog.set_level(logging.WARNING, "integrations.intent.signals")
    with registry.open("intent.signals", config=config, context=CONTEXT) as session:
        records = session.fetch(FetchQuery()).records
        answer = session.connector.answer  # type: ignore[attr-defined]  # SignalSourceConnector
    assert [record.data["topic"] for record in records] == ["good"]
    assert [rejection.index for rejection in answer.rejections] == [1, 2, 3]
    assert "finite" in answer.rejections[0].reason
    assert "topic" in answer.rejections[1].reason
    assert "JSON object" in answer.rejections[2].reason
    assert "3 of 4 signals rejected" in caplog.text


def test_a_signal_without_created_at_is_dated_by_the_fetch(audit: MemoryAuditSink) -> None:
    before = datetime.now(UTC)
    with bound(ListSource([signal(created_at=None)]), audit) as session:
        (record,) = session.fetch(FetchQuery()).records
    assert record.updated_at is not None
    assert before <= record.updated_at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("answer", "kind"),
    [(None, "None"), ({"signals": []}, "dict"), ("[]", "str"), (42, "int")],
)
def test_an_answer_that_is_not_a_list_is_refused_whole(
    audit: MemoryAuditSink, answer: object, kind: str
) -> None:
    with bound(ListSource(answer), audit) as session, pytest.raises(InvalidSourceAnswer) as caught:
        session.fetch(FetchQuery())
    assert kind in str(caught.value)
    fetch = [e for e in audit.events if e.operation == "fetch" and e.phase == "finished"]
    assert [(e.outcome, e.error_type) for e in fetch] == [("error", "InvalidSourceAnswer")]


def test_an_answer_longer_than_max_signals_is_refused_whole(audit: MemoryAuditSink) -> None:
    source = ListSource([signal(str(index)) for index in range(4)])
    with bound(source, audit, max_signals=3) as session, pytest.raises(InvalidSourceAnswer):
        session.fetch(FetchQuery())


def test_what_a_source_raises_outside_the_library_becomes_a_connector_error(
    audit: MemoryAuditSink,
) -> None:
    class Broken:
        def fetch_signals(self) -> list[dict[str, Any]]:
            raise KeyError("token")

    with bound(Broken(), audit) as session, pytest.raises(ConnectorError) as caught:
        session.fetch(FetchQuery())
    assert "Broken raised KeyError" in str(caught.value)
    assert isinstance(caught.value.__cause__, KeyError)


def test_the_librarys_own_errors_pass_unchanged(registry: Registry, tmp_path: Path) -> None:
    config = file_config(tmp_path / "missing.json")
    session = registry.open("intent.signals", config=config, context=CONTEXT)
    with session, pytest.raises(NotFound, match="no signal file"):
        session.fetch(FetchQuery())


# -- filters and pages ------------------------------------------------------------------------


def test_topic_filters_case_insensitively_and_source_exactly(
    registry: Registry, signal_file: Path
) -> None:
    write_signal_file(
        signal_file,
        [signal("AI governance", "social"), signal("ai GOVERNANCE", "crm"), signal("Other")],
    )
    with registry.open("intent.signals", config=file_config(signal_file), context=CONTEXT) as s:
        topic = s.fetch(FetchQuery(filters={"topic": "AI Governance"})).records
        both = s.fetch(FetchQuery(filters={"topic": "ai governance", "source": "crm"})).records
        for bad in (FetchQuery(filters={"min_score": 1}), FetchQuery(text="governance")):
            with pytest.raises(InvalidRequest):
                s.fetch(bad)
    assert [record.data["source"] for record in topic] == ["social", "crm"]
    assert [record.data["source"] for record in both] == ["crm"]


def test_pages_come_from_one_answer_even_when_the_source_changes(audit: MemoryAuditSink) -> None:
    class Moving:
        """Every call answers five signals dated now: never the same twice."""

        def fetch_signals(self) -> list[dict[str, Any]]:
            now = datetime.now(UTC).isoformat()
            return [signal(f"topic {index}", created_at=now) for index in range(5)]

    with bound(Moving(), audit) as session:
        seen: list[object] = []
        cursor = None
        for _ in range(5):
            page = session.fetch(FetchQuery(limit=2, cursor=cursor))
            seen.extend(record.data["topic"] for record in page.records)
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen == [f"topic {index}" for index in range(5)]


def test_a_cursor_elsewhere_resumes_after_the_last_signal_returned(
    registry: Registry, signal_file: Path
) -> None:
    write_signal_file(signal_file, [signal(str(index)) for index in range(5)])
    config = file_config(signal_file)
    with registry.open("intent.signals", config=config, context=CONTEXT) as first:
        page = first.fetch(FetchQuery(limit=2))
    assert page.next_cursor is not None
    with registry.open("intent.signals", config=config, context=CONTEXT) as second:
        rest = second.fetch(FetchQuery(limit=10, cursor=page.next_cursor)).records
        write_signal_file(signal_file, [signal("2"), signal("3")])  # "1" is gone
        with pytest.raises(InvalidRequest, match="fetch again from the start"):
            second.fetch(FetchQuery(limit=10, cursor=page.next_cursor))
    assert [record.data["topic"] for record in rest] == ["2", "3", "4"]


def test_a_cursor_of_other_filters_or_a_damaged_one_is_refused(audit: MemoryAuditSink) -> None:
    with bound(ListSource([signal(str(index)) for index in range(3)]), audit) as session:
        cursor = session.fetch(FetchQuery(limit=1)).next_cursor
        with pytest.raises(InvalidRequest, match="another query"):
            session.fetch(FetchQuery(limit=1, cursor=cursor, filters={"topic": "1"}))
        with pytest.raises(InvalidRequest, match="not one this connector made"):
            session.fetch(FetchQuery(cursor="not-a-cursor"))


def test_the_page_size_is_capped_by_the_config(audit: MemoryAuditSink) -> None:
    source = ListSource([signal(str(index)) for index in range(5)])
    with bound(source, audit, max_page_size=2) as session:
        page = session.fetch(FetchQuery(limit=100))
    assert len(page.records) == 2
    assert page.next_cursor is not None


def test_push_and_sync_are_not_offered(registry: Registry, signal_file: Path) -> None:
    session = registry.open("intent.signals", config=file_config(signal_file), context=CONTEXT)
    with session, pytest.raises(NotSupported):
        session.push(PushPayload(records=()))
    assert registry.info("intent.signals").capabilities == ("fetch",)


# -- which source a config may name ------------------------------------------------------------


@pytest.fixture
def marked_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module outside ``integrations.`` that leaves a mark file when it is imported."""
    mark = tmp_path / "imported.mark"
    code = f"""
import pathlib
pathlib.Path({str(mark)!r}).write_text("imported")


class Source:
    def __init__(self, prefix="marked"):
        self.prefix = prefix
        self.closed = pathlib.Path({str(tmp_path / "closed.mark")!r})

    def fetch_signals(self):
        return [{{"source": self.prefix, "topic": "t", "momentum": "steady", "confidence": 0.5,
                 "authenticity": {{"human_source_pct": 50}}, "streak_days": 1}}]

    def close(self):
        self.closed.write_text("closed")
"""
    (tmp_path / f"{MARKED_MODULE}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield mark
    sys.modules.pop(MARKED_MODULE, None)


def test_a_module_outside_the_allowlist_is_refused_before_it_is_imported(
    registry: Registry, audit: MemoryAuditSink, marked_module: Path
) -> None:
    config = {"source": f"{MARKED_MODULE}:Source"}
    with pytest.raises(ConfigError) as caught:
        SignalSourceConfig.from_mapping(config)
    assert caught.value.problems[0][0] == "source"
    assert "allowlist" in str(caught.value)
    assert "INTEGRATIONS_ALLOWED_MODULES" in str(caught.value)
    with (
        pytest.raises(ConfigError),
        registry.open("intent.signals", config=config, context=CONTEXT),
    ):
        pass
    assert started(audit) == []  # the connector was never called
    assert not marked_module.exists()
    assert MARKED_MODULE not in sys.modules


@pytest.mark.parametrize("path", ["no colon", "module:", ":Class", "a.b:C.D", "a..b:C", "a-b:C"])
def test_a_malformed_source_path_is_a_config_error(path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SignalSourceConfig.from_mapping({"source": path})
    assert caught.value.problems[0][0] == "source"


def test_an_admitted_module_is_imported_built_with_its_options_and_closed_at_revoke(
    monkeypatch: pytest.MonkeyPatch, marked_module: Path, audit: MemoryAuditSink
) -> None:
    admitting = Registry(allowed_modules=("integrations.", MARKED_MODULE))
    monkeypatch.setattr(registry_module, "default_registry", admitting)
    config = {"source": f"{MARKED_MODULE}:Source", "options": {"prefix": "from options"}}
    sessions = Registry(governance=Governance(audit=audit))
    with sessions.open("intent.signals", config=config, context=CONTEXT) as session:
        (record,) = session.fetch(FetchQuery()).records
        assert not (marked_module.parent / "closed.mark").exists()
    assert marked_module.exists()
    assert record.data["source"] == "from options"
    assert (marked_module.parent / "closed.mark").read_text() == "closed"


def test_a_tenant_may_name_only_a_tenant_safe_class_and_a_refusal_is_a_denial(
    monkeypatch: pytest.MonkeyPatch, marked_module: Path, audit: MemoryAuditSink
) -> None:
    admitting = Registry(allowed_modules=("integrations.", MARKED_MODULE))
    monkeypatch.setattr(registry_module, "default_registry", admitting)
    sessions = Registry(governance=Governance(audit=audit))
    tenant_config = UntrustedConfig({"source": f"{MARKED_MODULE}:Source"}, origin="tenant form")
    with (
        pytest.raises(PolicyError, match="not marked safe for configs from tenants"),
        sessions.open("intent.signals", config=tenant_config, context=CONTEXT),
    ):
        pass
    assert started(audit) == []  # the connector was never called, nothing to revoke
    denials = [(e.operation, e.outcome, e.detail) for e in audit.events if e.outcome]
    assert denials == [
        ("connect", "denied", "UNTRUSTED_CONFIG_REFUSED source class not safe for tenants")
    ]
    assert not (marked_module.parent / "closed.mark").exists()
    safe = UntrustedConfig({"source": STATIC_SOURCE, "options": {"signals": [signal("safe")]}})
    with sessions.open("intent.signals", config=safe, context=CONTEXT) as session:
        (record,) = session.fetch(FetchQuery()).records
    assert record.data["topic"] == "safe"


def test_options_the_class_refuses_are_a_config_error_that_shows_no_value(
    registry: Registry, audit: MemoryAuditSink, signal_file: Path
) -> None:
    config = file_config(signal_file)
    config["options"] = {**config["options"], "password": "hunter2-canary"}
    session = registry.open("intent.signals", config=config, context=CONTEXT)
    with pytest.raises(ConfigError) as caught, session:
        pass
    assert caught.value.problems[0][0] == "options"
    assert "password" in str(caught.value)
    assert "hunter2-canary" not in str(caught.value)
    revokes = [e.outcome for e in audit.events if e.operation == "revoke" and e.phase == "finished"]
    assert revokes == ["ok"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("integrations.adapters.intent_adapters.testing._signal_sources:Nothing", "has no class"),
        ("integrations.adapters.intent_adapters.no_such_module:Source", "importing"),
        ("integrations.adapters.intent_adapters._intent:IntentQuery", "fetch_signals"),
    ],
)
def test_a_class_that_cannot_be_had_is_a_config_error_at_connect(
    registry: Registry, source: str, message: str
) -> None:
    session = registry.open("intent.signals", config={"source": source}, context=CONTEXT)
    with pytest.raises(ConfigError, match=message), session:
        pass


def test_a_config_without_a_source_is_a_config_error(registry: Registry) -> None:
    session = registry.open("intent.signals", config={}, context=CONTEXT)
    with pytest.raises(ConfigError, match=r"package\.module:Class"), session:
        pass


def test_a_connector_built_with_a_source_reads_that_one_only(
    audit: MemoryAuditSink, signal_file: Path
) -> None:
    session = bound(ListSource([signal()]), audit, **file_config(signal_file))
    with pytest.raises(ConfigError, match="the source it was built with"), session:
        pass


def test_every_kind_of_source_is_a_signal_source() -> None:
    class Plain:
        def fetch_signals(self) -> list[Signal]:
            return [parse_signal(signal())]

    assert isinstance(Plain(), SignalSource)
    assert isinstance(HttpSignalSource("http://127.0.0.1:1/signals"), AsyncSignalSource)


# -- async sources and the async twin ---------------------------------------------------------


def test_the_sync_connector_runs_an_async_source_to_completion(
    registry: Registry, signal_server: SignalSourceServer
) -> None:
    config = {"source": HTTP_SOURCE, "options": {"url": signal_server.signals_url}}
    with registry.open("intent.signals", config=config, context=CONTEXT) as session:
        records = session.fetch(FetchQuery()).records
    assert [record.data["topic"] for record in records] == ["served 0", "served 1"]


def test_the_sync_connector_refuses_an_async_source_on_a_thread_running_a_loop(
    signal_server: SignalSourceServer, audit: MemoryAuditSink
) -> None:
    connector = SignalSourceConnector(signal_server.source())
    connector.auth(CONTEXT)
    connector.connect(SignalSourceConfig())

    async def inside_a_loop() -> None:
        connector.fetch(FetchQuery())

    with pytest.raises(LifecycleError, match="AsyncSignalSourceConnector"):
        asyncio.run(inside_a_loop())


def test_the_async_connector_awaits_async_sources(signal_server: SignalSourceServer) -> None:
    async def read() -> list[object]:
        connector = AsyncSignalSourceConnector(signal_server.source())
        async with AsyncSession(connector, config={}, context=CONTEXT) as session:
            page = await session.fetch(FetchQuery())
        return [record.data["topic"] for record in page.records]

    assert asyncio.run(read()) == ["served 0", "served 1"]


def test_cancelling_the_async_fetch_of_a_hanging_sync_source_returns_at_once() -> None:
    release = threading.Event()

    class Hanging:
        def fetch_signals(self) -> list[dict[str, Any]]:
            release.wait(30)
            return [signal()]

    async def read() -> float:
        connector = AsyncSignalSourceConnector(Hanging())
        async with AsyncSession(connector, config={}, context=CONTEXT) as session:
            began = time.perf_counter()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(session.fetch(FetchQuery()), 0.2)
            return time.perf_counter() - began

    try:
        assert asyncio.run(read()) < 1.0
    finally:
        release.set()


# -- the HTTP sources and their server --------------------------------------------------------


@pytest.fixture
def signal_server() -> Iterator[SignalSourceServer]:
    with SignalSourceServer([signal("served 0"), signal("served 1")]) as server:
        yield server


def read_with(kind: str, source: HttpSignalSource | BlockingHttpSignalSource) -> Any:
    if kind == "async":
        assert isinstance(source, HttpSignalSource)
        return asyncio.run(source.fetch_signals())
    assert isinstance(source, BlockingHttpSignalSource)
    return source.fetch_signals()


def source_of(kind: str, server: SignalSourceServer, timeout: float = 5.0) -> Any:
    if kind == "async":
        return server.source(timeout)
    return server.blocking_source(timeout)


KINDS = pytest.mark.parametrize("kind", ["async", "blocking"])


@KINDS
def test_an_http_source_reads_the_servers_signals_after_its_delay(kind: str) -> None:
    moment = datetime(2025, 3, 1, 12, tzinfo=UTC) + timedelta(microseconds=5)
    with SignalSourceServer([signal("dated", created_at=moment)], delay=0.3) as server:
        began = time.perf_counter()
        answer = read_with(kind, source_of(kind, server))
        took = time.perf_counter() - began
        assert server.count("/signals") == 1
    assert took >= 0.3
    assert answer == [signal("dated", created_at="2025-03-01T12:00:00.000005Z")]


@KINDS
@pytest.mark.parametrize(
    ("status", "error"),
    [(503, TransientError), (500, TransientError), (429, RateLimited), (401, ConnectorError)],
)
def test_http_failures_map_into_the_librarys_errors(
    kind: str, status: int, error: type[Exception], signal_server: SignalSourceServer
) -> None:
    signal_server.fail_next(status=status, retry_after=2)
    with pytest.raises(error) as caught:
        read_with(kind, source_of(kind, signal_server))
    if isinstance(caught.value, TransientError):
        assert caught.value.retry_after == 2


@KINDS
def test_garbage_and_a_wrong_path_and_a_dropped_connection(
    kind: str, signal_server: SignalSourceServer
) -> None:
    signal_server.answer_garbage()
    with pytest.raises(InvalidSourceAnswer, match="not JSON"):
        read_with(kind, source_of(kind, signal_server))
    signal_server.answer_garbage(body={"not": "a list"})
    assert read_with(kind, source_of(kind, signal_server)) == {"not": "a list"}
    wrong = HttpSignalSource if kind == "async" else BlockingHttpSignalSource
    with pytest.raises(NotFound):
        read_with(kind, wrong(signal_server.url + "/elsewhere"))
    signal_server.drop_next()
    with pytest.raises(ConnectionFailed):
        read_with(kind, source_of(kind, signal_server))


@KINDS
def test_a_slow_server_is_a_transient_error_and_a_stopped_one_unreachable(kind: str) -> None:
    with SignalSourceServer([signal()], delay=5) as server:
        began = time.perf_counter()
        with pytest.raises(TransientError, match="did not answer"):
            read_with(kind, source_of(kind, server, timeout=0.3))
        assert time.perf_counter() - began < 2
        source = source_of(kind, server)
    with pytest.raises(ConnectionFailed):
        read_with(kind, source)


def test_http_sources_read_loopback_addresses_only() -> None:
    for url in ("http://10.0.0.1/signals", "https://127.0.0.1/signals", "http://example.com/"):
        with pytest.raises(ValueError, match="loopback"):
            HttpSignalSource(url)
    config = {"source": HTTP_SOURCE, "options": {"url": "http://169.254.169.254/latest"}}
    connector = SignalSourceConnector()
    connector.auth(CONTEXT)
    with pytest.raises(ConfigError) as caught:
        connector.connect(SignalSourceConfig.from_mapping(config))
    assert caught.value.problems[0][0] == "options"


def test_the_server_serves_signals_set_later_and_counts_requests(
    signal_server: SignalSourceServer,
) -> None:
    signal_server.set_signals([parse_signal(signal("replaced"))])
    (answer,) = read_with("blocking", signal_server.blocking_source())
    assert answer["topic"] == "replaced"
    assert signal_server.signals == [answer]
    assert [request.method for request in signal_server.seen("/signals")] == ["GET"]


def test_write_signal_file_is_what_the_file_source_reads(
    registry: Registry, signal_file: Path
) -> None:
    moment = datetime(2025, 3, 1, 12, tzinfo=UTC)
    signals: list[Mapping[str, Any]] = [signal("file", created_at=moment)]
    write_signal_file(signal_file, signals)
    with registry.open("intent.signals", config=file_config(signal_file), context=CONTEXT) as s:
        (record,) = s.fetch(FetchQuery()).records
    assert record.data["created_at"] == DATED
