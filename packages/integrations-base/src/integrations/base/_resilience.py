"""Retries and the circuit breaker: how a session rides out a backend that fails for a while.

`RetryPolicy` says how often and how patiently an operation is tried again; `BreakerPolicy`
when a connector that keeps failing is left alone for a while. Both are data, set in
`Governance` for every connector or per connector name, and retries also per call.

The decisions are made here, once, for the sync and the async session alike: `RetryRun`
holds the stop, wait and retry rules tenacity drives an operation's retries with, and
`CircuitBreaker` is the state machine shared by the sessions on one connector instance.
The sessions only call the connector and sleep.
"""

from __future__ import annotations

import math
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict, Field

from ._exceptions import AuthExpired, CircuitOpen, ConnectionFailed, ConnectorError, TransientError

__all__ = [
    "NO_RETRY",
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitState",
    "RetryPolicy",
    "RetryRun",
    "breaker_for",
    "counts_against_circuit",
]

if TYPE_CHECKING:
    from tenacity import AsyncRetrying, RetryCallState, Retrying


class _Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RetryPolicy(_Policy):
    """How a failed operation is tried again: attempts, backoff, Retry-After and a deadline.

    Only `TransientError`s are retried (`RateLimited` included, `CircuitOpen` not), and a
    push only when it is idempotent. The wait after failed attempt *n* is the server's
    `retry_after` when it gave one (and `honour_retry_after` is on), else the backoff
    ``min(max_backoff, initial_backoff * backoff_multiplier ** (n - 1))`` shortened by a
    random fraction of at most `jitter`, so that clients failing together do not retry
    together. Retries stop after `max_attempts` attempts, when the server asks for a wait
    longer than `max_retry_after`, and when another wait and attempt would end past
    `deadline` (seconds from the start of the first attempt).
    """

    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts in all, the first included; 1: no retry."
    )
    initial_backoff: float = Field(
        default=0.2, ge=0, le=3600, allow_inf_nan=False, description="Seconds before attempt 2."
    )
    backoff_multiplier: float = Field(
        default=2.0, ge=1, le=100, allow_inf_nan=False, description="Growth of each next wait."
    )
    max_backoff: float = Field(
        default=10.0, ge=0, le=3600, allow_inf_nan=False, description="Longest backoff, seconds."
    )
    jitter: float = Field(
        default=0.5,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Largest random fraction taken off a backoff (0: none, 1: full jitter).",
    )
    deadline: float | None = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds an operation may take, all attempts and waits included.",
    )
    honour_retry_after: bool = Field(
        default=True, description="Wait what the server asked for (`retry_after`)."
    )
    max_retry_after: float = Field(
        default=60.0,
        ge=0,
        allow_inf_nan=False,
        description="A longer Retry-After is not waited for: the error is raised.",
    )

    def backoff(self, attempt: int) -> float:
        """The longest wait after failed attempt `attempt` (from 1), before jitter."""
        return min(
            self.max_backoff, self.initial_backoff * self.backoff_multiplier ** (attempt - 1)
        )


NO_RETRY: Final = RetryPolicy(max_attempts=1)
"""A policy that never retries (re-authentication after an expired token still happens)."""


class BreakerPolicy(_Policy):
    """When a connector that keeps failing is left alone, and for how long."""

    failure_threshold: int = Field(
        default=5, ge=1, description="Consecutive backend failures that open the circuit."
    )
    cool_down: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds the circuit stays open before one trial call is let through.",
    )


