"""The legacy ``memory_adapters.knowledge_vault`` client still works, and says what replaces it.

The shim runs on the new connector, through a governed session of the default registry,
against a real Knowledge Vault API on 127.0.0.1 in each mode of the test server (the API as
documented, and as the deployed Chroma service answers); every use is expected to warn
(pytest turns an unexpected warning into an error).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest

from integrations.adapters.memory_adapters.testing import KnowledgeVaultServer
from integrations.base import (
    CapabilityAllowlist,
    ConnectionFailed,
    Governance,
    MemoryAuditSink,
    PolicyError,
    PolicySet,
    RetryPolicy,
)
from integrations.base.registry import default_registry
from integrations.base.testing import HTTPReply

pytestmark = pytest.mark.timeout(60)

REPLACEMENT = "'memory.knowledge_vault' connector"
FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02, jitter=0, deadline=5)


@pytest.fixture(params=["documents", "deployed"])
def knowledge_vault(request: pytest.FixtureRequest) -> Iterator[KnowledgeVaultServer]:
    """A Knowledge Vault API on 127.0.0.1 with no documents, in each mode of the test server."""
    with KnowledgeVaultServer(mode=request.param) as server:
        yield server


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch) -> MemoryAuditSink:
    """The default registry's governance, audited in memory, retrying quickly."""
    sink = MemoryAuditSink()
    governance = Governance(audit=sink, retry=FAST, breaker=None)
    monkeypatch.setattr(default_registry, "governance", governance)
    return sink


def direct(server: KnowledgeVaultServer, query: str, actor: str = "legacy") -> Any:
    """The body the API answers to ``GET /query``, asked without the library."""
    return httpx.get(f"{server.url}/query", params={"q": query, "actor_id": actor}).json()


def owners(server: KnowledgeVaultServer, body: Any) -> list[str]:
    """The owners of the results of a ``/query`` body, in either answer shape."""
    if server.mode == "deployed":
        (metadatas,) = body["results"]["metadatas"]
        return [metadata["owner"] for metadata in metadatas]
    return [result["owner"] for result in body["results"]]


