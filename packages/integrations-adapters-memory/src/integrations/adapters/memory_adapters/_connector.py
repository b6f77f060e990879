"""`MemoryStoreConnector`: the connector contract for memory stores, whatever stores them.

The tenant an operation runs for is the one of the auth context given to `auth`, and only
that: no payload field, filter or cursor can name another tenant. `auth` needs no round trip
(the backends authenticate the connection itself with the credentials of the config, when
`connect` opens it); it issues a session token that `revoke` ends, closing the connection.
"""

from __future__ import annotations

import abc
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, Generic, TypeVar

from pydantic import Field

from integrations.base import (
    AuthContext,
    AuthError,
    AuthToken,
    BaseConnector,
    Capability,
    ConfigError,
    Connection,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    LifecycleError,
    PushPayload,
    PushResult,
    RevokeResult,
    Secret,
    SyncResult,
    SyncState,
)

from ._backend import MemoryBackend
from ._cursor import decode_sync_state, encode_sync_state
from ._memory import check_push
from ._query import parse_query

__all__ = ["MemoryStoreConfig", "MemoryStoreConnector"]


class MemoryStoreConfig(ConnectorConfig):
    """Settings every memory store shares; each backend's config adds where its data lives."""

    max_page_size: int = Field(default=1000, ge=1, le=10_000)
    """The largest page a fetch returns, whatever limit it asks for."""

    sync_page_size: int = Field(default=1000, ge=1, le=10_000)
    """Changes one sync call returns at most; `has_more` says when more are waiting."""


ConfigT = TypeVar("ConfigT", bound=MemoryStoreConfig)


@dataclass(frozen=True, slots=True)
class _Grant:
    token: AuthToken
    tenant: str


class MemoryStoreConnector(BaseConnector[ConfigT], Generic[ConfigT]):
    """Fetch, push and sync of tenant-scoped memories over a `MemoryBackend`.

    A subclass sets `config_model` and `backend_name` and implements `open_backend`.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.FETCH, Capability.PUSH, Capability.SYNC}
    )
    backend_name: ClassVar[str] = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._io = (
            threading.Lock()
        )  # one backend call at a time: drivers' connections are not shared
        self._grant: _Grant | None = None
        self._backend: MemoryBackend | None = None
        self._config: ConfigT | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connected={self._backend is not None})"

    @abc.abstractmethod
    def open_backend(self, config: ConfigT) -> MemoryBackend:
        """Open the storage `config` describes (creating or migrating its schema)."""

    # -- the contract ------------------------------------------------------------------------

    def auth(self, context: AuthContext) -> AuthToken:
        """Bind the session to the context's tenant; memories are always tenant-scoped."""
        if not context.tenant:
            raise AuthError(
                f"{self.backend_name} memory store: the auth context names no tenant, and "
                "every memory belongs to one"
            )
        token = AuthToken(value=Secret(secrets.token_urlsafe(24)), scopes=context.scopes)
        with self._lock:
            self._grant = _Grant(token, context.tenant)
        return token

    def connect(self, config: ConfigT) -> Connection:
        """Open the store `config` describes; a connection already open is closed first."""
        if not isinstance(config, self.config_model):
            raise ConfigError(
                f"{type(self).__name__} needs a {self.config_model.__name__}, "
                f"got {type(config).__name__}"
            )
        with self._io:
            backend = self.open_backend(config)
        with self._lock:
            previous, self._backend, self._config = self._backend, backend, config
        if previous is not None:
            with self._io, previous.errors():
                previous.close()
        return Connection(
            connection_id=f"{self.backend_name}-{secrets.token_hex(6)}", info=backend.describe()
        )

    def fetch(self, query: FetchQuery) -> FetchResult:
        """One page of the tenant's memories matching `query` (see the `_query` module)."""
        tenant, backend, config = self._session("fetch")
        parsed = parse_query(query, max_limit=config.max_page_size, scope=tenant)
        with self._io, backend.errors():
            page = backend.query(tenant, parsed)
        return FetchResult(
            records=tuple(memory.to_record() for memory in page.memories),
            next_cursor=page.next_cursor,
        )

    def push(self, payload: PushPayload) -> PushResult:
        """Upsert and delete the payload's memories in one transaction; reject bad records."""
        tenant, backend, _ = self._session("push")
        batch, accepted, rejected = check_push(payload)
        if batch:
            with self._io, backend.errors():
                backend.write(tenant, batch, datetime.now(UTC))
        return PushResult(accepted=accepted, rejected=rejected)

    def sync(self, state: SyncState) -> SyncResult:
        """The tenant's changes after `state` in change order, tombstones included."""
        tenant, backend, config = self._session("sync")
        after = decode_sync_state(state)
        with self._io, backend.errors():
            changes = backend.changes(tenant, after, config.sync_page_size + 1)
        page = changes[: config.sync_page_size]
        last = page[-1].seq if page else after
        return SyncResult(
            state=encode_sync_state(last),
            changes=tuple(memory.to_record() for memory in page),
            has_more=len(changes) > len(page),
        )

    def revoke(self, token: AuthToken) -> RevokeResult:
        """End the session of `token` and close the connection."""
        with self._lock:
            grant = self._grant
            if grant is None or grant.token.value.reveal() != token.value.reveal():
                return RevokeResult(revoked=False, detail="token was not issued by this connector")
            backend, self._backend, self._grant = self._backend, None, None
        if backend is not None:
            with self._io, backend.errors():
                backend.close()
        return RevokeResult(revoked=True, detail="session ended; connection closed")

    # -- helpers -----------------------------------------------------------------------------

    def _session(self, operation: str) -> tuple[str, MemoryBackend, ConfigT]:
        with self._lock:
            grant, backend, config = self._grant, self._backend, self._config
        if grant is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs auth() first")
        if backend is None or config is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs connect() first")
        return grant.tenant, backend, config
