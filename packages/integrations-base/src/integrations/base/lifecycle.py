"""The connector lifecycle: auth → connect → operations → revoke, with a report of every step.

`run_lifecycle` runs a plan of operations through a connector and always revokes the token
it obtained, whatever happens in between. The plan names each operation by its argument's
model: a `FetchQuery` is a fetch, a `PushPayload` a push, a `SyncState` a sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel

from ._connector import Connector
from ._exceptions import IntegrationsError
from ._models import (
    AuthContext,
    AuthToken,
    ConnectorConfig,
    FetchQuery,
    PushPayload,
    SyncState,
)

__all__ = ["LifecycleReport", "PlannedOperation", "StepReport", "run_lifecycle"]

PlannedOperation = FetchQuery | PushPayload | SyncState
"""One operation of a plan, named by the type of its argument."""

Outcome = Literal["ok", "error", "skipped"]


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one step did: its name, outcome, duration and result (or error type and message)."""

    step: str
    outcome: Outcome
    duration_seconds: float
    result: BaseModel | None = None
    error_type: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LifecycleReport:
    """The steps of one complete lifecycle, in the order they ran."""

    connector: str
    steps: tuple[StepReport, ...]

    @property
    def ok(self) -> bool:
        """Whether every step succeeded."""
        return all(step.outcome == "ok" for step in self.steps)


def _operation_name(operation: PlannedOperation) -> str:
    if isinstance(operation, FetchQuery):
        return "fetch"
    if isinstance(operation, PushPayload):
        return "push"
    return "sync"


def _dispatch(connector: Connector[Any], operation: PlannedOperation) -> BaseModel:
    if isinstance(operation, FetchQuery):
        return connector.fetch(operation)
    if isinstance(operation, PushPayload):
        return connector.push(operation)
    return connector.sync(operation)


def _timed(step: str, call: Callable[[], BaseModel]) -> StepReport:
    started = time.perf_counter()
    try:
        result = call()
    except IntegrationsError as error:
        elapsed = time.perf_counter() - started
        return StepReport(step, "error", elapsed, None, type(error).__name__, str(error))
    return StepReport(step, "ok", time.perf_counter() - started, result)


def run_lifecycle(
    connector: Connector[Any],
    *,
    config: ConnectorConfig | Mapping[str, Any],
    context: AuthContext,
    plan: Iterable[PlannedOperation] = (),
    on_step: Callable[[StepReport], None] | None = None,
) -> LifecycleReport:
    """Run auth, connect, every planned operation, then revoke; report each step.

    Operations stop at the first failing step; revoke runs whenever auth succeeded.
    Failures of the library's error tree are reported, not raised; anything else propagates
    after revoke. `on_step` sees each step as it completes (the demo prints them).
    """
    if not isinstance(config, ConnectorConfig):
        config = type(connector).config_model.from_mapping(config)
    steps: list[StepReport] = []

    def record(report: StepReport) -> StepReport:
        steps.append(report)
        if on_step is not None:
            on_step(report)
        return report

    auth = record(_timed("auth", lambda: connector.auth(context)))
    token = auth.result
    if not isinstance(token, AuthToken):
        return LifecycleReport(type(connector).__name__, tuple(steps))
    try:
        if record(_timed("connect", lambda: connector.connect(config))).outcome == "ok":
            for operation in plan:
                report = _timed(
                    _operation_name(operation), partial(_dispatch, connector, operation)
                )
                if record(report).outcome != "ok":
                    break
    finally:
        record(_timed("revoke", lambda: connector.revoke(token)))
    return LifecycleReport(type(connector).__name__, tuple(steps))
