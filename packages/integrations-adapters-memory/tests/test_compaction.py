"""Tombstone compaction and its horizon, on every memory store (SQLite, Redis, PostgreSQL).

Each store is a real one: a SQLite file, a key prefix on a throwaway Redis server, a schema on
a throwaway PostgreSQL cluster. Time is a `Clock` the tests move by hand and give to the
connector, which stamps every change with it: a tombstone "two hours old" is one the clock
was two hours earlier for, and nothing here waits for the wall clock.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from integrations.adapters.memory_adapters import (
    MemoryBackend,
    MemoryStoreConnector,
    StoredMemory,
    WriteBatch,
    decode_sync_state,
    encode_sync_state,
    sync_floor,
)
from integrations.adapters.memory_adapters.sqlite import SqliteMemoryConfig, SqliteMemoryConnector
from integrations.base import (
    AuthContext,
    ConfigError,
    ContractError,
    FetchQuery,
    Governance,
    InvalidRequest,
    JsonObject,
    LifecycleError,
    MemoryAuditSink,
    Record,
    ResyncRequired,
    Session,
    SyncState,
    TransientError,
)

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from memories import QUICK, Clock, fetch_all, ids, memory, push, sync_all

STORES = ["memory.sqlite", "memory.redis", "memory.postgres"]


@dataclass
class Store:
    """One fresh store of a backend: how to open sessions and a bare backend on it."""

    name: str
    connector_class: type[MemoryStoreConnector[Any]]
    config: dict[str, Any]
    clock: Clock = field(default_factory=Clock)

    def open(
        self, tenant: str = "acme", governance: Governance = QUICK, **settings: Any
    ) -> Session:
        """A governed session for `tenant` whose connector tells time by the store's clock."""
        return Session(
            self.connector_class(clock=self.clock.now),
            config={**self.config, **settings},
            context=AuthContext(tenant=tenant, actor="tester"),
            governance=governance,
        )

    @contextmanager
    def backend(self) -> Iterator[MemoryBackend]:
        """The store's backend, outside any session: what a maintenance job would use."""
        connector = self.connector_class()
        backend = connector.open_backend(connector.config_model.from_mapping(self.config))
        try:
            yield backend
        finally:
            with backend.errors():
                backend.close()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    name: str = request.param
    suffix = uuid.uuid4().hex[:12]
    if name == "memory.sqlite":
        return Store(name, SqliteMemoryConnector, {"path": str(tmp_path / "compaction.sqlite3")})
    if name == "memory.redis":
        from integrations.adapters.memory_adapters.redis import RedisMemoryConnector

        url = request.getfixturevalue("redis_url")
        return Store(name, RedisMemoryConnector, {"url": url, "key_prefix": f"compact:{suffix}"})
    from integrations.adapters.memory_adapters.postgres import PostgresMemoryConnector

    dsn = request.getfixturevalue("postgres_dsn")
    return Store(name, PostgresMemoryConnector, {"dsn": dsn, "schema_name": f"compact_{suffix}"})


def compact(session: Session, older_than: datetime | timedelta) -> int:
    """Compact through a governed session, the way the documentation shows."""
    connector = session.connector
    assert isinstance(connector, MemoryStoreConnector)
    return connector.compact(older_than)


def delete(session: Session, *memory_ids: str) -> None:
    push(session, *(Record(id=memory_id, deleted=True) for memory_id in memory_ids))


def changes_of(records: list[Record]) -> list[tuple[str, bool]]:
    return [(record.id, record.deleted) for record in records]


@dataclass
class History:
    """Five memories pushed at t0; two deleted at t0+1h, one at t0+2h; now t0+3h.

    `before` is a sync state from before any deletion, `middle` one that has seen the two
    old deletions (and no later change).
    """

    before: SyncState
    middle: SyncState
    live: dict[str, Record]


