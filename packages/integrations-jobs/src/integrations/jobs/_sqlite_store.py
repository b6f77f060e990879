"""`SqliteJobStore`: the job store in one SQLite file, the one-machine default.

Every write is one ``BEGIN IMMEDIATE`` transaction: the file's write lock is taken before
anything is read, so the lease a fenced write checks is still the current lease when it
commits, whichever thread or process writes next. Reads run in a deferred transaction, one
WAL snapshot, so `status` sees the store at one instant.

One connection per store object, used under a lock: a job store writes a few rows per batch,
so serialising a process's calls costs nothing worth a connection per thread, and one
connection is one thing to close. Processes sharing the file wait for each other through the
busy timeout.

Times are integer microseconds since the Unix epoch, UTC, so comparisons are exact; JSON is
stored as text. ``synchronous = FULL``: a commit survives a power cut, since a lost lease
acquisition could hand out its fencing token twice.

Every sqlite3 exception is mapped in `sqlite_errors` alone.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from ._exceptions import InvalidStoreValue, LeaseHeld, LeaseLost, StoreError
from ._records import Checkpoint, DeadLetter, Lease, PipelineStatus, RunRecord
from ._store import (
    Clock,
    ClosesOnExit,
    RowDecoder,
    assemble_status,
    check_count,
    check_error,
    check_limit,
    check_name,
    check_outcome,
    check_reason,
    check_ttl,
    current_time,
    dump_record,
    dump_state,
    utc_now,
)

__all__ = ["SCHEMA_VERSION", "SqliteJobStore", "sqlite_errors"]

Row = tuple[Any, ...]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_WAL_RETRY_SECONDS: Final = 0.01

# -- schema ---------------------------------------------------------------------------------

_TABLES: Final = (
    # One row per (pipeline, tenant) ever leased, never deleted: `token` is the last token
    # handed out, so the next acquisition's is higher even after a release (holder NULL).
    """
    CREATE TABLE leases (
        pipeline TEXT NOT NULL,
        tenant TEXT NOT NULL,
        holder TEXT,
        token INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (pipeline, tenant)
    ) WITHOUT ROWID
    """,
    # The check refuses a record total past 64 bits, which SQLite would turn into a float.
    """
    CREATE TABLE checkpoints (
        pipeline TEXT NOT NULL,
        tenant TEXT NOT NULL,
        state TEXT,
        token INTEGER NOT NULL,
        records INTEGER NOT NULL CHECK (typeof(records) = 'integer'),
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (pipeline, tenant)
    ) WITHOUT ROWID
    """,
    # `seq` orders runs started at the same instant (a test clock, a coarse clock).
    """
    CREATE TABLE runs (
        seq INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL UNIQUE,
        pipeline TEXT NOT NULL,
        tenant TEXT NOT NULL,
        executor TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        outcome TEXT NOT NULL,
        records_moved INTEGER NOT NULL,
        batches INTEGER NOT NULL,
        rejected INTEGER NOT NULL,
        error TEXT
    )
    """,
    "CREATE INDEX runs_recent ON runs (started_at, seq)",
    "CREATE INDEX runs_pipeline_recent ON runs (pipeline, tenant, started_at, seq)",
    """
    CREATE TABLE dead_letters (
        seq INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        pipeline TEXT NOT NULL,
        tenant TEXT NOT NULL,
        record TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )
    """,
    "CREATE INDEX dead_letters_recent ON dead_letters (pipeline, tenant, seq)",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_TABLES,)
"""Migration steps in order; step i brings a file from version i to i + 1. Append only."""

SCHEMA_VERSION: Final = len(MIGRATIONS)
"""The schema version this code reads and writes."""

_VERSIONS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_versions (
    version INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
)
"""

# -- statements -----------------------------------------------------------------------------

# The conflict branch runs only when the lease is free (released or expired) or already the
# caller's; otherwise no row comes back and the caller is told who holds it.
_ACQUIRE: Final = """
INSERT INTO leases (pipeline, tenant, holder, token, expires_at) VALUES (?1, ?2, ?3, 1, ?4)
ON CONFLICT (pipeline, tenant) DO UPDATE SET
    holder = excluded.holder, token = leases.token + 1, expires_at = excluded.expires_at
WHERE leases.holder IS NULL OR leases.expires_at <= ?5 OR leases.holder = excluded.holder
RETURNING token
"""

_HOLDER: Final = "SELECT holder, expires_at FROM leases WHERE pipeline = ?1 AND tenant = ?2"

