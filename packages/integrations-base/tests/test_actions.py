"""Named actions: the contract, manifest entries, discovery of schemas and governed sessions."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from integrations.base import (
    ActionChunk,
    ActionConnector,
    ActionRequest,
    ActionResult,
    AsyncActionConnector,
    AsyncBaseConnector,
    AsyncSession,
    AuthContext,
    AuthToken,
    BaseConnector,
    Connection,
    Connector,
    ConnectorConfig,
    Governance,
    InvalidRequest,
    MemoryAuditSink,
    NotSupported,
    PolicyError,
    PolicySet,
    QuorumRequired,
    RetryPolicy,
    RevokeResult,
    Secret,
    Session,
    TenantAndActorRequired,
    TransientError,
)
from integrations.base.connector import contract_problems
from integrations.base.registry import ConnectorEntry, Registry, Status, parse_manifest

if TYPE_CHECKING:
    from conftest import FakeSite

MODEL_INVOKE_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["model", "messages"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
            },
        },
        "temperature": {"type": "number"},
        "max_tokens": {"type": "integer"},
    },
}
VALID = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
CONTEXT = AuthContext(tenant="acme", actor="alice")
APPROVED = AuthContext(
    tenant="acme", actor="alice", attributes={"approvals": ["bob", {"approver": "carol"}]}
)
FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.002, jitter=0)


class Echo(BaseConnector[ConnectorConfig]):
    """Answers `model_invoke` with its input; fails the first `failures` calls."""

    actions: ClassVar[frozenset[str]] = frozenset({"model_invoke", "tool_call"})
    failures = 0

    def __init__(self) -> None:
        self.calls: list[ActionRequest] = []
        self.closed = False

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("t"))

    def connect(self, config: ConnectorConfig) -> Connection:
        return Connection(connection_id="echo")

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)

    def invoke(self, request: ActionRequest) -> ActionResult:
        self.calls.append(request)
        if len(self.calls) <= self.failures:
            raise TransientError("try again")
        usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
        return ActionResult(action=request.action, output=dict(request.input), usage=usage)

    def stream(self, request: ActionRequest) -> Iterator[ActionChunk]:
        self.calls.append(request)
        try:
            for word in ("a", "b", "c"):
                yield ActionChunk(delta={"content": word})
            yield ActionChunk(usage={"total_tokens": 3})
        finally:
            self.closed = True


class AsyncEcho(AsyncBaseConnector[ConnectorConfig]):
    """The async twin of `Echo`."""

    actions: ClassVar[frozenset[str]] = frozenset({"model_invoke"})

    def __init__(self) -> None:
        self.calls: list[ActionRequest] = []
        self.closed = False

    async def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("t"))

    async def connect(self, config: ConnectorConfig) -> Connection:
        return Connection(connection_id="echo")

    async def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)

    async def invoke(self, request: ActionRequest) -> ActionResult:
        self.calls.append(request)
        return ActionResult(action=request.action, output={"ok": True}, usage={"total_tokens": 1})

    async def stream(self, request: ActionRequest) -> AsyncIterator[ActionChunk]:
        self.calls.append(request)
        try:
            for word in ("a", "b"):
                yield ActionChunk(delta={"content": word})
            yield ActionChunk(usage={"total_tokens": 2})
        finally:
            self.closed = True


def _entry(schema_dir: Path | None = None, **flags: Any) -> ConnectorEntry:
    """An entry declaring model_invoke (inline schema, or the file in `schema_dir`)."""
    schema: Any = MODEL_INVOKE_SCHEMA
    if schema_dir is not None:
        path = schema_dir / "model_invoke.json"
        path.write_text(json.dumps(MODEL_INVOKE_SCHEMA), encoding="utf-8")
        schema = str(path)
    spec = {"action": "model_invoke", "schema": schema, **flags}
    return ConnectorEntry.model_validate(
        {"name": "echo", "module": "integrations.echo", "class": "Echo", "capabilities": [spec]}
    )


def _governance(sink: MemoryAuditSink, quorum: dict[str, int] | None = None) -> Governance:
    policies = PolicySet([TenantAndActorRequired(), QuorumRequired(quorum)])
    return Governance(policies=policies, audit=sink, retry=FAST, breaker=None)


def _session(
    connector: Echo, sink: MemoryAuditSink, context: AuthContext = CONTEXT, **flags: Any
) -> Session:
    quorum = flags.pop("policies", None)
    return Session(
        connector,
        config={},
        context=context,
        governance=_governance(sink, quorum),
        entry=_entry(**flags),
    )


def _finished(sink: MemoryAuditSink, operation: str) -> list[tuple[str | None, str | None]]:
    return [
        (event.outcome, event.detail)
        for event in sink.events
        if event.operation == operation and event.phase == "finished"
    ]


# -- the contract ----------------------------------------------------------------------------


def test_existing_connectors_still_fit_and_action_connectors_fit_the_action_protocols() -> None:
    assert contract_problems(Echo) == []
    assert contract_problems(AsyncEcho) == []
    assert isinstance(Echo(), Connector)
    assert isinstance(Echo(), ActionConnector)
    assert isinstance(AsyncEcho(), AsyncActionConnector)


def test_a_class_with_actions_must_implement_invoke_with_fitting_names() -> None:
    class NoInvoke(Echo):
        actions = frozenset({"model_invoke", "fetch", "bad name"})
        invoke = BaseConnector.invoke  # type: ignore[assignment]  # the inherited default

    class AsyncStreamInSync(Echo):
        async def stream(self, request: ActionRequest) -> AsyncIterator[ActionChunk]:  # type: ignore[override]  # the mistake under test
            yield ActionChunk()

    class SyncInvokeInAsync(AsyncEcho):
        def invoke(self, request: ActionRequest) -> ActionResult:  # type: ignore[override]  # the mistake under test
            return ActionResult(action="x")

    assert contract_problems(NoInvoke) == [
        "'bad name' is not an action name (letters, digits, _ . -; at most 64)",
        "'fetch' is reserved and cannot name an action",
        "declares actions but does not implement invoke()",
    ]
    assert contract_problems(AsyncStreamInSync) == [
        "stream() of a sync connector must be a plain generator"
    ]
    assert contract_problems(SyncInvokeInAsync) == ["invoke() must be an async method"]


def test_the_base_class_defaults_refuse_actions() -> None:
    class Plain(Echo):
        actions = frozenset()
        invoke = BaseConnector.invoke  # type: ignore[assignment]  # the inherited default

    with pytest.raises(NotSupported, match="does not support action model_invoke"):
        Plain().invoke(ActionRequest(action="model_invoke"))


# -- manifests -------------------------------------------------------------------------------


def test_named_actions_in_capabilities_are_parsed_as_actions() -> None:
    entry = ConnectorEntry.model_validate(
        {
            "name": "v",
            "module": "integrations.v",
            "class": "V",
            "capabilities": [
                "fetch",
                {
                    "action": "model_invoke",
                    "schema": "schemas/model_invoke.json",
                    "quorum_policy": "AI_SENSITIVE",
                    "idempotency": True,
                    "streaming": True,
                },
                {"action": "tool_call", "schema": "schemas/tool_call.json", "quorum_policy": 2},
            ],
        }
    )

    assert entry.capability_names == ("fetch",)
    assert entry.action_names == {"model_invoke", "tool_call"}
    invoke = entry.action("model_invoke")
    assert invoke is not None
    assert (invoke.schema_ref, invoke.quorum, invoke.idempotent, invoke.streaming) == (
        "schemas/model_invoke.json",
        "AI_SENSITIVE",
        True,
        True,
    )
    assert entry.action("tool_call") is not None
    assert entry.action("tool_call").quorum == 2  # type: ignore[union-attr]  # checked above


@pytest.mark.parametrize(
    ("actions", "pointer", "reason"),
    [
        ([{"action": "a", "schema": "s.json"}, {"action": "a", "schema": "t.json"}], "", "once"),
        ([{"action": "model_invoke"}], "/actions/0/schema_ref", "Field required"),
        ([{"action": "x", "schema": "s.json", "quorum_policy": "1bad"}], "/actions/0/quorum", ""),
        ([{"action": "x", "schema": "s.json", "quorum_policy": -1}], "/actions/0/quorum", ""),
        ([{"action": "has space", "schema": "s.json"}], "/actions/0/action", "pattern"),
        ([{"action": "fetch", "schema": "s.json", "x": 1}], "/capabilities/0", ""),
    ],
)
def test_bad_named_actions_are_entry_problems(
    actions: list[dict[str, Any]], pointer: str, reason: str
) -> None:
    entry = {"name": "v", "module": "integrations.v", "class": "V", "capabilities": actions}
    parsed = parse_manifest(json.dumps({"connectors": [entry]}), "m.json")

    [problem] = parsed.problems
    assert problem.pointer.startswith(f"/connectors/0{pointer}")
    assert reason in problem.reason


def _discover(site: FakeSite, schema: object, ref: str = "schemas/model_invoke.json") -> Registry:
    package = site.unique("actions")
    directory = site.manifests / site.unique("dir")
    (directory / "schemas").mkdir(parents=True)
    if schema is not None:
        (directory / "schemas" / "model_invoke.json").write_text(
            schema if isinstance(schema, str) else json.dumps(schema), encoding="utf-8"
        )
    site.write_module(f"{package}.conn", site.connector_source())
    manifest = directory / "manifest.json"
    spec = {"action": "model_invoke", "schema": ref}
    document = {"connectors": [site.entry("echo", f"{package}.conn", capabilities=[spec])]}
    manifest.write_text(json.dumps(document), encoding="utf-8")
    registry = Registry(distributions=False, environment=False, allowed_modules=[package])
    registry.discover(manifest)
    return registry


@pytest.mark.parametrize(
    ("schema", "ref", "problem"),
    [
        (None, "schemas/model_invoke.json", "schema schemas/model_invoke.json does not exist"),
        ("{not json", "schemas/model_invoke.json", "is not valid JSON"),
        ([1], "schemas/model_invoke.json", "is not a JSON object"),
        ({"$schema": "https://json-schema.org/draft/2020-12/schema"}, "schemas/m.json", ""),
        ({"type": "array"}, "schemas/model_invoke.json", "does not describe a JSON object"),
        (MODEL_INVOKE_SCHEMA, "../outside.json", "leaves the manifest's directory"),
        (MODEL_INVOKE_SCHEMA, "/etc/hostname", "must be a path relative to the manifest"),
    ],
)
def test_a_broken_schema_refuses_the_connector_at_discovery_without_importing_it(
    fake_site: FakeSite, schema: object, ref: str, problem: str
) -> None:
    registry = _discover(fake_site, schema, ref)

    info = registry.info("echo")
    assert info.status is Status.REFUSED
    assert info.problem is not None
    assert info.problem.startswith("action model_invoke: schema ")
    assert problem in info.problem
    assert fake_site.imported() == []


def test_discovery_makes_schema_paths_absolute(fake_site: FakeSite) -> None:
    registry = _discover(fake_site, MODEL_INVOKE_SCHEMA)

    info = registry.info("echo")
    assert info.status is Status.OK
    assert info.entry is not None
    spec = info.entry.action("model_invoke")
    assert spec is not None
    assert isinstance(spec.schema_ref, str)
    assert Path(spec.schema_ref).is_absolute()
    assert Path(spec.schema_ref).name == "model_invoke.json"
    assert fake_site.imported() == []


def test_discovery_does_not_import_a_validator(fake_site: FakeSite) -> None:
    code = (
        "import sys, json\n"
        "from integrations.base.registry import Registry\n"
        "r = Registry(distributions=False, environment=False, allowed_modules=['xactions'])\n"
        f"r.discover({str(_manifest_with_schema(fake_site))!r})\n"
        "print(r.info('echo').status, 'jsonschema' in sys.modules)\n"
    )
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=fake_site.subprocess_environment(),
        timeout=60,
    )
    assert out.stdout.split() == ["ok", "False"]


def _manifest_with_schema(site: FakeSite) -> Path:
    directory = site.manifests / site.unique("sub")
    directory.mkdir(parents=True)
    (directory / "s.json").write_text(json.dumps(MODEL_INVOKE_SCHEMA), encoding="utf-8")
    spec = {"action": "model_invoke", "schema": "s.json"}
    site.write_module("xactions.conn", site.connector_source())
    document = {"connectors": [site.entry("echo", "xactions.conn", capabilities=[spec])]}
    (directory / "manifest.json").write_text(json.dumps(document), encoding="utf-8")
    return directory / "manifest.json"


# -- sessions --------------------------------------------------------------------------------


def test_invoke_returns_the_typed_result_and_audits_usage(tmp_path: Path) -> None:
    sink = MemoryAuditSink()
    connector = Echo()
    with Session(
        connector,
        config={},
        context=CONTEXT,
        governance=_governance(sink),
        entry=_entry(tmp_path),
    ) as session:
        result = session.invoke("model_invoke", VALID)

    assert result == ActionResult(
        action="model_invoke",
        output=VALID,
        usage={"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
    )
    assert connector.calls[0].input == VALID
    assert _finished(sink, "model_invoke") == [
        ("ok", "usage completion_tokens=3,prompt_tokens=2,total_tokens=5")
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"messages": []}, "at /model: is required"),
        ({**VALID, "messages": [{"role": "user"}]}, "at /messages/0/content: is required"),
        ({**VALID, "messages": [{"role": 1, "content": "x"}]}, "/messages/0/role: must be of"),
        ({**VALID, "max_tokens": 1.5}, "at /max_tokens: must be of type integer"),
        ({**VALID, "secret": "s3cr3t"}, "at /secret: is not an allowed property"),
        (["not", "an", "object"], "must be a JSON object"),
    ],
)
def test_invalid_input_is_refused_before_any_io_naming_the_pointer(data: Any, message: str) -> None:
    sink = MemoryAuditSink()
    connector = Echo()
    with _session(connector, sink) as session, pytest.raises(InvalidRequest) as raised:
        session.invoke("model_invoke", data)

    assert message in str(raised.value)
    assert "s3cr3t" not in str(raised.value)
    assert connector.calls == []
    [(outcome, detail)] = _finished(sink, "model_invoke")
    assert outcome == "denied"
    assert detail is not None
    assert message in detail


def test_an_undeclared_action_is_not_supported_and_audited() -> None:
    sink = MemoryAuditSink()
    connector = Echo()
    with _session(connector, sink) as session, pytest.raises(NotSupported):
        session.invoke("tool_call", VALID)  # the class has it, the manifest entry does not

    assert connector.calls == []
    assert _finished(sink, "tool_call")[0][0] == "denied"


def test_quorum_by_count_denies_then_records_who_approved() -> None:
    sink = MemoryAuditSink()
    with _session(Echo(), sink, quorum_policy=2) as session, pytest.raises(PolicyError):
        session.invoke("model_invoke", VALID)
    assert _finished(sink, "model_invoke") == [("denied", "QUORUM_REQUIRED")]

    sink = MemoryAuditSink()
    with _session(Echo(), sink, APPROVED, quorum_policy=2) as session:
        session.invoke("model_invoke", VALID)
    [started] = [e for e in sink.events if e.operation == "model_invoke" and e.phase == "started"]
    assert started.detail == "approved by bob,carol"
    assert _finished(sink, "model_invoke") == [
        ("ok", "approved by bob,carol; usage completion_tokens=3,prompt_tokens=2,total_tokens=5")
    ]


def test_quorum_by_policy_name_resolves_from_governance_and_an_unknown_name_fails_closed() -> None:
    sink = MemoryAuditSink()
    flags = {"quorum_policy": "AI_SENSITIVE"}
    with _session(Echo(), sink, APPROVED, policies={"AI_SENSITIVE": 2}, **flags) as session:
        assert session.invoke("model_invoke", VALID).action == "model_invoke"
    with (
        _session(Echo(), sink, APPROVED, policies={"AI_SENSITIVE": 3}, **flags) as session,
        pytest.raises(PolicyError, match="QUORUM_REQUIRED"),
    ):
        session.invoke("model_invoke", VALID)

    sink = MemoryAuditSink()
    with (
        _session(Echo(), sink, APPROVED, **flags) as session,
        pytest.raises(PolicyError, match="quorum policy 'AI_SENSITIVE'"),
    ):
        session.invoke("model_invoke", VALID)
    assert _finished(sink, "model_invoke") == [("denied", "QUORUM_POLICY_UNKNOWN")]


@pytest.mark.parametrize(
    ("idempotent", "key", "calls"), [(True, None, 3), (False, None, 1), (False, "k", 3)]
)
def test_retries_follow_the_idempotency_flag(idempotent: bool, key: str | None, calls: int) -> None:
    sink = MemoryAuditSink()
    connector = Echo()
    connector.failures = 2
    with _session(connector, sink, idempotency=idempotent) as session:
        if calls == 1:
            with pytest.raises(TransientError):
                session.invoke("model_invoke", VALID, idempotency_key=key)
        else:
            session.invoke("model_invoke", VALID, idempotency_key=key)

    assert len(connector.calls) == calls
    assert [c.idempotency_key for c in connector.calls] == [key] * calls
    outcomes = [outcome for outcome, _ in _finished(sink, "model_invoke")]
    assert outcomes == ["error"] * min(calls, 2) + ["ok"] * (calls - 2)


def test_a_connector_answering_the_wrong_type_breaks_the_contract() -> None:
    class Wrong(Echo):
        def invoke(self, request: ActionRequest) -> ActionResult:
            return {"not": "a result"}  # type: ignore[return-value]  # the mistake under test

    from integrations.base import ContractError

    with _session(Wrong(), MemoryAuditSink()) as session, pytest.raises(ContractError):
        session.invoke("model_invoke", VALID)


def test_async_invoke_on_async_and_sync_connectors() -> None:
    async def run() -> tuple[ActionResult, ActionResult]:
        sink = MemoryAuditSink()
        async with AsyncSession(
            AsyncEcho(), config={}, context=CONTEXT, governance=_governance(sink), entry=_entry()
        ) as session:
            first = await session.invoke("model_invoke", VALID)
            with pytest.raises(InvalidRequest, match="/model"):
                await session.invoke("model_invoke", {"messages": []})
        async with AsyncSession(
            Echo(), config={}, context=CONTEXT, governance=_governance(sink), entry=_entry()
        ) as session:
            second = await session.invoke("model_invoke", VALID)
        return first, second

    first, second = asyncio.run(run())
    assert first.output == {"ok": True}
    assert second.output == VALID


# -- streams ---------------------------------------------------------------------------------


def test_a_stream_delivers_chunks_and_audits_once_with_usage_at_the_end() -> None:
    sink = MemoryAuditSink()
    connector = Echo()
    with _session(connector, sink, streaming=True) as session:
        with session.stream("model_invoke", VALID) as chunks:
            assert [e.phase for e in sink.events if e.operation == "model_invoke"] == ["started"]
            deltas = [chunk.delta.get("content") for chunk in chunks]
        assert connector.closed

    assert deltas == ["a", "b", "c", None]
    assert _finished(sink, "model_invoke") == [("ok", "usage total_tokens=3")]


def test_closing_a_stream_early_closes_the_connector_generator_and_audits_it() -> None:
    sink = MemoryAuditSink()
    connector = Echo()
    with _session(connector, sink, streaming=True) as session:
        with session.stream("model_invoke", VALID) as chunks:
            assert next(chunks).delta == {"content": "a"}
        assert connector.closed
        assert _finished(sink, "model_invoke") == [("ok", "closed early after 1 chunks")]

    sink = MemoryAuditSink()
    connector = Echo()
    with _session(connector, sink, streaming=True) as session:
        left_open = session.stream("model_invoke", VALID)
        next(left_open)
    assert connector.closed  # the session closed it before revoking
    assert _finished(sink, "model_invoke") == [("ok", "closed early after 1 chunks")]


def test_a_failing_stream_is_audited_as_an_error() -> None:
    class Failing(Echo):
        def stream(self, request: ActionRequest) -> Iterator[ActionChunk]:
            yield ActionChunk(delta={"content": "a"})
            raise TransientError("connection reset")

    sink = MemoryAuditSink()
    with _session(Failing(), sink, streaming=True) as session:
        chunks = session.stream("model_invoke", VALID)
        with pytest.raises(TransientError):
            list(chunks)

    [finished] = [e for e in sink.events if e.operation == "model_invoke" and e.phase == "finished"]
    assert (finished.outcome, finished.error_type) == ("error", "TransientError")


def test_a_stream_is_refused_before_any_io_when_not_streaming_or_invalid() -> None:
    sink = MemoryAuditSink()
    connector = Echo()
    with _session(connector, sink) as session, pytest.raises(NotSupported, match="streaming"):
        session.stream("model_invoke", VALID)
    with _session(connector, sink, streaming=True) as session, pytest.raises(InvalidRequest):
        session.stream("model_invoke", {"model": 1})
    assert connector.calls == []
    assert [outcome for outcome, _ in _finished(sink, "model_invoke")] == ["denied", "denied"]


def test_async_streams_on_async_and_sync_connectors() -> None:
    async def run(connector: Echo | AsyncEcho, stop_after: int | None) -> list[Any]:
        sink = MemoryAuditSink()
        got: list[Any] = []
        async with (
            AsyncSession(
                connector,
                config={},
                context=CONTEXT,
                governance=_governance(sink),
                entry=_entry(streaming=True),
            ) as session,
            session.stream("model_invoke", VALID) as chunks,
        ):
            async for chunk in chunks:
                got.append(chunk.delta.get("content"))
                if stop_after is not None and len(got) == stop_after:
                    break
        return [got, _finished(sink, "model_invoke")]

    async_echo = AsyncEcho()
    assert asyncio.run(run(async_echo, None)) == [
        ["a", "b", None],
        [("ok", "usage total_tokens=2")],
    ]
    assert async_echo.closed
    early = AsyncEcho()
    assert asyncio.run(run(early, 1)) == [["a"], [("ok", "closed early after 1 chunks")]]
    assert early.closed
    sync_echo = Echo()
    assert asyncio.run(run(sync_echo, 2)) == [["a", "b"], [("ok", "closed early after 2 chunks")]]
    assert sync_echo.closed


# -- quorum policies from governance settings ------------------------------------------------


def test_quorum_policies_come_from_toml_and_the_environment(tmp_path: Path) -> None:
    from integrations.base import ConfigError, GovernanceSettings

    settings_file = tmp_path / "governance.toml"
    settings_file.write_text(
        "[governance]\naudit_log = false\n[governance.quorum_policies]\nAI_SENSITIVE = 2\n",
        encoding="utf-8",
    )
    from_toml = GovernanceSettings.from_toml(settings_file)
    from_env = GovernanceSettings.from_env(
        {"INTEGRATIONS_QUORUM_POLICIES": '{"AI_SENSITIVE": 2}', "INTEGRATIONS_AUDIT_LOG": "0"}
    )
    assert from_toml.quorum_policies == from_env.quorum_policies == {"AI_SENSITIVE": 2}
    with pytest.raises(ConfigError, match="is not a quorum policy name"):
        GovernanceSettings.from_mapping({"quorum_policies": {"1 bad": 1}})
    with pytest.raises(ConfigError, match="count of 0 or more"):
        GovernanceSettings.from_mapping({"quorum_policies": {"AI": -1}})

    sink = MemoryAuditSink()
    governance = dataclasses.replace(from_toml.build(), audit=sink, retry=FAST)
    entry = _entry(quorum_policy="AI_SENSITIVE")
    with Session(Echo(), config={}, context=APPROVED, governance=governance, entry=entry) as s:
        s.invoke("model_invoke", VALID)
    unknown = dataclasses.replace(GovernanceSettings(audit_log=False).build(), audit=sink)
    with (
        Session(Echo(), config={}, context=APPROVED, governance=unknown, entry=entry) as s,
        pytest.raises(PolicyError, match="QUORUM_POLICY_UNKNOWN"),
    ):
        s.invoke("model_invoke", VALID)
    assert [outcome for outcome, _ in _finished(sink, "model_invoke")] == ["ok", "denied"]


# -- the validator ---------------------------------------------------------------------------


def test_a_schema_that_is_not_draft_7_is_a_contract_error_audited_as_a_denial() -> None:
    from integrations.base import ContractError

    broken = {"type": "object", "properties": {"model": {"type": "nonsense"}}}
    entry = ConnectorEntry.model_validate(
        {
            "name": "echo",
            "module": "integrations.echo",
            "class": "Echo",
            "actions": [{"action": "model_invoke", "schema": broken}],
        }
    )
    sink = MemoryAuditSink()
    connector = Echo()
    with (
        Session(
            connector, config={}, context=CONTEXT, governance=_governance(sink), entry=entry
        ) as session,
        pytest.raises(ContractError, match="not a valid draft 7 schema at /properties/model/type"),
    ):
        session.invoke("model_invoke", VALID)
    assert connector.calls == []
    assert _finished(sink, "model_invoke")[0][0] == "denied"


def test_without_jsonschema_an_action_is_unavailable_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from integrations.base import ConnectorUnavailable

    monkeypatch.setitem(sys.modules, "jsonschema", None)  # what an absent package looks like
    odd = {**MODEL_INVOKE_SCHEMA, "title": "only in this test"}  # not compiled before
    entry = ConnectorEntry.model_validate(
        {
            "name": "echo",
            "module": "integrations.echo",
            "class": "Echo",
            "actions": [{"action": "model_invoke", "schema": odd}],
        }
    )
    with (
        Session(
            Echo(),
            config={},
            context=CONTEXT,
            governance=_governance(MemoryAuditSink()),
            entry=entry,
        ) as session,
        pytest.raises(ConnectorUnavailable, match=r"integrations-base\[actions\]"),
    ):
        session.invoke("model_invoke", VALID)
