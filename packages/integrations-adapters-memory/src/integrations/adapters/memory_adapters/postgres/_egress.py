"""Where a PostgreSQL DSN connects, and the DSN a tenant's config is really connected with.

`postgres_destinations` reads the hosts and ports of a DSN as libpq does (comma lists, a
``hostaddr`` in place of a host, a socket directory, no host at all). For a config from a
tenant (`UntrustedConfig`) the session checks them against the egress policy before the
connector is called; `untrusted_dsn` then rewrites the DSN so that libpq connects where the
guard checked and nowhere else, and uses none of the platform's ambient credentials:

- every host gets ``hostaddr`` set to its checked addresses (one host entry per address), so
  libpq never looks the name up again, while ``host`` stays for TLS verification and the
  server's view; the ports are written out, so ``PGPORT`` cannot move them;
- keywords that make libpq read the platform's files or services, or write one, are
  refused (`REFUSED_KEYWORDS`): a tenant cannot name a service, a password file, a client
  certificate or key, CA or CRL files (``sslrootcert=system``, the system's trusted roots,
  is allowed with libpq 16 or later), a TLS key log, an OAuth issuer (a place libpq would
  reach outside the egress policy) or the ``hostaddr`` the store sets itself;
- what libpq would otherwise take from the platform is pinned: the password (an empty
  default when the DSN has none, so ``PGPASSWORD`` is never used), the password file, the
  client certificate, key, CA and CRL files (paths in an empty directory of this process,
  so ``~/.pgpass`` and ``~/.postgresql/*`` are never read), GSSAPI encryption off and, with
  libpq 16 or later, GSSAPI and SSPI authentication refused (``require_auth``), so the
  platform's Kerberos tickets are never offered. A platform whose environment sets
  ``PGSERVICE`` cannot open untrusted DSNs at all: libpq would fill them from its service
  file, and that cannot be switched off per connection.

Refusals of keywords are `ConfigError`: no operator setting opens them to tenants (unlike
the egress and reference policies), the DSN is wrong for where it comes from and the tenant
fixes it. Destinations outside the policy, a DSN without a host (libpq's default: a local
socket or the platform's ``PGHOST``) and socket paths are `EgressDenied`, from the guard.
Messages name keywords, never values: the DSN holds the password.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from integrations.base import ConfigError, Destination, EgressGuard

__all__ = ["NO_HOST", "REFUSED_KEYWORDS", "postgres_destinations", "untrusted_dsn"]

DEFAULT_PORT: Final = 5432

NO_HOST: Final = "/(no host)"
"""The destination of a DSN entry without a host: libpq's default, a local socket (or
whatever the platform's ``PGHOST`` says), never reachable from an untrusted config."""

REFUSED_KEYWORDS: Final = {
    "service": "it reads the platform's service file",
    "servicefile": "it names a file of the platform",
    "passfile": "it reads a file of the platform for the password",
    "sslcert": "client certificates are files of the platform",
    "sslkey": "client keys are files of the platform",
    "sslpassword": "it unlocks a client key of the platform",
    "sslrootcert": "it names a file of the platform (sslrootcert=system, the system's "
    "trusted roots, is allowed)",
    "sslcrl": "it names a file of the platform",
    "sslcrldir": "it names a directory of the platform",
    "sslkeylogfile": "it writes a file on the platform",
    "oauth_issuer": "libpq would reach the issuer outside the egress policy",
    "hostaddr": "the store sets it to the addresses the egress policy checked",
}
"""The DSN keywords an untrusted config may not use, and why."""

_SYSTEM_ROOTS: Final = "system"
_GSSAPI_METHODS: Final = ("gss", "sspi")
_LIBPQ_REQUIRE_AUTH: Final = 160000
"""The first libpq with ``require_auth`` and ``sslrootcert=system``."""


def _bad_dsn(reason: str) -> ConfigError:
    return ConfigError(f"PostgresMemoryConfig.dsn {reason}", (("dsn", reason),))


