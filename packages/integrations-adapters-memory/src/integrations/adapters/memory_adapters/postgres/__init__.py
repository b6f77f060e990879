"""``memory.postgres``: memories in PostgreSQL, with text search, JSONB filters and row security.

Memories live in one schema (`PostgresMemoryConfig.schema_name`) that the connector creates
and migrates itself. Text search is PostgreSQL's (``english`` stemming and stop words, ranked
by ``ts_rank``) through a word index of the store's own that row security lets queries use;
metadata filters compare JSONB values. Every transaction names its tenant
to the server, and row-level security policies hide other tenants' rows from it: a defence
in depth behind the tenant condition every statement carries, which holds only when the DSN's
role is not a superuser and has no ``BYPASSRLS`` (`Connection.info` reports which applies).

The DSN's hosts and ports are the config's destinations (`PostgresMemoryConfig.destinations`).
For a config from a tenant (`UntrustedConfig`) the session checks them against the egress
policy before the connector is called (a socket directory, or a DSN without a host, never
passes); the store then refuses DSN keywords that name the platform's files, pins what libpq
would otherwise take from the platform's environment (``PGPASSWORD``, ``~/.pgpass``, client
certificates, Kerberos tickets) and connects through the checked addresses (``hostaddr``;
``host`` stays for TLS verification). See `_egress`. DSNs the platform writes connect as before.

Needs the ``postgres`` extra (psycopg 3 and psycopg_pool).
"""

from __future__ import annotations

import importlib
from typing import ClassVar, Self

try:
    importlib.import_module("psycopg")
    importlib.import_module("psycopg_pool")
except ImportError as missing:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        "the PostgreSQL memory store needs psycopg and psycopg_pool: "
        "pip install 'integrations-adapters-memory[postgres]'"
    ) from missing
from pydantic import Field, model_validator

from integrations.adapters.memory_adapters._backend import MemoryBackend
from integrations.adapters.memory_adapters._connector import MemoryStoreConfig, MemoryStoreConnector
from integrations.base import ConnectorConfig, Destination, Secret

from ._backend import PostgresSettings, open_postgres
from ._egress import parse_dsn, postgres_destinations, untrusted_dsn

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

    def destinations(self) -> tuple[Destination, ...]:
        """Each host of the DSN with its port (5432 unless given), as libpq reads them.

        A socket directory, an abstract socket and a missing host (libpq's default) are
        local destinations. Raises `ConfigError`, without quoting the DSN, when it cannot be
        read.
        """
        return postgres_destinations(parse_dsn(self.dsn.reveal()))


class PostgresMemoryConnector(MemoryStoreConnector[PostgresMemoryConfig]):
    """Tenant-scoped memories in PostgreSQL tables (see the module's documentation)."""

    config_model: ClassVar[type[ConnectorConfig]] = PostgresMemoryConfig
    backend_name: ClassVar[str] = "postgres"

    def open_backend(self, config: PostgresMemoryConfig) -> MemoryBackend:
        """Connect, migrate the schema and open the pool.

        For a config from a tenant, with the DSN `untrusted_dsn` makes of it: refused keywords
        raise `ConfigError` before anything connects.
        """
        dsn = config.dsn.reveal()
        parse_dsn(dsn)
        if config.egress.restricted:
            dsn = untrusted_dsn(dsn, config.egress)
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
