"""A threaded HTTP server on a loopback address, with latency and fault controls, for tests.

Connectors that speak HTTP are tested against real sockets, not patched clients. Every HTTP
family needs the same machinery for that: a server on an ephemeral loopback port that answers
each connection in its own thread, records every request, can be told to fail, delay or drop
the next requests, and stops cleanly at the end of a test. `LoopbackHTTPServer` is that
machinery, written once; a family's test server only declares its routes::

    server = LoopbackHTTPServer(bearer_token="t0ken")

    @server.route("GET", "/items/{item_id}")
    def item(request: HTTPRequest) -> HTTPReply:
        return HTTPReply(body={"id": request.params["item_id"]})

    with server:
        server.fail_next(status=429, retry_after=1)
        ...  # the client under test talks to server.url

A request goes through these stages, in order:

1. it is recorded (`requests`, `seen`, `count`), whatever happens next;
2. the constant `latency` passes;
3. the first queued fault that matches it (`fail_next`, `delay_next`, `drop_next`) applies:
   a failure answers its status, a drop closes the connection without an answer, a delay
   waits and then lets the request go on;
4. an unknown path answers 404 and a method the path does not serve 405 (with ``Allow``);
5. with a `bearer_token`, a request without ``Authorization: Bearer <token>`` answers 401;
6. the path's script (`script`) or else its route's handler answers: an `HTTPReply`, an
   `HTTPDrop`, or an `HTTPStream`, whose body is sent piece by piece as it is produced
   (chunked transfer encoding), for clients that read server-sent events as they come.

Every wait (latency, delays, scripted delays) ends at once when the server stops. Stopping
also shuts down the connections clients keep open, joins every connection thread (bounded)
and closes the listening socket.

Only the standard library is used, so the server works wherever integrations-base does.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import itertools
import json
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self, overload
from urllib.parse import parse_qs, unquote, urlsplit

from integrations.base._exceptions import InvalidRequest

__all__ = [
    "HTTPDrop",
    "HTTPReply",
    "HTTPRequest",
    "HTTPStream",
    "InvalidBody",
    "LoopbackHTTPServer",
    "RouteHandler",
]

STOP_TIMEOUT: Final = 5.0
"""Seconds `LoopbackHTTPServer.stop` waits, in all, for the server's threads to end."""

_POLL_INTERVAL: Final = 0.05
_PARAMETER: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")
_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class InvalidBody(InvalidRequest):
    """A request's body is not what the route expects (`HTTPRequest.json` raises it).

    A handler may catch it and answer as it likes; if it escapes, the server answers the
    route's `invalid_body_status` (400 unless the route says 422, say) with the message.
    """


class _Headers(Mapping[str, str]):
    """Request headers, looked up case-insensitively; a repeated header's values joined."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._names: dict[str, str] = {}
        self._values: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            if key in self._values:
                self._values[key] = f"{self._values[key]}, {value}"
            else:
                self._names[key] = name
                self._values[key] = value

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __repr__(self) -> str:
        return repr(dict(self.items()))


@dataclass(frozen=True)
class HTTPRequest:
    """A request as the server received it.

    `path` is the path as sent (still percent-encoded), `query` its parameters (each name with
    every value it was given), `headers` are looked up case-insensitively. `route` is the
    declared route pattern (or scripted path) the request matched, None for an unknown path,
    and `params` the values of the pattern's ``{name}`` parts, decoded. `at` is
    `time.monotonic()` when the request arrived, so a test can measure, from the server's
    side, the pauses a client chose between attempts.
    """

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    at: float
    route: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """The body decoded as UTF-8; `InvalidBody` if it is not."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidBody(f"the body is not UTF-8 text: {error}") from None

    def json(self) -> Any:
        """The body parsed as JSON; `InvalidBody` (saying why) if it is empty or not JSON."""
        if not self.body.strip():
            raise InvalidBody("the body is empty; expected JSON")
        try:
            return json.loads(self.text())
        except ValueError as error:
            raise InvalidBody(f"the body is not JSON: {error}") from None

    def json_object(self) -> dict[str, Any]:
        """The body parsed as a JSON object; `InvalidBody` if it is anything else."""
        value = self.json()
        if not isinstance(value, dict):
            raise InvalidBody(f"the body must be a JSON object, not {type(value).__name__}")
        return value


