"""``memory.knowledge_vault``: memories kept in a Knowledge Vault, through its HTTP API.

The Knowledge Vault stores documents (content, an owner, metadata) and searches them per
owner. It has three endpoints, and this connector maps the contract onto them:

- ``fetch`` is ``GET /query?q=<text>&actor_id=<actor>``, for the actor of the session's auth
  context. The API searches text only, so a fetch needs `FetchQuery.text`; the ``tags`` and
  ``metadata`` filters are applied to the API's results here, with the semantics every memory
  store shares (the API returns every match at once, so this is exact); time filters raise
  `NotSupported`. Pages are cut from the API's ranked results: the cursor names the last
  memory returned, and the next page starts after it in the fresh results (found again, not
  counted), so pages do not repeat one another while documents are added.
- ``push`` is one ``POST /ingest`` per memory (the API has no batch endpoint): content is
  the memory's text, owner the actor, and the metadata is the memory's metadata plus reserved
  keys (``_memory_id``, ``_memory_tags``, ``_memory_tenant``, ``_memory_created_at``) from
  which fetch rebuilds the memory exactly. Metadata keys starting with ``_memory_`` are
  therefore refused, like tombstones (the API cannot delete) and records that are not
  memories.
- ``sync`` is not offered: the API has no change feed.

Ingestion is not idempotent: the API assigns a new document id to every request, so the
manifest declares push non-idempotent and sessions never retry it, and a payload with an
idempotency key is refused (`NotSupported`) rather than retried into duplicates. Pushing a
memory id again stores another version; fetch returns one memory per id, the latest version
among the documents the query found. When a request fails after earlier memories of the
payload were ingested, the result accepts those and rejects the failed and unsent ones with
the reason, so nothing is lost silently; when none was ingested yet, the error is raised. A
request that timed out may still have been stored by the API.

Documents are the actor's; memories are the tenant's as well. Results carrying another
tenant are dropped, and documents carrying none (ingested by other programs, such as the
legacy ``memory_adapters.knowledge_vault`` client) are returned only when
`KnowledgeVaultConfig.include_legacy_documents` is set. Errors go through the HTTP mapping of
`integrations.base.http`; opening a connection checks ``GET /health`` and raises
`ConnectionFailed` when the API cannot be reached.

The API's host and port are the config's one destination (`KnowledgeVaultConfig.destinations`):
for a config from a tenant (`UntrustedConfig`), the session checks it against the egress
policy before the connector is called, and every request then goes through the egress
transport of `integrations.base.http`, which connects to the addresses checked (TLS still
verifies the URL's host name). Configs the platform writes connect as they always did.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from integrations.adapters.memory_adapters._cursor import decode_cursor, encode_cursor
from integrations.adapters.memory_adapters._memory import Memory, check_push
from integrations.adapters.memory_adapters._query import (
    MemoryFilter,
    MemoryQuery,
    json_equal,
    parse_query,
)
from integrations.base import (
    AuthContext,
    AuthError,
    AuthToken,
    BaseConnector,
    Capability,
    ConfigError,
    Connection,
    ConnectorConfig,
    ConnectorError,
    Destination,
    FetchQuery,
    FetchResult,
    InvalidRequest,
    JsonObject,
    LifecycleError,
    NotSupported,
    PushPayload,
    PushResult,
    Record,
    Rejection,
    RevokeResult,
    Secret,
    format_utc,
)

from ._api import KnowledgeVaultApi, VaultHit, hits_of

__all__ = ["DEFAULT_URL", "KnowledgeVaultConfig", "KnowledgeVaultConnector"]

DEFAULT_URL: Final = "http://localhost:8000"
"""Where a Knowledge Vault listens unless configured otherwise."""

RESERVED_PREFIX: Final = "_memory_"
"""Metadata keys the connector keeps for itself; a pushed memory may not use them."""

_ID: Final = "_memory_id"
_TAGS: Final = "_memory_tags"
_TENANT: Final = "_memory_tenant"
_CREATED: Final = "_memory_created_at"
_CURSOR_KIND: Final = "vault"


class KnowledgeVaultConfig(ConnectorConfig):
    """Where the Knowledge Vault is, how long a request may take, and the page limit."""

    url: str = DEFAULT_URL
    """Base URL of the API (``http`` or ``https``, no credentials: give those as `api_key`)."""

    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """Seconds to connect, and to wait for each answer, before the request fails as transient."""

    api_key: Secret | None = None
    """Sent as ``Authorization: Bearer <api_key>`` when given."""

    max_page_size: int = Field(default=1000, ge=1, le=10_000)
    """The largest page a fetch returns, whatever limit it asks for."""

    include_legacy_documents: bool = False
    """Also return the actor's documents that carry no tenant (ingested by other programs)."""

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
        """The API's host and port: what a session checks before an untrusted config connects."""
        return (Destination.from_url(self.url),)