class CircuitState(StrEnum):
    """The state of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


Transition = tuple[CircuitState, CircuitState]
"""A change of state, old then new; audited as ``"<old>-><new>"``."""


def counts_against_circuit(error: BaseException) -> bool:
    """Whether `error` says the backend is unhealthy: a transient error or a lost connection.

    Errors that show the backend answered (auth, not found, invalid request) do not count;
    a `CircuitOpen` never reached the backend.
    """
    return isinstance(error, (TransientError, ConnectionFailed)) and not isinstance(
        error, CircuitOpen
    )


class CircuitBreaker:
    """Closed → open after N consecutive backend failures → half-open after a cool-down.

    Half-open lets one trial call through: its success closes the circuit, its failure opens
    it again; other calls fail fast meanwhile. A trial that never reports back (its session
    failed before calling the connector, say) is given up after another cool-down, so the
    circuit cannot stay stuck half-open. Every method is thread-safe. `clean` is true
    while the breaker is closed with no failure counted: the session's hot path reads only
    that attribute, and calls into the breaker only when it is false.
    """

    __slots__ = (
        "_clock",
        "_lock",
        "_opened_at",
        "_trial_at",
        "clean",
        "failures",
        "policy",
        "state",
    )

    def __init__(
        self, policy: BreakerPolicy | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """A closed breaker; with `policy` None it never opens."""
        self.policy = policy
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.clean = True
        self._trial_at: float | None = None  # when the running trial call was let through
        self._opened_at = 0.0
        self._clock = clock
        self._lock = threading.Lock()

    def admit(self) -> tuple[bool, Transition | None, float | None]:
        """Whether a call may go through now, the transition that caused, and the wait left.

        The wait left is the rest of the cool-down when the circuit is open (None otherwise).
        """
        policy = self.policy
        if policy is None:
            return True, None, None
        with self._lock:
            if self.state is CircuitState.CLOSED:
                return True, None, None
            if self.state is CircuitState.OPEN:
                now = self._clock()
                remaining = self._opened_at + policy.cool_down - now
                if remaining > 0:
                    return False, None, remaining
                self._trial_at = now
                return True, self._move(CircuitState.HALF_OPEN), None
            now = self._clock()
            if self._trial_at is not None and now - self._trial_at < policy.cool_down:
                return False, None, None  # half-open, and the one trial call is still running
            self._trial_at = now
            return True, None, None

    def record(self, error: BaseException | None) -> Transition | None:
        """Count how a call that went through ended; return the transition it caused."""
        if self.policy is None:
            return None
        with self._lock:
            if self.state is CircuitState.HALF_OPEN:
                self._trial_at = None
            if error is not None and counts_against_circuit(error):
                transition = self._failed(self.policy)
            elif error is None or isinstance(error, ConnectorError):
                transition = self._succeeded()  # the backend answered
            else:
                transition = None  # a bug or a cancellation says nothing about the backend
            self.clean = self.state is CircuitState.CLOSED and self.failures == 0
            return transition

    def _failed(self, policy: BreakerPolicy) -> Transition | None:
        self.failures += 1
        if self.state is CircuitState.HALF_OPEN or (
            self.state is CircuitState.CLOSED and self.failures >= policy.failure_threshold
        ):
            self._opened_at = self._clock()
            return self._move(CircuitState.OPEN)
        return None

    def _succeeded(self) -> Transition | None:
        self.failures = 0
        if self.state is CircuitState.HALF_OPEN:
            return self._move(CircuitState.CLOSED)
        return None

    def _move(self, new: CircuitState) -> Transition:
        old, self.state = self.state, new
        self.clean = False
        return old, new


_DISABLED: Final = CircuitBreaker(None)
_BREAKERS: weakref.WeakKeyDictionary[object, CircuitBreaker] = weakref.WeakKeyDictionary()
_BREAKERS_LOCK = threading.Lock()


def breaker_for(connector: object, policy: BreakerPolicy | None) -> CircuitBreaker:
    """The breaker of a connector instance, created with `policy` on first use.

    Every session on the same connector object shares it, so a platform holding one
    connector across many sessions protects the backend across them. It lives as long as
    the connector (a weak-key map: no callback of ours runs at collection time, when it
    could meet the lock held); a connector that cannot be weakly referenced gets a breaker
    of its own per session.
    """
    if policy is None:
        return _DISABLED
    with _BREAKERS_LOCK:
        try:
            breaker = _BREAKERS.get(connector)
        except TypeError:  # not weakly referenceable
            return CircuitBreaker(policy)
        if breaker is None:
            breaker = _BREAKERS[connector] = CircuitBreaker(policy)
        return breaker


@dataclass(frozen=True, slots=True)
class _Decision:
    """What follows a failed attempt: stop, or wait `wait` seconds and try again."""

    stop: bool
    wait: float = 0.0


_GO_AGAIN: Final = _Decision(False)
_STOP: Final = _Decision(True)


class RetryRun:
    """The retries of one operation whose first attempt failed: tenacity's three rules.

    tenacity drives the loop with `retrying()` or `async_retrying()`, asking `_retry`,
    `_stop` and `_wait` after each failed attempt. The first attempt already ran on the
    session's fast path (no tenacity there, so a call that succeeds pays nothing for
    retries); the first call of the retried function hands its outcome to tenacity by
    raising that error again (`begin`), so tenacity makes every decision from there.

    An expired token is the one non-transient error retried: once, at once, after a
    re-authentication (`reauth_due`), whatever the policy and the idempotency.
    """

    __slots__ = (
        "_breaker",
        "_clock",
        "_decisions",
        "_expired_at",
        "_idempotent",
        "_replay",
        "_started",
        "attempt",
        "attempt_started",
        "delay",
        "last_duration",
        "operation",
        "policy",
        "reauth_due",
    )

    def __init__(
        self,
        operation: str,
        policy: RetryPolicy,
        *,
        idempotent: bool,
        breaker: CircuitBreaker,
        started: float,
        first_error: BaseException,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Rules for `operation`, whose first attempt began at `started` (on `clock`)."""
        self.operation = operation
        self.policy = policy
        self._idempotent = idempotent
        self._breaker = breaker
        self._started = started
        self._clock = clock
        self._decisions: dict[int, _Decision] = {}
        self._replay: BaseException | None = first_error
        self.attempt = 1
        self.attempt_started = started
        self.last_duration = clock() - started
        self.delay = 0.0
        self.reauth_due = False
        self._expired_at: int | None = None

    def follows(self) -> bool:
        """Whether the first attempt's error leads to a retry at all."""
        error = self._replay
        assert error is not None  # before tenacity starts
        return self._worth_retrying(error, 1) and not self.decide(1, error).stop

    def retryable(self, error: BaseException, attempt: int) -> bool:
        """Whether `error`, raised by attempt `attempt`, is worth another attempt."""
        if isinstance(error, AuthExpired):  # the first expiry only, however often it is asked
            return self._expired_at is None or self._expired_at == attempt
        if not isinstance(error, TransientError) or isinstance(error, CircuitOpen):
            return False
        return self._idempotent and self._breaker.state is not CircuitState.OPEN

    def _worth_retrying(self, error: BaseException, attempt: int) -> bool:
        """`retryable`, noting on the error when an open circuit is what stops the retries."""
        if self.retryable(error, attempt):
            return True
        transient = isinstance(error, TransientError) and not isinstance(error, CircuitOpen)
        if transient and self._idempotent:  # then only the open circuit refused it
            self._give_up(error, attempt, "the circuit breaker opened")
        return False

    def decide(self, attempt: int, error: BaseException) -> _Decision:
        """Stop, or how long to wait, after failed attempt `attempt`; decided once per attempt."""
        decision = self._decisions.get(attempt)
        if decision is None:
            decision = self._decisions[attempt] = self._decide(attempt, error)
        return decision

    def _decide(self, attempt: int, error: BaseException) -> _Decision:
        if isinstance(error, AuthExpired):
            self._expired_at, self.reauth_due = attempt, True
            return _GO_AGAIN
        policy = self.policy
        if attempt >= policy.max_attempts:
            if policy.max_attempts == 1:
                return _STOP  # retries are off: nothing to explain
            return self._give_up(error, attempt, f"max_attempts is {policy.max_attempts}")
        retry_after = _retry_after(error) if policy.honour_retry_after else None
        if retry_after is not None and retry_after > policy.max_retry_after:
            return self._give_up(
                error,
                attempt,
                f"the server asked to wait {retry_after:g} s, more than "
                f"max_retry_after ({policy.max_retry_after:g} s)",
            )
        if retry_after is not None:
            wait = retry_after
        else:
            wait = policy.backoff(attempt) * (1.0 - policy.jitter * random.random())
        if policy.deadline is not None:
            # The next attempt is expected to take as long as the last one did.
            finish = self._clock() - self._started + wait + self.last_duration
            if finish > policy.deadline:
                return self._give_up(
                    error,
                    attempt,
                    f"waiting {wait:.3g} s for another attempt would overrun the "
                    f"{policy.deadline:g} s deadline",
                )
        return _Decision(False, wait)

    @staticmethod
    def _give_up(error: BaseException, attempt: int, reason: str) -> _Decision:
        tries = "1 attempt" if attempt == 1 else f"{attempt} attempts"
        error.add_note(f"not retried after {tries}: {reason}")
        return _STOP

    def begin(self) -> int:
        """Number the attempt tenacity starts now; its first call replays the first attempt."""
        replay = self._replay
        if replay is not None:
            self._replay = None
            raise replay
        self.delay = self._decisions[self.attempt].wait
        self.attempt += 1
        self.attempt_started = self._clock()
        return self.attempt

    def ended(self) -> None:
        """Note how long the attempt took: the deadline rule expects the next to take as long."""
        self.last_duration = self._clock() - self.attempt_started

    def _retry(self, state: RetryCallState) -> bool:
        outcome = state.outcome
        error = None if outcome is None else outcome.exception()
        return error is not None and self._worth_retrying(error, state.attempt_number)

    def _stop(self, state: RetryCallState) -> bool:
        return self.decide(state.attempt_number, _failure(state)).stop

    def _wait(self, state: RetryCallState) -> float:
        return self.decide(state.attempt_number, _failure(state)).wait

    def retrying(self, sleep: Callable[[float], None] = time.sleep) -> Retrying:
        """tenacity's loop for a sync session; it re-raises the last error when it stops."""
        from tenacity import Retrying  # loaded by the first retry, not by every process

        return Retrying(
            sleep=sleep,
            retry=self._retry,
            stop=self._stop,
            wait=self._wait,
            reraise=True,
        )

    def async_retrying(
        self, sleep: Callable[[float], Awaitable[Any]] | None = None
    ) -> AsyncRetrying:
        """tenacity's loop for an async session, sleeping without blocking the event loop."""
        from tenacity import AsyncRetrying

        options: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
        return AsyncRetrying(
            retry=self._retry,
            stop=self._stop,
            wait=self._wait,
            reraise=True,
            **options,
        )


def _retry_after(error: BaseException) -> float | None:
    """The error's `retry_after` as a wait: a negative one is no wait, a NaN is none given."""
    value = getattr(error, "retry_after", None)
    if value is None or math.isnan(value):
        return None
    return max(0.0, float(value))


def _failure(state: RetryCallState) -> BaseException:
    """The error of the attempt tenacity asks about (it only asks after a retryable error)."""
    outcome = state.outcome
    error = None if outcome is None else outcome.exception()
    assert error is not None  # tenacity consults stop and wait after a failed attempt only
    return error
