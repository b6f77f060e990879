"""``intent.engine``: intents scored and ranked by an Intent Engine, through its HTTP API.

The engine stores signals, scores them (`integrations.adapters.intent_adapters.score`) and
ranks them. Its API has five endpoints and no paging, no change feed and no tenants; this
connector maps the contract onto them:

- ``fetch`` reads ``GET /ranked/intents`` (the whole list) and pages it with the shared core
  (`page_of`): filters ``topic`` (case-insensitive), ``source`` and ``min_score``, and pages in
  `rank_key` order. Every intent decays alike, so that order never changes with time; the
  cursor holds the last intent's key and id, and a pagination neither repeats nor skips an
  intent while others are injected and scores decay (an intent injected meanwhile appears
  only if it ranks after the cursor). Scores are computed with the engine's formula at the
  moment of the fetch (`clock`), from the ``created_at`` the engine stored, so one page is
  scored at one moment and filters agree with the scores shown; they equal the engine's own
  to 3 decimals when the two clocks agree. Intents the engine holds that are not valid
  signals (stored by other clients) are skipped, and the count logged (logger
  ``integrations.intent.engine``): one bad intent never costs a page.
- ``filters={"id": ...}`` asks ``GET /why-this`` for the engine's explanation (an unknown id,
  which the engine answers with status 200 and an error body, raises `NotFound`), then builds
  the one record from the intent's signal in the ranked list with the engine's score and
  explanation. The other filters still apply; an intent the engine explains but whose stored
  body is not a valid signal is skipped, as in every fetch (an empty page).
- ``filters={"verify": topic}`` asks ``POST /verify-intent`` and answers one `Verification`
  (see `verify_intent`). With a ``threshold`` the engine cannot be asked (its threshold is
  fixed, the API takes none), so the verification is computed by `verification_from` over
  the ranked list: the topic's best score against the given threshold.
- ``push`` is one ``POST /inject-intent`` per signal (the API has no batch), up to
  `IntentEngineConfig.push_concurrency` at a time on threads sharing one pooled client (see
  `_push`). Each record's data is validated with `parse_signal` first: a record that is not
  a valid signal, a tombstone (the engine cannot delete) or a record id repeated in the
  payload is rejected with the reason and never sent. ``id``, ``intent_score`` and
  ``explanation`` in a record's data are the engine's, and are not sent. The engine's 422
  reason becomes the record's rejection reason. Accepted ids are the ids the engine gave
  the new intents, in the payload's order; the record ids name rejections only.
- ``sync`` is not offered: the API has no change feed (`NotSupported`).

Injection is not idempotent: the engine assigns a new id to every request, so the manifest
declares push non-idempotent and sessions never retry it, and a payload with an idempotency
key is refused (`NotSupported`) rather than retried into duplicates.

The engine has no tenants: everyone who reaches it shares its intents. The connector is
therefore single-tenant per engine: a platform that keeps tenants apart gives each its own
engine (for configs from tenants, an egress rule such as ``hosts=["intent.{tenant}.example"]``
keeps each tenant on its own). The auth context is not sent to the engine; it is what the
session audits and its policies decide on, and `auth` issues the session token that `revoke`
ends. The engine's own credential is the config's `api_key` (a bearer token).

Errors go through the HTTP mapping of `integrations.base.http`, in `_api` only; opening a
connection checks ``GET /health`` and raises `ConnectionFailed` when the engine cannot be
reached. The engine's host and port are the config's one destination (`destinations`): for a
config from a tenant (`UntrustedConfig`), the session checks it against the egress policy
before the connector is called, and every request goes through the egress transport.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from integrations.adapters.intent_adapters._intent import (
    Intent,
    IntentQuery,
    Verification,
    page_of,
    parse_intent_query,
    verification_from,
)
from integrations.base import (
    AuthContext,
    AuthToken,
    BaseConnector,
    Capability,
    ConfigError,
    Connection,
    ConnectorConfig,
    Destination,
    FetchQuery,
    FetchResult,
    InvalidRequest,
    LifecycleError,
    NotSupported,
    PushPayload,
    PushResult,
    Record,
    Rejection,
    RevokeResult,
    Secret,
)

from ._api import Explanation, IntentEngineApi
from ._push import Outgoing, inject_all

__all__ = ["DEFAULT_URL", "IntentEngineConfig", "IntentEngineConnector"]

DEFAULT_URL: Final = "http://127.0.0.1:8000"
"""Where an Intent Engine listens unless configured otherwise (the legacy default)."""

MAX_PUSH_CONCURRENCY: Final = 20
"""The most injections in flight: the connections the HTTP client keeps alive."""

logger = logging.getLogger("integrations.intent.engine")

Clock = Callable[[], datetime]
"""What tells the connector the time: returns a timezone-aware datetime."""


def utc_now() -> datetime:
    """The default clock: the current time in UTC."""
    return datetime.now(UTC)


class IntentEngineConfig(ConnectorConfig):
    """Where the engine is, how long a request may take, page size and push concurrency."""

    url: str = DEFAULT_URL
    """Base URL of the API (``http`` or ``https``, no credentials: give those as `api_key`)."""

    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """Seconds to connect, and to wait for each answer, before the request fails as transient."""

    api_key: Secret | None = None
    """Sent as ``Authorization: Bearer <api_key>`` when given."""

    max_page_size: int = Field(default=1000, ge=1, le=10_000)
    """The largest page a fetch returns, whatever limit it asks for."""

    push_concurrency: int = Field(default=8, ge=1, le=MAX_PUSH_CONCURRENCY)
    """Injections a push keeps in flight at once (1: one after another)."""

    @field_validator("url")
    @classmethod
    def _plain_http_url(cls, value: str) -> str:
        try:
            url = urlsplit(value)
            url.port  # noqa: B018 -- raises ValueError on a port that is not a number
        except ValueError:
            raise ValueError("not a URL") from None
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if url.username is not None or url.query or url.fragment:
            raise ValueError("must hold no credentials, query or fragment (use api_key)")
        return value

    def destinations(self) -> tuple[Destination, ...]:
        """The engine's host and port: what a session checks before an untrusted config connects."""
        return (Destination.from_url(self.url),)


