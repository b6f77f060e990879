"""Pipelines on real Celery workers: a throwaway redis-server as the broker, two worker
processes (``integrations jobs worker --pool solo``), and the job store they share, SQLite
and PostgreSQL alike.

What is checked is what the executor promises when processes fail: a worker killed in the
middle of a batch leaves its run to another worker and every record arrives once, with the
checkpoint never ahead of the destination; two workers never run one pipeline for one tenant
at once, and the one whose lease expired commits nothing; refused records are kept; a
source that keeps failing fails its own run only.

Each test gets pipelines of its own (a random name) and a queue of its own, so tests share
the broker and the PostgreSQL database without seeing each other's runs; with
``DATABASE_URL`` their rows stay in that database's ``integrations_jobs`` schema.
Every wait is bounded by time.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from integrations.adapters.memory_adapters.testing import redis_server
from integrations.base import AuthContext, PushPayload, Record, Registry, SyncState
from integrations.jobs import JobsSpec, JobStore, RunRecord, open_store
from integrations.jobs.celery import JobsCelery
from integrations.jobs.testing import (
    GATE_HOLD,
    REFUSED_REASON,
    CeleryWorker,
    celery_workers,
    paused_pids,
    write_testing_manifest,
)

pytestmark = pytest.mark.timeout(60)

T = TypeVar("T")


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    """A Redis broker: ``REDIS_URL`` when set, else a throwaway redis-server."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    with redis_server(search=False) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The job store the workers share: a SQLite file, or the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    dsn: str = request.getfixturevalue("jobs_postgres_dsn")
    return dsn


@pytest.fixture
def store(store_url: str) -> Iterator[JobStore]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry()
    registry.load_manifest(write_testing_manifest(tmp_path / "testing.json"))
    registry.discover()
    return registry


@dataclass
class Fleet:
    """What a test needs to drive its workers."""

    directory: Path
    broker: str
    store_url: str
    queue: str
    pipeline: str
    registry: Registry

    @property
    def source(self) -> Path:
        return self.directory / "source.db"

    @property
    def destination(self) -> Path:
        return self.directory / "destination.db"

    @property
    def gate(self) -> Path:
        return self.directory / "gate"

    def spec(self, *, tenants: Sequence[str] = ("acme",), **pipeline: Any) -> JobsSpec:
        """jobs-testing.sqlite into jobs-testing.sqlite, pages and batches of 2."""
        source = {"path": str(self.source), "sync_page_size": 2, **pipeline.pop("source", {})}
        destination = {"path": str(self.destination), **pipeline.pop("destination", {})}
        document: dict[str, Any] = {
            "name": self.pipeline,
            "source": {"connector": "jobs-testing.sqlite", "config": source},
            "destination": {"connector": "jobs-testing.sqlite", "config": destination},
            "tenants": pipeline.pop(
                "tenant_specs", [{"tenant": tenant, "actor": "bot"} for tenant in tenants]
            ),
            "batch_size": 2,
            "retry_delay": 0,
            "lease_ttl": 30,
            "transform": {"exclude": ["created_at"]},
        }
        document.update(pipeline)
        return JobsSpec.from_mapping({"pipelines": [document]})

    def write_spec(self, spec: JobsSpec) -> Path:
        path = self.directory / "jobs.toml"
        path.write_text(_toml(spec.model_dump(mode="json", exclude_none=True)))
        return path

    def workers(self, spec: JobsSpec, count: int = 2) -> Any:
        return celery_workers(
            self.write_spec(spec),
            self.broker,
            self.directory,
            count=count,
            store=self.store_url,
            manifests=[self.directory / "testing.json"],
            queue=self.queue,
        )

    def submit(self, spec: JobsSpec, tenants: Sequence[str] = ("acme",)) -> None:
        app = JobsCelery(spec, self.broker, queue=self.queue)
        try:
            app.submit([(self.pipeline, tenant) for tenant in tenants])
        finally:
            app.close()

    def seed(self, tenant: str, count: int, prefix: str = "m") -> set[str]:
        records = tuple(
            Record(id=f"{prefix}{i}", data={"text": f"memory {i}"}) for i in range(count)
        )
        context = AuthContext(tenant=tenant, actor="seeder")
        config = {"path": str(self.source)}
        with self.registry.open("memory.sqlite", config=config, context=context) as session:
            assert not session.push(PushPayload(records=records)).rejected
        return {record.id for record in records}

    def delivered(self, tenant: str = "acme") -> list[str]:
        """Every record id the destination holds for `tenant`, once per stored record."""
        if not self.destination.exists():
            return []
        ids: list[str] = []
        context = AuthContext(tenant=tenant, actor="reader")
        config = {"path": str(self.destination)}
        with self.registry.open("memory.sqlite", config=config, context=context) as session:
            state = SyncState()
            while True:
                result = session.sync(state)
                ids.extend(record.id for record in result.changes if not record.deleted)
                state = result.state
                if not result.has_more:
                    return ids


