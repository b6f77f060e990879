"""`PostgresJobStore`: the job store in PostgreSQL, shared by a fleet of workers.

The fenced writes are single statements: a ``WITH fence AS (SELECT ... FOR UPDATE)`` reads the
lease row, locking it, with the token, holder and expiry in its ``WHERE``, and the write
selects from it, so it writes nothing when the lease is not current. The row lock orders the
write against a concurrent acquisition of the same lease: whichever commits first, the other
sees it (under READ COMMITTED a locked row is re-read after the lock wait and the ``WHERE``
checked again), so a checkpoint is never committed with a token older than the current one.

Acquiring is an upsert whose conflict branch updates only a free or the caller's own lease,
taking the token one above the row's: the row is never deleted, so tokens keep increasing
across releases and expiries.

JSON is stored as the exact text the store was given (``state_json``, ``record_json``), with a
generated ``jsonb`` column beside it for queries: jsonb rewrites numbers (``1e100`` comes back
as an integer), and a source's cursor must come back as it was committed.

Connections come from a psycopg_pool pool (thread-safe; one store object serves a worker's
threads); every connection uses UTC and READ COMMITTED whatever the server's defaults.
Migrations run in one transaction under an advisory lock, as the memory store's do. Every
driver exception is mapped in `postgres_errors` alone, without the DSN's password.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

import psycopg
import psycopg_pool
from psycopg import sql

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

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "PostgresJobStore", "postgres_errors"]

Row = tuple[Any, ...]
Connection = psycopg.Connection[Row]

DEFAULT_SCHEMA: Final = "integrations_jobs"
APPLICATION_NAME: Final = "integrations-jobs"
MASK: Final = "**********"

# -- schema ---------------------------------------------------------------------------------

_MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: leases (one row per (pipeline, tenant) ever leased, never deleted: `token` is the last
    # token handed out), checkpoints, runs (`seq` orders runs started at the same instant)
    # and dead letters.
    """
    CREATE TABLE {s}.leases (
        pipeline text NOT NULL,
        tenant text NOT NULL,
        holder text,
        token bigint NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (pipeline, tenant)
    );
    CREATE TABLE {s}.checkpoints (
        pipeline text NOT NULL,
        tenant text NOT NULL,
        state_json text,
        state jsonb GENERATED ALWAYS AS (state_json::jsonb) STORED,
        token bigint NOT NULL,
        records bigint NOT NULL,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (pipeline, tenant)
    );
    CREATE TABLE {s}.runs (
        seq bigint GENERATED ALWAYS AS IDENTITY,
        run_id text PRIMARY KEY,
        pipeline text NOT NULL,
        tenant text NOT NULL,
        executor text NOT NULL,
        started_at timestamptz NOT NULL,
        finished_at timestamptz,
        outcome text NOT NULL
            CHECK (outcome IN ('running', 'succeeded', 'failed', 'lease_lost', 'abandoned')),
        records_moved bigint NOT NULL,
        batches bigint NOT NULL,
        rejected bigint NOT NULL,
        error text
    );
    CREATE INDEX runs_recent ON {s}.runs (started_at DESC, seq DESC);
    CREATE INDEX runs_pipeline_recent ON {s}.runs (pipeline, tenant, started_at DESC, seq DESC);
    CREATE TABLE {s}.dead_letters (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id text NOT NULL,
        pipeline text NOT NULL,
        tenant text NOT NULL,
        record_json text NOT NULL,
        record jsonb GENERATED ALWAYS AS (record_json::jsonb) STORED,
        reason text NOT NULL,
        created_at timestamptz NOT NULL
    );
    CREATE INDEX dead_letters_recent ON {s}.dead_letters (pipeline, tenant, seq DESC);
    """,
)

SCHEMA_VERSION: Final = len(_MIGRATIONS)
"""The schema version this code reads and writes."""

# -- statements -----------------------------------------------------------------------------

_ACQUIRE: Final = """
INSERT INTO {s}.leases AS l (pipeline, tenant, holder, token, expires_at)
VALUES (%(pipeline)s, %(tenant)s, %(holder)s, 1, %(expires)s)
ON CONFLICT (pipeline, tenant) DO UPDATE SET
    holder = excluded.holder, token = l.token + 1, expires_at = excluded.expires_at
