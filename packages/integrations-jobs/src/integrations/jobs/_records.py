"""What the job store hands back: frozen value objects, never live rows.

Every timestamp is timezone-aware UTC, whichever store produced it, so records from SQLite and
PostgreSQL compare equal and print the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

__all__ = [
    "FINAL_OUTCOMES",
    "RUN_OUTCOMES",
    "Checkpoint",
    "DeadLetter",
    "Lease",
    "PipelineStatus",
    "RunRecord",
]

RUN_OUTCOMES: Final = frozenset({"running", "succeeded", "failed", "lease_lost", "abandoned"})
"""Every outcome a run record may have; ``running`` until `JobStore.finish_run`.

``abandoned`` is written by the next run of the same pipeline and tenant for a run it found
still ``running`` when it took the lease over (its worker died, or it lost the lease and has
not noticed yet): the only outcome its own `finish_run` may still replace."""

FINAL_OUTCOMES: Final = RUN_OUTCOMES - {"running"}
"""The outcomes `JobStore.finish_run` accepts."""


@dataclass(frozen=True, slots=True)
class Lease:
    """The right to run one (pipeline, tenant) until `expires_at`.

    `token` is the fencing token: it strictly increases per (pipeline, tenant) across every
    acquisition, releases and expiries included, and the store checks it when a checkpoint or
    dead letters are written, so a worker that lost its lease cannot write over its successor.
    """

    pipeline: str
    tenant: str
    holder: str
    token: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The last committed source state of a (pipeline, tenant).

    `state` is the source's sync state or fetch cursor as JSON (None: start from scratch);
    `token` the fencing token of the lease that committed it; `records` the total moved so far.
    """

    pipeline: str
    tenant: str
    state: Mapping[str, Any] | None
    token: int
    records: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of one pipeline for one tenant: ``running`` until finished, then its outcome."""

    run_id: str
    pipeline: str
    tenant: str
    executor: str
    started_at: datetime
    finished_at: datetime | None
    outcome: str
    records_moved: int
    batches: int
    rejected: int
    error: str | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record the destination rejected, kept with the reason: rejected records are never
    dropped."""

    run_id: str
    pipeline: str
    tenant: str
    record: Mapping[str, Any]
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PipelineStatus:
    """Where a (pipeline, tenant) stands: its last run, its checkpoint, its dead letters."""

    pipeline: str
    tenant: str
    last_run: RunRecord | None
    checkpoint: Checkpoint | None
    dead_letters: int
