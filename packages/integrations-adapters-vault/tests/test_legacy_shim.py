"""The legacy ``vault_connectors.ai.openai.connector`` still works, and says what replaces it.

The shim runs on ``vault.openai`` through governed sessions of the default registry, against
a real OpenAI-compatible API on 127.0.0.1; every use is expected to warn (pytest turns an
unexpected warning into an error).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from integrations.adapters.vault_connectors.testing import OpenAIServer, openai_server
from integrations.base import (
    Governance,
    InvalidRequest,
    MemoryAuditSink,
    PolicyError,
    PolicySet,
    QuorumRequired,
    TenantAndActorRequired,
    TransientError,
)
from integrations.base.registry import default_registry
from openai_support import KEY, KEY_VARIABLE, QUICK, QUORUM_POLICIES
from vault_connectors.ai.openai import connector as legacy

pytestmark = pytest.mark.timeout(60)

REPLACEMENT = "'vault.openai' connector"
CONTEXT = {"tenant_id": "acme", "actor_id": "alice", "quorum": ["bob", "carol"]}
PAYLOAD = {"messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with openai_server(api_key=KEY) as running:
        yield running


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VARIABLE, KEY)


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch) -> MemoryAuditSink:
    """The default registry's governance, audited in memory, retrying quickly."""
    sink = MemoryAuditSink()
    monkeypatch.setattr(default_registry, "governance", Governance(audit=sink, retry=QUICK))
    return sink


def connector(server: OpenAIServer, **more: Any) -> legacy.OpenAIConnector:
    with pytest.warns(DeprecationWarning, match=REPLACEMENT):
        config = legacy.ConnectorConfig(base_url=server.url, timeout_seconds=5)
    with pytest.warns(DeprecationWarning, match=REPLACEMENT):
        return legacy.OpenAIConnector(config=config, **more)


def execute(
    shim: legacy.OpenAIConnector, context: dict[str, Any], action: str, payload: dict[str, Any]
) -> dict[str, Any]:
    with pytest.warns(DeprecationWarning, match=r"session\.invoke"):
        return shim.execute(context, action, payload)


# -- the config and the key ------------------------------------------------------------------


def test_the_defaults_come_from_the_packaged_json() -> None:
    text = resources.files("vault_connectors.ai.openai").joinpath("config/openai.defaults.json")
    defaults = json.loads(text.read_text("utf-8"))
    assert defaults == {
        "base_url": "https://api.openai.com/v1",
        "timeout_seconds": 30,
        "max_retries": 3,
        "model": "gpt-4o-mini",
    }
    with pytest.warns(DeprecationWarning, match=REPLACEMENT):
        config = legacy.ConnectorConfig()
    assert (config.base_url, config.timeout_seconds, config.max_retries, config.model) == (
        "https://api.openai.com/v1",
        30,
        3,
        "gpt-4o-mini",
    )


def test_the_legacy_schemas_ship_beside_the_config_as_the_connectors() -> None:
    legacy_files = resources.files("vault_connectors.ai.openai").joinpath("schemas")
    shipped = resources.files("integrations.adapters.vault_connectors").joinpath("schemas")
    for name in ("model_invoke.json", "tool_call.json"):
        assert legacy_files.joinpath(name).read_bytes() == shipped.joinpath(name).read_bytes()


def test_the_auth_provider_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.warns(DeprecationWarning, match=REPLACEMENT):
        provider = legacy.VaultAuthProvider()
    assert provider.get_credentials() == {"api_key": KEY}
    assert KEY not in repr(provider)
    monkeypatch.delenv(KEY_VARIABLE)
    with pytest.raises(RuntimeError, match=r"^OPENAI_API_KEY_MISSING$"):
        provider.get_credentials()
    with pytest.warns(DeprecationWarning, match=REPLACEMENT):
        other = legacy.VaultAuthProvider(env_key="OTHER_KEY")
    monkeypatch.setenv("OTHER_KEY", "sk-other")
    assert other.get_credentials() == {"api_key": "sk-other"}


# -- the connector ---------------------------------------------------------------------------


def test_the_connector_describes_itself(server: OpenAIServer) -> None:
    shim = connector(server)
    assert (shim.id, shim.domain) == ("pv.ai.openai", "ai")
    assert isinstance(shim.version, str)
    assert shim.version
    assert shim.capabilities() == ["model_invoke", "tool_call"]


@pytest.mark.parametrize(
    ("context", "action", "code"),
    [
        ({"actor_id": "alice"}, "model_invoke", "TENANT_REQUIRED"),
        ({"tenant_id": "acme"}, "model_invoke", "ACTOR_REQUIRED"),
        ({"tenant_id": "acme", "actor_id": "alice"}, "image_generate", "ACTION_NOT_SUPPORTED"),
    ],
)
def test_validate_raises_the_legacy_codes(
    server: OpenAIServer, context: dict[str, Any], action: str, code: str
) -> None:
    with pytest.raises(ValueError, match=f"^{code}$"):
        connector(server).validate(context, action)


