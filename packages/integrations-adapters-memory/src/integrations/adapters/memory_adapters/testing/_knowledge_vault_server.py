"""A Knowledge Vault HTTP API on 127.0.0.1, served from memory, for tests and local work.

The server speaks the API the Knowledge Vault connector calls:

- ``GET /health`` answers ``{"status": "ok"}``;
- ``GET /query?q=<text>&actor_id=<actor>`` answers ``{"query": <text>, "results": [...]}``:
  the documents owned by the actor whose content holds every word of the text (whole words,
  case-insensitive), best first. A result is ``{"doc_id", "content", "metadata", "owner",
  "score"}``; the score counts the occurrences of the query's words in the content, and
  equal scores list the newest document first;
- ``POST /ingest`` with ``{"content": str, "owner": str, "metadata": {...}}`` stores a new
  document and answers ``{"doc_id": str, "status": "ingested"}``. Ingesting the same body
  twice stores two documents: the server assigns the ids.

A missing or empty ``q`` or ``actor_id`` and a body that is not the expected JSON object
answer 400. With an `api_key`, every request needs ``Authorization: Bearer <api_key>`` (401
otherwise). Tests control the server directly: `fail_next` answers the next requests with an
error status, `delay_next` holds them back (to provoke client timeouts), `requests` counts
the requests each endpoint received, and `documents` lists what is stored.

It runs in a daemon thread on an ephemeral port, one thread per connection. Leaving the
``with`` block stops it: delays are cut short, open client connections are shut down, every
connection thread is joined and the listening socket is closed.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

__all__ = ["KnowledgeVaultServer", "VaultDocument"]

ENDPOINTS: Final = {"/health": "GET", "/query": "GET", "/ingest": "POST"}
"""The paths the API serves and the method of each."""

_WORD: Final = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class VaultDocument:
    """A stored document: what was ingested, and the id the server gave it."""

    doc_id: str
    content: str
    owner: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Fault:
    """What the server does to one coming request: wait, then answer `status` (or normally)."""

    endpoint: str | None
    status: int | None = None
    delay: float = 0.0
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


class KnowledgeVaultServer:
    """The Knowledge Vault endpoints (/health, /query, /ingest) served from memory.

    Use it with ``with``; `url` is the base URL to give the connector.
    """

    def __init__(self, *, api_key: str | None = None) -> None:
        """A stopped server with no documents; with `api_key`, requests must present it."""
        self._api_key = api_key
        self._lock = threading.Lock()
        self._documents: list[VaultDocument] = []
        self._faults: list[_Fault] = []
        self._counts: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._http = _HttpServer(self)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="knowledge-vault-server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- lifetime ------------------------------------------------------------------------

    def start(self) -> KnowledgeVaultServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release every thread and socket the server holds."""
        self._stopping.set()
        if self._thread.is_alive():
            self._http.shutdown()
            self._thread.join(timeout=5)
        self._http.disconnect_clients()
        self._http.server_close()  # joins the connection threads

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

    def search(self, text: str, actor_id: str) -> list[dict[str, Any]]:
        """The results ``GET /query`` answers for `text` and `actor_id`, best first."""
        words = [word.lower() for word in _WORD.findall(text)]
        with self._lock:
            owned = [(n, d) for n, d in enumerate(self._documents) if d.owner == actor_id]
        scored = []
        for number, document in owned:
            counts = Counter(word.lower() for word in _WORD.findall(document.content))
            if words and all(counts[word] for word in words):
                scored.append((sum(counts[word] for word in set(words)), number, document))
        scored.sort(key=lambda item: (-item[0], -item[1]))
        return [_result(document, score) for score, _, document in scored]

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
        fault = _Fault(_known(endpoint), status=status, retry_after=retry_after)
        with self._lock:
            self._faults.extend([fault] * count)

    def delay_next(self, count: int = 1, *, seconds: float, endpoint: str | None = None) -> None:
        """Hold the next `count` requests (to `endpoint`, else to any) for `seconds`, then
        answer them normally; stopping the server cuts the wait short."""
        fault = _Fault(_known(endpoint), delay=seconds)
        with self._lock:
            self._faults.extend([fault] * count)

    def requests(self, endpoint: str) -> int:
        """How many requests `endpoint` (``/query``, say) received, failed ones included."""
        with self._lock:
            return self._counts[endpoint]

    def documents(self) -> list[VaultDocument]:
        """Every stored document, oldest first."""
        with self._lock:
            return list(self._documents)

    # -- serving -------------------------------------------------------------------------

    def _answer(self, method: str, target: str, authorization: str | None, body: bytes) -> _Answer:
        """The answer to one request (called by the connection threads)."""
        parts = urlsplit(target)
        with self._lock:
            self._counts[parts.path] += 1
            fault = self._take_fault(parts.path)
        if fault is not None:
            self._stopping.wait(fault.delay)
            if fault.status is not None:
                extra = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
                return _Answer(fault.status, {"error": "failure requested by the test"}, extra)
        if parts.path not in ENDPOINTS:
            return _Answer(404, {"error": f"no endpoint {parts.path}"})
        if method != ENDPOINTS[parts.path]:
            return _Answer(405, {"error": f"{parts.path} answers {ENDPOINTS[parts.path]}"})
        if self._api_key is not None and authorization != f"Bearer {self._api_key}":
            return _Answer(401, {"error": "a valid bearer token is required"})
        if parts.path == "/health":
            return _Answer(200, {"status": "ok"})
        if parts.path == "/query":
            return self._query(parse_qs(parts.query))
        return self._ingest(body)

    def _take_fault(self, path: str) -> _Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.endpoint in (None, path):
                return self._faults.pop(index)
        return None

    def _query(self, params: Mapping[str, list[str]]) -> _Answer:
        text = params.get("q", [""])[0]
        actor = params.get("actor_id", [""])[0]
        if not text.strip() or not actor:
            return _Answer(400, {"error": "q and actor_id are required"})
        return _Answer(200, {"query": text, "results": self.search(text, actor)})

    def _ingest(self, body: bytes) -> _Answer:
        try:
            document = json.loads(body)
        except ValueError:
            return _Answer(400, {"error": "the body is not JSON"})
        if not isinstance(document, dict):
            return _Answer(400, {"error": "the body must be a JSON object"})
        content, owner = document.get("content"), document.get("owner")
        metadata = document.get("metadata", {})
        if not isinstance(content, str) or not content.strip():
            return _Answer(400, {"error": "content must be a non-empty string"})
        if not isinstance(owner, str) or not owner:
            return _Answer(400, {"error": "owner must be a non-empty string"})
        if not isinstance(metadata, dict):
            return _Answer(400, {"error": "metadata must be an object"})
        return _Answer(200, {"doc_id": self.ingest(content, owner, metadata), "status": "ingested"})


def _known(endpoint: str | None) -> str | None:
    if endpoint is not None and endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINTS)}")
    return endpoint


def _result(document: VaultDocument, score: int) -> dict[str, Any]:
    return {
        "doc_id": document.doc_id,
        "content": document.content,
        "metadata": document.metadata,
        "owner": document.owner,
        "score": score,
    }


class _HttpServer(ThreadingHTTPServer):
    """One thread per connection; remembers open connections so that stopping can end them."""

    daemon_threads = False  # server_close() joins the connection threads
    block_on_close = True

    def __init__(self, vault: KnowledgeVaultServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.vault = vault
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def opened(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.add(connection)

    def closed(self, connection: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(connection)

    def disconnect_clients(self) -> None:
        """End the connections clients keep open, so that their threads finish."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):  # the client closed it meanwhile
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout) leaves a broken pipe behind: no traceback."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a production server offers
    disable_nagle_algorithm = True  # headers and body leave in two writes: no delayed ACK wait
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        self.server.opened(self.connection)

    def finish(self) -> None:
        self.server.closed(self.connection)
        super().finish()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        authorization = self.headers.get("Authorization")
        answer = self.server.vault._answer(self.command, self.path, authorization, body)
        content = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""
