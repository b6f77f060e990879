"""The mock connector passes the certification kit of integrations-base, every check of it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from integrations.base import FetchQuery, Record
from integrations.base.testing import ConnectorCertification
from integrations.mocks import MockConfig, MockConnector


class TestMockCertification(ConnectorCertification):
    connector_class = MockConnector
    registry_name = "mock"
    supports_text_search = True
    supports_tombstones = True
    push_is_idempotent = True  # the manifest says so too; the kit checks they agree

    def config(self) -> MockConfig:
        # A store of its own per check: the kit's default context already isolates tenants.
        return MockConfig(store=f"certification-{uuid.uuid4().hex}")

    def sample_queries(self, records: Sequence[Record]) -> list[FetchQuery]:
        batch = records[0].data["batch"]
        return [FetchQuery(), FetchQuery(filters={"batch": batch})]
