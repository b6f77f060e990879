"""The connector contract: the protocol platform code types against, and the base class authors use.

A connector talks to one external system through six operations: `auth(context)`,
`connect(config)`, `fetch(query)`, `push(payload)`, `sync(state)` and `revoke(token)`. The
three data operations are optional; a connector declares which ones it offers in
`capabilities`, and the others raise `NotSupported`.

A seventh, optional operation runs *named actions* (``model_invoke``, ``tool_call`` ...):
`invoke(request)` answers one `ActionResult`, `stream(request)` yields `ActionChunk`s. A
connector lists the actions it implements in `actions`; the protocols for such connectors
are `ActionConnector` and `AsyncActionConnector`, so that every connector written before
actions still satisfies `Connector` unchanged.
"""

from __future__ import annotations

import abc
import inspect
import re
from collections.abc import AsyncIterator, Iterator
from enum import StrEnum
from typing import Any, ClassVar, Final, Generic, NoReturn, Protocol, TypeVar, runtime_checkable

from ._exceptions import ContractError, NotSupported
from ._models import (
    ActionChunk,
    ActionRequest,
    ActionResult,
    AuthContext,
    AuthToken,
    Connection,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    PushPayload,
    PushResult,
    RevokeResult,
    SyncResult,
    SyncState,
)

__all__ = [
    "ACTION_NAME_PATTERN",
    "LIFECYCLE_METHODS",
    "OPERATION_METHODS",
    "RESERVED_ACTION_NAMES",
    "ActionConnector",
    "AsyncActionConnector",
    "AsyncBaseConnector",
    "AsyncConnector",
    "BaseConnector",
    "Capability",
    "Connector",
    "check_connector_class",
    "contract_problems",
    "is_async_connector",
]

ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)
ConfigT_contra = TypeVar("ConfigT_contra", bound=ConnectorConfig, contravariant=True)


class Capability(StrEnum):
    """A data operation a connector may offer."""

    FETCH = "fetch"
    PUSH = "push"
    SYNC = "sync"


LIFECYCLE_METHODS: tuple[str, ...] = ("auth", "connect", "revoke")
"""Methods every connector implements."""

OPERATION_METHODS: tuple[str, ...] = tuple(capability.value for capability in Capability)
"""Methods a connector implements when it declares the matching capability."""

ACTION_NAME_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$"
"""What a named action may be called (``model_invoke``, ``tool_call`` ...)."""

RESERVED_ACTION_NAMES: Final = frozenset(
    (*LIFECYCLE_METHODS, *OPERATION_METHODS, "invoke", "stream", "circuit", "egress")
)
"""Names an action may not take: the contract's own operations and the audit's step names."""

_ACTION_NAME: Final = re.compile(ACTION_NAME_PATTERN)


def action_name_problem(name: object) -> str | None:
    """Why `name` cannot name an action, or None when it can."""
    if not isinstance(name, str) or not _ACTION_NAME.match(name):
        return f"{name!r} is not an action name (letters, digits, _ . -; at most 64)"
    if name in RESERVED_ACTION_NAMES:
        return f"{name!r} is reserved and cannot name an action"
    return None


@runtime_checkable
class Connector(Protocol[ConfigT_contra]):
    """What platform code may rely on from any connector, whatever system it talks to."""

    capabilities: ClassVar[frozenset[Capability]]
    config_model: ClassVar[type[ConnectorConfig]]

    def auth(self, context: AuthContext) -> AuthToken:
        """Authenticate for the tenant and actor in `context`; return the token to use."""
        ...

    def connect(self, config: ConfigT_contra) -> Connection:
        """Open the connection described by `config`."""
        ...

    def fetch(self, query: FetchQuery) -> FetchResult:
        """Return one page of records matching `query`."""
        ...

    def push(self, payload: PushPayload) -> PushResult:
        """Write the records of `payload`; report accepted and rejected records."""
        ...

    def sync(self, state: SyncState) -> SyncResult:
        """Return every change since `state`, with the state to resume from."""
        ...

    def revoke(self, token: AuthToken) -> RevokeResult:
        """Revoke `token` and release the connection."""
        ...