WHERE l.holder IS NULL OR l.expires_at <= %(now)s OR l.holder = excluded.holder
RETURNING token
"""

_HOLDER: Final = """
SELECT holder, expires_at FROM {s}.leases WHERE pipeline = %(pipeline)s AND tenant = %(tenant)s
"""

_RENEW: Final = """
UPDATE {s}.leases SET expires_at = %(expires)s
WHERE pipeline = %(pipeline)s AND tenant = %(tenant)s AND holder = %(holder)s
    AND token = %(token)s AND expires_at > %(now)s
"""

_RELEASE: Final = """
UPDATE {s}.leases SET holder = NULL, expires_at = %(now)s
WHERE pipeline = %(pipeline)s AND tenant = %(tenant)s AND holder = %(holder)s
    AND token = %(token)s
"""

_FENCE: Final = """
fence AS (
    SELECT token FROM {s}.leases
    WHERE pipeline = %(pipeline)s AND tenant = %(tenant)s AND holder = %(holder)s
        AND token = %(token)s AND expires_at > %(now)s
    FOR UPDATE
)
"""
"""The current, unexpired lease, locked until commit: no row when the lease is lost."""

_CHECKPOINT_COLUMNS: Final = "pipeline, tenant, state_json, token, records, updated_at"

_COMMIT: Final = f"""
WITH {_FENCE}
INSERT INTO {{s}}.checkpoints AS c (pipeline, tenant, state_json, token, records, updated_at)
SELECT %(pipeline)s, %(tenant)s, %(state)s, fence.token, %(added)s, %(now)s FROM fence
ON CONFLICT (pipeline, tenant) DO UPDATE SET
    state_json = excluded.state_json, token = excluded.token,
    records = c.records + excluded.records, updated_at = excluded.updated_at
RETURNING {_CHECKPOINT_COLUMNS}
"""

# The insert runs whether or not the final SELECT reads it; with no fence row it inserts
# nothing, and the count says whether the lease held.
_DEAD_LETTERS_ADD: Final = f"""
WITH {_FENCE}, added AS (
    INSERT INTO {{s}}.dead_letters (run_id, pipeline, tenant, record_json, reason, created_at)
    SELECT %(run_id)s, %(pipeline)s, %(tenant)s, l.record, l.reason, %(now)s
    FROM fence, unnest(%(records)s::text[], %(reasons)s::text[])
        WITH ORDINALITY AS l(record, reason, ord)
    ORDER BY l.ord
    RETURNING 1
)
SELECT count(*) FROM fence
"""

_CHECKPOINT: Final = f"""
SELECT {_CHECKPOINT_COLUMNS} FROM {{s}}.checkpoints
WHERE pipeline = %(pipeline)s AND tenant = %(tenant)s
"""

_DEAD_LETTERS: Final = """
SELECT run_id, pipeline, tenant, record_json, reason, created_at FROM {s}.dead_letters
WHERE pipeline = %(pipeline)s AND tenant = %(tenant)s ORDER BY seq DESC LIMIT %(limit)s
"""

_RUN_COLUMNS: Final = (
    "run_id, pipeline, tenant, executor, started_at, finished_at, outcome, records_moved, "
    "batches, rejected, error"
)

_START_RUN: Final = f"""
INSERT INTO {{s}}.runs (run_id, pipeline, tenant, executor, started_at, outcome, records_moved,
    batches, rejected)
VALUES (%(run_id)s, %(pipeline)s, %(tenant)s, %(executor)s, %(now)s, 'running', 0, 0, 0)
ON CONFLICT (run_id) DO NOTHING
RETURNING {_RUN_COLUMNS}
"""

_FINISH_RUN: Final = f"""
UPDATE {{s}}.runs SET finished_at = %(now)s, outcome = %(outcome)s,
    records_moved = %(records_moved)s, batches = %(batches)s, rejected = %(rejected)s,
    error = %(error)s
WHERE run_id = %(run_id)s AND outcome IN ('running', 'abandoned')
RETURNING {_RUN_COLUMNS}
"""

_RUN_OUTCOME: Final = "SELECT outcome FROM {s}.runs WHERE run_id = %(run_id)s"

_RUNS: Final = f"""
SELECT {_RUN_COLUMNS} FROM {{s}}.runs
WHERE (%(pipeline)s::text IS NULL OR pipeline = %(pipeline)s::text)
    AND (%(tenant)s::text IS NULL OR tenant = %(tenant)s::text)
