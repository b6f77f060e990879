"""`LoopbackHTTPServer`, the test server HTTP connectors are tested against, over real sockets.

Routes and their errors (404, 405, bodies that are not JSON, failing handlers), scripts, the
fault and latency controls, the bearer-token check, many clients at once, and a stop that
cuts waits short and leaves no thread or connection behind.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from integrations.base import InvalidRequest
from integrations.base.testing import (
    HTTPDrop,
    HTTPReply,
    HTTPRequest,
    HTTPStream,
    InvalidBody,
    LoopbackHTTPServer,
)


def eventually(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until `condition` holds, polling; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"the condition did not hold within {seconds}s")


def threads_named(prefix: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(prefix)]


def items(server: LoopbackHTTPServer) -> None:
    """The routes most tests use: a small item store."""

    @server.route("GET", "/items")
    def listing(request: HTTPRequest) -> HTTPReply:
        return HTTPReply(body={"items": ["a", "b"], "q": request.query.get("q", [])})

    @server.route("GET", "/items/{item_id}")
    def one(request: HTTPRequest) -> HTTPReply:
        return HTTPReply(body={"id": request.params["item_id"]})

    @server.route("POST", "/items", invalid_body_status=422)
    def create(request: HTTPRequest) -> HTTPReply:
        document = request.json_object()
        return HTTPReply(201, {"created": document["name"]}, {"Location": "/items/new"})


@pytest.fixture
def server() -> Iterator[LoopbackHTTPServer]:
    running = LoopbackHTTPServer()
    items(running)
    with running:
        yield running


@pytest.fixture
def client(server: LoopbackHTTPServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=5.0) as http:
        yield http


# -- routes ---------------------------------------------------------------------------------


def test_a_route_answers_json_and_sees_the_query(client: httpx.Client) -> None:
    response = client.get("/items", params={"q": ["x", "y"]})

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"items": ["a", "b"], "q": ["x", "y"]}


def test_a_pattern_route_passes_its_parameters_decoded(client: httpx.Client) -> None:
    assert client.get("/items/a%20b").json() == {"id": "a b"}
    assert client.get("/items/a/b").status_code == 404  # {name} is one segment


def test_a_path_parameter_takes_the_rest_of_the_path() -> None:
    with LoopbackHTTPServer() as server:
        server.route("GET", "/v1/secret/{key:path}", lambda r: HTTPReply(body=r.params["key"]))
        response = httpx.get(f"{server.url}/v1/secret/team/db/password", timeout=5)

    assert response.text == "team/db/password"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_plain_path_wins_over_a_pattern(server: LoopbackHTTPServer, client: httpx.Client) -> None:
    server.route("GET", "/items/special", lambda _: HTTPReply(body="special"))

    assert client.get("/items/special").text == "special"
    assert client.get("/items/other").json() == {"id": "other"}


def test_the_request_is_recorded_as_received(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    before = time.monotonic()
    client.post("/items", json={"name": "n"}, headers={"X-Trace": "t1"})

    (request,) = server.seen("/items")
    assert request.method == "POST"
    assert request.path == "/items"
    assert request.route == "/items"
    assert request.headers["x-trace"] == request.headers["X-TRACE"] == "t1"
    assert "content-type" in request.headers
    assert request.json() == {"name": "n"}
    assert before <= request.at <= time.monotonic()


def test_requests_are_counted_by_path_and_by_pattern(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    for path in ("/items/1", "/items/2", "/items", "/nowhere"):
        client.get(path)

    assert server.count() == 4
    assert server.count("/items/{item_id}") == 2
    assert server.count("/items/1") == 1
    assert [r.path for r in server.seen("/items/{item_id}")] == ["/items/1", "/items/2"]
    assert [r.path for r in server.requests] == ["/items/1", "/items/2", "/items", "/nowhere"]
    assert server.requests[-1].route is None


def test_bodies_keep_their_type(server: LoopbackHTTPServer, client: httpx.Client) -> None:
    server.route("GET", "/bytes", lambda _: HTTPReply(body=b"\x00\x01"))
    server.route("GET", "/text", lambda _: HTTPReply(body="h\u00e9"))
    server.route(
        "GET", "/typed", lambda _: HTTPReply(body="<a/>", headers={"Content-Type": "text/xml"})
    )

    raw = client.get("/bytes")
    assert (raw.content, raw.headers["Content-Type"]) == (b"\x00\x01", "application/octet-stream")
    assert client.get("/text").text == "h\u00e9"
    typed = client.get("/typed")
    assert typed.headers.get_list("Content-Type") == ["text/xml"]


def test_a_head_route_sends_headers_only(server: LoopbackHTTPServer, client: httpx.Client) -> None:
    server.route("HEAD", "/items", lambda _: HTTPReply(body={"not": "sent"}))

    response = client.head("/items")

    assert response.status_code == 200
    assert response.content == b""
    assert int(response.headers["Content-Length"]) > 0
    assert client.get("/items").status_code == 200  # the connection is still in step


def test_a_chunked_body_is_read_whole(server: LoopbackHTTPServer, client: httpx.Client) -> None:
    server.route("PUT", "/echo", lambda r: HTTPReply(body=r.body))

    response = client.put("/echo", content=iter([b"one ", b"two ", b"three"]))

    assert response.content == b"one two three"
    assert server.seen("/echo")[0].headers["Transfer-Encoding"] == "chunked"


def test_an_unknown_path_answers_404(client: httpx.Client) -> None:
    response = client.get("/nowhere")

    assert response.status_code == 404
    assert response.json() == {"error": "nothing is served at /nowhere"}


def test_a_method_the_path_does_not_serve_answers_405(client: httpx.Client) -> None:
    response = client.delete("/items")

    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert "DELETE" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "the body is empty"),
        (b"{not json", "the body is not JSON"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_a_body_the_route_cannot_read_answers_its_status(
    client: httpx.Client, body: bytes, message: str
) -> None:
    response = client.post("/items", content=body)

    assert response.status_code == 422  # the route's choice; 400 by default
    assert message in response.json()["error"]


def test_invalid_body_is_in_the_error_tree_and_400_by_default() -> None:
    assert issubclass(InvalidBody, InvalidRequest)
    with LoopbackHTTPServer() as server:
        server.route("POST", "/parse", lambda r: HTTPReply(body=r.json()))
        response = httpx.post(f"{server.url}/parse", content=b"nope", timeout=5)

    assert response.status_code == 400


def test_a_failing_handler_answers_500_and_is_kept(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    def broken(request: HTTPRequest) -> HTTPReply:
        raise KeyError("missing")

    def untyped(request: HTTPRequest) -> Any:  # a handler whose author skipped the types
        return {"a": 1}

    server.route("GET", "/broken", broken)
    server.route("GET", "/untyped", untyped)

    assert client.get("/broken").json() == {"error": "the handler of /broken raised KeyError"}
    assert client.get("/untyped").status_code == 500
    first, second = server.errors
    assert isinstance(first, KeyError)
    assert isinstance(second, TypeError)
    assert "returned a dict" in str(second)


@pytest.mark.parametrize(
    "pattern", ["items", "/a/{b", "/a/{b-c}", "/{rest:path}/x", "/{x}/{x}", "/a}"]
)
def test_a_malformed_route_is_refused(pattern: str) -> None:
    server = LoopbackHTTPServer()
    try:
        with pytest.raises(ValueError, match="route"):
            server.route("GET", pattern, lambda _: HTTPReply())
    finally:
        server.stop()


def test_a_route_is_declared_once_per_method() -> None:
    server = LoopbackHTTPServer()
    try:
        server.route("GET", "/a", lambda _: HTTPReply())
        server.route("POST", "/a", lambda _: HTTPReply())
        with pytest.raises(ValueError, match="already has a handler"):
            server.route("GET", "/a", lambda _: HTTPReply())
        with pytest.raises(ValueError, match="unsupported method"):
            server.route("BREW", "/a", lambda _: HTTPReply())
    finally:
        server.stop()


# -- scripts ----------------------------------------------------------------------------------


def test_a_script_answers_step_by_step_and_repeats_its_last_step(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    server.script("/s", HTTPReply(503), HTTPReply(429, headers={"Retry-After": "1"}), HTTPReply())

    statuses = [client.get("/s").status_code for _ in range(4)]

    assert statuses == [503, 429, 200, 200]
    assert len(server.gaps("/s")) == 3


def test_a_script_answers_any_method_and_wins_over_a_route(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    server.script("/items", HTTPReply(body="scripted"))

    assert client.get("/items").text == "scripted"
    assert client.delete("/items").text == "scripted"


def test_a_scripted_drop_and_delay(server: LoopbackHTTPServer, client: httpx.Client) -> None:
    server.script("/s", HTTPDrop(), HTTPReply(body="late", delay=0.2))

    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/s")
    started = time.monotonic()
    assert client.get("/s").text == "late"
    assert time.monotonic() - started >= 0.19


def test_a_script_needs_a_step(server: LoopbackHTTPServer) -> None:
    with pytest.raises(ValueError, match="at least one step"):
        server.script("/s")


# -- faults -----------------------------------------------------------------------------------


def test_fail_next_answers_the_status_then_lets_requests_through(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    server.fail_next(2, status=429, retry_after=1.5)

    first, second, third = (client.get("/items/1") for _ in range(3))

    assert [r.status_code for r in (first, second, third)] == [429, 429, 200]
    assert first.headers["Retry-After"] == "1.5"
    assert first.json() == {"error": "failure requested by the test"}
    assert server.count("/items/1") == 3  # failed requests are recorded too


def test_fail_next_takes_a_body_and_an_http_date(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    when = "Wed, 21 Oct 2037 07:28:00 GMT"
    server.fail_next(status=500, retry_after=when, body="backend down")
    server.fail_next(status=503, retry_after=2)

    first, second = client.get("/items"), client.get("/items")

    assert (first.status_code, first.headers["Retry-After"], first.text) == (
        500,
        when,
        "backend down",
    )
    assert (second.status_code, second.headers["Retry-After"]) == (503, "2")


def test_a_fault_for_one_path_leaves_the_others_alone(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    server.fail_next(status=502, path="/items/{item_id}")

    assert client.get("/items").status_code == 200
    assert client.get("/items/7").status_code == 502
    assert client.get("/items/7").status_code == 200


def test_a_failed_request_uses_no_script_step_and_calls_no_handler(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    server.script("/s", HTTPReply(201), HTTPReply(202))
    server.fail_next(path="/s")
    server.fail_next(path="/items")

    assert [client.get("/s").status_code for _ in range(3)] == [503, 201, 202]
    assert client.post("/items", content=b"not json").status_code == 503  # the handler'd say 422


def test_faults_name_a_served_path_and_a_positive_count(server: LoopbackHTTPServer) -> None:
    with pytest.raises(ValueError, match="no route or script serves '/typo'"):
        server.fail_next(path="/typo")
    with pytest.raises(ValueError, match="count must be at least 1"):
        server.drop_next(0)
    with pytest.raises(ValueError, match="seconds"):
        server.delay_next(-1)


def test_drop_next_closes_the_connection_without_an_answer(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    server.drop_next(path="/items")

    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/items")
    assert client.get("/items").status_code == 200
    assert server.count("/items") == 2


def test_delay_next_holds_a_request_back_then_answers_it(
    server: LoopbackHTTPServer, client: httpx.Client
) -> None:
    server.delay_next(0.3, path="/items/{item_id}")

    started = time.monotonic()
    assert client.get("/items/1").json() == {"id": "1"}
    assert time.monotonic() - started >= 0.29


def test_a_delay_provokes_a_client_timeout(server: LoopbackHTTPServer) -> None:
    server.delay_next(1.0)

    with httpx.Client(base_url=server.url, timeout=0.1) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            impatient.get("/items")
        assert impatient.get("/items").status_code == 200


def test_latency_is_added_to_every_answer(server: LoopbackHTTPServer, client: httpx.Client) -> None:
    server.latency = 0.15

    for path in ("/items", "/nowhere"):
        started = time.monotonic()
        client.get(path)
        assert time.monotonic() - started >= 0.14
    assert server.latency == 0.15
    with pytest.raises(ValueError, match="latency"):
        server.latency = -0.1


def test_parallel_requests_are_answered_in_parallel() -> None:
    """50 requests with 100 ms of latency each take far less than 50 x 100 ms."""
    with (
        LoopbackHTTPServer(latency=0.1) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
        ThreadPoolExecutor(max_workers=50) as pool,
    ):
        items(server)
        started = time.monotonic()
        statuses = list(pool.map(lambda n: client.get(f"/items/{n}").status_code, range(50)))
        elapsed = time.monotonic() - started

    assert statuses == [200] * 50
    assert server.count("/items/{item_id}") == 50
    assert elapsed < 2.5


# -- streamed answers ---------------------------------------------------------------------------


def test_a_stream_is_read_piece_by_piece_while_it_is_produced() -> None:
    release = threading.Event()
    produced: list[int] = []
    closed = threading.Event()

    def pieces() -> Iterator[bytes]:
        try:
            for number in range(3):
                if number == 2:
                    release.wait(5.0)
                produced.append(number)
                yield f"piece {number}\n".encode()
        finally:
            closed.set()

    with LoopbackHTTPServer() as server:
        server.route("GET", "/events", lambda _: HTTPStream(pieces(), headers={"X-Kind": "t"}))
        with (
            httpx.Client(base_url=server.url, timeout=5.0) as http,
            http.stream("GET", "/events") as response,
        ):
            lines = response.iter_lines()
            assert next(lines) == "piece 0"
            assert next(lines) == "piece 1"
            assert produced == [0, 1]  # the last piece is not produced yet
            release.set()
            assert list(lines) == ["piece 2"]
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.headers["x-kind"] == "t"
        assert closed.is_set()


def test_a_client_that_leaves_early_closes_the_stream() -> None:
    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            for _ in range(10_000):
                yield b"x" * 1024
        finally:
            closed.set()

    with LoopbackHTTPServer() as server:
        server.route("GET", "/endless", lambda _: HTTPStream(endless(), interval=0.001))
        with (
            httpx.Client(base_url=server.url, timeout=5.0) as http,
            http.stream("GET", "/endless") as response,
        ):
            assert len(next(response.iter_raw())) > 0
        eventually(closed.is_set)


def test_stop_ends_a_stream_waiting_between_pieces() -> None:
    server = LoopbackHTTPServer()
    server.route("GET", "/slow", lambda _: HTTPStream(iter([b"a", b"b"]), interval=60.0))
    server.start()
    with (
        httpx.Client(base_url=server.url, timeout=5.0) as http,
        http.stream("GET", "/slow") as response,
    ):
        raw = response.iter_raw()
        assert next(raw) == b"a"
        server.stop()
        with pytest.raises(httpx.RemoteProtocolError):
            list(raw)


# -- bearer token ------------------------------------------------------------------------------


@pytest.fixture
def guarded() -> Iterator[LoopbackHTTPServer]:
    with LoopbackHTTPServer(bearer_token="s3cret") as running:
        items(running)
        yield running


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "s3cret", "Basic czNjcmV0"])
def test_a_request_without_the_token_answers_401(
    guarded: LoopbackHTTPServer, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = httpx.get(f"{guarded.url}/items", headers=headers, timeout=5)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert guarded.count("/items") == 1


def test_the_token_opens_the_routes_and_faults_come_first(guarded: LoopbackHTTPServer) -> None:
    good = {"Authorization": "Bearer s3cret"}
    guarded.fail_next(status=503)

    assert httpx.get(f"{guarded.url}/items", timeout=5).status_code == 503
    assert httpx.get(f"{guarded.url}/items", headers=good, timeout=5).status_code == 200
    assert httpx.get(f"{guarded.url}/nowhere", timeout=5).status_code == 404


# -- addresses -------------------------------------------------------------------------------


def test_the_server_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        LoopbackHTTPServer(host="0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        LoopbackHTTPServer(host="192.0.2.1")


def ipv6_loopback() -> bool:
    """Whether this machine has an IPv6 loopback address to listen on."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_the_server_listens_on_the_ipv6_loopback() -> None:
    if not ipv6_loopback():  # the server cannot listen where the system cannot
        with pytest.raises(OSError, match=r"[Aa]ddress"):
            LoopbackHTTPServer(host="::1")
        return
    server = LoopbackHTTPServer(host="::1")
    items(server)
    with server:
        assert server.url == f"http://[::1]:{server.port}"
        assert httpx.get(f"{server.url}/items/6", timeout=5).json() == {"id": "6"}


