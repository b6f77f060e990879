"""Egress policy: which network destinations a configuration from a tenant may make us reach.

A config written by the platform reaches whatever it names. A config a tenant wrote
(`UntrustedConfig`) may only reach public addresses on the scheme's default port, unless an
`EgressRule` of the operator allows more for that connector and tenant. Names are resolved
once, every address they resolve to is checked, and connections go to the checked addresses
(`EgressGuard.addresses`): a name that answers differently at connect time is never asked
again, so it cannot swap a public address for an internal one.

The guard is the one mechanism every networked connector uses: the HTTP transport of
`integrations.base.http`, and the resolve-and-check step the Redis and PostgreSQL stores call
before they hand an address to their driver.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Final, Protocol
from urllib.parse import urlsplit

from ._exceptions import ConnectionFailed, EgressDenied

__all__ = [
    "DEFAULT_PORTS",
    "UNRESTRICTED",
    "Destination",
    "EgressGuard",
    "EgressPolicy",
    "EgressRule",
    "HostResolver",
    "SystemResolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS: Final = {
    "http": 80,
    "https": 443,
    "redis": 6379,
    "rediss": 6379,
    "postgresql": 5432,
    "postgres": 5432,
}
"""The port each scheme uses when a URL names none: the only port open to untrusted configs
unless a rule allows another."""

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")

_NOT_GLOBAL: Final = (
    ipaddress.IPv4Network("192.0.0.0/24"),  # IETF protocol assignments (RFC 6890)
    ipaddress.IPv6Network("fec0::/10"),  # site-local: deprecated, still routed inside networks
    ipaddress.IPv6Network("3fff::/20"),  # documentation (RFC 9637)
)
"""Ranges no Internet host has that `ipaddress` counts as global: site-local in every Python
release, the others in releases whose tables predate the IANA registry entries (3.11.7 does)."""

_HOST_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
"""What a tenant must look like to stand in a host pattern: one DNS label, nothing wider."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A place a connector will connect to: a host (name or address) and a port.

    `default_port` is the port its scheme uses without one (the only port an untrusted config
    may use unless a rule allows more). A `host` starting with ``/`` is a local path (a socket
    or a file): never reachable from an untrusted config.
    """

    host: str
    port: int
    default_port: int

    @classmethod
    def from_url(cls, url: str, default_ports: dict[str, int] | None = None) -> Destination:
        """The destination of `url`; its scheme must have a default port (`DEFAULT_PORTS`)."""
        parts = urlsplit(url)
        known = default_ports or DEFAULT_PORTS
        default = known.get(parts.scheme.lower())
        if default is None or not parts.hostname:
            raise ValueError("not a network URL with a known scheme and a host")
        return cls(parts.hostname, parts.port or default, default)

    @property
    def local(self) -> bool:
        """Whether this is a local path (a Unix socket, a file) rather than a network address."""
        return self.host.startswith("/")

    def __str__(self) -> str:
        if self.local:
            return f"local:{self.host}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


class HostResolver(Protocol):
    """Turns a host name into the addresses it stands for (what the guard checks)."""

    def resolve(self, host: str, port: int) -> Sequence[str]:
        """Every address `host` resolves to, as text; raise `ConnectionFailed` if none."""
        ...


class SystemResolver:
    """The operating system's resolver (``getaddrinfo``), as the drivers themselves would ask."""

    def resolve(self, host: str, port: int) -> Sequence[str]:
        """The distinct addresses of `host`, in the order the system gives them."""
        try:
            answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise ConnectionFailed(f"cannot resolve {host!r}: {reason}") from None
        addresses: list[str] = []
        for _family, _type, _proto, _name, sockaddr in answers:
            address = str(sockaddr[0]).split("%", 1)[0]
            if address not in addresses:
                addresses.append(address)
        return tuple(addresses)


