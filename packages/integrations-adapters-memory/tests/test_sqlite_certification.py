"""memory.sqlite passes every check of the certification kit, on a real SQLite file."""

from __future__ import annotations

import pytest

from integrations.adapters.memory_adapters.sqlite import SqliteMemoryConfig, SqliteMemoryConnector
from integrations.adapters.memory_adapters.testing import MemoryStoreCertification


class TestSqliteCertification(MemoryStoreCertification):
    connector_class = SqliteMemoryConnector
    registry_name = "memory.sqlite"

    @pytest.fixture(autouse=True)
    def _file(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.path = tmp_path_factory.mktemp("sqlite-certification") / "memories.sqlite3"

    def config(self) -> SqliteMemoryConfig:
        return SqliteMemoryConfig(path=str(self.path))
