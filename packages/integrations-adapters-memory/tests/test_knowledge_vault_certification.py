"""``memory.knowledge_vault`` passes the certification kit against a real HTTP server.

The Knowledge Vault searches text only, ingests without idempotency and cannot delete, so
the subclass declares exactly that: no sync, no idempotent push, no tombstones, and sample
queries that search the batch's word (with the tag and metadata filters applied on top).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from integrations.adapters.memory_adapters.knowledge_vault import (
    KnowledgeVaultConfig,
    KnowledgeVaultConnector,
)
from integrations.adapters.memory_adapters.testing import (
    KnowledgeVaultServer,
    MemoryStoreCertification,
)
from integrations.base import Capability, FetchQuery, Record


class TestKnowledgeVaultCertification(MemoryStoreCertification):
    connector_class = KnowledgeVaultConnector
    registry_name = "memory.knowledge_vault"
    unsupported = frozenset({Capability.SYNC})
    push_is_idempotent = False
    supports_tombstones = False

    @pytest.fixture(autouse=True)
    def _vault(self, knowledge_vault: KnowledgeVaultServer) -> None:
        self.server = knowledge_vault

    def config(self) -> KnowledgeVaultConfig:
        return KnowledgeVaultConfig(url=self.server.url, timeout_seconds=5)

    def sample_records(self, count: int) -> list[Record]:
        """Memories whose text holds their batch's word, so that a text query finds the batch."""
        batch = uuid.uuid4().hex[:10]
        return [
            Record(
                id=f"cert-{batch}-{index:03d}",
                data={
                    "text": f"Certification memory {index} of batch{batch} "
                    f"labelled cert{batch}x{index:03d}",
                    "tags": ["certification", f"batch-{batch}"],
                    "metadata": {"batch": batch, "n": index},
                },
            )
            for index in range(count)
        ]

    def sample_queries(self, records: Sequence[Record]) -> list[FetchQuery]:
        """The batch's word, alone and with the tag and metadata filters."""
        batch = records[0].id.split("-")[1]
        text = f"batch{batch}"
        return [
            FetchQuery(text=text),
            FetchQuery(text=text, filters={"tags": [f"batch-{batch}"]}),
            FetchQuery(text=f"certification {text}", filters={"metadata": {"batch": batch}}),
        ]

    def probe_query(self) -> FetchQuery:
        """The API answers text queries only."""
        return FetchQuery(text="certification", limit=1)