def write_history(session: Session, clock: Clock) -> History:
    push(
        session,
        memory("keep", "kept since the start", ["old"]),
        memory("edited", "edited later"),
        memory("old-1", "deleted long ago"),
        memory("old-2", "also deleted long ago"),
        memory("young", "deleted recently"),
    )
    before = sync_all(session, SyncState())[1]
    clock.advance(hours=1)
    delete(session, "old-1", "old-2")
    middle = sync_all(session, before)[1]
    clock.advance(hours=1)
    delete(session, "young")
    push(session, memory("edited", "edited later, and changed"))
    clock.advance(hours=1)
    live = {record.id: record for record in fetch_all(session, FetchQuery())}
    assert sorted(live) == ["edited", "keep"]
    return History(before, middle, live)


# -- what compaction removes ------------------------------------------------------------------


def test_compaction_removes_only_old_tombstones_and_counts_them(store: Store) -> None:
    with store.open() as session:
        history = write_history(session, store.clock)
        young_deletion = store.clock.now() - timedelta(hours=1)
        # A tombstone deleted exactly at `older_than` is not older than it: it stays.
        assert compact(session, young_deletion) == 2
        assert compact(session, young_deletion) == 0
        assert compact(session, timedelta(hours=1)) == 0  # the same time, as an age
        assert {r.id: r for r in fetch_all(session, FetchQuery())} == history.live
        assert ids(fetch_all(session, FetchQuery(text="later"))) == ["edited"]
        changes, _ = sync_all(session, SyncState())
        assert changes_of(changes) == [("keep", False), ("young", True), ("edited", False)]
        # Compacting up to now removes the young tombstone too, and still no live memory.
        assert compact(session, timedelta(0)) == 1
        changes, _ = sync_all(session, SyncState())
        assert changes_of(changes) == [("keep", False), ("edited", False)]
        assert {r.id: r for r in fetch_all(session, FetchQuery())} == history.live


def test_a_store_without_tombstones_has_nothing_to_compact(store: Store) -> None:
    with store.open() as session:
        assert compact(session, timedelta(0)) == 0
        push(session, memory("m1", "live"))
        store.clock.advance(days=30)
        assert compact(session, timedelta(0)) == 0
        assert ids(session.fetch(FetchQuery()).records) == ["m1"]
        assert changes_of(sync_all(session, SyncState())[0]) == [("m1", False)]


# -- sync states and the horizon --------------------------------------------------------------


def test_a_sync_state_from_before_removed_tombstones_needs_a_full_sync(store: Store) -> None:
    with store.open() as session:
        history = write_history(session, store.clock)
        assert compact(session, timedelta(hours=1, minutes=30)) == 2
        with pytest.raises(ResyncRequired, match="full sync") as raised:
            session.sync(history.before)
        assert isinstance(raised.value, InvalidRequest)
        # A state restored from JSON is the same state: it needs a full sync too.
        with pytest.raises(ResyncRequired):
            session.sync(SyncState.from_json(history.before.to_json()))


def test_a_sync_state_that_saw_the_removed_tombstones_keeps_working(store: Store) -> None:
    with store.open() as session:
        history = write_history(session, store.clock)
        assert compact(session, timedelta(hours=1, minutes=30)) == 2
        changes, state = sync_all(session, history.middle)
        assert changes_of(changes) == [("young", True), ("edited", False)]
        push(session, memory("after", "after the compaction"))
        changes, _ = sync_all(session, state)
        assert changes_of(changes) == [("after", False)]


def test_a_full_sync_after_compaction_gives_the_store_as_it_is(store: Store) -> None:
    with store.open() as session:
        history = write_history(session, store.clock)
        assert compact(session, timedelta(hours=1, minutes=30)) == 2
        changes, state = sync_all(session, SyncState())
        assert {r.id: r for r in changes if not r.deleted} == history.live
        assert [r.id for r in changes if r.deleted] == ["young"]
        delete(session, "keep")
        push(session, memory("new", "after the full sync"))
        changes, _ = sync_all(session, state)
        assert changes_of(changes) == [("keep", True), ("new", False)]


