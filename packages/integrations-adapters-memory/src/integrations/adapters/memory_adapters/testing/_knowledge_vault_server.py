"""A Knowledge Vault HTTP API on 127.0.0.1 for tests and local work (to be implemented)."""

from __future__ import annotations

__all__ = ["KnowledgeVaultServer"]


class KnowledgeVaultServer:
    """The Knowledge Vault endpoints (/health, /query, /ingest) served from memory."""