@dataclass(frozen=True, slots=True)
class EgressRule:
    """What the operator opens to untrusted configs beyond public addresses on default ports.

    A rule applies to the connectors and tenants matching its shell-style patterns. It allows
    a destination when its address passes (the host name matches `hosts`, which may name
    ``{tenant}``; or every address it resolves to lies in `networks`; or, with neither given,
    every address is public) and its port passes (listed in `ports`; or, with none given,
    the default port).
    """

    connectors: tuple[str, ...] = ("*",)
    tenants: tuple[str, ...] = ("*",)
    hosts: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    _networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            parsed = tuple(ipaddress.ip_network(network, strict=False) for network in self.networks)
        except ValueError as error:
            raise ValueError(f"egress rule: {error}") from None
        for port in self.ports:
            if not 0 < port < 65536:
                raise ValueError(f"egress rule: port {port} is not a TCP port")
        object.__setattr__(self, "_networks", parsed)

    def applies(self, connector: str, tenant: str | None) -> bool:
        """Whether this rule speaks for `connector` and `tenant`."""
        return any(fnmatchcase(connector, pattern) for pattern in self.connectors) and any(
            fnmatchcase(tenant or "", pattern) for pattern in self.tenants
        )

    def allows(
        self,
        destination: Destination,
        addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
        tenant: str | None,
    ) -> bool:
        """Whether this rule opens `destination`, resolved to `addresses`."""
        if self.ports:
            if destination.port not in self.ports:
                return False
        elif destination.port != destination.default_port:
            return False
        if self.hosts or self._networks:
            return self._names(destination.host, tenant) or (
                bool(self._networks)
                and all(any(a in network for network in self._networks) for a in addresses)
            )
        return all(refusal(address) is None for address in addresses)

    def _names(self, host: str, tenant: str | None) -> bool:
        name = host.lower().rstrip(".")
        for pattern in self.hosts:
            if "{tenant}" in pattern:
                if not tenant or not _HOST_LABEL.fullmatch(tenant):
                    continue
                pattern = pattern.replace("{tenant}", tenant)
            if fnmatchcase(name, pattern.lower().rstrip(".")):
                return True
        return False


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not public (loopback, private, link-local ...), or None if it is.

    IPv6 forms that embed an IPv4 address (mapped, NAT64, 6to4, Teredo) are judged by the
    IPv4 address they carry.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return refusal(embedded)
    for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global or any(address in network for network in _NOT_GLOBAL):
        return "not public"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """The destinations untrusted configs may reach: public ones, and what `rules` open.

    With `public` False, only what a rule opens is reachable.
    """

    rules: tuple[EgressRule, ...] = ()
    public: bool = True

    def decide(
        self,
        destination: Destination,
        addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address],
        *,
        connector: str,
        tenant: str | None,
    ) -> str | None:
        """Why `destination` (resolved to `addresses`) is refused, or None when it may be used."""
        if destination.local:
            return "a local path (a socket or a file), not a network address"
        applicable = [rule for rule in self.rules if rule.applies(connector, tenant)]
        if any(rule.allows(destination, addresses, tenant) for rule in applicable):
            return None
        if not self.public:
            return "no egress rule allows it"
        for address in addresses:
            reason = refusal(address)
            if reason is not None:
                return f"{address} is {reason}"
        if destination.port != destination.default_port:
            return f"port {destination.port} is not the default port {destination.default_port}"
        return None

    def guard(
        self,
        *,
        connector: str,
        tenant: str | None,
        resolver: HostResolver | None = None,
        on_denied: Callable[[EgressDenied], None] | None = None,
    ) -> EgressGuard:
        """A guard enforcing this policy for one session of `connector` run for `tenant`."""
        return EgressGuard(
            self, connector, tenant, resolver or SystemResolver(), on_denied=on_denied
        )


class EgressGuard:
    """Resolves, checks and pins the destinations of one session.

    The first lookup of a host and port is the only one: later connections get the
    addresses that were checked. The unrestricted guard (`UNRESTRICTED`, for configs the
    platform wrote) neither resolves nor checks: drivers connect as they always do.
    """

    def __init__(
        self,
        policy: EgressPolicy | None,
        connector: str = "",
        tenant: str | None = None,
        resolver: HostResolver | None = None,
        *,
        on_denied: Callable[[EgressDenied], None] | None = None,
    ) -> None:
        """Guard `connector`'s connections for `tenant` by `policy` (None: unrestricted)."""
        self.policy = policy
        self.connector = connector
        self.tenant = tenant
        self._resolver = resolver or SystemResolver()
        self._on_denied = on_denied
        self._pinned: dict[tuple[str, int], tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict[int, object]) -> EgressGuard:
        return self  # one guard per session: copies of its config share its pins

    @property
    def restricted(self) -> bool:
        """Whether destinations are checked (the config came from a tenant)."""
        return self.policy is not None

    def admit(self, destinations: Iterable[Destination]) -> None:
        """Check every destination now, before anything connects; raise `EgressDenied`."""
        for destination in destinations:
            self.addresses(destination)

    def addresses(self, destination: Destination) -> tuple[str, ...]:
        """Where to connect for `destination`: the checked addresses, or the host unchanged.

        Raises `EgressDenied` (after telling `on_denied`) when the policy refuses it.
        """
        if self.policy is None:
            return (destination.host,)
        key = (destination.host.lower().rstrip("."), destination.port)
        with self._lock:
            pinned = self._pinned.get(key)
        if pinned is not None:
            return pinned
        resolved = self._resolve(destination)
        reason = self.policy.decide(
            destination,
            [ipaddress.ip_address(address) for address in resolved],
            connector=self.connector,
            tenant=self.tenant,
        )
        if reason is not None:
            self._deny(destination, reason)
        with self._lock:
            return self._pinned.setdefault(key, resolved)

    def pinned(self, host: str, port: int) -> tuple[str, ...] | None:
        """The addresses already checked for `host` and `port`, if any."""
        with self._lock:
            return self._pinned.get((host.lower().rstrip("."), port))

    def _resolve(self, destination: Destination) -> tuple[str, ...]:
        if destination.local:
            return ()
        literal = _address(destination.host)
        if literal is not None:
            return (str(literal),)
        resolved = tuple(self._resolver.resolve(destination.host, destination.port))
        if not resolved:
            raise ConnectionFailed(f"cannot resolve {destination.host!r}: no address")
        for address in resolved:
            if _address(address) is None:
                raise ConnectionFailed(f"the resolver gave {destination.host!r} a non-address")
        return resolved

    def _deny(self, destination: Destination, reason: str) -> None:
        tenant = self.tenant or "<none>"
        detail = f"{destination} ({reason})"
        error = EgressDenied(
            f"{EgressDenied.code}: {self.connector or 'the connector'} may not reach "
            f"{detail} for tenant {tenant}: the egress policy for untrusted configs refuses it",
            detail,
        )
        if self._on_denied is not None:
            self._on_denied(error)
        raise error


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


UNRESTRICTED: Final = EgressGuard(None)
"""The guard of configs the platform wrote: destinations are used as given."""
