"""Configs from tenants (`UntrustedConfig`) on the memory stores, against real loopback servers.

The Knowledge Vault, Redis and PostgreSQL stores declare their destinations and connect only
to the addresses the session's egress guard checked; the Knowledge Vault is also where the
issue's two exfiltration attempts (``env:`` and ``file:`` references to platform secrets in
the API key) are tried. A refusal is proved by what did not happen: the secret providers
were never asked, the connector's ``connect`` was never called, the server saw no request
or connection, the driver was never handed an address. Where a driver would have to reach a
public address (a name whose first answer is public), the socket layer (or libpq's entry
point) is intercepted, so nothing leaves the machine: every real connection is to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from psycopg.conninfo import conninfo_to_dict

from integrations.adapters.memory_adapters.knowledge_vault import KnowledgeVaultConnector
from integrations.adapters.memory_adapters.postgres import PostgresMemoryConnector
from integrations.adapters.memory_adapters.redis import RedisMemoryConnector
from integrations.adapters.memory_adapters.sqlite import SqliteMemoryConnector
from integrations.adapters.memory_adapters.testing import KnowledgeVaultServer
from integrations.base import (
    NO_RETRY,
    AuthContext,
    AuthError,
    ConfigError,
    Connection,
    ConnectionFailed,
    ConnectorError,
    EgressDenied,
    EgressPolicy,
    EgressRule,
    EnvSecretProvider,
    FetchQuery,
    FileSecretProvider,
    Governance,
    MemoryAuditSink,
    PushPayload,
    Record,
    SecretReferenceDenied,
    SecretReferencePolicy,
    SecretResolver,
    Session,
    SystemResolver,
    UntrustedConfig,
    UntrustedPolicy,
    registry,
)
from integrations.base.lifecycle import run_lifecycle

pytestmark = pytest.mark.timeout(120)

ACME = AuthContext(tenant="acme", actor="alice")
PUBLIC = "1.2.3.4"
"""A public address a rebinding name answers first; connections to it are intercepted."""

KV = "memory.knowledge_vault"
REDIS = "memory.redis"
POSTGRES = "memory.postgres"


# -- governance with spies ------------------------------------------------------------------


class SpyEnv(EnvSecretProvider):
    """The ``env:`` provider, remembering every name it was asked to resolve."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def resolve(self, reference: str) -> str:
        self.asked.append(reference)
        return super().resolve(reference)


class SpyFile(FileSecretProvider):
    """The ``file:`` provider, remembering every path it was asked to read."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def resolve(self, reference: str) -> str:
        self.asked.append(reference)
        return super().resolve(reference)


class ScriptedResolver:
    """Answers name lookups from a script: the n-th lookup of a name gets its n-th answer.

    Names the script does not know (``localhost``) are asked of the system.
    """

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def resolve(self, host: str, port: int) -> Sequence[str]:
        script = self.answers.get(host)
        if script is None:
            return SystemResolver().resolve(host, port)
        asked = self.lookups.count(host)
        self.lookups.append(host)
        return script[min(asked, len(script) - 1)]


class Governed:
    """A governance for untrusted configs whose secret providers and audit can be inspected."""

    def __init__(
        self,
        *,
        rules: Sequence[EgressRule] = (),
        resolver: ScriptedResolver | None = None,
        references: Sequence[str] = (),
    ) -> None:
        self.env = SpyEnv()
        self.file = SpyFile()
        self.audit = MemoryAuditSink()
        self.governance = Governance(
            audit=self.audit,
            retry=NO_RETRY,
            breaker=None,
            secrets=SecretResolver({"env": self.env, "file": self.file}, entry_points=False),
            untrusted=UntrustedPolicy(
                secret_references=SecretReferencePolicy(references),
                egress=EgressPolicy(rules=tuple(rules)),
                resolver=resolver,
            ),
        )

    def open(
        self, name: str, config: UntrustedConfig | Mapping[str, Any], context: AuthContext = ACME
    ) -> Session:
        """Open a session of connector `name` on `config`."""
        return registry.open(name, config=config, context=context, governance=self.governance)

    def denials(self) -> list[tuple[str, str]]:
        """The audited denials: (operation, detail)."""
        return [
            (event.operation, event.detail or "")
            for event in self.audit.events
            if event.outcome == "denied"
        ]

    def texts(self) -> str:
        """Every audited detail, for checking that a secret appears in none."""
        return "\n".join(event.detail or "" for event in self.audit.events)


def loopback(port: int) -> EgressRule:
    """The operator's rule that opens one port on loopback to untrusted configs."""
    return EgressRule(networks=("127.0.0.0/8",), ports=(port,))


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The connectors whose ``connect`` was called (the calls go through)."""
    calls: list[str] = []
    for cls in (KnowledgeVaultConnector, RedisMemoryConnector, PostgresMemoryConnector):
        original: Callable[[Any, Any], Connection] = cls.connect

        def spy(
            self: Any,
            config: Any,
            _original: Callable[[Any, Any], Connection] = original,
            _name: str = cls.__name__,
        ) -> Connection:
            calls.append(_name)
            return _original(self, config)

        monkeypatch.setattr(cls, "connect", spy)
    return calls


@pytest.fixture
def libpq_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The connection parameters the PostgreSQL store hands libpq (the calls go through)."""
    calls: list[dict[str, Any]] = []
    original = psycopg.connect

    def spy(conninfo: str = "", **kwargs: Any) -> Any:
        calls.append(conninfo_to_dict(conninfo, **kwargs))
        return original(conninfo, **kwargs)

    monkeypatch.setattr(psycopg, "connect", spy)
    return calls


