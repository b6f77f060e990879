"""The Celery configuration a spec implies, as plain data (no Celery import).

Delivery settings follow from the job store's guarantees: a run is acknowledged only after it
ended (`task_acks_late`), re-queued when the process running it dies
(`task_reject_on_worker_lost`), and a worker reserves one run at a time
(`worker_prefetch_multiplier`), so a run waiting in a dead worker's prefetch buffer is not
stuck there. With Redis, a message whose worker vanished without a word (SIGKILL, a lost
machine) comes back after the visibility timeout; it is sized to the longest lease of the
spec, so that by the time a run is delivered again the dead holder's lease has expired and
the new worker can take it at once.
"""

from __future__ import annotations

import math
from typing import Any, Final
from urllib.parse import urlsplit

from integrations.jobs import JobsSpec

__all__ = [
    "DEFAULT_BROKER",
    "DEFAULT_QUEUE",
    "EXECUTOR_NAME",
    "RUN_TASK",
    "beat_schedule",
    "celery_settings",
    "visibility_timeout",
]

RUN_TASK: Final = "integrations.jobs.run"
"""The task name: one run of one pipeline for one tenant (args: pipeline, tenant)."""

DEFAULT_QUEUE: Final = "integrations-jobs"
"""The queue runs go to unless the worker and the submitter name another."""

DEFAULT_BROKER: Final = "redis://127.0.0.1:6379/0"
"""The broker when neither ``--broker`` nor ``INTEGRATIONS_JOBS_BROKER`` names one."""

EXECUTOR_NAME: Final = "celery"
"""What run records name as their executor."""

VISIBILITY_MARGIN: Final = 1.25
"""The visibility timeout is this many times the longest lease (an expired lease, plus slack
for a clock that runs a little ahead on the restoring worker)."""


def visibility_timeout(spec: JobsSpec) -> int:
    """Seconds before Redis hands an unacknowledged run to another worker: past the longest
    lease of the spec, so the holder that vanished has lost its lease by then."""
    longest = max(pipeline.lease_ttl for pipeline in spec.pipelines)
    return max(1, math.ceil(longest * VISIBILITY_MARGIN))


def _redis(broker: str) -> bool:
    return urlsplit(broker).scheme.lower() in {"redis", "rediss", "redis+socket"}


def celery_settings(spec: JobsSpec, broker: str, *, queue: str = DEFAULT_QUEUE) -> dict[str, Any]:
    """The Celery configuration for running `spec`'s pipelines through `broker`."""
    settings: dict[str, Any] = {
        "broker_url": broker,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": queue,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": True,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2.0,
        },
        "enable_utc": True,
        "beat_schedule": beat_schedule(spec),
    }
    if _redis(broker):
        timeout = visibility_timeout(spec)
        settings["broker_transport_options"] = {
            "visibility_timeout": timeout,
            # Look for abandoned runs often enough that one comes back soon after its
            # visibility timeout rather than up to ten sweeps later.
            "unacked_restore_interval": max(1, min(10, timeout // 4)),
            "unacked_restore_throttle": 1,
        }
    return settings


def beat_schedule(spec: JobsSpec) -> dict[str, dict[str, Any]]:
    """One beat entry per scheduled pipeline and tenant, every ``schedule.every`` seconds.

    The runs it sends are marked ``only_if_due``: the worker checks the job store and starts
    the run only when the pipeline is due for that tenant (never succeeded, or its interval
    has passed since the last success started), so a beat tick right after a run that was
    submitted by hand does nothing.
    """
    return {
        f"{pipeline.name}/{tenant.tenant}": {
            "task": RUN_TASK,
            "schedule": pipeline.schedule.every,
            "args": (pipeline.name, tenant.tenant),
            "kwargs": {"only_if_due": True},
        }
        for pipeline in spec.pipelines
        if pipeline.schedule is not None
        for tenant in pipeline.tenants
    }
