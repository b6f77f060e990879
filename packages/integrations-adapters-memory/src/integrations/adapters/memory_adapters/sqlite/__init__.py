"""``memory.sqlite``: the embedded memory store, one SQLite file shared by any number of processes.

The file runs in WAL mode (readers never wait for the writer) with ``synchronous=NORMAL``
(a committed batch survives the process being killed; a power cut may lose the last ones),
and writers queue on SQLite's lock for up to the busy timeout, past which a push fails with
`TransientError` and the session retries it. Text search is FTS5 with Porter stemming,
ranked by bm25. The schema is versioned and migrated when a file is opened; a file written
by a newer release is refused and left untouched.

Without a path the store lives in the user's data directory (`default_path`); ``":memory:"``
gives each connection its own private database, gone when the session ends.

A file is a place on the platform's own disk, so its path is the config's destination, a
local one (`SqliteMemoryConfig.destinations`): a config from a tenant (`UntrustedConfig`) may
only use ``":memory:"``; any file, the default one included, is refused before it is opened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar, Final

import platformdirs
from pydantic import Field, field_validator

from integrations.adapters.memory_adapters._connector import MemoryStoreConfig, MemoryStoreConnector
from integrations.base import ConnectorConfig, Destination

from ._backend import SqliteBackend, open_sqlite

__all__ = ["IN_MEMORY", "SqliteMemoryConfig", "SqliteMemoryConnector", "default_path"]

IN_MEMORY: Final = ":memory:"
"""The path of a private in-memory database (one per connection)."""

DEFAULT_FILE: Final = "/(the default file)"
"""The destination of a config without a path (it does not show where the platform keeps it)."""


def default_path() -> Path:
    """Where the store lives when the config names no path: the user's data directory."""
    return platformdirs.user_data_path("integrations") / "memory.sqlite3"


class SqliteMemoryConfig(MemoryStoreConfig):
    """Where the SQLite memory store lives and how long a writer waits for the file's lock."""

    path: str | None = Field(default=None, min_length=1, max_length=4096)
    """The database file (``~`` expanded; a relative path is relative to the working
    directory when the session connects), ``":memory:"``, or None for `default_path()`."""

    busy_timeout_seconds: float = Field(default=5.0, ge=0, le=600, allow_inf_nan=False)
    """How long an operation waits for another connection's lock before `TransientError`."""

    @field_validator("path")
    @classmethod
    def _a_file_path(cls, value: str | None) -> str | None:
        if value is None or value == IN_MEMORY:
            return value
        if "\x00" in value:
            raise ValueError("the path must not contain NUL characters")
        if not value.strip():
            raise ValueError("the path must name a file")
        if value.startswith("file:"):
            raise ValueError("give a file path or ':memory:', not a SQLite URI")
        return value

    def destinations(self) -> tuple[Destination, ...]:
        """The file, as a local destination (never open to untrusted configs); none in memory."""
        if self.path == IN_MEMORY:
            return ()
        if self.path is None:
            return (Destination(DEFAULT_FILE, 0, 0),)
        path = os.path.expanduser(self.path)
        return (Destination(path if path.startswith("/") else f"/{path}", 0, 0),)


class SqliteMemoryConnector(MemoryStoreConnector[SqliteMemoryConfig]):
    """Tenant-scoped memories in a SQLite file (see the module's documentation)."""

    config_model: ClassVar[type[ConnectorConfig]] = SqliteMemoryConfig
    backend_name: ClassVar[str] = "sqlite"

    def open_backend(self, config: SqliteMemoryConfig) -> SqliteBackend:
        """Open the file (creating the default one's directory), migrating its schema."""
        return open_sqlite(_resolve(config.path), config.busy_timeout_seconds)


def _resolve(path: str | None) -> str:
    if path == IN_MEMORY:
        return path
    if path is None:
        chosen = default_path()
        chosen.parent.mkdir(parents=True, exist_ok=True)
        return str(chosen)
    return os.path.abspath(os.path.expanduser(path))
