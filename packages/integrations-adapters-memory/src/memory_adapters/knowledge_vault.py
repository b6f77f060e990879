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
- ``query_vault(query)``: the parsed JSON body of ``GET /query``, exactly as the API sent it,
  whatever its shape (the documented ``{"query": ..., "results": [...]}``, or the Chroma
  query result the deployed service answers). The legacy function took no actor, so the
  call sends ``actor_id`` = ``KNOWLEDGE_VAULT_ACTOR``: the ``KNOWLEDGE_VAULT_ACTOR``
  environment variable read at import, default ``"legacy"``.

Each call opens a governed session on ``memory.knowledge_vault`` from the default registry
(tenant `LEGACY_TENANT`, the actor above, the registry's governance: policies, audit,
retries), fetches with `KnowledgeVaultConfig.raw_answers` set, which returns the answer
unchanged as one record, and closes the session. Failures raise errors of
`integrations.base` (``ConnectionFailed`` when the API cannot be reached, ``TransientError``
on a timeout or a 5xx once the retries are spent, ``PolicyError`` when a policy denies
it, ...).

Reading ``KNOWLEDGE_VAULT_URL`` and calling ``query_vault`` emit a `DeprecationWarning` that
names the replacement, attributed to the caller's line.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Final

from pydantic import JsonValue

from integrations.adapters.memory_adapters.knowledge_vault import DEFAULT_URL
from integrations.base import AuthContext, FetchQuery, registry

__all__ = ["KNOWLEDGE_VAULT_ACTOR", "KNOWLEDGE_VAULT_URL", "LEGACY_TENANT", "query_vault"]

KNOWLEDGE_VAULT_ACTOR: Final = os.environ.get("KNOWLEDGE_VAULT_ACTOR") or "legacy"
"""The ``actor_id`` `query_vault` sends (the legacy function took none)."""

LEGACY_TENANT: Final = "legacy"
"""The tenant of the sessions `query_vault` opens; the raw answer is not filtered by it."""

CONNECTOR: Final = "memory.knowledge_vault"
"""The registry name of the connector `query_vault` runs on."""

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


def query_vault(query: str) -> JsonValue:
    """Deprecated: the body of ``GET /query`` for `query` (see the module's documentation)."""
    warnings.warn(_QUERY_WARNING, DeprecationWarning, stacklevel=2)
    url = globals().get("KNOWLEDGE_VAULT_URL", _URL_FROM_ENVIRONMENT)
    context = AuthContext(tenant=LEGACY_TENANT, actor=KNOWLEDGE_VAULT_ACTOR)
    config = {"url": url, "raw_answers": True}
    with registry.open(CONNECTOR, config=config, context=context) as session:
        (answer,) = session.fetch(FetchQuery(text=query)).records
    return answer.data["body"]
