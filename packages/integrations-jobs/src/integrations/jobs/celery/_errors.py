"""The errors of the Celery executor, in the jobs subtree of the library's error tree."""

from __future__ import annotations

from integrations.jobs import JobsError

__all__ = ["BrokerUnavailable", "CeleryUnavailable"]


class CeleryUnavailable(JobsError, ImportError):
    """Celery is not installed: the executor is the ``celery`` extra of integrations-jobs.

    Also an `ImportError`, since that is what it replaces; raised when
    ``integrations.jobs.celery`` is imported without it.
    """


class BrokerUnavailable(JobsError):
    """The broker could not be reached to enqueue a run (after the publish retries)."""
