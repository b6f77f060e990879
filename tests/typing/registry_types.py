"""A core module that writes down what the registry hands out, under mypy --strict.

`registry.get` returns a `ConnectorClass` (a sync or an async connector class); a core module
that keeps loaded classes, or passes one along, names that type from a public module.
"""

from __future__ import annotations

from typing import Any

from integrations.base import (
    AsyncConnector,
    AuthContext,
    Connector,
    ConnectorClass,
    UntrustedConfig,
    registry,
)
from integrations.base.lifecycle import Session
from integrations.base.registry import ConnectorClass as RegistryConnectorClass


def load(name: str) -> ConnectorClass:
    """The connector class registered as `name`."""
    loaded: RegistryConnectorClass = registry.get(name)
    return loaded


def instance(name: str) -> Connector[Any] | AsyncConnector[Any]:
    """An instance of connector `name`, of whichever kind it is."""
    return load(name)()


def open_for_tenant(name: str, tenant_input: dict[str, Any], tenant: str) -> Session:
    """A session on a config a tenant wrote: the wrapper is accepted where configs are."""
    return registry.open(
        name,
        config=UntrustedConfig(tenant_input, origin="tenant settings"),
        context=AuthContext(tenant=tenant, actor="settings-service"),
    )