_RENEW: Final = """
UPDATE leases SET expires_at = ?5
WHERE pipeline = ?1 AND tenant = ?2 AND holder = ?3 AND token = ?4 AND expires_at > ?6
"""

_RELEASE: Final = """
UPDATE leases SET holder = NULL, expires_at = ?5
WHERE pipeline = ?1 AND tenant = ?2 AND holder = ?3 AND token = ?4
"""

_FENCE: Final = """
SELECT 1 FROM leases
WHERE pipeline = ?1 AND tenant = ?2 AND holder = ?3 AND token = ?4 AND expires_at > ?5
"""
"""The lease is current and unexpired: read inside the write's IMMEDIATE transaction."""

_COMMIT: Final = """
INSERT INTO checkpoints (pipeline, tenant, state, token, records, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
ON CONFLICT (pipeline, tenant) DO UPDATE SET
    state = excluded.state, token = excluded.token,
    records = checkpoints.records + excluded.records, updated_at = excluded.updated_at
RETURNING pipeline, tenant, state, token, records, updated_at
"""

_CHECKPOINT_COLUMNS: Final = "pipeline, tenant, state, token, records, updated_at"

_CHECKPOINT: Final = (
    f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE pipeline = ?1 AND tenant = ?2"
)

_DEAD_LETTER: Final = """
INSERT INTO dead_letters (run_id, pipeline, tenant, record, reason, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6)
"""

_DEAD_LETTERS: Final = """
SELECT run_id, pipeline, tenant, record, reason, created_at FROM dead_letters
WHERE pipeline = ?1 AND tenant = ?2 ORDER BY seq DESC LIMIT ?3
"""

_RUN_COLUMNS: Final = (
    "run_id, pipeline, tenant, executor, started_at, finished_at, outcome, records_moved, "
    "batches, rejected, error"
)

_START_RUN: Final = f"""
INSERT INTO runs (run_id, pipeline, tenant, executor, started_at, outcome, records_moved,
    batches, rejected)
VALUES (?1, ?2, ?3, ?4, ?5, 'running', 0, 0, 0)
ON CONFLICT (run_id) DO NOTHING
RETURNING {_RUN_COLUMNS}
"""

_FINISH_RUN: Final = f"""
UPDATE runs SET finished_at = ?2, outcome = ?3, records_moved = ?4, batches = ?5,
    rejected = ?6, error = ?7
WHERE run_id = ?1 AND outcome IN ('running', 'abandoned')
RETURNING {_RUN_COLUMNS}
"""

_RUN_OUTCOME: Final = "SELECT outcome FROM runs WHERE run_id = ?1"

_RUNS: Final = f"""
SELECT {_RUN_COLUMNS} FROM runs
WHERE (?1 IS NULL OR pipeline = ?1) AND (?2 IS NULL OR tenant = ?2)
ORDER BY started_at DESC, seq DESC LIMIT ?3
"""

_LAST_RUNS: Final = f"""
SELECT {_RUN_COLUMNS} FROM (
    SELECT *, row_number() OVER (
        PARTITION BY pipeline, tenant ORDER BY started_at DESC, seq DESC
    ) AS place
    FROM runs
) WHERE place = 1
"""

_ALL_CHECKPOINTS: Final = f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints"

_DEAD_LETTER_COUNTS: Final = (
    "SELECT pipeline, tenant, count(*) FROM dead_letters GROUP BY pipeline, tenant"
)

# -- error mapping --------------------------------------------------------------------------

_BUSY: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_CHECK_FAILED: Final = 275  # SQLITE_CONSTRAINT_CHECK: a value the schema refuses
_DAMAGED: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


@contextlib.contextmanager
def sqlite_errors(path: str) -> Iterator[None]:
    """Map sqlite3's exceptions into `StoreError`, naming the file `path`.

    A value the schema's checks refuse (a record total past 64 bits) is an
    `InvalidStoreValue`; a busy or locked file (another process held the write lock past the
    busy timeout) is transient; a damaged file or one that is not SQLite says so; anything
    else names the file and SQLite's message.
    """
    try:
        yield
    except sqlite3.Error as error:
        raise _mapped(error, path) from error


def _mapped(error: sqlite3.Error, path: str) -> StoreError:
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if code == _CHECK_FAILED:
        return InvalidStoreValue(f"the job store {path} cannot store a value: {error}")
    if primary in _BUSY:
        return StoreError(
            f"the job store {path} is busy: another connection held its lock past the busy "
            f"timeout ({error})",
            transient=True,
        )
    if primary in _DAMAGED:
        return StoreError(
            f"the job store {path} is damaged or is not a SQLite database ({error}); restore "
            "it from a backup or point the jobs at another file"
        )
    return StoreError(f"the job store {path} failed: {error}")


