"""`MemoryStoreConnector`: the connector contract for memory stores, whatever stores them.

The tenant an operation runs for is the one of the auth context given to `auth`, and only
that: no payload field, filter or cursor can name another tenant. `auth` needs no round trip
(the backends authenticate the connection itself with the credentials of the config, when
`connect` opens it); it issues a session token that `revoke` ends, closing the connection.

Tombstones are kept for sync until they are compacted: `compact` removes the tenant's old ones
on demand, and with `tombstone_retention_seconds` set the connector compacts after a push at
most once per `compaction_interval_seconds` (no background thread: a connector that is not
pushing to has nothing new to compact).
"""

from __future__ import annotations

import abc
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Final, Generic, TypeVar

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
    ContractError,
    FetchQuery,
    FetchResult,
    InvalidRequest,
    LifecycleError,
    PushPayload,
    PushResult,
    RevokeResult,
    Secret,
    SyncResult,
    SyncState,
)

from ._backend import MemoryBackend
from ._cursor import decode_sync_state, encode_sync_state, sync_floor
from ._memory import check_push
from ._query import parse_query

__all__ = ["Clock", "MemoryStoreConfig", "MemoryStoreConnector"]

logger = logging.getLogger("integrations.memory")

Clock = Callable[[], datetime]
"""What tells a connector the time: returns a timezone-aware datetime."""

_CENTURY: Final = 100 * 366 * 24 * 3600.0
"""Longest retention or interval in seconds: beyond it, now minus the retention overflows."""


def utc_now() -> datetime:
    """The default clock: the current time in UTC."""
    return datetime.now(UTC)


