"""Signal sources for tests: a loopback HTTP source, the client that reads it, a file source.

The collector is tested against real sources: `SignalSourceServer` serves a JSON list of
signals on 127.0.0.1 (on the shared `LoopbackHTTPServer`, so latency, failures and dropped
connections come from its controls), after a configurable delay, or garbage on demand.
`HttpSignalSource` is the signal source that reads such a server over real sockets;
`JsonFileSignalSource` reads a JSON file, which is what the ``intent.signals`` certification
names in its config.

Both sources are test helpers. `HttpSignalSource` refuses any address but the loopback one:
it goes through no egress policy, and a config must never point it elsewhere.
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Final, cast
from urllib.parse import urlsplit

from integrations.adapters.intent_adapters._signal import Signal
from integrations.adapters.intent_adapters.signals import InvalidSourceAnswer
from integrations.base import (
    AuthError,
    ConnectionFailed,
    ConnectorError,
    InvalidRequest,
    JsonObject,
    NotFound,
    RateLimited,
    TransientError,
    format_utc,
)
from integrations.base.testing import HTTPReply, HTTPRequest, LoopbackHTTPServer

__all__ = [
    "BlockingHttpSignalSource",
    "HttpSignalSource",
    "JsonFileSignalSource",
    "SignalSourceServer",
    "StaticSignalSource",
    "write_signal_file",
]

SIGNALS_PATH: Final = "/signals"
MAX_BODY_BYTES: Final = 64 * 1024 * 1024
"""The largest answer `HttpSignalSource` reads."""
MAX_HEAD_BYTES: Final = 64 * 1024
"""The largest status line and headers `HttpSignalSource` reads."""
_JSON_TYPE: Final = {"Content-Type": "application/json"}
GARBAGE: Final = "<html><body>upstream is having a bad day</body></html>"
"""What a source answers when asked for garbage: a body that is not JSON at all."""


class SignalSourceServer(LoopbackHTTPServer):
    """``GET /signals`` on 127.0.0.1: the signals it holds, as a JSON list, after `delay`.

    Everything `LoopbackHTTPServer` offers applies (``fail_next``, ``drop_next``,
    ``delay_next``, ``latency``, the request log). `answer_garbage` makes the next answers
    something that is not a list of signals. Use it with ``with``; `source()` is a signal
    source reading it.
    """

    def __init__(
        self,
        signals: Iterable[Signal | Mapping[str, Any]] = (),
        *,
        delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "signal-source",
    ) -> None:
        """A stopped server holding `signals`, answering each request after `delay` seconds."""
        super().__init__(host=host, port=port, name=name)
        self._state = threading.Lock()
        self._signals: list[JsonObject] = [_json_of(signal) for signal in signals]
        self._body = _encoded(self._signals)
        self._garbage: list[object] = []
        self.delay = delay
        self.route("GET", SIGNALS_PATH, self._answer_signals)

    @property
    def signals_url(self) -> str:
        """The URL a source reads: ``http://127.0.0.1:<port>/signals``."""
        return self.url + SIGNALS_PATH

    @property
    def delay(self) -> float:
        """Seconds each answer waits before it is sent (stopping the server cuts it short)."""
        return self._delay

    @delay.setter
    def delay(self, seconds: float) -> None:
        if not seconds >= 0:  # also refuses NaN
            raise ValueError(f"delay is a number of seconds, at least 0, not {seconds!r}")
        self._delay = float(seconds)

    @property
    def signals(self) -> list[JsonObject]:
        """The signals the server answers, as JSON, in order."""
        with self._state:
            return [dict(signal) for signal in self._signals]

    def set_signals(self, signals: Iterable[Signal | Mapping[str, Any]]) -> None:
        """Answer `signals` from now on (datetimes are sent in RFC 3339, UTC)."""
        converted = [_json_of(signal) for signal in signals]
        body = _encoded(converted)
        with self._state:
            self._signals, self._body = converted, body

    def answer_garbage(self, count: int = 1, *, body: object = GARBAGE) -> None:
        """Answer the next `count` requests with `body` (default: HTML) instead of signals."""
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        with self._state:
            self._garbage.extend([body] * count)

    def source(self, timeout: float = 5.0) -> HttpSignalSource:
        """An (async) signal source that reads this server."""
        return HttpSignalSource(self.signals_url, timeout=timeout)

    def blocking_source(self, timeout: float = 5.0) -> BlockingHttpSignalSource:
        """A sync signal source that reads this server, blocking its thread meanwhile."""
        return BlockingHttpSignalSource(self.signals_url, timeout=timeout)

    def _answer_signals(self, request: HTTPRequest) -> HTTPReply:
        """The signals, encoded once when set (every request answers the same bytes)."""
        with self._state:
            if not self._garbage:
                return HTTPReply(body=self._body, headers=_JSON_TYPE, delay=self._delay)
            garbage = self._garbage.pop(0)
        return HTTPReply(body=garbage, delay=self._delay)


