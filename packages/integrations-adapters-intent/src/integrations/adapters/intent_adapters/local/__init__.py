"""``intent.local``: the embedded intent store, one SQLite file shared by any number of processes.

The default intent connector: a platform without an Intent Engine server keeps its intents
here, scored, filtered and ranked exactly as the shared core (and so the engine) does.

Storage follows the memory store's conventions. The file runs in WAL mode (readers never wait
for the writer) with ``synchronous=NORMAL`` (a committed batch survives the process being
killed; a power cut may lose the last ones); writers queue on SQLite's lock for up to the busy
timeout, past which an operation fails with `TransientError` and the session retries it. The
schema is versioned and migrated when a file is opened; a file written by a newer release is
refused and left untouched. Without a path the store lives in the user's data directory
(``intents.sqlite3``); ``":memory:"`` gives each connection its own private database, gone when
the session ends. A file is a place on the platform's own disk, so its path is the config's
destination, a local one: a config from a tenant (`UntrustedConfig`) may only use
``":memory:"``.

Every intent belongs to the tenant of the session's auth context, and only that tenant ever
sees it, changes it or syncs it: no payload field, filter or cursor can name another.

push
    upserts signals by id: `Record.id` is the signal's id and its data the signal (extra fields
    kept). The same id with the same signal changes nothing; with a changed signal it is an
    update. A signal without ``created_at`` is dated when its id is first stored and keeps that
    date when pushed again, so repeating a push never moves an intent; what a fetch adds
    (``intent_score``, ``explanation``) is dropped, so a fetched intent pushed back is the same
    signal. A tombstone (``deleted=True``) deletes the intent. Every record is checked on its
    own: a bad one is rejected with its reason and never stops the others; the accepted ones
    are written in one transaction. Push is therefore idempotent, and sessions may retry it.
fetch
    ranks intents best first (then by id), with the shared filters: ``topic``
    (case-insensitive), ``source``, ``min_score``; ``id`` returns that one intent with the
    explanation of its score; ``verify`` (a topic, with an optional ``threshold``) returns one
    `Verification` from the topic's best score. Each record's ``intent_score`` is its score at
    the moment of the fetch.
sync
    returns the tenant's changes in the order they were committed (each change of an intent
    takes the next number of its tenant's sequence), tombstones included, and a state to
    resume from. A changed intent comes as fetch returns it (scored at the moment of the sync).

What a fetch cursor means: every intent's score decays by the same factor per hour, so the
order of two intents never changes, and the ranking is the order of a time-free key
(`rank_key`) stored with each intent. A cursor holds the key and id of the last intent of its
page and is bound to the query's filters; the next page starts right after that position. A
pagination therefore neither repeats nor skips an intent that stays unchanged while it pages,
however long it takes; an intent pushed or updated meanwhile appears in it if its new position
comes after the cursor. Scores in later pages are computed when those pages are fetched.

Retention: with ``retention_days`` set (30 by default: by then every score rounds to 0), an
intent dated more than that many days ago is expired (it becomes a tombstone, which sync
reports), and a tombstone older than that many days is removed for good, raising the tenant's
compaction horizon. Compaction runs after a push at most once per
``compaction_interval_seconds`` (no background thread: a store nobody pushes to gathers
nothing new to compact), or when `LocalIntentConnector.compact` is called. A sync state from
before the horizon raises `ResyncRequired` with the memory stores' wording; the caller starts
again from ``SyncState()``.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Final

from pydantic import Field, field_validator

from integrations.adapters.intent_adapters._intent import parse_intent_query, verify_target
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
    Destination,
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

from ._backend import LocalBackend, open_local
from ._paths import IN_MEMORY, destinations, resolve
from ._rows import check_push
from ._sync import decode_sync_state, encode_sync_state

__all__ = ["LocalIntentConfig", "LocalIntentConnector"]

logger = logging.getLogger("integrations.intent.local")

_CENTURY_DAYS: Final = 100 * 366
_CENTURY: Final = _CENTURY_DAYS * 24 * 3600.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LocalIntentConfig(ConnectorConfig):
    """Where the intent store lives, how long it keeps intents, and how it pages."""

    path: str | None = Field(default=None, min_length=1, max_length=4096)
    """The database file (``~`` expanded; a relative path is relative to the working
    directory when the session connects), ``":memory:"``, or None for the default file in
    the user's data directory."""

    busy_timeout_seconds: float = Field(default=5.0, ge=0, le=600, allow_inf_nan=False)
    """How long an operation waits for another connection's lock before `TransientError`."""

    max_page_size: int = Field(default=1000, ge=1, le=10_000)
    """The largest page a fetch returns, whatever limit it asks for."""

    sync_page_size: int = Field(default=1000, ge=1, le=10_000)
    """Changes one sync call returns at most; `has_more` says when more are waiting."""

    retention_days: float | None = Field(default=30.0, gt=0, le=_CENTURY_DAYS, allow_inf_nan=False)
    """Intents dated more than this many days ago are expired, and tombstones older than this
    are removed (see the module's documentation); None keeps everything (compaction then runs
    only when `compact` is given a time)."""

    compaction_interval_seconds: float = Field(
        default=3600.0, ge=0, le=_CENTURY, allow_inf_nan=False
    )
    """The least time between two compactions scheduled by pushes (0: after every push)."""

    @field_validator("path")
    @classmethod
    def _a_file_path(cls, value: str | None) -> str | None:
        if value is None or value == IN_MEMORY:
            return value
        if "\x00" in value:
            raise ValueError("the path must not contain NUL characters")
        if not value.strip():
            raise ValueError("the path must name a file")
        if value.startswith("file:"):
            raise ValueError("give a file path or ':memory:', not a SQLite URI")
        return value

    def destinations(self) -> tuple[Destination, ...]:
        """The file, as a local destination (never open to untrusted configs); none in memory."""
        return destinations(self.path)


