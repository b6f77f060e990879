"""Connector registry: discover connectors from manifests and load them on first use.

The module-level functions act on one default `Registry`; create your own `Registry` for
isolation (one per test, say)::

    from integrations.base import registry

    registry.discover()                 # reads manifests, imports nothing
    connector_cls = registry.get("mock")  # imports the connector's module now
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._connector import Connector
from ._governance import Governance
from ._manifest import (
    ActionSpec,
    AuditSpec,
    AuthSpec,
    CapabilitySpec,
    ConnectorEntry,
    EntryProblem,
    ManifestDocument,
    ParsedManifest,
    manifest_json_schema,
    parse_manifest,
)
from ._models import AuthContext, ConnectorConfig
from ._registry import (
    DEFAULT_ALLOWED_MODULES,
    MANIFEST_ENV,
    ConnectorClass,
    ConnectorInfo,
    ManifestProblem,
    Registry,
    Status,
)
from ._session import AsyncSession, Session
from ._untrusted import UntrustedConfig

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "MANIFEST_ENV",
    "ActionSpec",
    "AuditSpec",
    "AuthSpec",
    "CapabilitySpec",
    "ConnectorClass",
    "ConnectorEntry",
    "ConnectorInfo",
    "EntryProblem",
    "ManifestDocument",
    "ManifestProblem",
    "ParsedManifest",
    "Registry",
    "Status",
    "allows_module",
    "connectors",
    "default_registry",
    "discover",
    "get",
    "load_manifest",
    "manifest_json_schema",
    "open",
    "open_async",
    "parse_manifest",
    "problems",
    "refresh",
    "register",
]

default_registry = Registry()
"""The registry the module-level functions use."""


def register(name: str, connector_cls: type[Connector[Any]], *, replace: bool = False) -> None:
    """Register `connector_cls` under `name` in the default registry (validated now)."""
    default_registry.register(name, connector_cls, replace=replace)


def allows_module(module: str) -> bool:
    """Whether the default registry's module allowlist admits `module` (see `Registry`)."""
    return default_registry.allows_module(module)


def get(name: str) -> ConnectorClass:
    """The connector class named `name`, imported on first use."""
    return default_registry.get(name)


def open(
    name: str,
    *,
    config: ConnectorConfig | Mapping[str, Any] | UntrustedConfig,
    context: AuthContext,
    governance: Governance | None = None,
) -> Session:
    """A governed session on connector `name` from the default registry."""
    return default_registry.open(name, config=config, context=context, governance=governance)


def open_async(
    name: str,
    *,
    config: ConnectorConfig | Mapping[str, Any] | UntrustedConfig,
    context: AuthContext,
    governance: Governance | None = None,
) -> AsyncSession:
    """A governed async session on connector `name` from the default registry."""
    return default_registry.open_async(name, config=config, context=context, governance=governance)


def load_manifest(
    path: str | os.PathLike[str] | None = None, *, strict: bool = False
) -> tuple[ConnectorInfo, ...]:
    """Add an application manifest (or the `INTEGRATIONS_MANIFEST` files when `path` is None)."""
    return default_registry.load_manifest(path, strict=strict)


def discover(
    path: str | os.PathLike[str] | None = None, *, strict: bool = False
) -> tuple[ConnectorInfo, ...]:
    """Discover connectors from installed distributions, the environment and `path`."""
    return default_registry.discover(path, strict=strict)


def refresh(*, strict: bool = False) -> tuple[ConnectorInfo, ...]:
    """Rescan installed distributions and rediscover."""
    return default_registry.refresh(strict=strict)


def connectors() -> tuple[ConnectorInfo, ...]:
    """Every declared connector of the default registry, with its status."""
    return default_registry.connectors()


def problems() -> tuple[ManifestProblem, ...]:
    """Manifests the default registry could not use at all."""
    return default_registry.problems()
