"""`LocalBackend`: intents in one SQLite file (or a private in-memory database).

Writes run in ``BEGIN IMMEDIATE`` transactions: the write lock is taken before anything is
read, so the tenant's last change number read at the start is still the last one at commit,
and numbers are committed in order whatever process writes. A batch is one ``executemany`` of
an upsert whose ``WHERE`` skips intents already stored with the same signal (they keep their
change number; the number handed to them is left unused) and one of tombstones.

Reads never parse a signal to rank it: the ranking is the ``rank_key`` column, so a ranked page
is an index scan from the cursor that stops after the page, and a record's score comes from
the stored strength and date with the shared core's formula (`decayed_score`). A ``min_score``
becomes a lower bound on ``rank_key`` (a score at a given moment is a monotonic function of
the key), loosened by the rounding to 3 decimals and checked exactly on the rows it reads.

A sync reads the tenant's compaction horizon and its changes in one read transaction (one WAL
snapshot), so a compaction committing in between cannot slip past the check. Every sqlite3
exception is mapped by `sqlite_errors` alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Final

from integrations.adapters.intent_adapters._construct import builder
from integrations.adapters.intent_adapters._intent import (
    Intent,
    IntentQuery,
    cursor_after,
    page_of,
    verification_record,
)
from integrations.adapters.intent_adapters._scoring import DECAY_HOURS, decayed_score_micros
from integrations.base import (
    ConnectorError,
    FetchResult,
    JsonObject,
    NotFound,
    Record,
    format_utc,
)

from ._errors import BUSY_CODES, SQLiteErrors, sqlite_errors
from ._records import record_of, tombstone_record
from ._rows import (
    EPOCH,
    MICROSECOND,
    IntentRow,
    WriteBatch,
    canonical_json,
    micros,
    moment_of,
    row_of,
)
from ._schema import check_version, migrate
from ._sync import check_horizon

__all__ = ["LocalBackend", "open_local", "ranked_statement"]

# -- statements -----------------------------------------------------------------------------

UPSERT: Final = """
INSERT INTO intents (
    tenant, id, signal, topic_key, source, strength, rank_key, created_at, updated_at, seq
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
ON CONFLICT (tenant, id) DO UPDATE SET
    signal = excluded.signal,
    topic_key = excluded.topic_key,
    source = excluded.source,
    strength = excluded.strength,
    rank_key = excluded.rank_key,
    created_at = excluded.created_at,
    updated_at = excluded.updated_at,
    seq = excluded.seq,
    deleted = 0
WHERE intents.deleted OR intents.signal IS NOT excluded.signal
"""
"""One intent upserted (see `IntentRow.as_params`); the same signal again changes nothing."""

TOMBSTONE: Final = """
UPDATE intents SET deleted = 1, signal = '', topic_key = '', source = '', updated_at = ?3, seq = ?4
WHERE tenant = ?1 AND id = ?2 AND deleted = 0
"""
"""One intent deleted, its signal cleared: parameters (tenant, id, now, seq)."""

LAST_SEQ: Final = "SELECT last_seq FROM tenant_sequences WHERE tenant = ?"

ADVANCE: Final = """
INSERT INTO tenant_sequences (tenant, last_seq) VALUES (?1, ?2)
ON CONFLICT (tenant) DO UPDATE SET last_seq = excluded.last_seq
"""

STORED_DATES: Final = """
SELECT id, created_at FROM intents
WHERE tenant = ? AND deleted = 0 AND id IN (SELECT value FROM json_each(?))
"""
"""The dates of live intents among some ids (undated signals pushed again keep them)."""

_LIVE: Final = "id, signal, strength, created_at"

ONE: Final = f"SELECT {_LIVE} FROM intents WHERE tenant = ? AND id = ? AND deleted = 0"

BEST_TWO: Final = """
SELECT strength, created_at, rank_key FROM intents
WHERE tenant = ? AND topic_key = ? AND deleted = 0
ORDER BY rank_key DESC, id LIMIT 2
"""
"""A topic's two best intents: usually the first alone decides its best score."""

LEADERS: Final = """
SELECT strength, created_at, rank_key FROM intents
WHERE tenant = ? AND topic_key = ? AND deleted = 0 AND rank_key >= ?
ORDER BY rank_key DESC, id LIMIT 64
"""
"""A topic's intents a rounding error away from its best one (64 is plenty: they tie)."""

_LEADER_SLACK: Final = 1e-9
"""How far below the best `rank_key` a verification still computes scores (in the key's
natural-log units: a relative 1e-9, far below the 0.0005 a score is rounded by)."""

CHANGES: Final = f"""
SELECT {_LIVE}, updated_at, seq, deleted FROM intents
WHERE tenant = ? AND seq > ? ORDER BY seq LIMIT ?
"""

HORIZON: Final = "SELECT horizon FROM tenant_sequences WHERE tenant = ?"

EXPIRED: Final = """
SELECT id FROM intents WHERE tenant = ? AND deleted = 0 AND created_at < ?
ORDER BY created_at, ref
"""

OLD_TOMBSTONES: Final = """
SELECT count(*), max(seq) FROM intents WHERE tenant = ?1 AND deleted = 1 AND updated_at < ?2
"""

REMOVE_TOMBSTONES: Final = (
    "DELETE FROM intents WHERE tenant = ?1 AND deleted = 1 AND updated_at < ?2"
)

RAISE_HORIZON: Final = "UPDATE tenant_sequences SET horizon = max(horizon, ?2) WHERE tenant = ?1"

_SCORE_SLACK: Final = 0.001
"""How far below `min_score` an unrounded score may be and still round up to it (0.0005),
with room for floating-point error."""

_KEY_SLACK: Final = 1e-9

_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = vars(json.JSONDecoder())["scan_once"]
"""Reads one JSON value at a position: what ``json.loads`` runs, without its checks around it
(the decoder's own scanner, an attribute each decoder sets)."""

_page: Final = builder(
    FetchResult, ("records", "next_cursor"), {"records": (), "next_cursor": None}
)
"""A page from records the store built (`FetchResult.model_construct`'s result)."""


# -- the backend ----------------------------------------------------------------------------


def open_local(path: str, busy_timeout: float) -> LocalBackend:
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
    return LocalBackend(connection, path, version)


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
            if code & 0xFF not in BUSY_CODES or time.monotonic() >= deadline:
                raise
        time.sleep(0.01)


class LocalBackend:
    """The intents of one SQLite connection (its caller serialises the calls)."""

    def __init__(self, connection: sqlite3.Connection, path: str, version: int) -> None:
        self._db = connection
        self._path = path
        self._version = version
        self._errors = sqlite_errors(path)

    def errors(self) -> SQLiteErrors:
        """sqlite3's exceptions as the library's errors (one stateless manager for all calls)."""
        return self._errors

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
        """Apply `batch` in one transaction; each change gets the next number of its tenant."""
        stamp = micros(now)
        with self._transaction() as db:
            upserts = _redated(db, tenant, batch.upserts)
            row = db.execute(LAST_SEQ, (tenant,)).fetchone()
            last = row[0] if row is not None else 0
            if upserts:
                db.executemany(
                    UPSERT,
                    [r.as_params(tenant, stamp, seq) for seq, r in enumerate(upserts, last + 1)],
                )
            if batch.deletes:
                first = last + len(upserts) + 1
                db.executemany(
                    TOMBSTONE,
                    [(tenant, i, stamp, seq) for seq, i in enumerate(batch.deletes, first)],
                )
            db.execute(ADVANCE, (tenant, last + len(batch)))

    def compact(self, tenant: str, cutoff: datetime, now: datetime) -> tuple[int, int]:
        """Expire the tenant's intents dated before `cutoff`, and remove its tombstones deleted
        before it, in one transaction: (intents expired, tombstones removed).

        An expired intent becomes a tombstone with the next change number (sync reports it);
        removing tombstones raises the tenant's horizon to the highest number removed.
        """
        limit, stamp = micros(cutoff), micros(now)
        with self._transaction() as db:
            expired = [row[0] for row in db.execute(EXPIRED, (tenant, limit)).fetchall()]
            if expired:
                row = db.execute(LAST_SEQ, (tenant,)).fetchone()
                last = row[0] if row is not None else 0
                db.executemany(
                    TOMBSTONE,
                    [(tenant, i, stamp, seq) for seq, i in enumerate(expired, last + 1)],
                )
                db.execute(ADVANCE, (tenant, last + len(expired)))
            removed, highest = db.execute(OLD_TOMBSTONES, (tenant, limit)).fetchone()
            if removed:
                db.execute(REMOVE_TOMBSTONES, (tenant, limit))
                db.execute(RAISE_HORIZON, (tenant, highest))
        return len(expired), int(removed)

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

    # -- reads ------------------------------------------------------------------------------

    def ranked(self, tenant: str, query: IntentQuery, now: datetime) -> FetchResult:
        """One page of the tenant's intents matching `query`, best first, then by id."""
        sql, params, exact = ranked_statement(tenant, query, now)
        rows = _passing(self._db.execute(sql, params), query.limit + 1, exact, now)
        page = rows[: query.limit]
        records = _records(page, now)
        cursor = None
        if len(rows) > query.limit:  # the stored key is the signal's `rank_key`, bit for bit
            cursor = cursor_after(page[-1][4], page[-1][0], query.fingerprint)
        return _page({"records": records, "next_cursor": cursor})

    def one(self, tenant: str, query: IntentQuery, now: datetime) -> FetchResult:
        """The intent `query.intent_id` names, explained, if it matches the other filters.

        An id the tenant holds no intent under raises `NotFound`, as the engine answers it.
        """
        row = self._db.execute(ONE, (tenant, query.intent_id)).fetchone()
        if row is None:
            raise NotFound(f"the intent store has no intent {query.intent_id!r}")
        return page_of((_intent(row),), query, now=now)

    def verify(self, tenant: str, topic: str, threshold: float, now: datetime) -> FetchResult:
        """The verification of `topic`: its best score against `threshold`.

        Scores at one moment are in `rank_key` order, so the best is the first intent of the
        topic's index; the few a rounding error away from it are scored too.
        """
        key = (tenant, topic.casefold())
        rows = self._db.execute(BEST_TWO, key).fetchall()
        best = None
        if len(rows) == 2 and rows[1][2] >= rows[0][2] - _LEADER_SLACK:
            rows = self._db.execute(LEADERS, (*key, rows[0][2] - _LEADER_SLACK)).fetchall()
            now_micros = micros(now)
            best = max(decayed_score_micros(row[0], now_micros - row[1]) for row in rows)
        elif rows:  # the first intent leads by more than a rounding error: it alone decides
            best = decayed_score_micros(rows[0][0], micros(now) - rows[0][1])
        record = verification_record(topic, best, threshold)
        return _page({"records": (record,), "next_cursor": None})

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
        self, tenant: str, after: int, limit: int, floor: int, now: datetime
    ) -> tuple[tuple[int, Record], ...]:
        """The tenant's changes numbered after `after` as (number, record), in number order.

        `ResyncRequired` when deletions the caller has not seen were compacted away. The
        horizon and the changes are read in one transaction, so from one snapshot.
        """
        with self._snapshot() as db:
            if after > 0:
                row = db.execute(HORIZON, (tenant,)).fetchone()
                check_horizon(after, floor, row[0] if row is not None else 0)
            rows = db.execute(CHANGES, (tenant, after, limit)).fetchall()
        return _changes(rows, now)

    def horizon(self, tenant: str) -> int:
        """The highest change number a compaction removed for `tenant` (0: none yet)."""
        row = self._db.execute(HORIZON, (tenant,)).fetchone()
        return int(row[0]) if row is not None else 0