class SocketSpy:
    """Records where Python sockets connect; lets loopback through and refuses the rest.

    Nothing reaches a public address: the refusal comes before any packet is sent.
    """

    def __init__(self) -> None:
        self.targets: list[tuple[str, int]] = []


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> SocketSpy:
    spy = SocketSpy()
    original = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        host, port = str(address[0]), int(address[1])
        spy.targets.append((host, port))
        if host not in ("127.0.0.1", "::1"):
            raise ConnectionRefusedError(f"the test refuses connections to {host}")
        original(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return spy


def vault_requests(server: KnowledgeVaultServer) -> int:
    return sum(server.requests(path) for path in ("/health", "/query", "/ingest", "/"))


def redis_connections(url: str) -> int:
    """How many connections the Redis server at `url` accepted so far (this probe's included)."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


def round_trip(session: Session, text: str) -> None:
    """Push one memory and fetch it back by its text."""
    record = Record(id=f"m-{uuid.uuid4().hex[:8]}", data={"text": text, "tags": ["t"]})
    result = session.push(PushPayload(records=(record,)))
    assert result.accepted == (record.id,)
    found = session.fetch(FetchQuery(text=text.split()[0], limit=10))
    assert [r.id for r in found.records] == [record.id]
    assert found.records[0].data["text"] == text


# -- the two exfiltration attempts of the issue ---------------------------------------------


@pytest.fixture
def canary() -> str:
    return f"canary-{uuid.uuid4().hex}"


@pytest.fixture
def keyed_vault(canary: str) -> Iterator[KnowledgeVaultServer]:
    """A Knowledge Vault that answers only requests bearing the canary as their key."""
    with KnowledgeVaultServer(api_key=canary) as server:
        yield server


def test_an_env_reference_to_a_platform_secret_is_denied_before_it_is_read(
    keyed_vault: KnowledgeVaultServer,
    canary: str,
    connects: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLATFORM_DB_PASSWORD", canary)
    governed = Governed(rules=[loopback(port_of(keyed_vault.url))])
    data = {"url": keyed_vault.url, "api_key": "env:PLATFORM_DB_PASSWORD"}

    with pytest.raises(SecretReferenceDenied) as denied:
        governed.open(KV, UntrustedConfig(data, origin="tenant settings form")).open()
    assert denied.value.scheme == "env"
    assert denied.value.field == "api_key"
    assert governed.env.asked == []  # never resolved
    assert connects == []
    assert vault_requests(keyed_vault) == 0
    assert governed.denials() == [
        ("connect", "SECRET_REFERENCE_DENIED field api_key: env: reference not allowed")
    ]
    assert canary not in str(denied.value)
    assert canary not in governed.texts()
    assert "PLATFORM_DB_PASSWORD" not in str(denied.value) + governed.texts()

    # The same config written by the platform is trusted: the key reaches the server.
    with governed.open(KV, data) as session:
        round_trip(session, "trusted canary memory")
    assert governed.env.asked == ["PLATFORM_DB_PASSWORD"]
    assert connects == ["KnowledgeVaultConnector"]
    # The server answers 401 to a request without "Authorization: Bearer <canary>".
    assert [document.content for document in keyed_vault.documents()] == ["trusted canary memory"]


def test_a_file_reference_to_a_platform_secret_is_denied_before_it_is_read(
    keyed_vault: KnowledgeVaultServer,
    canary: str,
    connects: list[str],
    tmp_path: Path,
) -> None:
    secret = tmp_path / "platform-db-password"
    secret.write_text(canary + "\n")
    governed = Governed(rules=[loopback(port_of(keyed_vault.url))])
    data = {"url": keyed_vault.url, "api_key": f"file:{secret}"}

    with pytest.raises(SecretReferenceDenied) as denied:
        governed.open(KV, UntrustedConfig(data)).open()
    assert denied.value.scheme == "file"
    assert governed.file.asked == []  # never read
    assert connects == []
    assert vault_requests(keyed_vault) == 0
    assert governed.denials() == [
        ("connect", "SECRET_REFERENCE_DENIED field api_key: file: reference not allowed")
    ]
    assert str(secret) not in str(denied.value) + governed.texts()

    with governed.open(KV, data) as session:
        round_trip(session, "trusted file memory")
    assert governed.file.asked == [str(secret)]
    assert [document.content for document in keyed_vault.documents()] == ["trusted file memory"]


def test_run_lifecycle_reports_the_refused_reference(
    keyed_vault: KnowledgeVaultServer, canary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_DB_PASSWORD", canary)
    governed = Governed(rules=[loopback(port_of(keyed_vault.url))])
    report = run_lifecycle(
        KV,
        config=UntrustedConfig({"url": keyed_vault.url, "api_key": "env:PLATFORM_DB_PASSWORD"}),
        context=ACME,
        governance=governed.governance,
    )
    assert [(step.step, step.outcome) for step in report.steps] == [("connect", "denied")]
    assert report.error is not None
    assert report.error.startswith("SecretReferenceDenied: SECRET_REFERENCE_DENIED")
    assert canary not in report.error
    assert governed.env.asked == []
    assert vault_requests(keyed_vault) == 0


def test_an_allowed_reference_to_a_vault_on_loopback_is_refused_by_egress_without_a_rule(
    canary: str, connects: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENANT_acme_API_KEY", canary)
    with KnowledgeVaultServer(api_key=canary) as server:
        data = {"url": server.url, "api_key": "env:TENANT_acme_API_KEY"}
        closed = Governed(references=["env:TENANT_{tenant}_*"])
        with pytest.raises(EgressDenied) as denied:
            closed.open(KV, UntrustedConfig(data)).open()
        assert f"127.0.0.1:{port_of(server.url)} (127.0.0.1 is loopback)" in str(denied.value)
        assert [operation for operation, _ in closed.denials()] == ["connect"]
        assert closed.denials()[0][1].startswith("EGRESS_DENIED")
        assert connects == []
        assert vault_requests(server) == 0

        opened = Governed(
            references=["env:TENANT_{tenant}_*"], rules=[loopback(port_of(server.url))]
        )
        with opened.open(KV, UntrustedConfig(data)) as session:
            round_trip(session, "tenant key memory")
        assert opened.env.asked == ["TENANT_acme_API_KEY"]
        assert vault_requests(server) > 0


# -- egress: refused destinations -----------------------------------------------------------


@pytest.fixture
def vault_server() -> Iterator[KnowledgeVaultServer]:
    with KnowledgeVaultServer() as server:
        yield server


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}",
        "http://localhost:{port}",
        "http://[::1]:{port}",
        "http://127.0.0.1",
        "http://169.254.169.254",
        "http://10.0.0.8",
        "http://192.168.1.20",
        "https://172.16.0.1",
    ],
)
def test_the_knowledge_vault_refuses_internal_destinations(
    vault_server: KnowledgeVaultServer, connects: list[str], url: str
) -> None:
    governed = Governed()
    config = UntrustedConfig({"url": url.format(port=port_of(vault_server.url))})
    with pytest.raises(EgressDenied):
        governed.open(KV, config).open()
    assert connects == []
    assert vault_requests(vault_server) == 0
    assert [operation for operation, _ in governed.denials()] == ["connect"]


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:{port}/0",
        "redis://localhost:{port}/0",
        "redis://[::1]:{port}/0",
        "redis://:secret-password@127.0.0.1/0",
        "redis://169.254.169.254/0",
        "redis://10.1.2.3/0",
        "rediss://192.168.0.5/0",
        "redis://user:secret-password@/0",  # no host: redis-py's localhost
        "unix:///var/run/redis/redis.sock",
    ],
)
def test_redis_refuses_internal_destinations(redis_url: str, connects: list[str], url: str) -> None:
    governed = Governed()
    before = redis_connections(redis_url)
    config = UntrustedConfig({"url": url.format(port=port_of(redis_url))})
    with pytest.raises(EgressDenied) as denied:
        governed.open(REDIS, config).open()
    assert connects == []
    assert redis_connections(redis_url) == before + 1  # the probe's own connection only
    assert [operation for operation, _ in governed.denials()] == ["connect"]
    assert "secret-password" not in str(denied.value) + governed.texts()


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://integrations@127.0.0.1:{port}/integrations",
        "postgresql://integrations@localhost:{port}/integrations",
        "postgresql://integrations@[::1]:{port}/integrations",
        "host=169.254.169.254 user=integrations password=secret-password",
        "postgresql://integrations@10.0.0.5/integrations",
        "postgresql://integrations@192.168.1.1/integrations",
        "postgresql://integrations@db.acme.test,127.0.0.1:{port}/integrations",
        "dbname=integrations user=integrations",  # no host: libpq's default
        "postgresql:///integrations",
        "host=/var/run/postgresql dbname=integrations",
        "host=@abstract-socket dbname=integrations",
        "host=db.acme.test hostaddr=127.0.0.1 port={port}",  # libpq connects to hostaddr
    ],
)
def test_postgres_refuses_internal_destinations(
    postgres_dsn: str, connects: list[str], libpq_calls: list[dict[str, Any]], dsn: str
) -> None:
    governed = Governed(resolver=ScriptedResolver({"db.acme.test": [[PUBLIC]]}))
    config = UntrustedConfig({"dsn": dsn.format(port=port_of(postgres_dsn))})
    with pytest.raises(EgressDenied) as denied:
        governed.open(POSTGRES, config).open()
    assert connects == []
    assert libpq_calls == []
    assert [operation for operation, _ in governed.denials()] == ["connect"]
    assert "secret-password" not in str(denied.value) + governed.texts()


def test_run_lifecycle_reports_an_egress_denial(redis_url: str, connects: list[str]) -> None:
    governed = Governed()
    report = run_lifecycle(
        REDIS,
        config=UntrustedConfig({"url": redis_url}),
        context=ACME,
        governance=governed.governance,
    )
    assert [(s.step, s.outcome, s.error_type) for s in report.steps] == [
        ("connect", "denied", "PolicyError")
    ]
    assert report.error is not None
    assert report.error.startswith("EgressDenied: EGRESS_DENIED: memory.redis may not reach")
    assert f"127.0.0.1:{port_of(redis_url)} (127.0.0.1 is loopback)" in report.error
    assert connects == []


def test_a_sqlite_file_is_never_opened_for_an_untrusted_config(tmp_path: Path) -> None:
    governed = Governed()
    target = tmp_path / "tenant.sqlite3"
    for data in ({"path": str(target)}, {}):
        with pytest.raises(EgressDenied):
            governed.open("memory.sqlite", UntrustedConfig(data)).open()
    assert not target.exists()
    assert [operation for operation, _ in governed.denials()] == ["connect", "connect"]
    assert "(the default file)" in governed.denials()[1][1]
    with governed.open("memory.sqlite", UntrustedConfig({"path": ":memory:"})) as session:
        assert isinstance(session.connector, SqliteMemoryConnector)
        round_trip(session, "private memory")


# -- egress: a name that answers differently the second time --------------------------------


def rebinding() -> ScriptedResolver:
    """A name whose first answer is public and every later one the loopback address."""
    return ScriptedResolver({"rebind.acme.test": [[PUBLIC], ["127.0.0.1"]]})


def test_the_knowledge_vault_connects_only_to_the_first_checked_address(
    vault_server: KnowledgeVaultServer, sockets: SocketSpy
) -> None:
    port = port_of(vault_server.url)
    resolver = rebinding()
    governed = Governed(rules=[EgressRule(ports=(port,))], resolver=resolver)
    config = UntrustedConfig({"url": f"http://rebind.acme.test:{port}", "timeout_seconds": 2})
    with pytest.raises(ConnectionFailed):
        governed.open(KV, config).open()
    assert resolver.lookups == ["rebind.acme.test"]
    assert sockets.targets
    assert set(sockets.targets) == {(PUBLIC, port)}
    assert vault_requests(vault_server) == 0


def test_redis_connects_only_to_the_first_checked_address(
    redis_url: str, sockets: SocketSpy
) -> None:
    port = port_of(redis_url)
    resolver = rebinding()
    governed = Governed(rules=[EgressRule(ports=(port,))], resolver=resolver)
    before = redis_connections(redis_url)
    sockets.targets.clear()
    config = UntrustedConfig(
        {"url": f"redis://rebind.acme.test:{port}/0", "connect_timeout_seconds": 2}
    )
    with pytest.raises(ConnectionFailed):
        governed.open(REDIS, config).open()
    assert resolver.lookups == ["rebind.acme.test"]
    assert sockets.targets
    assert set(sockets.targets) == {(PUBLIC, port)}
    sockets.targets.clear()
    assert redis_connections(redis_url) == before + 1  # the probe's own connection only


def test_postgres_hands_libpq_only_the_first_checked_address(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = port_of(postgres_dsn)
    handed: list[dict[str, Any]] = []

    def intercepted(conninfo: str = "", **kwargs: Any) -> Any:
        handed.append(conninfo_to_dict(conninfo, **kwargs))
        raise psycopg.OperationalError("connection refused by the test")

    monkeypatch.setattr(psycopg, "connect", intercepted)
    resolver = rebinding()
    governed = Governed(rules=[EgressRule(ports=(port,))], resolver=resolver)
    dsn = f"postgresql://integrations@rebind.acme.test:{port}/integrations"
    with pytest.raises(ConnectionFailed):
        governed.open(POSTGRES, UntrustedConfig({"dsn": dsn})).open()
    assert resolver.lookups == ["rebind.acme.test"]
    assert [(p["host"], p["hostaddr"], p["port"]) for p in handed] == [
        ("rebind.acme.test", PUBLIC, str(port))
    ]


# -- egress: allowed destinations really connect, to the pinned addresses -------------------


def names_to_loopback(*names: str) -> ScriptedResolver:
    """Names the system cannot resolve (``.test``), answered with 127.0.0.1 here only."""
    return ScriptedResolver({name: [["127.0.0.1"]] for name in names})


def names_to_two_addresses(*names: str) -> ScriptedResolver:
    """Names answered with 127.0.0.2, where nothing listens, then 127.0.0.1: a store must
    try the checked addresses in order, as a driver tries the addresses of a name."""
    return ScriptedResolver({name: [["127.0.0.2", "127.0.0.1"]] for name in names})


def test_the_knowledge_vault_reaches_an_allowed_host(vault_server: KnowledgeVaultServer) -> None:
    port = port_of(vault_server.url)
    governed = Governed(rules=[loopback(port)], resolver=names_to_two_addresses("kv.acme.test"))
    config = UntrustedConfig({"url": f"http://kv.acme.test:{port}"})
    with governed.open(KV, config) as session:
        round_trip(session, "vault memory from a tenant")
    assert vault_requests(vault_server) >= 3  # health, ingest, query
    assert governed.denials() == []


def test_redis_reaches_an_allowed_host(redis_url: str) -> None:
    port = port_of(redis_url)
    resolver = names_to_two_addresses("redis.acme.test")
    governed = Governed(rules=[loopback(port)], resolver=resolver)
    config = UntrustedConfig(
        {"url": f"redis://redis.acme.test:{port}/0", "key_prefix": f"t:{uuid.uuid4().hex[:8]}"}
    )
    with governed.open(REDIS, config) as session:
        record = Record(id="m1", data={"text": "redis memory from a tenant"})
        assert session.push(PushPayload(records=(record,))).accepted == ("m1",)
        assert [r.id for r in session.fetch(FetchQuery(limit=10)).records] == ["m1"]
    assert resolver.lookups == ["redis.acme.test"]
    assert governed.denials() == []


def test_postgres_reaches_an_allowed_host(
    postgres_dsn: str, libpq_calls: list[dict[str, Any]]
) -> None:
    port = port_of(postgres_dsn)
    resolver = names_to_two_addresses("db.acme.test")
    governed = Governed(rules=[loopback(port)], resolver=resolver)
    dsn = f"postgresql://integrations@db.acme.test:{port}/integrations"
    config = UntrustedConfig({"dsn": dsn, "schema_name": f"u_{uuid.uuid4().hex[:8]}"})
    with governed.open(POSTGRES, config) as session:
        round_trip(session, "postgres memory from a tenant")
    assert resolver.lookups == ["db.acme.test"]
    (handed,) = libpq_calls
    assert (handed["host"], handed["hostaddr"], handed["port"]) == (
        "db.acme.test,db.acme.test",
        "127.0.0.2,127.0.0.1",
        f"{port},{port}",
    )
    assert governed.denials() == []


# -- Redis: what an untrusted URL may say, and TLS over a pinned connection ---------------


@pytest.mark.parametrize(
    "query",
    [
        "ssl_ca_certs=/etc/ssl/private/platform-ca.pem",
        "ssl_certfile=/etc/platform/client.crt&ssl_keyfile=/etc/platform/client.key",
        "ssl_validate_ocsp=true",
        "port=6380",
        "host=10.0.0.1",
        "max_connections=100000",
    ],
)
def test_redis_refuses_query_options_that_reach_beyond_the_tenant(
    redis_url: str, connects: list[str], query: str
) -> None:
    governed = Governed(rules=[loopback(port_of(redis_url))])
    url = f"redis://:secret-password@127.0.0.1:{port_of(redis_url)}/0?{query}"
    with pytest.raises(ConfigError) as refused:
        governed.open(REDIS, UntrustedConfig({"url": url})).open()
    names = sorted(part.split("=", 1)[0] for part in query.split("&"))
    assert f"may not set {', '.join(names)}" in str(refused.value)
    assert "secret-password" not in str(refused.value)
    assert "/etc/" not in str(refused.value)
    assert connects == ["RedisMemoryConnector"]  # refused inside connect, before any socket


def test_redis_allows_the_tenants_own_options(redis_url: str) -> None:
    governed = Governed(rules=[loopback(port_of(redis_url))])
    url = f"redis://127.0.0.1:{port_of(redis_url)}/0?db=0&client_name=acme-store"
    config = UntrustedConfig({"url": url, "key_prefix": f"t:{uuid.uuid4().hex[:8]}"})
    with governed.open(REDIS, config) as session:
        record = Record(id="m1", data={"text": "named connection"})
        assert session.push(PushPayload(records=(record,))).accepted == ("m1",)
        probe = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            names = [client["name"] for client in probe.client_list()]
        finally:
            probe.close()
    assert "acme-store" in names


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[tuple[int, Path]]:
    """A redis-server on 127.0.0.1 speaking TLS with a certificate for ``redis.acme.test``.

    Yields its TLS port and the CA file that signed the certificate. The plain port is used
    only to wait until the server is ready.
    """
    openssl, server = shutil.which("openssl"), shutil.which("redis-server")
    if openssl is None or server is None:
        raise RuntimeError("the TLS test needs openssl and redis-server on PATH")
    directory = Path(tempfile.mkdtemp(prefix="integrations-redis-tls-"))
    try:
        _certificates(openssl, directory, "redis.acme.test")
        plain, tls = _free_port(), _free_port()
        command = [
            server, "--port", str(plain), "--tls-port", str(tls), "--bind", "127.0.0.1",
            "--tls-cert-file", "server.crt", "--tls-key-file", "server.key",
            "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", "--dir", str(directory),
        ]  # fmt: skip
        with open(directory / "redis.log", "wb") as log:
            process = subprocess.Popen(
                command, cwd=directory, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        try:
            _wait_for_ping(plain, process)
            yield tls, directory / "ca.crt"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _certificates(openssl: str, directory: Path, name: str) -> None:
    """A throwaway CA, and a server certificate it signed for `name`."""
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    (directory / "server.ext").write_text(
        f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    steps = [
        ["req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
         "-subj", "/CN=integrations test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign"],
        ["req", "-new", *curve, "-keyout", "server.key", "-out", "server.csr",
         "-subj", f"/CN={name}"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext"],
    ]  # fmt: skip
    for step in steps:
        subprocess.run([openssl, *step], cwd=directory, check=True, capture_output=True, timeout=60)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_ping(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("redis-server with TLS exited at start")
        try:
            if redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1).ping():
                return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server with TLS did not answer PING in 10 s")


def test_rediss_verifies_the_configured_name_over_the_pinned_address(
    tls_redis: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, ca = tls_redis
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the test CA as the system's trust store
    resolver = names_to_loopback("redis.acme.test", "other.acme.test")
    governed = Governed(rules=[loopback(port)], resolver=resolver)
    prefix = f"t:{uuid.uuid4().hex[:8]}"
    good = UntrustedConfig({"url": f"rediss://redis.acme.test:{port}/0", "key_prefix": prefix})
    with governed.open(REDIS, good) as session:
        record = Record(id="m1", data={"text": "over TLS"})
        assert session.push(PushPayload(records=(record,))).accepted == ("m1",)
        assert [r.id for r in session.fetch(FetchQuery(limit=10)).records] == ["m1"]

    # The same server and address under a name its certificate does not carry: refused.
    wrong = UntrustedConfig({"url": f"rediss://other.acme.test:{port}/0", "key_prefix": prefix})
    with pytest.raises(ConnectionFailed, match="certificate"):
        governed.open(REDIS, wrong).open()


# -- PostgreSQL: ambient credentials and files ----------------------------------------------


@pytest.mark.parametrize(
    ("option", "keyword"),
    [
        ("passfile=/root/.pgpass", "passfile"),
        ("service=platform", "service"),
        ("sslcert=/etc/platform/client.crt", "sslcert"),
        ("sslkey=/etc/platform/client.key", "sslkey"),
        ("sslrootcert=/etc/platform/root.crt", "sslrootcert"),
        ("sslcrl=/etc/platform/root.crl", "sslcrl"),
        ("sslcrldir=/etc/platform/crl", "sslcrldir"),
        ("sslpassword=unlock", "sslpassword"),
        ("sslkeylogfile=/tmp/keys.log", "sslkeylogfile"),
        ("hostaddr=127.0.0.1", "hostaddr"),
        ("gssencmode=require", "gssencmode"),
    ],
)
def test_postgres_refuses_keywords_that_use_the_platforms_files(
    postgres_dsn: str,
    connects: list[str],
    libpq_calls: list[dict[str, Any]],
    option: str,
    keyword: str,
) -> None:
    port = port_of(postgres_dsn)
    governed = Governed(rules=[loopback(port)])
    dsn = f"postgresql://integrations:secret-password@127.0.0.1:{port}/integrations?{option}"
    with pytest.raises(ConfigError) as refused:
        governed.open(POSTGRES, UntrustedConfig({"dsn": dsn})).open()
    assert f"may not use {keyword}:" in str(refused.value)
    assert [field for field, _ in refused.value.problems] == ["dsn"]
    assert "secret-password" not in str(refused.value)
    assert "/etc/" not in str(refused.value)
    assert connects == ["PostgresMemoryConnector"]
    assert libpq_calls == []  # refused before libpq saw anything


def test_postgres_refuses_gssapi_in_require_auth(postgres_dsn: str) -> None:
    port = port_of(postgres_dsn)
    governed = Governed(rules=[loopback(port)])
    dsn = f"postgresql://integrations@127.0.0.1:{port}/integrations?require_auth=gss"
    with pytest.raises(ConfigError, match="gss or sspi"):
        governed.open(POSTGRES, UntrustedConfig({"dsn": dsn})).open()


def test_postgres_refuses_untrusted_dsns_while_the_platform_sets_pgservice(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch, libpq_calls: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("PGSERVICE", "platform")
    governed = Governed(rules=[loopback(port_of(postgres_dsn))])
    with pytest.raises(ConfigError, match="PGSERVICE"):
        governed.open(POSTGRES, UntrustedConfig({"dsn": postgres_dsn})).open()
    assert libpq_calls == []


def test_a_trusted_dsn_is_handed_to_libpq_as_written(
    postgres_dsn: str, libpq_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    dsn = f"{postgres_dsn}?passfile={tmp_path / 'pgpass'}&application_name=platform"
    with Governed().open(POSTGRES, {"dsn": dsn, "schema_name": "trusted_dsn"}) as session:
        round_trip(session, "trusted postgres memory")
    assert libpq_calls
    assert libpq_calls[0] == {**conninfo_to_dict(dsn), **_options(libpq_calls[0])}
    assert "hostaddr" not in libpq_calls[0]
    assert "require_auth" not in libpq_calls[0]


def _options(params: Mapping[str, Any]) -> dict[str, Any]:
    """The connection options the store adds to every DSN (autocommit, the timeout)."""
    return {key: params[key] for key in ("autocommit", "connect_timeout") if key in params}


class PasswordServer:
    """The first steps of a PostgreSQL server on 127.0.0.1 that wants a cleartext password.

    It refuses TLS, asks each client for its password, records what the client sends (None
    when it sends none) and ends with an authentication failure. Connections are served one
    at a time, each bounded by a timeout.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = int(self._listener.getsockname()[1])
        self.passwords: list[str | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="password-server", daemon=True)

    def __enter__(self) -> PasswordServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection, contextlib.suppress(OSError):
                connection.settimeout(5)
                self._greet(connection)

    def _greet(self, connection: socket.socket) -> None:
        for _ in range(3):  # SSLRequest, GSSENCRequest, then the startup message
            length, code = struct.unpack("!ii", _read(connection, 8))
            if code in (80877103, 80877104):
                connection.sendall(b"N")
                continue
            _read(connection, length - 8)
            break
        else:
            return
        connection.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        kind = connection.recv(1)
        if kind == b"p":
            (length,) = struct.unpack("!i", _read(connection, 4))
            self.passwords.append(_read(connection, length - 4).rstrip(b"\0").decode())
        else:
            self.passwords.append(None)
            return
        fields = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0"
        connection.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)


