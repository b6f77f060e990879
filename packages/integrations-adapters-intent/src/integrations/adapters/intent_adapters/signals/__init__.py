"""``intent.signals``: a signal source as a fetch-only connector.

A *signal source* is anything with a ``fetch_signals()`` method that answers a list of
signals, synchronously (`SignalSource`, which every legacy ``SignalAdapter`` subclass is) or
as a coroutine (`AsyncSignalSource`). This connector puts one behind the contract, so that
reading it is a governed session like any other (authorised by the policies, audited,
retried, under the circuit breaker).

**Which source.** The registry builds `SignalSourceConnector` with no source; its config
names the class: ``{"source": "package.module:Class", "options": {...}}``. The module must be
admitted by the registry's module allowlist (`integrations.base.registry.allows_module`:
the ``integrations.`` namespace plus the prefixes in ``INTEGRATIONS_ALLOWED_MODULES``). That is
checked when the config is validated, before any import and before the connector is called,
and a refusal is a `ConfigError` naming the ``source`` field: which code a config may run is
part of what makes a config valid in a deployment, and a config that fails it never reaches
the connector (nothing is imported, nothing has to be revoked). ``options`` are the class's
keyword arguments (none: ``Class()``); a class that cannot be imported or built from them
is a `ConfigError` too, raised when the session connects. Code that holds a source object
builds the connector with it instead, ``SignalSourceConnector(source)``, and gives a config
without ``source``; that is how the collector runs the sources it is handed. Legacy adapters
live in ``intent_adapters.*``, outside the default allowlist: name them in configs only after
adding that prefix, or hand the objects to the collector.

**What a fetch returns.** The source's valid signals as records, in the source's order:
``id`` is `signal_id` (a hash of the signal's canonical JSON: the same signal has the same id
wherever it is read, and exact duplicates collapse into the first), ``data`` the signal's
JSON, ``updated_at`` its ``created_at``. A signal without ``created_at`` is dated by the fetch
that reads it, so its id changes from one fetch to the next: sources that want stable ids
date their signals. Invalid signals are left out: the connector logs how many
(``integrations.intent.signals``) and keeps the details of its latest read in
`SignalSourceConnector.answer` (positions and reasons), which the collector reports. An
answer that is not a list of signals raises `InvalidSourceAnswer` (an `InvalidRequest`);
anything else the source raises outside the library's errors becomes a `ConnectorError`
naming the source.

**Filters and pages.** ``topic`` (case-insensitive) and ``source`` (exact) filter; pages
follow the source's order with a limit (at most ``max_page_size``) and a cursor. A fetch
without a cursor asks the source; the pages after it come from that same answer while the
connector keeps it, so they neither repeat nor skip a signal even if the source would answer
differently now. Elsewhere a cursor asks the source again and resumes after the last signal
returned (`InvalidRequest` when that signal is gone). Push and sync are not offered: a source
is read, never written, and has no change feed.

**What a source reaches.** The allowlist decides which classes a config may name; what a
named class then opens (files, network) is its own doing, unknown to the config, so the
egress policy of untrusted configs does not see it (`SignalSourceConfig.destinations` is
empty). Admit only modules whose sources are safe for whoever writes the configs.

`AsyncSignalSourceConnector` is the async twin (same config and behaviour): async sources
are awaited on the caller's loop, sync ones run in a daemon thread of their own, so that a
source that hangs never holds up the loop, a session's deadline, or the interpreter's exit.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar, Final, cast

from pydantic import Field, field_validator

from integrations.base import (
    AsyncBaseConnector,
    AuthContext,
    AuthToken,
    BaseConnector,
    Capability,
    ConfigError,
    Connection,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    JsonObject,
    LifecycleError,
    RevokeResult,
)

from ._answer import InvalidSourceAnswer, SignalRejection, SourceAnswer, signal_id
from ._core import Binding, SourceCore, asking
from ._pages import page_of
from ._source import (
    AnySignalSource,
    AsyncSignalSource,
    SignalSource,
    check_tenant_safe,
    is_async_source,
    refusal,
    split_source_path,
)
from ._threads import in_daemon_thread

__all__ = [
    "AsyncSignalSource",
    "AsyncSignalSourceConnector",
    "InvalidSourceAnswer",
    "SignalRejection",
    "SignalSource",
    "SignalSourceConfig",
    "SignalSourceConnector",
    "SourceAnswer",
    "signal_id",
]

DEFAULT_MAX_SIGNALS: Final = 10_000


class SignalSourceConfig(ConnectorConfig):
    """Which source to read (unless the connector was built with one) and how much of it."""

    source: str | None = None
    """The source class, ``"package.module:Class"``, in a module the allowlist admits."""

    options: JsonObject = Field(default_factory=dict)
    """Keyword arguments of the source class's constructor (none: ``Class()``)."""

    max_signals: int = Field(default=DEFAULT_MAX_SIGNALS, ge=1, le=1_000_000)
    """The longest answer accepted; a longer one is refused whole (`InvalidSourceAnswer`)."""

    max_page_size: int = Field(default=1000, ge=1, le=10_000)
    """The largest page a fetch returns, whatever limit it asks for."""

    @field_validator("source")
    @classmethod
    def _admitted(cls, value: str | None) -> str | None:
        """Refuse a malformed path, or a module outside the allowlist, before any import."""
        if value is None:
            return None
        module, _ = split_source_path(value)
        refused = refusal(module)
        if refused is not None:
            raise ValueError(refused)
        return value

    def admit_untrusted(self) -> None:
        """Refuse, for a tenant's config, a source class not marked ``tenant_safe = True``.

        The session calls this before the connector, so the refusal is an audited denial of
        the ``connect`` step; the class is imported (its module is allowlisted) but not built.
        """
        if self.source is not None:
            check_tenant_safe(self.source)


