"""The in-process executor: every (pipeline, tenant) of a spec on a bounded thread pool.

Each run is independent: its own lease, sessions, retries and report. A tenant whose source
keeps failing occupies one worker while it backs off between attempts and ends as a failed
run; the other runs proceed on the other workers.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from integrations.base import Governance, Registry

from ._exceptions import StoreError
from ._report import RunReport
from ._runner import (
    ConnectorLimits,
    ProgressListener,
    close_audit,
    destination_delivery,
    not_started,
    run_pipeline,
    spec_governance,
)
from ._spec import JobsSpec
from ._status import pipeline_status
from ._store import JobStore

__all__ = ["InProcessExecutor", "default_holder"]

EXECUTOR_NAME = "in-process"
"""What run records name as their executor."""


def default_holder() -> str:
    """A lease holder id unique to this process: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class InProcessExecutor:
    """Runs a spec's pipelines on a thread pool of ``spec.concurrency.workers`` threads.

    One registry, one governance and one set of per-connector limits serve every run, so the
    limits hold across pipelines and tenants. The store must be thread-safe (the job stores
    are).
    """

    def __init__(
        self,
        spec: JobsSpec,
        store: JobStore,
        *,
        registry: Registry | None = None,
        governance: Governance | None = None,
        holder: str | None = None,
        workers: int | None = None,
        progress: ProgressListener | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Prepare to run `spec` against `store`; nothing runs before `run`."""
        self.spec = spec
        self.store = store
        self.registry = registry or _default_registry()
        self._owned = None if governance is not None else spec_governance(spec)
        self.governance = governance or self._owned
        self.holder = holder or default_holder()
        self.workers = workers or spec.concurrency.workers
        self.limits = ConnectorLimits(spec.concurrency.connectors)
        self.progress = progress
        self._sleep = sleep

    def close(self) -> None:
        """Close the audit files of the governance the executor built from the spec's
        settings (a governance passed in belongs to the caller)."""
        close_audit(self._owned)
        self._owned = None

    def __enter__(self) -> InProcessExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def selection(
        self,
        pipelines: Sequence[str] = (),
        tenants: Sequence[str] = (),
        *,
        due_only: bool = False,
        now: datetime | None = None,
    ) -> list[tuple[str, str]]:
        """The (pipeline, tenant) pairs a run would start, in spec order.

        Unknown names are a `SpecError`. With `due_only`, only pairs whose schedule says they
        are due (never succeeded, or their interval has passed since the last success).
        """
        chosen = [self.spec.pipeline(name) for name in pipelines] or list(self.spec.pipelines)
        for tenant in tenants:
            if not any(tenant in {t.tenant for t in p.tenants} for p in chosen):
                chosen[0].tenant(tenant)  # raises SpecError naming the tenant
        pairs = [
            (pipeline.name, tenant.tenant)
            for pipeline in chosen
            for tenant in pipeline.tenants
            if not tenants or tenant.tenant in tenants
        ]
        if due_only:
            due = {
                (row.pipeline, row.tenant)
                for row in pipeline_status(self.spec, self.store, now=now or datetime.now(UTC))
                if row.due
            }
            pairs = [pair for pair in pairs if pair in due]
        return pairs

    def run(
        self,
        pipelines: Sequence[str] = (),
        tenants: Sequence[str] = (),
        *,
        due_only: bool = False,
    ) -> list[RunReport]:
        """Run the selected pairs once each, at most `workers` at a time; their reports."""
        pairs = self.selection(pipelines, tenants, due_only=due_only)
        if not pairs:
            return []
        with ThreadPoolExecutor(
            max_workers=min(self.workers, len(pairs)), thread_name_prefix="integrations-jobs"
        ) as pool:
            futures = [pool.submit(self.run_one, pipeline, tenant) for pipeline, tenant in pairs]
            return [future.result() for future in futures]

    def serve(
        self,
        stop: threading.Event,
        *,
        poll: float = 30.0,
        on_round: Callable[[list[RunReport]], None] | None = None,
    ) -> None:
        """Run what is due, round after round, until `stop` is set; `on_round` sees each round.

        Between rounds it waits until the next pipeline falls due, at most `poll` seconds (a
        pipeline without a schedule is due only until it first succeeds). A round in flight
        when `stop` is set runs to its end, so every run releases its lease.
        """
        if poll <= 0:
            raise ValueError("poll must be positive")
        while not stop.is_set():
            reports = self.run(due_only=True)
            if on_round is not None:
                on_round(reports)
            stop.wait(self._until_next_due(poll))

    def _until_next_due(self, poll: float) -> float:
        now = datetime.now(UTC)
        waits = [
            (row.next_run_at - now).total_seconds()
            for row in pipeline_status(self.spec, self.store, now=now)
            if row.next_run_at is not None
        ]
        return max(0.0, min([poll, *waits]))

    def run_one(self, pipeline: str, tenant: str) -> RunReport:
        """One run of `pipeline` for `tenant`, in the calling thread.

        A store that cannot grant the lease fails this run only (the next round or command
        tries again): the other runs of the round go on.
        """
        started_at = datetime.now(UTC)
        try:
            return self._run_pipeline(pipeline, tenant)
        except StoreError as error:
            destination = self.spec.pipeline(pipeline).destination.connector
            report = not_started(
                uuid.uuid4().hex,
                pipeline,
                tenant,
                destination_delivery(self.registry, destination),
                started_at,
                error,
            )
            if self.progress is not None:
                self.progress.run_finished(report)
            return report

    def _run_pipeline(self, pipeline: str, tenant: str) -> RunReport:
        return run_pipeline(
            self.spec,
            pipeline,
            tenant,
            self.store,
            self.holder,
            registry=self.registry,
            governance=self.governance,
            limits=self.limits,
            progress=self.progress,
            executor=EXECUTOR_NAME,
            sleep=self._sleep,
        )


def _default_registry() -> Registry:
    from integrations.base.registry import default_registry

    return default_registry