@pytest.fixture
def legacy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The shim module, imported afresh from a clean environment (and again afterwards)."""
    monkeypatch.delenv("KNOWLEDGE_VAULT_URL", raising=False)
    monkeypatch.delenv("KNOWLEDGE_VAULT_ACTOR", raising=False)
    module = importlib.reload(importlib.import_module("memory_adapters.knowledge_vault"))
    yield module
    monkeypatch.undo()
    vars(module).pop("KNOWLEDGE_VAULT_URL", None)  # a value a test assigned survives a reload
    importlib.reload(module)


def test_the_url_defaults_to_localhost(legacy: ModuleType) -> None:
    with pytest.deprecated_call(match=REPLACEMENT):
        assert legacy.KNOWLEDGE_VAULT_URL == "http://localhost:8000"


def test_the_url_honours_the_environment(
    legacy: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWLEDGE_VAULT_URL", "http://vault.internal:9000")
    reloaded = importlib.reload(legacy)
    with pytest.deprecated_call(match="KnowledgeVaultConfig"):
        assert reloaded.KNOWLEDGE_VAULT_URL == "http://vault.internal:9000"


def test_importing_from_the_module_warns_at_the_callers_line(legacy: ModuleType) -> None:
    with pytest.warns(DeprecationWarning, match=REPLACEMENT) as caught:
        from memory_adapters.knowledge_vault import KNOWLEDGE_VAULT_URL  # noqa: F401
    assert caught[0].filename == __file__


def test_query_vault_returns_the_body_the_api_returns(
    legacy: ModuleType, monkeypatch: pytest.MonkeyPatch, knowledge_vault: KnowledgeVaultServer
) -> None:
    knowledge_vault.ingest("legacy notes on invoices", "legacy", {"source": "old"})
    knowledge_vault.ingest("invoices of someone else", "bob")
    monkeypatch.setenv("KNOWLEDGE_VAULT_URL", knowledge_vault.url)
    reloaded = importlib.reload(legacy)
    with pytest.deprecated_call(match=r"session\.fetch\(FetchQuery\(text=\.\.\.\)\)") as caught:
        body = reloaded.query_vault("Invoices")
    assert caught[0].filename == __file__
    assert body == direct(knowledge_vault, "Invoices")
    if knowledge_vault.mode == "deployed":  # Chroma's parallel lists, without the text
        results = body["results"]
        assert results["documents"] == [[None]]
        assert results["metadatas"] == [[{"source": "old", "owner": "legacy"}]]
    else:
        assert [result["content"] for result in body["results"]] == ["legacy notes on invoices"]


def test_query_vault_sends_the_configured_actor(
    legacy: ModuleType, monkeypatch: pytest.MonkeyPatch, knowledge_vault: KnowledgeVaultServer
) -> None:
    knowledge_vault.ingest("bob's invoices", "bob")
    monkeypatch.setenv("KNOWLEDGE_VAULT_URL", knowledge_vault.url)
    monkeypatch.setenv("KNOWLEDGE_VAULT_ACTOR", "bob")
    reloaded = importlib.reload(legacy)
    with pytest.deprecated_call():
        body = reloaded.query_vault("invoices")
    assert owners(knowledge_vault, body) == ["bob"]


def test_assigning_the_url_redirects_query_vault(
    legacy: ModuleType, knowledge_vault: KnowledgeVaultServer
) -> None:
    # What legacy code did to redirect calls: ``knowledge_vault.KNOWLEDGE_VAULT_URL = url``.
    vars(legacy)["KNOWLEDGE_VAULT_URL"] = knowledge_vault.url
    with pytest.deprecated_call():
        assert legacy.query_vault("anything") == direct(knowledge_vault, "anything")
    assert knowledge_vault.requests("/query") == 2  # the shim's, and the direct one


@pytest.mark.parametrize("body", [[{"doc_id": "d1"}], "text", 42, None])
def test_query_vault_returns_any_json_unchanged(legacy: ModuleType, body: object) -> None:
    with KnowledgeVaultServer() as server:
        encoded = json.dumps(body).encode()
        server.http.script("/query", HTTPReply(body=encoded))
        vars(legacy)["KNOWLEDGE_VAULT_URL"] = server.url
        with pytest.deprecated_call():
            assert legacy.query_vault("anything") == body


def test_query_vault_runs_in_a_governed_session(
    legacy: ModuleType, knowledge_vault: KnowledgeVaultServer, audit: MemoryAuditSink
) -> None:
    vars(legacy)["KNOWLEDGE_VAULT_URL"] = knowledge_vault.url
    knowledge_vault.fail_next(1, status=503, retry_after="0", endpoint="/query")
    with pytest.deprecated_call():
        body = legacy.query_vault("retried")
    assert body == direct(knowledge_vault, "retried")
    assert knowledge_vault.requests("/query") == 3  # failed, retried by the session, direct
    fetches = [e for e in audit.events if e.operation == "fetch" and e.phase == "finished"]
    assert [(e.connector.name, e.tenant, e.actor, e.outcome) for e in fetches] == [
        ("memory.knowledge_vault", legacy.LEGACY_TENANT, "legacy", "error"),
        ("memory.knowledge_vault", legacy.LEGACY_TENANT, "legacy", "ok"),
    ]
    finished = [e.operation for e in audit.events if e.phase == "finished"]
    assert finished[:2] == ["auth", "connect"]
    assert finished[-1] == "revoke"  # the session was closed


def test_query_vault_obeys_the_policies(
    legacy: ModuleType,
    knowledge_vault: KnowledgeVaultServer,
    audit: MemoryAuditSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policies = PolicySet([CapabilityAllowlist({"*": ["memory.knowledge_vault:push"]})])
    governance = Governance(audit=audit, policies=policies, retry=FAST, breaker=None)
    monkeypatch.setattr(default_registry, "governance", governance)
    vars(legacy)["KNOWLEDGE_VAULT_URL"] = knowledge_vault.url
    with pytest.deprecated_call(), pytest.raises(PolicyError, match="CAPABILITY_NOT_ALLOWED"):
        legacy.query_vault("denied")
    assert knowledge_vault.requests("/query") == 0


def test_query_vault_raises_the_librarys_errors(legacy: ModuleType) -> None:
    with KnowledgeVaultServer() as stopped:
        url = stopped.url
    vars(legacy)["KNOWLEDGE_VAULT_URL"] = url
    with pytest.deprecated_call(), pytest.raises(ConnectionFailed):
        legacy.query_vault("anything")
