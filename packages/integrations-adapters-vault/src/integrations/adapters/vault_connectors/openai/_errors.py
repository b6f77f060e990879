"""The one place the answers of an OpenAI-compatible API become the library's errors.

The status decides the error's type, as for every HTTP connector (`error_from_response` of
`integrations.base.http`): 401/403 `AuthError`, 400/422 `InvalidRequest`, 404 `NotFound`,
429 `RateLimited` with the ``Retry-After`` wait, 408 and 5xx `TransientError`. What the
provider adds is read from its error object, ``{"error": {"message", "type", "param",
"code"}}``:

- 400, 404, 422, 429 and 5xx messages carry the provider's message, ``param`` and ``code``
  (what to fix in the request is in there);
- 401 and 403 messages carry the ``code`` only: the API's message for a refused key quotes
  part of that key;
- a 429 whose code is ``insufficient_quota`` is a plain `ConnectorError`, not retried: the
  account's quota is spent, and waiting does not refill it;
- an error sent inside a stream (an event ``{"error": {...}}``) is a `TransientError` when its
  type is ``server_error``, else a `ConnectorError`.

Every message has the API key scrubbed from it, should a provider ever echo it, and is cut
to `MAX_DETAIL` characters.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from integrations.base import (
    AuthError,
    ConnectorError,
    IntegrationsError,
    TransientError,
)
from integrations.base.http import error_from_response, map_http_errors

if TYPE_CHECKING:
    import httpx

__all__ = ["SERVICE", "ProviderDetail", "error_in_stream", "error_of", "provider_errors"]

SERVICE: Final = "the OpenAI-compatible API"
MAX_DETAIL: Final = 500
"""Characters of the provider's message kept in an error's message."""
_MASK: Final = "**********"


@dataclass(frozen=True, slots=True)
class ProviderDetail:
    """What the provider's error object says, each part None when absent."""

    message: str | None = None
    type: str | None = None
    param: str | None = None
    code: str | None = None

    @classmethod
    def of(cls, body: object) -> ProviderDetail:
        """The detail of a parsed body, ``{"error": {...}}``; empty for any other shape."""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, str):  # some compatible servers answer {"error": "text"}
            return cls(message=error)
        if not isinstance(error, dict):
            return cls()
        return cls(*(_text(error.get(name)) for name in ("message", "type", "param", "code")))

    def describe(self, *, with_message: bool, secret: str | None) -> str:
        """The detail as a message suffix: the provider's message (when wanted), param, code."""
        parts = []
        if with_message and self.message:
            parts.append(_scrub(self.message, secret)[:MAX_DETAIL])
        if self.param:
            parts.append(f"param {_scrub(self.param, secret)[:100]}")
        if self.code:
            parts.append(f"code {_scrub(self.code, secret)[:100]}")
        return f": {'; '.join(parts)}" if parts else ""


def error_of(response: httpx.Response, *, secret: str | None) -> ConnectorError:
    """The library's error for a response that is not a success; its body must be read."""
    base = error_from_response(response)
    try:
        detail = ProviderDetail.of(json.loads(response.content))
    except ValueError:
        detail = ProviderDetail()
    if isinstance(base, AuthError):
        return type(base)(f"{base}{detail.describe(with_message=False, secret=secret)}")
    message = f"{base}{detail.describe(with_message=True, secret=secret)}"
    if response.status_code == 429 and detail.code == "insufficient_quota":
        return ConnectorError(f"{message} (the account's quota is spent; retrying cannot help)")
    if isinstance(base, TransientError):
        return type(base)(message, retry_after=base.retry_after)
    return type(base)(message)


def error_in_stream(event: dict[str, Any], *, secret: str | None) -> ConnectorError:
    """The library's error for an error event inside a stream of chunks."""
    detail = ProviderDetail.of(event)
    message = (
        f"{SERVICE} sent an error in the stream{detail.describe(with_message=True, secret=secret)}"
    )
    if detail.type == "server_error":
        return TransientError(message)
    return ConnectorError(message)


@contextmanager
def provider_errors(endpoint: str) -> Iterator[None]:
    """httpx failures in the block as the library's errors; a body that is not JSON too."""
    try:
        with map_http_errors():
            yield
    except IntegrationsError:  # InvalidRequest is a ValueError too: it passes unchanged
        raise
    except ValueError:  # json's error for a body that does not decode
        raise ConnectorError(
            f"{SERVICE} answered {endpoint} with a body that is not JSON"
        ) from None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, _MASK) if secret else text