class SignalSourceConnector(BaseConnector[SignalSourceConfig]):
    """Fetch the signals of one source (see the module); push and sync are not offered.

    An async source is run to completion on an event loop of the fetch's own, so this
    connector must not be called from a thread running a loop: use the async twin there.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FETCH})
    config_model: ClassVar[type[ConnectorConfig]] = SignalSourceConfig

    def __init__(self, source: AnySignalSource | None = None) -> None:
        """A connector for `source`, or (without one) for the source its config names."""
        self._core = SourceCore(source)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connected={self._core.bound})"

    @property
    def answer(self) -> SourceAnswer | None:
        """How the source's latest answer was read: counts, rejections (None before a fetch)."""
        return self._core.answer

    def auth(self, context: AuthContext) -> AuthToken:
        """Open the session; the source has no accounts of its own."""
        return self._core.grant(context)

    def connect(self, config: SignalSourceConfig) -> Connection:
        """Bind the source: build the class the config names, or take the one given."""
        return self._core.bind(_checked_config(self, config))

    def fetch(self, query: FetchQuery) -> FetchResult:
        """One page of the source's valid signals (see the module for ids, filters, cursors)."""
        request, binding, snapshot = self._core.prepare(query, "fetch")
        if not request.resumes(snapshot):
            snapshot = self._core.keep(binding, _ask(binding))
        return page_of(snapshot, request)

    def revoke(self, token: AuthToken) -> RevokeResult:
        """End the session and release the source (closed when the connector built it)."""
        return self._core.release(token)


class AsyncSignalSourceConnector(AsyncBaseConnector[SignalSourceConfig]):
    """The async twin of `SignalSourceConnector`: same config, same answers.

    Async sources are awaited on the running loop; sync ones run in a daemon thread of their
    own, so cancelling a fetch (a deadline) stops the wait at once even when the source hangs.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FETCH})
    config_model: ClassVar[type[ConnectorConfig]] = SignalSourceConfig

    def __init__(self, source: AnySignalSource | None = None) -> None:
        """A connector for `source`, or (without one) for the source its config names."""
        self._core = SourceCore(source)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connected={self._core.bound})"

    @property
    def answer(self) -> SourceAnswer | None:
        """How the source's latest answer was read: counts, rejections (None before a fetch)."""
        return self._core.answer

    async def auth(self, context: AuthContext) -> AuthToken:
        """Open the session; the source has no accounts of its own."""
        return self._core.grant(context)

    async def connect(self, config: SignalSourceConfig) -> Connection:
        """Bind the source: build the class the config names, or take the one given."""
        return self._core.bind(_checked_config(self, config))

    async def fetch(self, query: FetchQuery) -> FetchResult:
        """One page of the source's valid signals (see the module for ids, filters, cursors)."""
        request, binding, snapshot = self._core.prepare(query, "fetch")
        if not request.resumes(snapshot):
            snapshot = self._core.keep(binding, await _ask_async(binding))
        return page_of(snapshot, request)

    async def revoke(self, token: AuthToken) -> RevokeResult:
        """End the session and release the source (closed when the connector built it)."""
        return self._core.release(token)


def _checked_config(connector: object, config: object) -> SignalSourceConfig:
    if not isinstance(config, SignalSourceConfig):
        raise ConfigError(
            f"{type(connector).__name__} needs a SignalSourceConfig, got {type(config).__name__}"
        )
    return config


def _ask(binding: Binding) -> object:
    """The source's answer, asked from a thread without a running loop."""
    source = binding.source
    with asking(binding):
        if not is_async_source(source):
            return source.fetch_signals()
        if _loop_running():
            raise LifecycleError(
                f"signal source {binding.label} is async and this thread runs an event loop: "
                "read it with AsyncSignalSourceConnector (an AsyncSession)"
            )
        return asyncio.run(_awaited(source))


async def _ask_async(binding: Binding) -> object:
    """The source's answer: awaited, or from a daemon thread for a sync source."""
    source = binding.source
    with asking(binding):
        if is_async_source(source):
            return await _awaited(source)
        call = cast(SignalSource, source).fetch_signals
        return await in_daemon_thread(call, name=f"signal-source:{binding.label}")


async def _awaited(source: AnySignalSource) -> object:
    answer: object = await cast(AsyncSignalSource, source).fetch_signals()
    return answer


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
