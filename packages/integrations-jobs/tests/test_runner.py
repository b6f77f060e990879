"""Runs of real pipelines: `memory.sqlite` files as source and destination, a real SQLite job
store, the mock connector only where a fault must be injected.

What is checked is what a platform relies on: every source record arrives once, the
checkpoint is never ahead of the destination, a second run moves only changes, rejected
records are kept with their reason, a failing source fails only its own run, leases fence.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from integrations.base import (
    AuthContext,
    Governance,
    MemoryAuditSink,
    PushPayload,
    Record,
    Registry,
    SyncState,
)
from integrations.jobs import (
    ConnectorLimits,
    InProcessExecutor,
    JobsSpec,
    JobStore,
    Lease,
    LeaseLost,
    RunReport,
    StoreError,
    idempotency_key,
    pipeline_status,
    run_pipeline,
)
from integrations.jobs._sqlite_store import SqliteJobStore

pytestmark = pytest.mark.timeout(60)

SEEDER = "seeder"


@pytest.fixture
def sink() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def registry(sink: MemoryAuditSink) -> Registry:
    """The installed connectors, every session audited into `sink`."""
    registry = Registry(governance=Governance(audit=sink))
    registry.discover()
    return registry


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteJobStore]:
    opened = SqliteJobStore(tmp_path / "jobs.db")
    try:
        yield opened
    finally:
        opened.close()


def spec_for(
    tmp_path: Path,
    *,
    tenants: Sequence[str] = ("acme",),
    batch_size: int = 2,
    source_page: int = 3,
    **pipeline: Any,
) -> JobsSpec:
    """memory.sqlite into memory.sqlite, dropping the field the source adds (created_at)."""
    document: dict[str, Any] = {
        "name": "memories",
        "source": {
            "connector": "memory.sqlite",
            "config": {"path": str(tmp_path / "source.db"), "sync_page_size": source_page},
        },
        "destination": {
            "connector": "memory.sqlite",
            "config": {"path": str(tmp_path / "destination.db")},
        },
        "tenants": [{"tenant": tenant, "actor": f"{tenant}-bot"} for tenant in tenants],
        "batch_size": batch_size,
        "retry_delay": 0,
        "transform": {"exclude": ["created_at"]},
    }
    document.update(pipeline)
    return JobsSpec.from_mapping({"pipelines": [document]})


def memories(count: int, prefix: str = "m", text: str = "memory") -> tuple[Record, ...]:
    return tuple(Record(id=f"{prefix}{i}", data={"text": f"{text} {i}"}) for i in range(count))


def write(registry: Registry, path: Path, tenant: str, records: Sequence[Record]) -> None:
    """Push `records` straight into a memory store file (what an application would do)."""
    context = AuthContext(tenant=tenant, actor=SEEDER)
    with registry.open("memory.sqlite", config={"path": str(path)}, context=context) as session:
        result = session.push(PushPayload(records=tuple(records)))
    assert not result.rejected


def read(registry: Registry, path: Path, tenant: str) -> dict[str, str]:
    """Every live memory of `tenant` in a store file: id -> text."""
    found: dict[str, str] = {}
    context = AuthContext(tenant=tenant, actor=SEEDER)
    with registry.open("memory.sqlite", config={"path": str(path)}, context=context) as session:
        state = SyncState()
        while True:
            result = session.sync(state)
            for record in result.changes:
                if record.deleted:
                    found.pop(record.id, None)
                else:
                    found[record.id] = str(record.data["text"])
            state = result.state
            if not result.has_more:
                return found


def run(
    spec: JobsSpec,
    store: JobStore,
    registry: Registry,
    tenant: str = "acme",
    holder: str = "worker-1",
    **options: Any,
) -> RunReport:
    return run_pipeline(spec, "memories", tenant, store, holder, registry=registry, **options)


class StoreProxy:
    """A job store that runs a hook before each batch's commit (and can fail it)."""

    def __init__(self, inner: JobStore, before_commit: Any) -> None:
        self._inner = inner
        self._before_commit = before_commit

    def commit_batch(
        self,
        lease: Lease,
        state: Mapping[str, Any] | None,
        records_added: int,
        **rest: Any,
    ) -> Lease:
        self._before_commit(lease, state, records_added)
        return self._inner.commit_batch(lease, state, records_added, **rest)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# -- moving records ------------------------------------------------------------------------


