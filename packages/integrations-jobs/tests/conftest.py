"""Fixtures shared by the jobs tests.

Store fixtures: `job_backend` is parametrized over both job stores, so one suite runs against
SQLite (a real file in ``tmp_path``) and PostgreSQL (a throwaway cluster from the installed
binaries, started once per session, or the server ``DATABASE_URL`` names). Each test gets an
empty PostgreSQL schema of its own, dropped afterwards. `clock` is a settable clock, so lease
expiry is tested without sleeping.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from integrations.adapters.memory_adapters.testing import postgres_server
from integrations.jobs._sqlite_store import SqliteJobStore
from integrations.jobs._store import JobStore

START = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
"""Where test clocks start: microseconds included, so a store that rounds them is caught."""


class FakeClock:
    """A settable clock shared by threads: `advance` moves every store using it."""

    def __init__(self, start: datetime = START) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        """Move time forward by `seconds` and return the new time."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now


class JobBackend(Protocol):
    """One store's storage for a test: opens as many store objects on it as a test wants."""

    kind: str

    def open(self, clock: Callable[[], datetime]) -> JobStore:
        """A new store object on this test's storage."""
        ...

    def set_schema_version(self, version: int) -> None:
        """Record `version` as applied, as a newer release would."""
        ...


class SqliteBackend:
    """A SQLite file in the test's temporary directory."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def open(self, clock: Callable[[], datetime]) -> JobStore:
        return SqliteJobStore(self.path, clock=clock)

    def set_schema_version(self, version: int) -> None:
        import sqlite3

        connection = sqlite3.connect(self.path)
        try:
            with connection:
                connection.execute(
                    "INSERT INTO schema_versions (version, applied_at) VALUES (?, 0)", (version,)
                )
        finally:
            connection.close()


class PostgresBackend:
    """A schema of its own in the session's PostgreSQL database."""

    kind = "postgres"

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema

    def open(self, clock: Callable[[], datetime]) -> JobStore:
        from integrations.jobs._postgres_store import PostgresJobStore

        return PostgresJobStore(self.dsn, schema=self.schema, clock=clock)

    def set_schema_version(self, version: int) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute(
                sql.SQL("INSERT INTO {}.schema_versions (version) VALUES (%s)").format(
                    sql.Identifier(self.schema)
                ),
                (version,),
            )

    def drop(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            )


@pytest.fixture(scope="session")
def jobs_postgres_dsn() -> Iterator[str]:
    """A PostgreSQL DSN: ``DATABASE_URL`` when set, else a throwaway cluster for the session."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    with postgres_server() as dsn:
        yield dsn


STORE_KINDS = ("sqlite", "postgres")


@pytest.fixture(params=STORE_KINDS)
def job_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobBackend]:
    """Empty storage for one test, once per store kind."""
    if request.param == "sqlite":
        yield SqliteBackend(tmp_path / "jobs.db")
        return
    dsn: str = request.getfixturevalue("jobs_postgres_dsn")
    backend = PostgresBackend(dsn, f"jobs_test_{uuid.uuid4().hex[:12]}")
    try:
        yield backend
    finally:
        backend.drop()


@pytest.fixture
def clock() -> FakeClock:
    """A settable clock starting at `START`."""
    return FakeClock()


@pytest.fixture
def store(job_backend: JobBackend, clock: FakeClock) -> Iterator[JobStore]:
    """An open, empty store of each kind on the test's clock."""
    opened = job_backend.open(clock)
    try:
        yield opened
    finally:
        opened.close()
