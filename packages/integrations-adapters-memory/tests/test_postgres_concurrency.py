"""memory.postgres under concurrent writers: sync misses no commit, pages neither repeat nor skip.

PostgreSQL commits concurrent transactions in any order, so a sync that followed a sequence
or a timestamp alone could read a later change before an earlier one committed and skip the
earlier one for good. The store serialises each tenant's writers on a counter row; these tests
run real concurrent sessions (and one deliberately slow transaction) against a real server
and check what a syncing and a paging reader observe.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import psycopg
import pytest
from psycopg import sql

from integrations.adapters.memory_adapters.postgres._backend import (
    PostgresSettings,
    open_postgres,
)
from integrations.base import (
    AuthContext,
    FetchQuery,
    Governance,
    MemoryAuditSink,
    PushPayload,
    Record,
    ResyncRequired,
    Session,
    SyncState,
    registry,
)

WRITERS = 6
BATCHES = 25
BATCH_SIZE = 60
IDS = 400
"""Writers pick ids from one shared set, so they update and delete each other's memories."""

WAIT_SECONDS = 30.0
"""The longest any loop here waits for another thread before the test fails."""


def store(dsn: str, schema: str, tenant: str) -> Session:
    return registry.open(
        "memory.postgres",
        config={"dsn": dsn, "schema_name": schema},
        context=AuthContext(tenant=tenant, actor="tester"),
        governance=Governance(audit=MemoryAuditSink()),
    )


def memory(memory_id: str, text: str, **metadata: Any) -> Record:
    return Record(id=memory_id, data={"text": text, "tags": [], "metadata": metadata})


@pytest.fixture
def schema() -> str:
    return f"concurrency_{uuid.uuid4().hex[:12]}"


