"""The Knowledge Vault HTTP API as the connector calls it: three endpoints, one error mapping.

Every request goes through `map_http_errors` and `raise_for_status` of `integrations.base.http`
(timeouts, network errors, 5xx and 429 become `TransientError` / `RateLimited`, 401/403
`AuthError`, 400 `InvalidRequest` ...). What the HTTP mapping cannot know is checked here: an
answer whose body is not the API's JSON is a `ConnectorError` naming the endpoint, never a
``ValueError`` or ``KeyError`` from deep inside the connector.

Two answers of ``GET /query`` are read (`hits_of`), because two kinds of Knowledge Vault are in
use: the API as documented answers ``results`` as a list of documents, and the deployed
service (FastAPI in front of a Chroma collection) answers Chroma's query result, parallel lists
with one inner list per query embedding, whose ``documents`` entries are null when the
collection keeps no text.

An ``/ingest`` whose answer does not say whether the document was stored raises
`OutcomeUnknown`, not `TransientError`: the request reached the API, which may have stored it
(the deployed service answers 500 after its store's write succeeded), so sending it again could
store it twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

try:
    import httpx
except ImportError as missing:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        "the Knowledge Vault connector needs httpx: "
        "pip install 'integrations-adapters-memory[knowledge-vault]'"
    ) from missing

from pydantic import JsonValue

from integrations.base import (
    UNRESTRICTED,
    ConnectionFailed,
    ConnectorError,
    EgressGuard,
    IntegrationsError,
    JsonObject,
    TransientError,
)
from integrations.base.http import (
    egress_transport,
    error_from_response,
    map_http_errors,
    raise_for_status,
)

__all__ = ["KnowledgeVaultApi", "OutcomeUnknown", "VaultHit", "hits_of"]

_SERVICE: Final = "the Knowledge Vault"

OUTCOME_UNKNOWN_STATUSES: Final = frozenset({500, 502, 504})
"""Answers to ``/ingest`` that leave open whether the document was stored: the application
(500) or what stands before it (502, 504) failed after the request arrived. Other failures
(429, 503, 4xx) say the request was not handled."""

_NO_ANSWER: Final = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError)
"""Failures after the request was sent: no answer came (in time, or at all)."""

_CHROMA_COLUMNS: Final = ("documents", "metadatas", "distances")
"""The lists of a Chroma query result that run parallel to ``ids`` (null when not included)."""


class OutcomeUnknown(ConnectorError):
    """``/ingest`` reached the API, but its answer does not say whether the document was stored.

    Not a `TransientError`: no retry policy may send the request again, since the API gives
    every ingested document a new id and a repeated request can store the memory twice.
    """


@dataclass(frozen=True, slots=True)
class VaultHit:
    """One result of ``GET /query``: a document the API found for the actor, in its order."""

    doc_id: str
    content: str | None
    """The document's text; None when the API answered without it (Chroma keeps none)."""
    metadata: JsonObject
    score: float | None = None
    """Higher is better: the API's ``score``, or a Chroma distance negated; None if absent."""
    owner_in_metadata: bool = False
    """The API wrote the document's owner into `metadata` (as the Chroma service does)."""