@dataclasses.dataclass(frozen=True, slots=True)
class _Session:
    """What a data operation needs: the open API client and the config it was opened with."""

    api: IntentEngineApi
    config: IntentEngineConfig


class IntentEngineConnector(BaseConnector[IntentEngineConfig]):
    """Fetch (``/ranked/intents``, ``/why-this``, ``/verify-intent``); push (``/inject-intent``)."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FETCH, Capability.PUSH})
    config_model: ClassVar[type[ConnectorConfig]] = IntentEngineConfig

    def __init__(self, *, clock: Clock = utc_now) -> None:
        """`clock` is the moment scores are computed at (tests give the engine's own clock)."""
        self.clock = clock
        self._lock = threading.Lock()
        self._token: AuthToken | None = None
        self._api: IntentEngineApi | None = None
        self._config: IntentEngineConfig | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connected={self._api is not None})"

    # -- the contract ------------------------------------------------------------------------

    def auth(self, context: AuthContext) -> AuthToken:
        """Issue the session's token; the engine has no tenants, so nothing is sent to it."""
        token = AuthToken(value=Secret(secrets.token_urlsafe(24)), scopes=context.scopes)
        with self._lock:
            self._token = token
        return token

    def connect(self, config: IntentEngineConfig) -> Connection:
        """Open an HTTP client on the engine, check ``/health``; close a client already open."""
        if not isinstance(config, IntentEngineConfig):
            raise ConfigError(
                f"{type(self).__name__} needs an IntentEngineConfig, got {type(config).__name__}"
            )
        key = None if config.api_key is None else config.api_key.reveal()
        api = IntentEngineApi(
            config.url,
            timeout=config.timeout_seconds,
            api_key=key,
            pool_size=config.push_concurrency,
            egress=config.egress,
        )
        try:
            api.check_health()
        except BaseException:
            api.close()
            raise
        with self._lock:
            previous, self._api, self._config = self._api, api, config
        if previous is not None:
            previous.close()
        return Connection(
            connection_id=f"intent-engine-{secrets.token_hex(6)}", info={"url": config.url}
        )

    def fetch(self, query: FetchQuery) -> FetchResult:
        """One page of ranked intents, one explained intent or one verification (see the module)."""
        session = self._session("fetch")
        parsed = _parse(query, session.config)
        if parsed.verify is not None:
            verification = self._verification(session, parsed, _has_threshold(query))
            return FetchResult(records=(verification.to_record(),))
        if parsed.intent_id is not None:
            return self._explained(session, parsed)
        return page_of(self._ranked(session), parsed, now=self.clock())

    def push(self, payload: PushPayload) -> PushResult:
        """Inject each valid signal of the payload; reject the others (see the module)."""
        session = self._session("push")
        if payload.idempotency_key is not None:
            raise NotSupported(
                "the Intent Engine API has no idempotency keys: it would store a repeated push "
                "twice; push without idempotency_key (sessions never retry this push)"
            )
        sendable, refused = _outgoing(payload.records)
        accepted, failed = inject_all(
            session.api.inject, sendable, concurrency=session.config.push_concurrency
        )
        return PushResult(accepted=tuple(accepted), rejected=(*refused, *failed))

    def revoke(self, token: AuthToken) -> RevokeResult:
        """End the session of `token` and close the HTTP client."""
        with self._lock:
            issued = self._token
            if issued is None or issued.value.reveal() != token.value.reveal():
                return RevokeResult(revoked=False, detail="token was not issued by this connector")
            api, self._api, self._token = self._api, None, None
        if api is not None:
            api.close()
        return RevokeResult(revoked=True, detail="session ended; HTTP client closed")

    # -- helpers -----------------------------------------------------------------------------

    def _session(self, operation: str) -> _Session:
        with self._lock:
            token, api, config = self._token, self._api, self._config
        if token is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs auth() first")
        if api is None or config is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs connect() first")
        return _Session(api, config)

    def _ranked(self, session: _Session) -> list[Intent]:
        """The engine's intents that are signals; the others are counted in the log."""
        items = session.api.ranked()
        intents = [intent for intent in map(_intent, items) if intent is not None]
        skipped = len(items) - len(intents)
        if skipped:
            logger.warning(
                "intent.engine: skipped %d of %d ranked intents that are not valid signals",
                skipped,
                len(items),
            )
        return intents

    def _verification(
        self, session: _Session, query: IntentQuery, threshold_given: bool
    ) -> Verification:
        topic = query.verify or ""
        if threshold_given:
            return verification_from(self._ranked(session), query, self.clock())
        answer = session.api.verify(topic)
        return Verification(
            topic=topic,
            allowed=answer.allowed,
            reason=answer.reason,
            intent_score=answer.intent_score,
        )

    def _explained(self, session: _Session, query: IntentQuery) -> FetchResult:
        explanation = session.api.why_this(query.intent_id or "")  # NotFound before any listing
        page = page_of(self._ranked(session), query, now=self.clock())
        return page.model_copy(
            update={"records": tuple(_with_engine_view(r, explanation) for r in page.records)}
        )


