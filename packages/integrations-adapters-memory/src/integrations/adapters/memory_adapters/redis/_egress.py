"""Where a Redis URL connects, and connections pinned to the addresses the egress guard checked.

For a config from a tenant (`UntrustedConfig`) the session checks the URL's destination
before the connector is called; the store then connects to the addresses it checked, never
to a fresh lookup of the name (which a rebinding name could answer with an internal address).
redis-py connects by host name (``socket.getaddrinfo(self.host)``) and verifies TLS
certificates against the same ``self.host``, so the pinned connection classes here keep
``host`` as configured (the name TLS checks, the name in errors) and only open their TCP socket
to the checked addresses. redis-py has no option for that: it resolves whatever ``host`` holds.

An untrusted URL may also carry only the query options that neither name the platform's files
(``ssl_certfile``, ``ssl_ca_certs`` ...), nor reach other places (``ssl_validate_ocsp`` asks
the certificate's OCSP responder), nor move the destination (``host``, ``port``), nor override
the store's own limits: `check_untrusted_url`.

Messages never quote the URL: it holds the password.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import redis
from redis.connection import parse_url

from integrations.base import ConfigError, Destination

__all__ = [
    "UNTRUSTED_QUERY_OPTIONS",
    "PinnedConnection",
    "PinnedSSLConnection",
    "check_untrusted_url",
    "pinned_connection_class",
    "redis_destination",
]

DEFAULT_PORT: Final = 6379

SCHEMES: Final = ("redis://", "rediss://", "unix://")

UNTRUSTED_QUERY_OPTIONS: Final = frozenset(
    {
        "db",
        "username",
        "password",
        "client_name",
        "ssl_cert_reqs",
        "ssl_check_hostname",
        "ssl_min_version",
    }
)
"""The query options of an untrusted URL: the database, the tenant's own credentials and
name, and how strictly its own server's certificate is checked."""


def _bad_url(reason: str) -> ConfigError:
    return ConfigError(f"the Redis url {reason}", (("url", reason),))


def redis_destination(url: str) -> Destination:
    """Where redis-py connects for `url`: host and port (6379 by default), or a socket path.

    The host and port are read by redis-py's own URL parser, so a ``host`` or ``port`` query
    option counts as redis-py counts it; without a host redis-py connects to ``localhost``.
    A ``unix://`` URL is a local destination (its host is the socket path), which untrusted
    configs never reach. Raises `ConfigError` without quoting the URL.
    """
    if not url.lower().startswith(SCHEMES):
        raise _bad_url("must start with redis://, rediss:// or unix://")
    try:
        options = parse_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        if url.lower().startswith("unix://"):
            path = str(options.get("path", ""))
            return Destination(path if path.startswith("/") else f"/{path}", 0, 0)
        host = str(options.get("host") or "localhost")
        port = int(options.get("port", DEFAULT_PORT))
    except ValueError:  # redis-py's and urllib's messages may quote the URL
        raise _bad_url("could not be parsed") from None
    if not 0 < port < 65536:
        raise _bad_url("names a port that is not a TCP port")
    return Destination(host, port, DEFAULT_PORT)


def check_untrusted_url(url: str) -> None:
    """Refuse (`ConfigError`) query options an untrusted URL may not carry; name them, no values.

    A `ConfigError` rather than a policy denial: no operator setting opens these options to
    tenants; the tenant's URL is wrong for where it comes from, and fixing it is theirs.
    """
    try:
        names = set(parse_qs(urlsplit(url).query, keep_blank_values=True))
    except ValueError:
        raise _bad_url("could not be parsed") from None
    refused = sorted(names - UNTRUSTED_QUERY_OPTIONS)
    if refused:
        allowed = ", ".join(sorted(UNTRUSTED_QUERY_OPTIONS))
        raise ConfigError(
            f"the Redis url of an untrusted config may not set {', '.join(refused)}: such a "
            f"url may carry only the query options {allowed}",
            tuple(
                ("url", f"query option {name} not allowed for untrusted configs")
                for name in refused
            ),
        )


def _pinned_socket(connection: Any, addresses: Sequence[str]) -> socket.socket:
    """A TCP socket to the first of `addresses` that accepts, set up as redis-py sets its own.

    `addresses` are IP addresses: no name is looked up here (``AI_NUMERICHOST``).
    """
    error: OSError | None = None
    for address in addresses:
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(
            address,
            connection.port,
            connection.socket_type,
            socket.SOCK_STREAM,
            0,
            socket.AI_NUMERICHOST,
        ):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if connection.socket_keepalive:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                    for option, value in connection.socket_keepalive_options.items():
                        sock.setsockopt(socket.IPPROTO_TCP, option, value)
                sock.settimeout(connection.socket_connect_timeout)
                sock.connect(sockaddr)
                sock.settimeout(connection.socket_timeout)
            except OSError as failure:
                sock.close()
                error = failure
                continue
            return sock
    if error is None:  # the guard never pins an empty list of addresses
        error = OSError("no address to connect to")
    raise error


class PinnedConnection(redis.Connection):
    """A TCP connection to the checked addresses of its host, not to a lookup of the name."""

    def __init__(self, *, pinned_addresses: Sequence[str], **options: Any) -> None:
        """`pinned_addresses`: the IP addresses to connect to, in order; the rest is redis-py's."""
        self.pinned_addresses = tuple(pinned_addresses)
        super().__init__(**options)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped

    def _connect(self) -> socket.socket:
        return _pinned_socket(self, self.pinned_addresses)


class PinnedSSLConnection(redis.SSLConnection):
    """A TLS connection over a TCP socket to the checked addresses.

    The certificate is verified against ``host``, the configured name (redis-py's
    ``server_hostname=self.host``), not against the address the socket reached.
    """

    def __init__(self, *, pinned_addresses: Sequence[str], **options: Any) -> None:
        """`pinned_addresses`: the IP addresses to connect to, in order; the rest is redis-py's."""
        self.pinned_addresses = tuple(pinned_addresses)
        super().__init__(**options)

    def _connect(self) -> socket.socket:
        sock = _pinned_socket(self, self.pinned_addresses)
        try:
            wrapped: socket.socket = self._wrap_socket_with_ssl(sock)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        except (OSError, redis.RedisError):
            sock.close()
            raise
        return wrapped


def pinned_connection_class(url: str) -> type[redis.Connection]:
    """The pinned class for `url`'s scheme: TLS for ``rediss://``."""
    return PinnedSSLConnection if url.lower().startswith("rediss://") else PinnedConnection
