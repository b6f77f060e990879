"""What the sync and async signal source connectors share: their state and every rule.

The two connectors differ only in how they ask the source (`fetch_signals` called, awaited,
or run in a thread of its own); binding the source, reading its answers, keeping the
snapshot pages come from and ending the session are written once, here.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import logging
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from integrations.base import (
    AuthContext,
    AuthToken,
    ConfigError,
    Connection,
    ConnectorError,
    FetchQuery,
    IntegrationsError,
    LifecycleError,
    RevokeResult,
    Secret,
)

from ._answer import SourceAnswer, read_answer
from ._pages import PageRequest, Snapshot, parse_page_request
from ._source import AnySignalSource, load_source

if TYPE_CHECKING:
    from . import SignalSourceConfig

__all__ = ["Binding", "SourceCore", "asking"]

logger = logging.getLogger("integrations.intent.signals")

_PROCESS_KEY: Final = secrets.token_urlsafe(18)
"""Drawn once: names below are this key and a counter, unique and not guessable, and cheap.

Drawing random bytes releases the GIL, and each release costs a wait when many threads run
(a collection's sources); a counter does not.
"""
_NUMBERS: Final = itertools.count(1)


def _unique(kind: str) -> str:
    return f"{kind}-{_PROCESS_KEY}-{next(_NUMBERS)}"


@dataclass(frozen=True, slots=True)
class Binding:
    """The source a connection reads, what it is called, and the config it was opened with."""

    source: AnySignalSource
    label: str
    config: SignalSourceConfig
    owned: bool
    """Built from the config (closed at revoke), rather than handed to the connector."""


@dataclass(frozen=True, slots=True)
class _Grant:
    token: AuthToken


class SourceCore:
    """State of one connector: its grant, the source it reads and the latest answer."""

    def __init__(self, source: AnySignalSource | None) -> None:
        self._given = source
        self._lock = threading.Lock()
        self._grant: _Grant | None = None
        self._binding: Binding | None = None
        self._snapshot: Snapshot | None = None
        self._answer: SourceAnswer | None = None

    @property
    def answer(self) -> SourceAnswer | None:
        """How the latest answer of the source was read (None before the first fetch)."""
        with self._lock:
            return self._answer

    @property
    def bound(self) -> bool:
        """Whether a source is connected."""
        return self._binding is not None

    def grant(self, context: AuthContext) -> AuthToken:
        """A session token; a source has no accounts, so any context the policies let in."""
        token = AuthToken(value=Secret(_unique("session")), scopes=context.scopes)
        with self._lock:
            self._grant = _Grant(token)
        return token

    def bind(self, config: SignalSourceConfig) -> Connection:
        """Connect the source: the one given to the connector, or the one the config names."""
        binding = self._binding_for(config)
        with self._lock:
            previous, self._binding, self._snapshot = self._binding, binding, None
        if previous is not None:
            _release(previous)
        return Connection(connection_id=_unique("signal-source"), info={"source": binding.label})

    def _binding_for(self, config: SignalSourceConfig) -> Binding:
        if self._given is not None:
            if config.source is not None or config.options:
                raise ConfigError(
                    "invalid SignalSourceConfig: source: this connector reads the source it was "
                    "built with; the config may not name another or give it options",
                    (("source", "must be empty for a connector built with a source"),),
                )
            return Binding(self._given, _label_of(self._given), config, owned=False)
        if config.source is None:
            raise ConfigError(
                "invalid SignalSourceConfig: source: name the source class as "
                "'package.module:Class'",
                (("source", "required"),),
            )
        source = load_source(config.source, config.options, for_tenant=config.egress.restricted)
        return Binding(source, config.source, config, owned=True)

    def prepare(self, query: FetchQuery, operation: str) -> tuple[PageRequest, Binding, Snapshot]:
        """The fetch understood, the connected source, and the snapshot it may resume.

        The snapshot is empty (token "") when there is none to resume.
        """
        with self._lock:
            grant, binding, snapshot = self._grant, self._binding, self._snapshot
        if grant is None:
            raise LifecycleError(f"signal source connector: {operation}() needs auth() first")
        if binding is None:
            raise LifecycleError(f"signal source connector: {operation}() needs connect() first")
        request = parse_page_request(query, max_page_size=binding.config.max_page_size)
        return request, binding, snapshot or Snapshot("", ())

    def keep(self, binding: Binding, answer: object) -> Snapshot:
        """Read the source's `answer` and keep it as the snapshot the next pages come from."""
        read = read_answer(answer, max_signals=binding.config.max_signals, now=datetime.now(UTC))
        if read.rejections:
            logger.warning(
                "signal source %s: %d of %d signals rejected",
                binding.label,
                len(read.rejections),
                read.received,
                extra={"source": binding.label, "rejected": len(read.rejections)},
            )
        snapshot = Snapshot(_unique("answer"), read.records)
        with self._lock:
            if self._binding is binding:  # a revoke or a new connect meanwhile wins
                self._snapshot, self._answer = snapshot, read
        return snapshot

    def release(self, token: AuthToken) -> RevokeResult:
        """End the session of `token`: forget the source and its answers."""
        with self._lock:
            grant = self._grant
            if grant is None or grant.token.value.reveal() != token.value.reveal():
                return RevokeResult(revoked=False, detail="token was not issued by this connector")
            binding, self._binding, self._grant, self._snapshot = self._binding, None, None, None
        if binding is not None:
            _release(binding)
        return RevokeResult(revoked=True, detail="session ended; the source is released")


@contextlib.contextmanager
def asking(binding: Binding) -> Iterator[None]:
    """Map what a source raises into the library's tree (its own errors pass unchanged)."""
    try:
        yield
    except IntegrationsError:
        raise
    except Exception as error:  # a source is other people's code: it may raise anything
        raise ConnectorError(
            f"signal source {binding.label} raised {type(error).__name__}: {error}"
        ) from error


def _label_of(source: AnySignalSource) -> str:
    cls = type(source)
    return f"{cls.__module__}:{cls.__qualname__}"


def _release(binding: Binding) -> None:
    """Close a source the connector built, when it has a plain ``close()``; failures are logged.

    A coroutine ``close`` is not awaited: revoke may run where no loop is (a sync session).
    """
    close = getattr(binding.source, "close", None)
    if not binding.owned or not callable(close) or inspect.iscoroutinefunction(close):
        return
    try:
        close()
    except Exception as error:  # closing is best effort: the session ends all the same
        logger.warning("signal source %s: close() raised %s", binding.label, type(error).__name__)