@dataclass(frozen=True, slots=True)
class _Grant:
    token: AuthToken
    tenant: str
    actor: str


@dataclass(frozen=True, slots=True)
class _Session:
    """What a data operation needs: who it runs for and the open API client."""

    tenant: str
    actor: str
    api: KnowledgeVaultApi
    config: KnowledgeVaultConfig


@dataclass(frozen=True, slots=True)
class _Found:
    """A document found by a query, read back as a memory."""

    id: str
    text: str
    tags: tuple[str, ...]
    metadata: JsonObject
    created_at: datetime | None

    def to_record(self) -> Record:
        data: JsonObject = {"text": self.text, "tags": list(self.tags), "metadata": self.metadata}
        if self.created_at is not None:
            data["created_at"] = format_utc(self.created_at)
        return Record(id=self.id, data=data, updated_at=self.created_at)


class KnowledgeVaultConnector(BaseConnector[KnowledgeVaultConfig]):
    """Fetch (``/query``) and push (``/ingest``) of memories in a Knowledge Vault."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FETCH, Capability.PUSH})
    config_model: ClassVar[type[ConnectorConfig]] = KnowledgeVaultConfig

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grant: _Grant | None = None
        self._api: KnowledgeVaultApi | None = None
        self._config: KnowledgeVaultConfig | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connected={self._api is not None})"

    # -- the contract ------------------------------------------------------------------------

    def auth(self, context: AuthContext) -> AuthToken:
        """Bind the session to the context's tenant and actor (the API's ``actor_id``)."""
        if not context.tenant or not context.actor:
            raise AuthError(
                "knowledge vault: the auth context needs a tenant and an actor; documents "
                "belong to an actor and memories to a tenant"
            )
        token = AuthToken(value=Secret(secrets.token_urlsafe(24)), scopes=context.scopes)
        with self._lock:
            self._grant = _Grant(token, context.tenant, context.actor)
        return token

    def connect(self, config: KnowledgeVaultConfig) -> Connection:
        """Open an HTTP client on the API and check ``/health``; a client already open is closed."""
        if not isinstance(config, KnowledgeVaultConfig):
            raise ConfigError(
                f"{type(self).__name__} needs a KnowledgeVaultConfig, got {type(config).__name__}"
            )
        key = None if config.api_key is None else config.api_key.reveal()
        api = KnowledgeVaultApi(
            config.url, timeout=config.timeout_seconds, api_key=key, egress=config.egress
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
            connection_id=f"knowledge-vault-{secrets.token_hex(6)}", info={"url": config.url}
        )

    def fetch(self, query: FetchQuery) -> FetchResult:
        """One page of the tenant's memories the API finds for the text (see the module)."""
        session = self._session("fetch")
        parsed = parse_query(
            query,
            max_limit=session.config.max_page_size,
            scope=f"{session.tenant}\x00{session.actor}",
        )
        after = _resume_after(parsed)
        _require_answerable(parsed)
        body = session.api.query(parsed.text, session.actor)
        found = _latest_versions(_readable(hits_of(body), session))
        matching = [memory for memory in found if _passes(memory, parsed.filter)]
        start = _start_after(matching, after)
        page = matching[start : start + parsed.limit]
        cursor = None
        if start + len(page) < len(matching):
            cursor = encode_cursor(_CURSOR_KIND, parsed.fingerprint, after=page[-1].id)
        return FetchResult(records=tuple(memory.to_record() for memory in page), next_cursor=cursor)

    def push(self, payload: PushPayload) -> PushResult:
        """Ingest each memory of the payload; reject what the API cannot store (see the module)."""
        session = self._session("push")
        if payload.idempotency_key is not None:
            raise NotSupported(
                "the Knowledge Vault API has no idempotency keys: it would store a repeated "
                "push twice; push without idempotency_key (sessions never retry this push)"
            )
        batch, _, rejected = check_push(payload)
        refused = [*rejected, *(_cannot_delete(record_id) for record_id in batch.deletes)]
        sendable: list[Memory] = []
        for memory in batch.upserts:
            reserved = sorted(key for key in memory.metadata if key.startswith(RESERVED_PREFIX))
            if reserved:
                refused.append(Rejection(id=memory.id, reason=_reserved_reason(reserved[0])))
            else:
                sendable.append(memory)
        accepted, failed = self._ingest_all(session, sendable)
        return PushResult(accepted=tuple(accepted), rejected=(*refused, *failed))

    def revoke(self, token: AuthToken) -> RevokeResult:
        """End the session of `token` and close the HTTP client."""
        with self._lock:
            grant = self._grant
            if grant is None or grant.token.value.reveal() != token.value.reveal():
                return RevokeResult(revoked=False, detail="token was not issued by this connector")
            api, self._api, self._grant = self._api, None, None
        if api is not None:
            api.close()
        return RevokeResult(revoked=True, detail="session ended; HTTP client closed")

    # -- beyond the contract -----------------------------------------------------------------

    def query_body(self, text: str) -> JsonObject:
        """The ``/query`` answer for `text` and the session's actor, as the API sent it.

        Nothing is mapped, filtered or paged: the results hold every document of the actor
        that matches, whichever tenant (if any) pushed it. `fetch` reads the same answer.
        """
        session = self._session("query_body")
        return session.api.query(text, session.actor)

    # -- helpers -----------------------------------------------------------------------------

    def _session(self, operation: str) -> _Session:
        with self._lock:
            grant, api, config = self._grant, self._api, self._config
        if grant is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs auth() first")
        if api is None or config is None:
            raise LifecycleError(f"{type(self).__name__}.{operation}() needs connect() first")
        return _Session(grant.tenant, grant.actor, api, config)

    def _ingest_all(
        self, session: _Session, memories: Sequence[Memory]
    ) -> tuple[list[str], list[Rejection]]:
        """Ingest `memories` in order: the ids ingested and the rejections.

        The API refusing one memory (400) rejects that memory only. Any other failure stops
        the push: raised when nothing was ingested yet (the caller may push again as a
        whole), else the failed memory and those after it are rejected with the reason.
        """
        accepted: list[str] = []
        refused: list[Rejection] = []
        now = datetime.now(UTC)
        for index, memory in enumerate(memories):
            metadata = _document_metadata(memory, session.tenant, now)
            try:
                session.api.ingest(memory.text, session.actor, metadata)
            except InvalidRequest as error:
                refused.append(Rejection(id=memory.id, reason=f"refused by the API: {error}"))
            except ConnectorError as error:
                if not accepted:
                    raise
                return accepted, [*refused, *_not_ingested(memories[index:], error)]
            else:
                accepted.append(memory.id)
        return accepted, refused


