"""`SqliteBackend`: memories in one SQLite file (or a private in-memory database).

Writes run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken before anything is
read, so the tenant's last change number read at the start is still the last one at commit,
and the numbers are committed in order whatever process writes. A batch is one
``executemany`` of an upsert whose ``WHERE`` skips memories already stored as pushed (they
keep their change number; the number handed to them is left unused) and one of tombstones.

A sync reads the tenant's compaction horizon and its changes in one read transaction (one
WAL snapshot), so a compaction committing in between cannot slip past the check.

Every sqlite3 exception is mapped in `sqlite_errors` alone.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from integrations.adapters.memory_adapters._backend import MemoryPage, check_horizon
from integrations.adapters.memory_adapters._cursor import (
    decode_cursor,
    encode_cursor,
    pack_numbers,
    unpack_numbers,
)
from integrations.adapters.memory_adapters._memory import StoredMemory, WriteBatch, canonical_json
from integrations.adapters.memory_adapters._query import JsonScalar, MemoryFilter, MemoryQuery
from integrations.base import (
    ConnectionFailed,
    ConnectorError,
    InvalidRequest,
    JsonObject,
    TransientError,
)

from ._schema import check_version, migrate

__all__ = ["SqliteBackend", "open_sqlite", "sqlite_errors"]

_RECENT: Final = "recent"
_RANKED: Final = "ranked"
_RECENT_KINDS: Final = frozenset({_RECENT})
_RANKED_KINDS: Final = frozenset({_RANKED})

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_INT64: Final = range(-(2**63), 2**63)

# -- error mapping --------------------------------------------------------------------------

_BUSY: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_UNREACHABLE: Final = frozenset({3, 8, 10, 14})  # SQLITE_PERM, _READONLY, _IOERR, _CANTOPEN
_DAMAGED: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


@contextlib.contextmanager
def sqlite_errors(path: str) -> Iterator[None]:
    """Map sqlite3's exceptions into the library's errors, naming the file `path`.

    A busy or locked file is transient (another process holds the write lock longer than the
    busy timeout); a file that cannot be opened, read or written is a failed connection; a
    damaged file is a connector error that says so; anything else is a connector error.
    Strings SQLite cannot encode (lone surrogates) are invalid requests.
    """
    try:
        yield
    except sqlite3.Error as error:
        raise _mapped(error, path) from error
    except UnicodeEncodeError as error:  # sqlite3 stores UTF-8, which has no lone surrogates
        raise InvalidRequest(
            "a text, tag, id, metadata value or filter holds characters that are not valid "
            f"Unicode ({error.reason}): SQLite cannot store it"
        ) from error


def _mapped(error: sqlite3.Error, path: str) -> ConnectorError:
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in _BUSY:
        return TransientError(
            f"the memory store {path} is busy: another connection held its lock past the busy "
            f"timeout ({error})"
        )
    if primary in _UNREACHABLE:
        return ConnectionFailed(f"the memory store {path} cannot be opened or written: {error}")
    if primary in _DAMAGED:
        return ConnectorError(
            f"the memory store {path} is damaged or is not a SQLite database ({error}); "
            "restore it from a backup or point the connector at another file"
        )
    return ConnectorError(f"the memory store {path} failed: {error}")


# -- statements -----------------------------------------------------------------------------

_COLUMNS: Final = "m.id, m.text, m.tags, m.metadata, m.created_at, m.updated_at, m.seq, m.deleted"

UPSERT: Final = """
INSERT INTO memories (tenant, id, text, tags, metadata, created_at, updated_at, created_order, seq)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?7)
ON CONFLICT (tenant, id) DO UPDATE SET
    text = excluded.text,
    tags = excluded.tags,
    metadata = excluded.metadata,
    updated_at = excluded.updated_at,
    seq = excluded.seq,
    created_at = iif(memories.deleted, excluded.created_at, memories.created_at),
    created_order = iif(memories.deleted, excluded.created_order, memories.created_order),
    deleted = 0
WHERE memories.deleted
    OR memories.text IS NOT excluded.text
    OR memories.tags IS NOT excluded.tags
    OR memories.metadata IS NOT excluded.metadata