def test_resync_required_reaches_the_caller_unchanged_and_is_not_retried(store: Store) -> None:
    audit = MemoryAuditSink()
    with store.open(governance=Governance(audit=audit)) as session:  # the default retries
        history = write_history(session, store.clock)
        assert compact(session, timedelta(hours=1, minutes=30)) == 2
        audit.events.clear()
        with pytest.raises(ResyncRequired) as raised:
            session.sync(history.before)
    assert type(raised.value) is ResyncRequired
    finished = [(e.attempt, e.outcome, e.error_type) for e in audit.events if e.operation == "sync"]
    assert finished == [(1, None, None), (1, "error", "ResyncRequired")]


def test_the_horizon_survives_reopening_the_store(store: Store) -> None:
    with store.open() as session:
        history = write_history(session, store.clock)
        assert compact(session, timedelta(hours=1, minutes=30)) == 2
    with store.open() as reopened:
        with pytest.raises(ResyncRequired, match="full sync"):
            reopened.sync(history.before)
        changes, _ = sync_all(reopened, history.middle)
        assert changes_of(changes) == [("young", True), ("edited", False)]


# A full sync started after a compaction never shows what that compaction removed, so its
# states carry the horizon it started under (their floor) and are refused only for a later
# compaction, which may have removed the deletion of a memory the sync did show.


def test_a_full_sync_after_compaction_pages_to_its_end(store: Store) -> None:
    with store.open(sync_page_size=1) as session:
        push(session, memory("a", "first"), memory("b", "second"), memory("gone", "deleted"))
        delete(session, "gone")
        store.clock.advance(hours=2)
        assert compact(session, timedelta(hours=1)) == 1
        changes, _ = sync_all(session, SyncState())
        assert changes_of(changes) == [("a", False), ("b", False)]


def test_a_full_sync_after_compaction_can_be_resumed(store: Store) -> None:
    with store.open() as session:
        push(session, memory("a", "kept"), memory("gone", "deleted"))
        delete(session, "gone")
        store.clock.advance(hours=2)
        assert compact(session, timedelta(hours=1)) == 1
        changes, state = sync_all(session, SyncState())
        assert changes_of(changes) == [("a", False)]
        push(session, memory("b", "after the full sync"))
        assert changes_of(sync_all(session, state)[0]) == [("b", False)]


def test_a_full_sync_is_refused_when_a_later_compaction_removes_what_it_showed(
    store: Store,
) -> None:
    with store.open(sync_page_size=1) as session:
        push(session, memory("a", "shown by the first page"), memory("b", "second"))
        first = session.sync(SyncState())
        assert changes_of(list(first.changes)) == [("a", False)]
        delete(session, "a")
        store.clock.advance(hours=2)
        assert compact(session, timedelta(hours=1)) == 1
        with pytest.raises(ResyncRequired, match="full sync"):
            sync_all(session, first.state)


def test_a_state_without_a_floor_counts_as_floor_zero(store: Store) -> None:
    # States issued before they carried a floor hold only a change number: they are checked
    # against the horizon alone, as they always were.
    with store.open() as session:
        push(session, memory("a", "kept"), memory("gone", "deleted"))
        delete(session, "gone")
        store.clock.advance(hours=2)
        assert compact(session, timedelta(hours=1)) == 1
        state = sync_all(session, SyncState())[1]
        assert sync_floor(state) > decode_sync_state(state)
        assert sync_all(session, state)[0] == []
        with pytest.raises(ResyncRequired):
            session.sync(encode_sync_state(decode_sync_state(state)))


# -- tenants ----------------------------------------------------------------------------------


