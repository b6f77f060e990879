"""A Knowledge Vault HTTP API on 127.0.0.1, served from memory, for tests and local work.

The server speaks the API the Knowledge Vault connector calls, in one of two modes.

``mode="documents"`` (the default) answers as the API is documented:

- ``GET /health`` answers ``{"status": "ok"}``;
- ``GET /query?q=<text>&actor_id=<actor>`` answers ``{"query": <text>, "results": [...]}``:
  the documents owned by the actor whose content holds every word of the text (whole words,
  case-insensitive), best first. A result is ``{"doc_id", "content", "metadata", "owner",
  "score"}``; the score counts the occurrences of the query's words in the content, and
  equal scores list the newest document first;
- ``POST /ingest`` with ``{"content": str, "owner": str, "metadata": {...}}`` stores a new
  document and answers ``{"doc_id": str, "status": "ingested"}``. Ingesting the same body
  twice stores two documents: the server assigns the ids.

``mode="deployed"`` answers as the deployed service does (FastAPI over a Chroma collection
that keeps metadata and embeddings, not the text). The same documents match, in the same
order, but:

- ``/query`` answers ``{"query": <text>, "results": <Chroma's query result>}``: ``ids``,
  ``documents``, ``metadatas`` and ``distances`` are parallel lists holding one inner list
  (the query's one embedding); every ``documents`` entry is null; a metadata is the ingested
  metadata with the ingest's ``owner`` written into it; distances grow from the best match;
  ``embeddings``, ``uris`` and ``data`` are null and ``included`` names the lists sent;
- ``/ingest`` stores the document and then answers 500 with the plain-text body
  ``Internal Server Error``: the client cannot tell from the answer that the write happened.

In both modes a missing or empty ``q`` or ``actor_id`` and a body that is not the expected JSON
object answer 400. With an `api_key`, every request needs ``Authorization: Bearer <api_key>``
(401 otherwise). Tests control the server directly: `fail_next` answers the next requests
with an error status, `delay_next` holds them back (to provoke client timeouts), `requests`
counts the requests each endpoint received, and `documents` lists what is stored (with the
content as ingested, in both modes). `http` is the underlying
`integrations.base.testing.LoopbackHTTPServer`, for its other controls (`drop_next`,
`latency`, the recorded requests).

It runs on that shared machinery: a thread per connection on an ephemeral port, and leaving
the ``with`` block cuts delays short, shuts down open client connections, joins every thread
and closes the listening socket.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, get_args

from integrations.base.testing import HTTPReply, HTTPRequest, LoopbackHTTPServer

__all__ = ["KnowledgeVaultServer", "VaultDocument", "VaultMode"]

ENDPOINTS: Final = {"/health": "GET", "/query": "GET", "/ingest": "POST"}
"""The paths the API serves and the method of each."""

VaultMode = Literal["documents", "deployed"]
"""How the server answers: as the API is documented, or as the deployed service does."""

MODES: Final[tuple[VaultMode, ...]] = get_args(VaultMode)
"""Every mode, for tests that run against each."""

_WORD: Final = re.compile(r"\w+")
_CHROMA_INCLUDED: Final = ["metadatas", "documents", "distances"]


@dataclass(frozen=True, slots=True)
class VaultDocument:
    """A stored document: what was ingested, and the id the server gave it."""

    doc_id: str
    content: str
    owner: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Match:
    document: VaultDocument
    score: int


class KnowledgeVaultServer:
    """The Knowledge Vault endpoints (/health, /query, /ingest) served from memory.

    Use it with ``with``; `url` is the base URL to give the connector.
    """

    def __init__(self, *, api_key: str | None = None, mode: VaultMode = "documents") -> None:
        """A stopped server with no documents; with `api_key`, requests must present it."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {list(MODES)}")
        self.mode: Final = mode
        self._lock = threading.Lock()
        self._documents: list[VaultDocument] = []
        self.http: Final = LoopbackHTTPServer(bearer_token=api_key, name="knowledge-vault-server")
        self.http.route("GET", "/health", lambda _: HTTPReply(body={"status": "ok"}))
        self.http.route("GET", "/query", self._query)
        self.http.route("POST", "/ingest", self._ingest)

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        return self.http.url

    # -- lifetime ------------------------------------------------------------------------

    def start(self) -> KnowledgeVaultServer:
        """Serve in a background thread."""
        self.http.start()
        return self

    def stop(self) -> None:
        """Stop serving and release every thread and socket the server holds."""
        self.http.stop()

    def __enter__(self) -> KnowledgeVaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the API, also callable directly -------------------------------------------------

    def ingest(self, content: str, owner: str, metadata: Mapping[str, Any] | None = None) -> str:
        """Store a document as ``POST /ingest`` does; return its new id."""
        document = VaultDocument(uuid.uuid4().hex, content, owner, dict(metadata or {}))
        with self._lock:
            self._documents.append(document)
        return document.doc_id

    def search(self, text: str, actor_id: str) -> list[dict[str, Any]] | dict[str, Any]:
        """The ``results`` ``GET /query`` answers for `text` and `actor_id`: in ``documents``
        mode a list of documents, best first; in ``deployed`` mode Chroma's query result."""
        matches = self._matches(text, actor_id)
        if self.mode == "deployed":
            return _chroma_result(matches)
        return [_document_result(match) for match in matches]

    # -- test controls -------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        retry_after: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        """Answer the next `count` requests (to `endpoint`, else to any) with `status`.

        `retry_after` is sent as the ``Retry-After`` header. Nothing is stored or searched
        for a failed request.
        """
        self.http.fail_next(count, status=status, retry_after=retry_after, path=_known(endpoint))

    def delay_next(self, count: int = 1, *, seconds: float, endpoint: str | None = None) -> None:
        """Hold the next `count` requests (to `endpoint`, else to any) for `seconds`, then
        answer them normally; stopping the server cuts the wait short."""
        self.http.delay_next(seconds, count, path=_known(endpoint))

    def requests(self, endpoint: str) -> int:
        """How many requests `endpoint` (``/query``, say) received, failed ones included."""
        return self.http.count(endpoint)

    def documents(self) -> list[VaultDocument]:
        """Every stored document, oldest first."""
        with self._lock:
            return list(self._documents)

    # -- serving (called by the connection threads) ----------------------------------------

    def _matches(self, text: str, actor_id: str) -> list[_Match]:
        """The actor's documents holding every word of `text`: best score, then newest, first."""
        words = [word.lower() for word in _WORD.findall(text)]
        with self._lock:
            owned = [(n, d) for n, d in enumerate(self._documents) if d.owner == actor_id]
        scored = []
        for number, document in owned:
            counts = Counter(word.lower() for word in _WORD.findall(document.content))
            if words and all(counts[word] for word in words):
                scored.append((sum(counts[word] for word in set(words)), number, document))
        scored.sort(key=lambda item: (-item[0], -item[1]))
        return [_Match(document, score) for score, _, document in scored]

    def _query(self, request: HTTPRequest) -> HTTPReply:
        text = request.query.get("q", [""])[0]
        actor = request.query.get("actor_id", [""])[0]
        if not text.strip() or not actor:
            return HTTPReply(400, {"error": "q and actor_id are required"})
        return HTTPReply(body={"query": text, "results": self.search(text, actor)})

    def _ingest(self, request: HTTPRequest) -> HTTPReply:
        document = request.json_object()  # anything else answers 400, saying why
        content, owner = document.get("content"), document.get("owner")
        metadata = document.get("metadata", {})
        if not isinstance(content, str) or not content.strip():
            return HTTPReply(400, {"error": "content must be a non-empty string"})
        if not isinstance(owner, str) or not owner:
            return HTTPReply(400, {"error": "owner must be a non-empty string"})
        if not isinstance(metadata, dict):
            return HTTPReply(400, {"error": "metadata must be an object"})
        doc_id = self.ingest(content, owner, metadata)
        if self.mode == "deployed":  # stored; a later step of the service's handler fails
            return HTTPReply(500, "Internal Server Error")
        return HTTPReply(body={"doc_id": doc_id, "status": "ingested"})


def _known(endpoint: str | None) -> str | None:
    if endpoint is not None and endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINTS)}")
    return endpoint


def _document_result(match: _Match) -> dict[str, Any]:
    document = match.document
    return {
        "doc_id": document.doc_id,
        "content": document.content,
        "metadata": document.metadata,
        "owner": document.owner,
        "score": match.score,
    }


def _chroma_result(matches: list[_Match]) -> dict[str, Any]:
    """Chroma's query result for one query embedding: parallel lists, no text kept."""
    return {
        "ids": [[match.document.doc_id for match in matches]],
        "embeddings": None,
        "documents": [[None for _ in matches]],
        "uris": None,
        "included": list(_CHROMA_INCLUDED),
        "data": None,
        "metadatas": [
            [{**match.document.metadata, "owner": match.document.owner} for match in matches]
        ],
        "distances": [[_distance(match.score) for match in matches]],
    }


def _distance(score: int) -> float:
    """A distance that grows as the score falls (the best match is the nearest)."""
    return round(1.0 / (1 + score), 6)
