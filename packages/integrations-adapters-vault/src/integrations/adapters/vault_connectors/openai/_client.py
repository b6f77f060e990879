"""The chat completions API over httpx: one pooled client, no retries of its own.

httpx rather than the official ``openai`` SDK: the session owns retries (each attempt audited,
``Retry-After`` honoured once by the session's policy), and the SDK retries on its own unless
told not to; `integrations.base.http` already maps httpx's failures into the library's tree
and supplies the egress transport a tenant's config must go through; and the streaming format
is a few lines of server-sent events (`_sse`). The client sends the API key as a bearer token,
follows no redirect (a redirect could carry the key elsewhere) and waits `timeout` seconds to
connect and for each read.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from functools import cache
from typing import Any, Final

try:
    import httpx
except ImportError as missing:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        "the vault.openai connector needs httpx: pip install 'integrations-adapters-vault[openai]'"
    ) from missing

from integrations.base import UNRESTRICTED, ConnectorError, EgressGuard
from integrations.base.http import egress_transport

from ._errors import SERVICE, error_in_stream, error_of, provider_errors
from ._sse import event_data

__all__ = ["CHAT", "MODELS", "OpenAIClient"]

CHAT: Final = "/chat/completions"
MODELS: Final = "/models"
_DONE: Final = "[DONE]"


class OpenAIClient:
    """An httpx client on one OpenAI-compatible API (`url` is its base URL, ``.../v1``)."""

    def __init__(
        self, url: str, *, api_key: str, timeout: float, egress: EgressGuard = UNRESTRICTED
    ) -> None:
        self._key = api_key
        verify = _tls_context()
        self._client = httpx.Client(
            base_url=url,
            timeout=httpx.Timeout(timeout),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            follow_redirects=False,
            verify=verify,
            transport=egress_transport(egress, verify=verify),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={str(self._client.base_url)!r})"

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /chat/completions`` without streaming: the completion object, parsed."""
        with provider_errors(CHAT):
            response = self._client.post(CHAT, json=body)
            if not response.is_success:
                raise error_of(response, secret=self._key)
            answer = response.json()
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise ConnectorError(f"{SERVICE} answered {CHAT} without a list of choices")
        return answer

    def stream(self, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """``POST /chat/completions`` with ``stream: true``: each chunk object as it arrives.

        The response is read as it comes and released when the iterator ends or is closed
        (a generator's ``finally``), so a caller that stops early frees the connection.
        """
        with provider_errors(CHAT), self._client.stream("POST", CHAT, json=body) as response:
            if not response.is_success:
                response.read()
                raise error_of(response, secret=self._key)
            for data in event_data(response.iter_lines()):
                if data == _DONE:
                    return
                chunk = json.loads(data)
                if not isinstance(chunk, dict):
                    raise ConnectorError(f"{SERVICE} streamed an event that is not an object")
                if chunk.get("error") is not None:
                    raise error_in_stream(chunk, secret=self._key)
                yield chunk
            raise ConnectorError(f"{SERVICE} ended the stream before data: {_DONE}")

    def models(self) -> list[str]:
        """``GET /models``: the ids of the models the API serves."""
        with provider_errors(MODELS):
            response = self._client.get(MODELS)
            if not response.is_success:
                raise error_of(response, secret=self._key)
            answer = response.json()
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise ConnectorError(f"{SERVICE} answered {MODELS} without a list of models")
        return [
            item["id"]
            for item in data
            if isinstance(item, dict) and isinstance(item.get("id"), str)
        ]


@cache
def _tls_context() -> ssl.SSLContext:
    """The TLS settings every client shares: httpx's defaults (certifi's CAs), built once.

    Loading the CA bundle takes tens of milliseconds; a platform that opens a session per
    call would otherwise pay it on every connect.
    """
    return httpx.create_ssl_context()
