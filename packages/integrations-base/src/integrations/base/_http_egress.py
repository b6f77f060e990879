"""httpx transports that send every request through an `EgressGuard`.

Each request's destination is checked before it is sent (redirects included: each hop is a
request), and the connection pool connects to the addresses the guard checked, never to a
fresh lookup of the name. TLS still verifies the certificate against the host name of the
URL: only the TCP connection is pinned. Proxies from the environment are not used, since
they would make the proxy, not the destination, the place checked.

Imported only by `integrations.base.http.egress_transport`, with httpx installed.
"""

from __future__ import annotations

import ssl
import typing

import anyio.to_thread
import httpcore
import httpx

from ._egress import DEFAULT_PORTS, Destination, EgressGuard

__all__ = ["AsyncEgressTransport", "EgressTransport"]

_Options = typing.Iterable[typing.Any]
_LIMITS: typing.Final = httpx.Limits(max_connections=100, max_keepalive_connections=20)
"""httpx's own default limits."""


def _destination(url: httpx.URL) -> Destination:
    default = DEFAULT_PORTS.get(url.scheme, 0)
    return Destination(url.host, url.port or default, default)


def _url_host(raw_host: str) -> str:
    """The pool's host as `httpx.URL.host` spells it: the spelling requests are checked with.

    The pool connects by the URL's raw host, IDNA-encoded (``xn--bcher-kva.example``), while
    a request is checked (and its addresses pinned) by ``URL.host``, which httpx shows decoded
    (``bücher.example``). Looked up by the raw spelling, the pin would be missed: the name
    resolved a second time and checked against a host its rules do not name.
    """
    try:
        return httpx.URL(scheme="http", host=raw_host).host
    except httpx.InvalidURL:
        return raw_host


def _pinned(guard: EgressGuard, host: str, port: int) -> tuple[str, ...]:
    """The checked addresses of a connection the pool opens (checked now if it was not)."""
    host = _url_host(host)
    addresses = guard.pinned(host, port)
    if addresses is None:  # every request is checked first; a missing pin is checked strictly
        addresses = guard.addresses(Destination(host, port, 0))
    return addresses


class _GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections to the guard's pinned addresses; refuses Unix sockets."""

    def __init__(self, guard: EgressGuard) -> None:
        self._guard = guard
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: _Options | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in _pinned(self._guard, host, port):
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failure:
                error = failure
        assert error is not None  # the guard never pins an empty list of addresses
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: _Options | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("a guarded transport does not open Unix sockets")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """The async twin of `_GuardedBackend`; name lookups run in a worker thread."""

    def __init__(self, guard: EgressGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: _Options | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await anyio.to_thread.run_sync(_pinned, self._guard, host, port)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failure:
                error = failure
        assert error is not None  # the guard never pins an empty list of addresses
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: _Options | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a guarded transport does not open Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _pool_options(
    verify: ssl.SSLContext | str | bool, cert: typing.Any, limits: httpx.Limits
) -> dict[str, typing.Any]:
    return {
        "ssl_context": httpx.create_ssl_context(verify=verify, cert=cert, trust_env=False),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class EgressTransport(httpx.HTTPTransport):
    """An `httpx.HTTPTransport` whose requests and connections go through an `EgressGuard`."""

    def __init__(
        self,
        guard: EgressGuard,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: typing.Any = None,
        limits: httpx.Limits = _LIMITS,
    ) -> None:
        super().__init__(verify=verify, cert=cert, trust_env=False, limits=limits)
        self._guard = guard
        # httpx has no parameter for the network backend: the pool is built again with one.
        self._pool = httpcore.ConnectionPool(
            network_backend=_GuardedBackend(guard), **_pool_options(verify, cert, limits)
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Check the request's destination (raising `EgressDenied`), then send it."""
        self._guard.addresses(_destination(request.url))
        return super().handle_request(request)


class AsyncEgressTransport(httpx.AsyncHTTPTransport):
    """The async twin of `EgressTransport`."""

    def __init__(
        self,
        guard: EgressGuard,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: typing.Any = None,
        limits: httpx.Limits = _LIMITS,
    ) -> None:
        super().__init__(verify=verify, cert=cert, trust_env=False, limits=limits)
        self._guard = guard
        # httpx has no parameter for the network backend: the pool is built again with one.
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=_AsyncGuardedBackend(guard), **_pool_options(verify, cert, limits)
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check the request's destination (raising `EgressDenied`), then send it."""
        await anyio.to_thread.run_sync(self._guard.addresses, _destination(request.url))
        return await super().handle_async_request(request)
