"""`MockConnector`: a complete in-memory connector for tests and local validation.

It behaves like a real connector in front of a real backend (the shared `MockStore`): tokens
expire and can be revoked, data is partitioned by tenant, fetch pages with opaque cursors, sync
is incremental from a change log. On top of that it records every call and lets a test inject
faults, either through `connector.faults` or through the config (for registry-driven sessions
where the test never holds the connector object).

The lifecycle is auth, connect, then data operations, then revoke. Auth may run before the
connector has seen its config (a session calls `auth(context)` before `connect(config)`); then
the config's credential checks (`fail_auth`, the store's API key) run at connect instead, as
with a backend that checks credentials when the connection opens, and `token_ttl_seconds`
still governs the token: like a server, the mock decides expiry from the issue time and its
current config, whatever `expires_at` the client was told.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import ClassVar, TypeVar

from pydantic import BaseModel

from integrations.base import (
    AuthContext,
    AuthError,
    AuthExpired,
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

from ._calls import Call, CallLog
from ._config import OPERATIONS, MockConfig, Operation, record_problem
from ._faults import Faults
from ._store import MockStore, get_store

__all__ = ["MockConfig", "MockConnector"]

_ResultT = TypeVar("_ResultT", bound=BaseModel)


@dataclass(slots=True)
class _Grant:
    """The server-side record of an issued token."""

    token: AuthToken
    tenant: str | None
    issued_at: datetime
    generation: int
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class _Session:
    """What a data operation needs once the lifecycle checks passed."""

    store: MockStore
    tenant: str | None
    config: MockConfig


class MockConnector(BaseConnector[MockConfig]):
    """An in-memory connector with real storage, cursors and tokens, call recording and faults.

    `config` is optional: a registry session constructs the connector bare and passes the
    config to `connect`; a test may pass it here so that `auth` already applies it.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.FETCH, Capability.PUSH, Capability.SYNC}
    )
    config_model: ClassVar[type[ConnectorConfig]] = MockConfig

    def __init__(self, config: MockConfig | None = None) -> None:
        self._lock = threading.RLock()
        self._config = None if config is None else _require_config(config)
        self._log = CallLog()
        self._faults = Faults(self._log.started)
        self._grants: dict[str, _Grant] = {}  # keyed by the raw token value
        self._grant: _Grant | None = None
        self._connection: Connection | None = None
        if self._config is not None:
            self._faults.configure(self._config)

    def __repr__(self) -> str:
        with self._lock:
            store = self._config.store if self._config else None
            connected = self._connection is not None
        return f"MockConnector(store={store!r}, connected={connected})"

    # -- the contract --------------------------------------------------------------------------

    def auth(self, context: AuthContext) -> AuthToken:
        """Issue a fresh random token for the context's tenant and actor."""
        return self._call("auth", context, context.tenant, lambda: self._auth(context))

    def connect(self, config: MockConfig) -> Connection:
        """Open a connection to the store `config` names; the config becomes the active one."""
        return self._call("connect", config, self._tenant(), lambda: self._connect(config))

    def fetch(self, query: FetchQuery) -> FetchResult:
        """One page of the tenant's records matching `query`, newest first."""
        return self._call("fetch", query, self._tenant(), lambda: self._fetch(query))

    def push(self, payload: PushPayload) -> PushResult:
        """Upsert and delete the payload's records for the tenant; reject invalid ones."""
        return self._call("push", payload, self._tenant(), lambda: self._push(payload))

    def sync(self, state: SyncState) -> SyncResult:
        """The tenant's changes after `state`, oldest first, one page at a time."""
        return self._call("sync", state, self._tenant(), lambda: self._sync(state))

    def revoke(self, token: AuthToken) -> RevokeResult:
        """Revoke `token`; when it is the current token, the connection is released too."""
        return self._call("revoke", token, self._tenant(), lambda: self._revoke(token))

    # -- what tests inspect and control ---------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """Fault injection for this connector (see `Faults`)."""
        return self._faults

    @property
    def calls(self) -> tuple[Call, ...]:
        """Every call so far, in the order they started."""
        return self._log.snapshot()

    def calls_to(self, operation: Operation) -> tuple[Call, ...]:
        """The calls of one operation, in the order they started."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {OPERATIONS}")
        return tuple(call for call in self._log.snapshot() if call.operation == operation)

    def last_call(self, operation: Operation | None = None) -> Call:
        """The latest call (of `operation`, when given); `LookupError` when there is none."""
        calls = self.calls if operation is None else self.calls_to(operation)
        if not calls:
            raise LookupError(f"no {operation or 'connector'} call was recorded")
        return calls[-1]

    def clear_calls(self) -> None:
        """Forget recorded calls; call numbers keep counting, so fault rules keep their meaning."""
        self._log.clear()

    @property
    def config(self) -> MockConfig | None:
        """The active config: the last one given to `connect`, else the constructor's."""
        with self._lock:
            return self._config

    @property
    def token(self) -> AuthToken | None:
        """The token of the latest successful `auth`."""
        with self._lock:
            return None if self._grant is None else self._grant.token

    @property
    def connection(self) -> Connection | None:
        """The open connection, None before `connect` and after revoking the current token."""
        with self._lock:
            return self._connection

    @property
    def store(self) -> MockStore:
        """The store the active config names (the default store without a config)."""
        config = self.config
        return get_store(config.store if config else MockConfig().store)

    # -- recording and faults -------------------------------------------------------------------

    def _call(
        self,
        operation: Operation,
        argument: BaseModel,
        tenant: str | None,
        body: Callable[[], _ResultT],
    ) -> _ResultT:
        """Run one operation under fault injection and record it, whatever its outcome."""
        index, number = self._log.begin(operation)
        started_at = datetime.now(UTC)
        clock = time.perf_counter()
        result: BaseModel | None = None
        error: BaseException | None = None
        try:
            outcome = self._with_faults(operation, number, body)
            result = outcome
            return outcome
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._log.add(
                Call(
                    index=index,
                    operation=operation,
                    number=number,
                    argument=argument,
                    tenant=tenant,
                    started_at=started_at,
                    duration_seconds=time.perf_counter() - clock,
                    result=result,
                    error=error,
                )
            )

    def _with_faults(
        self, operation: Operation, number: int, body: Callable[[], _ResultT]
    ) -> _ResultT:
        plan = self._faults.plan(operation, number)
        if plan.delay:
            time.sleep(plan.delay)
        if plan.before is not None:
            raise plan.before
        outcome = body()
        if plan.after is not None:
            raise plan.after
        return outcome

    # -- the operations -------------------------------------------------------------------------

    def _auth(self, context: AuthContext) -> AuthToken:
        config = self.config
        if config is not None:
            _check_credentials(config)
        issued_at = datetime.now(UTC)
        ttl = None if config is None else config.token_ttl_seconds
        token = AuthToken(
            value=Secret(secrets.token_urlsafe(32)),
            expires_at=None if ttl is None else issued_at + timedelta(seconds=ttl),
            scopes=context.scopes,
        )
        grant = _Grant(token, context.tenant, issued_at, self._faults.token_generation)
        with self._lock:
            self._grants[token.value.reveal()] = grant
            self._grant = grant
        return token

    def _connect(self, config: MockConfig) -> Connection:
        config = _require_config(config)
        _check_credentials(config)
        connection = Connection(
            connection_id=f"mock-{secrets.token_hex(6)}", info={"store": config.store}
        )
        with self._lock:
            self._config = config
            self._connection = connection
        self._faults.configure(config)
        return connection

    def _fetch(self, query: FetchQuery) -> FetchResult:
        session = self._session("fetch")
        return session.store.fetch(
            session.tenant, query, page_size_max=session.config.page_size_max
        )

    def _push(self, payload: PushPayload) -> PushResult:
        session = self._session("push")
        check = partial(record_problem, session.config)
        return session.store.push(session.tenant, payload, check=check)

    def _sync(self, state: SyncState) -> SyncResult:
        session = self._session("sync")
        return session.store.sync(session.tenant, state, limit=session.config.sync_page_size)

    def _revoke(self, token: AuthToken) -> RevokeResult:
        with self._lock:
            grant = self._grants.get(token.value.reveal())
            if grant is None:
                return RevokeResult(revoked=False, detail="token was not issued by this connector")
            if grant.revoked:
                return RevokeResult(revoked=True, detail="token was already revoked")
            grant.revoked = True
            if grant is not self._grant:
                return RevokeResult(revoked=True, detail="token revoked")
            self._connection = None
        return RevokeResult(revoked=True, detail="token revoked; connection released")

    # -- lifecycle checks -----------------------------------------------------------------------

    def _tenant(self) -> str | None:
        with self._lock:
            return None if self._grant is None else self._grant.tenant

    def _session(self, operation: Operation) -> _Session:
        """Check that a data operation may run now, the way client and server would."""
        with self._lock:
            grant, connection, config = self._grant, self._connection, self._config
        if grant is None:
            raise LifecycleError(f"MockConnector.{operation}() needs auth() first")
        if grant.revoked:
            raise AuthError("the token was revoked; call auth() again")
        if connection is None or config is None:
            raise LifecycleError(f"MockConnector.{operation}() needs connect() first")
        self._check_expiry(grant, config)
        return _Session(get_store(config.store), grant.tenant, config)

    def _check_expiry(self, grant: _Grant, config: MockConfig) -> None:
        if grant.generation < self._faults.token_generation:
            raise AuthExpired("the token expired (expire_tokens); call auth() again")
        ttl = config.token_ttl_seconds
        if ttl is not None and datetime.now(UTC) >= grant.issued_at + timedelta(seconds=ttl):
            raise AuthExpired(f"the token expired after {ttl} seconds; call auth() again")


def _require_config(config: object) -> MockConfig:
    """The config as a `MockConfig`; anything else is a `ConfigError`, never an AttributeError."""
    if not isinstance(config, MockConfig):
        raise ConfigError(f"MockConnector needs a MockConfig, got {type(config).__name__}")
    return config


def _check_credentials(config: MockConfig) -> None:
    """What the backend checks when it first sees the credentials of `config`."""
    if config.fail_auth:
        raise AuthError("mock authentication rejected: fail_auth is set in the config")
    get_store(config.store).check_api_key(config.api_key)
