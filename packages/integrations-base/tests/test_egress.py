"""The egress policy for configs from tenants: decisions, rules, settings, the guard and httpx.

Decisions and rules are checked on addresses directly; the guard with a resolver the test
controls (so pinning and rebinding are observable); the httpx transports against real servers
on loopback addresses, where "refused" means the server never saw a connection.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import json
import socket
import sys
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import httpx
import pytest

from integrations.base import (
    UNRESTRICTED,
    AuthContext,
    AuthToken,
    BaseConnector,
    Capability,
    ConfigError,
    Connection,
    ConnectionFailed,
    ConnectorConfig,
    Destination,
    EgressDenied,
    EgressGuard,
    EgressPolicy,
    EgressRule,
    FetchQuery,
    FetchResult,
    Governance,
    GovernanceSettings,
    MemoryAuditSink,
    PolicyError,
    RevokeResult,
    Secret,
    Session,
    UntrustedConfig,
    UntrustedPolicy,
    UntrustedSettings,
)
from integrations.base._egress import refusal
from integrations.base.http import async_egress_transport, egress_transport

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from loopback import LoopbackServer, Reply

pytestmark = pytest.mark.timeout(30)

TIMEOUT = httpx.Timeout(2.0)
"""Every client of these tests gives up within 2 s: a refusal must never look like a hang."""

PUBLIC_V4 = "8.8.8.8"
PUBLIC_V6 = "2606:4700:4700::1111"


def address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def decide(
    policy: EgressPolicy,
    destination: Destination,
    *addresses: str,
    connector: str = "kv",
    tenant: str | None = "acme",
) -> str | None:
    return policy.decide(
        destination, [address(a) for a in addresses], connector=connector, tenant=tenant
    )


class ScriptedResolver:
    """Answers each host from a script, one answer per lookup (the last one repeats).

    Counts lookups per host, so a test sees whether a name was asked again. A host without a
    script fails like an unknown name.
    """

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]]) -> None:
        self._answers = {
            host: [tuple(answer) for answer in script] for host, script in answers.items()
        }
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def resolve(self, host: str, port: int) -> Sequence[str]:
        with self._lock:
            self.calls[host] += 1
            script = self._answers.get(host)
            if script is None:
                raise ConnectionFailed(f"cannot resolve {host!r}: unknown name")
            return script.pop(0) if len(script) > 1 else script[0]


# -- refusal and EgressPolicy.decide ---------------------------------------------------------

NOT_PUBLIC = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("10.0.0.1", "private"),
    ("10.255.255.254", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.254", "private"),
    ("192.168.0.1", "private"),
    ("192.168.255.254", "private"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("100.64.0.1", "not public"),
    ("100.127.255.254", "not public"),
    ("0.0.0.0", None),
    ("::", None),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:10.0.0.1", "private"),
    ("64:ff9b::7f00:1", "loopback"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
    ("2002:7f00:1::", "loopback"),
    ("2002:a00:1::", "private"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),  # Teredo carrying 127.0.0.1
    ("fec0::1", "not public"),  # site-local: deprecated, yet still routed inside networks
    ("192.0.0.100", "not public"),
    ("3fff::1", "not public"),
    ("198.18.0.1", "private"),
    ("2001:db8::1", "private"),
]


@pytest.mark.parametrize(("text", "kind"), NOT_PUBLIC)
def test_addresses_that_are_not_public_are_refused(text: str, kind: str | None) -> None:
    reason = refusal(address(text))
    assert reason is not None
    if kind is not None:  # 0.0.0.0 and :: are refused; which word names them does not matter
        assert reason == kind
    default = Destination(text, 443, 443)
    verdict = decide(EgressPolicy(), default, text)
    assert verdict is not None
    assert str(address(text)) in verdict


@pytest.mark.parametrize(
    "text", [PUBLIC_V4, "1.1.1.1", PUBLIC_V6, "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_a_public_address_on_the_default_port_is_allowed(text: str) -> None:
    assert refusal(address(text)) is None
    assert decide(EgressPolicy(), Destination(text, 443, 443), text) is None
    assert decide(EgressPolicy(), Destination("api.example", 80, 80), text) is None


def test_a_public_address_on_another_port_is_refused() -> None:
    verdict = decide(EgressPolicy(), Destination("api.example", 8443, 443), PUBLIC_V4)
    assert verdict == "port 8443 is not the default port 443"


def test_one_address_that_is_not_public_refuses_the_whole_answer() -> None:
    verdict = decide(
        EgressPolicy(), Destination("api.example", 443, 443), PUBLIC_V4, "10.0.0.7", PUBLIC_V6
    )
    assert verdict == "10.0.0.7 is private"


def test_without_public_egress_only_what_a_rule_opens_is_reachable() -> None:
    closed = EgressPolicy(public=False)
    public = Destination("api.example", 443, 443)
    assert decide(closed, public, PUBLIC_V4) == "no egress rule allows it"
    other = EgressPolicy(rules=(EgressRule(hosts=("other.example",)),), public=False)
    assert decide(other, public, PUBLIC_V4) == "no egress rule allows it"
    opened = EgressPolicy(rules=(EgressRule(hosts=("api.example",)),), public=False)
    assert decide(opened, public, PUBLIC_V4) is None


def test_a_local_socket_is_refused_even_by_the_broadest_rule() -> None:
    broad = EgressRule(hosts=("*",), networks=("0.0.0.0/0", "::/0"), ports=(6379, 5432))
    socket_path = Destination("/run/x.sock", 6379, 6379)
    assert socket_path.local
    local = "a local path (a socket or a file), not a network address"
    assert decide(EgressPolicy(rules=(broad,)), socket_path) == local
    assert decide(EgressPolicy(rules=(broad,), public=False), socket_path) == local


def test_a_local_socket_is_refused_by_the_guard_without_a_lookup() -> None:
    resolver = ScriptedResolver({})
    broad = EgressRule(hosts=("*",), networks=("0.0.0.0/0", "::/0"))
    guard = EgressPolicy(rules=(broad,)).guard(connector="kv", tenant="acme", resolver=resolver)
    with pytest.raises(EgressDenied, match="a local path"):
        guard.addresses(Destination("/run/x.sock", 6379, 6379))
    assert not resolver.calls


# -- EgressRule -------------------------------------------------------------------------------


def test_a_rule_opens_only_for_its_connectors_and_tenants() -> None:
    rule = EgressRule(
        connectors=("vault.*",), tenants=("acme",), networks=("10.0.0.0/8",), ports=(8200,)
    )
    policy = EgressPolicy(rules=(rule,))
    kv = Destination("10.1.2.3", 8200, 443)
    assert decide(policy, kv, "10.1.2.3", connector="vault.kv", tenant="acme") is None
    assert decide(policy, kv, "10.1.2.3", connector="vault.kv", tenant="beta") is not None
    assert decide(policy, kv, "10.1.2.3", connector="memory.redis", tenant="acme") is not None
    assert decide(policy, kv, "10.1.2.3", connector="vault.kv", tenant=None) is not None


def test_a_host_pattern_opens_the_names_it_matches() -> None:
    rule = EgressRule(hosts=("*.kv.internal",), ports=(8200,))
    policy = EgressPolicy(rules=(rule,))
    assert decide(policy, Destination("a.kv.internal", 8200, 443), "10.0.0.5") is None
    assert decide(policy, Destination("A.KV.Internal.", 8200, 443), "10.0.0.5") is None
    assert decide(policy, Destination("kv.internal.evil", 8200, 443), "10.0.0.5") is not None
    assert decide(policy, Destination("10.0.0.5", 8200, 443), "10.0.0.5") is not None


def test_a_tenant_host_pattern_opens_the_tenants_own_name_only() -> None:
    rule = EgressRule(hosts=("{tenant}.kv.internal",), ports=(8200,))
    policy = EgressPolicy(rules=(rule,))
    assert decide(policy, Destination("acme.kv.internal", 8200, 443), "10.0.0.5") is None
    assert decide(policy, Destination("beta.kv.internal", 8200, 443), "10.0.0.6") is not None
    assert (
        decide(policy, Destination("beta.kv.internal", 8200, 443), "10.0.0.6", tenant="beta")
        is None
    )
    assert decide(policy, Destination("acme.kv.internal", 8200, 443), "10.0.0.5", tenant=None)


@pytest.mark.parametrize(
    ("tenant", "host"),
    [
        ("a.b", "a.b.kv.internal"),
        ("x/../y", "x/../y.kv.internal"),
        ("*", "anything.kv.internal"),
        ("", ".kv.internal"),
        ("-acme", "-acme.kv.internal"),
    ],
)
def test_a_tenant_that_is_not_one_dns_label_gets_nothing_from_a_tenant_pattern(
    tenant: str, host: str
) -> None:
    rule = EgressRule(hosts=("{tenant}.kv.internal",), ports=(8200,))
    verdict = decide(
        EgressPolicy(rules=(rule,)), Destination(host, 8200, 443), "10.0.0.5", tenant=tenant
    )
    assert verdict is not None


def test_a_network_rule_needs_every_resolved_address_inside() -> None:
    rule = EgressRule(networks=("10.0.0.0/24", "fd00::/8"), ports=(8200,))
    policy = EgressPolicy(rules=(rule,))
    kv = Destination("kv.internal", 8200, 443)
    assert decide(policy, kv, "10.0.0.1", "10.0.0.2", "fd00::5") is None
    assert decide(policy, kv, "10.0.0.1", "10.0.1.1") is not None
    assert decide(policy, kv, "10.0.0.1", "127.0.0.1") is not None
    assert decide(policy, kv, "::ffff:10.0.0.1") is not None  # a v4 network holds no v6 address


def test_a_rule_with_ports_opens_those_ports_and_no_other() -> None:
    public_ports = EgressPolicy(rules=(EgressRule(ports=(8443,)),))
    assert decide(public_ports, Destination("api.example", 8443, 443), PUBLIC_V4) is None
    assert decide(public_ports, Destination("api.example", 8444, 443), PUBLIC_V4) is not None
    # Without hosts or networks a rule still wants every address public.
    assert decide(public_ports, Destination("api.example", 8443, 443), "10.0.0.1") is not None


def test_a_rule_without_ports_opens_the_default_port_only() -> None:
    policy = EgressPolicy(rules=(EgressRule(networks=("10.0.0.0/8",)),))
    assert decide(policy, Destination("kv.internal", 443, 443), "10.0.0.1") is None
    assert decide(policy, Destination("kv.internal", 8443, 443), "10.0.0.1") is not None


@pytest.mark.parametrize(
    "fields",
    [
        {"networks": ("10.0.0.0/33",)},
        {"networks": ("not-a-network",)},
        {"networks": ("fd00::/129",)},
        {"ports": (0,)},
        {"ports": (65536,)},
        {"ports": (-1,)},
    ],
)
def test_an_invalid_network_or_port_raises_value_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="egress rule"):
        EgressRule(**fields)


# -- settings ---------------------------------------------------------------------------------

UNTRUSTED: dict[str, Any] = {
    "secret_references": ["env:TENANT_{tenant}_*", "vault:tenants/{tenant}/*"],
    "egress_public": False,
    "egress_allow": [
        {
            "connectors": ["vault.*"],
            "tenants": ["acme", "beta"],
            "hosts": ["{tenant}.kv.internal"],
            "networks": ["10.0.0.0/8"],
            "ports": [8200],
        },
        {"ports": [8443]},
    ],
}

UNTRUSTED_TOML = """
[governance.untrusted]
secret_references = ["env:TENANT_{tenant}_*", "vault:tenants/{tenant}/*"]
egress_public = false

