"""HTTP failures in the library's error tree, for connectors built on httpx.

A connector wraps its requests in `map_http_errors()` and passes each response to
`raise_for_status()`; the session then sees errors it knows how to handle: `TransientError`
and `RateLimited` are retried, `AuthExpired` re-authenticates, the others reach the caller.
This is the one place HTTP statuses and httpx exceptions are interpreted, so every HTTP
adapter behaves alike. httpx's own ``map_exceptions`` is the model.

httpx is never imported here. `map_http_errors` looks it up in `sys.modules` when an
exception passes through (an httpx error means httpx was imported), and `raise_for_status`
only reads attributes of the response. So `import integrations.base.http` works, and costs
nothing, without the ``http`` extra.

Messages name the method, the URL without its query or credentials, the status and the kind
of failure; never headers, bodies or the exception text of httpx, which may quote them.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final

from ._exceptions import (
    AuthError,
    AuthExpired,
    ConnectorError,
    IntegrationsError,
    InvalidRequest,
    NotFound,
    RateLimited,
    TransientError,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["error_from_response", "map_http_errors", "parse_retry_after", "raise_for_status"]

_TRANSIENT_TRANSPORT: Final = (
    ("TimeoutException", "timed out"),
    ("NetworkError", "network error"),
    ("RemoteProtocolError", "the server closed the connection or broke the protocol"),
    ("ProxyError", "proxy error"),
)
"""httpx exceptions after which a retry may succeed, in the order they are checked."""

_NOT_TRANSIENT_5XX: Final = frozenset({501, 505})
"""Server errors that say the request can never work: not implemented, HTTP version."""


@contextmanager
def map_http_errors() -> Iterator[None]:
    """Translate httpx exceptions raised in the block into the library's error tree.

    Timeouts, network errors, a connection the server dropped and proxy errors become
    `TransientError` (retried by sessions, counted by the circuit breaker); an
    ``httpx.HTTPStatusError`` is mapped by its status like `raise_for_status`; any other
    httpx error becomes a `ConnectorError`. Errors of the library's tree and exceptions
    that do not come from httpx pass unchanged. A plain ``with`` block: it also wraps
    ``await client.get(...)`` in async code.
    """
    try:
        yield
    except IntegrationsError:
        raise
    except Exception as error:
        mapped = _from_httpx(error)
        if mapped is None:
            raise
        raise mapped from None  # httpx's message may quote the URL's query: not chained


def raise_for_status(response: httpx.Response) -> httpx.Response:
    """Return a 2xx `response`; raise the library's error for any other status."""
    if 200 <= response.status_code < 300:
        return response
    raise error_from_response(response)


def error_from_response(response: httpx.Response) -> ConnectorError:
    """The library's error for a response that is not a success.

    401 and 403 are `AuthError` (`AuthExpired` for a 401 whose ``WWW-Authenticate`` says
    ``error="invalid_token"``, RFC 6750: the session re-authenticates once); 404 and 410
    `NotFound`; 400 and 422 `InvalidRequest`; 429 `RateLimited`; 408 and 5xx (but 501 and
    505) `TransientError`; anything else `ConnectorError`. 429, 408 and 5xx carry the
    ``Retry-After`` header as `retry_after`, in seconds.
    """
    status = response.status_code
    message = f"HTTP {status} {_reason(response)} from {_where(response)}"
    if status == 401 and _invalid_token(response):
        return AuthExpired(message)
    if status in (401, 403):
        return AuthError(message)
    if status in (404, 410):
        return NotFound(message)
    if status in (400, 422):
        return InvalidRequest(message)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        return RateLimited(message, retry_after=retry_after)
    if status == 408 or (500 <= status < 600 and status not in _NOT_TRANSIENT_5XX):
        return TransientError(message, retry_after=retry_after)
    return ConnectorError(message)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value; None when absent or invalid.

    The value is a number of seconds (fractions are accepted) or an HTTP date, counted from
    `now` (default: the current time); a date in the past means no wait.
    """
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _seconds_until(value: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _from_httpx(error: Exception) -> ConnectorError | None:
    """The library's error for an httpx exception, or None for anything else."""
    httpx_module: Any = sys.modules.get("httpx")
    if httpx_module is None or type(error).__module__.split(".")[0] != "httpx":
        return None
    if isinstance(error, httpx_module.HTTPStatusError):
        return error_from_response(error.response)
    where = _request_of(error)
    kind = type(error).__name__
    for name, description in _TRANSIENT_TRANSPORT:
        if isinstance(error, getattr(httpx_module, name)):
            return TransientError(f"{where}: {description} ({kind})")
    return ConnectorError(f"{where}: HTTP client error ({kind})")


def _request_of(error: Exception) -> str:
    try:
        request = error.request  # type: ignore[attr-defined]  # httpx raises without one
    except (AttributeError, RuntimeError):
        return "HTTP request"
    return _describe(request)


def _where(response: httpx.Response) -> str:
    try:
        request = response.request
    except RuntimeError:  # a response built by hand has no request
        return "the server"
    return _describe(request)


def _describe(request: httpx.Request) -> str:
    """Method and URL, without the query, fragment or credentials a URL may carry."""
    url = request.url
    port = f":{url.port}" if url.port is not None else ""
    return f"{request.method} {url.scheme}://{url.host}{port}{url.path}"


def _reason(response: httpx.Response) -> str:
    reason = getattr(response, "reason_phrase", "")
    if reason:
        return str(reason)
    try:
        return HTTPStatus(response.status_code).phrase
    except ValueError:
        return "(unknown status)"


def _invalid_token(response: httpx.Response) -> bool:
    """Whether a 401's challenge says the token is no longer valid (RFC 6750)."""
    return "invalid_token" in response.headers.get("WWW-Authenticate", "")
