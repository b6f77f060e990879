"""Sync pipelines: executors, Celery workers and the pipeline machinery, measured in one run.

A source that is I/O-bound (``jobs-testing.generated``: made-up records, 20 ms of sleep per
page of 100, standing for a remote API) feeds ``memory.sqlite`` for every tenant (100 tenants
x 1,000 records by default), through one pipeline, with a SQLite job store:

  in-process    the in-process executor with 1 and with 4 threads (and 1 thread with the
                job store in PostgreSQL);
  celery        ``integrations jobs worker --pool solo`` processes, 1 and then 2 (target:
                >= 1.8x from 1 to 2), runs enqueued with ``JobsCelery.submit``, timed from
                the first submission to the last run recorded as finished in the job store;
  round trip    100 runs of one record each (one batch, no delay) on 1 Celery worker and
                in-process on 1 thread: the cost of a run's trip through the broker;
  hand loop     the same source -> destination copy written by hand with governed sessions
                (sync, push, nothing stored), against the pipeline on 1 thread (target:
                >= 0.9x);
  job store     what a batch costs the job store (its checkpoint commit and lease renewal,
                two transactions), from 1 and from 4 threads at once on distinct tenants,
                for SQLite (synchronous=FULL, a local file) and PostgreSQL (a throwaway
                cluster with fsync off, or DATABASE_URL): the store's ceiling in batches/s.

Every scenario gets a fresh destination and job store; the broker is a throwaway
redis-server (or REDIS_URL). Workers log at WARNING. The scenarios run in rounds
(``--repeats``, default 2) and each reports its fastest round: the machine may be shared, and
the fastest round is the one least disturbed. The whole run stops starting scenarios once
``--budget`` seconds have passed.

Run: python benchmarks/jobs.py [--tenants N] [--records R] [--page P] [--delay SECONDS]
                               [--round-trips N] [--store-batches N] [--no-postgres]
                               [--budget SECONDS]
Quick: python benchmarks/jobs.py --tenants 10 --records 200
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integrations.adapters.memory_adapters.testing import postgres_server, redis_server
from integrations.base import (
    AuthContext,
    Governance,
    GovernanceSettings,
    PushPayload,
    Registry,
    SyncState,
)
from integrations.jobs import InProcessExecutor, JobsSpec, JobStore, open_store
from integrations.jobs.celery import JobsCelery
from integrations.jobs.testing import celery_workers, write_testing_manifest

HAND = "hand-written loop, raw sessions"
TRIP_LOCAL = "in-process, 1 thread, one-record runs"
TRIP_CELERY = "celery, 1 worker, one-record runs"
PG_ONE = "in-process, 1 thread, PostgreSQL store"


@dataclass(frozen=True)
class Workload:
    tenants: int
    records: int
    page: int
    delay: float

    @property
    def total(self) -> int:
        return self.tenants * self.records


@dataclass
class Result:
    name: str
    records: int
    seconds: float
    complete: bool = True

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class Bench:
    """A working directory, the registry with the testing connectors, and the time budget."""

    def __init__(self, directory: Path, broker: str, budget: float) -> None:
        self.directory = directory
        self.broker = broker
        self.deadline = time.monotonic() + budget
        self.manifest = write_testing_manifest(directory / "testing.json")
        self.registry = Registry()
        self.registry.load_manifest(self.manifest)
        self.registry.discover()
        self.governance: Governance = GovernanceSettings.from_env().build()
        self._count = 0

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def fresh(self, name: str) -> Path:
        """A new directory for one scenario."""
        self._count += 1
        path = self.directory / f"{self._count:02d}-{name}"
        path.mkdir()
        return path

    def spec(self, where: Path, work: Workload) -> JobsSpec:
        tenants = [{"tenant": f"t{n:04d}", "actor": "bench"} for n in range(work.tenants)]
        return JobsSpec.from_mapping(
            {
                "pipelines": [
                    {
                        "name": f"bench-{where.name}",
                        "source": {
                            "connector": "jobs-testing.generated",
                            "config": {
                                "records": work.records,
                                "page_size": work.page,
                                "page_delay_seconds": work.delay,
                            },
                        },
                        "destination": {
                            "connector": "memory.sqlite",
                            "config": {"path": str(where / "destination.db")},
                        },
                        "tenants": tenants,
                        "batch_size": work.page,
                        "lease_ttl": 300,
                    }
                ],
                "concurrency": {"workers": 1},
            }
        )

    # -- scenarios -----------------------------------------------------------------------

    def in_process(
        self, work: Workload, threads: int, label: str | None = None, store: str | None = None
    ) -> Result:
        where = self.fresh(f"in-process-{threads}")
        spec = self.spec(where, work)
        with open_store(store or str(where / "jobs.db")) as opened:
            executor = InProcessExecutor(
                spec, opened, registry=self.registry, governance=self.governance, workers=threads
            )
            started = time.perf_counter()
            reports = executor.run()
            seconds = time.perf_counter() - started
        moved = sum(report.records_moved for report in reports)
        name = label or f"in-process, {threads} thread(s)"
        return Result(name, moved, seconds, moved == work.total)

    def celery(self, work: Workload, workers: int, label: str | None = None) -> Result:
        where = self.fresh(f"celery-{workers}")
        spec = self.spec(where, work)
        spec_path = where / "jobs.toml"
        spec_path.write_text(_toml(spec))
        store_url = str(where / "jobs.db")
        queue = f"bench-{os.getpid()}-{time.monotonic_ns()}"
        name = label or f"celery, {workers} worker process(es)"
        with (
            open_store(store_url) as store,
            celery_workers(
                spec_path,
                self.broker,
                where,
                count=workers,
                store=store_url,
                manifests=[self.manifest],
                queue=queue,
                extra=["--loglevel", "WARNING"],
            ) as _,
        ):
            app = JobsCelery(spec, self.broker, queue=queue)
            try:
                started = time.perf_counter()
                pipeline = spec.pipelines[0]
                app.submit([(pipeline.name, tenant.tenant) for tenant in pipeline.tenants])
                finished = _wait_finished(store, pipeline.name, work.tenants, self.left())
                seconds = time.perf_counter() - started
            finally:
                app.close()
            runs = store.runs(spec.pipelines[0].name, limit=work.tenants + 10)
            moved = sum(run.records_moved for run in runs)
        return Result(name, moved, seconds, finished and moved == work.total)

    def hand_loop(self, work: Workload) -> Result:
        """The copy without the pipeline: governed sessions, sync pages, pushes; no store."""
        where = self.fresh("hand")
        spec = self.spec(where, work)
        pipeline = spec.pipelines[0]
        moved = 0
        started = time.perf_counter()
        for tenant in pipeline.tenants:
            context = AuthContext(tenant=tenant.tenant, actor=tenant.actor)
            with (
                self._open(pipeline.source.connector, pipeline.source.config, context) as source,
                self._open(
                    pipeline.destination.connector, pipeline.destination.config, context
                ) as destination,
            ):
                state = SyncState()
                while True:
                    page = source.sync(state)
                    if page.changes:
                        result = destination.push(PushPayload(records=page.changes))
                        moved += len(result.accepted)
                    state = page.state
                    if not page.has_more:
                        break
        seconds = time.perf_counter() - started
        return Result(HAND, moved, seconds, moved == work.total)

    def _open(self, connector: str, config: dict[str, Any], context: AuthContext) -> Any:
        return self.registry.open(
            connector, config=dict(config), context=context, governance=self.governance
        )


def store_batches_per_second(url: str, batches: int, threads: int) -> float:
    """Batches per second the job store at `url` commits (checkpoint + lease renewal), with
    `threads` threads each committing its own tenant's batches through one store object."""
    pipeline = f"cost-{uuid.uuid4().hex[:8]}"
    with open_store(url) as store:
        leases = [store.acquire_lease(pipeline, f"t{n}", "bench", 300) for n in range(threads)]

        def commit(index: int) -> None:
            lease = leases[index]
            for offset in range(batches):
                store.commit_checkpoint(lease, {"bookmarks": {"offset": offset}}, 100)
                lease = store.renew_lease(lease, 300)

        workers = [threading.Thread(target=commit, args=(n,)) for n in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return batches * threads / (time.perf_counter() - started)


def _wait_finished(store: JobStore, pipeline: str, runs: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [r for r in store.runs(pipeline, limit=runs + 10) if r.outcome != "running"]
        if len(done) >= runs:
            return True
        time.sleep(0.02)
    return False


def _toml(spec: JobsSpec) -> str:
    """The spec as a TOML file (inline tables; JSON strings are TOML strings)."""
    import json

    def inline(value: Any) -> str:
        if isinstance(value, dict):
            body = ", ".join(f"{json.dumps(k)} = {inline(v)}" for k, v in value.items())
            return "{ " + body + " }"
        if isinstance(value, list | tuple):
            return "[" + ", ".join(inline(item) for item in value) + "]"
        if isinstance(value, bool):
            return "true" if value else "false"
        return json.dumps(value)

    data = spec.model_dump(mode="json", exclude_none=True)
    lines = [f"{key} = {inline(value)}" for key, value in data.items() if key != "pipelines"]
    for pipeline in data["pipelines"]:
        lines.append("[[pipelines]]")
        lines.extend(f"{key} = {inline(value)}" for key, value in pipeline.items())
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _broker() -> Iterator[str]:
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    with redis_server(search=False) as url:
        yield url


def _run(results: dict[str, Result], bench: Bench, what: Callable[[], Result]) -> None:
    """Run one scenario unless the budget is spent; keep its fastest complete run."""
    if bench.left() <= 0:
        print("  (budget spent: skipped)")
        return
    result = what()
    flag = "" if result.complete else "  INCOMPLETE"
    print(f"  {result.name}: {result.seconds:.2f}s{flag}", flush=True)
    best = results.get(result.name)
    if best is None or (result.complete and result.seconds < best.seconds) or not best.complete:
        results[result.name] = result


def _ratio(a: Result | None, b: Result | None) -> float | None:
    if a is None or b is None or b.rate == 0:
        return None
    return a.rate / b.rate


def _verdict(value: float | None, target: float | None) -> str:
    if value is None:
        return "n/a"
    if target is None:
        return f"{value:.2f}x"
    return f"{value:.3f}x ({'meets' if value >= target else 'misses'} >= {target}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--records", type=int, default=1000, help="per tenant")
    parser.add_argument("--page", type=int, default=100, help="records per page and batch")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds per source page")
    parser.add_argument("--round-trips", type=int, default=100, help="one-record runs")
    parser.add_argument("--store-batches", type=int, default=300, help="per thread")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL store")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best is kept")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for everything")
    args = parser.parse_args()
    work = Workload(args.tenants, args.records, args.page, args.delay)
    trivial = Workload(args.round_trips, 1, 1, 0.0)
    results: dict[str, Result] = {}
    print(
        f"{work.tenants} tenants x {work.records} records, pages of {work.page}, "
        f"{work.delay * 1000:.0f} ms per page; {os.cpu_count()} CPUs; best of {args.repeats}",
        flush=True,
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp,
        _broker() as broker,
        _postgres(not args.no_postgres) as dsn,
    ):
        bench = Bench(Path(tmp), broker, args.budget)
        for round_ in range(args.repeats):
            print(f"round {round_ + 1}", flush=True)
            _run(results, bench, lambda: bench.in_process(work, 1))
            _run(results, bench, lambda: bench.in_process(work, 4))
            _run(results, bench, lambda: bench.hand_loop(work))
            if dsn is not None:
                _run(results, bench, lambda: bench.in_process(work, 1, PG_ONE, dsn))
            _run(results, bench, lambda: bench.celery(work, 1))
            _run(results, bench, lambda: bench.celery(work, 2))
            _run(results, bench, lambda: bench.in_process(trivial, 1, TRIP_LOCAL))
            _run(results, bench, lambda: bench.celery(trivial, 1, TRIP_CELERY))
        stores = _store_costs(Path(tmp), args.store_batches, dsn)
    one = results.get("in-process, 1 thread(s)")
    four = results.get("in-process, 4 thread(s)")
    hand = results.get(HAND)
    c1 = results.get("celery, 1 worker process(es)")
    c2 = results.get("celery, 2 worker process(es)")
    trip_local = results.get(TRIP_LOCAL)
    trip_celery = results.get(TRIP_CELERY)
    _table(list(results.values()), one)
    print()
    print(f"in-process 4 vs 1 threads      {_verdict(_ratio(four, one), None)}")
    print(f"celery 2 vs 1 worker processes {_verdict(_ratio(c2, c1), 1.8)}")
    print(f"celery 1 worker vs in-process 1 thread {_verdict(_ratio(c1, one), None)}")
    print(f"pipeline vs hand-written loop  {_verdict(_ratio(one, hand), 0.9)}")
    pg_one = results.get(PG_ONE)
    if pg_one is not None:
        print(f"  the same, PostgreSQL store   {_verdict(_ratio(pg_one, hand), 0.9)}")
    if trip_local is not None and trip_celery is not None:
        local = trip_local.seconds / args.round_trips * 1000
        remote = trip_celery.seconds / args.round_trips * 1000
        print(
            f"per run of one batch: in-process {local:.1f} ms, celery {remote:.1f} ms "
            f"(round trip through the broker: {remote - local:+.1f} ms)"
        )
    print()
    print(f"{'job store':<44}{'threads':>9}{'batches/s':>11}{'ms/batch':>10}")
    for name, threads, rate in stores:
        print(f"{name:<44}{threads:>9}{rate:>11.0f}{1000 / rate:>10.2f}")
    if one is not None and hand is not None and stores:
        pages = work.total / work.page
        sqlite_ms = 1000 / stores[0][2]
        print(
            f"the SQLite store's commits account for {pages * sqlite_ms / 1000:.1f}s of the "
            f"{one.seconds - hand.seconds:.1f}s between the pipeline and the hand-written loop"
        )