ORDER BY started_at DESC, seq DESC LIMIT %(limit)s
"""

_LAST_RUNS: Final = f"""
SELECT DISTINCT ON (pipeline, tenant) {_RUN_COLUMNS} FROM {{s}}.runs
ORDER BY pipeline, tenant, started_at DESC, seq DESC
"""

_ALL_CHECKPOINTS: Final = f"SELECT {_CHECKPOINT_COLUMNS} FROM {{s}}.checkpoints"

_DEAD_LETTER_COUNTS: Final = (
    "SELECT pipeline, tenant, count(*) FROM {s}.dead_letters GROUP BY pipeline, tenant"
)

_SNAPSHOT: Final = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"

# -- error mapping --------------------------------------------------------------------------

_TRANSIENT_STATES: Final = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "57014",  # query_canceled (a statement timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down)
    }
)
_TRANSIENT_CLASSES: Final = ("08", "53", "58")  # connection, resources, system error


@contextmanager
def postgres_errors(secret: str | None, *, connecting: bool = False) -> Iterator[None]:
    """A block in which psycopg's exceptions become `StoreError`; `secret` is scrubbed.

    A value PostgreSQL cannot store (SQLSTATE class 22) is an `InvalidStoreValue`; failures a
    retry may survive (a lost connection, a deadlock, an exhausted pool) are transient.
    `connecting` says the block opens the store, where a connection error is final: the URL
    or the server is wrong. The driver's exception is not chained: its text may hold the DSN.
    """
    try:
        yield
    except psycopg_pool.PoolTimeout as error:
        raise StoreError(
            f"PostgreSQL job store: no pooled connection became free in time "
            f"({_text(error, secret)})",
            transient=True,
        ) from None
    except psycopg.Error as error:
        raise _mapped(error, secret, connecting) from None


def _mapped(error: psycopg.Error, secret: str | None, connecting: bool) -> StoreError:
    state = error.sqlstate
    text = _text(error, secret)
    if state is None:
        if isinstance(error, psycopg.OperationalError) and not connecting:
            return StoreError(
                f"PostgreSQL job store: the connection was lost: {text}", transient=True
            )
        return StoreError(f"PostgreSQL job store: cannot use the server: {text}")
    if state in _TRANSIENT_STATES or state.startswith(_TRANSIENT_CLASSES):
        return StoreError(
            f"PostgreSQL job store: temporary failure ({state}): {text}", transient=not connecting
        )
    if state.startswith("22"):
        return InvalidStoreValue(f"PostgreSQL job store cannot store a value ({state}): {text}")
    return StoreError(f"PostgreSQL job store error ({state}): {text}")


def _text(error: BaseException, secret: str | None) -> str:
    """The error's message on one line, without `secret`."""
    text = " ".join(str(error).split())
    if secret:
        text = text.replace(secret, MASK)
    return text or type(error).__name__


# -- migrations -----------------------------------------------------------------------------


def qualified(template: str, schema: str) -> str:
    """`template` with ``{s}`` replaced by the quoted schema name."""
    return template.replace("{s}", sql.Identifier(schema).as_string())


def migrate(connection: Connection, schema: str) -> int:
    """Bring `schema` to `SCHEMA_VERSION`; return the version found before (0: none).

    Reads the version without a lock first, so opening an up-to-date store takes no lock and
    needs no right to create anything; a newer schema is refused before anything is written.
    `connection` must be in autocommit mode.
    """
    found = schema_version(connection, schema)
    refuse_newer(found, schema)
    if found == SCHEMA_VERSION:
        return found
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        connection.execute(qualified("CREATE SCHEMA IF NOT EXISTS {s}", schema))
        connection.execute(
            qualified(
                "CREATE TABLE IF NOT EXISTS {s}.schema_versions ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                schema,
            )
        )
        current = schema_version(connection, schema)
        refuse_newer(current, schema)
        for version in range(current + 1, SCHEMA_VERSION + 1):
            connection.execute(qualified(_MIGRATIONS[version - 1], schema))
            connection.execute(
                qualified("INSERT INTO {s}.schema_versions (version) VALUES (%s)", schema),
                (version,),
            )
    return found


