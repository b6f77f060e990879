"""The Knowledge Vault HTTP API as the connector calls it: three endpoints, one error mapping.

Every request goes through `map_http_errors` and `raise_for_status` of `integrations.base.http`
(timeouts, network errors, 5xx and 429 become `TransientError` / `RateLimited`, 401/403
`AuthError`, 400 `InvalidRequest` ...). What the HTTP mapping cannot know is checked here: an
answer whose body is not the API's JSON is a `ConnectorError` naming the endpoint, never a
``ValueError`` or ``KeyError`` from deep inside the connector.
"""

from __future__ import annotations

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

from integrations.base import (
    UNRESTRICTED,
    ConnectionFailed,
    ConnectorError,
    EgressGuard,
    IntegrationsError,
    JsonObject,
    TransientError,
)
from integrations.base.http import egress_transport, map_http_errors, raise_for_status

__all__ = ["KnowledgeVaultApi", "VaultHit", "hits_of"]

_SERVICE: Final = "the Knowledge Vault"


@dataclass(frozen=True, slots=True)
class VaultHit:
    """One result of ``GET /query``: a document the API found for the actor."""

    doc_id: str
    content: str
    metadata: JsonObject


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
            body = self._get_json("/health")
        except TransientError as error:
            raise ConnectionFailed(f"{_SERVICE} cannot be reached: {error}") from error
        if body.get("status") != "ok":
            raise ConnectionFailed(f"{_SERVICE} answered /health without status 'ok'")

    def query(self, text: str, actor: str) -> JsonObject:
        """The body of ``GET /query`` for `text` and `actor`, checked to hold a results list."""
        body = self._get_json("/query", params={"q": text, "actor_id": actor})
        _results(body)
        return body

    def ingest(self, content: str, owner: str, metadata: JsonObject) -> str:
        """``POST /ingest``: store a new document; return the id the API gave it."""
        document = {"content": content, "owner": owner, "metadata": metadata}
        with _errors("/ingest"):
            response = raise_for_status(self._client.post("/ingest", json=document))
            body = _object(response.json())
        doc_id = body.get("doc_id")
        if body.get("status") != "ingested" or not isinstance(doc_id, str) or not doc_id:
            raise ConnectorError(f"{_SERVICE} answered /ingest without an ingested doc_id")
        return doc_id

    def _get_json(self, path: str, params: dict[str, str] | None = None) -> JsonObject:
        with _errors(path):
            response = raise_for_status(self._client.get(path, params=params))
            return _object(response.json())


def hits_of(body: JsonObject) -> tuple[VaultHit, ...]:
    """The results of a ``/query`` body; `ConnectorError` when one is not a document."""
    hits = []
    for item in _results(body):
        if not isinstance(item, dict):
            raise ConnectorError(f"{_SERVICE} answered /query with a result that is not an object")
        doc_id, content = item.get("doc_id"), item.get("content")
        metadata = item.get("metadata", {})
        if not isinstance(doc_id, str) or not isinstance(content, str):
            raise ConnectorError(f"{_SERVICE} answered /query with a result without doc_id/content")
        if not isinstance(metadata, dict):
            raise ConnectorError(f"{_SERVICE} answered /query with metadata that is not an object")
        hits.append(VaultHit(doc_id, content, metadata))
    return tuple(hits)


def _results(body: JsonObject) -> list[Any]:
    results = body.get("results")
    if not isinstance(results, list):
        raise ConnectorError(f"{_SERVICE} answered /query without a list of results")
    return results


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
            f"{_SERVICE} answered {endpoint} with a body that is not a JSON object"
        ) from None


def _object(body: Any) -> JsonObject:
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    return body