@dataclass(frozen=True, slots=True)
class _Grant:
    token: AuthToken
    tenant: str


class LocalIntentConnector(BaseConnector[LocalIntentConfig]):
    """Tenant-scoped intents in a SQLite file (see the module's documentation)."""

    config_model: ClassVar[type[ConnectorConfig]] = LocalIntentConfig
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.FETCH, Capability.PUSH, Capability.SYNC}
    )

    def __init__(self, *, clock: Callable[[], datetime] = _utc_now) -> None:
        """`clock` tells the time scores are computed at, stamps changes and dates undated
        signals, and schedules compaction (tests give a settable one)."""
        self.clock = clock
        self._lock = threading.RLock()
        self._io = threading.Lock()  # one backend call at a time: the connection is not shared
        self._grant: _Grant | None = None
        self._backend: LocalBackend | None = None
        self._config: LocalIntentConfig | None = None
        self._last_compaction: datetime | None = None  # of the schedule, by `clock`

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connected={self._backend is not None})"

    # -- the contract ------------------------------------------------------------------------

    def auth(self, context: AuthContext) -> AuthToken:
        """Bind the session to the context's tenant; intents always belong to one."""
        if not context.tenant:
            raise AuthError(
                "intent.local: the auth context names no tenant, and every intent belongs to one"
            )
        token = AuthToken(value=Secret(secrets.token_urlsafe(24)), scopes=context.scopes)
        with self._lock:
            self._grant = _Grant(token, context.tenant)
        return token

    def connect(self, config: LocalIntentConfig) -> Connection:
        """Open the store `config` describes; a connection already open is closed first."""
        if not isinstance(config, LocalIntentConfig):
            raise ConfigError(
                f"{type(self).__name__} needs a LocalIntentConfig, got {type(config).__name__}"
            )
        with self._io:
            backend = open_local(resolve(config.path), config.busy_timeout_seconds)
        with self._lock:
            previous, self._backend, self._config = self._backend, backend, config
        if previous is not None:
            with self._io, previous.errors():
                previous.close()
        return Connection(
            connection_id=f"intent-local-{secrets.token_hex(6)}", info=backend.describe()
        )

    def fetch(self, query: FetchQuery) -> FetchResult:
        """One page of the tenant's ranked intents, one explained intent, or a verification."""
        tenant, backend, config = self._session("fetch")
        target = verify_target(query)  # the alignment check's query, read at once
        if target is not None:
            now = self._now()
            with self._io, backend.errors():
                return backend.verify(tenant, *target, now)
        parsed = parse_intent_query(query, max_limit=config.max_page_size)
        now = self._now()
        with self._io, backend.errors():
            if parsed.verify is not None:
                return backend.verify(tenant, parsed.verify, parsed.threshold, now)
            if parsed.intent_id is not None:
                return backend.one(tenant, parsed, now)
            return backend.ranked(tenant, parsed, now)

    def push(self, payload: PushPayload) -> PushResult:
        """Upsert and delete the payload's intents in one transaction; reject bad records."""
        tenant, backend, config = self._session("push")
        now = self._now()
        batch, accepted, rejected = check_push(payload, now)
        if batch:
            with self._io, backend.errors():
                backend.write(tenant, batch, now)
        self._compact_if_due(tenant, backend, config)
        return PushResult(accepted=accepted, rejected=rejected)

    def sync(self, state: SyncState) -> SyncResult:
        """The tenant's changes after `state` in change order, tombstones included.

        A state from before the tenant's compaction horizon raises `ResyncRequired` (an
        `InvalidRequest`, so sessions do not retry it): the caller starts from `SyncState()`.
        """
        tenant, backend, config = self._session("sync")
        after, floor = decode_sync_state(state)
        now = self._now()
        with self._io, backend.errors():
            if after == 0:
                # A full sync shows only what survived the compactions so far: remember
                # their horizon, so paging on and syncing later are not refused for them.
                floor = backend.horizon(tenant)
            changes = backend.changes(tenant, after, config.sync_page_size + 1, floor, now)
        page = changes[: config.sync_page_size]
        last = page[-1][0] if page else after
        return SyncResult(
            state=encode_sync_state(last, floor),
            changes=tuple(record for _, record in page),
            has_more=len(changes) > len(page),
        )

    def compact(self, older_than: datetime | timedelta | None = None) -> int:
        """Apply retention now; how many of the tenant's intents it expired.

        Intents dated before `older_than` are expired (each becomes a tombstone sync
        reports) and tombstones deleted before it are removed for good. `older_than` is a
        timezone-aware time, or an age (a non-negative `timedelta`: now minus it); None means
        the config's ``retention_days``. Sync states from before the newest removed tombstone
        get `ResyncRequired` from then on.
        """
        tenant, backend, config = self._session("compact")
        if older_than is None:
            if config.retention_days is None:
                raise InvalidRequest(
                    "compact() without older_than needs retention_days in the config, "
                    "which keeps everything (None)"
                )
            older_than = timedelta(days=config.retention_days)
        now = self._now()
        cutoff = self._cutoff(older_than, now)
        with self._io, backend.errors():
            expired, removed = backend.compact(tenant, cutoff, now)
        logger.debug(
            "intent.local compaction expired %d intents and removed %d tombstones",
            expired,
            removed,
            extra={"connector": "intent.local", "tenant": tenant},
        )
        return expired

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
        return now if now.tzinfo is UTC else now.astimezone(UTC)

    @staticmethod
    def _cutoff(older_than: datetime | timedelta, now: datetime) -> datetime:
        """The time before which retention applies; `InvalidRequest` when it has none."""
        given: object = older_than  # checked as any object: callers may be untyped
        if isinstance(given, timedelta):
            if given < timedelta(0):
                raise InvalidRequest(f"compact(older_than={given!r}): an age must not be negative")
            try:
                return now - given
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

    def _compact_if_due(
        self, tenant: str, backend: LocalBackend, config: LocalIntentConfig
    ) -> None:
        """The scheduled compaction, after a successful push, when the interval has passed.

        A failure is logged and leaves the schedule where it was, so the next push tries
        again: the push itself has succeeded and must not be reported as failed.
        """
        if config.retention_days is None:
            return
        now = self._now()
        interval = timedelta(seconds=config.compaction_interval_seconds)
        with self._lock:
            last = self._last_compaction
            if last is not None and timedelta(0) <= now - last < interval:
                return
            self._last_compaction = now  # claimed: a concurrent push does not compact too
        try:
            cutoff = now - timedelta(days=config.retention_days)
            with self._io, backend.errors():
                expired, removed = backend.compact(tenant, cutoff, now)
        except Exception:
            with self._lock:
                if self._last_compaction == now:
                    self._last_compaction = last
            logger.warning(
                "scheduled compaction of the intent store failed; the next push retries it",
                exc_info=True,
                extra={"connector": "intent.local", "tenant": tenant},
            )
            return
        logger.debug(
            "scheduled compaction of the intent store expired %d intents, removed %d tombstones",
            expired,
            removed,
            extra={"connector": "intent.local", "tenant": tenant},
        )

    def _session(self, operation: str) -> tuple[str, LocalBackend, LocalIntentConfig]:
        with self._lock:
            grant, backend, config = self._grant, self._backend, self._config
        if grant is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs auth() first")
        if backend is None or config is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs connect() first")
        return grant.tenant, backend, config
