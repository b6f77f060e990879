"""Opening job stores: `open_store`'s URLs, files and servers that cannot be used, migrations
racing, exact JSON, and how each driver's errors become `StoreError`."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import psycopg
import pytest
from psycopg import sql

from integrations.jobs._exceptions import InvalidStoreValue, StoreError
from integrations.jobs._postgres_store import DEFAULT_SCHEMA, PostgresJobStore, postgres_errors
from integrations.jobs._sqlite_store import SqliteJobStore
from integrations.jobs._store import JobStore, open_store

pytestmark = pytest.mark.timeout(120)


class Clock(Protocol):
    def __call__(self) -> datetime: ...

    def advance(self, seconds: float) -> datetime: ...


class Backend(Protocol):
    kind: str

    def open(self, clock: Callable[[], datetime]) -> JobStore: ...


# -- open_store -----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["sqlite:///{}", "sqlite:////{}", "{}", "path"])
def test_open_store_opens_a_sqlite_file(tmp_path: Path, clock: Clock, form: str) -> None:
    path = tmp_path / "jobs.db"
    target: str | Path = path if form == "path" else form.format(str(path).lstrip("/"))
    if form == "{}":
        target = str(path)

    with open_store(target, clock=clock) as store:
        lease = store.acquire_lease("orders", "acme", "w", 30)

    assert isinstance(store, SqliteJobStore)
    assert Path(store.path) == path
    assert lease.expires_at == clock() + timedelta(seconds=30)
    with SqliteJobStore(path) as again:
        assert again.acquire_lease("orders", "acme", "w", 30).token == 2


def test_a_relative_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store("jobs.db") as store:
        store.start_run("r1", "orders", "acme", "local")

    assert (tmp_path / "jobs.db").is_file()


@pytest.mark.parametrize(
    "url",
    ["sqlite://host/jobs.db", "sqlite:///", "sqlite:///jobs.db?mode=ro", "mysql://db/jobs"],
)
def test_urls_that_name_no_usable_store_are_refused(url: str) -> None:
    with pytest.raises(StoreError):
        open_store(url)


def test_open_store_opens_postgres_in_its_default_schema(
    jobs_postgres_dsn: str, clock: Clock
) -> None:
    existed = _schema_exists(jobs_postgres_dsn, DEFAULT_SCHEMA)
    try:
        with open_store(jobs_postgres_dsn, clock=clock) as store:
            assert isinstance(store, PostgresJobStore)
            assert store.schema == DEFAULT_SCHEMA
            store.start_run("open-store-check", "orders", "acme", "local")
            assert store.runs(pipeline="orders")[0].started_at == clock()
    finally:
        if not existed:  # never drop a store that a DATABASE_URL server already had
            _drop_schema(jobs_postgres_dsn, DEFAULT_SCHEMA)


def _schema_exists(dsn: str, schema: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as connection:
        row = connection.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
    return row is not None


def _drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )


# -- both stores ----------------------------------------------------------------------------


def test_stores_opened_at_once_on_new_storage_all_work(job_backend: Backend, clock: Clock) -> None:
    """Threads open the same new file or schema together: it is migrated once, all work."""
    barrier = threading.Barrier(4, timeout=60)
    errors: list[BaseException] = []
    stores: list[JobStore] = []
    lock = threading.Lock()

    def opener() -> None:
        barrier.wait()
        try:
            opened = job_backend.open(clock)
        except BaseException as error:  # reported below, with the others
            with lock:
                errors.append(error)
            return
        with lock:
            stores.append(opened)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert len(stores) == 4
        tokens = [s.acquire_lease("orders", "acme", "w", 30).token for s in stores]
        assert tokens == [1, 2, 3, 4]
    finally:
        for opened in stores:
            opened.close()


def test_json_comes_back_exactly_as_committed(store: JobStore) -> None:
    """Floats stay floats (jsonb alone would turn 1e100 into an integer), big integers stay
    exact, key order is kept."""
    state = {"z": 1e100, "a": 1.0, "big": 12345678901234567890, "tiny": 5e-324, "neg": -0.0}
    lease = store.acquire_lease("orders", "acme", "w", 30)

    committed = store.commit_checkpoint(lease, state, 0)
    read = store.checkpoint("orders", "acme")

    for got in (committed.state, read.state if read else None):
        assert got == state
        assert got is not None
        assert list(got) == list(state)
        assert [type(v) for v in got.values()] == [type(v) for v in state.values()]


def test_a_count_past_64_bits_is_refused_without_a_write(store: JobStore) -> None:
    lease = store.acquire_lease("orders", "acme", "w", 30)
    store.commit_checkpoint(lease, {"n": 1}, 2**63 - 1)

    with pytest.raises(InvalidStoreValue):
        store.commit_checkpoint(lease, {"n": 2}, 1)
    checkpoint = store.checkpoint("orders", "acme")
    assert checkpoint is not None
    assert (checkpoint.state, checkpoint.records) == ({"n": 1}, 2**63 - 1)


# -- SQLite files ---------------------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    path.write_bytes(b"not a database, but someone's notes " * 200)

    with pytest.raises(StoreError, match="not a SQLite database"):
        SqliteJobStore(path)
    assert path.read_bytes() == b"not a database, but someone's notes " * 200


def test_another_applications_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "memories.db"
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("CREATE TABLE memories (id TEXT PRIMARY KEY)")
    connection.close()
    before = path.read_bytes()

    with pytest.raises(StoreError, match="something else"):
        SqliteJobStore(path)
    assert path.read_bytes() == before


def test_a_file_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="failed"):
        SqliteJobStore(tmp_path / "missing" / "jobs.db")


def test_a_newer_sqlite_file_is_left_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    SqliteJobStore(path).close()
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("INSERT INTO schema_versions (version, applied_at) VALUES (2, 0)")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    before = path.read_bytes()

    with pytest.raises(StoreError, match="schema version 2"):
        SqliteJobStore(path)
    assert path.read_bytes() == before


def test_a_busy_file_is_a_transient_error(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(path, busy_timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="busy") as raised:
            store.acquire_lease("orders", "acme", "w", 30)
        assert raised.value.transient
        other.execute("ROLLBACK")
        assert store.acquire_lease("orders", "acme", "w", 30).token == 1  # nothing was written
    finally:
        other.close()
        store.close()


# -- PostgreSQL servers ---------------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, never listening, so no one else takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_an_unreachable_server_is_a_store_error_without_the_password(closed_port: int) -> None:
    dsn = f"postgresql://jobs:s3cret-pw@127.0.0.1:{closed_port}/jobs?connect_timeout=2"

    with pytest.raises(StoreError) as raised:
        open_store(dsn)

    assert not raised.value.transient
    assert "s3cret-pw" not in str(raised.value)
    assert raised.value.__cause__ is None


def test_a_dsn_that_does_not_parse_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot be parsed"):
        PostgresJobStore("postgresql://jobs@127.0.0.1:5432/jobs?nonsense_option=1 =")


@pytest.mark.parametrize(
    ("error", "kind", "transient"),
    [
        (psycopg.errors.DeadlockDetected("deadlock"), StoreError, True),
        (psycopg.errors.SerializationFailure("retry"), StoreError, True),
        (psycopg.errors.AdminShutdown("bye"), StoreError, True),
        (psycopg.errors.NumericValueOutOfRange("too big"), InvalidStoreValue, False),
        (psycopg.errors.UndefinedTable("gone"), StoreError, False),
        (psycopg.OperationalError("server closed the connection"), StoreError, True),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_driver_errors_are_mapped_in_one_place(
    error: psycopg.Error, kind: type[StoreError], transient: bool
) -> None:
    with pytest.raises(kind) as raised, postgres_errors("pw"):
        raise error

    assert type(raised.value) is kind
    assert raised.value.transient is transient


def test_the_password_is_scrubbed_from_mapped_errors() -> None:
    with pytest.raises(StoreError) as raised, postgres_errors("hunter2"):
        raise psycopg.errors.UndefinedTable("password=hunter2 leaked")

    assert "hunter2" not in str(raised.value)
    assert "**********" in str(raised.value)