"""
"""One memory upserted: parameters (tenant, id, text, tags, metadata, now, seq).

A tombstoned memory pushed again is created anew (new creation time and order)."""

TOMBSTONE: Final = """
UPDATE memories SET deleted = 1, text = '', tags = '[]', metadata = '{}', updated_at = ?3, seq = ?4
WHERE tenant = ?1 AND id = ?2 AND deleted = 0
"""
"""One memory deleted, its content cleared: parameters (tenant, id, now, seq)."""

LAST_SEQ: Final = "SELECT last_seq FROM tenant_sequences WHERE tenant = ?"

ADVANCE: Final = """
INSERT INTO tenant_sequences (tenant, last_seq) VALUES (?1, ?2)
ON CONFLICT (tenant) DO UPDATE SET last_seq = excluded.last_seq
"""

_CHANGES: Final = f"""
SELECT {_COLUMNS} FROM memories m WHERE m.tenant = ? AND m.seq > ? ORDER BY m.seq LIMIT ?
"""

HORIZON: Final = "SELECT horizon FROM tenant_sequences WHERE tenant = ?"

COMPACTABLE: Final = """
SELECT DISTINCT tenant FROM memories WHERE deleted = 1 AND updated_at < ? ORDER BY tenant
"""
"""The tenants that have tombstones deleted before a time."""

OLD_TOMBSTONES: Final = """
SELECT count(*), max(seq) FROM memories WHERE tenant = ?1 AND deleted = 1 AND updated_at < ?2
"""

REMOVE_TOMBSTONES: Final = (
    "DELETE FROM memories WHERE tenant = ?1 AND deleted = 1 AND updated_at < ?2"
)

RAISE_HORIZON: Final = """
UPDATE tenant_sequences SET horizon = max(horizon, ?2) WHERE tenant = ?1
"""


def match_expression(words: Sequence[str]) -> str:
    """An FTS5 query that every word must match, each quoted so none is read as FTS syntax."""
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


# -- the backend ----------------------------------------------------------------------------


def open_sqlite(path: str, busy_timeout: float) -> SqliteBackend:
    """Open (creating or migrating) the store at `path`; ``":memory:"`` is private to it."""
    with sqlite_errors(path):
        connection = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            check_version(connection)  # before any pragma writes to a file we may refuse
            _use_wal(connection, busy_timeout)
            connection.execute("PRAGMA synchronous = NORMAL")
            version = migrate(connection)
        except BaseException:
            connection.close()
            raise
    return SqliteBackend(connection, path, version)


def _use_wal(connection: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL (it stays so), retrying while it is busy, up to the timeout.

    Switching needs the file to itself, and SQLite answers SQLITE_BUSY at once rather than
    calling the busy handler while another connection holds it: threads or processes
    opening a new file together would otherwise fail.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            code = getattr(error, "sqlite_errorcode", 0) or 0
            if code & 0xFF not in _BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


class SqliteBackend:
    """The `MemoryBackend` of one SQLite connection (its caller serialises the calls)."""

    def __init__(self, connection: sqlite3.Connection, path: str, version: int) -> None:
        self._db = connection
        self._path = path
        self._version = version

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """sqlite3's exceptions as the library's errors."""
        return sqlite_errors(self._path)

    def describe(self) -> JsonObject:
        """The file, the schema version and the SQLite library in use."""
        mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        return {
            "backend": "sqlite",
            "path": self._path,
            "schema_version": self._version,
            "journal_mode": str(mode),
            "sqlite_version": sqlite3.sqlite_version,
        }

    def close(self) -> None:
        """Close the connection (the last one to close a file checkpoints its WAL)."""
        self._db.close()

    # -- writes -------------------------------------------------------------------------------

    def write(self, tenant: str, batch: WriteBatch, now: datetime) -> None:
        """Apply `batch` in one transaction; each memory gets the next number of its tenant."""
        stamp = _micros(now)
        with self._transaction() as db:
            row = db.execute(LAST_SEQ, (tenant,)).fetchone()
            last = row[0] if row is not None else 0
            if batch.upserts:
                db.executemany(
                    UPSERT,
                    [
                        (tenant, m.id, m.text, m.tags_json, m.metadata_json, stamp, seq)
                        for seq, m in enumerate(batch.upserts, last + 1)
                    ],
                )
            if batch.deletes:
                first = last + len(batch.upserts) + 1
                db.executemany(
                    TOMBSTONE,
                    [(tenant, i, stamp, seq) for seq, i in enumerate(batch.deletes, first)],
                )
            db.execute(ADVANCE, (tenant, last + len(batch)))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: the write lock first (waiting up to the busy timeout)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the first error is the one to report
                    db.execute("ROLLBACK")
            raise

    def compact(self, older_than: datetime, tenant: str | None = None) -> int:
        """Remove tombstones deleted before `older_than`, one transaction per tenant.

        Each tenant's horizon rises to the highest change number removed, in the transaction
        that removes them. Tombstones are not in the full-text index, so deleting their rows
        leaves it as it is (its delete trigger only fires for live rows).
        """
        stamp = _micros(older_than)
        if tenant is not None:
            return self._compact_tenant(tenant, stamp)
        tenants = [row[0] for row in self._db.execute(COMPACTABLE, (stamp,)).fetchall()]
        return sum(self._compact_tenant(name, stamp) for name in tenants)

    def _compact_tenant(self, tenant: str, stamp: int) -> int:
        with self._transaction() as db:
            count, highest = db.execute(OLD_TOMBSTONES, (tenant, stamp)).fetchone()
            if count:
                db.execute(REMOVE_TOMBSTONES, (tenant, stamp))
                db.execute(RAISE_HORIZON, (tenant, highest))
        return int(count)

    # -- reads ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: its statements see one snapshot of the file (WAL)."""
        db = self._db
        db.execute("BEGIN")
        try:
            yield db
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")  # it only read: nothing to keep

    def changes(
        self, tenant: str, after: int, limit: int, floor: int = 0
    ) -> tuple[StoredMemory, ...]:
        """The tenant's changes numbered after `after`, tombstones included, in number order.

        `ResyncRequired` when deletions the caller has not seen were compacted away (both
        `after` and `floor` below the horizon). The horizon and the changes are read in one
        transaction, so they come from the same snapshot.
        """
        with self._snapshot() as db:
            if after > 0:
                row = db.execute(HORIZON, (tenant,)).fetchone()
                check_horizon(after, floor, row[0] if row is not None else 0)
            rows = db.execute(_CHANGES, (tenant, after, limit)).fetchall()
        return tuple(_stored(row) for row in rows)

    def horizon(self, tenant: str) -> int:
        """The highest change number a compaction removed for `tenant` (0: none yet)."""
        row = self._db.execute(HORIZON, (tenant,)).fetchone()
        return int(row[0]) if row is not None else 0

    def query(self, tenant: str, query: MemoryQuery) -> MemoryPage:
        """Newest first without words; ranked by bm25 (ties newest first) with words."""
        if not query.words:
            return self._recent(tenant, query)
        return self._ranked(tenant, query)

    def _recent(self, tenant: str, query: MemoryQuery) -> MemoryPage:
        where, params = filter_sql(query.filter)
        if query.cursor is not None:
            position = decode_cursor(
                query.cursor, fingerprint=query.fingerprint, kinds=_RECENT_KINDS
            )[1]
            where += " AND m.created_order < ?"
            params.append(_int_position(position, "before"))
        rows = self._db.execute(
            f"SELECT {_COLUMNS}, m.created_order FROM memories m "
            f"WHERE m.tenant = ? AND m.deleted = 0{where} "
            "ORDER BY m.created_order DESC LIMIT ?",
            [tenant, *params, query.limit + 1],
        ).fetchall()
        page = rows[: query.limit]
        cursor = None
        if len(rows) > query.limit:
            cursor = encode_cursor(_RECENT, query.fingerprint, before=page[-1][-1])
        return MemoryPage(tuple(_stored(row).to_record() for row in page), cursor)

    def _ranked(self, tenant: str, query: MemoryQuery) -> MemoryPage:
        """The best matches the pagination has not returned yet.

        bm25 weighs words by how rare they are in the whole file, so every write shifts the
        scores and a position in the ranking would not survive until the next page. The
        cursor carries the memories already returned instead (their creation order, a
        byte or two each), and each page is the best of the rest: no memory comes twice,
        and every memory that stays is reached before the pagination ends.
        """
        returned: list[int] = []
        if query.cursor is not None:
            position = decode_cursor(
                query.cursor, fingerprint=query.fingerprint, kinds=_RANKED_KINDS
            )[1]
            returned = unpack_numbers(position.get("returned"))
        where, params = filter_sql(query.filter)
        if returned:
            where += " AND m.created_order NOT IN (SELECT value FROM json_each(?))"
            params.append(canonical_json(returned))
        rows = self._db.execute(
            f"SELECT {_COLUMNS}, m.created_order FROM memories_fts "
            "JOIN memories m ON m.ref = memories_fts.rowid "
            f"WHERE memories_fts MATCH ? AND m.tenant = ? AND m.deleted = 0{where} "
            "ORDER BY bm25(memories_fts), m.created_order DESC LIMIT ?",
            [match_expression(query.words), tenant, *params, query.limit + 1],
        ).fetchall()
        page = rows[: query.limit]
        cursor = None
        if len(rows) > query.limit:
            returned.extend(row[-1] for row in page)
            cursor = encode_cursor(_RANKED, query.fingerprint, returned=pack_numbers(returned))
        return MemoryPage(tuple(_stored(row).to_record() for row in page), cursor)