class BaseConnector(abc.ABC, Generic[ConfigT]):
    """Base class for connector authors.

    Subclasses set `capabilities` and `config_model`, implement `auth`, `connect` and
    `revoke`, and implement the data operations they declare. Undeclared operations raise
    `NotSupported` without reaching the external system.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig

    @abc.abstractmethod
    def auth(self, context: AuthContext) -> AuthToken:
        """Authenticate for the tenant and actor in `context`; return the token to use."""

    @abc.abstractmethod
    def connect(self, config: ConfigT) -> Connection:
        """Open the connection described by `config`."""

    def fetch(self, query: FetchQuery) -> FetchResult:
        """Return one page of records matching `query`."""
        _not_supported(self, Capability.FETCH)

    def push(self, payload: PushPayload) -> PushResult:
        """Write the records of `payload`; report accepted and rejected records."""
        _not_supported(self, Capability.PUSH)

    def sync(self, state: SyncState) -> SyncResult:
        """Return every change since `state`, with the state to resume from."""
        _not_supported(self, Capability.SYNC)

    @abc.abstractmethod
    def revoke(self, token: AuthToken) -> RevokeResult:
        """Revoke `token` and release the connection."""

    def invoke(self, request: ActionRequest) -> ActionResult:
        """Run the named action `request.action` and return its answer."""
        _action_not_supported(self, request)

    def stream(self, request: ActionRequest) -> Iterator[ActionChunk]:
        """Run the named action and yield its answer piece by piece.

        Closing the iterator early must release the underlying response.
        """
        _action_not_supported(self, request)


@runtime_checkable
class ActionConnector(Connector[ConfigT_contra], Protocol[ConfigT_contra]):
    """A connector that also runs named actions (`actions` lists them)."""

    actions: ClassVar[frozenset[str]]

    def invoke(self, request: ActionRequest) -> ActionResult:
        """Run the named action `request.action` and return its answer."""
        ...

    def stream(self, request: ActionRequest) -> Iterator[ActionChunk]:
        """Run the named action and yield its answer piece by piece."""
        ...


@runtime_checkable
class AsyncConnector(Protocol[ConfigT_contra]):
    """The async twin of `Connector`: the same operations and models, as coroutines."""

    capabilities: ClassVar[frozenset[Capability]]
    config_model: ClassVar[type[ConnectorConfig]]

    async def auth(self, context: AuthContext) -> AuthToken:
        """Authenticate for the tenant and actor in `context`; return the token to use."""
        ...

    async def connect(self, config: ConfigT_contra) -> Connection:
        """Open the connection described by `config`."""
        ...

    async def fetch(self, query: FetchQuery) -> FetchResult:
        """Return one page of records matching `query`."""
        ...

    async def push(self, payload: PushPayload) -> PushResult:
        """Write the records of `payload`; report accepted and rejected records."""
        ...

    async def sync(self, state: SyncState) -> SyncResult:
        """Return every change since `state`, with the state to resume from."""
        ...

    async def revoke(self, token: AuthToken) -> RevokeResult:
        """Revoke `token` and release the connection."""
        ...


class AsyncBaseConnector(abc.ABC, Generic[ConfigT]):
    """Base class for async connector authors; the async twin of `BaseConnector`."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig

    @abc.abstractmethod
    async def auth(self, context: AuthContext) -> AuthToken:
        """Authenticate for the tenant and actor in `context`; return the token to use."""

    @abc.abstractmethod
    async def connect(self, config: ConfigT) -> Connection:
        """Open the connection described by `config`."""

    async def fetch(self, query: FetchQuery) -> FetchResult:
        """Return one page of records matching `query`."""
        _not_supported(self, Capability.FETCH)

    async def push(self, payload: PushPayload) -> PushResult:
        """Write the records of `payload`; report accepted and rejected records."""
        _not_supported(self, Capability.PUSH)

    async def sync(self, state: SyncState) -> SyncResult:
        """Return every change since `state`, with the state to resume from."""
        _not_supported(self, Capability.SYNC)

    @abc.abstractmethod
    async def revoke(self, token: AuthToken) -> RevokeResult:
        """Revoke `token` and release the connection."""

    async def invoke(self, request: ActionRequest) -> ActionResult:
        """Run the named action `request.action` and return its answer."""
        _action_not_supported(self, request)

    def stream(self, request: ActionRequest) -> AsyncIterator[ActionChunk]:
        """Run the named action and yield its answer piece by piece (an async generator).

        Closing the iterator early (``aclose``) must release the underlying response.
        """
        _action_not_supported(self, request)


@runtime_checkable
class AsyncActionConnector(AsyncConnector[ConfigT_contra], Protocol[ConfigT_contra]):
    """The async twin of `ActionConnector`."""

    actions: ClassVar[frozenset[str]]

    async def invoke(self, request: ActionRequest) -> ActionResult:
        """Run the named action `request.action` and return its answer."""
        ...

    def stream(self, request: ActionRequest) -> AsyncIterator[ActionChunk]:
        """Run the named action and yield its answer piece by piece."""
        ...


def _not_supported(connector: object, capability: Capability) -> NoReturn:
    raise NotSupported(f"{type(connector).__name__} does not support {capability.value}")


def _action_not_supported(connector: object, request: ActionRequest) -> NoReturn:
    raise NotSupported(f"{type(connector).__name__} does not support action {request.action}")