# -- migrations -----------------------------------------------------------------------------


def schema_version(connection: sqlite3.Connection) -> int:
    """The versions applied to the file (0: a new file); it only reads."""
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'"
    ).fetchone()
    if found is None:
        return 0
    return int(
        connection.execute("SELECT coalesce(max(version), 0) FROM schema_versions").fetchone()[0]
    )


def refuse_newer(version: int, path: str) -> None:
    """`StoreError` for a file from a newer release: older code would corrupt what it does
    not understand, so the file is left untouched."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the job store {path} has schema version {version}, newer than this release of "
            f"integrations-jobs knows ({SCHEMA_VERSION}); it was left untouched: upgrade "
            "integrations-jobs to open it"
        )


def refuse_foreign(connection: sqlite3.Connection, path: str) -> None:
    """`StoreError` for a file that holds tables but no job store: a memory store or another
    application's database named by mistake must not get the job tables mixed into it."""
    found = connection.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'schema_versions' "
        "ORDER BY name LIMIT 3"
    ).fetchall()
    if found:
        names = ", ".join(name for (name,) in found)
        raise StoreError(
            f"{path} is a SQLite database of something else (tables {names}, no job store "
            "schema): point the jobs at a file of their own"
        )


def migrate(connection: sqlite3.Connection, path: str, now: datetime) -> int:
    """Bring the file to `SCHEMA_VERSION` in one ``BEGIN IMMEDIATE`` transaction that re-reads
    the version under the write lock, so processes opening a new file together migrate it
    once. An up-to-date file is only read."""
    if schema_version(connection) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute(_VERSIONS_TABLE)
        current = schema_version(connection)
        refuse_newer(current, path)
        if current == 0:
            refuse_foreign(connection, path)
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version - 1]:
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_versions (version, applied_at) VALUES (?, ?)",
                (version, micros(now)),
            )
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


# -- conversions ----------------------------------------------------------------------------


def micros(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch, the way times are stored."""
    return (moment - _EPOCH) // _MICROSECOND


def moment(value: int) -> datetime:
    """A stored time back as an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=value)


_ROWS: Final = RowDecoder(moment)
_checkpoint = _ROWS.checkpoint
_run = _ROWS.run
_dead_letter = _ROWS.dead_letter


def _lease_key(lease: Lease) -> tuple[str, str, str, int]:
    return (lease.pipeline, lease.tenant, lease.holder, lease.token)


# -- the store ------------------------------------------------------------------------------