@pytest.fixture
def fleet(tmp_path: Path, broker: str, store_url: str, registry: Registry) -> Fleet:
    return Fleet(
        tmp_path,
        broker,
        store_url,
        f"jobs-test-{uuid.uuid4().hex[:8]}",
        f"p-{uuid.uuid4().hex[:8]}",
        registry,
    )


def _toml(data: dict[str, Any]) -> str:
    """The spec as TOML: JSON values inline (TOML accepts JSON-like inline tables)."""
    import json

    lines = []
    for pipeline in data["pipelines"]:
        lines.append("[[pipelines]]")
        for key, value in pipeline.items():
            lines.append(f"{key} = {_inline(value)}")
    for key, value in data.items():
        if key != "pipelines":
            lines.insert(0, f"{key} = {_inline(value)}")
    assert json  # the inline form is built by _inline
    return "\n".join(lines) + "\n"


def _inline(value: Any) -> str:
    import json

    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_inline(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll `probe` until it returns something true (a non-empty list, a record), for
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def finished(store: JobStore, pipeline: str, tenant: str = "acme") -> list[RunRecord]:
    """The runs that recorded their own end (not those a successor marked abandoned)."""
    return [
        run for run in store.runs(pipeline, tenant) if run.outcome not in ("running", "abandoned")
    ]


def worker_with_pid(workers: Sequence[CeleryWorker], pid: int) -> CeleryWorker:
    [worker] = [worker for worker in workers if worker.pid == pid]
    return worker


# -- a worker dies ---------------------------------------------------------------------------


def test_a_worker_killed_in_the_middle_of_a_batch_leaves_the_run_to_another_worker(
    fleet: Fleet, store: JobStore
) -> None:
    expected = fleet.seed("acme", 12)
    fleet.gate.mkdir()
    (fleet.gate / GATE_HOLD).touch()
    # The third push of the run writes its batch and pauses before the checkpoint commit;
    # a short lease lets the other worker take the run over soon after the kill.
    spec = fleet.spec(destination={"gate_dir": str(fleet.gate), "gate_on_push": 3}, lease_ttl=2)
    with fleet.workers(spec) as workers:
        fleet.submit(spec)
        [pid] = wait_for("a worker paused at the gate", lambda: paused_pids(fleet.gate) or None)
        victim = worker_with_pid(workers, pid)
        checkpoint = store.checkpoint(fleet.pipeline, "acme")
        assert checkpoint is not None
        assert checkpoint.records == 4  # two batches committed, the third pushed only
        assert len(fleet.delivered()) == 6  # the destination is ahead, never the checkpoint
        victim.kill(signal.SIGKILL)
        (fleet.gate / GATE_HOLD).unlink()

        [done] = wait_for("the run to finish elsewhere", lambda: finished(store, fleet.pipeline))
        survivor = next(worker for worker in workers if worker is not victim)
        assert survivor.alive()
        assert done.run_id in survivor.log_text()
    assert done.outcome == "succeeded"
    assert done.executor == "celery"
    assert done.records_moved == 8  # from the committed checkpoint: the third batch again
    delivered = fleet.delivered()
    assert sorted(delivered) == sorted(expected)  # every record, exactly once
    final = store.checkpoint(fleet.pipeline, "acme")
    assert final is not None
    assert final.records == 12
    [killed] = [run for run in store.runs(fleet.pipeline, "acme") if run.run_id != done.run_id]
    # Its worker died before it could record anything: the run that took its lease over
    # marked it abandoned.
    assert killed.outcome == "abandoned"
    assert killed.error is not None
    assert f"run {done.run_id} took over the lease" in killed.error


# -- leases ----------------------------------------------------------------------------------


def test_a_worker_whose_lease_expired_cannot_commit_and_records_lease_lost(
    fleet: Fleet, store: JobStore
) -> None:
    expected = fleet.seed("acme", 8)
    fleet.gate.mkdir()
    (fleet.gate / GATE_HOLD).touch()
    # The first worker pauses in its second batch past its 2 s lease; its run is delivered
    # again after the visibility timeout (3 s) and the second worker takes the lease over.
    spec = fleet.spec(destination={"gate_dir": str(fleet.gate), "gate_on_push": 2}, lease_ttl=2)
    with fleet.workers(spec) as workers:
        fleet.submit(spec)
        [pid] = wait_for("a worker paused at the gate", lambda: paused_pids(fleet.gate) or None)
        slow = worker_with_pid(workers, pid)
        [winner] = wait_for(
            "the other worker to finish the run", lambda: finished(store, fleet.pipeline)
        )
        assert winner.outcome == "succeeded"
        assert winner.records_moved == 6  # after the slow worker's first committed batch
        (fleet.gate / GATE_HOLD).unlink()  # the slow worker goes on: its commit is refused

        def both_ended() -> bool:
            return len(finished(store, fleet.pipeline)) == 2

        runs = wait_for(
            "the slow worker to record its end",
            lambda: [*finished(store, fleet.pipeline)][:2] if both_ended() else None,
        )
        assert slow.alive()
    [lost] = [run for run in runs if run.run_id != winner.run_id]
    assert lost.outcome == "lease_lost"
    assert lost.error is not None
    assert lost.error.startswith("LeaseLost")
    assert lost.records_moved == 2  # only what it committed while its lease was current
    checkpoint = store.checkpoint(fleet.pipeline, "acme")
    assert checkpoint is not None
    assert checkpoint.records == 8  # nothing committed twice, nothing by the lost lease
    assert sorted(fleet.delivered()) == sorted(expected)


def test_two_workers_given_the_same_run_never_run_it_at_once(fleet: Fleet, store: JobStore) -> None:
    expected = fleet.seed("acme", 10)
    spec = fleet.spec(source={"page_delay_seconds": 0.2}, lease_ttl=20)
    with fleet.workers(spec) as workers:
        fleet.submit(spec)
        fleet.submit(spec)  # both workers get one, at the same time
        overlaps: list[int] = []

        def done() -> RunRecord | None:
            runs = store.runs(fleet.pipeline, "acme")
            overlaps.append(sum(run.outcome == "running" for run in runs))
            complete = [run for run in runs if run.outcome == "succeeded"]
            return complete[0] if complete else None

        first = wait_for("one run to finish", done)
        waiting = wait_for(
            "the other worker to wait for the lease",
            lambda: [w for w in workers if "LeaseHeld" in w.log_text()] or None,
        )
    assert max(overlaps) == 1
    assert first.records_moved == 10
    assert len(waiting) == 1
    assert [run.run_id for run in store.runs(fleet.pipeline, "acme")] == [first.run_id]
    assert sorted(fleet.delivered()) == sorted(expected)


# -- rejections and failures -----------------------------------------------------------------


def test_a_record_the_destination_rejects_lands_in_the_dead_letters(
    fleet: Fleet, store: JobStore
) -> None:
    expected = fleet.seed("acme", 5)
    spec = fleet.spec(destination={"reject_ids": ["m3"]})
    with fleet.workers(spec):
        fleet.submit(spec)
        [run] = wait_for("the run to finish", lambda: finished(store, fleet.pipeline))
    assert (run.outcome, run.records_moved, run.rejected) == ("succeeded", 4, 1)
    [letter] = store.dead_letters(fleet.pipeline, "acme")
    assert letter.run_id == run.run_id
    assert letter.record["id"] == "m3"
    assert letter.reason == REFUSED_REASON
    assert sorted(fleet.delivered()) == sorted(expected - {"m3"})


def test_a_source_that_keeps_failing_fails_after_its_attempts_and_holds_up_no_one(
    fleet: Fleet, store: JobStore
) -> None:
    tenants = ("broken", "a", "b", "c")
    for tenant in tenants:
        fleet.seed(tenant, 3)
    specs = [
        {"tenant": tenant, "actor": "bot"}
        | ({"source": {"fail_reads": "connection"}} if tenant == "broken" else {})
        for tenant in tenants
    ]
    spec = fleet.spec(tenant_specs=specs, attempts=3, retry_delay=0.5)
    with fleet.workers(spec):
        fleet.submit(spec, tenants)

        def all_done() -> dict[str, RunRecord] | None:
            runs = {t: finished(store, fleet.pipeline, t) for t in tenants}
            return {t: found[0] for t, found in runs.items()} if all(runs.values()) else None

        runs = wait_for("every run to finish", all_done)
    broken = runs.pop("broken")
    assert broken.outcome == "failed"
    assert broken.error is not None
    assert broken.error.startswith("ConnectionFailed")
    assert broken.error.endswith("(attempt 3)")
    for tenant, run in runs.items():
        assert (run.outcome, run.records_moved) == ("succeeded", 3), tenant
        assert run.finished_at is not None
        assert broken.finished_at is not None
        assert run.finished_at < broken.finished_at  # done while it was backing off


@pytest.fixture
def sqlite_fleet(tmp_path: Path, broker: str, registry: Registry) -> Fleet:
    """A fleet on a SQLite job store only, for what does not depend on the store."""
    return Fleet(
        tmp_path,
        broker,
        f"sqlite:///{tmp_path / 'jobs.db'}",
        f"jobs-test-{uuid.uuid4().hex[:8]}",
        f"p-{uuid.uuid4().hex[:8]}",
        registry,
    )


def test_a_prefork_child_killed_mid_batch_leaves_the_run_to_another_child(
    sqlite_fleet: Fleet,
) -> None:
    """With ``--pool prefork`` a killed child is reported lost by its parent and its run
    finishes in another child; every child opened the job store itself, after the fork, with
    a holder of its own, and the parent never opened it."""
    fleet = sqlite_fleet
    expected = fleet.seed("acme", 6)
    fleet.gate.mkdir()
    (fleet.gate / GATE_HOLD).touch()
    spec = fleet.spec(destination={"gate_dir": str(fleet.gate), "gate_on_push": 2}, lease_ttl=2)
    spec_path = fleet.write_spec(spec)
    with (
        open_store(fleet.store_url) as store,
        celery_workers(
            spec_path,
            fleet.broker,
            fleet.directory,
            count=1,
            store=fleet.store_url,
            manifests=[fleet.directory / "testing.json"],
            queue=fleet.queue,
            pool="prefork",
            concurrency=2,
        ) as [worker],
    ):
        fleet.submit(spec)
        [child] = wait_for("a child paused at the gate", lambda: paused_pids(fleet.gate) or None)
        assert child != worker.pid
        os.kill(child, signal.SIGKILL)
        (fleet.gate / GATE_HOLD).unlink()
        [done] = wait_for("the run to finish", lambda: finished(store, fleet.pipeline))
        log = wait_for("the parent to report its child lost", lambda: _lost(worker))
    assert done.outcome == "succeeded"
    assert sorted(fleet.delivered()) == sorted(expected)
    openers = {
        line.split("worker process ", 1)[1].split(":", 1)[0]
        for line in log.splitlines()
        if "store opened" in line
    }
    assert str(worker.pid) not in openers  # the parent never opened the store
    assert str(child) in openers
    assert len(openers) >= 2  # the killed child, and the one that finished the run


def _lost(worker: CeleryWorker) -> str | None:
    """The worker's log once it reports a child lost (``task_reject_on_worker_lost``)."""
    log = worker.log_text()
    return log if "WorkerLostError" in log else None
