"""The Intent Engine HTTP API as the connector calls it: five endpoints, one error mapping.

Every request goes through `map_http_errors` and `raise_for_status` of `integrations.base.http`
(timeouts, network errors, 5xx and 429 become `TransientError` / `RateLimited`, 401/403
`AuthError` ...). What the HTTP mapping cannot know is decided here, once:

- a 422 carries the engine's reason as ``{"detail": ...}`` (a string, or FastAPI's list of
  ``{"loc", "msg"}``): it becomes an `InvalidRequest` that says what the engine refused, so a
  refused signal's rejection tells the caller which field to fix;
- ``GET /why-this`` answers an unknown id with **status 200** and ``{"error": "intent not
  found"}``: that becomes `NotFound`, never an explanation;
- an answer whose body is not the endpoint's JSON is a `ConnectorError` naming the endpoint,
  never a ``ValueError`` or ``KeyError`` from deep inside the connector.
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
        "the Intent Engine connector needs httpx: "
        "pip install 'integrations-adapters-intent[engine]'"
    ) from missing

from integrations.base import (
    UNRESTRICTED,
    ConnectionFailed,
    ConnectorError,
    EgressGuard,
    IntegrationsError,
    InvalidRequest,
    JsonObject,
    NotFound,
    TransientError,
)
from integrations.base.http import egress_transport, map_http_errors, raise_for_status

__all__ = ["EngineAnswer", "Explanation", "IntentEngineApi"]

_SERVICE: Final = "the Intent Engine"
_DETAIL_LIMIT: Final = 500
"""Characters of a 422 detail kept in an error message: enough to name every field."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """The answer of ``GET /why-this`` for a known intent."""

    intent_id: str
    intent_score: float
    factors: tuple[JsonObject, ...]
    """``{"signal": <factor>, "value": <number>}`` pairs, as the engine sent them."""


@dataclass(frozen=True, slots=True)
class EngineAnswer:
    """The answer of ``POST /verify-intent``: the engine's own alignment decision."""

    allowed: bool
    reason: str
    intent_score: float | None


