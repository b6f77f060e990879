"""The governed connector lifecycle: auth → connect → operations → revoke.

Platform code opens a `Session` (``registry.open(...)``) or an `AsyncSession`
(``registry.open_async(...)``); `run_lifecycle` runs a whole plan of operations through one
session and returns a report of every step with the session's audit trail. A plan names
each operation by its argument's model: a `FetchQuery` is a fetch, a `PushPayload` a push,
a `SyncState` a sync.

Sessions retry what may be retried and stop calling a connector that keeps failing; the
policies for that (`RetryPolicy`, `BreakerPolicy`) are re-exported here next to the sessions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from ._audit import AuditEvent, ConnectorMeta, FanOutAuditSink, MemoryAuditSink
from ._connector import Connector
from ._exceptions import IntegrationsError
from ._governance import Governance
from ._manifest import ConnectorEntry
from ._models import AuthContext, ConnectorConfig, FetchQuery, PushPayload, SyncState
from ._registry import Registry
from ._resilience import NO_RETRY, BreakerPolicy, CircuitState, RetryPolicy
from ._session import AsyncSession, Session, SessionState
from ._stream import ActionStream, AsyncActionStream
from ._untrusted import UntrustedConfig

__all__ = [
    "NO_RETRY",
    "ActionStream",
    "AsyncActionStream",
    "AsyncSession",
    "BreakerPolicy",
    "CircuitState",
    "LifecycleReport",
    "PlannedOperation",
    "RetryPolicy",
    "Session",
    "SessionState",
    "StepReport",
    "run_lifecycle",
]

PlannedOperation = FetchQuery | PushPayload | SyncState
"""One operation of a plan, named by the type of its argument."""


@dataclass(frozen=True, slots=True)
class StepReport:
    """One step as it finished: name, attempt, outcome, duration, and result or error type."""

    step: str
    attempt: int
    outcome: Literal["ok", "denied", "error"]
    duration_seconds: float
    error_type: str | None = None
    result: BaseModel | None = None


@dataclass(frozen=True, slots=True)
class LifecycleReport:
    """Every step of one governed lifecycle, its error if it stopped early, and the audit trail."""

    connector: str
    correlation_id: str
    steps: tuple[StepReport, ...]
    audit: tuple[AuditEvent, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the plan ran to the end and every step's last attempt succeeded."""
        return self.error is None and all(
            step.outcome == "ok" for step in _last_attempts(self.steps)
        )


def _last_attempts(steps: tuple[StepReport, ...]) -> list[StepReport]:
    """The steps without the attempts a retry replaced (a retry is the next attempt number)."""
    last: list[StepReport] = []
    for step in steps:
        for index in range(len(last) - 1, -1, -1):
            if last[index].step == step.step:
                if last[index].attempt + 1 == step.attempt:
                    del last[index]
                break
        last.append(step)
    return last


def _operation(session: Session, operation: PlannedOperation) -> BaseModel:
    if isinstance(operation, FetchQuery):
        return session.fetch(operation)
    if isinstance(operation, PushPayload):
        return session.push(operation)
    return session.sync(operation)


def run_lifecycle(
    connector: Connector[Any] | str,
    *,
    config: ConnectorConfig | Mapping[str, Any] | UntrustedConfig | None = None,
    context: AuthContext | None = None,
    plan: Iterable[PlannedOperation] = (),
    governance: Governance | None = None,
    meta: ConnectorMeta | None = None,
    entry: ConnectorEntry | None = None,
    registry: Registry | None = None,
) -> LifecycleReport:
    """Run auth, connect, every planned operation, then revoke, in one governed session.

    `connector` is a connector instance, or the name of one in `registry` (default: the
    default registry), which then also supplies versions and manifest metadata. Without a
    `config` the config model's defaults are used (a model with required fields then reports
    its `ConfigError`); without a `context` the caller is anonymous, so the policies decide
    (the default ones deny it: the report says `denied`).

    The plan stops at the first operation that fails with a library error; revoke runs in
    every case. Library errors are reported (`LifecycleReport.error`), not raised; any other
    exception propagates after revoke.
    """
    config = {} if config is None else config
    context = AuthContext() if context is None else context  # anonymous: no tenant, no actor
    if isinstance(connector, str):
        from .registry import default_registry

        registry = registry or default_registry
        governance = governance or registry.governance
    governance = governance or Governance()
    trail = MemoryAuditSink()
    governed = dataclasses.replace(governance, audit=FanOutAuditSink([governance.audit, trail]))
    steps: list[StepReport] = []

    def listen(event: AuditEvent) -> None:
        steps.append(
            StepReport(
                event.operation,
                event.attempt,
                event.outcome or "ok",
                event.duration_seconds or 0.0,
                event.error_type,
            )
        )

    if isinstance(connector, str):
        assert registry is not None  # chosen above for named connectors
        session = registry.open(
            connector, config=config, context=context, governance=governed, listener=listen
        )
        name = connector
    else:
        session = Session(
            connector,
            config=config,
            context=context,
            governance=governed,
            meta=meta,
            entry=entry,
            listener=listen,
        )
        name = meta.name if meta else type(connector).__name__
    error: str | None = None
    try:
        with session:
            for operation in plan:
                result = _operation(session, operation)
                steps[-1] = dataclasses.replace(steps[-1], result=result)
    except IntegrationsError as failure:
        error = f"{type(failure).__name__}: {failure}"
    return LifecycleReport(
        connector=name,
        correlation_id=session.correlation_id,
        steps=tuple(steps),
        audit=tuple(trail.events),
        error=error,
    )
