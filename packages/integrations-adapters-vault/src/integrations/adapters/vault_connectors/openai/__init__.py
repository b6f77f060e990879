"""``vault.openai``: chat completions of an OpenAI-compatible API as governed named actions.

Two actions, with the input schemas of the legacy connector (``schemas/`` beside the
manifest, draft 7; the session checks an input before the connector sees it):

- ``model_invoke``: ``model``, ``messages`` (``role`` and ``content`` each), optional
  ``temperature`` and ``max_tokens``; nothing else;
- ``tool_call``: the same plus ``tools`` (the API's tool definitions) and optionally
  ``tool_choice``; messages may carry a tool's result (role ``tool``, ``tool_call_id``) or
  the assistant's ``tool_calls`` to continue the exchange.

`invoke` sends ``POST {url}/chat/completions`` and answers an `ActionResult` whose output is
the provider's completion object as sent and whose usage holds its integer token counts
(``prompt_tokens``, ``completion_tokens``, ``total_tokens``), which the session records in the
audit event. `stream` sends the same request with ``stream: true`` (and
``stream_options.include_usage`` unless `OpenAIConfig.stream_usage` is off) and yields one
`ActionChunk` per event as it arrives: the choice's ``delta`` (role, content pieces,
tool-call pieces) with its ``finish_reason`` once set; the usage comes in the last chunk.
Closing the stream early closes the response.

The client is httpx with no retries of its own (`_client` says why): the session retries
transient failures when the action is declared idempotent, each attempt audited, and waits
what a 429's ``Retry-After`` asks. Failures map into the library's tree in `_errors` only:
401 `AuthError`, 429 `RateLimited` with its wait, 400 `InvalidRequest` with the provider's
message, 5xx and timeouts `TransientError`.

The API key is a `Secret`; the config's default is the reference ``env:PV_OPENAI_API_KEY``
(the legacy variable), resolved when a session validates the config. It is sent only as the
bearer token: never logged, audited, shown in a repr or put in an error's message.

The API's host and port are the config's one destination (`OpenAIConfig.destinations`): for
a config from a tenant, the session checks it against the egress policy before the connector
is called and every request goes through the egress transport of `integrations.base.http`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from integrations.base import (
    ActionChunk,
    ActionRequest,
    ActionResult,
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
    LifecycleError,
    NotSupported,
    RevokeResult,
    Secret,
)

from ._client import OpenAIClient

__all__ = [
    "ACTIONS",
    "DEFAULT_API_KEY",
    "DEFAULT_MODEL",
    "DEFAULT_URL",
    "MODEL_INVOKE",
    "TOOL_CALL",
    "OpenAIConfig",
    "OpenAIConnector",
]

DEFAULT_URL: Final = "https://api.openai.com/v1"
DEFAULT_MODEL: Final = "gpt-4o-mini"
DEFAULT_API_KEY: Final = "env:PV_OPENAI_API_KEY"
"""Where the API key is read unless the config names another reference."""

MODEL_INVOKE: Final = "model_invoke"
TOOL_CALL: Final = "tool_call"
ACTIONS: Final = frozenset({MODEL_INVOKE, TOOL_CALL})


class OpenAIConfig(ConnectorConfig):
    """Where the API is, the key to present, how long to wait, and the default model."""

    url: str = DEFAULT_URL
    """The API's base URL (``base_url`` in OpenAI's clients): OpenAI, or a compatible server
    such as vLLM or Ollama (``http://localhost:11434/v1``)."""

    api_key: Secret = Field(default=Secret(DEFAULT_API_KEY), validate_default=True)
    """The API key, as a secret reference (``env:NAME``, ``file:/path``, ``vault:...``)."""

    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    """Seconds to connect, and to wait for each read (each streamed event included)."""

    model: str = Field(default=DEFAULT_MODEL, min_length=1)
    """The model used when an input names none (the legacy shim's inputs)."""

    stream_usage: bool = True
    """Ask for the usage at the end of a stream (``stream_options.include_usage``); turn off
    for a server that refuses the option."""

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
        return value.rstrip("/")

    def destinations(self) -> tuple[Destination, ...]:
        """The API's host and port: what a session checks before an untrusted config connects."""
        return (Destination.from_url(self.url),)


@dataclass(frozen=True, slots=True)
class _Open:
    """What an action needs: the open client and the config it was opened with."""

    client: OpenAIClient
    config: OpenAIConfig


class OpenAIConnector(BaseConnector[OpenAIConfig]):
    """The ``model_invoke`` and ``tool_call`` actions on chat completions (see the module)."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    actions: ClassVar[frozenset[str]] = ACTIONS
    config_model: ClassVar[type[ConnectorConfig]] = OpenAIConfig

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: AuthToken | None = None
        self._open: _Open | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(connected={self._open is not None})"

    # -- the contract ------------------------------------------------------------------------

    def auth(self, context: AuthContext) -> AuthToken:
        """Issue the session's token for the context's tenant and actor.

        The provider knows neither: they are what the session's policies decide on and its
        audit records. The provider's own credential is the config's `api_key`.
        """
        if not context.tenant or not context.actor:
            raise AuthError("vault.openai: the auth context needs a tenant and an actor")
        token = AuthToken(value=Secret(secrets.token_urlsafe(24)), scopes=context.scopes)
        with self._lock:
            self._token = token
        return token

    def connect(self, config: OpenAIConfig) -> Connection:
        """Open the HTTP client; no request is sent (a bad key shows on the first action)."""
        if not isinstance(config, OpenAIConfig):
            raise ConfigError(
                f"{type(self).__name__} needs an OpenAIConfig, got {type(config).__name__}"
            )
        client = OpenAIClient(
            config.url,
            api_key=config.api_key.reveal(),
            timeout=config.timeout_seconds,
            egress=config.egress,
        )
        with self._lock:
            previous, self._open = self._open, _Open(client, config)
        if previous is not None:
            previous.client.close()
        return Connection(connection_id=f"openai-{secrets.token_hex(6)}", info={"url": config.url})

    def invoke(self, request: ActionRequest) -> ActionResult:
        """One chat completion: the provider's completion object and its token usage."""
        opened = self._opened(request.action)
        answer = opened.client.complete(_body(request, opened.config, stream=False))
        return ActionResult(action=request.action, output=answer, usage=usage_of(answer))

    def stream(self, request: ActionRequest) -> Iterator[ActionChunk]:
        """One streamed chat completion, chunk by chunk as the events arrive."""
        opened = self._opened(request.action)
        body = _body(request, opened.config, stream=True)
        for chunk in opened.client.stream(body):
            piece = _piece(chunk)
            if piece is not None:
                yield piece

    def revoke(self, token: AuthToken) -> RevokeResult:
        """End the session of `token` and close the HTTP client."""
        with self._lock:
            if self._token is None or self._token.value != token.value:
                return RevokeResult(revoked=False, detail="token was not issued by this connector")
            opened, self._open, self._token = self._open, None, None
        if opened is not None:
            opened.client.close()
        return RevokeResult(revoked=True, detail="session ended; HTTP client closed")

    # -- beyond the contract -----------------------------------------------------------------

    def models(self) -> list[str]:
        """The ids of the models the API serves (``GET /models``): a direct call, not audited."""
        return self._opened("models", action=False).client.models()

    # -- helpers -----------------------------------------------------------------------------

    def _opened(self, operation: str, *, action: bool = True) -> _Open:
        """The open client, once sure `operation` (an action unless said) may run."""
        if action and operation not in ACTIONS:
            raise NotSupported(f"{type(self).__name__} does not support action {operation}")
        with self._lock:
            token, opened = self._token, self._open
        if token is None:
            raise LifecycleError(f"{type(self).__name__}.{operation} needs auth() first")
        if opened is None:
            raise LifecycleError(f"{type(self).__name__}.{operation} needs connect() first")
        return opened


def _body(request: ActionRequest, config: OpenAIConfig, *, stream: bool) -> dict[str, Any]:
    """The request body: the input as given, the default model when it names none."""
    body = dict(request.input)
    if not body.get("model"):
        body["model"] = config.model
    if stream:
        body["stream"] = True
        if config.stream_usage:
            body["stream_options"] = {"include_usage": True}
    return body


def usage_of(answer: dict[str, Any]) -> dict[str, int]:
    """The integer token counts of an answer's ``usage`` (nested details left out)."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return {}
    return {
        str(name): value
        for name, value in usage.items()
        if isinstance(value, int) and not isinstance(value, bool)
    }


def _piece(chunk: dict[str, Any]) -> ActionChunk | None:
    """The `ActionChunk` of one streamed event; None for an event carrying nothing."""
    usage = usage_of(chunk)
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise ConnectorError("the OpenAI-compatible API streamed a chunk without choices")
    if not choices:
        return ActionChunk(usage=usage) if usage else None
    choice = choices[0]
    if not isinstance(choice, dict):
        raise ConnectorError("the OpenAI-compatible API streamed a choice that is not an object")
    delta = choice.get("delta")
    piece = dict(delta) if isinstance(delta, dict) else {}
    if choice.get("finish_reason") is not None:
        piece["finish_reason"] = choice["finish_reason"]
    return ActionChunk(delta=piece, usage=usage)