[[governance.untrusted.egress_allow]]
connectors = ["vault.*"]
tenants = ["acme", "beta"]
hosts = ["{tenant}.kv.internal"]
networks = ["10.0.0.0/8"]
ports = [8200]

[[governance.untrusted.egress_allow]]
ports = [8443]
"""

EXPECTED_EGRESS = EgressPolicy(
    rules=(
        EgressRule(
            connectors=("vault.*",),
            tenants=("acme", "beta"),
            hosts=("{tenant}.kv.internal",),
            networks=("10.0.0.0/8",),
            ports=(8200,),
        ),
        EgressRule(ports=(8443,)),
    ),
    public=False,
)


def assert_expected(policy: UntrustedPolicy) -> None:
    assert policy.egress == EXPECTED_EGRESS
    assert policy.secret_references.patterns == tuple(UNTRUSTED["secret_references"])
    assert policy.secret_references.allows("vault", "tenants/acme/x", "acme")
    assert not policy.secret_references.allows("vault", "tenants/beta/x", "acme")


def test_settings_from_a_mapping_the_environment_and_toml_build_the_same_policy(
    tmp_path: Path,
) -> None:
    direct = UntrustedSettings.model_validate(UNTRUSTED)
    from_mapping = GovernanceSettings.from_mapping({"untrusted": UNTRUSTED})
    from_env = GovernanceSettings.from_env({"INTEGRATIONS_UNTRUSTED": json.dumps(UNTRUSTED)})
    toml = tmp_path / "governance.toml"
    toml.write_text(UNTRUSTED_TOML, encoding="utf-8")
    from_toml = GovernanceSettings.from_toml(toml)
    nested = tmp_path / "pyproject.toml"
    nested.write_text(UNTRUSTED_TOML.replace("[governance.", "[tool.integrations.governance."))
    from_pyproject = GovernanceSettings.from_toml(nested)
    assert from_mapping.untrusted == direct
    assert from_env == from_mapping == from_toml == from_pyproject
    for settings in (direct, from_mapping.untrusted, from_env.untrusted, from_toml.untrusted):
        assert_expected(settings.build())
    assert_expected(from_toml.build().untrusted)


def test_default_settings_allow_public_egress_and_no_reference() -> None:
    policy = GovernanceSettings.from_env({}).untrusted.build()
    assert policy.egress == EgressPolicy()
    assert policy.secret_references.patterns == ()
    assert not policy.secret_references.allows("env", "TENANT_acme_KEY", "acme")


@pytest.mark.parametrize(
    ("untrusted", "field"),
    [
        ({"egress_allow": [{"networks": ["10.0.0.0/33"]}]}, "untrusted.egress_allow"),
        ({"egress_allow": [{"ports": [70000]}]}, "untrusted.egress_allow"),
        ({"egress_allow": [{"ports": ["http"]}]}, "untrusted.egress_allow.0.ports.0"),
        ({"egress_allow": [{"hostz": ["*"]}]}, "untrusted.egress_allow.0.hostz"),
        ({"secret_references": ["TENANT_*"]}, "untrusted.secret_references"),
        ({"egress_public": "sometimes"}, "untrusted.egress_public"),
        ({"egress_alow": []}, "untrusted.egress_alow"),
    ],
)
def test_bad_untrusted_settings_are_a_config_error_naming_the_field(
    untrusted: dict[str, Any], field: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as caught:
        GovernanceSettings.from_mapping({"untrusted": untrusted})
    assert [name for name, _reason in caught.value.problems] == [field]
    assert field in str(caught.value)
    with pytest.raises(ConfigError) as from_env:
        GovernanceSettings.from_env({"INTEGRATIONS_UNTRUSTED": json.dumps(untrusted)})
    assert [name for name, _reason in from_env.value.problems] == [field]


def test_untrusted_settings_that_are_not_json_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="INTEGRATIONS_UNTRUSTED"):
        GovernanceSettings.from_env({"INTEGRATIONS_UNTRUSTED": "{egress_public: false"})


def test_bad_untrusted_settings_in_toml_name_the_field(tmp_path: Path) -> None:
    toml = tmp_path / "governance.toml"
    toml.write_text(
        "[governance.untrusted]\n[[governance.untrusted.egress_allow]]\n"
        'networks = ["300.0.0.0/8"]\n'
    )
    with pytest.raises(ConfigError) as caught:
        GovernanceSettings.from_toml(toml)
    assert [name for name, _reason in caught.value.problems] == ["untrusted.egress_allow"]


# -- EgressGuard ------------------------------------------------------------------------------


def guard_for(
    resolver: ScriptedResolver,
    *rules: EgressRule,
    tenant: str | None = "acme",
    denials: list[EgressDenied] | None = None,
) -> EgressGuard:
    return EgressPolicy(rules=rules).guard(
        connector="kv",
        tenant=tenant,
        resolver=resolver,
        on_denied=None if denials is None else denials.append,
    )


def test_a_name_is_resolved_once_and_pinned() -> None:
    resolver = ScriptedResolver({"api.example": [[PUBLIC_V4], ["127.0.0.1"]]})
    guard = guard_for(resolver)
    api = Destination("api.example", 443, 443)
    assert guard.restricted
    assert guard.addresses(api) == (PUBLIC_V4,)
    assert guard.addresses(api) == (PUBLIC_V4,)
    assert guard.addresses(Destination("API.Example.", 443, 443)) == (PUBLIC_V4,)
    assert guard.pinned("api.example", 443) == (PUBLIC_V4,)
    assert resolver.calls == Counter({"api.example": 1})
    # The resolver would now answer a loopback address; nobody asks it.
    assert resolver.resolve("api.example", 443) == ("127.0.0.1",)


def test_copies_of_a_guard_share_its_pins() -> None:
    resolver = ScriptedResolver({"api.example": [[PUBLIC_V4], ["127.0.0.1"]]})
    guard = guard_for(resolver)
    guard.addresses(Destination("api.example", 443, 443))
    assert copy.deepcopy(guard) is guard


def test_every_address_of_an_answer_is_checked_and_a_refused_one_is_not_pinned() -> None:
    resolver = ScriptedResolver({"api.example": [[PUBLIC_V4, "10.0.0.7", PUBLIC_V6]]})
    guard = guard_for(resolver)
    with pytest.raises(EgressDenied, match=r"10\.0\.0\.7 is private") as caught:
        guard.addresses(Destination("api.example", 443, 443))
    assert isinstance(caught.value, PolicyError)
    assert caught.value.code == "EGRESS_DENIED"
    assert guard.pinned("api.example", 443) is None


def test_a_literal_address_is_checked_without_a_lookup() -> None:
    resolver = ScriptedResolver({})
    guard = guard_for(resolver)
    assert guard.addresses(Destination(PUBLIC_V4, 443, 443)) == (PUBLIC_V4,)
    assert guard.addresses(Destination(f"[{PUBLIC_V6}]", 443, 443)) == (PUBLIC_V6,)
    with pytest.raises(EgressDenied):
        guard.addresses(Destination("fe80::1%eth0", 443, 443))
    assert not resolver.calls


@pytest.mark.parametrize(
    "answers", [{}, {"api.example": [[]]}, {"api.example": [["not-an-address"]]}]
)
def test_a_resolver_failure_is_connection_failed(answers: dict[str, list[list[str]]]) -> None:
    guard = guard_for(ScriptedResolver(answers))
    with pytest.raises(ConnectionFailed, match=r"api\.example"):
        guard.addresses(Destination("api.example", 443, 443))


def test_the_system_resolver_sees_localhost_as_loopback() -> None:
    guard = EgressPolicy().guard(connector="kv", tenant="acme")
    with pytest.raises(EgressDenied, match="loopback"):
        guard.addresses(Destination("localhost", 80, 80))


def test_the_unrestricted_guard_returns_the_host_and_never_resolves() -> None:
    assert not UNRESTRICTED.restricted
    for host in ("127.0.0.1", "metadata.internal", "/run/x.sock"):
        assert UNRESTRICTED.addresses(Destination(host, 1, 443)) == (host,)
    resolver = ScriptedResolver({})
    trusted = EgressGuard(None, "kv", "acme", resolver)
    trusted.admit([Destination("169.254.169.254", 80, 80), Destination("kv.internal", 8200, 443)])
    assert trusted.addresses(Destination("kv.internal", 8200, 443)) == ("kv.internal",)
    assert not resolver.calls


def test_on_denied_is_told_the_denial_that_is_raised() -> None:
    denials: list[EgressDenied] = []
    guard = guard_for(ScriptedResolver({}), denials=denials)
    with pytest.raises(EgressDenied) as caught:
        guard.admit([Destination(PUBLIC_V4, 443, 443), Destination("127.0.0.1", 80, 80)])
    assert denials == [caught.value]
    assert "127.0.0.1:80" in caught.value.reason
    assert "acme" in str(caught.value)


# -- in a session -----------------------------------------------------------------------------


class ReachConfig(ConnectorConfig):
    """One URL, the connector's declared destination."""

    url: str

    def destinations(self) -> tuple[Destination, ...]:
        return (Destination.from_url(self.url),)


