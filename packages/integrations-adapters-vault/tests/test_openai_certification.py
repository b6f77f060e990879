"""``vault.openai`` passes the certification kit against a real OpenAI-compatible server.

`OpenAICertification` (what `integrations certify` runs) declares named actions only and
defines the manifest's quorum policies; this test gives it a running server's URL and key.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from integrations.adapters.vault_connectors.openai import OpenAIConfig, OpenAIConnector
from integrations.adapters.vault_connectors.testing import OpenAICertification, OpenAIServer

KEY = "sk-certification-5b1f0c9e"


class TestOpenAICertification(OpenAICertification):
    connector_class = OpenAIConnector

    @pytest.fixture(autouse=True)
    def _api(self) -> Iterator[None]:
        with OpenAIServer(api_key=KEY) as server:
            self.server = server
            yield

    def config(self) -> OpenAIConfig:
        return OpenAIConfig(url=self.server.url, api_key=f"literal:{KEY}", timeout_seconds=5)