# -- pieces -----------------------------------------------------------------------------------


def _redated(db: sqlite3.Connection, tenant: str, rows: Sequence[IntentRow]) -> list[IntentRow]:
    """`rows`, where an undated signal whose id the store holds keeps the stored date."""
    undated = [row.id for row in rows if row.undated is not None]
    if not undated:
        return list(rows)
    stored = dict(db.execute(STORED_DATES, (tenant, canonical_json(undated))).fetchall())
    if not stored:
        return list(rows)
    result = []
    for row in rows:
        stamp = stored.get(row.id)
        if row.undated is not None and stamp is not None:
            dated = {**row.undated, "created_at": format_utc(moment_of(stamp))}
            again = row_of(row.id, dated, undated=row.undated)
            row = again if isinstance(again, IntentRow) else row
        result.append(row)
    return result


def ranked_statement(
    tenant: str, query: IntentQuery, now: datetime
) -> tuple[str, list[Any], float | None]:
    """The SQL of a ranked page, its parameters, and the exact ``min_score`` check left to do
    on the rows it returns (None when the SQL is exact, and then limited to the page)."""
    clauses = ["tenant = ?", "deleted = 0"]
    params: list[Any] = [tenant]
    if query.topic is not None:
        clauses.append("topic_key = ?")
        params.append(query.topic.casefold())
    if query.source is not None:
        clauses.append("source = ?")
        params.append(query.source)
    exact = None
    if query.min_score is not None:
        exact = query.min_score
        floor = query.min_score - _SCORE_SLACK
        if floor > 0:
            clauses.append("rank_key >= ?")
            params.append(math.log(floor) + now.timestamp() / 3600 / DECAY_HOURS - _KEY_SLACK)
    if query.after is not None:
        key, last_id = query.after
        clauses.append("rank_key <= ? AND (rank_key < ? OR id > ?)")
        params.extend((key, key, last_id))
    where = " AND ".join(clauses)
    sql = f"SELECT {_LIVE}, rank_key FROM intents WHERE {where} ORDER BY rank_key DESC, id"
    if exact is None:
        sql += " LIMIT ?"
        params.append(query.limit + 1)
    return sql, params, exact


