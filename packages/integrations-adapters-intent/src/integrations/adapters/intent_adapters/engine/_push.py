"""Signals injected one request each, a bounded number at a time, with an honest account.

The engine has no batch endpoint, so a push is one ``POST /inject-intent`` per signal. Sent one
after another, a push waits for every round trip in turn; `inject_all` keeps up to
`concurrency` requests in flight on threads that share the one pooled HTTP client, and its
account is the same as a sequential push would give:

- a signal the engine refuses (`InvalidRequest`, its 422) is rejected alone, with the
  engine's reason, and the others go on;
- any other failure stops the push: no new request starts once one failed (requests already
  in flight finish). When nothing was injected, the first failure (in payload order) is
  raised, so the caller may push again as a whole; otherwise the injected signals are
  accepted and the failed and unsent ones rejected with the reason, so nothing is lost
  silently. A request that timed out may still have been stored by the engine.

Accepted ids are the engine's ids, in the payload's order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from integrations.base import IntegrationsError, InvalidRequest, JsonObject, Rejection

__all__ = ["Outgoing", "inject_all"]

_THREAD_PREFIX: Final = "intent-engine-push"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A signal ready to send, with the id of the record it came from."""

    record_id: str
    body: JsonObject


Inject = Callable[[JsonObject], str]
"""Sends one signal and returns the id the engine gave it (`IntentEngineApi.inject`)."""


class _Run:
    """The state of one push: what is sent next, each signal's outcome, and the stop flag."""

    def __init__(self, inject: Inject, signals: Sequence[Outgoing]) -> None:
        self.inject = inject
        self.signals = signals
        self.outcomes: list[str | Exception | None] = [None] * len(signals)  # None: not sent
        self._next = 0
        self._lock = threading.Lock()
        self._stopped = False

    def work(self) -> None:
        """Send signals until none is left or the push stopped (each signal taken once)."""
        for _ in range(len(self.signals)):
            index = self._take()
            if index is None:
                return
            self.outcomes[index] = self._send(self.signals[index])

    def _take(self) -> int | None:
        with self._lock:
            if self._stopped or self._next >= len(self.signals):
                return None
            self._next += 1
            return self._next - 1

    def _send(self, signal: Outgoing) -> str | Exception:
        try:
            return self.inject(signal.body)
        except InvalidRequest as refused:
            return refused
        except Exception as failure:
            with self._lock:
                self._stopped = True
            return failure


def inject_all(
    inject: Inject, signals: Sequence[Outgoing], *, concurrency: int
) -> tuple[list[str], list[Rejection]]:
    """Send `signals` with at most `concurrency` in flight: the engine's ids and the rejections."""
    run = _Run(inject, signals)
    workers = max(1, min(concurrency, len(signals)))
    if workers == 1:
        run.work()
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=_THREAD_PREFIX) as pool:
            for _ in range(workers):
                pool.submit(run.work)
    return _tally(signals, run.outcomes)


def _tally(
    signals: Sequence[Outgoing], outcomes: Sequence[str | Exception | None]
) -> tuple[list[str], list[Rejection]]:
    accepted = [outcome for outcome in outcomes if isinstance(outcome, str)]
    failures = [
        (signal, outcome)
        for signal, outcome in zip(signals, outcomes, strict=True)
        if isinstance(outcome, Exception) and not isinstance(outcome, InvalidRequest)
    ]
    for _, failure in failures:
        if not isinstance(failure, IntegrationsError):
            raise failure  # a defect, not the engine's answer: never reported as a rejection
    if failures and not accepted:
        raise failures[0][1]
    first = failures[0][0].record_id if failures else ""
    rejected = [
        rejection
        for signal, outcome in zip(signals, outcomes, strict=True)
        if (rejection := _rejection(signal, outcome, first)) is not None
    ]
    return accepted, rejected


def _rejection(signal: Outgoing, outcome: str | Exception | None, first: str) -> Rejection | None:
    if isinstance(outcome, str):
        return None
    if outcome is None:
        return Rejection(id=signal.record_id, reason=f"not sent: the injection of {first!r} failed")
    if isinstance(outcome, InvalidRequest):
        return Rejection(id=signal.record_id, reason=str(outcome))
    kind = type(outcome).__name__
    return Rejection(
        id=signal.record_id, reason=f"injection failed ({kind}: {outcome}); push it again"
    )