def test_compacting_one_tenant_leaves_the_others_alone(store: Store) -> None:
    tenants = ["north", "south", "west"]
    states: dict[str, SyncState] = {}
    for tenant in tenants:
        with store.open(tenant=tenant) as session:
            push(session, memory("shared", f"{tenant} shared"), memory("own", f"{tenant} own"))
            states[tenant] = sync_all(session, SyncState())[1]
            delete(session, "shared")
    store.clock.advance(hours=2)
    with store.open(tenant="north") as north:
        assert compact(north, timedelta(hours=1)) == 1
        with pytest.raises(ResyncRequired):
            north.sync(states["north"])
    for tenant in ("south", "west"):
        with store.open(tenant=tenant) as session:
            changes, _ = sync_all(session, states[tenant])
            assert changes_of(changes) == [("shared", True)]
    # No tenant: every tenant's old tombstones, each under its own horizon.
    with store.backend() as backend, backend.errors():
        assert backend.compact(store.clock.now() - timedelta(hours=1), None) == 2
        assert backend.compact(store.clock.now(), None) == 0
    for tenant in tenants:
        with store.open(tenant=tenant) as session:
            with pytest.raises(ResyncRequired):
                session.sync(states[tenant])
            changes, _ = sync_all(session, SyncState())
            assert [(r.id, r.data["text"]) for r in changes] == [("own", f"{tenant} own")]


# -- the schedule -----------------------------------------------------------------------------


def test_a_push_compacts_once_the_interval_has_passed(store: Store) -> None:
    schedule: dict[str, Any] = {
        "tombstone_retention_seconds": 60,
        "compaction_interval_seconds": 3600,
    }
    with store.open(**schedule) as session:
        # The first push compacts at once (no tombstone yet); the interval starts there.
        push(session, memory("a", "first"), memory("b", "second"), memory("c", "third"))
        start = sync_all(session, SyncState())[1]
        delete(session, "a")
        store.clock.advance(minutes=10)
        delete(session, "b")  # `a` is ten minutes old, but the interval has not passed
        assert changes_of(sync_all(session, start)[0]) == [("a", True), ("b", True)]
        store.clock.advance(minutes=51)
        push(session, memory("d", "fourth"))  # the interval has passed: a and b go
        with pytest.raises(ResyncRequired):
            session.sync(start)
        changes, _ = sync_all(session, SyncState())
        assert changes_of(changes) == [("c", False), ("d", False)]


def test_without_a_retention_pushes_never_compact(store: Store) -> None:
    with store.open(compaction_interval_seconds=0) as session:
        push(session, memory("a", "first"), memory("b", "second"))
        start = sync_all(session, SyncState())[1]
        delete(session, "a")
        store.clock.advance(days=3650)
        push(session, memory("c", "ten years later"))
        assert changes_of(sync_all(session, start)[0]) == [("a", True), ("c", False)]


# -- the shared core, on SQLite ---------------------------------------------------------------


class FlakyBackend:
    """A real SQLite backend whose first `failures` compactions fail as a busy file would."""

    def __init__(self, backend: MemoryBackend, failures: int) -> None:
        self._backend = backend
        self.failures = failures
        self.compactions: list[datetime] = []

    def errors(self) -> Any:
        return self._backend.errors()

    def describe(self) -> JsonObject:
        return self._backend.describe()

    def write(self, tenant: str, batch: WriteBatch, now: datetime) -> None:
        self._backend.write(tenant, batch, now)

    def query(self, tenant: str, query: Any) -> Any:
        return self._backend.query(tenant, query)

    def changes(
        self, tenant: str, after: int, limit: int, floor: int = 0
    ) -> tuple[StoredMemory, ...]:
        return self._backend.changes(tenant, after, limit, floor)

    def horizon(self, tenant: str) -> int:
        return self._backend.horizon(tenant)

    def compact(self, older_than: datetime, tenant: str | None = None) -> int:
        self.compactions.append(older_than)
        if self.failures:
            self.failures -= 1
            raise TransientError("the memory store is busy")
        return self._backend.compact(older_than, tenant)

    def close(self) -> None:
        self._backend.close()


class FlakyConnector(SqliteMemoryConnector):
    """The SQLite connector over a `FlakyBackend` (its last one is `self.backend`)."""

    def open_backend(self, config: SqliteMemoryConfig) -> Any:
        self.backend = FlakyBackend(super().open_backend(config), failures=0)
        return self.backend


