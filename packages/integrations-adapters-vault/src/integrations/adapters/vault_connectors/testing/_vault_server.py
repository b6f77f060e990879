"""The parts of HashiCorp Vault's HTTP API a secret client reads, served on 127.0.0.1.

No Vault server can be installed where this project's tests run, so the provider is tested
against this one: a wire-level stand-in that answers the documented requests with Vault's
documented JSON shapes and status codes, over real HTTP (or HTTPS) on a loopback port.

Endpoints (every path under ``/v1``):

- ``GET /v1/<mount>/data/<path>[?version=<n>]`` on a KV version 2 mount: ``{"data": {"data":
  {...}, "metadata": {"created_time", "custom_metadata", "deletion_time", "destroyed",
  "version"}}, "lease_duration": 0, ...}``; a missing secret or version answers 404
  ``{"errors": []}``, a deleted version 404 with its ``data`` null and its metadata;
- ``GET /v1/<mount>/<path>`` on a KV version 1 mount: ``{"data": {...}, "lease_duration":
  2764800, ...}`` (the refresh hint KV v1 sends), 404 ``{"errors": []}`` when missing;
- ``GET /v1/auth/token/lookup-self``: the token's ``data`` (``id``, ``policies``, ``ttl`` ...);
- ``POST /v1/auth/<mount>/login`` with ``{"role_id", "secret_id"}`` on an AppRole mount:
  ``{"auth": {"client_token", "accessor", "policies", "token_policies", "lease_duration",
  "renewable", ...}}``; wrong credentials answer 400 ``{"errors": ["invalid role or secret
  ID"]}``, a mount that is not there 404.

Every request but a login needs ``X-Vault-Token`` with a token the server issued, in the
namespace ``X-Vault-Namespace`` names (none: the root namespace): otherwise 403 ``{"errors":
["permission denied"]}``, as for a path the token's paths do not cover. A sealed server
answers every request 503 ``{"errors": ["Vault is sealed"]}``. Tests control the server
directly: `put`, `delete`, `add_token`, `add_approle`, `revoke`, `seal`/`unseal`, and count
what it received (`count`, `requests`); `http` is the underlying
`integrations.base.testing.LoopbackHTTPServer` for its fault controls.

Not served: writes through the API, leases and renewal, token creation other than AppRole
logins, policies beyond path prefixes, parent namespaces reaching child ones, response
wrapping, and every other Vault endpoint (they answer 404).
"""

from __future__ import annotations

import itertools
import ssl
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal

from integrations.base.testing import HTTPReply, HTTPRequest, LoopbackHTTPServer

__all__ = ["VaultServer", "vault_server"]

KV1_LEASE_SECONDS: Final = 2_764_800
"""The ``lease_duration`` KV v1 answers with (32 days: a refresh hint, not a lease)."""

DENIED: Final = {"errors": ["permission denied"]}
SEALED: Final = {"errors": ["Vault is sealed"]}
MISSING: Final[dict[str, list[str]]] = {"errors": []}

KVVersion = Literal[1, 2]


@dataclass(frozen=True)
class _Token:
    token: str = field(repr=False)
    namespace: str
    paths: tuple[str, ...]
    policies: tuple[str, ...]
    ttl: int
    accessor: str
    issued: datetime
    role: str | None = None


@dataclass(frozen=True)
class _Role:
    role_id: str
    secret_id: str | None = field(repr=False)
    paths: tuple[str, ...]
    policies: tuple[str, ...]
    token_ttl: int


@dataclass
class _Version:
    data: dict[str, Any] = field(repr=False)
    created: str
    deleted: str = ""


