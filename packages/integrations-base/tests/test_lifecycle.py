"""Governed sessions against the mock connector's fault injection, sync and async."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integrations.base import (
    ALLOW,
    RUN_ID_ATTRIBUTE,
    AsyncSession,
    AuditError,
    AuditEvent,
    AuthContext,
    AuthError,
    AuthExpired,
    Capability,
    CapabilityAllowlist,
    ConfigError,
    ConnectorMeta,
    Decision,
    FanOutAuditSink,
    FetchQuery,
    Governance,
    GovernanceSettings,
    JsonLinesAuditSink,
    LifecycleError,
    LoggingAuditSink,
    MemoryAuditSink,
    NotSupported,
    PolicyError,
    PolicyRequest,
    PolicySet,
    PushPayload,
    QuorumRequired,
    Record,
    Registry,
    SecretError,
    SecretReferenceDenied,
    SecretResolver,
    Session,
    SessionState,
    SyncState,
    TenantAndActorRequired,
    UntrustedConfig,
)
from integrations.base.lifecycle import run_lifecycle
from integrations.base.registry import ConnectorEntry
from integrations.mocks import MockConfig, MockConnector, reset_stores

CONTEXT = AuthContext(tenant="acme", actor="alice")
META = ConnectorMeta("m")
RECORDS = (Record(id="a", data={"text": "alpha"}), Record(id="b", data={"text": "beta"}))


class FailingSink:
    """An audit sink whose storage is down."""

    def __init__(self) -> None:
        self.calls = 0

    def emit(self, event: AuditEvent) -> None:
        self.calls += 1
        raise OSError("disk full")


@pytest.fixture(autouse=True)
def _fresh_stores() -> Iterator[None]:
    reset_stores()
    yield
    reset_stores()


@pytest.fixture
def sink() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def governance(sink: MemoryAuditSink) -> Governance:
    return Governance(audit=sink)


def open_session(
    connector: MockConnector | None = None,
    governance: Governance | None = None,
    config: dict[str, Any] | MockConfig | None = None,
    context: AuthContext = CONTEXT,
) -> Session:
    return Session(
        connector or MockConnector(),
        config=config or {"store": "s"},
        context=context,
        governance=governance or Governance(audit=MemoryAuditSink()),
    )


def steps(sink: MemoryAuditSink) -> list[tuple[str, str, str | None]]:
    return [(e.operation, e.phase, e.outcome) for e in sink.events]


# -- the state machine and exit paths --------------------------------------------------------


def test_session_runs_auth_connect_operations_revoke_in_order(
    governance: Governance, sink: MemoryAuditSink
) -> None:
    connector = MockConnector()
    session = open_session(connector, governance)
    assert session.state.value == "created"
    with session:
        assert session.state.value == "connected"
        assert session.push(PushPayload(records=RECORDS)).accepted == ("a", "b")
        assert [r.id for r in session.fetch(FetchQuery()).records] == ["b", "a"]
        assert session.sync(SyncState()).upserted == 2
    assert session.state is SessionState.CLOSED
    assert [c.operation for c in connector.calls] == [
        "auth",
        "connect",
        "push",
        "fetch",
        "sync",
        "revoke",
    ]
    assert steps(sink) == [
        (op, phase, outcome)
        for op in ("auth", "connect", "push", "fetch", "sync", "revoke")
        for phase, outcome in (("started", None), ("finished", "ok"))
    ]
    assert len({e.correlation_id for e in sink.events}) == 1


def test_revoke_runs_when_the_with_block_raises(governance: Governance) -> None:
    connector = MockConnector()
    with pytest.raises(ZeroDivisionError), open_session(connector, governance):
        _ = 1 / 0
    assert connector.calls[-1].operation == "revoke"
    assert connector.token is not None


def test_operations_after_close_and_reopening_are_lifecycle_errors(governance: Governance) -> None:
    session = open_session(governance=governance)
    with session:
        pass
    with pytest.raises(LifecycleError, match="closed"):
        session.fetch(FetchQuery())
    with pytest.raises(LifecycleError, match="cannot open"):
        session.open()


def test_operations_before_open_are_lifecycle_errors(governance: Governance) -> None:
    session = open_session(governance=governance)
    with pytest.raises(LifecycleError, match="created"):
        session.fetch(FetchQuery())


def test_auth_failure_fails_the_session_without_revoke(
    governance: Governance, sink: MemoryAuditSink
) -> None:
    connector = MockConnector()
    connector.faults.fail_auth()
    session = open_session(connector, governance)
    with pytest.raises(AuthError), session:
        pass
    assert session.state is SessionState.CLOSED
    assert [c.operation for c in connector.calls] == ["auth"]
    assert steps(sink)[-1] == ("auth", "finished", "error")
    assert sink.events[-1].error_type == "AuthError"


def test_connect_failure_still_revokes_the_token(governance: Governance) -> None:
    connector = MockConnector()
    connector.faults.fail("connect", ConnectionError("refused"))
    with pytest.raises(ConnectionError), open_session(connector, governance):
        pass
    assert [c.operation for c in connector.calls] == ["auth", "connect", "revoke"]


def test_invalid_config_is_a_config_error_naming_the_field_before_any_call(
    governance: Governance,
) -> None:
    connector = MockConnector()
    session = open_session(connector, governance, config={"store": "s", "page_size_max": 0})
    with pytest.raises(ConfigError, match="page_size_max") as raised, session:
        pass
    assert raised.value.problems[0][0] == "page_size_max"
    assert connector.calls == ()
    assert session.state is SessionState.CLOSED


def test_undeclared_operation_raises_not_supported_before_any_call(
    governance: Governance, sink: MemoryAuditSink
) -> None:
    class FetchOnly(MockConnector):
        capabilities = frozenset({Capability.FETCH})

    connector = FetchOnly()
    with (
        open_session(connector, governance) as session,
        pytest.raises(NotSupported, match="push"),
    ):
        session.push(PushPayload(records=RECORDS))
    assert "push" not in [c.operation for c in connector.calls]
    denied = [e for e in sink.events if e.outcome == "denied"]
    assert [(e.operation, e.error_type) for e in denied] == [("push", "NotSupported")]


def test_expired_token_reauthenticates_once_and_retries(
    governance: Governance, sink: MemoryAuditSink
) -> None:
    connector = MockConnector()
    with open_session(connector, governance) as session:
        session.push(PushPayload(records=RECORDS))
        connector.faults.expire_tokens()
        assert len(session.fetch(FetchQuery()).records) == 2
    ops = [(e.operation, e.attempt, e.outcome) for e in sink.events if e.phase == "finished"]
    assert ops[3:] == [
        ("fetch", 1, "error"),
        ("auth", 2, "ok"),
        ("fetch", 2, "ok"),
        ("revoke", 1, "ok"),
    ]


def test_expiry_twice_in_a_row_surfaces_auth_expired(governance: Governance) -> None:
    connector = MockConnector()
    connector.faults.fail("fetch", AuthExpired("expired"), times=2)
    with open_session(connector, governance) as session, pytest.raises(AuthExpired):
        session.fetch(FetchQuery())
    assert [c.operation for c in connector.calls].count("auth") == 2


def test_revoke_failure_is_raised_and_audited_when_nothing_else_failed(
    governance: Governance, sink: MemoryAuditSink
) -> None:
    connector = MockConnector()
    connector.faults.fail("revoke", AuthError("revoke endpoint down"))
    session = open_session(connector, governance)
    with pytest.raises(AuthError, match="revoke endpoint down"), session:
        pass
    assert session.revoke_error is not None
    assert session.state is SessionState.CLOSED
    assert steps(sink)[-1] == ("revoke", "finished", "error")


def test_revoke_failure_never_hides_the_original_exception(governance: Governance) -> None:
    connector = MockConnector()
    connector.faults.fail("revoke", AuthError("revoke endpoint down"))
    session = open_session(connector, governance)
    with pytest.raises(KeyError) as raised, session:
        raise KeyError("original")
    assert isinstance(session.revoke_error, AuthError)
    assert any("revoke failed" in note for note in raised.value.__notes__)


# -- audit -----------------------------------------------------------------------------------


def test_audit_events_carry_every_field_and_no_payload(sink: MemoryAuditSink) -> None:
    registry = Registry(governance=Governance(audit=sink), distributions=False)
    registry.register("mock", MockConnector)
    with registry.open("mock", config={"store": "s"}, context=CONTEXT) as session:
        session.push(PushPayload(records=(Record(id="x", data={"text": "payload-text"}),)))
    event = sink.events[-1].to_dict()
    assert set(event) == {
        "id",
        "time",
        "correlation_id",
        "connector",
        "connector_version",
        "distribution",
        "distribution_version",
        "operation",
        "phase",
        "tenant",
        "actor",
        "attempt",
        "outcome",
        "error_type",
        "duration_seconds",
        "detail",
        "delay_seconds",
        "run_id",
    }
    assert event["run_id"] is None
    assert event["connector"] == "mock"
    assert event["tenant"] == "acme"
    assert event["actor"] == "alice"
    assert event["time"].endswith("Z")
    everything = json.dumps([e.to_dict() for e in sink.events])
    assert "payload-text" not in everything
    assert len({e.id for e in sink.events}) == len(sink.events)


def test_a_run_id_in_the_context_is_carried_by_every_event_of_the_session(
    sink: MemoryAuditSink,
) -> None:
    policies = PolicySet([CapabilityAllowlist({"acme": ["mock:fetch"]})])  # push: a denial
    registry = Registry(governance=Governance(audit=sink, policies=policies), distributions=False)
    registry.register("mock", MockConnector)
    context = AuthContext(tenant="acme", actor="alice", attributes={RUN_ID_ATTRIBUTE: "run-7"})
    for _ in range(2):  # two sessions, two correlation ids, one run
        with registry.open("mock", config={"store": "s"}, context=context) as session:
            session.fetch(FetchQuery())
            with pytest.raises(PolicyError):
                session.push(PushPayload(records=(Record(id="x"),)))
    assert len({event.correlation_id for event in sink.events}) == 2
    assert {event.run_id for event in sink.events} == {"run-7"}
    assert {event.to_dict()["run_id"] for event in sink.events} == {"run-7"}


def test_required_audit_fails_closed_and_the_operation_does_not_run() -> None:
    connector = MockConnector()
    failing = FailingSink()
    session = open_session(connector, Governance(audit=failing, audit_required=True))
    with pytest.raises(AuditError, match="auth was not run"), session:
        pass
    assert connector.calls == ()


def test_revoke_runs_even_when_its_audit_event_cannot_be_written() -> None:
    class FailsOnRevoke:
        def __init__(self) -> None:
            self.stored = MemoryAuditSink()

        def emit(self, event: AuditEvent) -> None:
            if event.operation == "revoke":
                raise OSError("disk full")
            self.stored.emit(event)

    connector = MockConnector()
    session = open_session(connector, Governance(audit=FailsOnRevoke(), audit_required=True))
    with session:
        session.fetch(FetchQuery())
    assert connector.calls[-1].operation == "revoke"
    assert session.audit_failures == 2


def test_a_config_instance_has_its_secret_references_resolved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOCK_INSTANCE_KEY", "resolved-value")
    connector = MockConnector()
    config = MockConfig.model_validate({"store": "s", "api_key": "env:MOCK_INSTANCE_KEY"})
    with open_session(connector, config=config):
        pass
    assert connector.config is not None
    assert connector.config.api_key is not None
    assert connector.config.api_key.reveal() == "resolved-value"


def test_a_session_refuses_an_async_connector() -> None:
    from integrations.base import AsyncBaseConnector

    class Nothing(AsyncBaseConnector[MockConfig]):
        async def auth(self, context: AuthContext) -> Any:
            raise AssertionError

        async def connect(self, config: MockConfig) -> Any:
            raise AssertionError

        async def revoke(self, token: Any) -> Any:
            raise AssertionError

    with pytest.raises(LifecycleError, match="AsyncSession"):
        Session(Nothing(), config={}, context=CONTEXT)  # type: ignore[arg-type]  # the point of the test


def test_manifest_audit_required_fails_closed_for_that_connector() -> None:
    entry = ConnectorEntry.model_validate(
        {"name": "m", "module": "x", "class": "C", "audit": {"required": True}}
    )
    connector = MockConnector()
    session = Session(
        connector,
        config={"store": "s"},
        context=CONTEXT,
        governance=Governance(audit=FailingSink()),
        entry=entry,
    )
    with pytest.raises(AuditError), session:
        pass
    assert connector.calls == ()


def test_optional_audit_logs_and_counts_failures_and_proceeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connector = MockConnector()
    session = open_session(connector, Governance(audit=FailingSink()))
    with caplog.at_level(logging.WARNING, logger="integrations.lifecycle"), session:
        session.fetch(FetchQuery())
    assert [c.operation for c in connector.calls] == ["auth", "connect", "fetch", "revoke"]
    assert session.audit_failures == 8
    assert any(r.message == "audit event not written" for r in caplog.records)
    assert caplog.records[0].connector == "MockConnector"  # type: ignore[attr-defined]  # structured extra field


def test_jsonl_sink_appends_one_line_per_event_and_is_shared_safely(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sinks = [JsonLinesAuditSink(path, fsync="batch", batch_size=7) for _ in range(4)]

    def run(sink: JsonLinesAuditSink) -> None:
        for _ in range(25):
            with open_session(governance=Governance(audit=sink)) as session:
                session.fetch(FetchQuery())

    threads = [threading.Thread(target=run, args=(sink,)) for sink in sinks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for sink in sinks:
        sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 4 * 25 * 8
    assert all(json.loads(line)["connector"] == "MockConnector" for line in lines)
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(AuditError, match="closed"):
        sinks[0].emit(AuditEvent("c", 1, 0.0, META, "x", "started", None, None))


def test_logging_sink_emits_json_on_the_audit_logger(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="integrations.audit"),
        open_session(governance=Governance(audit=LoggingAuditSink())) as session,
    ):
        session.fetch(FetchQuery())
    records = [r for r in caplog.records if r.name == "integrations.audit"]
    assert len(records) == 8
    assert json.loads(records[0].getMessage())["operation"] == "auth"


def test_fan_out_tries_every_sink_and_reports_failures(sink: MemoryAuditSink) -> None:
    failing = FailingSink()
    fan_out = FanOutAuditSink([failing, sink])
    with pytest.raises(AuditError, match="FailingSink"):
        fan_out.emit(AuditEvent("c", 1, 0.0, META, "x", "started", None, None))
    assert failing.calls == 1
    assert len(sink.events) == 1


# -- policies --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "code"),
    [
        (AuthContext(actor="alice"), "TENANT_REQUIRED"),
        (AuthContext(tenant="acme"), "ACTOR_REQUIRED"),
    ],
)
def test_tenant_and_actor_are_required_by_default(
    context: AuthContext, code: str, sink: MemoryAuditSink
) -> None:
    connector = MockConnector()
    session = open_session(connector, Governance(audit=sink), context=context)
    with pytest.raises(PolicyError, match=code):
        session.open()
    assert connector.calls == ()
    assert [(e.operation, e.outcome, e.detail) for e in sink.events] == [("auth", "denied", code)]


def test_capability_allowlist_per_tenant(sink: MemoryAuditSink) -> None:
    policies = PolicySet(
        [TenantAndActorRequired(), CapabilityAllowlist({"acme": ["MockConnector:fetch"]})]
    )
    connector = MockConnector()
    with open_session(connector, Governance(policies=policies, audit=sink)) as session:
        session.fetch(FetchQuery())
        with pytest.raises(PolicyError, match="CAPABILITY_NOT_ALLOWED"):
            session.push(PushPayload(records=RECORDS))
    assert "push" not in [c.operation for c in connector.calls]


def test_quorum_required_for_capabilities_the_manifest_marks() -> None:
    entry = ConnectorEntry.model_validate(
        {
            "name": "m",
            "module": "x",
            "class": "C",
            "capabilities": ["fetch", "sync", {"action": "push", "quorum": 2}],
        }
    )

    def attempt(approvals: list[Any]) -> None:
        context = AuthContext(tenant="acme", actor="alice", attributes={"approvals": approvals})
        session = Session(
            MockConnector(),
            config={"store": "s"},
            context=context,
            governance=Governance(audit=MemoryAuditSink()),
            entry=entry,
        )
        with session:
            session.fetch(FetchQuery())
            session.push(PushPayload(records=RECORDS))

    with pytest.raises(PolicyError, match="QUORUM_REQUIRED"):
        attempt(["bob"])
    with pytest.raises(PolicyError, match="QUORUM_REQUIRED"):
        attempt(["alice", "bob"])  # the requester does not approve their own request
    attempt(["bob", {"approver": "carol"}])


def test_policies_compose_in_order_and_the_first_denial_wins() -> None:
    seen: list[str] = []

    class Recorder:
        def __init__(self, name: str, decision: Decision) -> None:
            self.name, self.decision = name, decision

        def evaluate(self, request: PolicyRequest) -> Decision:
            seen.append(self.name)
            return self.decision

    deny = Decision(False, "NO", "because")
    policies = PolicySet([Recorder("one", ALLOW), Recorder("two", deny), Recorder("three", ALLOW)])
    with pytest.raises(PolicyError, match="NO"):
        open_session(governance=Governance(policies=policies)).open()
    assert seen == ["one", "two"]


def test_settings_from_env_and_toml_build_the_documented_order(tmp_path: Path) -> None:
    settings = GovernanceSettings.from_env(
        {
            "INTEGRATIONS_AUDIT_REQUIRED": "true",
            "INTEGRATIONS_AUDIT_LOG": "false",
            "INTEGRATIONS_CAPABILITY_ALLOWLIST": '{"acme": ["*:fetch"]}',
            "INTEGRATIONS_AUDIT_JSONL": str(tmp_path / "a.jsonl"),
        }
    )
    governance = settings.build()
    assert governance.audit_required
    assert [type(p).__name__ for p in governance.policies.policies] == [
        "TenantAndActorRequired",
        "CapabilityAllowlist",
        "QuorumRequired",
    ]
    toml = tmp_path / "settings.toml"
    toml.write_text(
        "[tool.integrations.governance]\nrequire_actor = false\nenforce_quorum = false\n"
    )
    policies = GovernanceSettings.from_toml(toml).build().policies.policies
    assert [type(p).__name__ for p in policies] == ["TenantAndActorRequired"]
    with pytest.raises(ConfigError, match="audit_fsync"):
        GovernanceSettings.from_mapping({"audit_fsync": "sometimes"})
    with pytest.raises(ConfigError, match="CAPABILITY_ALLOWLIST"):
        GovernanceSettings.from_env({"INTEGRATIONS_CAPABILITY_ALLOWLIST": "{"})


def test_quorum_policy_alone_ignores_lifecycle_steps() -> None:
    request = PolicyRequest(CONTEXT, META, None, "auth")
    assert QuorumRequired().evaluate(request) is ALLOW


# -- secrets ---------------------------------------------------------------------------------


def test_secret_references_resolve_at_connect_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:

    monkeypatch.setenv("MOCK_KEY", "from-env")
    connector = MockConnector()
    with open_session(connector, config={"store": "vaulted", "api_key": "env:MOCK_KEY"}):
        pass
    assert connector.config is not None
    assert connector.config.api_key is not None
    assert connector.config.api_key.reveal() == "from-env"
    secret_file = tmp_path / "key"
    secret_file.write_text("from-file\n")
    connector = MockConnector()
    with open_session(connector, config={"store": "s", "api_key": f"file:{secret_file}"}):
        pass
    assert connector.config is not None
    assert connector.config.api_key is not None
    assert connector.config.api_key.reveal() == "from-file"


def test_missing_secret_names_the_reference_before_any_call() -> None:
    connector = MockConnector()
    session = open_session(connector, config={"store": "s", "api_key": "env:NOT_SET_ANYWHERE"})
    with pytest.raises(SecretError, match="env:NOT_SET_ANYWHERE") as raised, session:
        pass
    assert connector.calls == ()
    assert "NOT_SET_ANYWHERE" in str(raised.value)


def test_custom_secret_provider_and_literal_escape() -> None:
    class Vault:
        scheme = "vault"

        def resolve(self, reference: str) -> str:
            if reference != "kv/app#key":
                raise SecretError(f"secret vault:{reference} not found")
            return "from-vault"

    resolver = SecretResolver({"vault": Vault()}, entry_points=False)
    assert resolver.resolve("vault:kv/app#key") == "from-vault"
    assert resolver.resolve("literal:env:HOME") == "env:HOME"
    assert resolver.resolve("https://user:pw@host") == "https://user:pw@host"
    with pytest.raises(SecretError, match="vault:other"):
        resolver.resolve("vault:other")


def test_canary_secret_appears_nowhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    canary = "CANARY-7f3a9c-do-not-leak"
    monkeypatch.setenv("CANARY_KEY", canary)
    memory = MemoryAuditSink()
    jsonl = JsonLinesAuditSink(tmp_path / "audit.jsonl")
    log_stream = io.StringIO()
    handler = logging.StreamHandler(log_stream)
    root = logging.getLogger("integrations")
    root.addHandler(handler)
    texts: list[str] = []
    denial_texts: list[str] = []
    try:
        with caplog.at_level(logging.DEBUG, logger="integrations"):
            governance = Governance(audit=FanOutAuditSink([memory, jsonl, LoggingAuditSink()]))
            connector = MockConnector()
            connector.faults.fail("fetch", AuthError("backend refused"))
            connector.faults.fail("revoke", AuthError("revoke refused"))
            session = Session(
                connector,
                config={"store": "c", "api_key": "env:CANARY_KEY"},
                context=CONTEXT,
                governance=governance,
            )
            try:
                with session:
                    texts.append(repr(connector.config))
                    texts.append(str(connector.config))
                    assert connector.config is not None
                    texts.append(connector.config.model_dump_json())
                    texts.append(repr(connector.token))
                    session.fetch(FetchQuery())
            except AuthError as error:
                texts.append("".join(traceback.format_exception(error)))
            bad = Session(
                MockConnector(),
                config={"store": "c", "api_key": "env:CANARY_KEY", "page_size_max": -1},
                context=CONTEXT,
                governance=governance,
            )
            try:
                with bad:
                    pass
            except ConfigError as error:
                texts.append("".join(traceback.format_exception(error)))
            denied = Session(
                MockConnector(),
                config=UntrustedConfig({"store": "c", "api_key": "env:CANARY_KEY"}),
                context=CONTEXT,
                governance=governance,
            )
            try:
                with denied:
                    pass
            except SecretReferenceDenied as error:
                denial_texts.append("".join(traceback.format_exception(error)))
    finally:
        root.removeHandler(handler)
        jsonl.close()
    texts.append(log_stream.getvalue())
    texts.append(caplog.text)
    texts.append((tmp_path / "audit.jsonl").read_text())
    texts.append(json.dumps([e.to_dict() for e in memory.events]))
    texts.append(repr(memory.events))
    report = run_lifecycle(
        MockConnector(),
        config={"store": "c", "api_key": "env:CANARY_KEY"},
        context=CONTEXT,
        plan=[FetchQuery()],
        governance=Governance(audit=MemoryAuditSink()),
    )
    texts.append(repr(report))
    untrusted_report = run_lifecycle(
        MockConnector(),
        config=UntrustedConfig({"store": "c", "api_key": "env:CANARY_KEY"}),
        context=CONTEXT,
        governance=Governance(audit=MemoryAuditSink()),
    )
    denial_texts.append(repr(untrusted_report))
    denial_texts.append(json.dumps([e.to_dict() for e in untrusted_report.audit]))
    denial_texts.append(json.dumps([e.to_dict() for e in memory.events if e.outcome == "denied"]))
    texts.extend(denial_texts)
    assert len(texts) >= 14
    assert all(canary not in text for text in texts)
    assert sum("backend refused" in text for text in texts) >= 1  # the scan saw the error path
    # A denied reference is named by its scheme only: not even the variable's name shows.
    assert all("CANARY_KEY" not in text for text in denial_texts)
    assert all("SECRET_REFERENCE_DENIED" in text for text in denial_texts)


# -- run_lifecycle ---------------------------------------------------------------------------


def test_run_lifecycle_reports_every_step_with_the_audit_trail() -> None:
    report = run_lifecycle(
        MockConnector(),
        config={"store": "r"},
        context=CONTEXT,
        plan=[PushPayload(records=RECORDS), FetchQuery(limit=1), SyncState()],
        governance=Governance(audit=MemoryAuditSink()),
    )
    assert report.ok
    assert [s.step for s in report.steps] == ["auth", "connect", "push", "fetch", "sync", "revoke"]
    assert report.steps[3].result is not None
    assert len(report.audit) == 12
    assert {e.correlation_id for e in report.audit} == {report.correlation_id}


def test_run_lifecycle_stops_at_the_first_failure_and_still_revokes() -> None:
    connector = MockConnector()
    connector.faults.fail("fetch", AuthError("denied upstream"))
    report = run_lifecycle(
        connector,
        config={"store": "r"},
        context=CONTEXT,
        plan=[FetchQuery(), SyncState()],
        governance=Governance(audit=MemoryAuditSink()),
    )
    assert not report.ok
    assert report.error is not None
    assert "denied upstream" in report.error
    assert [s.step for s in report.steps] == ["auth", "connect", "fetch", "revoke"]


def test_run_lifecycle_by_name_uses_the_registry_metadata() -> None:
    registry = Registry(distributions=False, governance=Governance(audit=MemoryAuditSink()))
    registry.register("mock", MockConnector)
    report = run_lifecycle("mock", config={"store": "r"}, context=CONTEXT, registry=registry)
    assert report.ok
    assert report.audit[0].connector.name == "mock"


# -- the async session -----------------------------------------------------------------------


def test_async_session_runs_a_sync_connector_in_a_worker_thread(sink: MemoryAuditSink) -> None:
    connector = MockConnector()

    async def main() -> None:
        session = AsyncSession(
            connector, config={"store": "a"}, context=CONTEXT, governance=Governance(audit=sink)
        )
        async with session:
            await session.push(PushPayload(records=RECORDS))
            connector.faults.expire_tokens()
            assert len((await session.fetch(FetchQuery())).records) == 2
        assert session.state is SessionState.CLOSED

    asyncio.run(main())
    assert [c.operation for c in connector.calls] == [
        "auth",
        "connect",
        "push",
        "fetch",
        "auth",
        "fetch",
        "revoke",
    ]


def test_async_session_revokes_when_the_task_is_cancelled(sink: MemoryAuditSink) -> None:
    connector = MockConnector()
    connector.faults.delay("fetch", 1.5)

    async def main() -> None:
        session = AsyncSession(
            connector, config={"store": "a"}, context=CONTEXT, governance=Governance(audit=sink)
        )

        async def work() -> None:
            async with session:
                await session.fetch(FetchQuery())

        task = asyncio.create_task(work())
        while ("fetch", "started") not in [(e.operation, e.phase) for e in sink.events]:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert session.state is SessionState.CLOSED

    asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert connector.calls[-1].operation == "revoke"
    finished = [
        (e.operation, e.outcome, e.error_type) for e in sink.events if e.phase == "finished"
    ]
    assert ("fetch", "error", "CancelledError") in finished
    assert finished[-1] == ("revoke", "ok", None)


def test_async_session_with_an_async_connector_and_fail_closed_audit() -> None:
    from integrations.base import (
        AsyncBaseConnector,
        AuthToken,
        Connection,
        ConnectorConfig,
        FetchResult,
        RevokeResult,
        Secret,
    )

    class AsyncEcho(AsyncBaseConnector[ConnectorConfig]):
        capabilities = frozenset({Capability.FETCH})

        def __init__(self) -> None:
            self.calls: list[str] = []

        async def auth(self, context: AuthContext) -> AuthToken:
            self.calls.append("auth")
            return AuthToken(value=Secret("t"))

        async def connect(self, config: ConnectorConfig) -> Connection:
            self.calls.append("connect")
            return Connection(connection_id="c")

        async def fetch(self, query: FetchQuery) -> FetchResult:
            self.calls.append("fetch")
            return FetchResult(records=(Record(id="1"),))

        async def revoke(self, token: AuthToken) -> RevokeResult:
            self.calls.append("revoke")
            return RevokeResult(revoked=True)

    connector = AsyncEcho()

    async def main() -> None:
        async with AsyncSession(
            connector, config={}, context=CONTEXT, governance=Governance(audit=MemoryAuditSink())
        ) as session:
            assert (await session.fetch(FetchQuery())).records[0].id == "1"
            with pytest.raises(NotSupported):
                await session.push(PushPayload(records=RECORDS))
        closed = AsyncSession(
            AsyncEcho(),
            config={},
            context=CONTEXT,
            governance=Governance(audit=FailingSink(), audit_required=True),
        )
        with pytest.raises(AuditError):
            await closed.open()

    asyncio.run(main())
    assert connector.calls == ["auth", "connect", "fetch", "revoke"]
    registry = Registry(distributions=False)
    registry.register("echo", AsyncEcho)
    with pytest.raises(LifecycleError, match="open_async"):
        registry.open("echo", config={}, context=CONTEXT)


def test_mock_config_model_is_what_sessions_validate() -> None:
    assert MockConnector.config_model is MockConfig
