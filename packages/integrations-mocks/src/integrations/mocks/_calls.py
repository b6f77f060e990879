"""The record of every call a mock connector received, for assertions in tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from ._config import Operation

__all__ = ["Call", "CallLog"]


@dataclass(frozen=True, slots=True)
class Call:
    """One call of a connector operation, as it happened.

    `argument` is the model object the operation received (contract methods take exactly one),
    `result` the model it returned, `error` the exception it raised. `number` counts calls of
    the same operation from 1 and is what fault injection's `on_call` refers to.
    """

    index: int
    operation: Operation
    number: int
    argument: BaseModel
    tenant: str | None
    started_at: datetime
    duration_seconds: float
    result: BaseModel | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether the call returned normally."""
        return self.error is None

    @property
    def outcome(self) -> Literal["ok", "error"]:
        """`"ok"` or `"error"`, the way an audit trail would name it."""
        return "ok" if self.error is None else "error"


class CallLog:
    """Thread-safe, append-only log of calls with per-operation numbering.

    Numbers are handed out when a call starts, so concurrent calls get distinct numbers and a
    fault registered for "the 3rd fetch" hits exactly one call.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._next_index = 0
        self._started: dict[Operation, int] = {}

    def begin(self, operation: Operation) -> tuple[int, int]:
        """Reserve the global index and the per-operation number of a call that starts now."""
        with self._lock:
            index = self._next_index
            self._next_index += 1
            number = self._started.get(operation, 0) + 1
            self._started[operation] = number
            return index, number

    def started(self, operation: Operation) -> int:
        """How many calls of `operation` have started so far (cleared calls included)."""
        with self._lock:
            return self._started.get(operation, 0)

    def add(self, call: Call) -> None:
        """Record a finished call."""
        with self._lock:
            self._calls.append(call)

    def snapshot(self) -> tuple[Call, ...]:
        """Every recorded call, in the order the calls started."""
        with self._lock:
            calls = list(self._calls)
        return tuple(sorted(calls, key=lambda call: call.index))

    def clear(self) -> None:
        """Forget the recorded calls; numbering continues so registered faults keep meaning."""
        with self._lock:
            self._calls.clear()
