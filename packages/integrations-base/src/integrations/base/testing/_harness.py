"""What the certification checks stand on: blocking sessions, resource counts, config probes.

Nothing here imports pytest: these are plain functions over the contract, so the checks in
`_kit` stay short and each piece can be reasoned about on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import os
import re
import threading
import time
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Union, cast, get_args, get_origin

from integrations.base._connector import Capability
from integrations.base._models import (
    ActionChunk,
    ActionResult,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    PushPayload,
    PushResult,
    Record,
    SyncResult,
    SyncState,
)
from integrations.base._secret import Secret
from integrations.base._session import AsyncSession, Session, SessionState

__all__ = [
    "GovernedSession",
    "Resources",
    "blocking_session",
    "call_directly",
    "descriptor_directory",
    "duplicates",
    "invalid_config_candidates",
    "json_subset",
    "looks_secret",
    "operation_argument",
    "resources",
    "schema_declares_secret",
    "secret_fields",
    "settled_resources",
    "stream_all",
]


class GovernedSession(Protocol):
    """A governed session as the checks use it, whatever the connector's flavour.

    `Session` fits as it is; an `AsyncSession` is wrapped by `blocking_session`, so every
    check is written once for sync and async connectors.
    """

    @property
    def state(self) -> SessionState:
        """The lifecycle state."""
        ...

    @property
    def correlation_id(self) -> str:
        """The id shared by every audit event of the session."""
        ...

    def fetch(self, query: FetchQuery) -> FetchResult:
        """Fetch one page through the connector."""
        ...

    def push(self, payload: PushPayload) -> PushResult:
        """Push records through the connector."""
        ...

    def sync(self, state: SyncState) -> SyncResult:
        """Sync changes through the connector."""
        ...

    def invoke(self, action: str, input: dict[str, Any]) -> ActionResult:
        """Run a named action through the connector."""
        ...


class _BlockingSession:
    """An open `AsyncSession` driven from synchronous code through one event loop."""

    def __init__(self, session: AsyncSession, runner: asyncio.Runner) -> None:
        self._session = session
        self._runner = runner

    @property
    def state(self) -> SessionState:
        return self._session.state

    @property
    def correlation_id(self) -> str:
        return self._session.correlation_id

    def fetch(self, query: FetchQuery) -> FetchResult:
        return self._runner.run(self._session.fetch(query))

    def push(self, payload: PushPayload) -> PushResult:
        return self._runner.run(self._session.push(payload))

    def sync(self, state: SyncState) -> SyncResult:
        return self._runner.run(self._session.sync(state))

    def invoke(self, action: str, input: dict[str, Any]) -> ActionResult:
        return self._runner.run(self._session.invoke(action, input))

    def stream_all(self, action: str, data: dict[str, Any]) -> list[ActionChunk]:
        """Every chunk of a streamed action, read on the session's loop."""

        async def read() -> list[ActionChunk]:
            async with self._session.stream(action, data) as chunks:
                return [chunk async for chunk in chunks]

        return self._runner.run(read())


def stream_all(session: GovernedSession, action: str, data: dict[str, Any]) -> list[ActionChunk]:
    """Every chunk of streamed action `action`, whatever the session's flavour."""
    if isinstance(session, _BlockingSession):
        return session.stream_all(action, data)
    with cast(Session, session).stream(action, data) as chunks:
        return list(chunks)


@contextlib.contextmanager
def blocking_session(session: AsyncSession) -> Iterator[GovernedSession]:
    """Open `session` on a private event loop, yield it blocking, close it on every exit.

    The loop (and its default executor) is closed with the session, so the resource checks
    see what the connector keeps, not what the kit's loop kept.
    """
    with asyncio.Runner() as runner:
        runner.run(session.__aenter__())
        try:
            yield _BlockingSession(session, runner)
        except BaseException as error:
            runner.run(session.__aexit__(type(error), error, error.__traceback__))
            raise
        runner.run(session.__aexit__(None, None, None))


_ARGUMENTS: dict[Capability, FetchQuery | PushPayload | SyncState] = {
    Capability.FETCH: FetchQuery(),
    Capability.PUSH: PushPayload(records=(Record(id="certification-unsupported"),)),
    Capability.SYNC: SyncState(),
}


def operation_argument(capability: Capability) -> FetchQuery | PushPayload | SyncState:
    """A minimal valid argument for operation `capability`."""
    return _ARGUMENTS[capability]