class LateReachConnector(BaseConnector[ReachConfig]):
    """Connects as declared, then asks its guard for a destination it never declared."""

    capabilities = frozenset({Capability.FETCH})
    config_model: ClassVar[type[ConnectorConfig]] = ReachConfig

    def __init__(self) -> None:
        self.config: ReachConfig | None = None

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("t"))

    def connect(self, config: ReachConfig) -> Connection:
        self.config = config
        return Connection(connection_id="late")

    def fetch(self, query: FetchQuery) -> FetchResult:
        assert self.config is not None
        self.config.egress.addresses(Destination("169.254.169.254", 80, 80))
        return FetchResult()

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)


def test_a_destination_refused_after_connect_is_audited_as_an_egress_step() -> None:
    audit = MemoryAuditSink()
    connector = LateReachConnector()
    session = Session(
        connector,
        config=UntrustedConfig({"url": f"https://{PUBLIC_V4}/"}),
        context=AuthContext(tenant="acme", actor="a"),
        governance=Governance(audit=audit),
    )
    with session, pytest.raises(EgressDenied):
        session.fetch(FetchQuery())
    assert connector.config is not None
    assert connector.config.egress.pinned(PUBLIC_V4, 443) == (PUBLIC_V4,)
    denied = [
        (event.operation, event.outcome) for event in audit.events if event.outcome == "denied"
    ]
    assert denied == [("egress", "denied")]