# -- filters --------------------------------------------------------------------------------


def filter_sql(memory_filter: MemoryFilter) -> tuple[str, list[Any]]:
    """SQL conditions on ``memories m`` (each preceded by AND) and their parameters.

    They agree with `MemoryFilter.matches`: tags must all be present; a metadata key must
    exist at the top level with a value of the same JSON type (numbers of either kind
    compare by value); times compare strictly.
    """
    clauses: list[str] = []
    params: list[Any] = []
    for tag in memory_filter.tags:
        clauses.append("EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ?)")
        params.append(tag)
    for key, value in memory_filter.metadata:
        condition, wanted = _metadata_condition(key, value)
        clauses.append(
            f"EXISTS (SELECT 1 FROM json_each(m.metadata) WHERE key = ? AND {condition})"
        )
        params.extend([key, *wanted])
    for column, operator, moment in (
        ("created_at", ">", memory_filter.created_after),
        ("created_at", "<", memory_filter.created_before),
        ("updated_at", ">", memory_filter.updated_after),
        ("updated_at", "<", memory_filter.updated_before),
    ):
        if moment is not None:
            clauses.append(f"m.{column} {operator} ?")
            params.append(_micros(moment))
    return "".join(f" AND {clause}" for clause in clauses), params


def _metadata_condition(key: str, value: JsonScalar) -> tuple[str, list[Any]]:
    """The condition on a `json_each` row (its type and value) equal to `value`.

    The key is matched as a `json_each` key, not spliced into a JSON path, so any key works.
    """
    if value is None:
        return "type = 'null'", []
    if isinstance(value, bool):
        return ("type = 'true'" if value else "type = 'false'"), []
    if isinstance(value, str):
        return "type = 'text' AND value = ?", [value]
    if isinstance(value, int) and value not in _INT64:
        raise InvalidRequest(
            f"filter 'metadata.{key}': integers beyond 64 bits cannot be compared exactly"
        )
    return "type IN ('integer', 'real') AND value = ?", [value]


# -- conversions ----------------------------------------------------------------------------


def _stored(row: Sequence[Any]) -> StoredMemory:
    memory_id, text, tags, metadata, created_at, updated_at, seq, deleted = row[:8]
    return StoredMemory(
        id=memory_id,
        text=text,
        tags=tuple(json.loads(tags)),
        metadata=json.loads(metadata),
        created_at=_EPOCH + timedelta(microseconds=created_at),
        updated_at=_EPOCH + timedelta(microseconds=updated_at),
        seq=seq,
        deleted=bool(deleted),
    )


def _micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch: exact, and ordered like the times."""
    return (moment - _EPOCH) // _MICROSECOND


def _int_position(position: dict[str, Any], name: str) -> int:
    value = position.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value not in _INT64:
        raise InvalidRequest("the cursor was not issued by this memory store")
    return value
