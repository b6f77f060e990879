"""Fault injection: make chosen calls of a mock connector fail, slow down, or lose their tokens.

Faults are rules over call numbers (the Nth call of an operation), not over wall-clock time,
so a test states exactly which call misbehaves and concurrent callers cannot race a rule.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from integrations.base import AuthError

from ._config import OPERATIONS, MockConfig, Operation

__all__ = ["FaultPlan", "Faults"]

ErrorSpec = BaseException | type[BaseException]
"""An exception instance (raised as is) or class (instantiated with a message per call)."""

ErrorFactory = Callable[[int], BaseException | None]
"""Builds the error for a given call number (None: the rule only delays)."""


@dataclass(frozen=True, slots=True)
class _Rule:
    """A fault over the calls numbered `first`..`last` (inclusive; open-ended when None)."""

    operation: Operation
    first: int
    last: int | None
    error: ErrorFactory | None = None
    delay: float = 0.0
    after: bool = False

    def applies(self, operation: Operation, number: int) -> bool:
        return (
            operation == self.operation
            and self.first <= number
            and (self.last is None or number <= self.last)
        )


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What the faults decided for one call: wait `delay`, then raise `before` or `after`."""

    delay: float = 0.0
    before: BaseException | None = None
    after: BaseException | None = None


class Faults:
    """The fault-injection controls of one mock connector; every method is thread-safe.

    Rules added here join the ones from the connector's config (`latency_seconds`, `faults`).
    When several rules raise on the same call, the one added first wins; delays add up.
    """

    def __init__(self, started: Callable[[Operation], int]) -> None:
        self._lock = threading.Lock()
        self._started = started
        self._rules: list[_Rule] = []
        self._config_rules: tuple[_Rule, ...] = ()
        self._latency = 0.0
        self._token_generation = 0

    def fail(
        self,
        operation: Operation,
        error: ErrorSpec,
        *,
        on_call: int | None = None,
        times: int | None = 1,
        after: bool = False,
    ) -> None:
        """Raise `error` on call number `on_call` of `operation` and the `times - 1` after it.

        `on_call` counts from the connector's creation (see `Call.number`); None means the next
        call. `times=None` fails every call from there on. With `after=True` the operation takes
        effect before the error is raised, like a response lost on the way back.
        """
        self._add(operation, on_call, times, error=_factory(operation, error), after=after)

    def fail_auth(
        self,
        error: AuthError | type[AuthError] = AuthError,
        *,
        on_call: int | None = None,
        times: int | None = 1,
    ) -> None:
        """Make `auth` raise an `AuthError`, as when the external system refuses the caller."""
        self.fail("auth", error, on_call=on_call, times=times)

    def delay(
        self,
        operation: Operation,
        seconds: float,
        *,
        on_call: int | None = None,
        times: int | None = None,
    ) -> None:
        """Add `seconds` of latency to calls of `operation` (default: every call from the next)."""
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError("seconds must be a finite number >= 0")
        self._add(operation, on_call, times, delay=float(seconds))

    def expire_tokens(self) -> None:
        """Expire every token issued so far: operations raise `AuthExpired` until `auth` runs."""
        with self._lock:
            self._token_generation += 1

    @property
    def token_generation(self) -> int:
        """Tokens issued in an older generation than this one count as expired."""
        with self._lock:
            return self._token_generation

    def clear(self) -> None:
        """Remove the rules added through this object (faults from the config stay)."""
        with self._lock:
            self._rules.clear()

    def configure(self, config: MockConfig) -> None:
        """Take the config's faults and latency, replacing those of any earlier config."""
        rules = tuple(
            _Rule(
                spec.operation,
                spec.on_call,
                None if spec.times is None else spec.on_call + spec.times - 1,
                error=spec.build_error,
                delay=spec.delay_seconds,
                after=spec.after,
            )
            for spec in config.faults
        )
        with self._lock:
            self._config_rules = rules
            self._latency = config.latency_seconds

    def plan(self, operation: Operation, number: int) -> FaultPlan:
        """Decide what happens to call `number` of `operation`."""
        with self._lock:
            rules = [
                rule
                for rule in (*self._rules, *self._config_rules)
                if rule.applies(operation, number)
            ]
            latency = self._latency
        before = _first_error((rule for rule in rules if not rule.after), number)
        after = _first_error((rule for rule in rules if rule.after), number)
        return FaultPlan(latency + sum(rule.delay for rule in rules), before, after)

    def _add(
        self,
        operation: Operation,
        on_call: int | None,
        times: int | None,
        *,
        error: ErrorFactory | None = None,
        delay: float = 0.0,
        after: bool = False,
    ) -> None:
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {OPERATIONS}")
        if on_call is not None and on_call < 1:
            raise ValueError("on_call counts from 1")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for every call)")
        first = on_call if on_call is not None else self._started(operation) + 1
        last = None if times is None else first + times - 1
        rule = _Rule(operation, first, last, error=error, delay=delay, after=after)
        with self._lock:
            self._rules.append(rule)


def _factory(operation: Operation, error: object) -> ErrorFactory:
    """Raise an instance as is; instantiate a class afresh for each call it fails."""
    if isinstance(error, BaseException):
        return lambda _number: error
    if isinstance(error, type) and issubclass(error, BaseException):
        exception_class: type[BaseException] = error
        return lambda number: exception_class(f"injected fault ({operation} call #{number})")
    raise TypeError("error must be an exception instance or an exception class")


def _first_error(rules: Iterable[_Rule], number: int) -> BaseException | None:
    """The error of the first rule that raises one, in registration order."""
    for rule in rules:
        error = None if rule.error is None else rule.error(number)
        if error is not None:
            return error
    return None