def test_a_failed_scheduled_compaction_leaves_the_push_done_and_the_next_push_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    connector = FlakyConnector(clock=clock.now)
    config = {
        "path": str(tmp_path / "flaky.sqlite3"),
        "tombstone_retention_seconds": 60,
        "compaction_interval_seconds": 3600,
    }
    context = AuthContext(tenant="acme", actor="tester")
    with Session(connector, config=config, context=context, governance=QUICK) as session:
        push(session, memory("a", "first"), memory("b", "second"))  # the first compaction
        start = sync_all(session, SyncState())[1]
        delete(session, "a")
        assert len(connector.backend.compactions) == 1
        later = clock.advance(hours=2)
        connector.backend.failures = 1
        with caplog.at_level(logging.WARNING, logger="integrations.memory"):
            push(session, memory("c", "third"))  # due, and it fails: logged, push done
        assert connector.backend.compactions[1:] == [later - timedelta(minutes=1)]
        assert "scheduled compaction of the sqlite memory store failed" in caplog.text
        assert ids(session.fetch(FetchQuery()).records) == ["c", "b"]
        assert changes_of(sync_all(session, start)[0]) == [("a", True), ("c", False)]
        push(session, memory("d", "fourth"))  # still due: the next push compacts
        assert connector.backend.compactions[2:] == [later - timedelta(minutes=1)]
        with pytest.raises(ResyncRequired):
            session.sync(start)
        push(session, memory("e", "fifth"))  # done for this interval
        assert len(connector.backend.compactions) == 3


@pytest.mark.parametrize(
    ("older_than", "message"),
    [
        (datetime(2030, 1, 1), "no timezone"),  # naive on purpose
        (timedelta(seconds=-1), "must not be negative"),
        (timedelta(days=999_999_999), "before year 1"),
        (3600, "datetime or a timedelta"),
    ],
)
def test_compact_refuses_times_it_cannot_read(
    tmp_path: Path, older_than: Any, message: str
) -> None:
    store = Store("memory.sqlite", SqliteMemoryConnector, {"path": str(tmp_path / "m.sqlite3")})
    with store.open() as session, pytest.raises(InvalidRequest, match=message):
        compact(session, older_than)


def test_compact_needs_a_connected_session(tmp_path: Path) -> None:
    connector = SqliteMemoryConnector()
    with pytest.raises(LifecycleError, match="needs auth"):
        connector.compact(timedelta(days=1))
    context = AuthContext(tenant="acme", actor="tester")
    connector.auth(context)
    with pytest.raises(LifecycleError, match="needs connect"):
        connector.compact(timedelta(days=1))
    config = {"path": str(tmp_path / "m.sqlite3")}
    with Session(connector, config=config, context=context, governance=QUICK) as session:
        assert compact(session, timedelta(days=1)) == 0
    with pytest.raises(LifecycleError, match="needs auth"):  # the session ended
        connector.compact(timedelta(days=1))


@pytest.mark.parametrize(
    "settings",
    [
        {"tombstone_retention_seconds": 0},
        {"tombstone_retention_seconds": -5},
        {"tombstone_retention_seconds": float("inf")},
        {"tombstone_retention_seconds": 1e12},
        {"compaction_interval_seconds": -1},
        {"compaction_interval_seconds": float("nan")},
    ],
)
def test_bad_compaction_settings_are_config_errors(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SqliteMemoryConfig.from_mapping(settings)


def test_a_clock_without_a_timezone_is_refused(tmp_path: Path) -> None:
    connector = SqliteMemoryConnector(clock=lambda: datetime(2030, 1, 1))
    config = {"path": str(tmp_path / "m.sqlite3")}
    context = AuthContext(tenant="acme", actor="tester")
    session = Session(connector, config=config, context=context, governance=QUICK)
    with session, pytest.raises(ContractError, match="timezone-aware"):
        push(session, memory("a", "first"))
