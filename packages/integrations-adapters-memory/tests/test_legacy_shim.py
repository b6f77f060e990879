"""The legacy ``memory_adapters.knowledge_vault`` client still works, and says what replaces it.

The shim runs on the new connector against a real Knowledge Vault API on 127.0.0.1; every
use is expected to warn (pytest turns an unexpected warning into an error).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import httpx
import pytest

from integrations.adapters.memory_adapters.testing import KnowledgeVaultServer
from integrations.base import ConnectionFailed

pytestmark = pytest.mark.timeout(60)

REPLACEMENT = "'memory.knowledge_vault' connector"


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
    direct = httpx.get(
        f"{knowledge_vault.url}/query", params={"q": "Invoices", "actor_id": "legacy"}
    ).json()
    assert body == direct
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
    assert [result["owner"] for result in body["results"]] == ["bob"]


def test_assigning_the_url_redirects_query_vault(
    legacy: ModuleType, knowledge_vault: KnowledgeVaultServer
) -> None:
    # What legacy code did to redirect calls: ``knowledge_vault.KNOWLEDGE_VAULT_URL = url``.
    vars(legacy)["KNOWLEDGE_VAULT_URL"] = knowledge_vault.url
    with pytest.deprecated_call():
        assert legacy.query_vault("anything") == {"query": "anything", "results": []}
    assert knowledge_vault.requests("/query") == 1


def test_query_vault_raises_the_librarys_errors(legacy: ModuleType) -> None:
    with KnowledgeVaultServer() as stopped:
        url = stopped.url
    vars(legacy)["KNOWLEDGE_VAULT_URL"] = url
    with pytest.deprecated_call(), pytest.raises(ConnectionFailed):
        legacy.query_vault("anything")
