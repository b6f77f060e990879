"""The intent store's schema and its migrations, versioned by ``PRAGMA user_version``.

The memory store's rules: a file records the number of migration steps applied to it in its
``user_version``; opening a file applies the missing steps in one ``BEGIN IMMEDIATE``
transaction that re-reads the version once it holds the write lock, so two processes opening
a fresh file at once migrate it once; a file from a newer release is refused before anything
is written to it, since older code would damage data it does not understand.

Layout (the first step):

- ``intents``: one row per intent and tenant. ``signal`` is the signal's canonical JSON (what
  fetch and sync return); the other columns are derived from it when it is written, so that
  queries never parse JSON: ``topic_key`` (the topic casefolded, for the case-insensitive
  topic filter), ``source``, ``strength`` (the score before decay), ``rank_key`` (the
  time-free ranking key of the shared core) and ``created_at`` (the signal's date). Times are
  microseconds since the Unix epoch, UTC, so that comparisons are exact. ``seq`` numbers the
  intent's latest change in its tenant's change sequence and ``updated_at`` is when that change
  was stored. A deleted or expired intent keeps its row as a tombstone (for sync) with its
  signal cleared, until compaction removes it.
- ``intents_ranked`` and ``intents_topics``: live intents in ranking order (best first, then by
  id), for the whole tenant and per topic, so that a ranked page, a topic's page and a topic's
  best score are index scans that stop after the rows they return.
- ``intents_changes``: the tenant's change sequence (sync); ``intents_age``: live intents by date
  (retention); ``intents_tombstones``: tombstones by deletion time (compaction).
- ``tenant_sequences``: per tenant, the last change number handed out, advanced in the write
  transaction that uses the numbers, and the compaction horizon (the highest change number a
  compaction removed; 0: none).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from integrations.base import ConnectorError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "check_version", "migrate"]

_INTENTS: Final = (
    """
    CREATE TABLE intents (
        ref INTEGER PRIMARY KEY,
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        signal TEXT NOT NULL,
        topic_key TEXT NOT NULL,
        source TEXT NOT NULL,
        strength REAL NOT NULL,
        rank_key REAL NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        UNIQUE (tenant, id)
    )
    """,
    "CREATE UNIQUE INDEX intents_changes ON intents (tenant, seq)",
    "CREATE INDEX intents_ranked ON intents (tenant, rank_key DESC, id) WHERE deleted = 0",
    """
    CREATE INDEX intents_topics ON intents (tenant, topic_key, rank_key DESC, id)
    WHERE deleted = 0
    """,
    "CREATE INDEX intents_age ON intents (tenant, created_at) WHERE deleted = 0",
    "CREATE INDEX intents_tombstones ON intents (tenant, updated_at) WHERE deleted = 1",
    """
    CREATE TABLE tenant_sequences (
        tenant TEXT PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        horizon INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID
    """,
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_INTENTS,)
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
            f"the intent store file has schema version {version}, newer than this release of "
            f"integrations-adapters-intent knows (version {len(steps)}); it was left untouched: "
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
