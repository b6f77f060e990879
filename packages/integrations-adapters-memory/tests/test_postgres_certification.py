"""memory.postgres passes every check of the certification kit, on a real PostgreSQL server."""

from __future__ import annotations

import uuid

import pytest

from integrations.adapters.memory_adapters.postgres import (
    PostgresMemoryConfig,
    PostgresMemoryConnector,
)
from integrations.adapters.memory_adapters.testing import MemoryStoreCertification


class TestPostgresCertification(MemoryStoreCertification):
    connector_class = PostgresMemoryConnector
    registry_name = "memory.postgres"

    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str) -> None:
        self.dsn = postgres_dsn
        self.schema_name = f"certification_{uuid.uuid4().hex[:12]}"

    def config(self) -> PostgresMemoryConfig:
        return PostgresMemoryConfig(dsn=self.dsn, schema_name=self.schema_name)
