"""`status`: where every (pipeline, tenant) of a spec stands, read from the job store.

Rows follow the spec (a pair that never ran still has a row, so a forgotten tenant shows),
and the times are relative to one `now`, so a report is consistent across its rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ._records import PipelineStatus, RunRecord
from ._report import StatusRow
from ._spec import JobsSpec, PipelineSpec
from ._store import JobStore

__all__ = ["pipeline_status"]

_HISTORY = 50
"""Runs read per pair to find the last success and the last error."""


def pipeline_status(
    spec: JobsSpec, store: JobStore, *, now: datetime | None = None
) -> list[StatusRow]:
    """One row per (pipeline, tenant) of `spec`, in spec order."""
    now = now or datetime.now(UTC)
    known = {(row.pipeline, row.tenant): row for row in store.status()}
    return [
        _row(pipeline, tenant.tenant, known.get((pipeline.name, tenant.tenant)), store, now)
        for pipeline in spec.pipelines
        for tenant in pipeline.tenants
    ]


def _row(
    pipeline: PipelineSpec,
    tenant: str,
    status: PipelineStatus | None,
    store: JobStore,
    now: datetime,
) -> StatusRow:
    runs = store.runs(pipeline.name, tenant, limit=_HISTORY) if status is not None else []
    last = runs[0] if runs else None
    success = next((run for run in runs if run.outcome == "succeeded"), None)
    checkpoint = status.checkpoint if status is not None else None
    return StatusRow(
        pipeline=pipeline.name,
        tenant=tenant,
        last_run_id=last.run_id if last else None,
        outcome=last.outcome if last else None,
        started_at=last.started_at if last else None,
        finished_at=last.finished_at if last else None,
        records_moved=last.records_moved if last else None,
        records_total=checkpoint.records if checkpoint else 0,
        checkpoint_at=checkpoint.updated_at if checkpoint else None,
        checkpoint_age_seconds=(now - checkpoint.updated_at).total_seconds()
        if checkpoint
        else None,
        lag_seconds=_lag(pipeline, success, now),
        due=_due(pipeline, success, now),
        next_run_at=_next_run(pipeline, success),
        last_error=_last_error(runs),
        dead_letters=status.dead_letters if status is not None else 0,
    )


def _lag(pipeline: PipelineSpec, success: RunRecord | None, now: datetime) -> float | None:
    if pipeline.schedule is None or success is None:
        return None
    behind = (now - success.started_at).total_seconds() - pipeline.schedule.every
    return max(0.0, behind)


def _next_run(pipeline: PipelineSpec, success: RunRecord | None) -> datetime | None:
    if pipeline.schedule is None or success is None:
        return None
    return success.started_at + timedelta(seconds=pipeline.schedule.every)


def _due(pipeline: PipelineSpec, success: RunRecord | None, now: datetime) -> bool:
    if success is None:
        return True
    if pipeline.schedule is None:
        return False
    return (now - success.started_at).total_seconds() >= pipeline.schedule.every


def _last_error(runs: list[RunRecord]) -> str | None:
    """The error of the newest failed run that no success has followed."""
    for run in runs:
        if run.outcome == "succeeded":
            return None
        if run.error:
            return run.error
    return None