class VaultServer:
    """Vault's KV, token lookup and AppRole login endpoints, served from memory.

    `mounts` maps each secrets engine mount to its KV version (``secret`` v2 and ``kv`` v1
    by default). With `token`, the server knows that token in the root namespace, allowed
    every path. With `tls` (a server-side `ssl.SSLContext`), it speaks HTTPS and `url` says
    so. Use it with ``with``.
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        mounts: Mapping[str, KVVersion] | None = None,
        tls: ssl.SSLContext | None = None,
        latency: float = 0.0,
    ) -> None:
        """A stopped server with no secrets."""
        self._lock = threading.Lock()
        self._mounts: dict[str, KVVersion] = dict(mounts or {"secret": 2, "kv": 1})
        self._secrets: dict[tuple[str, str, str], list[_Version]] = {}
        self._tokens: dict[str, _Token] = {}
        self._roles: dict[tuple[str, str], dict[str, _Role]] = {}
        self._issued: list[str] = []
        self._sealed = False
        self._accessors = itertools.count(1)
        self._tls = tls is not None
        self.http: Final = LoopbackHTTPServer(name="vault-server", latency=latency)
        if tls is not None:
            # LoopbackHTTPServer speaks plain HTTP; its listening socket is wrapped here, and
            # each connection's handshake happens in that connection's thread, on first read.
            listener = self.http._http
            listener.socket = tls.wrap_socket(
                listener.socket, server_side=True, do_handshake_on_connect=False
            )
        self.http.route("GET", "/v1/auth/token/lookup-self", self._lookup_self)
        self.http.route("POST", "/v1/auth/{route:path}", self._login)
        self.http.route("GET", "/v1/{path:path}", self._read)
        if token is not None:
            self.add_token(token)

    @property
    def url(self) -> str:
        """The address to give a client (``VAULT_ADDR``)."""
        scheme = "https" if self._tls else "http"
        return f"{scheme}://{self.http.url.split('://', 1)[1]}"

    # -- lifetime ------------------------------------------------------------------------

    def start(self) -> VaultServer:
        """Serve in a background thread."""
        self.http.start()
        return self

    def stop(self) -> None:
        """Stop serving and release every thread and socket the server holds."""
        self.http.stop()

    def __enter__(self) -> VaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test controls -------------------------------------------------------------------

    def put(
        self, mount: str, path: str, data: Mapping[str, Any], *, namespace: str | None = None
    ) -> int:
        """Store `data` at `path` of `mount`; the version written (KV v1 keeps only one)."""
        key = self._key(mount, path, namespace)
        version = _Version(dict(data), _now())
        with self._lock:
            versions = self._secrets.setdefault(key, [])
            if self._mounts[mount] == 1:
                versions.clear()
            versions.append(version)
            return len(versions)

    def delete(self, mount: str, path: str, *, namespace: str | None = None) -> None:
        """Delete the secret: KV v2 marks its latest version deleted, KV v1 removes it."""
        key = self._key(mount, path, namespace)
        with self._lock:
            versions = self._secrets.get(key)
            if not versions:
                raise KeyError(f"no secret at {mount}/{path}")
            if self._mounts[mount] == 1:
                del self._secrets[key]
            else:
                versions[-1].deleted = _now()

    def add_token(
        self,
        token: str,
        *,
        namespace: str | None = None,
        paths: Iterable[str] = ("*",),
        policies: Iterable[str] = ("root",),
        ttl: int = 0,
    ) -> None:
        """Accept `token` in `namespace` for reads of `paths` (a final ``*`` matches any rest)."""
        with self._lock:
            self._tokens[token] = self._token(token, namespace, paths, policies, ttl)

    def add_approle(
        self,
        role_id: str,
        secret_id: str | None,
        *,
        mount: str = "approle",
        namespace: str | None = None,
        paths: Iterable[str] = ("*",),
        policies: Iterable[str] = ("default",),
        token_ttl: int = 3600,
    ) -> None:
        """Accept an AppRole login with `role_id` (and `secret_id`, unless it is None) at
        ``auth/<mount>``; the tokens it issues read `paths` and last `token_ttl` seconds."""
        role = _Role(role_id, secret_id, tuple(paths), tuple(policies), token_ttl)
        with self._lock:
            self._roles.setdefault((_space(namespace), mount), {})[role_id] = role

    def revoke(self, token: str) -> None:
        """Forget `token`: every later request carrying it answers 403."""
        with self._lock:
            self._tokens.pop(token, None)

    def seal(self) -> None:
        """Seal the server: every request answers 503 until `unseal`."""
        with self._lock:
            self._sealed = True

    def unseal(self) -> None:
        """Serve again after `seal`."""
        with self._lock:
            self._sealed = False

    @property
    def issued(self) -> list[str]:
        """The tokens AppRole logins issued, oldest first."""
        with self._lock:
            return list(self._issued)

    def count(self, path: str | None = None) -> int:
        """How many requests `path` (``/v1/secret/data/app``, say; else any) received."""
        return self.http.count(path)

    @property
    def requests(self) -> list[HTTPRequest]:
        """Every request received so far, in order of arrival."""
        return self.http.requests

    # -- serving (called by the connection threads) --------------------------------------

    def _lookup_self(self, request: HTTPRequest) -> HTTPReply:
        token, refusal = self._authorize(request, None)
        if token is None:
            return refusal
        return HTTPReply(
            200,
            _envelope(
                {
                    "accessor": token.accessor,
                    "creation_time": int(token.issued.timestamp()),
                    "creation_ttl": token.ttl,
                    "display_name": f"approle-{token.role}" if token.role else "token",
                    "entity_id": "",
                    "expire_time": None,
                    "explicit_max_ttl": 0,
                    "id": token.token,
                    "issue_time": token.issued.isoformat().replace("+00:00", "Z"),
                    "meta": {"role_name": token.role} if token.role else None,
                    "num_uses": 0,
                    "orphan": True,
                    "path": f"auth/{'approle' if token.role else 'token'}/login",
                    "policies": list(token.policies),
                    "renewable": token.ttl > 0,
                    "ttl": token.ttl,
                    "type": "service",
                },
                mount_type="token",
            ),
        )

    def _login(self, request: HTTPRequest) -> HTTPReply:
        namespace = _namespace(request)
        route = f"auth/{request.params['route'].strip('/')}"
        mount = route.removeprefix("auth/").removesuffix("/login")
        with self._lock:
            if self._sealed:
                return HTTPReply(503, SEALED)
            roles = self._roles.get((namespace, mount)) if route.endswith("/login") else None
        if roles is None:
            message = f'no handler for route "{route}". route entry not found.'
            return HTTPReply(404, {"errors": [message]})
        body = request.json_object()
        role_id, secret_id = body.get("role_id"), body.get("secret_id")
        if not isinstance(role_id, str) or not role_id:
            return HTTPReply(400, {"errors": ["missing role_id"]})
        role = roles.get(role_id)
        if role is None or (role.secret_id is not None and secret_id != role.secret_id):
            return HTTPReply(400, {"errors": ["invalid role or secret ID"]})
        issued = f"hvs.{uuid.uuid4().hex}"
        with self._lock:
            token = self._token(
                issued, namespace, role.paths, role.policies, role.token_ttl, role=role_id
            )
            self._tokens[issued] = token
            self._issued.append(issued)
        auth = {
            "client_token": issued,
            "accessor": token.accessor,
            "policies": list(role.policies),
            "token_policies": list(role.policies),
            "metadata": {"role_name": role_id},
            "lease_duration": role.token_ttl,
            "renewable": True,
            "entity_id": str(uuid.uuid5(uuid.NAMESPACE_URL, role_id)),
            "token_type": "service",
            "orphan": True,
            "mfa_requirement": None,
            "num_uses": 0,
        }
        return HTTPReply(200, {**_envelope(None, mount_type="approle"), "auth": auth})

    def _read(self, request: HTTPRequest) -> HTTPReply:
        path = request.params["path"].strip("/")
        token, refusal = self._authorize(request, path)
        if token is None:
            return refusal
        found = self._mount(path)
        if found is None:
            message = f'no handler for route "{path}". route entry not found.'
            return HTTPReply(404, {"errors": [message]})
        mount, rest, kv_version = found
        if kv_version == 1:
            return self._read_v1(mount, rest, token.namespace)
        if not rest.startswith("data/"):
            return HTTPReply(404, MISSING)
        return self._read_v2(mount, rest.removeprefix("data/"), token.namespace, request)

    def _read_v1(self, mount: str, path: str, namespace: str) -> HTTPReply:
        with self._lock:
            versions = self._secrets.get((namespace, mount, path))
            data = dict(versions[-1].data) if versions else None
        if data is None:
            return HTTPReply(404, MISSING)
        return HTTPReply(200, {**_envelope(data), "lease_duration": KV1_LEASE_SECONDS})

    def _read_v2(self, mount: str, path: str, namespace: str, request: HTTPRequest) -> HTTPReply:
        asked = request.query.get("version", ["0"])[0]
        if not asked.isdigit():
            return HTTPReply(400, {"errors": ["invalid version"]})
        with self._lock:
            versions = self._secrets.get((namespace, mount, path), [])
            number = int(asked) or len(versions)
            if not 1 <= number <= len(versions):
                return HTTPReply(404, MISSING)
            version = versions[number - 1]
            metadata = {
                "created_time": version.created,
                "custom_metadata": None,
                "deletion_time": version.deleted,
                "destroyed": False,
                "version": number,
            }
            if version.deleted:
                return HTTPReply(404, _envelope({"data": None, "metadata": metadata}))
            return HTTPReply(200, _envelope({"data": dict(version.data), "metadata": metadata}))

    def _authorize(self, request: HTTPRequest, path: str | None) -> tuple[_Token | None, HTTPReply]:
        """The request's token when it may read `path` (None: only look itself up)."""
        presented = request.headers.get("X-Vault-Token", "")
        namespace = _namespace(request)
        with self._lock:
            if self._sealed:
                return None, HTTPReply(503, SEALED)
            token = self._tokens.get(presented)
        if token is None or token.namespace != namespace:
            return None, HTTPReply(403, DENIED)
        if path is not None and not any(_covers(pattern, path) for pattern in token.paths):
            return None, HTTPReply(403, DENIED)
        return token, HTTPReply(200)

    def _mount(self, path: str) -> tuple[str, str, KVVersion] | None:
        """The mount `path` is under (the longest that matches), the rest, and its version."""
        with self._lock:
            mounts = sorted(self._mounts.items(), key=lambda item: -len(item[0]))
        for mount, kv_version in mounts:
            if path.startswith(f"{mount}/"):
                return mount, path.removeprefix(f"{mount}/"), kv_version
        return None

    def _key(self, mount: str, path: str, namespace: str | None) -> tuple[str, str, str]:
        if mount not in self._mounts:
            raise KeyError(f"no secrets engine is mounted at {mount!r}")
        return (_space(namespace), mount, path.strip("/"))

    def _token(
        self,
        token: str,
        namespace: str | None,
        paths: Iterable[str],
        policies: Iterable[str],
        ttl: int,
        *,
        role: str | None = None,
    ) -> _Token:
        accessor = f"accessor-{next(self._accessors)}"
        issued = datetime.now(UTC)
        return _Token(
            token, _space(namespace), tuple(paths), tuple(policies), ttl, accessor, issued, role
        )


@contextmanager
def vault_server(
    *,
    token: str | None = None,
    mounts: Mapping[str, KVVersion] | None = None,
    tls: ssl.SSLContext | None = None,
) -> Iterator[VaultServer]:
    """A started `VaultServer` for the ``with`` block; stopped (threads joined) after it."""
    with VaultServer(token=token, mounts=mounts, tls=tls) as server:
        yield server


def _envelope(data: object, mount_type: str = "kv") -> dict[str, Any]:
    """Vault's response envelope around `data`."""
    return {
        "request_id": str(uuid.uuid4()),
        "lease_id": "",
        "renewable": False,
        "lease_duration": 0,
        "data": data,
        "wrap_info": None,
        "warnings": None,
        "auth": None,
        "mount_type": mount_type,
    }


def _namespace(request: HTTPRequest) -> str:
    return _space(request.headers.get("X-Vault-Namespace"))


def _space(namespace: str | None) -> str:
    """A namespace's canonical name: ``team/`` and ``team`` are one; None is the root."""
    return (namespace or "").strip().strip("/")


def _covers(pattern: str, path: str) -> bool:
    """Whether a policy path covers `path`: exactly, or by prefix with a final ``*``."""
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