class _LoopbackSource:
    """Where an HTTP signal source reads: a loopback URL, and how long it waits."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        """Read `url` (``http://`` on a loopback address), waiting at most `timeout` seconds."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "http" or not (host == "localhost" or _is_loopback_address(host)):
            raise ValueError(f"{type(self).__name__} reads http:// URLs on a loopback address only")
        if not 0 < timeout <= 300:
            raise ValueError(f"timeout is in seconds, more than 0 and at most 300, not {timeout}")
        self.url = url
        self.timeout = float(timeout)
        self._host = host
        self._port = parts.port or 80
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def _answer(self, status: int, retry_after: str | None, body: bytes) -> Any:
        if status >= 300:
            raise _status_error(self.url, status, retry_after)
        return _parsed(self.url, body)


class HttpSignalSource(_LoopbackSource):
    """An async signal source that GETs a JSON list of signals from a loopback URL.

    One HTTP/1.1 request per fetch on a connection of its own (``Connection: close``),
    straight to the address: no proxy, no redirect, no thread. The answer is returned as
    parsed, whatever it is (the connector judges it); a body that is not JSON raises
    `InvalidSourceAnswer`. HTTP failures map into the library's errors: 429 `RateLimited`,
    5xx and timeouts `TransientError` (sessions retry those), 401 and 403 `AuthError`, 404
    `NotFound`, other statuses `InvalidRequest`, an unreachable server or a connection that
    ends without an answer `ConnectionFailed`.

    The exchange is a small `asyncio.Protocol` (`_Exchange`) rather than streams: a
    collection reads dozens of these sources at once on one loop, and each answer then costs
    one callback per chunk received.
    """

    async def fetch_signals(self) -> Sequence[Mapping[str, Any]]:
        """The server's answer, parsed from JSON (see the class)."""
        try:
            async with asyncio.timeout(self.timeout):
                status, retry_after, body = await self._exchange()
        except TimeoutError:
            raise TransientError(f"{self.url} did not answer within {self.timeout} s") from None
        except (OSError, ValueError) as error:
            raise ConnectionFailed(f"cannot read {self.url}: {type(error).__name__}") from None
        answer: Sequence[Mapping[str, Any]] = self._answer(status, retry_after, body)
        return answer

    async def _exchange(self) -> tuple[int, str | None, bytes]:
        request = (
            f"GET {self._target} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            "Accept: application/json\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[tuple[int, str | None, bytes]] = loop.create_future()
        transport, _ = await loop.create_connection(
            lambda: _Exchange(request, answered), self._host, self._port
        )
        try:
            return await answered
        finally:
            transport.close()


class _Exchange(asyncio.Protocol):
    """One request written on connecting, one answer read: (status, Retry-After, body).

    The answer is complete when its ``Content-Length`` bytes have arrived, or (without that
    header) when the server closes the connection. A connection that ends before, or an
    answer over `MAX_BODY_BYTES`, settles the future with an `OSError` or a `ValueError`.
    """

    def __init__(
        self, request: bytes, answered: asyncio.Future[tuple[int, str | None, bytes]]
    ) -> None:
        self._request = request
        self._answered = answered
        self._received = bytearray()
        self._head: tuple[int, dict[str, str], int] | None = None
        """Status, headers, and where the body starts, once the head has arrived."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.WriteTransport, transport).write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._answered.done():
            return
        self._received += data
        try:
            self._advance()
        except ValueError as error:
            self._answered.set_exception(error)

    def eof_received(self) -> bool:
        self._end(ConnectionResetError("the connection ended before the whole answer"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc or ConnectionResetError("the connection ended before the whole answer"))

    def _advance(self) -> None:
        if len(self._received) > MAX_BODY_BYTES + MAX_HEAD_BYTES:
            raise ValueError("the answer is too large")
        if self._head is None:
            end = self._received.find(b"\r\n\r\n")
            if end < 0:
                if len(self._received) > MAX_HEAD_BYTES:
                    raise ValueError("the answer's head is too large")
                return
            status, headers = _head(bytes(self._received[:end]))
            self._head = (status, headers, end + 4)
        status, headers, start = self._head
        length = headers.get("content-length")
        if length is None:
            return  # the body ends with the connection
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            raise ValueError("the answer's length is not one this source reads")
        if len(self._received) - start >= int(length):
            body = bytes(self._received[start : start + int(length)])
            self._answered.set_result((status, headers.get("retry-after"), body))

    def _end(self, error: Exception) -> None:
        """The connection ended: the answer is what arrived if its length was not given."""
        if self._answered.done():
            return
        if self._head is not None and "content-length" not in self._head[1]:
            status, headers, start = self._head
            body = bytes(self._received[start:])
            self._answered.set_result((status, headers.get("retry-after"), body))
            return
        self._answered.set_exception(error)


class BlockingHttpSignalSource(_LoopbackSource):
    """The same source, read synchronously (``http.client``), as a legacy adapter would.

    It blocks its thread for as long as the server takes: what the collector must survive.
    """

    def fetch_signals(self) -> Sequence[Mapping[str, Any]]:
        """The server's answer, parsed from JSON (see `HttpSignalSource` for the errors)."""
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        try:
            connection.request("GET", self._target, headers={"Accept": "application/json"})
            response = connection.getresponse()
            body = response.read()
        except TimeoutError:
            raise TransientError(f"{self.url} did not answer within {self.timeout} s") from None
        except (http.client.HTTPException, OSError) as error:
            raise ConnectionFailed(f"cannot read {self.url}: {type(error).__name__}") from None
        finally:
            connection.close()
        retry_after = response.getheader("Retry-After")
        answer: Sequence[Mapping[str, Any]] = self._answer(response.status, retry_after, body)
        return answer


class JsonFileSignalSource:
    """A signal source that reads a JSON list of signals from a file, at each fetch.

    A missing file raises `NotFound`, a file that is not JSON `InvalidSourceAnswer`.
    """

    def __init__(self, path: str) -> None:
        """Read the file at `path`."""
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def fetch_signals(self) -> Sequence[Mapping[str, Any]]:
        """The file's JSON, as parsed."""
        try:
            body = self.path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"no signal file at {self.path}") from None
        except OSError as error:
            raise ConnectorError(
                f"cannot read the signal file {self.path}: {error.strerror}"
            ) from None
        answer: Sequence[Mapping[str, Any]] = _parsed(str(self.path), body)
        return answer


class StaticSignalSource:
    """A signal source answering the signals its options hold, as given.

    It reads nothing and reaches nothing, so a tenant's config may name it
    (``tenant_safe``): the file and HTTP sources above take a path or an address, which only
    the platform may choose.
    """

    tenant_safe: ClassVar[bool] = True

    def __init__(self, signals: Sequence[Mapping[str, Any]] = ()) -> None:
        """Answer `signals` at every fetch."""
        self.signals = [dict(signal) for signal in signals]

    def fetch_signals(self) -> Sequence[Mapping[str, Any]]:
        """The signals given, in their order."""
        return list(self.signals)


def write_signal_file(path: Path, signals: Iterable[Signal | Mapping[str, Any]]) -> None:
    """Write `signals` to `path` as the JSON list `JsonFileSignalSource` reads (atomically)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps([_json_of(signal) for signal in signals]), encoding="utf-8")
    temporary.replace(path)


def _parsed(where: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise InvalidSourceAnswer(f"the signals at {where} are not JSON") from None


def _encoded(signals: list[JsonObject]) -> bytes:
    """The JSON list a server answers, as `HTTPReply` would encode it."""
    return json.dumps(signals).encode()


def _json_of(signal: Signal | Mapping[str, Any]) -> JsonObject:
    """A signal as JSON, datetimes in RFC 3339 (UTC); `InvalidRequest` when it cannot be."""
    if isinstance(signal, Signal):
        return signal.to_json()
    try:
        converted = json.loads(json.dumps(dict(signal), default=_moment))
    except (TypeError, ValueError) as error:
        raise InvalidRequest(f"a test signal cannot be sent as JSON: {error}") from None
    return dict(converted)


def _moment(value: object) -> str:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return format_utc(value)
    if isinstance(value, datetime):
        return value.isoformat()  # naive: sent as is, for tests of what receivers refuse
    raise TypeError(f"{type(value).__name__} is not JSON")


def _head(raw: bytes) -> tuple[int, dict[str, str]]:
    """The status and headers (names in lower case) of an answer's head; `ValueError` if bad."""
    status_line, *lines = raw.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    if not version.startswith("HTTP/") or not status.isdigit():
        raise ValueError("not an HTTP answer")
    headers = {}
    for line in lines:
        name, separator, value = line.partition(":")
        if separator:
            headers[name.strip().lower()] = value.strip()
    return int(status), headers


def _is_loopback_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _status_error(url: str, status: int, retry_after: str | None) -> ConnectorError:
    message = f"{url} answered HTTP {status}"
    if status == 429:
        return RateLimited(message, _seconds(retry_after))
    if status >= 500:
        return TransientError(message, _seconds(retry_after))
    if status in (401, 403):
        return AuthError(message)
    if status == 404:
        return NotFound(message)
    return InvalidRequest(message)


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None
