"""``memory.postgres``: memories in PostgreSQL, with text search, JSONB filters and row security.

Memories live in one schema (`PostgresMemoryConfig.schema_name`) that the connector creates
and migrates itself. Text search is PostgreSQL's (``english`` stemming and stop words, ranked
by ``ts_rank``) through a word index of the store's own that row security lets queries use;
metadata filters compare JSONB values. Every transaction names its tenant
to the server, and row-level security policies hide other tenants' rows from it: a defence
in depth behind the tenant condition every statement carries, which holds only when the DSN's
role is not a superuser and has no ``BYPASSRLS`` (`Connection.info` reports which applies).

Needs the ``postgres`` extra (psycopg 3 and psycopg_pool).
"""

from __future__ import annotations

import importlib
from typing import ClassVar, Self

try:
    import psycopg

    importlib.import_module("psycopg_pool")
except ImportError as missing:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        "the PostgreSQL memory store needs psycopg and psycopg_pool: "
        "pip install 'integrations-adapters-memory[postgres]'"
    ) from missing
from pydantic import Field, model_validator

from integrations.adapters.memory_adapters._backend import MemoryBackend
from integrations.adapters.memory_adapters._connector import MemoryStoreConfig, MemoryStoreConnector
from integrations.base import ConfigError, ConnectorConfig, Secret

from ._backend import PostgresSettings, open_postgres

__all__ = ["PostgresMemoryConfig", "PostgresMemoryConnector"]


class PostgresMemoryConfig(MemoryStoreConfig):
    """Where the memories live: a PostgreSQL DSN and a schema, and the pool's bounds."""

    dsn: Secret
    """A libpq connection string or ``postgresql://`` URI; masked wherever the config shows."""

    schema_name: str = Field(default="integrations_memory", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    """The schema holding the store's tables; created and migrated on connect."""

    min_connections: int = Field(default=1, ge=0, le=100)
    """Connections the pool keeps open."""

    max_connections: int = Field(default=4, ge=1, le=100)
    """Connections the pool opens at most."""

    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """How long connecting, or waiting for a free pooled connection, may take."""

    row_level_security: bool = True
    """Whether the store's tables enforce row-level security per tenant (defence in depth).

    Text queries use the store's own word index, which works under the policies: they are
    indexed either way. The setting is the schema's: connecting with the other value
    changes it, which only the tables' owner may do.
    """

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.min_connections > self.max_connections:
            raise ValueError("min_connections must not exceed max_connections")
        return self


class PostgresMemoryConnector(MemoryStoreConnector[PostgresMemoryConfig]):
    """Tenant-scoped memories in PostgreSQL tables (see the module's documentation)."""

    config_model: ClassVar[type[ConnectorConfig]] = PostgresMemoryConfig
    backend_name: ClassVar[str] = "postgres"

    def open_backend(self, config: PostgresMemoryConfig) -> MemoryBackend:
        """Connect, migrate the schema and open the pool."""
        dsn = config.dsn.reveal()
        try:
            psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.Error:
            # The driver's message quotes the string, which may hold the password.
            raise ConfigError(
                "PostgresMemoryConfig.dsn is not a PostgreSQL connection string",
                (("dsn", "not a libpq connection string or postgresql:// URI"),),
            ) from None
        return open_postgres(
            PostgresSettings(
                dsn=dsn,
                schema=config.schema_name,
                min_size=config.min_connections,
                max_size=config.max_connections,
                connect_timeout=config.connect_timeout_seconds,
                row_level_security=config.row_level_security,
            )
        )
