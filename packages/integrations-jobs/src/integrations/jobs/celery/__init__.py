"""The Celery executor: pipeline runs as Celery tasks on workers, with a beat schedule.

Install the extra: ``pip install "integrations-jobs[celery]"``. Importing this package without
Celery raises `CeleryUnavailable`; the rest of ``integrations.jobs`` never imports Celery.

Each task is one `run_pipeline` call, acknowledged only after the run ended and re-queued when
its worker dies (see `celery_settings`); the job store's leases, fencing tokens and
checkpoints make a run delivered twice safe. ``integrations jobs worker`` and
``integrations jobs submit`` are the command line.
"""

from ._errors import BrokerUnavailable, CeleryUnavailable
from ._settings import (
    DEFAULT_BROKER,
    DEFAULT_QUEUE,
    EXECUTOR_NAME,
    RUN_TASK,
    beat_schedule,
    celery_settings,
    visibility_timeout,
)
from ._tasks import LEASE_WAITS, RetryLater, WorkerRuntime

from ._app import JobsCelery  # isort: skip  # last: raises CeleryUnavailable without Celery

__all__ = [
    "DEFAULT_BROKER",
    "DEFAULT_QUEUE",
    "EXECUTOR_NAME",
    "LEASE_WAITS",
    "RUN_TASK",
    "BrokerUnavailable",
    "CeleryUnavailable",
    "JobsCelery",
    "RetryLater",
    "WorkerRuntime",
    "beat_schedule",
    "celery_settings",
    "visibility_timeout",
]