def _store_costs(directory: Path, batches: int, dsn: str | None) -> list[tuple[str, int, float]]:
    """The job stores' batch rates from 1 and 4 threads."""
    costs: list[tuple[str, int, float]] = []
    sqlite_url = f"sqlite:///{directory / 'store-cost.db'}"
    for threads in (1, 4):
        rate = store_batches_per_second(sqlite_url, batches, threads)
        costs.append(("SQLite (synchronous=FULL)", threads, rate))
    if dsn is not None:
        for threads in (1, 4):
            rate = store_batches_per_second(dsn, batches, threads)
            costs.append(("PostgreSQL (loopback)", threads, rate))
    return costs


@contextlib.contextmanager
def _postgres(wanted: bool) -> Iterator[str | None]:
    """DATABASE_URL, else a throwaway cluster (durability off), else None when not wanted."""
    given = os.environ.get("DATABASE_URL")
    if not wanted or given:
        yield given if wanted else None
        return
    with postgres_server() as dsn:
        yield dsn


def _table(results: list[Result], baseline: Result | None) -> None:
    print()
    print(f"{'scenario':<44}{'records':>9}{'seconds':>9}{'records/s':>11}{'vs 1 thread':>13}")
    for result in results:
        ratio = _ratio(result, baseline)
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        mark = "" if result.complete else " (incomplete)"
        print(
            f"{result.name + mark:<44}{result.records:>9}{result.seconds:>9.2f}"
            f"{result.rate:>11.0f}{shown:>13}"
        )


if __name__ == "__main__":
    main()
