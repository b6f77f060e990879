"""memory.redis passes the certification kit against a real redis-server with RediSearch."""

from __future__ import annotations

import uuid

import pytest

from integrations.adapters.memory_adapters.redis import RedisMemoryConfig, RedisMemoryConnector
from integrations.adapters.memory_adapters.testing import MemoryStoreCertification


class TestRedisCertification(MemoryStoreCertification):
    connector_class = RedisMemoryConnector
    registry_name = "memory.redis"

    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str) -> None:
        self.url = redis_url

    def config(self) -> RedisMemoryConfig:
        return RedisMemoryConfig(url=self.url, key_prefix=f"cert:{uuid.uuid4().hex[:10]}")
