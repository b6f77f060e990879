"""Testing support for the vault connectors: certification, and real servers on 127.0.0.1.

`OpenAICertification` is what `integrations certify vault.openai` runs (the manifest names
it); it needs the certification kit (``integrations-base[testing]``) and is imported on first
use, so the servers work without pytest. `OpenAIServer` (and `openai_server`) serves an
OpenAI-compatible chat completions API on 127.0.0.1, streaming and errors included, with
latency and fault controls. `VaultServer` (and `vault_server`) serves the HashiCorp Vault
endpoints the ``vault:`` secret provider uses (KV v1 and v2 reads, token lookup, AppRole
login) on 127.0.0.1, over HTTP or HTTPS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._openai_server import DEFAULT_MODELS, OpenAIServer, openai_error, openai_server
from ._vault_server import VaultServer, vault_server

if TYPE_CHECKING:
    from ._openai_certification import OpenAICertification

__all__ = [
    "DEFAULT_MODELS",
    "OpenAICertification",
    "OpenAIServer",
    "VaultServer",
    "openai_error",
    "openai_server",
    "vault_server",
]


def __getattr__(name: str) -> Any:
    """Import the certification kit on first use only."""
    if name == "OpenAICertification":
        from ._openai_certification import OpenAICertification

        globals()[name] = OpenAICertification
        return OpenAICertification
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
