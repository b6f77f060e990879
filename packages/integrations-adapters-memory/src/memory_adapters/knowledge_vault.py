"""Deprecated: the legacy Knowledge Vault client, kept working on the new connector.

Use the ``memory.knowledge_vault`` connector through a governed session instead (see the
migration guide)::

    from integrations.base import AuthContext, FetchQuery, registry

    context = AuthContext(tenant="acme", actor="alice")
    with registry.open("memory.knowledge_vault", config={"url": url}, context=context) as session:
        page = session.fetch(FetchQuery(text="quarterly report"))

What still works, unchanged for its callers:

- ``KNOWLEDGE_VAULT_URL``: the API's base URL, read from the ``KNOWLEDGE_VAULT_URL``
  environment variable when the module is imported (default ``http://localhost:8000``).
  Assigning the module attribute redirects later calls, as before.
- ``query_vault(query)``: the parsed JSON body of ``GET /query``, exactly as the API sent it
  (``{"query": ..., "results": [...]}``), now requested by `KnowledgeVaultConnector`. The
  legacy function took no actor, so the call sends ``actor_id`` =
  ``KNOWLEDGE_VAULT_ACTOR``: the ``KNOWLEDGE_VAULT_ACTOR`` environment variable read at
  import, default ``"legacy"``. Failures raise errors of `integrations.base`
  (``ConnectionFailed`` when the API cannot be reached, ``TransientError`` on a timeout or
  a 5xx, ...); each call opens a connection, checks ``/health``, queries and closes.

Reading ``KNOWLEDGE_VAULT_URL`` and calling ``query_vault`` emit a `DeprecationWarning` that
names the replacement, attributed to the caller's line.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Final

from integrations.adapters.memory_adapters.knowledge_vault import (
    DEFAULT_URL,
    KnowledgeVaultConfig,
    KnowledgeVaultConnector,
)
from integrations.base import AuthContext, JsonObject

__all__ = ["KNOWLEDGE_VAULT_ACTOR", "KNOWLEDGE_VAULT_URL", "LEGACY_TENANT", "query_vault"]

KNOWLEDGE_VAULT_ACTOR: Final = os.environ.get("KNOWLEDGE_VAULT_ACTOR") or "legacy"
"""The ``actor_id`` `query_vault` sends (the legacy function took none)."""

LEGACY_TENANT: Final = "legacy"
"""The tenant of the connector sessions `query_vault` opens; the raw answer is not filtered."""

_URL_FROM_ENVIRONMENT: Final = os.environ.get("KNOWLEDGE_VAULT_URL") or DEFAULT_URL

_URL_WARNING: Final = (
    "memory_adapters.knowledge_vault.KNOWLEDGE_VAULT_URL is deprecated: configure the "
    "'memory.knowledge_vault' connector instead (KnowledgeVaultConfig(url=...) from "
    "integrations.adapters.memory_adapters.knowledge_vault)"
)
_QUERY_WARNING: Final = (
    "memory_adapters.knowledge_vault.query_vault() is deprecated: open the "
    "'memory.knowledge_vault' connector with registry.open(...) and call "
    "session.fetch(FetchQuery(text=...))"
)

if TYPE_CHECKING:
    KNOWLEDGE_VAULT_URL: str


def __getattr__(name: str) -> str:
    """The deprecated constant, with its warning (PEP 562: asked only when not assigned)."""
    if name == "KNOWLEDGE_VAULT_URL":
        warnings.warn(_URL_WARNING, DeprecationWarning, stacklevel=2)
        return _URL_FROM_ENVIRONMENT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def query_vault(query: str) -> JsonObject:
    """Deprecated: the body of ``GET /query`` for `query` (see the module's documentation)."""
    warnings.warn(_QUERY_WARNING, DeprecationWarning, stacklevel=2)
    url = globals().get("KNOWLEDGE_VAULT_URL", _URL_FROM_ENVIRONMENT)
    connector = KnowledgeVaultConnector()
    token = connector.auth(AuthContext(tenant=LEGACY_TENANT, actor=KNOWLEDGE_VAULT_ACTOR))
    try:
        connector.connect(KnowledgeVaultConfig.from_mapping({"url": url}))
        return connector.query_body(query)
    finally:
        connector.revoke(token)