@dataclass(frozen=True)
class HTTPReply:
    """Answer with `status`, `headers` and `body`, after waiting `delay` seconds.

    The body is sent as is when it is bytes (``application/octet-stream``), UTF-8 encoded when
    it is a str (``text/plain``), and as JSON otherwise (``application/json``). A
    ``Content-Type`` in `headers` replaces the one chosen from the body.
    """

    status: int = 200
    body: object = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def payload(self) -> tuple[bytes, str]:
        """The body as bytes, with its content type."""
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json"


@dataclass(frozen=True)
class HTTPDrop:
    """Close the connection without answering, after waiting `delay` seconds.

    The client sees the connection end before any response: what a crashed backend or a
    proxy that gave up looks like.
    """

    delay: float = 0.0


@dataclass(frozen=True)
class HTTPStream:
    """Answer with `status` and `headers`, then send each piece `chunks` yields as it comes.

    The body goes out with chunked transfer encoding, one chunk per piece, written as soon as
    the iterator yields it, so a client sees the first pieces while later ones are still being
    produced (server-sent events, long downloads). `interval` seconds pass before each piece
    after the first; stopping the server cuts the wait short and ends the answer. A client
    that closes the connection early ends it too: the iterator is closed (a generator's
    ``finally`` runs). ``Content-Type`` defaults to ``application/octet-stream``.
    """

    chunks: Iterable[bytes]
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    interval: float = 0.0


RouteHandler = Callable[[HTTPRequest], HTTPReply | HTTPDrop | HTTPStream]
"""What a route calls for each request it serves: the request in, the answer out."""


@dataclass(frozen=True)
class _Fault:
    """What happens to one coming request (to `path`, else to any)."""

    path: str | None
    status: int | None = None
    body: object = None
    retry_after: str | None = None
    delay: float = 0.0
    drop: bool = False


@dataclass
class _Route:
    pattern: str
    regex: re.Pattern[str] | None  # None: the pattern is a plain path
    handlers: dict[str, tuple[RouteHandler, int]] = field(default_factory=dict)

    def match(self, path: str) -> dict[str, str] | None:
        if self.regex is None:
            return {} if path == self.pattern else None
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


@dataclass(frozen=True)
class _Resolved:
    """Where a request lands: its route pattern, parameters, and what answers it."""

    pattern: str | None
    params: dict[str, str]
    scripted: bool = False
    handler: tuple[RouteHandler, int] | None = None
    allowed: tuple[str, ...] = ()