class MemoryStoreConfig(ConnectorConfig):
    """Settings every memory store shares; each backend's config adds where its data lives."""

    max_page_size: int = Field(default=1000, ge=1, le=10_000)
    """The largest page a fetch returns, whatever limit it asks for."""

    sync_page_size: int = Field(default=1000, ge=1, le=10_000)
    """Changes one sync call returns at most; `has_more` says when more are waiting."""

    tombstone_retention_seconds: float | None = Field(
        default=None, gt=0, le=_CENTURY, allow_inf_nan=False
    )
    """How long a deletion stays visible to sync before scheduled compaction removes it; None
    keeps tombstones forever (compaction then runs only when `compact` is called). A sync
    state older than the retention may get `ResyncRequired`."""

    compaction_interval_seconds: float = Field(
        default=3600.0, ge=0, le=_CENTURY, allow_inf_nan=False
    )
    """The least time between two scheduled compactions of one connector (0: after every
    push). Only used with a `tombstone_retention_seconds`."""


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

    def __init__(self, *, clock: Clock = utc_now) -> None:
        """`clock` stamps changes and schedules compaction (tests give a settable one)."""
        self.clock = clock
        self._lock = threading.RLock()
        self._io = (
            threading.Lock()
        )  # one backend call at a time: drivers' connections are not shared
        self._grant: _Grant | None = None
        self._backend: MemoryBackend | None = None
        self._config: ConfigT | None = None
        self._last_compaction: datetime | None = None  # of the schedule, by `clock`

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
        return FetchResult(records=page.records, next_cursor=page.next_cursor)

    def push(self, payload: PushPayload) -> PushResult:
        """Upsert and delete the payload's memories in one transaction; reject bad records."""
        tenant, backend, config = self._session("push")
        batch, accepted, rejected = check_push(payload)
        if batch:
            with self._io, backend.errors():
                backend.write(tenant, batch, self._now())
        self._compact_if_due(tenant, backend, config)
        return PushResult(accepted=accepted, rejected=rejected)

    def sync(self, state: SyncState) -> SyncResult:
        """The tenant's changes after `state` in change order, tombstones included.

        A state from before the tenant's compaction horizon raises the backend's
        `ResyncRequired` as it is (an `InvalidRequest`, so sessions do not retry it): the
        caller starts again from `SyncState()`.
        """
        tenant, backend, config = self._session("sync")
        after, floor = decode_sync_state(state), sync_floor(state)
        with self._io, backend.errors():
            if after == 0:
                # A full sync shows only what survived the compactions so far: remember
                # their horizon, so paging on and syncing later are not refused for them.
                floor = backend.horizon(tenant)
            changes = backend.changes(tenant, after, config.sync_page_size + 1, floor)
        page = changes[: config.sync_page_size]
        last = page[-1].seq if page else after
        return SyncResult(
            state=encode_sync_state(last, floor),
            changes=tuple(memory.to_record() for memory in page),
            has_more=len(changes) > len(page),
        )

    def compact(self, older_than: datetime | timedelta) -> int:
        """Remove the tenant's tombstones deleted before `older_than`; how many were removed.

        `older_than` is a timezone-aware time, or an age (a non-negative `timedelta`: now
        minus it). Live memories are never removed. Sync states from before the newest
        removed deletion get `ResyncRequired` from then on.
        """
        tenant, backend, _ = self._session("compact")
        horizon = self._cutoff(older_than)
        with self._io, backend.errors():
            return backend.compact(horizon, tenant)

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

    def _now(self) -> datetime:
        now: object = self.clock()
        if not isinstance(now, datetime) or now.utcoffset() is None:
            raise ContractError(
                f"the clock of {type(self).__name__} must return a timezone-aware datetime, "
                f"got {now!r}"
            )
        return now.astimezone(UTC)

    def _cutoff(self, older_than: datetime | timedelta) -> datetime:
        """The deletion time before which tombstones go; `InvalidRequest` when it has none."""
        given: object = older_than  # checked as any object: callers may be untyped
        if isinstance(given, timedelta):
            if given < timedelta(0):
                raise InvalidRequest(f"compact(older_than={given!r}): an age must not be negative")
            try:
                return self._now() - given
            except OverflowError:
                raise InvalidRequest(
                    f"compact(older_than={given!r}): now minus this age is before year 1"
                ) from None
        if not isinstance(given, datetime):
            raise InvalidRequest(
                "compact(older_than=...) takes a timezone-aware datetime or a timedelta, got "
                f"{type(given).__name__}"
            )
        if given.utcoffset() is None:
            raise InvalidRequest(
                f"compact(older_than={given.isoformat()}): the time has no timezone; give an "
                "aware datetime such as datetime.now(UTC) - timedelta(days=30)"
            )
        return given.astimezone(UTC)

    def _compact_if_due(self, tenant: str, backend: MemoryBackend, config: ConfigT) -> None:
        """The scheduled compaction, after a successful push, when the interval has passed.

        A failure is logged and leaves the schedule where it was, so the next push tries
        again: the push itself has succeeded and must not be reported as failed.
        """
        retention = config.tombstone_retention_seconds
        if retention is None:
            return
        now = self._now()
        interval = timedelta(seconds=config.compaction_interval_seconds)
        with self._lock:
            last = self._last_compaction
            if last is not None and timedelta(0) <= now - last < interval:
                return
            self._last_compaction = now  # claimed: a concurrent push does not compact too
        try:
            with self._io, backend.errors():
                removed = backend.compact(now - timedelta(seconds=retention), tenant)
        except Exception:
            with self._lock:
                if self._last_compaction == now:
                    self._last_compaction = last
            logger.warning(
                "scheduled compaction of the %s memory store failed; the next push retries it",
                self.backend_name,
                exc_info=True,
                extra={"connector": self.backend_name, "tenant": tenant},
            )
            return
        logger.debug(
            "scheduled compaction of the %s memory store removed %d tombstones",
            self.backend_name,
            removed,
            extra={"connector": self.backend_name, "tenant": tenant},
        )

    def _session(self, operation: str) -> tuple[str, MemoryBackend, ConfigT]:
        with self._lock:
            grant, backend, config = self._grant, self._backend, self._config
        if grant is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs auth() first")
        if backend is None or config is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs connect() first")
        return grant.tenant, backend, config