class SqliteJobStore(ClosesOnExit):
    """A `JobStore` in the SQLite file `path` (created and migrated on open).

    `busy_timeout` is how long a write waits for another process's write lock before it fails
    with a transient `StoreError`; `clock` is where the store reads the time.
    """

    def __init__(
        self, path: str | Path, *, clock: Clock = utc_now, busy_timeout: float = 10.0
    ) -> None:
        self._path = str(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = _open(self._path, busy_timeout, clock)

    @property
    def path(self) -> str:
        """The file the store lives in."""
        return self._path

    def __repr__(self) -> str:
        return f"SqliteJobStore({self._path!r})"

    # -- leases -----------------------------------------------------------------------------

    def acquire_lease(self, pipeline: str, tenant: str, holder: str, ttl_seconds: float) -> Lease:
        """A new lease (token one above the last); `LeaseHeld` when another holder's is live."""
        key = (check_name("pipeline", pipeline), check_name("tenant", tenant))
        check_name("holder", holder)
        ttl = check_ttl(ttl_seconds)
        with self._write() as (db, now):
            expires = now + ttl
            row = db.execute(_ACQUIRE, (*key, holder, micros(expires), micros(now))).fetchone()
            if row is None:
                raise _held(db, pipeline, tenant)
        return Lease(pipeline, tenant, holder, int(row[0]), expires)

    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        """The lease extended to now + ttl; `LeaseLost` when expired or taken over."""
        ttl = check_ttl(ttl_seconds)
        with self._write() as (db, now):
            expires = now + ttl
            changed = db.execute(
                _RENEW, (*_lease_key(lease), micros(expires), micros(now))
            ).rowcount
            if changed != 1:
                raise _lost(lease, "renew it")
        return Lease(lease.pipeline, lease.tenant, lease.holder, lease.token, expires)

    def release_lease(self, lease: Lease) -> None:
        """Free the lease (its token stays spent); a lease already lost is left alone."""
        with self._write() as (db, now):
            db.execute(_RELEASE, (*_lease_key(lease), micros(now)))

    # -- checkpoints and dead letters -------------------------------------------------------

    def checkpoint(self, pipeline: str, tenant: str) -> Checkpoint | None:
        """The last committed checkpoint of (pipeline, tenant), or None."""
        with self._read() as db:
            row = db.execute(_CHECKPOINT, (pipeline, tenant)).fetchone()
        return None if row is None else _checkpoint(row)

    def commit_checkpoint(
        self, lease: Lease, state: Mapping[str, Any] | None, records_added: int
    ) -> Checkpoint:
        """Store `state`, add `records_added`: only while `lease` is current and unexpired."""
        text = dump_state(state)
        check_count("records_added", records_added)
        with self._write() as (db, now):
            _fence(db, lease, now, "commit a checkpoint")
            row = db.execute(
                _COMMIT,
                (lease.pipeline, lease.tenant, text, lease.token, records_added, micros(now)),
            ).fetchone()
        return _checkpoint(row)

    def add_dead_letters(
        self, lease: Lease, run_id: str, letters: Sequence[tuple[Mapping[str, Any], str]]
    ) -> None:
        """Keep every (record, reason), all or none, only while `lease` is current."""
        check_name("run_id", run_id)
        rows = [(dump_record(record), check_reason(reason)) for record, reason in letters]
        with self._write() as (db, now):
            _fence(db, lease, now, "add dead letters")
            db.executemany(
                _DEAD_LETTER,
                [
                    (run_id, lease.pipeline, lease.tenant, record, reason, micros(now))
                    for record, reason in rows
                ],
            )

    def commit_batch(
        self,
        lease: Lease,
        state: Mapping[str, Any] | None,
        records_added: int,
        *,
        run_id: str,
        letters: Sequence[tuple[Mapping[str, Any], str]] = (),
        ttl_seconds: float,
    ) -> Lease:
        """Dead letters, checkpoint and lease renewal in one fenced transaction."""
        text = dump_state(state)
        check_count("records_added", records_added)
        check_name("run_id", run_id)
        ttl = check_ttl(ttl_seconds)
        rows = [(dump_record(record), check_reason(reason)) for record, reason in letters]
        with self._write() as (db, now):
            _fence(db, lease, now, "commit a batch")
            db.executemany(
                _DEAD_LETTER,
                [
                    (run_id, lease.pipeline, lease.tenant, record, reason, micros(now))
                    for record, reason in rows
                ],
            )
            db.execute(
                _COMMIT,
                (lease.pipeline, lease.tenant, text, lease.token, records_added, micros(now)),
            ).fetchone()
            expires = now + ttl
            db.execute(_RENEW, (*_lease_key(lease), micros(expires), micros(now)))
        return Lease(lease.pipeline, lease.tenant, lease.holder, lease.token, expires)

    def dead_letters(self, pipeline: str, tenant: str, limit: int = 100) -> list[DeadLetter]:
        """The newest `limit` dead letters of (pipeline, tenant), newest first."""
        check_limit(limit)
        with self._read() as db:
            rows = db.execute(_DEAD_LETTERS, (pipeline, tenant, limit)).fetchall()
        return [_dead_letter(row) for row in rows]

    # -- runs -------------------------------------------------------------------------------

    def start_run(self, run_id: str, pipeline: str, tenant: str, executor: str) -> RunRecord:
        """Record a new run as ``running``; a run id seen before is a `StoreError`."""
        names = [
            check_name(what, value)
            for what, value in (
                ("run_id", run_id),
                ("pipeline", pipeline),
                ("tenant", tenant),
                ("executor", executor),
            )
        ]
        with self._write() as (db, now):
            row = db.execute(_START_RUN, (*names, micros(now))).fetchone()
        if row is None:
            raise StoreError(f"run {run_id!r} is already recorded: run ids must be unique")
        return _run(row)

    def finish_run(
        self,
        run_id: str,
        outcome: str,
        records_moved: int,
        batches: int,
        rejected: int,
        error: str | None,
    ) -> RunRecord:
        """Record how a running run ended; an unknown or finished run is a `StoreError`."""
        counts = [
            check_count(what, value)
            for what, value in (
                ("records_moved", records_moved),
                ("batches", batches),
                ("rejected", rejected),
            )
        ]
        values = (check_outcome(outcome), *counts, check_error(error))
        with self._write() as (db, now):
            row = db.execute(_FINISH_RUN, (run_id, micros(now), *values)).fetchone()
            if row is None:
                raise _not_running(run_id, db.execute(_RUN_OUTCOME, (run_id,)).fetchone())
        return _run(row)

    def runs(
        self, pipeline: str | None = None, tenant: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Run records, newest first (start time, then start order)."""
        check_limit(limit)
        with self._read() as db:
            rows = db.execute(_RUNS, (pipeline, tenant, limit)).fetchall()
        return [_run(row) for row in rows]

    def status(self) -> list[PipelineStatus]:
        """Every (pipeline, tenant) with a run or a checkpoint, from one snapshot."""
        with self._read() as db:
            checkpoints = [_checkpoint(row) for row in db.execute(_ALL_CHECKPOINTS)]
            last_runs = [_run(row) for row in db.execute(_LAST_RUNS)]
            counts = {(p, t): int(n) for p, t, n in db.execute(_DEAD_LETTER_COUNTS)}
        return assemble_status(checkpoints, last_runs, counts)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                db.close()

    # -- transactions -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, datetime]]:
        """A ``BEGIN IMMEDIATE`` transaction and the time read once the write lock is held
        (a time read before waiting for the lock could judge an expiry too early)."""
        with self._transaction("IMMEDIATE") as db:
            yield db, current_time(self._clock)

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A deferred transaction: one consistent snapshot for every statement in it."""
        with self._transaction("DEFERRED") as db:
            yield db

    @contextlib.contextmanager
    def _transaction(self, mode: str) -> Iterator[sqlite3.Connection]:
        with self._lock, sqlite_errors(self._path):
            db = self._db
            if db is None:
                raise StoreError(f"the job store {self._path} is closed")
            db.execute(f"BEGIN {mode}")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def _open(path: str, busy_timeout: float, clock: Clock) -> sqlite3.Connection:
    """Connect, refuse a newer file before writing anything to it, then set WAL and migrate."""
    with sqlite_errors(path):
        connection = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            _refuse_before_writing(connection, path)
            _use_wal(connection, busy_timeout)
            connection.execute("PRAGMA synchronous = FULL")
            migrate(connection, path, current_time(clock))
        except BaseException:
            connection.close()
            raise
    return connection


def _refuse_before_writing(connection: sqlite3.Connection, path: str) -> None:
    """Refuse a newer or a foreign file while nothing has been written to it (switching to
    WAL writes to the file's header).

    Both reads share one read transaction: read apart, another process's migration could
    commit between them, and its fresh tables would look like another application's.
    """
    connection.execute("BEGIN")
    try:
        version = schema_version(connection)
        refuse_newer(version, path)
        if version == 0:
            refuse_foreign(connection, path)
    finally:
        connection.execute("COMMIT")


def _use_wal(connection: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL (it stays so), retrying while it is busy, up to the timeout.

    Switching needs the file to itself, and SQLite answers SQLITE_BUSY at once rather than
    calling the busy handler when other connections hold it: processes or threads opening a
    new file together would otherwise fail.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            code = getattr(error, "sqlite_errorcode", 0)
            if code & 0xFF not in _BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(_WAL_RETRY_SECONDS)


def _fence(db: sqlite3.Connection, lease: Lease, now: datetime, action: str) -> None:
    """`LeaseLost` unless `lease` is the current, unexpired lease (inside the write lock)."""
    if db.execute(_FENCE, (*_lease_key(lease), micros(now))).fetchone() is None:
        raise _lost(lease, action)


def _lost(lease: Lease, action: str) -> LeaseLost:
    return LeaseLost(
        f"lease {lease.token} of {lease.holder!r} on pipeline {lease.pipeline!r}, tenant "
        f"{lease.tenant!r} expired or was taken over: could not {action}, nothing was written"
    )


def _held(db: sqlite3.Connection, pipeline: str, tenant: str) -> LeaseHeld:
    holder, expires_at = db.execute(_HOLDER, (pipeline, tenant)).fetchone()
    until = moment(expires_at)
    return LeaseHeld(
        f"pipeline {pipeline!r}, tenant {tenant!r} is leased to {holder!r} until "
        f"{until.isoformat()}",
        holder=holder,
        expires_at=until,
    )


def _not_running(run_id: str, found: Row | None) -> StoreError:
    if found is None:
        return StoreError(f"no run {run_id!r} was started: start_run comes first")
    return StoreError(f"run {run_id!r} already finished ({found[0]}): a run finishes once")