def test_every_source_record_arrives_once_and_the_checkpoint_counts_them(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    write(registry, tmp_path / "source.db", "acme", memories(7))
    report = run(spec_for(tmp_path), store, registry)
    assert report.outcome == "succeeded"
    assert (report.records_moved, report.rejected, report.attempts) == (7, 0, 1)
    assert report.batches == 5  # pages of 3, 3 and 1, pushed in batches of at most 2
    assert report.delivery == "exactly-once"
    assert read(registry, tmp_path / "destination.db", "acme") == {
        f"m{i}": f"memory {i}" for i in range(7)
    }
    checkpoint = store.checkpoint("memories", "acme")
    assert checkpoint is not None
    assert checkpoint.records == 7
    assert checkpoint.state is not None
    assert checkpoint.state["bookmarks"] == {"seq": 7}
    [record] = store.runs("memories", "acme")
    assert (record.run_id, record.outcome, record.records_moved) == (report.run_id, "succeeded", 7)


def test_a_second_run_moves_only_what_changed(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    source = tmp_path / "source.db"
    write(registry, source, "acme", memories(5))
    spec = spec_for(tmp_path)
    assert run(spec, store, registry).records_moved == 5
    assert run(spec, store, registry).records_moved == 0  # nothing changed
    write(
        registry,
        source,
        "acme",
        [
            Record(id="m1", data={"text": "memory 1, edited"}),
            Record(id="m2", deleted=True),
            Record(id="m9", data={"text": "memory 9"}),
        ],
    )
    report = run(spec, store, registry)
    assert report.records_moved == 3
    assert read(registry, tmp_path / "destination.db", "acme") == {
        "m0": "memory 0",
        "m1": "memory 1, edited",
        "m3": "memory 3",
        "m4": "memory 4",
        "m9": "memory 9",
    }


def test_the_checkpoint_is_never_ahead_of_the_destination(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    write(registry, tmp_path / "source.db", "acme", memories(8))
    seen: list[int] = []

    def check(lease: Lease, state: Mapping[str, Any] | None, records_added: int) -> None:
        assert state is not None
        delivered = read(registry, tmp_path / "destination.db", "acme")
        # Every change up to the state about to be committed is at the destination already.
        assert len(delivered) >= state["bookmarks"]["seq"]
        seen.append(len(delivered))

    report = run(spec_for(tmp_path), StoreProxy(store, check), registry)
    assert report.outcome == "succeeded"
    assert seen == [3, 6, 8]


def test_a_crash_before_the_commit_repeats_the_batch_and_it_takes_effect_once(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    write(registry, tmp_path / "source.db", "acme", memories(7))
    commits = 0

    def crash_on_second(lease: Lease, state: Mapping[str, Any] | None, added: int) -> None:
        nonlocal commits
        commits += 1
        if commits == 2:
            raise StoreError("disk full")  # not transient: the run stops here

    spec = spec_for(tmp_path)
    crashed = run(spec, StoreProxy(store, crash_on_second), registry)
    assert crashed.outcome == "failed"
    assert crashed.error is not None
    assert "disk full" in crashed.error
    checkpoint = store.checkpoint("memories", "acme")
    assert checkpoint is not None
    assert checkpoint.records == 3
    assert len(read(registry, tmp_path / "destination.db", "acme")) == 6  # pushed, uncommitted

    again = run(spec, store, registry)
    assert again.outcome == "succeeded"
    assert again.records_moved == 4  # the second page again, then the third
    assert read(registry, tmp_path / "destination.db", "acme") == {
        f"m{i}": f"memory {i}" for i in range(7)
    }
    final = store.checkpoint("memories", "acme")
    assert final is not None
    assert final.records == 7


def test_the_idempotency_key_depends_on_the_state_and_the_batch() -> None:
    batch = memories(2)
    state = {"cursor": "c1", "bookmarks": {"seq": 4}}
    key = idempotency_key("p", "acme", state, 0, batch)
    assert key == idempotency_key("p", "acme", dict(state), 0, batch)
    others = {
        idempotency_key("q", "acme", state, 0, batch),
        idempotency_key("p", "globex", state, 0, batch),
        idempotency_key("p", "acme", {"cursor": "c2"}, 0, batch),
        idempotency_key("p", "acme", state, 1, batch),
        idempotency_key("p", "acme", state, 0, memories(2, text="changed")),
    }
    assert key not in others
    assert len(others) == 5


def test_pushes_to_an_idempotent_destination_carry_the_key_and_others_none(
    tmp_path: Path, sink: MemoryAuditSink
) -> None:
    manifest = {
        "schema_version": 1,
        "connectors": [
            {
                "name": "plain-mock",
                "module": "integrations.mocks.mock_connector",
                "class": "MockConnector",
                "capabilities": ["fetch", "push", "sync"],
            }
        ],
    }
    path = tmp_path / "integrations.json"
    path.write_text(json.dumps(manifest))
    registry = Registry(governance=Governance(audit=sink))
    registry.load_manifest(path)
    registry.discover()
    write(registry, tmp_path / "source.db", "acme", memories(3))
    store = SqliteJobStore(tmp_path / "jobs.db")
    try:
        spec = spec_for(
            tmp_path, destination={"connector": "plain-mock", "config": {"store": "plain"}}
        )
        report = run(spec, store, registry)
    finally:
        store.close()
    assert report.outcome == "succeeded"
    assert report.delivery == "at-least-once"
    from integrations.mocks import get_store

    assert sorted(record.id for record in get_store("plain").records("acme")) == ["m0", "m1", "m2"]


# -- rejections ----------------------------------------------------------------------------


def test_rejected_records_go_to_the_dead_letters_with_the_reason(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    records = [*memories(3), Record(id="long", data={"text": "x" * 200})]
    write(registry, tmp_path / "source.db", "acme", records)
    spec = spec_for(
        tmp_path,
        destination={"connector": "mock", "config": {"store": "letters", "max_record_bytes": 80}},
    )
    report = run(spec, store, registry)
    assert report.outcome == "succeeded"
    assert (report.records_moved, report.rejected) == (3, 1)
    [letter] = store.dead_letters("memories", "acme")
    assert letter.run_id == report.run_id
    assert letter.record["id"] == "long"
    assert letter.record["data"]["text"] == "x" * 200
    assert "max_record_bytes=80" in letter.reason
    checkpoint = store.checkpoint("memories", "acme")
    assert checkpoint is not None
    assert checkpoint.records == 3
    assert pipeline_status(spec, store)[0].dead_letters == 1


def test_a_destination_refusing_every_record_leaves_them_all_in_the_dead_letters(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    write(registry, tmp_path / "source.db", "acme", memories(3))
    spec = spec_for(tmp_path, transform={})  # created_at reaches a store that refuses it
    report = run(spec, store, registry)
    assert (report.outcome, report.records_moved, report.rejected) == ("succeeded", 0, 3)
    letters = store.dead_letters("memories", "acme")
    assert sorted(letter.record["id"] for letter in letters) == ["m0", "m1", "m2"]
    assert {letter.reason for letter in letters} == {
        "unknown field 'created_at': a memory holds text, tags and metadata"
    }


# -- failures ------------------------------------------------------------------------------


def failing_source_spec(tmp_path: Path, tenants: Sequence[str], failing: str) -> JobsSpec:
    """The mock as source for every tenant; `failing`'s sessions lose their connection."""
    fault = {"operation": "sync", "error": "connection", "times": None}
    return JobsSpec.from_mapping(
        {
            "pipelines": [
                {
                    "name": "memories",
                    "source": {"connector": "mock", "config": {"store": "upstream"}},
                    "destination": {
                        "connector": "memory.sqlite",
                        "config": {"path": str(tmp_path / "destination.db")},
                    },
                    "tenants": [
                        {
                            "tenant": tenant,
                            "actor": "bot",
                            "source": {"faults": [fault]} if tenant == failing else {},
                        }
                        for tenant in tenants
                    ],
                    "attempts": 3,
                    "retry_delay": 0.5,
                }
            ],
            "concurrency": {"workers": 2},
        }
    )


def test_a_failing_source_fails_its_run_after_its_attempts_and_others_complete(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    from integrations.mocks import get_store

    upstream = get_store("upstream")
    upstream.clear()
    for tenant in ("acme", "globex", "initech"):
        upstream.push(tenant, PushPayload(records=memories(3, prefix=tenant)))
    spec = failing_source_spec(tmp_path, ("acme", "globex", "initech"), failing="acme")
    others_done = threading.Event()
    finished: list[str] = []
    waits: list[float] = []

    class Progress:
        def run_started(self, pipeline: str, tenant: str, run_id: str) -> None:
            pass

        def batch_committed(self, pipeline: str, tenant: str, records: int, rejected: int) -> None:
            pass

        def run_finished(self, report: RunReport) -> None:
            finished.append(report.tenant)
            if {"globex", "initech"} <= set(finished):
                others_done.set()

    def backoff(seconds: float) -> None:
        # The failing run waits until the other tenants are done: were they held up
        # behind it, this would time out.
        waits.append(seconds)
        assert others_done.wait(timeout=20)

    executor = InProcessExecutor(spec, store, registry=registry, progress=Progress(), sleep=backoff)
    reports = {report.tenant: report for report in executor.run()}
    assert reports["acme"].outcome == "failed"
    assert reports["acme"].attempts == 3
    assert reports["acme"].error is not None
    assert reports["acme"].error.startswith("ConnectionFailed: injected fault")
    assert waits == [0.5, 1.0]
    for tenant in ("globex", "initech"):
        assert (reports[tenant].outcome, reports[tenant].records_moved) == ("succeeded", 3)
    assert finished[-1] == "acme"
    rows = {row.tenant: row for row in pipeline_status(spec, store)}
    assert rows["acme"].outcome == "failed"
    assert rows["acme"].last_error == reports["acme"].error
    assert rows["acme"].checkpoint_at is None
    assert rows["globex"].records_total == 3


def test_an_error_that_retrying_cannot_fix_fails_at_the_first_attempt(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    spec = spec_for(tmp_path, destination={"connector": "no-such-connector", "config": {}})
    write(registry, tmp_path / "source.db", "acme", memories(1))
    report = run(spec, store, registry)
    assert (report.outcome, report.attempts) == ("failed", 1)
    assert report.error is not None
    assert report.error.startswith("ConnectorNotFound")


# -- leases --------------------------------------------------------------------------------


def test_a_lease_held_elsewhere_skips_the_run_and_writes_nothing(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    write(registry, tmp_path / "source.db", "acme", memories(2))
    store.acquire_lease("memories", "acme", "worker-2", 300)
    report = run(spec_for(tmp_path), store, registry)
    assert report.outcome == "skipped"
    assert report.error is not None
    assert "worker-2 holds the lease" in report.error
    assert store.runs("memories", "acme") == []
    assert store.checkpoint("memories", "acme") is None
    assert read(registry, tmp_path / "destination.db", "acme") == {}


def test_a_run_whose_worker_died_is_ended_by_the_next_run(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    # A worker SIGKILLed mid-run leaves its run record "running" and its lease to expire.
    write(registry, tmp_path / "source.db", "acme", memories(3))
    store.start_run("dead-run", "memories", "acme", "celery")
    store.start_run("other-tenant", "memories", "globex", "celery")
    report = run(spec_for(tmp_path), store, registry)
    assert report.outcome == "succeeded"
    records = {record.run_id: record for record in store.runs("memories", "acme")}
    dead = records["dead-run"]
    assert dead.outcome == "abandoned"
    assert dead.finished_at is not None
    assert dead.error is not None
    assert f"no end recorded when run {report.run_id} took over the lease" in dead.error
    assert records[report.run_id].outcome == "succeeded"
    [untouched] = store.runs("memories", "globex")
    assert untouched.outcome == "running"  # another tenant's lease: not this run's to end
    [row] = [s for s in store.status() if s.tenant == "acme"]
    assert row.last_run is not None
    assert row.last_run.run_id == report.run_id


def test_a_lost_lease_stops_the_run_and_it_cannot_commit(
    tmp_path: Path, registry: Registry
) -> None:
    from datetime import UTC, datetime, timedelta

    now = [datetime(2026, 1, 2, tzinfo=UTC)]
    store = SqliteJobStore(tmp_path / "jobs.db", clock=lambda: now[0])
    write(registry, tmp_path / "source.db", "acme", memories(7))

    class TakeOver:
        """After the first committed page, the lease expires and another worker takes it."""

        def run_started(self, pipeline: str, tenant: str, run_id: str) -> None:
            pass

        def batch_committed(self, pipeline: str, tenant: str, records: int, rejected: int) -> None:
            if now[0].year == 2026 and now[0].day == 2:
                now[0] += timedelta(seconds=61)
                store.acquire_lease(pipeline, tenant, "worker-2", 300)

        def run_finished(self, report: RunReport) -> None:
            pass

    try:
        spec = spec_for(tmp_path, lease_ttl=60)
        report = run(spec, store, registry, progress=TakeOver())
        assert report.outcome == "lease_lost"
        assert report.records_moved == 3
        assert report.error is not None
        assert report.error.startswith("LeaseLost")
        checkpoint = store.checkpoint("memories", "acme")
        assert checkpoint is not None
        assert checkpoint.records == 3
        [record] = store.runs("memories", "acme")
        assert record.outcome == "lease_lost"
        with pytest.raises(LeaseLost):
            store.commit_checkpoint(
                Lease("memories", "acme", "worker-1", checkpoint.token, now[0]), {}, 1
            )
    finally:
        store.close()


# -- audit ---------------------------------------------------------------------------------


def test_every_audit_event_of_a_run_carries_its_run_id(
    tmp_path: Path, registry: Registry, sink: MemoryAuditSink, store: SqliteJobStore
) -> None:
    write(registry, tmp_path / "source.db", "acme", memories(4))
    sink.events.clear()
    spec = spec_for(tmp_path)
    first = run(spec, store, registry)
    events = list(sink.events)
    assert {event.run_id for event in events} == {first.run_id}
    assert {event.tenant for event in events} == {"acme"}
    assert {event.actor for event in events} == {"acme-bot"}
    assert {event.operation for event in events} >= {"auth", "connect", "sync", "push", "revoke"}
    assert len({event.correlation_id for event in events}) == 2  # one session per side
    sink.events.clear()
    second = run(spec, store, registry)
    assert {event.run_id for event in sink.events} == {second.run_id} != {first.run_id}


# -- fetch, concurrency, status ------------------------------------------------------------


def test_a_fetch_source_is_paged_by_cursor_and_read_again_by_the_next_run(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    write(registry, tmp_path / "source.db", "acme", memories(5))
    spec = spec_for(
        tmp_path,
        source={
            "connector": "memory.sqlite",
            "config": {"path": str(tmp_path / "source.db")},
            "operation": "fetch",
        },
    )
    report = run(spec, store, registry)
    assert (report.outcome, report.records_moved, report.batches) == ("succeeded", 5, 3)
    checkpoint = store.checkpoint("memories", "acme")
    assert checkpoint is not None
    assert checkpoint.state == {"cursor": None}
    assert len(read(registry, tmp_path / "destination.db", "acme")) == 5
    assert run(spec, store, registry).records_moved == 5  # a snapshot: read from the start


def test_a_limit_of_one_call_per_connector_holds_and_does_not_deadlock(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    tenants = ("a", "b", "c", "d")
    for tenant in tenants:
        write(registry, tmp_path / "source.db", tenant, memories(3, prefix=tenant))
    spec = spec_for(tmp_path, tenants=tenants)
    spec = spec.model_copy(
        update={"concurrency": spec.concurrency.model_copy(update={"workers": 4})}
    )
    in_flight = 0
    most = 0
    lock = threading.Lock()
    limits = ConnectorLimits({"memory.sqlite": 1})
    original = limits.slot

    def counting(connector: str) -> Any:
        class Counted:
            def __enter__(self) -> None:
                nonlocal in_flight, most
                self._inner = original(connector)
                self._inner.__enter__()
                with lock:
                    in_flight += 1
                    most = max(most, in_flight)

            def __exit__(self, *exc: object) -> None:
                nonlocal in_flight
                with lock:
                    in_flight -= 1
                self._inner.__exit__(None, None, None)

        return Counted()

    limits.slot = counting  # type: ignore[method-assign]  # counts calls through the real slot
    executor = InProcessExecutor(spec, store, registry=registry)
    executor.limits = limits
    reports = executor.run()
    assert [report.outcome for report in reports] == ["succeeded"] * 4
    assert most == 1


def test_status_reports_every_pipeline_and_tenant_of_the_spec(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    from datetime import timedelta

    write(registry, tmp_path / "source.db", "acme", memories(3))
    spec = spec_for(tmp_path, tenants=("acme", "globex"), schedule={"every": "10m"})
    report = run(spec, store, registry)
    rows = pipeline_status(spec, store, now=report.finished_at + timedelta(minutes=25))
    acme, globex = rows
    assert (acme.pipeline, acme.tenant, acme.outcome) == ("memories", "acme", "succeeded")
    assert (acme.records_moved, acme.records_total, acme.last_run_id) == (3, 3, report.run_id)
    assert acme.lag_seconds is not None
    assert 15 * 60 <= acme.lag_seconds < 15 * 60 + 5
    assert acme.due
    assert acme.checkpoint_age_seconds is not None
    assert acme.checkpoint_age_seconds >= 25 * 60
    assert (globex.outcome, globex.last_run_id, globex.due) == (None, None, True)
    assert pipeline_status(spec, store, now=report.finished_at)[0].due is False
    executor = InProcessExecutor(spec, store, registry=registry)
    assert executor.selection(due_only=True) == [("memories", "globex")]


def test_several_changes_of_one_record_in_a_page_arrive_as_its_last(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    from integrations.mocks import get_store

    upstream = get_store("changelog")
    upstream.clear()
    for text in ("first", "second", "third"):
        upstream.push("acme", PushPayload(records=(Record(id="doc", data={"text": text}),)))
    upstream.push("acme", PushPayload(records=(Record(id="other", data={"text": "x"}),)))
    spec = spec_for(tmp_path, source={"connector": "mock", "config": {"store": "changelog"}})
    report = run(spec, store, registry)
    assert (report.outcome, report.records_moved, report.rejected) == ("succeeded", 2, 0)
    assert read(registry, tmp_path / "destination.db", "acme") == {"doc": "third", "other": "x"}


def test_serve_runs_what_is_due_round_after_round(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    write(registry, tmp_path / "source.db", "acme", memories(2))
    spec = spec_for(tmp_path, schedule={"every": 0.3})
    executor = InProcessExecutor(spec, store, registry=registry)
    stop = threading.Event()
    rounds: list[list[RunReport]] = []

    def after(reports: list[RunReport]) -> None:
        rounds.append(reports)
        if len(rounds) == 1:
            write(registry, tmp_path / "source.db", "acme", [Record(id="m9", data={"text": "new"})])
        if sum(len(r) for r in rounds) == 2:
            stop.set()

    executor.serve(stop, poll=5, on_round=after)  # waits for the schedule, not the poll
    moved = [report.records_moved for reports in rounds for report in reports]
    assert moved == [2, 1]
    rows = pipeline_status(spec, store)
    assert rows[0].next_run_at is not None
    with pytest.raises(ValueError, match="poll"):
        executor.serve(stop, poll=0)


def test_a_store_that_cannot_grant_the_lease_raises_and_the_executor_reports_it_failed(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    class Unreachable(StoreProxy):
        def acquire_lease(self, *arguments: Any) -> Lease:
            raise StoreError("database is locked", transient=True)

    unreachable = Unreachable(store, None)
    with pytest.raises(StoreError, match="locked"):  # a worker re-queues the run
        run(spec_for(tmp_path), unreachable, registry)
    executor = InProcessExecutor(spec_for(tmp_path, tenants=("acme", "globex")), unreachable)
    reports = executor.run()  # the in-process executor reports each run failed
    assert [(r.tenant, r.outcome, r.attempts) for r in reports] == [
        ("acme", "failed", 0),
        ("globex", "failed", 0),
    ]
    assert {report.error for report in reports} == {"StoreError: database is locked"}
    assert store.runs("memories", "acme") == []


def test_the_specs_governance_writes_the_runs_audit_file(
    tmp_path: Path, registry: Registry, store: SqliteJobStore
) -> None:
    write(registry, tmp_path / "source.db", "acme", memories(3))
    audit_file = tmp_path / "audit.jsonl"
    document = spec_for(tmp_path).model_dump(mode="json")
    document["governance"] = {"audit_jsonl": str(audit_file), "audit_log": False}
    spec = JobsSpec.from_mapping(document)
    report = run(spec, store, registry)  # no governance given: the spec's, not the registry's
    events = [json.loads(line) for line in audit_file.read_text().splitlines()]
    assert {event["run_id"] for event in events} == {report.run_id}
    assert {event["operation"] for event in events} >= {"sync", "push"}
    with InProcessExecutor(spec, store, registry=registry) as executor:
        [again] = executor.run()
    lines = audit_file.read_text().splitlines()
    assert {json.loads(line)["run_id"] for line in lines[len(events) :]} == {again.run_id}
