"""``intent.engine`` passes the certification kit against a real Intent Engine API server.

The engine assigns its own ids, injects without idempotency, cannot delete and has no change
feed: `EngineCertification` (what `integrations certify` runs) declares exactly that, and this
test gives it a real server's URL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.adapters.intent_adapters.engine import IntentEngineConfig, IntentEngineConnector
from integrations.adapters.intent_adapters.testing import EngineCertification, IntentEngineServer


class TestEngineCertification(EngineCertification):
    connector_class = IntentEngineConnector

    @pytest.fixture(autouse=True)
    def _engine(self) -> Iterator[None]:
        with IntentEngineServer() as server:
            self.server = server
            yield

    def config(self) -> IntentEngineConfig:
        return IntentEngineConfig(url=self.server.url, timeout_seconds=5)