def test_a_trusted_config_reaches_what_it_names() -> None:
    connector = LateReachConnector()
    session = Session(
        connector,
        config={"url": "http://127.0.0.1/"},
        context=AuthContext(tenant="acme", actor="a"),
        governance=Governance(audit=MemoryAuditSink()),
    )
    with session:
        assert session.fetch(FetchQuery()) == FetchResult()
    assert connector.config is not None
    assert connector.config.egress is UNRESTRICTED


# -- httpx transports -------------------------------------------------------------------------


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: Listener) -> None:
        self.owner = owner
        super().__init__(address, _handler_for(owner))

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self.owner.lock:
            self.owner.connections += 1
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up leaves a broken pipe behind: no traceback."""


class _RecordingServer6(_RecordingServer):
    address_family = socket.AF_INET6


class Listener:
    """An HTTP server on one loopback address that counts every connection it accepts.

    Every request is answered 200 with the listener's `name`; `hosts` records the Host
    header of each. Used where `LoopbackServer` cannot go: ``::1``, ``127.0.0.2``.
    """

    def __init__(self, host: str, port: int = 0, name: str = "listener") -> None:
        self.name = name
        self.lock = threading.Lock()
        self.connections = 0
        self.hosts: list[str] = []
        server_class = _RecordingServer6 if ":" in host else _RecordingServer
        self._server = server_class((host, port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def close(self) -> None:
        """Close the listening socket of a listener that was never started."""
        self._server.server_close()


def _handler_for(owner: Listener) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with owner.lock:
                owner.hosts.append(self.headers.get("Host", ""))
            body = owner.name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output clean."""

    return Handler


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        running.script("/x", Reply(200, "reached"))
        yield running