# -- memories as documents, and back --------------------------------------------------------


def _document_metadata(memory: Memory, tenant: str, now: datetime) -> JsonObject:
    return {
        **memory.metadata,
        _ID: memory.id,
        _TAGS: list(memory.tags),
        _TENANT: tenant,
        _CREATED: format_utc(now),
    }


def _readable(hits: Iterable[VaultHit], session: _Session) -> list[_Found]:
    """The hits the session's tenant may see, as memories, in the API's order."""
    legacy = session.config.include_legacy_documents
    found = []
    for hit in hits:
        if _TENANT in hit.metadata:
            if hit.metadata[_TENANT] != session.tenant:
                continue
        elif not legacy:
            continue
        found.append(_found(hit))
    return found


def _found(hit: VaultHit) -> _Found:
    metadata = hit.metadata
    record_id = metadata.get(_ID)
    return _Found(
        id=record_id if isinstance(record_id, str) and record_id else hit.doc_id,
        text=hit.content,
        tags=_tags_of(metadata.get(_TAGS)),
        metadata={k: v for k, v in metadata.items() if not k.startswith(RESERVED_PREFIX)},
        created_at=_moment(metadata.get(_CREATED)),
    )


def _tags_of(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(tag, str) for tag in value):
        return tuple(value)
    return ()


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _latest_versions(found: Iterable[_Found]) -> list[_Found]:
    """One memory per id: its latest version, at the rank of the id's best-ranked version."""
    chosen: dict[str, _Found] = {}
    for memory in found:
        current = chosen.get(memory.id)
        if current is None or _newer(memory, current):
            chosen[memory.id] = memory  # a dict keeps the key's first position
    return list(chosen.values())