# -- queries --------------------------------------------------------------------------------


def _parse(query: FetchQuery, config: IntentEngineConfig) -> IntentQuery:
    return parse_intent_query(query, max_limit=config.max_page_size)


def _has_threshold(query: FetchQuery) -> bool:
    return query.filters.get("threshold") is not None


def _intent(item: Any) -> Intent | None:
    """A ranked item as an intent; None when it has no id or is not a valid signal."""
    if not isinstance(item, dict):
        return None
    intent_id = item.get("id")
    if not isinstance(intent_id, str) or not intent_id:
        return None
    try:
        return Intent.from_json(intent_id, item)
    except InvalidRequest:
        return None


def _with_engine_view(record: Record, explanation: Explanation) -> Record:
    """`record` with the engine's own score and explanation."""
    data = {
        **record.data,
        "intent_score": explanation.intent_score,
        "explanation": list(explanation.factors),
    }
    return record.model_copy(update={"data": data})


# -- push -----------------------------------------------------------------------------------


def _outgoing(records: Iterable[Record]) -> tuple[list[Outgoing], list[Rejection]]:
    """The records to send, as the engine's JSON, and those refused before sending."""
    sendable: list[Outgoing] = []
    refused: list[Rejection] = []
    seen: set[str] = set()
    for record in records:
        problem = _refusal(record, seen)
        seen.add(record.id)
        if problem is not None:
            refused.append(Rejection(id=record.id, reason=problem))
            continue
        try:
            signal = Intent.from_json(record.id, record.data).signal
        except InvalidRequest as error:
            refused.append(Rejection(id=record.id, reason=str(error)))
        else:
            sendable.append(Outgoing(record.id, signal.to_json()))
    return sendable, refused


def _refusal(record: Record, seen: set[str]) -> str | None:
    if record.deleted:
        return "the Intent Engine API cannot delete intents: tombstones refused"
    if record.id in seen:
        return "the record id is repeated in this payload: push each signal once"
    return None
