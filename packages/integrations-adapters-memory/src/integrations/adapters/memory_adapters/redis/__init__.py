"""``memory.redis``: memories in Redis, with RediSearch text search when the server has it.

Every key a tenant's memories use holds the tenant, hex-encoded, as its cluster hash tag
(``<key_prefix>:{<tenant hex>}:...``), so no tenant name can reach another tenant's keys and
one tenant's keys share a slot. A push is one Lua script: the batch is atomic, unchanged
memories keep their change number, and numbers are handed out in commit order. Sync reads the
tenant's changes by number; fetch without text reads the newest memories first.

Text search needs the RediSearch module, version 1.x, loaded in the server (``loadmodule
redisearch.so``): the store then keeps its index (``<key_prefix>:idx``) in step inside the
same script. Without the module, a fetch with text raises `NotSupported`; memories written
while the module was missing are not in the index once it is loaded. A text query reaches at
most ``max_search_results`` matches, and so does a pagination through one.

The ``url`` (``redis://[user:password@]host:port/db``, ``rediss://`` for TLS, or
``unix://``) is a `Secret`: it is masked wherever the config is shown, and neither
`Connection.info` nor errors repeat it.

Its host and port are the config's destination (`RedisMemoryConfig.destinations`). For a
config from a tenant (`UntrustedConfig`) the session checks it against the egress policy
before the connector is called (a ``unix://`` socket never passes); the store then refuses
query options that name the platform's files or move the destination (`check_untrusted_url`)
and connects every pooled connection to the addresses checked, verifying a ``rediss://``
certificate against the configured host name. Configs the platform writes connect as before.
"""

from __future__ import annotations

from typing import ClassVar, Final

from pydantic import Field

from integrations.adapters.memory_adapters._connector import MemoryStoreConfig, MemoryStoreConnector
from integrations.base import ConnectorConfig, Destination, Secret

from ._backend import RedisBackend, RedisSettings, open_redis
from ._egress import check_untrusted_url, redis_destination

__all__ = ["DEFAULT_URL", "RedisMemoryConfig", "RedisMemoryConnector"]

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
"""The server a config without ``url`` names: the local one."""


class RedisMemoryConfig(MemoryStoreConfig):
    """Which Redis server holds the memories, under which keys, and the client's limits."""

    url: Secret = Field(default=Secret(DEFAULT_URL), json_schema_extra={"default": DEFAULT_URL})
    """The server's URL, credentials included (checked when the session connects)."""

    key_prefix: str = Field(
        default="integrations:memory", min_length=1, max_length=100, pattern=r"^[\w.:-]+$"
    )
    """The start of every key the store uses: stores with different prefixes never meet."""

    max_connections: int = Field(default=4, ge=1, le=1000)
    """Connections the pool opens at most."""

    socket_timeout_seconds: float = Field(default=10.0, gt=0, le=600, allow_inf_nan=False)
    """How long a command waits for its reply before `TransientError`."""

    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=600, allow_inf_nan=False)
    """How long opening a connection may take."""

    max_search_results: int = Field(default=10_000, ge=1, le=1_000_000)
    """The best-ranked memories a text query pages through at most."""

    max_scan: int = Field(default=10_000, ge=100, le=1_000_000)
    """Memories one filtered newest-first page examines at most (a page may then hold fewer
    memories than asked for, with a cursor to go on)."""

    def destinations(self) -> tuple[Destination, ...]:
        """The server's host and port (6379 unless the URL says), or its socket path.

        Raises `ConfigError`, without quoting the URL, when the URL cannot be read.
        """
        return (redis_destination(self.url.reveal()),)


class RedisMemoryConnector(MemoryStoreConnector[RedisMemoryConfig]):
    """Tenant-scoped memories in Redis (see the module's documentation)."""

    config_model: ClassVar[type[ConnectorConfig]] = RedisMemoryConfig
    backend_name: ClassVar[str] = "redis"

    def open_backend(self, config: RedisMemoryConfig) -> RedisBackend:
        """Open a connection pool, check the server and create the search index if needed.

        For a config from a tenant, the pool connects to the addresses the session checked.
        """
        settings = RedisSettings(
            key_prefix=config.key_prefix,
            max_connections=config.max_connections,
            socket_timeout=config.socket_timeout_seconds,
            connect_timeout=config.connect_timeout_seconds,
            max_search_results=config.max_search_results,
            max_scan=config.max_scan,
        )
        url = config.url.reveal()
        if not config.egress.restricted:
            return open_redis(url, settings)
        check_untrusted_url(url)
        (destination,) = config.destinations()
        return open_redis(url, settings, config.egress.addresses(destination))
