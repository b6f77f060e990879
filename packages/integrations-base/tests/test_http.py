"""`integrations.base.http` against responses and failures of a real loopback server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from integrations.base import (
    AuthError,
    AuthExpired,
    ConnectorError,
    InvalidRequest,
    LifecycleError,
    NotFound,
    RateLimited,
    TransientError,
)
from integrations.base.http import (
    error_from_response,
    map_http_errors,
    parse_retry_after,
    raise_for_status,
)

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from loopback import Drop, LoopbackServer, Reply

pytestmark = pytest.mark.timeout(30)

SECRET = "s3cr3t-value"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=2.0) as http:
        yield http


def answer(server: LoopbackServer, client: httpx.Client, reply: Reply) -> httpx.Response:
    server.script("/r", reply)
    return client.get("/r")


# -- raise_for_status ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204])
def test_success_is_returned(server: LoopbackServer, client: httpx.Client, status: int) -> None:
    response = answer(server, client, Reply(status))
    assert raise_for_status(response) is response


@pytest.mark.parametrize(
    ("status", "error", "retry_after"),
    [
        (400, InvalidRequest, None),
        (422, InvalidRequest, None),
        (401, AuthError, None),
        (403, AuthError, None),
        (404, NotFound, None),
        (410, NotFound, None),
        (408, TransientError, None),
        (500, TransientError, None),
        (502, TransientError, None),
        (504, TransientError, None),
        (501, ConnectorError, None),
        (409, ConnectorError, None),
        (418, ConnectorError, None),
        (302, ConnectorError, None),
    ],
)
def test_statuses_map_into_the_error_tree(
    server: LoopbackServer,
    client: httpx.Client,
    status: int,
    error: type[ConnectorError],
    retry_after: float | None,
) -> None:
    response = answer(server, client, Reply(status, headers={"Location": "/elsewhere"}))
    with pytest.raises(ConnectorError) as raised:
        raise_for_status(response)
    assert type(raised.value) is error
    assert str(raised.value).startswith(f"HTTP {status} ")
    assert f"GET {server.url}/r" in str(raised.value)
    if isinstance(raised.value, TransientError):
        assert raised.value.retry_after == retry_after
    assert not isinstance(raised.value, AuthExpired)


def test_429_carries_retry_after_in_seconds(server: LoopbackServer, client: httpx.Client) -> None:
    response = answer(server, client, Reply(429, headers={"Retry-After": "7"}))
    error = error_from_response(response)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7


def test_503_carries_retry_after_given_as_an_http_date(
    server: LoopbackServer, client: httpx.Client
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    response = answer(server, client, Reply(503, headers={"Retry-After": when}))
    error = error_from_response(response)
    assert type(error) is TransientError
    assert error.retry_after is not None
    assert 25 <= error.retry_after <= 30


def test_401_with_an_invalid_token_challenge_is_an_expired_token(
    server: LoopbackServer, client: httpx.Client
) -> None:
    challenge = 'Bearer realm="api", error="invalid_token", error_description="expired"'
    response = answer(server, client, Reply(401, headers={"WWW-Authenticate": challenge}))
    assert type(error_from_response(response)) is AuthExpired


def test_messages_carry_no_query_headers_body_or_credentials(
    server: LoopbackServer,
) -> None:
    server.script("/r", Reply(500, f"server says {SECRET}", {"X-Echo": SECRET}))
    url = server.url.replace("http://", f"http://user:{SECRET}@") + f"/r?api_key={SECRET}"
    with httpx.Client(timeout=2.0) as http:
        response = http.post(url, headers={"Authorization": f"Bearer {SECRET}"}, content=SECRET)
    error = error_from_response(response)
    assert SECRET not in str(error)
    assert f"POST {server.url}/r" in str(error)
    with pytest.raises(TransientError) as raised, map_http_errors():
        response.raise_for_status()  # httpx's own error quotes the URL with its query
    assert SECRET not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_a_hand_made_response_without_a_request_still_maps() -> None:
    error = error_from_response(httpx.Response(503, headers={"Retry-After": "1"}))
    assert type(error) is TransientError
    assert error.retry_after == 1
    assert "the server" in str(error)


# -- map_http_errors -------------------------------------------------------------------------


def test_a_timeout_is_transient(server: LoopbackServer) -> None:
    server.script("/slow", Reply(200, delay=1.0))
    with (
        httpx.Client(base_url=server.url, timeout=0.1) as http,
        pytest.raises(TransientError, match=r"timed out \(ReadTimeout\)"),
        map_http_errors(),
    ):
        http.get("/slow")


def test_a_dropped_connection_is_transient(server: LoopbackServer, client: httpx.Client) -> None:
    server.script("/drop", Drop())
    with pytest.raises(TransientError, match="RemoteProtocolError"), map_http_errors():
        client.get("/drop")


def test_a_refused_connection_is_transient() -> None:
    with LoopbackServer() as closed:
        url = closed.url  # nothing listens there once the server stopped
    with pytest.raises(TransientError, match="ConnectError") as raised, map_http_errors():
        httpx.get(url + "/r", timeout=2.0)
    assert f"GET {url}/r" in str(raised.value)


def test_http_status_errors_map_like_raise_for_status(
    server: LoopbackServer, client: httpx.Client
) -> None:
    response = answer(server, client, Reply(429, headers={"Retry-After": "2"}))
    with pytest.raises(RateLimited) as raised, map_http_errors():
        response.raise_for_status()
    assert raised.value.retry_after == 2


def test_other_httpx_errors_are_connector_errors() -> None:
    with pytest.raises(ConnectorError, match="UnsupportedProtocol") as raised, map_http_errors():
        httpx.get("ftp://127.0.0.1/file")
    assert not isinstance(raised.value, TransientError)


def test_library_errors_and_foreign_exceptions_pass_unchanged() -> None:
    original = NotFound("no such item")
    with pytest.raises(NotFound) as raised, map_http_errors():
        raise original
    assert raised.value is original
    with pytest.raises(ValueError, match="unrelated"), map_http_errors():
        raise ValueError("unrelated")
    with pytest.raises(LifecycleError), map_http_errors():
        raise LifecycleError("not connected")


def test_the_context_manager_wraps_async_requests_too(server: LoopbackServer) -> None:
    server.script("/drop", Drop())
    server.script("/gone", Reply(404))

    async def scenario() -> list[type[BaseException]]:
        caught: list[type[BaseException]] = []
        async with httpx.AsyncClient(base_url=server.url, timeout=2.0) as http:
            for path in ("/drop", "/gone"):
                try:
                    with map_http_errors():
                        raise_for_status(await http.get(path))
                except ConnectorError as error:
                    caught.append(type(error))
        return caught

    assert asyncio.run(scenario()) == [TransientError, NotFound]


# -- Retry-After -----------------------------------------------------------------------------

NOW = datetime(2026, 1, 31, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        (" 0.25 ", 0.25),
        ("0", 0.0),
        ("Sat, 31 Jan 2026 09:00:10 GMT", 10.0),
        ("Sat, 31 Jan 2026 08:59:00 GMT", 0.0),  # already past: no wait
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


# -- import cost -----------------------------------------------------------------------------


def test_importing_the_library_imports_neither_httpx_nor_tenacity() -> None:
    code = textwrap.dedent(
        """
        import sys
        import integrations.base
        import integrations.base.http
        import integrations.base.lifecycle
        loaded = sorted(name for name in ("httpx", "tenacity") if name in sys.modules)
        print(",".join(loaded) or "none")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "none"
