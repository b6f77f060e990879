"""A real HTTP server on 127.0.0.1 whose answers are scripted per path, for fault tests.

Resilience is tested against real sockets, not a patched client: the server can delay an
answer, drop the connection without answering, answer 429 with ``Retry-After``, 500 or 503,
and then succeed. Each path has a script of steps, used one per request; when a script runs
out its last step repeats. Every request is recorded with its arrival time, so a test can
measure the delays a client chose between attempts from the server's side.

The server listens on an ephemeral port, answers each request in its own thread, and stops
(cutting any scripted delay short) when the `with` block ends.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Drop", "LoopbackServer", "Reply", "Seen", "Step"]


@dataclass(frozen=True)
class Reply:
    """Answer with `status`, `headers` and `body` (a str, bytes, or JSON data), after `delay`."""

    status: int = 200
    body: Any = b""
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
class Drop:
    """Close the connection without sending anything, after `delay`."""

    delay: float = 0.0


Step = Reply | Drop


@dataclass(frozen=True)
class Seen:
    """A request as the server received it; `at` is `time.monotonic()` on arrival."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (a timeout) leaves a broken pipe behind: no traceback."""


class LoopbackServer:
    """A scripted HTTP server on 127.0.0.1; use it with ``with`` (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Step]] = {}
        self._seen: dict[str, list[Seen]] = defaultdict(list)
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, path: str, *steps: Step) -> None:
        """Answer the next requests to `path` with `steps`, one each; the last one repeats."""
        if not steps:
            raise ValueError("a script needs at least one step")
        with self._lock:
            self._scripts[path] = list(steps)

    def seen(self, path: str) -> list[Seen]:
        """The requests `path` received so far, in order of arrival."""
        with self._lock:
            return list(self._seen[path])

    def gaps(self, path: str) -> list[float]:
        """Seconds between consecutive requests to `path`, measured on arrival."""
        times = [request.at for request in self.seen(path)]
        return [later - earlier for earlier, later in itertools.pairwise(times)]

    def start(self) -> LoopbackServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut scripted delays short and close the listening socket."""
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _next_step(self, request: Seen) -> Step:
        with self._lock:
            self._seen[request.path].append(request)
            script = self._scripts.get(request.path)
            if script is None:
                return Reply(404, {"error": "no script for this path"})
            return script.pop(0) if len(script) > 1 else script[0]

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _handler_for(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            seen = Seen(
                self.command, parts.path, parts.query, dict(self.headers), body, time.monotonic()
            )
            step = server._next_step(seen)
            server._wait(step.delay)
            if isinstance(step, Drop):
                self.close_connection = True  # nothing written: the client sees EOF
                return
            content, content_type = step.payload()
            self.send_response(step.status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(content)))
            for name, value in step.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output clean."""

    return Handler
