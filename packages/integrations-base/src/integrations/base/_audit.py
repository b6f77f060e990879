"""Audit events and the sinks that store them.

Every lifecycle step and operation of a session emits a "started" and a "finished" event.
Events carry who, what, when and how it ended — never payloads, records or secret values.
Rendering to JSON happens only in sinks that write text.

A session run on behalf of a job carries the job run's id in its context
(``AuthContext.attributes["run_id"]``, see `RUN_ID_ATTRIBUTE`); its events repeat it, so the
events of every session of one run can be found together although each session has its own
correlation id.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from ._exceptions import AuditError
from ._models import format_utc

__all__ = [
    "RUN_ID_ATTRIBUTE",
    "AuditEvent",
    "AuditSink",
    "ConnectorMeta",
    "FanOutAuditSink",
    "JsonLinesAuditSink",
    "LoggingAuditSink",
    "MemoryAuditSink",
    "load_audit_sink",
    "run_id_of",
]

AUDIT_LOGGER = "integrations.audit"

RUN_ID_ATTRIBUTE = "run_id"
"""The `AuthContext.attributes` key whose string value a session's audit events carry as
``run_id``: the id of the job run (a pipeline run, a batch) the session belongs to."""


def run_id_of(attributes: Mapping[str, object]) -> str | None:
    """The run id a context's attributes carry, or None when they carry no non-empty string."""
    value = attributes.get(RUN_ID_ATTRIBUTE)
    return value if isinstance(value, str) and value else None


Phase = Literal["started", "finished"]
Outcome = Literal["ok", "denied", "error"]


@dataclass(frozen=True, slots=True)
class ConnectorMeta:
    """Who a session talks to: connector name and versions, shared by all its events."""

    name: str
    connector_version: str | None = None
    distribution: str | None = None
    distribution_version: str | None = None


class AuditEvent(NamedTuple):
    """One audit record: a step or operation of a session starting or finishing.

    A named tuple: immutable, and the cheapest immutable record Python builds, which
    matters because every governed call creates two.
    """

    correlation_id: str
    sequence: int
    timestamp: float
    connector: ConnectorMeta
    operation: str
    phase: Phase
    tenant: str | None
    actor: str | None
    attempt: int = 1
    outcome: Outcome | None = None
    error_type: str | None = None
    duration_seconds: float | None = None
    detail: str | None = None
    delay_seconds: float | None = None
    run_id: str | None = None

    @property
    def id(self) -> str:
        """Unique id: the session's correlation id and the event's sequence number."""
        return f"{self.correlation_id}-{self.sequence}"

    @property
    def time(self) -> datetime:
        """When the event happened, in UTC."""
        return datetime.fromtimestamp(self.timestamp, UTC)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form every text sink writes (the audit event reference lists its keys)."""
        return {
            "id": self.id,
            "time": format_utc(self.time),
            "correlation_id": self.correlation_id,
            "connector": self.connector.name,
            "connector_version": self.connector.connector_version,
            "distribution": self.connector.distribution,
            "distribution_version": self.connector.distribution_version,
            "operation": self.operation,
            "phase": self.phase,
            "tenant": self.tenant,
            "actor": self.actor,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "error_type": self.error_type,
            "duration_seconds": self.duration_seconds,
            "detail": self.detail,
            "delay_seconds": self.delay_seconds,
            "run_id": self.run_id,
        }

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


@runtime_checkable
class AuditSink(Protocol):
    """Stores audit events; raising from `emit` means the event was not stored."""

    def emit(self, event: AuditEvent) -> None:
        """Store `event`."""
        ...


class MemoryAuditSink:
    """Keeps events in a list: for tests and for reports such as `run_lifecycle`'s."""

    emit: Callable[[AuditEvent], None]
    """Append an event (the list's own `append`, so storing an event costs no Python call)."""

    def __init__(self) -> None:
        """Create an empty sink."""
        self._events: list[AuditEvent] = []
        self.emit = self._events.append

    @property
    def events(self) -> list[AuditEvent]:
        """The events stored so far, oldest first (clear it with ``events.clear()``)."""
        return self._events


class LoggingAuditSink:
    """Logs one JSON object per event on the `integrations.audit` logger at INFO."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        """Log to `logger` (default `integrations.audit`); the library installs no handler."""
        self._logger = logger or logging.getLogger(AUDIT_LOGGER)

    def emit(self, event: AuditEvent) -> None:
        """Log `event` when the logger is enabled for INFO."""
        if self._logger.isEnabledFor(logging.INFO):
            self._logger.info(event.to_json())


class JsonLinesAuditSink:
    """Appends one JSON line per event to a file, safely shared by several processes.

    Each event is written with a single ``write`` on a descriptor opened with ``O_APPEND``,
    so lines from concurrent processes never interleave. `fsync="event"` makes each event
    durable before `emit` returns; `fsync="batch"` syncs every `batch_size` events and on
    `close()`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: Literal["event", "batch"] = "event",
        batch_size: int = 100,
    ) -> None:
        """Open (or create, mode 0600) the file at `path` for appending."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.path = Path(path)
        self._fsync_each = fsync == "event"
        self._batch_size = batch_size
        self._pending = 0
        self._lock = threading.Lock()
        self._fd: int | None = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600
        )

    def emit(self, event: AuditEvent) -> None:
        """Append `event` as one line; raise `AuditError` once the sink is closed."""
        line = (event.to_json() + "\n").encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise AuditError(f"audit file {self.path} is closed")
            _write_all(self._fd, line)
            self._pending += 1
            if self._fsync_each or self._pending >= self._batch_size:
                os.fsync(self._fd)
                self._pending = 0

    def close(self) -> None:
        """Sync what is pending and close the file."""
        with self._lock:
            if self._fd is None:
                return
            try:
                if self._pending:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> JsonLinesAuditSink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FanOutAuditSink:
    """Sends every event to several sinks; fails when any of them fails, after trying all."""

    def __init__(self, sinks: Iterable[AuditSink]) -> None:
        """Fan out to `sinks`, in order."""
        self.sinks = tuple(sinks)

    def emit(self, event: AuditEvent) -> None:
        """Emit to every sink; raise `AuditError` naming the sinks that failed."""
        failed: list[str] = []
        for sink in self.sinks:
            try:
                sink.emit(event)
            except Exception as error:  # each sink is tried; failures are reported together
                failed.append(f"{type(sink).__name__} ({type(error).__name__})")
        if failed:
            raise AuditError("audit sinks failed: " + ", ".join(failed))


def load_audit_sink(name: str, **options: Any) -> AuditSink:
    """Create the sink a distribution registers as `name` in `integrations.audit_sinks`."""
    from ._discovery import AUDIT_SINK_GROUP, entry_points_by_group

    for entry_point in entry_points_by_group()[AUDIT_SINK_GROUP]:
        if entry_point.name == name:
            sink = entry_point.load()(**options)
            if not isinstance(sink, AuditSink):
                raise AuditError(f"audit sink {name!r} does not implement AuditSink")
            return sink
    raise AuditError(f"no audit sink named {name!r} is installed")