def parse_dsn(dsn: str) -> dict[str, str]:
    """The DSN's keywords; `ConfigError` (not quoting it) when libpq cannot read it."""
    try:
        return {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
    except psycopg.Error:
        # The driver's message quotes the string, which may hold the password.
        raise ConfigError(
            "PostgresMemoryConfig.dsn is not a PostgreSQL connection string",
            (("dsn", "not a libpq connection string or postgresql:// URI"),),
        ) from None


def postgres_destinations(params: Mapping[str, str]) -> tuple[Destination, ...]:
    """Where libpq connects for a DSN's keywords, one destination per host entry, in order.

    A ``hostaddr`` entry is where libpq connects for its host, so it is the destination. A
    host starting with ``/`` is a socket directory and one starting with ``@`` a socket in
    Linux's abstract namespace (shown as ``/@name``); an empty or missing host is `NO_HOST`.
    All three are local destinations.
    """
    hosts = _split(params.get("host"))
    addresses = _split(params.get("hostaddr"))
    if hosts and addresses and len(hosts) != len(addresses):
        raise _bad_dsn(f"gives {len(addresses)} hostaddr entries for {len(hosts)} hosts")
    count = max(len(hosts), len(addresses), 1)
    ports = _ports(params.get("port"), count)
    destinations = []
    for index in range(count):
        target = (addresses[index] if addresses else "") or (hosts[index] if hosts else "")
        if not target:
            target = NO_HOST
        elif target.startswith("@"):
            target = f"/{target}"
        destinations.append(Destination(target, ports[index], DEFAULT_PORT))
    return tuple(destinations)


def untrusted_dsn(dsn: str, guard: EgressGuard) -> str:
    """`dsn` as libpq must see it for a config from a tenant (see the module).

    Raises `ConfigError` for a refused keyword (naming it) and `EgressDenied` (from `guard`)
    for a destination the policy refuses.
    """
    params = parse_dsn(dsn)
    _refuse_keywords(params)
    if "PGSERVICE" in os.environ:
        raise ConfigError(
            "the platform's environment sets PGSERVICE: libpq would complete an untrusted DSN "
            "from the platform's service file; unset it where sessions of tenants run",
            (("dsn", "PGSERVICE is set in the platform's environment"),),
        )
    hosts: list[str] = []
    addresses: list[str] = []
    ports: list[str] = []
    for destination in postgres_destinations(params):
        for address in guard.addresses(destination):  # refuses local destinations
            hosts.append(destination.host)
            addresses.append(address)
            ports.append(str(destination.port))
    nowhere = _nowhere()
    pinned = {
        "host": ",".join(hosts),
        "hostaddr": ",".join(addresses),
        "port": ",".join(ports),
        "passfile": str(nowhere / "pgpass"),
        "sslcert": str(nowhere / "postgresql.crt"),
        "sslkey": str(nowhere / "postgresql.key"),
        "sslcrl": str(nowhere / "root.crl"),
        "sslcrldir": str(nowhere / "crl"),
        "gssencmode": "disable",
    }
    if "password" not in params:
        pinned["password"] = ""
    if params.get("sslrootcert") != _SYSTEM_ROOTS:
        pinned["sslrootcert"] = str(nowhere / "root.crt")
    if psycopg.pq.version() >= _LIBPQ_REQUIRE_AUTH:
        pinned["require_auth"] = _require_auth(params.get("require_auth"))
    return make_conninfo(dsn, **pinned)


def _refuse_keywords(params: Mapping[str, str]) -> None:
    refused = [
        keyword
        for keyword in REFUSED_KEYWORDS
        if keyword in params
        and not (
            keyword == "sslrootcert"
            and params[keyword] == _SYSTEM_ROOTS
            and psycopg.pq.version() >= _LIBPQ_REQUIRE_AUTH
        )
    ]
    if params.get("gssencmode", "disable") != "disable":
        refused.append("gssencmode")
    if not refused:
        return
    reasons = {
        **REFUSED_KEYWORDS,
        "gssencmode": "GSSAPI would use the platform's Kerberos credentials",
    }
    raise ConfigError(
        f"PostgresMemoryConfig.dsn of an untrusted config may not use {', '.join(refused)}: "
        + "; ".join(f"{keyword}: {reasons[keyword]}" for keyword in refused),
        tuple(("dsn", f"{keyword}: {reasons[keyword]}") for keyword in refused),
    )


def _require_auth(given: str | None) -> str:
    """The tenant's ``require_auth`` with GSSAPI and SSPI taken out (libpq's syntax)."""
    methods = [method.strip() for method in (given or "").split(",") if method.strip()]
    if all(method.startswith("!") for method in methods):  # none given, or all negated
        excluded = [f"!{method}" for method in _GSSAPI_METHODS if f"!{method}" not in methods]
        return ",".join([*methods, *excluded])
    if any(method in _GSSAPI_METHODS for method in methods):
        raise _bad_dsn(
            "of an untrusted config may not require gss or sspi authentication: GSSAPI would "
            "use the platform's Kerberos credentials"
        )
    return ",".join(methods)


def _split(value: str | None) -> list[str]:
    return [] if value is None else [part.strip() for part in value.split(",")]


def _ports(value: str | None, count: int) -> list[int]:
    texts = _split(value) or [""]
    if len(texts) == 1:
        texts *= count
    elif len(texts) != count:
        raise _bad_dsn(f"gives {len(texts)} ports for {count} hosts")
    ports = []
    for text in texts:
        try:
            port = int(text) if text else DEFAULT_PORT
        except ValueError:
            raise _bad_dsn("gives a port that is not a number") from None
        if not 0 < port < 65536:
            raise _bad_dsn("gives a port that is not a TCP port")
        ports.append(port)
    return ports


@functools.cache
def _nowhere() -> Path:
    """An empty directory of this process's own: the paths in it name no file, ever.

    libpq goes on without a password file, client certificate, CA or CRL file that does not
    exist; a path that nobody else can create is how an untrusted DSN is given "none".
    """
    path = Path(tempfile.mkdtemp(prefix="integrations-libpq-"))
    atexit.register(_remove, path)
    return path


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()