def schema_version(connection: Connection, schema: str) -> int:
    """The highest version applied to `schema` (0: no job store there yet)."""
    table = qualified("{s}.schema_versions", schema)
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    if row is None or not row[0]:
        return 0
    found = connection.execute(f"SELECT coalesce(max(version), 0) FROM {table}").fetchone()
    return int(found[0]) if found is not None else 0


def refuse_newer(version: int, schema: str) -> None:
    """`StoreError` for a schema from a newer release, which this code would corrupt."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the PostgreSQL job store schema {schema!r} has schema version {version}, newer "
            f"than this release of integrations-jobs knows ({SCHEMA_VERSION}); it was left "
            "untouched: upgrade integrations-jobs to open it"
        )


def _lock_key(schema: str) -> int:
    """The advisory lock of `schema`'s migrations: a signed 64-bit number from its name."""
    digest = hashlib.sha256(f"integrations.jobs.schema:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# -- conversions ----------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    """A timestamptz as read (in the session's zone, UTC) with `datetime.UTC` as its zone."""
    return moment.astimezone(UTC)


_ROWS: Final = RowDecoder(_utc)
_checkpoint = _ROWS.checkpoint
_run = _ROWS.run
_dead_letter = _ROWS.dead_letter


def _lease_parameters(lease: Lease, now: datetime) -> dict[str, Any]:
    return {
        "pipeline": lease.pipeline,
        "tenant": lease.tenant,
        "holder": lease.holder,
        "token": lease.token,
        "now": now,
    }


# -- the store ------------------------------------------------------------------------------


class PostgresJobStore(ClosesOnExit):
    """A `JobStore` in the PostgreSQL database `dsn`, in `schema` (created and migrated on
    open; the role needs the right to create it the first time only).

    `min_size`/`max_size` bound the pool; `connect_timeout` is how long opening, and waiting
    for a free pooled connection, may take; `clock` is where the store reads the time.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        clock: Clock = utc_now,
        min_size: int = 1,
        max_size: int = 8,
        connect_timeout: float = 10.0,
    ) -> None:
        check_name("schema", schema)
        self._schema = schema
        self._clock = clock
        self._secret = _password(dsn)
        self._statements: dict[str, str] = {}
        self._closed = False
        self._pool = _open_pool(dsn, schema, self._secret, min_size, max_size, connect_timeout)

    @property
    def schema(self) -> str:
        """The PostgreSQL schema the store's tables live in."""
        return self._schema

    def __repr__(self) -> str:
        return f"PostgresJobStore(schema={self._schema!r})"

    # -- leases -----------------------------------------------------------------------------

    def acquire_lease(self, pipeline: str, tenant: str, holder: str, ttl_seconds: float) -> Lease:
        """A new lease (token one above the last); `LeaseHeld` when another holder's is live."""
        check_name("pipeline", pipeline)
        check_name("tenant", tenant)
        check_name("holder", holder)
        ttl = check_ttl(ttl_seconds)
        with self._transaction() as db:
            now = current_time(self._clock)
            key = {"pipeline": pipeline, "tenant": tenant}
            parameters = {**key, "holder": holder, "expires": now + ttl, "now": now}
            row = db.execute(self._sql(_ACQUIRE), parameters).fetchone()
            if row is None:
                # The conflicting row stays locked by the upsert: this reads who holds it.
                raise _held(db.execute(self._sql(_HOLDER), key).fetchone(), pipeline, tenant)
        return Lease(pipeline, tenant, holder, int(row[0]), now + ttl)

    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        """The lease extended to now + ttl; `LeaseLost` when expired or taken over."""
        ttl = check_ttl(ttl_seconds)
        with self._connection() as db:
            now = current_time(self._clock)
            parameters = {**_lease_parameters(lease, now), "expires": now + ttl}
            if db.execute(self._sql(_RENEW), parameters).rowcount != 1:
                raise _lost(lease, "renew it")
        return Lease(lease.pipeline, lease.tenant, lease.holder, lease.token, now + ttl)

    def release_lease(self, lease: Lease) -> None:
        """Free the lease (its token stays spent); a lease already lost is left alone."""
        with self._connection() as db:
            db.execute(self._sql(_RELEASE), _lease_parameters(lease, current_time(self._clock)))

    # -- checkpoints and dead letters -------------------------------------------------------

    def checkpoint(self, pipeline: str, tenant: str) -> Checkpoint | None:
        """The last committed checkpoint of (pipeline, tenant), or None."""
        with self._connection() as db:
            row = db.execute(
                self._sql(_CHECKPOINT), {"pipeline": pipeline, "tenant": tenant}
            ).fetchone()
        return None if row is None else _checkpoint(row)

    def commit_checkpoint(
        self, lease: Lease, state: Mapping[str, Any] | None, records_added: int
    ) -> Checkpoint:
        """Store `state`, add `records_added`: only while `lease` is current and unexpired."""
        text = dump_state(state)
        check_count("records_added", records_added)
        with self._connection() as db:
            parameters = _lease_parameters(lease, current_time(self._clock))
            parameters.update(state=text, added=records_added)
            row = db.execute(self._sql(_COMMIT), parameters).fetchone()
        if row is None:
            raise _lost(lease, "commit a checkpoint")
        return _checkpoint(row)

    def add_dead_letters(
        self, lease: Lease, run_id: str, letters: Sequence[tuple[Mapping[str, Any], str]]
    ) -> None:
        """Keep every (record, reason), all or none, only while `lease` is current."""
        check_name("run_id", run_id)
        pairs = [(dump_record(record), check_reason(reason)) for record, reason in letters]
        with self._connection() as db:
            parameters = _lease_parameters(lease, current_time(self._clock))
            parameters.update(
                run_id=run_id,
                records=[record for record, _ in pairs],
                reasons=[reason for _, reason in pairs],
            )
            row = db.execute(self._sql(_DEAD_LETTERS_ADD), parameters).fetchone()
        if row is None or row[0] != 1:
            raise _lost(lease, "add dead letters")

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
        """Dead letters, checkpoint and lease renewal in one transaction; the commit's fence
        locks the lease row first, so the other statements see the lease it checked."""
        text = dump_state(state)
        check_count("records_added", records_added)
        check_name("run_id", run_id)
        ttl = check_ttl(ttl_seconds)
        pairs = [(dump_record(record), check_reason(reason)) for record, reason in letters]
        with self._transaction() as db:
            now = current_time(self._clock)
            parameters = _lease_parameters(lease, now)
            parameters.update(state=text, added=records_added)
            if db.execute(self._sql(_COMMIT), parameters).fetchone() is None:
                raise _lost(lease, "commit a batch")
            if pairs:
                parameters.update(
                    run_id=run_id,
                    records=[record for record, _ in pairs],
                    reasons=[reason for _, reason in pairs],
                )
                db.execute(self._sql(_DEAD_LETTERS_ADD), parameters)
            db.execute(self._sql(_RENEW), {**parameters, "expires": now + ttl})
        return Lease(lease.pipeline, lease.tenant, lease.holder, lease.token, now + ttl)

    def dead_letters(self, pipeline: str, tenant: str, limit: int = 100) -> list[DeadLetter]:
        """The newest `limit` dead letters of (pipeline, tenant), newest first."""
        check_limit(limit)
        with self._connection() as db:
            rows = db.execute(
                self._sql(_DEAD_LETTERS), {"pipeline": pipeline, "tenant": tenant, "limit": limit}
            ).fetchall()
        return [_dead_letter(row) for row in rows]

    # -- runs -------------------------------------------------------------------------------

    def start_run(self, run_id: str, pipeline: str, tenant: str, executor: str) -> RunRecord:
        """Record a new run as ``running``; a run id seen before is a `StoreError`."""
        parameters: dict[str, Any] = {
            what: check_name(what, value)
            for what, value in (
                ("run_id", run_id),
                ("pipeline", pipeline),
                ("tenant", tenant),
                ("executor", executor),
            )
        }
        with self._connection() as db:
            parameters["now"] = current_time(self._clock)
            row = db.execute(self._sql(_START_RUN), parameters).fetchone()
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
        parameters: dict[str, Any] = {
            what: check_count(what, value)
            for what, value in (
                ("records_moved", records_moved),
                ("batches", batches),
                ("rejected", rejected),
            )
        }
        parameters.update(run_id=run_id, outcome=check_outcome(outcome), error=check_error(error))
        with self._transaction() as db:
            parameters["now"] = current_time(self._clock)
            row = db.execute(self._sql(_FINISH_RUN), parameters).fetchone()
            if row is None:
                found = db.execute(self._sql(_RUN_OUTCOME), {"run_id": run_id}).fetchone()
                raise _not_running(run_id, found)
        return _run(row)

    def runs(
        self, pipeline: str | None = None, tenant: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Run records, newest first (start time, then start order)."""
        check_limit(limit)
        with self._connection() as db:
            rows = db.execute(
                self._sql(_RUNS), {"pipeline": pipeline, "tenant": tenant, "limit": limit}
            ).fetchall()
        return [_run(row) for row in rows]

    def status(self) -> list[PipelineStatus]:
        """Every (pipeline, tenant) with a run or a checkpoint, from one snapshot."""
        with self._transaction() as db:
            db.execute(_SNAPSHOT)
            checkpoints = [_checkpoint(row) for row in db.execute(self._sql(_ALL_CHECKPOINTS))]
            last_runs = [_run(row) for row in db.execute(self._sql(_LAST_RUNS))]
            counts = {(p, t): int(n) for p, t, n in db.execute(self._sql(_DEAD_LETTER_COUNTS))}
        return assemble_status(checkpoints, last_runs, counts)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pool; the store cannot be used afterwards."""
        self._closed = True
        self._pool.close()

    # -- connections ------------------------------------------------------------------------

    def _sql(self, template: str) -> str:
        """`template` for this store's schema (kept: the schema never changes)."""
        statement = self._statements.get(template)
        if statement is None:
            statement = self._statements[template] = qualified(template, self._schema)
        return statement

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A pooled connection in autocommit mode: each statement is its own transaction."""
        if self._closed:
            raise StoreError(f"the PostgreSQL job store (schema {self._schema!r}) is closed")
        with postgres_errors(self._secret), self._pool.connection() as connection:
            yield connection

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A pooled connection inside one transaction, rolled back on any exception."""
        with self._connection() as connection, connection.transaction():
            yield connection


def _password(dsn: str) -> str | None:
    """The DSN's password, which error messages must never show."""
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        raise StoreError("the PostgreSQL job store URL cannot be parsed") from None
    return str(password) if password else None


def _open_pool(
    dsn: str,
    schema: str,
    secret: str | None,
    min_size: int,
    max_size: int,
    connect_timeout: float,
) -> psycopg_pool.ConnectionPool[Connection]:
    """Migrate on a direct connection (so an unreachable server or a refused role raises its
    own error rather than a pool timeout), then open the pool the operations use."""
    options: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": max(2, math.ceil(connect_timeout)),
    }
    if "application_name" not in psycopg.conninfo.conninfo_to_dict(dsn):
        options["application_name"] = APPLICATION_NAME
    with postgres_errors(secret, connecting=True):
        with psycopg.connect(dsn, **options) as connection:
            migrate(connection, schema)
        pool: psycopg_pool.ConnectionPool[Connection] = psycopg_pool.ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            kwargs=options,
            configure=_configure,
            timeout=connect_timeout,
            open=False,
            name="integrations-jobs-postgres",
        )
        try:
            pool.open(wait=True, timeout=connect_timeout)
        except BaseException:
            pool.close()
            raise
    return pool


def _configure(connection: Connection) -> None:
    """Times in UTC; transactions read committed, whatever the server's defaults: the fence's
    re-read of a locked row after the lock wait is READ COMMITTED behaviour."""
    connection.execute("SET TIME ZONE 'UTC'")
    connection.isolation_level = psycopg.IsolationLevel.READ_COMMITTED


def _lost(lease: Lease, action: str) -> LeaseLost:
    return LeaseLost(
        f"lease {lease.token} of {lease.holder!r} on pipeline {lease.pipeline!r}, tenant "
        f"{lease.tenant!r} expired or was taken over: could not {action}, nothing was written"
    )


def _held(row: Row | None, pipeline: str, tenant: str) -> LeaseHeld:
    holder, expires_at = row if row is not None else (None, None)
    until = None if expires_at is None else _utc(expires_at)
    when = "" if until is None else f" until {until.isoformat()}"
    return LeaseHeld(
        f"pipeline {pipeline!r}, tenant {tenant!r} is leased to {holder!r}{when}",
        holder=holder,
        expires_at=until,
    )


def _not_running(run_id: str, found: Row | None) -> StoreError:
    if found is None:
        return StoreError(f"no run {run_id!r} was started: start_run comes first")
    return StoreError(f"run {run_id!r} already finished ({found[0]}): a run finishes once")
