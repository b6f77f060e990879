"""What a worker process does with one task, kept apart from Celery so it reads (and tests)
as plain code: `WorkerRuntime.execute` returns a report, a request to retry later, or nothing.

Each worker process opens its own job store, builds its own governance and takes its own
holder id (host, process id, random suffix) the first time it runs a task: nothing of the
kind crosses a fork, since a database connection or an open audit file shared by two
processes is corrupted by the first one to use it. `reset` forgets what a forked child
inherited; `close` releases what a process opened.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from integrations.base import Governance, GovernanceSettings, Registry
from integrations.jobs import (
    ConnectorLimits,
    JobsSpec,
    JobStore,
    RunReport,
    StoreError,
    default_holder,
    open_store,
    pipeline_status,
    run_pipeline,
)
from integrations.jobs._runner import close_audit

from ._settings import EXECUTOR_NAME

__all__ = ["LEASE_WAITS", "LEASE_WAIT_MARGIN", "RetryLater", "WorkerRuntime"]

logger = logging.getLogger("integrations.jobs.celery")

LEASE_WAITS: Final = 10
"""How many times a run that found its lease held tries again before it counts as skipped."""

LEASE_WAIT_MARGIN: Final = 1.0
"""Seconds past the lease's lifetime before trying again: a dead holder's lease has expired
by then (a live holder renews it after every batch and still holds it)."""


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Ask Celery to deliver the run again after `countdown` seconds, with these counters."""

    countdown: float
    reason: str
    lease_waits: int
    store_tries: int


@dataclass(slots=True)
class _ProcessState:
    """What one worker process opened for itself."""

    pid: int
    store: JobStore
    holder: str
    governance: Governance | None
    limits: ConnectorLimits


class WorkerRuntime:
    """Runs the tasks of one worker (all its processes) against one spec and job store."""

    def __init__(
        self,
        spec: JobsSpec,
        store_url: str,
        *,
        registry: Registry | None = None,
        governance: GovernanceSettings | None = None,
        lease_waits: int = LEASE_WAITS,
    ) -> None:
        """`governance`: settings each process builds its governance from (None: the
        spec's settings, else the registry's governance)."""
        self.spec = spec
        self.store_url = store_url
        self.registry = registry
        self.governance = governance
        self.lease_waits = lease_waits
        self._lock = threading.Lock()
        self._state: _ProcessState | None = None

    def reset(self) -> None:
        """Forget state inherited through a fork without touching it (the parent owns it)."""
        with self._lock:
            self._state = None

    def close(self) -> None:
        """Close the store and the audit files this process opened, if any."""
        with self._lock:
            state, self._state = self._state, None
        if state is not None and state.pid == os.getpid():
            state.store.close()
            close_audit(state.governance)

    def process_state(self) -> _ProcessState:
        """This process's store, holder, governance and limits, opened on first use."""
        with self._lock:
            if self._state is None or self._state.pid != os.getpid():
                self._state = self._open()
            return self._state

    def _open(self) -> _ProcessState:
        store = open_store(self.store_url)
        holder = default_holder()
        governance = self.governance.build() if self.governance is not None else None
        limits = ConnectorLimits(self.spec.concurrency.connectors)
        logger.info("worker process %s: holder %s, store opened", os.getpid(), holder)
        return _ProcessState(os.getpid(), store, holder, governance, limits)

    def execute(
        self,
        pipeline: str,
        tenant: str,
        *,
        only_if_due: bool = False,
        lease_waits: int = 0,
        store_tries: int = 0,
    ) -> RunReport | RetryLater | None:
        """Run `pipeline` for `tenant` once; None when `only_if_due` and it is not due.

        A run that finds its lease held is delivered again after the lease's lifetime (its
        holder may be a worker that died, whose lease must expire first), up to
        `lease_waits` times. A job store that fails transiently before the run starts is
        tried again with backoff, up to the pipeline's attempts. Everything else that
        happens to the run is in its report and its run record.
        """
        spec = self.spec.pipeline(pipeline)
        spec.tenant(tenant)
        state = self.process_state()
        if only_if_due and not self._due(state.store, pipeline, tenant):
            logger.info("%s %s: not due, nothing to run", pipeline, tenant)
            return None
        try:
            report = run_pipeline(
                self.spec,
                pipeline,
                tenant,
                state.store,
                state.holder,
                registry=self.registry,
                governance=state.governance,
                limits=state.limits,
                executor=EXECUTOR_NAME,
            )
        except StoreError as error:
            if not error.transient or store_tries + 1 >= spec.attempts:
                raise
            return RetryLater(
                spec.retry_delay * 2**store_tries, str(error), lease_waits, store_tries + 1
            )
        if report.outcome == "skipped" and lease_waits < self.lease_waits:
            return RetryLater(
                spec.lease_ttl + LEASE_WAIT_MARGIN, report.error or "", lease_waits + 1, store_tries
            )
        _log(report)
        return report

    def _due(self, store: JobStore, pipeline: str, tenant: str) -> bool:
        rows = pipeline_status(self.spec, store, now=datetime.now(UTC))
        return any(row.due for row in rows if (row.pipeline, row.tenant) == (pipeline, tenant))


def _log(report: RunReport) -> None:
    level = logging.INFO if report.ok else logging.WARNING
    logger.log(
        level,
        "%s %s: %s (%d records in %d batches, %d rejected, %d attempts; run %s)%s",
        report.pipeline,
        report.tenant,
        report.outcome,
        report.records_moved,
        report.batches,
        report.rejected,
        report.attempts,
        report.run_id,
        f": {report.error}" if report.error else "",
    )
