"""Pushing collected signals to an intent connector, in batches, with bounded concurrency.

A target named in the registry gets one governed session per worker (at most
``concurrency`` of them), so batches go out in parallel without two threads ever sharing a
connector. A session or connector handed over is one caller's: its batches go out one after
the other. Nothing is lost silently: a batch whose push fails has each of its signals
rejected with the error, and batches no worker could take (every session refused to open)
are rejected with the reason.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from integrations.base import (
    AsyncConnector,
    AsyncSession,
    AuthContext,
    Connector,
    ConnectorConfig,
    Governance,
    PushPayload,
    PushResult,
    Record,
    Registry,
    Rejection,
    Session,
    UntrustedConfig,
)

from ._collect_report import CollectedSignal, PushReport
from .signals._threads import in_daemon_thread

__all__ = ["PushTarget", "push_signals"]

PushTarget = str | Session | AsyncSession | Connector[Any] | AsyncConnector[Any]
"""Where collected signals go: a registry name, an open session, or a connector to open."""

PushConfig = ConnectorConfig | Mapping[str, Any] | UntrustedConfig

_Push = Callable[[PushPayload], Awaitable[PushResult]]
_NOT_TAKEN: Final = "not pushed: no session on the target could be opened"


async def push_signals(
    signals: Sequence[CollectedSignal],
    target: PushTarget,
    *,
    config: PushConfig | None,
    context: AuthContext,
    governance: Governance,
    registry: Registry,
    batch_size: int,
    concurrency: int,
) -> PushReport:
    """Push `signals` to `target` in batches of `batch_size` (see the module)."""
    records = [signal.to_record() for signal in signals]
    batches = [records[start : start + batch_size] for start in range(0, len(records), batch_size)]
    label = target if isinstance(target, str) else type(target).__name__
    if not batches:
        return PushReport(target=label, batches=0)
    opener = _Opener(target, config or {}, context, governance, registry)
    workers = min(concurrency if isinstance(target, str) else 1, len(batches))
    run = _Run(batches)
    await asyncio.gather(*(run.worker(opener) for _ in range(workers)))
    return run.report(label)


class _Opener:
    """Opens what a worker pushes through: a new session, or the one handed over."""

    def __init__(
        self,
        target: PushTarget,
        config: PushConfig,
        context: AuthContext,
        governance: Governance,
        registry: Registry,
    ) -> None:
        self._target = target
        self._config = config
        self._context = context
        self._governance = governance
        self._registry = registry

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[_Push]:
        target = self._target
        if isinstance(target, AsyncSession):
            yield target.push
        elif isinstance(target, Session):
            yield _threaded(target)
        else:
            async with self._session(target) as session:
                yield session.push

    def _session(self, target: str | Connector[Any] | AsyncConnector[Any]) -> AsyncSession:
        options: dict[str, Any] = {
            "config": self._config,
            "context": self._context,
            "governance": self._governance,
        }
        if isinstance(target, str):
            return self._registry.open_async(target, **options)
        return AsyncSession(target, **options)


def _threaded(session: Session) -> _Push:
    async def push(payload: PushPayload) -> PushResult:
        return await in_daemon_thread(lambda: session.push(payload), name="intent-push")

    return push


class _Run:
    """The batches of one push, what happened to each, and why sessions would not open."""

    def __init__(self, batches: list[list[Record]]) -> None:
        self._batches = batches
        self._waiting = collections.deque(range(len(batches)))
        self._results: list[PushResult | None] = [None] * len(batches)
        self._failures: list[str | None] = [None] * len(batches)
        self._refusals: list[str] = []

    async def worker(self, opener: _Opener) -> None:
        """Take batches until none is left, through one session."""
        try:
            async with opener() as push:
                while self._waiting:
                    index = self._waiting.popleft()
                    await self._push(push, index)
        except Exception as error:  # a session that cannot open (or close): others go on
            self._refusals.append(_describe(error))

    async def _push(self, push: _Push, index: int) -> None:
        try:
            self._results[index] = await push(PushPayload(records=tuple(self._batches[index])))
        except Exception as error:  # the target's failure rejects this batch, not the others
            self._failures[index] = f"push failed: {_describe(error)}"

    def report(self, target: str) -> PushReport:
        """Accepted and rejected records, in batch order."""
        accepted: list[str] = []
        rejected: list[Rejection] = []
        for batch, result, failure in zip(
            self._batches, self._results, self._failures, strict=True
        ):
            if result is not None:
                accepted.extend(result.accepted)
                rejected.extend(result.rejected)
                continue
            reason = failure or self._not_taken()
            rejected.extend(Rejection(id=record.id, reason=reason) for record in batch)
        return PushReport(
            target=target,
            batches=len(self._batches),
            accepted=tuple(accepted),
            rejected=tuple(rejected),
        )

    def _not_taken(self) -> str:
        if not self._refusals:
            return _NOT_TAKEN
        return f"{_NOT_TAKEN} ({self._refusals[0]})"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