# -- stopping --------------------------------------------------------------------------------


def test_stop_leaves_no_thread_and_no_listener_behind() -> None:
    name = f"stop-{uuid.uuid4().hex[:8]}"
    server = LoopbackHTTPServer(name=name)
    items(server)
    server.start()
    clients = [httpx.Client(base_url=server.url, timeout=5) for _ in range(3)]
    try:
        for client in clients:  # each keeps its connection open afterwards
            assert client.get("/items").status_code == 200
        assert len(threads_named(name)) == 4  # the listener and one per connection

        started = time.monotonic()
        server.stop()

        assert time.monotonic() - started < 2.0  # idle keep-alive connections were ended
        assert threads_named(name) == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/items", timeout=5)
    finally:
        for client in clients:
            client.close()


def test_stop_cuts_a_delay_short(server: LoopbackHTTPServer, client: httpx.Client) -> None:
    server.delay_next(30)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(client.get, "/items")
        eventually(lambda: server.count("/items") == 1)

        started = time.monotonic()
        server.stop()

        assert time.monotonic() - started < 2.0
        with pytest.raises(httpx.TransportError):  # the held request gets no answer
            pending.result(timeout=5)


def test_stop_cuts_latency_and_scripted_delays_short() -> None:
    name = f"cut-{uuid.uuid4().hex[:8]}"
    with (
        LoopbackHTTPServer(name=name, latency=30) as server,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        server.script("/s", HTTPReply(delay=30))
        pending = [pool.submit(httpx.get, f"{server.url}/s", timeout=60) for _ in range(2)]
        eventually(lambda: server.count("/s") == 2)
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        for future in pending:
            with pytest.raises(httpx.TransportError):
                future.result(timeout=5)
    assert threads_named(name) == []


def test_stop_names_a_handler_that_does_not_end() -> None:
    release = threading.Event()
    name = f"stuck-{uuid.uuid4().hex[:8]}"
    server = LoopbackHTTPServer(name=name)

    @server.route("GET", "/stuck")
    def stuck(request: HTTPRequest) -> HTTPReply:
        release.wait(10)  # something the test never releases in time
        return HTTPReply()

    server.start()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(httpx.get, f"{server.url}/stuck", timeout=10)
        eventually(lambda: server.count("/stuck") == 1)
        try:
            with pytest.raises(TimeoutError, match=f"{name}:{server.port}/1"):
                server.stop(timeout=0.2)
        finally:
            release.set()
        with pytest.raises(httpx.TransportError):
            pending.result(timeout=5)
    eventually(lambda: threads_named(name) == [])


def test_stop_is_final_and_harmless_twice() -> None:
    server = LoopbackHTTPServer()
    server.stop()  # never started: only the socket to close
    server.stop()
    with pytest.raises(RuntimeError, match="cannot be started again"):
        server.start()


# -- the package -----------------------------------------------------------------------------


def test_the_server_needs_only_the_standard_library() -> None:
    code = (
        "import sys\n"
        "from integrations.base.testing import LoopbackHTTPServer, HTTPReply\n"
        "with LoopbackHTTPServer() as server:\n"
        "    server.route('GET', '/', lambda r: HTTPReply(body='ok'))\n"
        "loaded = {'pytest', 'httpx', '_pytest'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
