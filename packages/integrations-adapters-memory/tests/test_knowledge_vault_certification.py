"""``memory.knowledge_vault`` passes the certification kit against a real HTTP server.

The Knowledge Vault searches text only, ingests without idempotency and cannot delete:
`KnowledgeVaultCertification` (what `integrations certify` runs) declares exactly that, and
this test gives it a real server's URL.
"""

from __future__ import annotations

import pytest

from integrations.adapters.memory_adapters.knowledge_vault import (
    KnowledgeVaultConfig,
    KnowledgeVaultConnector,
)
from integrations.adapters.memory_adapters.testing import (
    KnowledgeVaultCertification,
    KnowledgeVaultServer,
)


class TestKnowledgeVaultCertification(KnowledgeVaultCertification):
    connector_class = KnowledgeVaultConnector

    @pytest.fixture(autouse=True)
    def _vault(self, knowledge_vault: KnowledgeVaultServer) -> None:
        self.server = knowledge_vault

    def config(self) -> KnowledgeVaultConfig:
        return KnowledgeVaultConfig(url=self.server.url, timeout_seconds=5)
