"""What a run reports and what `status` shows: plain values, printable and JSON-ready.

A run report is the return value of the unit of work, so it must cross a process boundary
(a future worker hands it back through a result backend): frozen dataclasses of strings,
numbers and datetimes, with `to_dict` giving JSON types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from integrations.base import format_utc

__all__ = ["Delivery", "Outcome", "RunReport", "StatusRow"]

Outcome = Literal["succeeded", "failed", "lease_lost", "skipped"]
"""How a run ended: ``skipped`` when another holder's lease kept it from starting."""

Delivery = Literal["exactly-once", "at-least-once"]
"""What the destination guarantees for a batch delivered again after a crash.

``exactly-once``: the destination's push is idempotent (its manifest says so) and every batch
carries an idempotency key, so a batch repeated after a crash takes effect once.
``at-least-once``: the push is not idempotent; a batch pushed before a crash and before its
checkpoint was committed is pushed again, and may be stored twice.
"""


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else format_utc(moment)


@dataclass(frozen=True, slots=True)
class RunReport:
    """One run of one pipeline for one tenant, as it ended."""

    run_id: str
    pipeline: str
    tenant: str
    outcome: Outcome
    records_moved: int
    batches: int
    rejected: int
    attempts: int
    delivery: Delivery
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    resynced: bool = False
    """The source refused the checkpointed state (`ResyncRequired`) and was read from the start."""

    @property
    def ok(self) -> bool:
        """Whether the run moved everything it found (skipped runs are not failures either)."""
        return self.outcome in ("succeeded", "skipped")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON types (times in RFC 3339 UTC)."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "tenant": self.tenant,
            "outcome": self.outcome,
            "records_moved": self.records_moved,
            "batches": self.batches,
            "rejected": self.rejected,
            "attempts": self.attempts,
            "delivery": self.delivery,
            "started_at": _time(self.started_at),
            "finished_at": _time(self.finished_at),
            "duration_seconds": round((self.finished_at - self.started_at).total_seconds(), 6),
            "error": self.error,
            "resynced": self.resynced,
        }


@dataclass(frozen=True, slots=True)
class StatusRow:
    """Where one (pipeline, tenant) of a spec stands, from the job store."""

    pipeline: str
    tenant: str
    last_run_id: str | None
    outcome: str | None
    """The last run's outcome (``running`` while one runs); None before the first run."""
    started_at: datetime | None
    finished_at: datetime | None
    records_moved: int | None
    """Records the last run moved."""
    records_total: int
    """Records moved by every committed batch so far."""
    checkpoint_at: datetime | None
    checkpoint_age_seconds: float | None
    lag_seconds: float | None
    """How far behind its schedule the pipeline is: time since the last successful run
    started, minus the interval, never below 0; None without a schedule or a success."""
    due: bool
    """Whether a scheduled run would start it now (always when it never succeeded)."""
    next_run_at: datetime | None
    """When the schedule makes it due again: the last success's start plus the interval;
    None without a schedule or a success (then it is due until it succeeds)."""
    last_error: str | None
    """The error of the latest run that failed, when no run succeeded after it."""
    dead_letters: int

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON types (times in RFC 3339 UTC)."""
        return {
            "pipeline": self.pipeline,
            "tenant": self.tenant,
            "last_run_id": self.last_run_id,
            "outcome": self.outcome,
            "started_at": _time(self.started_at),
            "finished_at": _time(self.finished_at),
            "records_moved": self.records_moved,
            "records_total": self.records_total,
            "checkpoint_at": _time(self.checkpoint_at),
            "checkpoint_age_seconds": _round(self.checkpoint_age_seconds),
            "lag_seconds": _round(self.lag_seconds),
            "due": self.due,
            "next_run_at": _time(self.next_run_at),
            "last_error": self.last_error,
            "dead_letters": self.dead_letters,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