def is_async_connector(cls: object) -> bool:
    """Whether `cls` implements the contract with coroutines (the async twin)."""
    return inspect.iscoroutinefunction(getattr(cls, "auth", None))


_DEFAULT_OPERATION_OWNERS: list[type[Any]] = [BaseConnector, AsyncBaseConnector]
"""Base classes whose operation methods only raise `NotSupported`."""


def _signature_problem(cls: type[Any], method_name: str, *, coroutine: bool) -> str | None:
    """Why `cls.method_name` does not fit the contract, or None when it does."""
    method = inspect.getattr_static(cls, method_name, None)
    if method is None:
        return f"missing method {method_name}()"
    if isinstance(method, (staticmethod, classmethod)) or not callable(method):
        return f"{method_name} is not a plain method"
    if coroutine != inspect.iscoroutinefunction(method):
        kind = "an async" if coroutine else "a plain (non-async)"
        return f"{method_name}() must be {kind} method"
    try:
        parameters = list(inspect.signature(method).parameters.values())[1:]
    except (TypeError, ValueError):
        return f"{method_name}() has no inspectable signature"
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required_extra = [
        p
        for p in parameters[1:]
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if not positional or required_extra:
        return f"{method_name}() must take exactly one argument besides self"
    return None


def contract_problems(cls: object, *, coroutine: bool | None = None) -> list[str]:
    """Every way `cls` fails the connector contract (an empty list when it fits).

    The check looks at method names and signatures and at the declared capabilities, the
    way pluggy validates a hook implementation when it is registered rather than called.
    `coroutine` says which twin to check against; by default it follows `cls.auth`.
    """
    if not isinstance(cls, type):
        return [f"{cls!r} is not a class"]
    if coroutine is None:
        coroutine = is_async_connector(cls)
    problems: list[str] = []
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        problems.append(f"abstract methods not implemented: {missing}")
    capabilities = getattr(cls, "capabilities", None)
    if not isinstance(capabilities, frozenset) or not all(
        isinstance(c, Capability) for c in capabilities
    ):
        problems.append("capabilities must be a frozenset of Capability")
        capabilities = frozenset()
    config_model = getattr(cls, "config_model", None)
    if not (isinstance(config_model, type) and issubclass(config_model, ConnectorConfig)):
        problems.append("config_model must be a ConnectorConfig subclass")
    required = LIFECYCLE_METHODS + tuple(c.value for c in sorted(capabilities))
    for name in required:
        problem = _signature_problem(cls, name, coroutine=coroutine)
        if problem:
            problems.append(problem)
    problems.extend(
        f"declares {capability.value} but does not implement {capability.value}()"
        for capability in sorted(capabilities)
        if _inherits_default(cls, capability.value)
    )
    problems.extend(_action_problems(cls, coroutine=coroutine))
    return problems


def _action_problems(cls: type[Any], *, coroutine: bool) -> list[str]:
    """How `cls` fails the named-action part of the contract (none when it declares none)."""
    actions: object = getattr(cls, "actions", frozenset())
    if not isinstance(actions, frozenset) or not all(isinstance(a, str) for a in actions):
        return ["actions must be a frozenset of str"]
    problems = [problem for name in sorted(actions) if (problem := action_name_problem(name))]
    if not actions:
        return problems
    if _inherits_default(cls, "invoke"):
        problems.append("declares actions but does not implement invoke()")
    else:
        problem = _signature_problem(cls, "invoke", coroutine=coroutine)
        if problem:
            problems.append(problem)
    if not _inherits_default(cls, "stream"):
        problem = _signature_problem(cls, "stream", coroutine=False)
        if problem:
            problems.append(problem.replace("a plain (non-async)", "a generator (not a coroutine)"))
        elif not coroutine and inspect.isasyncgenfunction(inspect.getattr_static(cls, "stream")):
            problems.append("stream() of a sync connector must be a plain generator")
        elif coroutine and inspect.isgeneratorfunction(inspect.getattr_static(cls, "stream")):
            problems.append("stream() of an async connector must be an async generator")
    return problems


def _inherits_default(cls: type[Any], method_name: str) -> bool:
    """Whether `cls` still has the base class's `NotSupported` body for `method_name`."""
    defaults = [
        inspect.getattr_static(base, method_name)
        for base in _DEFAULT_OPERATION_OWNERS
        if issubclass(cls, base)
    ]
    return inspect.getattr_static(cls, method_name, None) in defaults


def check_connector_class(cls: object, *, coroutine: bool | None = None) -> None:
    """Raise `ContractError` listing every problem when `cls` does not fit the contract."""
    problems = contract_problems(cls, coroutine=coroutine)
    if problems:
        name = getattr(cls, "__qualname__", repr(cls))
        raise ContractError(
            f"{name} does not implement the connector contract: " + "; ".join(problems)
        )