def _passing(
    rows: Iterable[Sequence[Any]], wanted: int, min_score: float | None, now: datetime
) -> list[Sequence[Any]]:
    """Up to `wanted` of `rows` (in order) whose score at `now` reaches `min_score`."""
    if min_score is None:
        return list(rows)
    chosen: list[Sequence[Any]] = []
    now_micros = micros(now)
    for row in rows:
        if decayed_score_micros(row[2], now_micros - row[3]) >= min_score:
            chosen.append(row)
            if len(chosen) == wanted:
                break
    return chosen


def _records(rows: Iterable[Sequence[Any]], now: datetime) -> tuple[Record, ...]:
    """Live intents as fetch and sync return them: what `Intent.to_record` makes of each.

    One loop with as few calls per row as it takes: a page holds up to thousands of records.
    Times stay whole microseconds (the score's age is the difference, `decayed_score_micros`),
    and a record's date is the epoch plus that many microseconds, exactly. Signals are read by
    the JSON decoder's scanner itself (what ``json.loads`` runs, without its checks around
    it: the store wrote every signal as canonical JSON).
    """
    build, scan, score = record_of, _SCAN, decayed_score_micros
    epoch, microsecond, now_micros = EPOCH, MICROSECOND, micros(now)
    records = []
    try:
        for row in rows:
            record_id, text, base, stamp = row[0], row[1], row[2], row[3]
            data = scan(text, 0)[0]
            data["intent_score"] = score(base, now_micros - stamp)
            updated_at = epoch + microsecond * stamp
            records.append(
                build({"id": record_id, "data": data, "deleted": False, "updated_at": updated_at})
            )
    except (StopIteration, ValueError):  # no JSON value where a signal was written
        raise ConnectorError(
            "the intent store holds a signal that is not JSON: the file was changed by "
            "something other than this connector; restore it from a backup"
        ) from None
    return tuple(records)


def _changes(rows: Sequence[Sequence[Any]], now: datetime) -> tuple[tuple[int, Record], ...]:
    """(change number, record) of each row of ``CHANGES``, tombstones included."""
    live = iter(_records([row for row in rows if not row[6]], now))
    return tuple(
        (row[5], tombstone_record(row[0], moment_of(row[4])) if row[6] else next(live))
        for row in rows
    )


def _intent(row: Sequence[Any]) -> Intent:
    return Intent.from_json(row[0], json.loads(row[1]))
