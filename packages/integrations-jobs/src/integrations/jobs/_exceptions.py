"""The jobs errors: one subtree of the library's error tree, so ``except IntegrationsError``
still catches everything the framework raises.

::

    IntegrationsError
    └── JobsError
        ├── SpecError (also ConfigError)
        ├── StoreError
        │   └── InvalidStoreValue (also ValueError)
        ├── LeaseLost
        └── LeaseHeld

The lease errors are not store failures: they are the answers that make fencing work, and a
runner handles them differently (stop quietly, or try later) from a store it cannot use.
"""

from __future__ import annotations

from datetime import datetime

from integrations.base import ConfigError, IntegrationsError

__all__ = [
    "InvalidStoreValue",
    "JobsError",
    "LeaseHeld",
    "LeaseLost",
    "SpecError",
    "StoreError",
]


class JobsError(IntegrationsError):
    """Base class of the errors raised by integrations-jobs."""


class SpecError(JobsError, ConfigError):
    """A pipeline spec does not validate; `problems` lists (field, reason) pairs."""


class StoreError(JobsError):
    """The job store failed or cannot be used (bad URL, newer schema, I/O, lost server).

    `transient` says a retry may succeed (a busy SQLite file, a lost or exhausted connection
    pool); a newer schema or an unreadable file is not transient.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class InvalidStoreValue(StoreError, ValueError):
    """A value cannot be stored as given (state that is not JSON, a bad limit or outcome).

    Raised before anything is written, so the store is left as it was.
    """


class LeaseLost(JobsError):
    """The caller's lease expired or was taken over: its token is stale and nothing was written.

    The worker must stop: another holder may already be running the same (pipeline, tenant).
    """


class LeaseHeld(JobsError):
    """Another holder has an unexpired lease on this (pipeline, tenant).

    `holder` and `expires_at` name it when the store knows them, so a caller can say who
    runs the pipeline and when to try again.
    """

    def __init__(
        self, message: str, *, holder: str | None = None, expires_at: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.holder = holder
        self.expires_at = expires_at
