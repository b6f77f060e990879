"""integrations.mocks: an in-memory mock connector for tests and local validation.

`MockConnector` is a complete connector, not a stub: it stores pushed records per tenant in a
shared in-process `MockStore`, pages fetches with opaque cursors, syncs incrementally from a
change log, records every call as a `Call`, and injects faults on demand through
`connector.faults` or through `MockConfig` (for sessions built from the registry, where it is
known as `mock`).
"""

from ._calls import Call
from ._config import ErrorKind, FaultSpec, MockConfig, Operation
from ._faults import FaultPlan, Faults
from ._store import MockStore, RecordCheck, get_store, reset_stores
from .mock_connector import MockConnector

__all__ = [
    "Call",
    "ErrorKind",
    "FaultPlan",
    "FaultSpec",
    "Faults",
    "MockConfig",
    "MockConnector",
    "MockStore",
    "Operation",
    "RecordCheck",
    "get_store",
    "reset_stores",
]