def _read(connection: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = connection.recv(count - len(data))
        if not chunk:
            raise ConnectionResetError("the client closed the connection")
        data += chunk
    return data


def test_the_platforms_pgpassword_and_pgpass_never_reach_a_tenants_server(
    canary: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:*:{canary}-pgpass\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    monkeypatch.setenv("PGPASSWORD", canary)
    with PasswordServer() as server:
        governed = Governed(
            rules=[loopback(server.port)], resolver=names_to_loopback("pg.acme.test")
        )
        tenant_dsn = f"postgresql://tenant@pg.acme.test:{server.port}/tenant"
        with pytest.raises(ConnectorError) as failed:
            governed.open(POSTGRES, UntrustedConfig({"dsn": tenant_dsn})).open()
        assert canary not in str(failed.value)

        # With its own password the tenant's server gets that one.
        own = f"postgresql://tenant:tenant-password@pg.acme.test:{server.port}/tenant"
        with pytest.raises(AuthError):
            governed.open(POSTGRES, UntrustedConfig({"dsn": own})).open()

        # Written by the platform, the DSN uses the platform's PGPASSWORD, as libpq does.
        platform_dsn = f"postgresql://tenant@127.0.0.1:{server.port}/tenant"
        with pytest.raises(AuthError):
            governed.open(POSTGRES, {"dsn": platform_dsn}).open()
    assert server.passwords == [None, "tenant-password", canary]


def test_postgres_allows_the_systems_trusted_roots() -> None:
    with PasswordServer() as server:
        governed = Governed(
            rules=[loopback(server.port)], resolver=names_to_loopback("pg.acme.test")
        )
        dsn = (
            f"postgresql://tenant@pg.acme.test:{server.port}/tenant"
            "?sslmode=verify-full&sslrootcert=system"
        )
        with pytest.raises(ConnectionFailed, match="SSL"):  # the server refuses TLS
            governed.open(POSTGRES, UntrustedConfig({"dsn": dsn})).open()
    assert server.passwords == []
