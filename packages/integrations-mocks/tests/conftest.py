"""Fixtures shared by the mock connector's tests.

Stores are process-wide, so every test gets a store name of its own and cannot see another
test's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from integrations.base import AuthContext, PushPayload, Record
from integrations.mocks import MockConfig, MockConnector, MockStore, get_store

OpenConnector = Callable[..., MockConnector]


@pytest.fixture
def store_name() -> str:
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture
def store(store_name: str) -> MockStore:
    return get_store(store_name)


@pytest.fixture
def config(store_name: str) -> MockConfig:
    return MockConfig(store=store_name)


@pytest.fixture
def open_connector(store_name: str) -> OpenConnector:
    """Build a connector that went through auth and connect, the way a session runs them."""

    def build(tenant: str | None = "acme", **settings: Any) -> MockConnector:
        connector = MockConnector()
        connector.auth(AuthContext(tenant=tenant, actor="alice"))
        connector.connect(MockConfig(store=store_name, **settings))
        return connector

    return build


@pytest.fixture
def ready(open_connector: OpenConnector) -> MockConnector:
    """A connector authenticated for tenant `acme` and connected to this test's store."""
    return open_connector()


@pytest.fixture
def push_records() -> Callable[..., None]:
    """Push records built from `id=data` keyword arguments, failing on any rejection."""

    def push(connector: MockConnector, **records: dict[str, Any]) -> None:
        payload = PushPayload(
            records=tuple(Record(id=key, data=data) for key, data in records.items())
        )
        result = connector.push(payload)
        assert not result.rejected, result.rejected

    return push