class LoopbackHTTPServer:
    """A threaded HTTP/1.1 server on a loopback address; see the module docstring.

    The socket is bound when the server is built, so `url` is known at once; `start` serves it
    and `stop` (or leaving the ``with`` block) releases everything. A stopped server cannot be
    started again. `host` must be a loopback address (``127.0.0.1``, ``::1`` ...); `port` 0
    asks the system for a free one. `name` prefixes the server's thread names.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bearer_token: str | None = None,
        latency: float = 0.0,
        name: str = "loopback-http",
    ) -> None:
        """A stopped server with no routes, bound to `host` and `port`."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"a test server listens on a loopback address only, not {host!r}")
        self._bearer_token = bearer_token
        self._latency = _seconds(latency, "latency")
        self._name = name
        self._lock = threading.Lock()
        self._routes: list[_Route] = []
        self._scripts: dict[str, list[HTTPReply | HTTPDrop]] = {}
        self._faults: list[_Fault] = []
        self._requests: list[HTTPRequest] = []
        self._errors: list[BaseException] = []
        self._stopping = threading.Event()
        self._started = False
        self._http = _Server(self, host, port)
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL},
            name=f"{name}:{self.port}",
            daemon=True,
        )

    # -- where it listens ----------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self._http.server_address[0])

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>`` (``http://[::1]:<port>`` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- lifetime ------------------------------------------------------------------------

    def start(self) -> Self:
        """Serve in a background thread; each connection gets a thread of its own."""
        if self._stopping.is_set():
            raise RuntimeError("a stopped server cannot be started again; build a new one")
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop serving and release every thread and socket the server holds.

        Waits (latency, delays) end at once and requests that were waiting get no answer;
        connections clients keep open are shut down; every connection thread is joined. The
        threads get `timeout` seconds in all; `TimeoutError` names those still running then
        (a handler that blocks on something the test never releases). Stopping twice is
        harmless.
        """
        deadline = time.monotonic() + timeout
        self._stopping.set()
        if self._thread.is_alive():
            self._http.shutdown()  # returns within one poll interval
            self._thread.join(timeout=_remaining(deadline))
        self._http.server_close()
        self._http.disconnect_clients()
        left = self._http.join_connections(deadline)
        if self._thread.is_alive():
            left.append(self._thread)
        if left:
            names = ", ".join(thread.name for thread in left)
            raise TimeoutError(f"the test server's threads did not end in {timeout}s: {names}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what it serves ------------------------------------------------------------------

    @overload
    def route(
        self, method: str, path: str, *, invalid_body_status: int = 400
    ) -> Callable[[RouteHandler], RouteHandler]: ...

    @overload
    def route(
        self, method: str, path: str, handler: RouteHandler, *, invalid_body_status: int = 400
    ) -> RouteHandler: ...

    def route(
        self,
        method: str,
        path: str,
        handler: RouteHandler | None = None,
        *,
        invalid_body_status: int = 400,
    ) -> RouteHandler | Callable[[RouteHandler], RouteHandler]:
        """Answer `method` requests to `path` with `handler` (without one: a decorator).

        `path` may hold ``{name}`` parts, each matching one path segment, and a last
        ``{name:path}`` part matching the rest of the path; their values reach the handler as
        `HTTPRequest.params`. Plain paths are matched before patterns, then routes in the
        order declared. When the handler lets `InvalidBody` escape, the server answers
        `invalid_body_status` with the error's message. Any other exception answers 500 and
        is kept in `errors`.
        """
        verb = method.upper()
        if verb not in _METHODS:
            raise ValueError(f"unsupported method {method!r}; expected one of {_METHODS}")
        regex = _compile(path)

        def declare(function: RouteHandler) -> RouteHandler:
            with self._lock:
                target = next((r for r in self._routes if r.pattern == path), None)
                if target is None:
                    target = _Route(path, regex)
                    self._routes.append(target)
                if verb in target.handlers:
                    raise ValueError(f"{verb} {path} already has a handler")
                target.handlers[verb] = (function, invalid_body_status)
            return function

        return declare if handler is None else declare(handler)

    def script(self, path: str, *steps: HTTPReply | HTTPDrop) -> None:
        """Answer the next requests to `path` with `steps`, one each; the last one repeats.

        A script answers whatever the method, and takes precedence over a route for the same
        path. Setting a path's script again replaces it.
        """
        if not steps:
            raise ValueError("a script needs at least one step")
        if not path.startswith("/"):
            raise ValueError(f"a path starts with '/': {path!r}")
        with self._lock:
            self._scripts[path] = list(steps)

    # -- faults and latency --------------------------------------------------------------

    @property
    def latency(self) -> float:
        """Seconds every request waits before anything else happens to it."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency = _seconds(seconds, "latency")

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        path: str | None = None,
        retry_after: str | float | None = None,
        body: object = None,
    ) -> None:
        """Answer the next `count` requests (to `path`, else to any) with `status`.

        `retry_after` is sent as the ``Retry-After`` header (seconds, or an HTTP date);
        `body` is the answer's body (default: a JSON object saying the failure was asked
        for). Neither a script step nor a handler is used for a failed request.
        """
        text = None if retry_after is None else _retry_after(retry_after)
        self._queue(count, _Fault(self._known(path), status=status, body=body, retry_after=text))

    def delay_next(self, seconds: float, count: int = 1, *, path: str | None = None) -> None:
        """Hold the next `count` requests (to `path`, else to any) for `seconds`, then let
        them go on as usual; stopping the server cuts the wait short."""
        self._queue(count, _Fault(self._known(path), delay=_seconds(seconds, "a delay")))

    def drop_next(self, count: int = 1, *, path: str | None = None) -> None:
        """Close the connection of the next `count` requests (to `path`, else to any)
        without answering them."""
        self._queue(count, _Fault(self._known(path), drop=True))

    # -- what it received ----------------------------------------------------------------

    @property
    def requests(self) -> list[HTTPRequest]:
        """Every request received so far, in order of arrival (failed and dropped ones too)."""
        with self._lock:
            return list(self._requests)

    def seen(self, path: str) -> list[HTTPRequest]:
        """The requests to `path` (a path, or a declared route pattern) in order of arrival."""
        with self._lock:
            return [r for r in self._requests if path in (r.path, r.route)]

    def count(self, path: str | None = None) -> int:
        """How many requests `path` (a path or route pattern; else any) received so far."""
        with self._lock:
            if path is None:
                return len(self._requests)
            return sum(1 for r in self._requests if path in (r.path, r.route))

    def gaps(self, path: str) -> list[float]:
        """Seconds between consecutive requests to `path`, measured on arrival."""
        times = [request.at for request in self.seen(path)]
        return [later - earlier for earlier, later in itertools.pairwise(times)]

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised by handlers (each answered 500), oldest first."""
        with self._lock:
            return list(self._errors)

    # -- serving (called by the connection threads) --------------------------------------

    def _answer(
        self, method: str, target: str, pairs: list[tuple[str, str]], body: bytes
    ) -> HTTPReply | HTTPDrop | HTTPStream | None:
        """The answer to one request; None when the server stopped while it waited."""
        parts = urlsplit(target)
        arrived = time.monotonic()
        with self._lock:
            resolved = self._resolve(parts.path, method)
            request = HTTPRequest(
                method=method,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers=_Headers(pairs),
                body=body,
                at=arrived,
                route=resolved.pattern,
                params=resolved.params,
            )
            self._requests.append(request)
            fault = self._take_fault(request)
        if not self._wait(self._latency):
            return None
        if fault is not None:
            if not self._wait(fault.delay):
                return None
            if fault.drop:
                return HTTPDrop()
            if fault.status is not None:
                return _failure(fault)
        if resolved.pattern is None:
            return HTTPReply(404, {"error": f"nothing is served at {parts.path}"})
        if not resolved.scripted and resolved.handler is None:
            allowed = ", ".join(resolved.allowed)
            message = f"{resolved.pattern} answers {allowed}, not {method}"
            return HTTPReply(405, {"error": message}, {"Allow": allowed})
        if not self._authorized(request.headers.get("Authorization")):
            return HTTPReply(
                401, {"error": "a valid bearer token is required"}, {"WWW-Authenticate": "Bearer"}
            )
        step: HTTPReply | HTTPDrop | HTTPStream
        if resolved.scripted:
            step = self._next_step(parts.path)
        else:
            assert resolved.handler is not None  # narrowed by the 405 above
            step = self._call(resolved.handler, request)
        return step if self._wait(step.delay) else None

    def _resolve(self, path: str, method: str) -> _Resolved:
        if path in self._scripts:
            return _Resolved(path, {}, scripted=True)
        plain = [r for r in self._routes if r.regex is None]
        patterns = [r for r in self._routes if r.regex is not None]
        allowed: list[str] = []
        first: _Resolved | None = None
        for candidate in (*plain, *patterns):
            params = candidate.match(path)
            if params is None:
                continue
            if method in candidate.handlers:
                return _Resolved(candidate.pattern, params, handler=candidate.handlers[method])
            allowed.extend(m for m in candidate.handlers if m not in allowed)
            first = first or _Resolved(candidate.pattern, params)
        if first is None:
            return _Resolved(None, {})
        return _Resolved(first.pattern, first.params, allowed=tuple(allowed))

    def _take_fault(self, request: HTTPRequest) -> _Fault | None:
        for index, fault in enumerate(self._faults):
            if fault.path is None or fault.path in (request.path, request.route):
                return self._faults.pop(index)
        return None

    def _next_step(self, path: str) -> HTTPReply | HTTPDrop:
        with self._lock:
            script = self._scripts[path]
            return script.pop(0) if len(script) > 1 else script[0]

    def _call(
        self, handler: tuple[RouteHandler, int], request: HTTPRequest
    ) -> HTTPReply | HTTPDrop | HTTPStream:
        function, invalid_body_status = handler
        try:
            answer: object = function(request)  # untyped handlers return anything
        except InvalidBody as error:
            return HTTPReply(invalid_body_status, {"error": str(error)})
        except Exception as error:
            self._failed(error)
            kind = type(error).__name__
            return HTTPReply(500, {"error": f"the handler of {request.route} raised {kind}"})
        if not isinstance(answer, HTTPReply | HTTPDrop | HTTPStream):
            kind = type(answer).__name__
            self._failed(TypeError(f"the handler of {request.route} returned a {kind}"))
            return HTTPReply(500, {"error": f"the handler of {request.route} returned a {kind}"})
        return answer

    def _authorized(self, authorization: str | None) -> bool:
        if self._bearer_token is None:
            return True
        expected = f"Bearer {self._bearer_token}".encode()
        return hmac.compare_digest((authorization or "").encode(), expected)

    def _wait(self, seconds: float) -> bool:
        """Wait `seconds`; False when the server stopped meanwhile (or had already)."""
        if seconds > 0:
            self._stopping.wait(seconds)
        return not self._stopping.is_set()

    def _queue(self, count: int, fault: _Fault) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        with self._lock:
            self._faults.extend([fault] * count)

    def _known(self, path: str | None) -> str | None:
        """`path` itself, once sure that the server serves it (a typo would never match)."""
        if path is None:
            return None
        with self._lock:
            served = path in self._scripts or any(
                route.pattern == path or route.match(path) is not None for route in self._routes
            )
        if not served:
            raise ValueError(f"no route or script serves {path!r}; declare it first")
        return path

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)


def _compile(pattern: str) -> re.Pattern[str] | None:
    """The regular expression of a route pattern; None for a plain path."""
    if not pattern.startswith("/"):
        raise ValueError(f"a route's path starts with '/': {pattern!r}")
    pieces: list[str] = []
    literals: list[str] = []
    position = 0
    for found in _PARAMETER.finditer(pattern):
        if found.group(2) and found.end() != len(pattern):
            raise ValueError(f"a {{name:path}} part comes last in a route: {pattern!r}")
        literals.append(pattern[position : found.start()])
        pieces.append(re.escape(literals[-1]))
        pieces.append(f"(?P<{found.group(1)}>{'.+' if found.group(2) else '[^/]+'})")
        position = found.end()
    literals.append(pattern[position:])
    pieces.append(re.escape(literals[-1]))
    if any("{" in literal or "}" in literal for literal in literals):
        raise ValueError(f"a route parameter is written {{name}} or {{name:path}}: {pattern!r}")
    if position == 0:
        return None
    try:
        return re.compile("".join(pieces))
    except re.error as error:  # the same parameter name twice
        raise ValueError(f"invalid route {pattern!r}: {error}") from None


def _failure(fault: _Fault) -> HTTPReply:
    headers = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
    body = {"error": "failure requested by the test"} if fault.body is None else fault.body
    return HTTPReply(fault.status or 503, body, headers)


def _retry_after(value: str | float) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _seconds(value: float, what: str) -> float:
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{what} is a number of seconds, at least 0, not {value!r}")
    return float(value)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


class _Server(ThreadingHTTPServer):
    """One thread per connection, tracked, so that stopping ends and joins them all.

    The standard library would join connection threads without a time limit and would not
    end the idle keep-alive connections they wait on; this server does both itself.
    """

    daemon_threads = True  # a thread stop() could not end never keeps the interpreter alive
    block_on_close = False  # stop() joins the threads, with a deadline
    request_queue_size = 128  # a burst of parallel connections is not refused

    def __init__(self, owner: LoopbackHTTPServer, host: str, port: int) -> None:
        self.owner = owner
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._connections_lock = threading.Lock()
        self._numbers = itertools.count(1)
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup `HTTPServer` makes for its server name."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{self.owner._name}:{self.server_address[1]}/{next(self._numbers)}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections[thread] = request
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._connections.pop(threading.current_thread(), None)

    def disconnect_clients(self) -> None:
        """Shut down every open connection, so that the threads reading them finish."""
        with self._connections_lock:
            connections = list(self._connections.values())
        for connection in connections:
            with contextlib.suppress(OSError):  # closed meanwhile
                connection.shutdown(socket.SHUT_RDWR)

    def join_connections(self, deadline: float) -> list[threading.Thread]:
        """Join the connection threads until `deadline`; those still running."""
        with self._connections_lock:
            threads = list(self._connections)
        for thread in threads:
            thread.join(timeout=_remaining(deadline))
        return [thread for thread in threads if thread.is_alive()]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up leaves a broken pipe behind: no traceback for that. Any other
        error is the server's own, kept in `errors`."""
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, OSError):
            self.owner._failed(error)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as production servers offer
    disable_nagle_algorithm = True  # headers and body leave in two writes: no delayed ACK wait
    server: _Server

    def _serve(self) -> None:
        body = self._read_body()
        pairs = list(self.headers.items())
        answer = self.server.owner._answer(self.command, self.path, pairs, body)
        if answer is None or isinstance(answer, HTTPDrop):
            self.close_connection = True  # nothing written: the client sees the connection end
            return
        if isinstance(answer, HTTPStream):
            self._stream(answer)
            return
        content, content_type = answer.payload()
        self.send_response(answer.status)
        if not any(name.lower() == "content-type" for name in answer.headers):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def _stream(self, answer: HTTPStream) -> None:
        """Send `answer`'s pieces as chunks, each as soon as it is produced."""
        self.send_response(answer.status)
        if not any(name.lower() == "content-type" for name in answer.headers):
            self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        pieces = iter(answer.chunks)
        owner = self.server.owner
        try:
            for number, piece in enumerate(pieces):
                if number and not owner._wait(answer.interval):
                    self.close_connection = True  # stopped: the answer ends unfinished
                    return
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client closed the connection early
            self.close_connection = True
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunks()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunks(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after the chunk

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""