class KnowledgeVaultApi:
    """An httpx client on one Knowledge Vault: keep-alive connections, timeouts, a bearer key.

    Every request goes through the transport of `egress` (`egress_transport`): for a config
    from a tenant it checks each request's destination and connects to the addresses the
    session checked; for a config the platform wrote (`UNRESTRICTED`) the client keeps
    httpx's own transport, as before.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        api_key: str | None,
        egress: EgressGuard = UNRESTRICTED,
    ) -> None:
        headers = {"Accept": "application/json"}
        if api_key is not None:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=url,
            timeout=httpx.Timeout(timeout),
            headers=headers,
            follow_redirects=False,
            transport=egress_transport(egress),
        )

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def check_health(self) -> None:
        """``GET /health``; `ConnectionFailed` when the API cannot be reached or is not healthy.

        An unreachable server is a `TransientError` to the HTTP mapping (a retry of an
        operation may succeed); when opening the connection, it means the connection could not
        be opened, which is `ConnectionFailed`.
        """
        try:
            body = self._get("/health")
        except TransientError as error:
            raise ConnectionFailed(f"{_SERVICE} cannot be reached: {error}") from error
        if not isinstance(body, dict) or body.get("status") != "ok":
            raise ConnectionFailed(f"{_SERVICE} answered /health without status 'ok'")

    def query(self, text: str, actor: str) -> JsonValue:
        """The body of ``GET /query`` for `text` and `actor`, parsed, whatever JSON it holds.

        `text` is sent as given. `hits_of` reads the results; the raw body is what legacy
        callers were given.
        """
        return self._get("/query", params={"q": text, "actor_id": actor})

    def ingest(self, content: str, owner: str, metadata: JsonObject) -> str:
        """``POST /ingest``: store a new document; return the id the API gave it.

        `OutcomeUnknown` when the request was sent but the answer does not say whether the
        document was stored (see `OUTCOME_UNKNOWN_STATUSES`); the errors of the HTTP mapping
        when it says it was not.
        """
        document = {"content": content, "owner": owner, "metadata": metadata}
        with _errors("/ingest"):
            try:
                response = self._client.post("/ingest", json=document)
            except _NO_ANSWER as error:
                raise OutcomeUnknown(
                    f"{_SERVICE} gave no answer to /ingest after receiving it "
                    f"({type(error).__name__})"
                ) from None
            if response.status_code in OUTCOME_UNKNOWN_STATUSES:
                raise OutcomeUnknown(f"{_SERVICE} answered {error_from_response(response)}")
            raise_for_status(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        doc_id = body.get("doc_id") if isinstance(body, dict) else None
        if not isinstance(body, dict) or body.get("status") != "ingested":
            doc_id = None
        if not isinstance(doc_id, str) or not doc_id:
            raise OutcomeUnknown(
                f"{_SERVICE} answered /ingest with HTTP {response.status_code} but without "
                "an ingested doc_id"
            )
        return doc_id

    def _get(self, path: str, params: dict[str, str] | None = None) -> JsonValue:
        with _errors(path):
            response = raise_for_status(self._client.get(path, params=params))
            value: JsonValue = response.json()
            return value


# -- the results of /query -------------------------------------------------------------------


def hits_of(body: JsonValue) -> tuple[VaultHit, ...]:
    """The results of a ``/query`` body, in the API's order, whichever of the two shapes.

    ``results`` is either a list of documents (``doc_id``, ``content``, ``metadata``,
    ``score``) or Chroma's query result (``ids``, ``documents``, ``metadatas``, ``distances``:
    parallel lists, one inner list per query embedding, read one after the other). A
    document's text and metadata may be null. Anything else, and parallel lists of unequal
    lengths, is a `ConnectorError`.
    """
    if not isinstance(body, dict):
        raise ConnectorError(f"{_SERVICE} answered /query with a body that is not a JSON object")
    results = body.get("results")
    if isinstance(results, list):
        return tuple(_document_hit(item) for item in results)
    if isinstance(results, dict) and "ids" in results:
        return _chroma_hits(results)
    raise ConnectorError(
        f"{_SERVICE} answered /query without results: expected a list of documents or "
        "Chroma's ids/documents/metadatas/distances lists"
    )


def _document_hit(item: JsonValue) -> VaultHit:
    if not isinstance(item, dict):
        raise ConnectorError(f"{_SERVICE} answered /query with a result that is not an object")
    doc_id = item.get("doc_id")
    if not isinstance(doc_id, str) or not doc_id:
        raise ConnectorError(f"{_SERVICE} answered /query with a result without a doc_id")
    return VaultHit(
        doc_id,
        _text(item.get("content"), f"the content of {doc_id!r}"),
        _metadata(item.get("metadata"), f"the metadata of {doc_id!r}"),
        _number(item.get("score"), f"the score of {doc_id!r}"),
    )


def _chroma_hits(results: JsonObject) -> tuple[VaultHit, ...]:
    ids = results["ids"]
    if not isinstance(ids, list) or not all(isinstance(inner, list) for inner in ids):
        raise ConnectorError(f"{_SERVICE} answered /query with ids that are not lists of ids")
    columns = {name: _column(results.get(name), name, ids) for name in _CHROMA_COLUMNS}
    hits: list[VaultHit] = []
    for query, inner in enumerate(ids):
        assert isinstance(inner, list)  # checked above
        for index, doc_id in enumerate(inner):
            if not isinstance(doc_id, str) or not doc_id:
                raise ConnectorError(
                    f"{_SERVICE} answered /query with ids[{query}][{index}] that is not an id"
                )
            where = f"[{query}][{index}]"
            document, metadata, distance = (
                _cell(columns[name], query, index) for name in _CHROMA_COLUMNS
            )
            score = _number(distance, f"distances{where}")
            hits.append(
                VaultHit(
                    doc_id,
                    _text(document, f"documents{where}"),
                    _metadata(metadata, f"metadatas{where}"),
                    None if score is None else -score,
                    owner_in_metadata=True,
                )
            )
    return tuple(hits)


def _cell(column: list[list[JsonValue]] | None, query: int, index: int) -> JsonValue:
    return None if column is None else column[query][index]


def _column(value: JsonValue, name: str, ids: list[Any]) -> list[list[JsonValue]] | None:
    """A Chroma column as lists parallel to `ids`: null columns and null inner lists are
    widened to nulls; other shapes, or lengths that differ from `ids`, are an error."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != len(ids):
        size = f"{len(value)} lists" if isinstance(value, list) else "no list"
        raise ConnectorError(
            f"{_SERVICE} answered /query with {name} holding {size} for {len(ids)} lists of "
            "ids: Chroma's lists must run parallel"
        )
    widened: list[list[JsonValue]] = []
    for query, (inner, inner_ids) in enumerate(zip(value, ids, strict=True)):
        if inner is None:
            widened.append([None] * len(inner_ids))
            continue
        if not isinstance(inner, list) or len(inner) != len(inner_ids):
            size = f"{len(inner)} entries" if isinstance(inner, list) else "no list"
            raise ConnectorError(
                f"{_SERVICE} answered /query with {name}[{query}] holding {size} for "
                f"{len(inner_ids)} ids: Chroma's lists must run parallel"
            )
        widened.append(inner)
    return widened


def _text(value: JsonValue, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConnectorError(f"{_SERVICE} answered /query with {what} that is not text")


def _metadata(value: JsonValue, what: str) -> JsonObject:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise ConnectorError(f"{_SERVICE} answered /query with {what} that is not an object")


def _number(value: JsonValue, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ConnectorError(f"{_SERVICE} answered /query with {what} that is not a number")


@contextmanager
def _errors(endpoint: str) -> Iterator[None]:
    """The one place Knowledge Vault failures become the library's errors."""
    try:
        with map_http_errors():
            yield
    except IntegrationsError:  # InvalidRequest is a ValueError too: it passes unchanged
        raise
    except ValueError:  # the body does not decode as JSON (httpx raises json's error)
        raise ConnectorError(
            f"{_SERVICE} answered {endpoint} with a body that is not JSON"
        ) from None
