"""Blocking calls awaited from an event loop without ever holding the loop up.

`asyncio.to_thread` runs a call in the loop's default executor, whose threads the loop (and
the interpreter, at exit) waits for: one signal source that hangs would keep
``asyncio.run`` from returning. A source's call instead runs in a daemon thread of its own;
the awaiting side can stop waiting (a deadline cancels it) and the loop ends at once, the
thread's late result being dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable
from typing import TypeVar

__all__ = ["in_daemon_thread"]

T = TypeVar("T")
U = TypeVar("U")


async def in_daemon_thread(call: Callable[[], T], *, name: str) -> T:
    """Run `call` in a new daemon thread named `name` and await its result or error.

    Cancelling the await stops the waiting only: Python cannot stop a thread, so `call` runs
    to its end, and what it returns then is dropped. The call sees the caller's context
    variables, as with `asyncio.to_thread`.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def succeed(result: T) -> None:
        if not future.done():  # else the awaiting side stopped waiting
            future.set_result(result)

    def fail(error: BaseException) -> None:
        if not future.done():
            future.set_exception(error)

    def run() -> None:
        try:
            result = context.run(call)
        except BaseException as error:  # handed to the awaiting side, whatever it is
            _deliver(loop, fail, error)
            return
        _deliver(loop, succeed, result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future


def _deliver(loop: asyncio.AbstractEventLoop, settle: Callable[[U], None], value: U) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
        loop.call_soon_threadsafe(settle, value)