def call_directly(connector: object, capability: Capability) -> object:
    """Call operation `capability` on a fresh connector, awaiting it when it is a coroutine."""
    method = getattr(connector, capability.value)
    argument = _ARGUMENTS[capability]
    if inspect.iscoroutinefunction(method):
        return asyncio.run(method(argument))
    return method(argument)


# -- resources ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resources:
    """Open file descriptors and live threads of this process at one moment."""

    descriptors: int
    threads: int


def descriptor_directory() -> str | None:
    """Where this platform lists the process's descriptors (Linux, then BSD/macOS), if anywhere."""
    for candidate in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(candidate):
            return candidate
    return None


def resources(directory: str) -> Resources:
    """Count descriptors and threads now, after a collection so dropped objects are freed."""
    gc.collect()
    return Resources(len(os.listdir(directory)), threading.active_count())


def settled_resources(
    directory: str, baseline: Resources, thread_tolerance: int, wait_seconds: float = 2.0
) -> Resources:
    """Count again, giving threads that are on their way out up to `wait_seconds` to end."""
    deadline = time.monotonic() + wait_seconds
    current = resources(directory)
    while current.threads > baseline.threads + thread_tolerance and time.monotonic() < deadline:
        time.sleep(0.05)
        current = resources(directory)
    return current


# -- config models -----------------------------------------------------------------------------

_SECRET_NAME = re.compile(
    r"(^|_)(password|passwd|passphrase|secret|api_?key|private_?key|credentials?)($|_)"
    r"|(^|_)token$",
    re.IGNORECASE,
)


def _annotation_parts(annotation: object) -> tuple[object, ...]:
    """The members of a union annotation (`X | None`), or the annotation itself."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _mentions(annotation: object, target: type) -> bool:
    """Whether `target` appears anywhere in `annotation` (unions, containers, Annotated)."""
    if annotation is target:
        return True
    return any(_mentions(argument, target) for argument in get_args(annotation))


def secret_fields(model: type[ConnectorConfig]) -> list[str]:
    """Fields of `model` whose annotation holds a `Secret`."""
    return [name for name, info in model.model_fields.items() if _mentions(info.annotation, Secret)]


def looks_secret(model: type[ConnectorConfig], exempt: frozenset[str]) -> list[str]:
    """Plain `str` fields whose names say they hold a credential: they should be `Secret`."""
    return [
        name
        for name, info in model.model_fields.items()
        if name not in exempt
        and _SECRET_NAME.search(name)
        and set(_annotation_parts(info.annotation)) <= {str, type(None)}
        and str in _annotation_parts(info.annotation)
    ]


def schema_declares_secret(schema: object) -> bool:
    """Whether a property's JSON Schema (or a branch of it) marks the value as a secret."""
    if isinstance(schema, Mapping):
        if schema.get("x-secret") is True or schema.get("format") == "password":
            return True
        return any(schema_declares_secret(value) for value in schema.values())
    if isinstance(schema, list):
        return any(schema_declares_secret(item) for item in schema)
    return False


_UNKNOWN_FIELD = "certification_unknown_field"
_WRONG_VALUE: list[list[str]] = [["certification", "wrong", "type"]]
"""A list of lists: rejected by every scalar, secret, date or nested-model field."""


def invalid_config_candidates(
    model: type[ConnectorConfig], valid: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Configs derived from a valid one that `model` must reject, one defect each.

    An unknown key (when the model forbids extra keys, as `ConnectorConfig` does) and the
    first field that rejects a value of the wrong type, found by asking pydantic itself.
    """
    candidates: list[dict[str, Any]] = []
    if model.model_config.get("extra") == "forbid":
        candidates.append({**valid, _UNKNOWN_FIELD: True})
    for name in model.model_fields:
        wrong = {**valid, name: _WRONG_VALUE}
        try:
            model.model_validate(wrong)
        except ValueError:  # pydantic's ValidationError is a ValueError
            candidates.append(wrong)
            break
    return candidates


def json_subset(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """Keys of `expected` whose values `actual` lacks or holds differently, compared as JSON.

    Backends may add fields of their own (ids, timestamps), so only the written keys count.
    """

    def canonical(value: object) -> str:
        return json.dumps(value, sort_keys=True)

    return [
        key
        for key, value in expected.items()
        if key not in actual or canonical(actual[key]) != canonical(value)
    ]


def duplicates(ids: Sequence[str]) -> list[str]:
    """Ids that occur more than once, in order of their second occurrence."""
    seen: set[str] = set()
    repeated: list[str] = []
    for item in ids:
        if item in seen and item not in repeated:
            repeated.append(item)
        seen.add(item)
    return repeated
