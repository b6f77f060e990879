"""Streamed actions: the chunks of one action, audited as one step however the stream ends.

`session.stream(action, input)` admits the action at once (declared, input valid, policies)
and returns one of these; the connector is called when the stream is entered or first
read. The step's "finished" event is written exactly once: when the connector's iterator is
exhausted (outcome ok, with the usage the chunks reported), when it raises (outcome error)
or when the caller closes the stream early (outcome ok, detail ``closed early after N
chunks``) — the connector's generator is closed then, so it releases its response. Closing
the session closes the streams it opened. A stream is not retried: chunks already handed
out cannot be taken back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from ._exceptions import ContractError
from ._models import ActionChunk, ActionRequest

if TYPE_CHECKING:
    from ._session import _Governor

__all__ = ["ActionStream", "AsyncActionStream"]

_END: Final = object()


class _StreamStep:
    """The audit side of a stream, shared by the sync and async twins."""

    __slots__ = ("_action", "_chunks", "_governor", "_started", "_usage", "done", "started")

    def __init__(self, governor: _Governor, action: str) -> None:
        self._governor = governor
        self._action = action
        self._chunks = 0
        self._usage: dict[str, int] = {}
        self._started = 0.0
        self.started = False
        self.done = False

    def start(self) -> None:
        self.started = True
        self._started = self._governor.started(self._action, 1)

    def chunk(self, chunk: object) -> ActionChunk:
        if not isinstance(chunk, ActionChunk):
            error = ContractError(
                f"{self._governor.meta.name}.stream yielded {type(chunk).__name__}, not ActionChunk"
            )
            self.finish(error)
            raise error
        self._chunks += 1
        if chunk.usage:
            self._usage = chunk.usage
        return chunk

    def finish(self, error: BaseException | None, *, early: bool = False) -> None:
        if self.done:
            return
        self.done = True
        governor = self._governor
        governor.observe(error)
        governor.usage = self._usage
        extra = f"closed early after {self._chunks} chunks" if early else None
        governor.finished(self._action, 1, self._started, error, extra)


class ActionStream:
    """The chunks of one streamed action: an iterator and a context manager."""

    _step: _StreamStep
    _request: ActionRequest
    _open: Callable[[ActionRequest], Iterator[ActionChunk]]
    _on_close: Callable[[ActionStream], None]
    _iterator: Iterator[ActionChunk] | None

    @classmethod
    def _create(
        cls,
        governor: _Governor,
        request: ActionRequest,
        open_stream: Callable[[ActionRequest], Iterator[ActionChunk]],
        on_close: Callable[[ActionStream], None],
    ) -> ActionStream:
        """Stream `request` through `open_stream` (called on entry or first read); sessions
        make streams, callers never do."""
        self = cls.__new__(cls)
        self._step = _StreamStep(governor, request.action)
        self._request = request
        self._open = open_stream
        self._on_close = on_close
        self._iterator = None
        return self

    def _begin(self) -> Iterator[ActionChunk]:
        self._step.start()
        try:
            self._iterator = iter(self._open(self._request))
        except BaseException as error:
            self._step.finish(error)
            self._on_close(self)
            raise
        return self._iterator

    def __enter__(self) -> ActionStream:
        if not self._step.started:
            self._begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> ActionStream:
        return self

    def __next__(self) -> ActionChunk:
        if self._step.done:
            raise StopIteration
        iterator = self._iterator if self._step.started else self._begin()
        assert iterator is not None  # set by _begin, which ran when the step started
        try:
            chunk = next(iterator)
        except StopIteration:
            self._end(None)
            raise
        except BaseException as error:
            self._end(error)
            raise
        return self._step.chunk(chunk)

    def _end(self, error: BaseException | None, *, early: bool = False) -> None:
        self._step.finish(error, early=early)
        self._on_close(self)

    def close(self) -> None:
        """Stop reading: close the connector's iterator and audit the step (once)."""
        if self._step.done:
            return
        if not self._step.started:  # never entered nor read: the connector was not called
            self._step.done = True
            self._on_close(self)
            return
        close = getattr(self._iterator, "close", None)
        try:
            if close is not None:
                close()
        except BaseException as error:
            self._end(error)
            raise
        self._end(None, early=True)


def _next_or_end(iterator: Iterator[ActionChunk] | None) -> object:
    """The next chunk of a sync connector's iterator, or `_END` (read in a worker thread)."""
    assert iterator is not None  # set by _begin before any read
    return next(iterator, _END)


def _open_sync(
    open_stream: Callable[[ActionRequest], Iterator[ActionChunk]], request: ActionRequest
) -> Iterator[ActionChunk]:
    return iter(open_stream(request))


class AsyncActionStream:
    """The async twin: ``async with session.stream(...) as chunks: async for chunk in chunks``.

    A sync connector's generator is read in a worker thread, one chunk at a time.
    """

    _asynchronous: bool
    _step: _StreamStep
    _request: ActionRequest
    _open: Callable[[ActionRequest], Any]
    _on_close: Callable[[AsyncActionStream], None]
    _aiterator: AsyncIterator[ActionChunk] | None
    _iterator: Iterator[ActionChunk] | None

    @classmethod
    def _create(
        cls,
        governor: _Governor,
        request: ActionRequest,
        open_stream: Callable[[ActionRequest], Any],
        on_close: Callable[[AsyncActionStream], None],
        *,
        asynchronous: bool,
    ) -> AsyncActionStream:
        """Stream `request` through `open_stream` (called on entry or first read).

        `asynchronous` says that `open_stream` returns an async iterator; otherwise it is a
        sync connector's method, called and read in worker threads.
        """
        self = cls.__new__(cls)
        self._asynchronous = asynchronous
        self._step = _StreamStep(governor, request.action)
        self._request = request
        self._open = open_stream
        self._on_close = on_close
        self._aiterator = None
        self._iterator = None
        return self

    async def _begin(self) -> None:
        self._step.start()
        try:
            if self._asynchronous:
                self._aiterator = self._open(self._request)
            else:
                self._iterator = await asyncio.to_thread(_open_sync, self._open, self._request)
        except BaseException as error:
            self._step.finish(error)
            self._on_close(self)
            raise

    async def __aenter__(self) -> AsyncActionStream:
        if not self._step.started:
            await self._begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncActionStream:
        return self

    async def __anext__(self) -> ActionChunk:
        if self._step.done:
            raise StopAsyncIteration
        if not self._step.started:
            await self._begin()
        try:
            if self._aiterator is not None:
                chunk: object = await self._aiterator.__anext__()
            else:
                chunk = await asyncio.to_thread(_next_or_end, self._iterator)
                if chunk is _END:
                    raise StopAsyncIteration
        except StopAsyncIteration:
            self._end(None)
            raise
        except BaseException as error:
            self._end(error)
            raise
        return self._step.chunk(chunk)

    def _end(self, error: BaseException | None, *, early: bool = False) -> None:
        self._step.finish(error, early=early)
        self._on_close(self)

    async def aclose(self) -> None:
        """Stop reading: close the connector's iterator and audit the step (once)."""
        if self._step.done:
            return
        if not self._step.started:
            self._step.done = True
            self._on_close(self)
            return
        try:
            if self._aiterator is not None:
                aclose = getattr(self._aiterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            elif self._iterator is not None:
                close = getattr(self._iterator, "close", None)
                if close is not None:
                    await asyncio.to_thread(close)
        except BaseException as error:
            self._end(error)
            raise
        self._end(None, early=True)