class IntentEngineApi:
    """An httpx client on one Intent Engine: keep-alive connections, timeouts, a bearer key.

    The client is shared by the threads of a push: httpx's connection pool is thread-safe,
    and `pool_size` connections are kept alive so that concurrent requests reuse them.
    Every request goes through the transport of `egress` (`egress_transport`): for a config
    from a tenant it checks each request's destination and connects to the addresses the
    session checked; for a config the platform wrote (`UNRESTRICTED`) the client keeps
    httpx's own transport.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        api_key: str | None,
        pool_size: int,
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
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=pool_size),
            transport=egress_transport(egress),
        )

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def check_health(self) -> None:
        """``GET /health``; `ConnectionFailed` when the engine cannot be reached or is not healthy.

        An unreachable server is a `TransientError` to the HTTP mapping (a retry of an
        operation may succeed); when opening the connection, it means the connection could not
        be opened, which is `ConnectionFailed`.
        """
        try:
            body = _object(self._get("/health"), "/health")
        except TransientError as error:
            raise ConnectionFailed(f"{_SERVICE} cannot be reached: {error}") from error
        if body.get("status") != "ok":
            raise ConnectionFailed(f"{_SERVICE} answered /health without status 'ok'")

    def ranked(self) -> list[Any]:
        """The items of ``GET /ranked/intents``, as sent: every stored intent, best first."""
        body = self._get("/ranked/intents")
        if not isinstance(body, list):
            raise ConnectorError(f"{_SERVICE} answered /ranked/intents without a JSON array")
        return body

    def why_this(self, intent_id: str) -> Explanation:
        """``GET /why-this``: the engine's explanation; `NotFound` for an unknown id.

        The engine answers an unknown id with status 200 and ``{"error": ...}``: that body is
        read as not found whatever its status, so it can never pass for an explanation.
        """
        body = _object(self._get("/why-this", params={"intent_id": intent_id}), "/why-this")
        if "error" in body:
            raise NotFound(f"{_SERVICE} has no intent {intent_id!r} ({_text(body['error'])})")
        return _explanation(body)

    def verify(self, topic: str) -> EngineAnswer:
        """``POST /verify-intent``: whether the engine allows an action on `topic`."""
        body = _object(self._post("/verify-intent", {"topic": topic}), "/verify-intent")
        allowed, reason = body.get("allowed"), body.get("reason")
        if not isinstance(allowed, bool) or not isinstance(reason, str):
            raise ConnectorError(f"{_SERVICE} answered /verify-intent without allowed and reason")
        score = body.get("intent_score")
        number = _number(score)
        if score is not None and number is None:
            raise ConnectorError(f"{_SERVICE} answered /verify-intent with a score not a number")
        return EngineAnswer(allowed, reason, number)

    def inject(self, signal: JsonObject) -> str:
        """``POST /inject-intent``: store a new intent; return the id the engine gave it.

        A signal the engine refuses (422) raises `InvalidRequest` with the engine's reason.
        """
        body = _object(self._post("/inject-intent", signal), "/inject-intent")
        intent_id = body.get("id")
        if not isinstance(intent_id, str) or not intent_id:
            raise ConnectorError(f"{_SERVICE} answered /inject-intent without an id")
        return intent_id

    # -- requests ----------------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        with _errors(path):
            return _checked(self._client.get(path, params=params)).json()

    def _post(self, path: str, body: JsonObject) -> Any:
        with _errors(path):
            return _checked(self._client.post(path, json=body)).json()


@contextmanager
def _errors(endpoint: str) -> Iterator[None]:
    """The one place Intent Engine failures become the library's errors."""
    try:
        with map_http_errors():
            yield
    except IntegrationsError:  # InvalidRequest is a ValueError too: it passes unchanged
        raise
    except ValueError:  # the body does not decode as JSON (httpx raises json's error)
        raise ConnectorError(
            f"{_SERVICE} answered {endpoint} with a body that is not JSON"
        ) from None


def _checked(response: httpx.Response) -> httpx.Response:
    """`response` when it succeeded; a 422 says what the engine refused, others are mapped."""
    if response.status_code == 422:
        raise InvalidRequest(f"{_SERVICE} refused it: {_detail(response)}")
    return raise_for_status(response)


def _detail(response: httpx.Response) -> str:
    """The reason of a 422: its ``detail`` as text (FastAPI's list of errors, or a string)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return "HTTP 422 without a detail"
    if isinstance(detail, list):
        text = "; ".join(_problem(item) for item in detail)
    else:
        text = _text(detail)
    return text[:_DETAIL_LIMIT] or "HTTP 422 without a detail"


def _problem(item: Any) -> str:
    """One FastAPI validation error, ``field: message`` (the ``body``/``query`` prefix dropped)."""
    if not isinstance(item, dict):
        return _text(item)
    location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query")]
    message = _text(item.get("msg", "invalid"))
    return f"{'.'.join(location)}: {message}" if location else message


def _explanation(body: JsonObject) -> Explanation:
    intent_id, score = body.get("intent_id"), _number(body.get("intent_score"))
    factors = body.get("explanation")
    if not isinstance(intent_id, str) or score is None or not isinstance(factors, list):
        raise ConnectorError(
            f"{_SERVICE} answered /why-this without intent_id, intent_score and explanation"
        )
    pairs: list[JsonObject] = []
    for factor in factors:
        if not isinstance(factor, dict) or not isinstance(factor.get("signal"), str):
            raise ConnectorError(f"{_SERVICE} answered /why-this with a factor that is not a pair")
        pairs.append(factor)
    return Explanation(intent_id, score, tuple(pairs))


def _object(body: Any, endpoint: str) -> JsonObject:
    if not isinstance(body, dict):
        raise ConnectorError(f"{_SERVICE} answered {endpoint} with a body that is not an object")
    return body


def _number(value: Any) -> float | None:
    """`value` as a finite number, or None when it is not one (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
