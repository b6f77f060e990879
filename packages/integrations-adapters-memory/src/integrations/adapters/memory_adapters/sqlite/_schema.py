"""The SQLite memory store's schema and its migrations, versioned by ``PRAGMA user_version``.

A file records the number of migration steps applied to it in its ``user_version``. Opening a
file applies the missing steps in one ``BEGIN IMMEDIATE`` transaction that re-reads the version
once it holds the write lock, so two processes opening a fresh file at once migrate it once. A
file from a newer release (a version this code does not know) is refused before anything is
written to it, since older code would corrupt data it does not understand.

Layout:

- ``memories``: one row per memory and tenant. ``ref`` is the integer key the full-text index
  needs; ``seq`` numbers the memory's latest change in its tenant's change sequence;
  ``created_order`` is the seq at creation (immutable until a tombstoned memory is created
  anew) and orders newest-first pages. Times are microseconds since the Unix epoch, UTC,
  so that comparisons are exact. A tombstone keeps its row (for sync) with its content cleared.
- ``tenant_sequences``: the last change number handed out per tenant, advanced in the write
  transaction that uses the numbers.
- ``memories_fts``: an FTS5 index over live memories' text, external content kept in step by
  triggers, so every writer of the file (whatever client) keeps it right.
- ``memories_updated``: live memories by tenant and last change time, for the
  ``updated_after`` / ``updated_before`` filters (the second step).
- ``tenant_sequences.horizon`` and ``memories_tombstones`` (the third step): the tenant's
  compaction horizon, the highest change number a compaction removed (0: none), kept with
  the sequence it belongs to; and tombstones by tenant and deletion time, which is what
  compaction looks for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from integrations.base import ConnectorError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "check_version", "migrate"]

_MEMORIES: Final = (
    """
    CREATE TABLE memories (
        ref INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        text TEXT NOT NULL,
        tags TEXT NOT NULL,
        metadata TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        created_order INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        UNIQUE (tenant, id)
    )
    """,
    "CREATE UNIQUE INDEX memories_changes ON memories (tenant, seq)",
    "CREATE INDEX memories_recent ON memories (tenant, created_order) WHERE deleted = 0",
    """
    CREATE TABLE tenant_sequences (
        tenant TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE VIRTUAL TABLE memories_fts USING fts5(
        text, content='memories', content_rowid='ref', tokenize='porter unicode61'
    )
    """,
    # The index holds live memories only: tombstones must not weigh in bm25's statistics.
    """
    CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories WHEN new.deleted = 0
    BEGIN
        INSERT INTO memories_fts (rowid, text) VALUES (new.ref, new.text);
    END
    """,
    # One trigger for every update, so the old words leave the index before the new ones
    # enter it: SQLite does not promise an order between two triggers of one event, and
    # deleting the old words after the new ones went in would remove the words they share.
    """
    CREATE TRIGGER memories_fts_update AFTER UPDATE ON memories
    WHEN old.deleted IS NOT new.deleted OR (new.deleted = 0 AND old.text IS NOT new.text)
    BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text)
            SELECT 'delete', old.ref, old.text WHERE old.deleted = 0;
        INSERT INTO memories_fts (rowid, text) SELECT new.ref, new.text WHERE new.deleted = 0;
    END
    """,
    """
    CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories WHEN old.deleted = 0
    BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, text) VALUES ('delete', old.ref, old.text);
    END
    """,
)

_UPDATED_INDEX: Final = (
    "CREATE INDEX memories_updated ON memories (tenant, updated_at) WHERE deleted = 0",
)

_COMPACTION: Final = (
    "ALTER TABLE tenant_sequences ADD COLUMN horizon INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX memories_tombstones ON memories (tenant, updated_at) WHERE deleted = 1",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_MEMORIES, _UPDATED_INDEX, _COMPACTION)
"""Migration steps in order; step i brings a file from user_version i to i + 1. Append only."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The user_version of a file this code has fully migrated."""


def check_version(
    connection: sqlite3.Connection, steps: Sequence[Sequence[str]] = MIGRATIONS
) -> int:
    """The file's ``user_version`` (steps applied); `ConnectorError` when this code is older.

    It only reads, so a refused file is left exactly as it was.
    """
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > len(steps):
        raise ConnectorError(
            f"the memory store file has schema version {version}, newer than this release of "
            f"integrations-adapters-memory knows (version {len(steps)}); it was left untouched: "
            "upgrade the package to open it"
        )
    return version


def migrate(connection: sqlite3.Connection, steps: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Bring the file up to ``len(steps)`` and return its version; refuse a newer file.

    `connection` is in autocommit mode (``isolation_level=None``). The version is read before
    taking the write lock (the common case, an up-to-date file, writes nothing) and again
    under it, since another process may have migrated the file in between.
    """
    target = len(steps)
    if check_version(connection, steps) == target:
        return target
    connection.execute("BEGIN IMMEDIATE")
    try:
        for step in steps[check_version(connection, steps) :]:
            for statement in step:
                connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {target:d}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return target