@dataclass
class Failures:
    """Exceptions raised in worker threads, re-raised by the test."""

    errors: list[BaseException] = field(default_factory=list)

    def guard(self, work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as error:  # re-raised in the test's thread
                self.errors.append(error)

        return run

    def check(self) -> None:
        if self.errors:
            raise self.errors[0]


def start(*works: Callable[[], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=work, daemon=True) for work in works]
    for thread in threads:
        thread.start()
    return threads


def join(threads: list[threading.Thread]) -> None:
    deadline = time.monotonic() + 120
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not thread.is_alive(), "a worker thread did not finish"


def ground_truth(dsn: str, schema: str, tenant: str) -> dict[str, tuple[bool, str]]:
    """Every memory of `tenant` as the table holds it: (deleted, text) by id."""
    query = sql.SQL("SELECT id, deleted, text FROM {}.memories").format(sql.Identifier(schema))
    with psycopg.connect(dsn) as connection, connection.transaction():
        connection.execute("SELECT set_config('integrations.tenant', %s, true)", (tenant,))
        return {row[0]: (row[1], row[2]) for row in connection.execute(query).fetchall()}


# -- sync under concurrent writers ------------------------------------------------------------


def test_a_syncer_misses_no_change_of_concurrent_writers(postgres_dsn: str, schema: str) -> None:
    tenant = "busy"
    failures = Failures()
    written: set[str] = set()
    written_lock = threading.Lock()
    done = threading.Event()
    view: dict[str, tuple[bool, str]] = {}
    bookmarks: list[int] = []

    def writer(number: int) -> None:
        chooser = random.Random(number)
        with store(postgres_dsn, schema, tenant) as session:
            for batch in range(BATCHES):
                chosen = chooser.sample(range(IDS), BATCH_SIZE)
                records = [
                    Record(id=f"m{i}", deleted=True)
                    if chooser.random() < 0.1
                    else memory(f"m{i}", f"writer {number} batch {batch} memory {i}")
                    for i in chosen
                ]
                result = session.push(PushPayload(records=tuple(records)))
                assert result.rejected == ()
                with written_lock:
                    written.update(record.id for record in records if not record.deleted)

    def apply(changes: tuple[Record, ...]) -> None:
        assert len({change.id for change in changes}) == len(changes), "an id twice in a page"
        for change in changes:
            view[change.id] = (change.deleted, "" if change.deleted else str(change.data["text"]))

    def syncer() -> None:
        state = SyncState()
        with store(postgres_dsn, schema, tenant) as session:
            for _ in range(1_000_000):
                finished = done.is_set()  # read before syncing: the last pass sees everything
                result = session.sync(state)
                apply(result.changes)
                if result.changes:
                    bookmarks.append(int(result.state.bookmarks["seq"]))  # type: ignore[arg-type]  # an int
                state = result.state
                if finished and not result.has_more:
                    return

    with store(postgres_dsn, schema, tenant):
        pass  # create the schema before the race starts
    sync_thread = start(failures.guard(syncer))
    writers = start(*(failures.guard(partial(writer, n)) for n in range(WRITERS)))
    join(writers)
    done.set()
    join(sync_thread)
    failures.check()

    assert bookmarks == sorted(set(bookmarks)), "sync states did not strictly advance"
    assert len(bookmarks) > 1, "the syncer never ran while writers were active"
    truth = ground_truth(postgres_dsn, schema, tenant)
    assert written <= set(truth)
    assert view == truth, "the syncer's view differs from the table: a change was missed"


def test_change_numbers_arrive_strictly_increasing(postgres_dsn: str, schema: str) -> None:
    """The backend's change feed, read while writers run, never goes back or repeats.

    A memory shows up with its latest change only (earlier numbers of it vanish, leaving
    gaps), and by the end the last number read for each memory is its latest.
    """
    tenant = "numbers"
    failures = Failures()
    done = threading.Event()
    backend = open_postgres(
        PostgresSettings(
            dsn=postgres_dsn, schema=schema, min_size=1, max_size=2, connect_timeout=10
        )
    )
    seen: list[int] = []
    latest: dict[str, int] = {}

    def writer(number: int) -> None:
        with store(postgres_dsn, schema, tenant) as session:
            for batch in range(BATCHES // 2):
                records = [
                    memory(f"m{(number * 7 + batch * 13 + i) % IDS}", f"{number}/{batch}/{i}")
                    for i in range(BATCH_SIZE)
                ]
                session.push(PushPayload(records=tuple(records)))

    def reader() -> None:
        after = 0
        for _ in range(1_000_000):
            finished = done.is_set()
            with backend.errors():
                changes = backend.changes(tenant, after, 50)
            numbers = [change.seq for change in changes]
            assert numbers == sorted(set(numbers))
            assert all(number > after for number in numbers)
            seen.extend(numbers)
            latest.update((change.id, change.seq) for change in changes)
            after = numbers[-1] if numbers else after
            if finished and not numbers:
                return

    try:
        read_thread = start(failures.guard(reader))
        join(start(*(failures.guard(partial(writer, n)) for n in range(WRITERS))))
        done.set()
        join(read_thread)
    finally:
        backend.close()
    failures.check()
    assert seen == sorted(set(seen)), "change numbers went back or repeated"
    with psycopg.connect(postgres_dsn) as connection, connection.transaction():
        connection.execute("SELECT set_config('integrations.tenant', %s, true)", (tenant,))
        query = sql.SQL("SELECT id, seq FROM {}").format(sql.Identifier(schema, "memories"))
        truth: dict[str, int] = {row[0]: row[1] for row in connection.execute(query)}
    assert latest == truth, "the feed's last word on some memory is not its latest change"


def test_a_late_commit_holds_later_writers_back(postgres_dsn: str, schema: str) -> None:
    """A transaction that took its numbers first commits first, however slow it is.

    A raw transaction locks the tenant's counter the way the store does and keeps it open;
    a push through the store waits for it, so a sync in between sees neither, and after the
    slow transaction commits, sync returns its change before the push's.
    """
    tenant = "slow"
    failures = Failures()
    memories = sql.Identifier(schema, "memories")
    tenants = sql.Identifier(schema, "tenants")
    with store(postgres_dsn, schema, tenant) as session:
        state = SyncState()
        with psycopg.connect(postgres_dsn) as slow:
            slow.execute("SELECT set_config('integrations.tenant', %s, true)", (tenant,))
            row = slow.execute(
                sql.SQL(
                    "INSERT INTO {} AS t (tenant, last_seq) VALUES (%s, 1) ON CONFLICT (tenant)"
                    " DO UPDATE SET last_seq = t.last_seq + 1 RETURNING last_seq"
                ).format(tenants),
                (tenant,),
            ).fetchone()
            assert row is not None
            number = row[0]

            def late_push() -> None:
                with store(postgres_dsn, schema, tenant) as writer:
                    writer.push(PushPayload(records=(memory("fast", "pushed second"),)))

            pusher = start(failures.guard(late_push))
            wait_for_lock_waiter(postgres_dsn)
            assert session.sync(state).changes == ()
            slow.execute(
                sql.SQL(
                    "INSERT INTO {} (tenant, id, text, tags, metadata_json, created_at,"
                    " updated_at, created_seq, seq, deleted)"
                    " VALUES (%s, 'slow', 'committed first', '[]', '{{}}', now(), now(), %s, %s,"
                    " false)"
                ).format(memories),
                (tenant, number, number),
            )
            slow.commit()
        join(pusher)
        failures.check()
        changes = session.sync(state).changes
    assert [change.id for change in changes] == ["slow", "fast"]


def wait_for_lock_waiter(dsn: str) -> None:
    """Return once some session of this database waits for a lock (fail after a while)."""
    deadline = time.monotonic() + WAIT_SECONDS
    with psycopg.connect(dsn, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            row = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.01)
    raise AssertionError("the push never waited for the open transaction's lock")


# -- compaction under concurrent writers and syncers --------------------------------------------


def test_compaction_among_writers_and_syncers_loses_nothing(postgres_dsn: str, schema: str) -> None:
    """Compactions of every tombstone run while writers delete and syncers sync.

    Each sync page is complete or refused with `ResyncRequired`, after which the syncer
    starts a full sync on an empty view. In the end every syncer's view holds exactly the
    live memories of the table, with their latest text: a sync that skipped a deletion
    the compactor removed would keep a memory alive that the table no longer has.
    """
    tenant = "compacted"
    failures = Failures()
    done = threading.Event()
    removed: list[int] = []
    backend = open_postgres(
        PostgresSettings(
            dsn=postgres_dsn, schema=schema, min_size=1, max_size=2, connect_timeout=10
        )
    )

    def writer(number: int) -> None:
        chooser = random.Random(number)
        with store(postgres_dsn, schema, tenant) as session:
            for batch in range(BATCHES):
                records = [
                    Record(id=f"m{i}", deleted=True)
                    if chooser.random() < 0.3
                    else memory(f"m{i}", f"writer {number} batch {batch} memory {i}")
                    for i in chooser.sample(range(IDS // 4), BATCH_SIZE // 4)
                ]
                session.push(PushPayload(records=tuple(records)))

    def compactor() -> None:
        for round_ in range(1_000_000):
            finished = done.is_set()  # read first: the last round follows every write
            everything = datetime.now(UTC) + timedelta(days=1)
            with backend.errors():
                removed.append(backend.compact(everything, None if round_ % 2 else tenant))
            if finished:
                return
            time.sleep(0.005)

    def syncer(views: dict[str, tuple[bool, str]]) -> None:
        state = SyncState()
        with store(postgres_dsn, schema, tenant) as session:
            for _ in range(1_000_000):
                finished = done.is_set() and compacted.is_set()
                try:
                    result = session.sync(state)
                except ResyncRequired:
                    views.clear()
                    state = SyncState()
                    continue
                changed = [change.id for change in result.changes]
                assert len(set(changed)) == len(changed), "an id twice in a page"
                for change in result.changes:
                    text = "" if change.deleted else str(change.data["text"])
                    views[change.id] = (change.deleted, text)
                state = result.state
                if finished and not result.has_more:
                    return

    compacted = threading.Event()
    views: list[dict[str, tuple[bool, str]]] = [{}, {}]
    with store(postgres_dsn, schema, tenant):
        pass  # create the schema before the race starts
    try:
        syncers = start(*(failures.guard(partial(syncer, view)) for view in views))
        compacting = start(failures.guard(compactor))
        join(start(*(failures.guard(partial(writer, n)) for n in range(WRITERS // 2))))
        done.set()
        join(compacting)
        compacted.set()
        join(syncers)
    finally:
        backend.close()
    failures.check()

    assert sum(removed) > 0, "the compactor never removed a tombstone"
    truth = ground_truth(postgres_dsn, schema, tenant)
    assert not any(deleted for deleted, _ in truth.values()), "the last compaction left some"
    for view in views:
        live = {memory_id: text for memory_id, (deleted, text) in view.items() if not deleted}
        assert live == {memory_id: text for memory_id, (_, text) in truth.items()}


# -- paging under a concurrent writer ---------------------------------------------------------


@dataclass
class Writer:
    """Writes new memories and edits old ones while a reader pages, one batch per page."""

    session: Session
    stay: list[str]
    batches: int = 0
    condition: threading.Condition = field(default_factory=threading.Condition)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        chooser = random.Random(7)
        for batch in range(10_000):
            if self.stop.is_set():
                return
            new = [memory(f"new-{batch}-{i}", f"needle {'hay ' * i} fresh") for i in range(5)]
            edited = [
                memory(m, f"needle {'hay ' * (int(m[4:]) % 5)}", edits=batch)
                for m in chooser.sample(self.stay, 5)
            ]
            self.session.push(PushPayload(records=tuple(new + edited)))
            with self.condition:
                self.batches += 1
                self.condition.notify_all()

    def wait_past(self, batches: int) -> int:
        with self.condition:
            reached = self.condition.wait_for(lambda: self.batches > batches, WAIT_SECONDS)
            assert reached, "the writer stopped writing"
            return self.batches


@pytest.fixture
def paging(postgres_dsn: str, schema: str) -> Iterator[tuple[Session, list[str]]]:
    stay = [f"old-{i:03d}" for i in range(120)]
    with store(postgres_dsn, schema, "paging") as session:
        records = [memory(m, f"needle {'hay ' * (i % 5)}") for i, m in enumerate(stay)]
        session.push(PushPayload(records=tuple(records)))
        yield session, stay


@pytest.mark.parametrize("text", [None, "needle"])
def test_pages_neither_repeat_nor_skip_while_a_writer_writes(
    postgres_dsn: str, schema: str, paging: tuple[Session, list[str]], text: str | None
) -> None:
    reader, stay = paging
    failures = Failures()
    with store(postgres_dsn, schema, "paging") as session:
        writer = Writer(session, stay)
        thread = start(failures.guard(writer.run))
        try:
            fetched: list[str] = []
            cursor: str | None = None
            batches = 0
            for _ in range(1000):
                batches = writer.wait_past(batches)  # at least one write between pages
                page = reader.fetch(FetchQuery(text=text, limit=7, cursor=cursor))
                fetched.extend(record.id for record in page.records)
                cursor = page.next_cursor
                if cursor is None:
                    break
        finally:
            writer.stop.set()
            join(thread)
        failures.check()
    assert len(fetched) == len(set(fetched)), "a memory came back on two pages"
    missing = sorted(set(stay) - set(fetched))
    assert missing == [], f"memories present all along were skipped: {missing}"