def test_execute_without_a_quorum_is_refused_before_any_request(server: OpenAIServer) -> None:
    shim = connector(server)
    with pytest.raises(RuntimeError, match=r"^QUORUM_REQUIRED$"):
        execute(shim, {"tenant_id": "acme", "actor_id": "alice"}, "model_invoke", PAYLOAD)
    assert server.http.count() == 0


def test_execute_answers_the_providers_body_in_a_governed_session(
    server: OpenAIServer, audit: MemoryAuditSink
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    shim = connector(server, audit_hook=lambda event, payload: events.append((event, payload)))
    body = execute(shim, CONTEXT, "model_invoke", PAYLOAD)
    assert body["choices"][0]["message"]["content"] == "You said: hello there"
    assert body["model"] == "gpt-4o-mini"  # the default model, filled in
    assert server.chat_requests()[0]["model"] == "gpt-4o-mini"
    assert [event for event, _ in events] == ["request", "execution"]
    assert events[1][1]["usage"]["total_tokens"] == 6
    assert events[0][1]["tenant_id"] == "acme"
    assert events[0][1]["action"] == "model_invoke"
    operations = [e.operation for e in audit.events if e.phase != "started"]
    assert operations == ["auth", "connect", "model_invoke", "revoke"]
    (invoked,) = [e for e in audit.events if e.operation == "model_invoke" and e.phase != "started"]
    assert (invoked.tenant, invoked.actor) == ("acme", "alice")
    assert KEY not in json.dumps([payload for _, payload in events])


@pytest.mark.parametrize(("max_retries", "attempts"), [(3, 3), (1, 1), (0, 1)])
def test_max_retries_is_the_attempts_of_the_session(
    server: OpenAIServer, audit: MemoryAuditSink, max_retries: int, attempts: int
) -> None:
    with pytest.warns(DeprecationWarning, match=REPLACEMENT):
        config = legacy.ConnectorConfig(base_url=server.url, max_retries=max_retries)
    with pytest.warns(DeprecationWarning, match=REPLACEMENT):
        shim = legacy.OpenAIConnector(config=config)
    server.fail_next(5, status=503)
    with pytest.raises(TransientError):
        execute(shim, CONTEXT, "model_invoke", PAYLOAD)
    assert server.requests() == attempts


def test_execute_runs_tool_call(server: OpenAIServer, audit: MemoryAuditSink) -> None:
    tool = {"type": "function", "function": {"name": "lookup_order"}}
    body = execute(connector(server), CONTEXT, "tool_call", {**PAYLOAD, "tools": [tool]})
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup_order"


def test_a_failure_calls_the_error_hook_and_raises(
    server: OpenAIServer, audit: MemoryAuditSink
) -> None:
    events: list[str] = []
    shim = connector(server, audit_hook=lambda event, _: events.append(event))
    with pytest.raises(InvalidRequest, match="/messages"):
        execute(shim, CONTEXT, "model_invoke", {"messages": "not a list"})
    assert events == ["request", "error"]
    assert server.http.count() == 0


def test_the_governances_quorum_policy_applies(
    server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = Governance(
        policies=PolicySet([TenantAndActorRequired(), QuorumRequired(QUORUM_POLICIES)]),
        audit=MemoryAuditSink(),
        retry=QUICK,
    )
    monkeypatch.setattr(default_registry, "governance", strict)
    one_approver = {**CONTEXT, "quorum": ["bob"]}
    with pytest.raises(PolicyError, match="2 approvers"):
        execute(connector(server), one_approver, "model_invoke", PAYLOAD)
    assert server.http.count() == 0
    body = execute(connector(server), CONTEXT, "model_invoke", PAYLOAD)
    assert body["object"] == "chat.completion"


def test_a_custom_auth_provider_gives_the_key(
    server: OpenAIServer, audit: MemoryAuditSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Provider:
        def get_credentials(self) -> dict[str, str]:
            return {"api_key": KEY}

    monkeypatch.delenv(KEY_VARIABLE)
    body = execute(connector(server, auth_provider=Provider()), CONTEXT, "model_invoke", PAYLOAD)
    assert body["object"] == "chat.completion"
    assert KEY not in json.dumps([event.to_json() for event in audit.events])


def test_health(
    server: OpenAIServer, audit: MemoryAuditSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    shim = connector(server)
    assert shim.health() == {"id": "pv.ai.openai", "status": "ok"}
    monkeypatch.delenv(KEY_VARIABLE)
    assert shim.health() == {"id": "pv.ai.openai", "status": "error", "error": "SecretError"}