def _newer(memory: _Found, than: _Found) -> bool:
    if memory.created_at is None:
        return False
    return than.created_at is None or memory.created_at > than.created_at


def _passes(memory: _Found, memory_filter: MemoryFilter) -> bool:
    """The tags and metadata filters, as `MemoryFilter.matches` applies them."""
    if not set(memory_filter.tags) <= set(memory.tags):
        return False
    return all(
        key in memory.metadata and json_equal(memory.metadata[key], value)
        for key, value in memory_filter.metadata
    )


# -- queries and pages ----------------------------------------------------------------------


def _resume_after(query: MemoryQuery) -> str | None:
    """The id of the memory the cursor's page ended with (None on a first page)."""
    if query.cursor is None:
        return None
    _, position = decode_cursor(
        query.cursor, fingerprint=query.fingerprint, kinds=frozenset({_CURSOR_KIND})
    )
    after = position.get("after")
    if not isinstance(after, str):
        raise InvalidRequest("the cursor was not issued by this memory store")
    return after


def _require_answerable(query: MemoryQuery) -> None:
    if not query.words:
        raise NotSupported(
            "the Knowledge Vault API only searches text: give FetchQuery.text (it cannot list "
            "memories without a query)"
        )
    times = query.filter
    if any(
        moment is not None
        for moment in (
            times.created_after,
            times.created_before,
            times.updated_after,
            times.updated_before,
        )
    ):
        raise NotSupported(
            "the Knowledge Vault API keeps no creation or update times to filter on: "
            "filter on tags and metadata"
        )


def _start_after(memories: Sequence[_Found], after: str | None) -> int:
    if after is None:
        return 0
    for index, memory in enumerate(memories):
        if memory.id == after:
            return index + 1
    raise InvalidRequest(
        "the memory this cursor resumes after is no longer among the results: run the query again"
    )


# -- rejections -----------------------------------------------------------------------------


def _cannot_delete(record_id: str) -> Rejection:
    return Rejection(
        id=record_id, reason="the Knowledge Vault API cannot delete documents: tombstones refused"
    )


def _reserved_reason(key: str) -> str:
    return (
        f"metadata key {key!r} is reserved: keys starting with {RESERVED_PREFIX!r} hold the "
        "memory's id, tags and tenant in the Knowledge Vault"
    )


def _not_ingested(memories: Sequence[Memory], error: ConnectorError) -> list[Rejection]:
    failed, *unsent = memories
    reason = f"ingest failed ({type(error).__name__}: {error}); push it again"
    return [
        Rejection(id=failed.id, reason=reason),
        *(
            Rejection(id=memory.id, reason=f"not sent: the ingest of {failed.id!r} failed first")
            for memory in unsent
        ),
    ]
