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

Two kinds of answer to ``/query`` are read: the list of documents the API documents, and the
query result of Chroma that the deployed service (FastAPI over a Chroma collection) answers,
parallel lists whose ``documents`` are null when the collection keeps no text. A document
without text is still a memory: its record holds ``text`` null with its tags and metadata (in
that shape the service writes the ingest's ``owner`` into the metadata; the key is removed
from the memories this connector pushed when it names the session's actor, so it is the
service's). The results keep the API's order; each record's ``score`` is the API's score, or
a Chroma distance negated, so higher is better in both.

Ingestion is not idempotent: the API assigns a new document id to every request, so the
manifest declares push non-idempotent and sessions never retry it, and a payload with an
idempotency key is refused (`NotSupported`) rather than retried into duplicates. Pushing a
memory id again stores another version; fetch returns one memory per id, the latest version
among the documents the query found. Three outcomes are told apart per memory:

- ingested: the API answered with the new document's id (`PushResult.accepted`);
- refused or failed: the API said it did not store it (400, 429, 503 ...; a connection that
  could not be opened). A refusal (400) rejects that memory only; any other failure stops
  the push, rejecting the failed and unsent memories with the reason, or is raised when no
  memory of the payload was ingested (or may have been) yet, so nothing is lost silently;
- unknown: the request reached the API but the answer does not say whether the document was
  stored (500, 502, 504, no answer before the timeout, the connection closed without an
  answer). The deployed service answers 500 *after* storing. The memory is rejected with a
  reason starting with `OUTCOME_UNKNOWN` (`outcome_unknown` tells), never retried, and the
  push goes on with the next memory. The caller reconciles by fetching the memory's text:
  the record carrying its id (the ``_memory_id`` key) with an `updated_at` not older than
  the push shows it was stored; otherwise it may be pushed again.

Documents are the actor's; memories are the tenant's as well. Results carrying another
tenant are dropped, and documents carrying none (ingested by other programs, such as the
legacy ``memory_adapters.knowledge_vault`` client) are returned only when
`KnowledgeVaultConfig.include_legacy_documents` is set. Errors go through the HTTP mapping of
`integrations.base.http`; opening a connection checks ``GET /health`` and raises
`ConnectionFailed` when the API cannot be reached.

`KnowledgeVaultConfig.raw_answers` makes fetch return the ``/query`` answer itself, as one
record (`RAW_ANSWER_ID`, data ``{"body": <the answer>}``), unfiltered: what the legacy client
returned, kept on the governed path (policies, audit and retries of the session's fetch). It
shows documents of every tenant the actor holds, so a config from a tenant cannot set it.

The API's host and port are the config's one destination (`KnowledgeVaultConfig.destinations`):
for a config from a tenant (`UntrustedConfig`), the session checks it against the egress
policy before the connector is called, and every request then goes through the egress
transport of `integrations.base.http`, which connects to the addresses checked (TLS still
verifies the URL's host name). Configs the platform writes connect as they always did.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from pydantic import Field, JsonValue, field_validator

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

from ._api import KnowledgeVaultApi, OutcomeUnknown, VaultHit, hits_of

__all__ = [
    "DEFAULT_URL",
    "OUTCOME_UNKNOWN",
    "RAW_ANSWER_ID",
    "KnowledgeVaultConfig",
    "KnowledgeVaultConnector",
    "outcome_unknown",
]

DEFAULT_URL: Final = "http://localhost:8000"
"""Where a Knowledge Vault listens unless configured otherwise."""

OUTCOME_UNKNOWN: Final = "outcome unknown:"
"""How the reason of a push's rejection starts when the memory may have been stored."""

RAW_ANSWER_ID: Final = "answer"
"""The id of the one record a fetch returns under `KnowledgeVaultConfig.raw_answers`."""

RESERVED_PREFIX: Final = "_memory_"
"""Metadata keys the connector keeps for itself; a pushed memory may not use them."""

_ID: Final = "_memory_id"
_TAGS: Final = "_memory_tags"
_TENANT: Final = "_memory_tenant"
_CREATED: Final = "_memory_created_at"
_OWNER: Final = "owner"
"""The metadata key the deployed service writes the ingest's owner into (Chroma answers)."""
_CURSOR_KIND: Final = "vault"


def outcome_unknown(rejection: Rejection) -> bool:
    """Whether a push rejected this memory because the API may have stored it (see the module).

    Such a memory must not be pushed again blindly: fetch its text first, and push it again
    only when no record with its id and an `updated_at` from this push comes back.
    """
    return rejection.reason.startswith(OUTCOME_UNKNOWN)


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

    raw_answers: bool = False
    """Fetch returns the ``/query`` answer unchanged, as one record (`RAW_ANSWER_ID`) whose
    data is ``{"body": <the answer>}``: every document of the actor, whichever tenant pushed
    it. For the legacy client; refused in a config from a tenant."""

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
    text: str | None
    tags: tuple[str, ...]
    metadata: JsonObject
    created_at: datetime | None
    score: float | None

    def to_record(self) -> Record:
        data: JsonObject = {"text": self.text, "tags": list(self.tags), "metadata": self.metadata}
        if self.created_at is not None:
            data["created_at"] = format_utc(self.created_at)
        if self.score is not None:
            data["score"] = self.score
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
        """Open an HTTP client on the API and check ``/health``; a client already open is closed.

        `KnowledgeVaultConfig.raw_answers` in a config from a tenant raises `ConfigError`
        before any request: raw answers are not narrowed to the session's tenant.
        """
        if not isinstance(config, KnowledgeVaultConfig):
            raise ConfigError(
                f"{type(self).__name__} needs a KnowledgeVaultConfig, got {type(config).__name__}"
            )
        if config.raw_answers and config.egress.restricted:
            raise ConfigError(
                "raw_answers: a config from a tenant cannot set it (raw answers hold the "
                "documents of every tenant the actor belongs to)"
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
        if session.config.raw_answers:
            return _raw_answer(session, query)
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

    def query_body(self, text: str) -> JsonValue:
        """The ``/query`` answer for `text` and the session's actor, as the API sent it.

        Nothing is mapped, filtered or paged: the results hold every document of the actor
        that matches, whichever tenant (if any) pushed it. A direct call, outside the
        session's policies, audit and retries; `KnowledgeVaultConfig.raw_answers` gives the
        same answer through the session's fetch.
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
        """Ingest `memories` in order: the ids ingested and the rejections, in order.

        The API refusing one memory (400) rejects that memory only, and an unknown outcome
        (`OutcomeUnknown`) rejects it with a reason saying so; the push goes on. Any other
        failure stops the push: raised when no memory was ingested, or may have been, yet
        (the caller may push again as a whole), else the failed memory and those after it
        are rejected with the reason.
        """
        accepted: list[str] = []
        rejected: list[Rejection] = []
        maybe_stored = False
        now = datetime.now(UTC)
        for index, memory in enumerate(memories):
            metadata = _document_metadata(memory, session.tenant, now)
            try:
                session.api.ingest(memory.text, session.actor, metadata)
            except InvalidRequest as error:
                rejected.append(Rejection(id=memory.id, reason=f"refused by the API: {error}"))
            except OutcomeUnknown as error:
                maybe_stored = True
                rejected.append(Rejection(id=memory.id, reason=_unknown_reason(error, now)))
            except ConnectorError as error:
                if not accepted and not maybe_stored:
                    raise
                return accepted, [*rejected, *_not_ingested(memories[index:], error)]
            else:
                accepted.append(memory.id)
        return accepted, rejected


# -- raw answers ----------------------------------------------------------------------------


def _raw_answer(session: _Session, query: FetchQuery) -> FetchResult:
    """The ``/query`` answer for the query's text, unchanged, as one record."""
    if query.text is None or not query.text.strip():
        raise NotSupported(
            "the Knowledge Vault API only searches text: give FetchQuery.text (it cannot list "
            "documents without a query)"
        )
    if query.filters:
        raise InvalidRequest(
            "raw_answers: the answer is returned as the API sent it, so it cannot be filtered; "
            "give no filters"
        )
    if query.cursor is not None:
        raise InvalidRequest("raw_answers: the answer is a single page, with no cursor")
    body = session.api.query(query.text, session.actor)
    return FetchResult(records=(Record(id=RAW_ANSWER_ID, data={"body": body}),))


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
        found.append(_found(hit, session.actor))
    return found


def _found(hit: VaultHit, actor: str) -> _Found:
    metadata = hit.metadata
    record_id = metadata.get(_ID)
    pushed = record_id if isinstance(record_id, str) and record_id else None
    own = {k: v for k, v in metadata.items() if not k.startswith(RESERVED_PREFIX)}
    if pushed is not None and hit.owner_in_metadata and own.get(_OWNER) == actor:
        del own[_OWNER]  # the service's key, not the memory's
    return _Found(
        id=pushed or hit.doc_id,
        text=hit.content,
        tags=_tags_of(metadata.get(_TAGS)),
        metadata=own,
        created_at=_moment(metadata.get(_CREATED)),
        score=hit.score,
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
    """One memory per id: its latest version, at the rank (and with the score) of the id's
    best-ranked version, so that the API's order holds."""
    chosen: dict[str, _Found] = {}
    for memory in found:
        current = chosen.get(memory.id)
        if current is None:
            chosen[memory.id] = memory
        elif _newer(memory, current):
            # a dict keeps the key's first position; the score stays that position's
            chosen[memory.id] = dataclasses.replace(memory, score=current.score)
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


def _unknown_reason(error: OutcomeUnknown, stamp: datetime) -> str:
    return (
        f"{OUTCOME_UNKNOWN} {error}; the memory may have been stored (created_at "
        f"{format_utc(stamp)}): before pushing it again, fetch its text and look for a record "
        "with its id and that updated_at"
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