def port_of(server: LoopbackServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def untrusted_client(guard: EgressGuard, **options: Any) -> httpx.Client:
    return httpx.Client(transport=egress_transport(guard), timeout=TIMEOUT, **options)


def test_the_unrestricted_guard_keeps_httpx_own_transport() -> None:
    assert egress_transport(UNRESTRICTED) is None
    assert async_egress_transport(UNRESTRICTED) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_an_untrusted_client_is_refused_a_loopback_server(
    server: LoopbackServer, host: str
) -> None:
    guard = EgressPolicy().guard(connector="kv", tenant="acme")  # the system's resolver
    with untrusted_client(guard) as client, pytest.raises(EgressDenied, match="loopback"):
        client.get(f"http://{host}:{port_of(server)}/x")
    assert server.seen("/x") == []


def test_an_untrusted_client_is_refused_the_ipv6_loopback() -> None:
    guard = EgressPolicy().guard(connector="kv", tenant="acme")
    try:
        listener = Listener("::1")
    except OSError:  # no IPv6 loopback here: the refusal comes before any connection anyway
        with untrusted_client(guard) as client, pytest.raises(EgressDenied, match="loopback"):
            client.get("http://[::1]:8080/x")
        return
    with listener:
        with untrusted_client(guard) as client, pytest.raises(EgressDenied, match="loopback"):
            client.get(f"http://[::1]:{listener.port}/x")
        assert listener.connections == 0
        # Without the guard the same request is served: the refusal was the guard's.
        with httpx.Client(timeout=TIMEOUT, trust_env=False) as plain:
            assert plain.get(f"http://[::1]:{listener.port}/x").text == "listener"
    assert listener.connections == 1


def test_a_network_rule_lets_the_request_through(server: LoopbackServer) -> None:
    port = port_of(server)
    rule = EgressRule(networks=("127.0.0.0/8",), ports=(port,))
    guard = EgressPolicy(rules=(rule,)).guard(connector="kv", tenant="acme")
    with untrusted_client(guard) as client:
        assert client.get(f"http://127.0.0.1:{port}/x").text == "reached"
    assert len(server.seen("/x")) == 1


def test_a_resolved_name_is_connected_to_its_pinned_address_with_its_own_host_header(
    server: LoopbackServer,
) -> None:
    port = port_of(server)
    resolver = ScriptedResolver({"tenant-kv.test": [["127.0.0.1"]]})
    rule = EgressRule(hosts=("*.test",), ports=(port,))
    guard = guard_for(resolver, rule)
    with untrusted_client(guard) as client:
        assert client.get(f"http://tenant-kv.test:{port}/x").text == "reached"
        closing = client.get(f"http://tenant-kv.test:{port}/x", headers={"Connection": "close"})
        assert closing.text == "reached"
        assert client.get(f"http://tenant-kv.test:{port}/x").text == "reached"
    seen = server.seen("/x")
    assert [request.headers["Host"] for request in seen] == [f"tenant-kv.test:{port}"] * 3
    assert resolver.calls == Counter({"tenant-kv.test": 1})


def test_an_internationalised_name_is_checked_and_connected_once(server: LoopbackServer) -> None:
    """The pool connects by the IDNA spelling; the pin of the checked spelling must serve it."""
    port = port_of(server)
    resolver = ScriptedResolver({"bücher.test": [["127.0.0.1"]]})
    guard = guard_for(resolver, EgressRule(hosts=("bücher.test",), ports=(port,)))
    with untrusted_client(guard) as client:
        assert client.get(f"http://bücher.test:{port}/x").text == "reached"
    assert [request.headers["Host"] for request in server.seen("/x")] == [
        f"xn--bcher-kva.test:{port}"
    ]
    assert resolver.calls == Counter({"bücher.test": 1})


def listener_pair() -> tuple[Listener, Listener]:
    """Listeners on 127.0.0.1 and 127.0.0.2 with one port (a few tries: the port may be taken)."""
    for _ in range(5):
        first = Listener("127.0.0.1", name="rebound")
        try:
            return first, Listener("127.0.0.2", first.port, name="checked")
        except OSError:
            first.close()
    raise AssertionError("no port free on both 127.0.0.1 and 127.0.0.2 in 5 tries")


def test_a_rebinding_name_keeps_the_loopback_address_it_was_checked_with() -> None:
    """First answer 127.0.0.2 (opened by a rule), then 127.0.0.1: every request goes to .2."""
    rebound, checked = listener_pair()
    port = checked.port
    resolver = ScriptedResolver({"rebind.test": [["127.0.0.2"], ["127.0.0.1"]]})
    guard = guard_for(resolver, EgressRule(networks=("127.0.0.2/32",), ports=(port,)))
    guard.admit([Destination("rebind.test", port, 80)])  # what a session does before connect
    with rebound, checked:
        for _ in range(3):  # a new client each time: a new connection each time
            with untrusted_client(guard) as client:
                assert client.get(f"http://rebind.test:{port}/x").text == "checked"
        # The other address is served too: only the pin keeps requests away from it.
        with httpx.Client(timeout=TIMEOUT, trust_env=False) as plain:
            assert plain.get(f"http://127.0.0.1:{port}/x").text == "rebound"
    assert checked.connections == 3
    assert checked.hosts == [f"rebind.test:{port}"] * 3
    assert rebound.connections == 1
    assert resolver.calls == Counter({"rebind.test": 1})


def test_a_rebinding_name_is_never_connected_to_its_second_answer(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First answer public (opened by a port rule), then loopback: the loopback server gets nothing.

    Connections are dialled through a spy that refuses anything but loopback, so no packet
    leaves the machine: it shows the one address the transport tried.
    """
    port = port_of(server)
    real_connect = socket.create_connection
    dialled: list[tuple[str, int]] = []

    def spy(where: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        dialled.append((where[0], where[1]))
        if not ipaddress.ip_address(where[0]).is_loopback:
            raise ConnectionRefusedError("this test dials loopback only")
        return real_connect(where, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    resolver = ScriptedResolver({"rebind.test": [[PUBLIC_V4], ["127.0.0.1"]]})
    guard = guard_for(resolver, EgressRule(ports=(port,)))
    with untrusted_client(guard) as client:
        for _ in range(2):
            with pytest.raises(httpx.ConnectError):
                client.get(f"http://rebind.test:{port}/x")
    assert dialled == [(PUBLIC_V4, port)] * 2
    assert server.seen("/x") == []
    assert resolver.calls == Counter({"rebind.test": 1})


def test_a_redirect_to_a_refused_destination_is_refused_at_the_second_hop(
    server: LoopbackServer,
) -> None:
    port = port_of(server)
    with LoopbackServer() as target:
        target.script("/", Reply(200, "internal"))
        other = port_of(target)
        server.script("/hop", Reply(302, "", headers={"Location": f"http://127.0.0.1:{other}/"}))
        denials: list[EgressDenied] = []
        rule = EgressRule(networks=("127.0.0.0/8",), ports=(port,))
        guard = guard_for(ScriptedResolver({}), rule, denials=denials)
        with (
            untrusted_client(guard, follow_redirects=True) as client,
            pytest.raises(EgressDenied, match=rf"127\.0\.0\.1:{other} "),
        ):
            client.get(f"http://127.0.0.1:{port}/hop")
        assert len(server.seen("/hop")) == 1
        assert target.seen("/") == []
        assert len(denials) == 1


def test_the_async_transport_refuses_and_allows_the_same_way(server: LoopbackServer) -> None:
    port = port_of(server)
    refusing = EgressPolicy().guard(connector="kv", tenant="acme")
    resolver = ScriptedResolver({"tenant-kv.test": [["127.0.0.1"], ["10.9.9.9"]]})
    allowing = guard_for(resolver, EgressRule(hosts=("*.test",), ports=(port,)))
    open_rule = EgressRule(networks=("127.0.0.0/8",), ports=(port,))
    by_network = EgressPolicy(rules=(open_rule,)).guard(connector="kv", tenant="acme")

    async def scenario() -> list[str]:
        texts: list[str] = []
        async with httpx.AsyncClient(
            transport=async_egress_transport(refusing), timeout=TIMEOUT
        ) as client:
            for host in ("127.0.0.1", "localhost", "[::1]"):
                with pytest.raises(EgressDenied, match="loopback"):
                    await client.get(f"http://{host}:{port}/x")
        for guard, host in ((allowing, "tenant-kv.test"), (by_network, "127.0.0.1")):
            for _ in range(2):
                async with httpx.AsyncClient(
                    transport=async_egress_transport(guard), timeout=TIMEOUT
                ) as client:
                    texts.append((await client.get(f"http://{host}:{port}/x")).text)
        return texts

    assert asyncio.run(scenario()) == ["reached"] * 4
    hosts = [request.headers["Host"] for request in server.seen("/x")]
    assert hosts == [f"tenant-kv.test:{port}"] * 2 + [f"127.0.0.1:{port}"] * 2
    assert resolver.calls == Counter({"tenant-kv.test": 1})


def test_the_async_transport_refuses_a_redirect_and_pins_an_internationalised_name(
    server: LoopbackServer,
) -> None:
    port = port_of(server)
    server.script("/hop", Reply(302, "", headers={"Location": f"http://127.0.0.1:{port}/x"}))
    resolver = ScriptedResolver({"bücher.test": [["127.0.0.1"]]})
    guard = guard_for(resolver, EgressRule(hosts=("bücher.test",), ports=(port,)))

    async def scenario() -> str:
        async with httpx.AsyncClient(
            transport=async_egress_transport(guard), timeout=TIMEOUT, follow_redirects=True
        ) as client:
            with pytest.raises(EgressDenied, match="loopback"):
                await client.get(f"http://bücher.test:{port}/hop")
            return (await client.get(f"http://bücher.test:{port}/x")).text

    assert asyncio.run(scenario()) == "reached"
    assert len(server.seen("/hop")) == 1
    assert [request.headers["Host"] for request in server.seen("/x")] == [
        f"xn--bcher-kva.test:{port}"
    ]
    assert resolver.calls == Counter({"bücher.test": 1})
