"""Configs from tenants: provenance, the secret reference policy, and denials in sessions.

The egress policy's own rules and the HTTP transports are tested in `test_egress.py`; the
property that no untrusted config gets past the policies in `test_untrusted_property.py`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from integrations.base import (
    AuthContext,
    AuthToken,
    BaseConnector,
    ConfigError,
    Connection,
    ConnectorConfig,
    ConnectorMeta,
    Destination,
    EgressDenied,
    EgressPolicy,
    EgressRule,
    Governance,
    GovernanceSettings,
    MemoryAuditSink,
    PolicyError,
    RevokeResult,
    Secret,
    SecretReferenceDenied,
    SecretReferencePolicy,
    SecretResolver,
    Session,
    UntrustedConfig,
    UntrustedPolicy,
)
from integrations.base.lifecycle import AsyncSession, run_lifecycle
from integrations.mocks import MockConnector

CONTEXT = AuthContext(tenant="acme", actor="alice")


class RecordingProvider:
    """A ``vault:`` provider that remembers every reference it was asked to resolve."""

    scheme = "vault"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def resolve(self, reference: str) -> str:
        self.asked.append(reference)
        return f"value-of-{reference}"


class StaticResolver:
    """Answers name lookups from a table, counting them."""

    def __init__(self, table: dict[str, Sequence[str]]) -> None:
        self.table = table
        self.lookups = 0

    def resolve(self, host: str, port: int) -> Sequence[str]:
        self.lookups += 1
        return self.table[host]


def governance(
    *patterns: str,
    rules: tuple[EgressRule, ...] = (),
    provider: RecordingProvider | None = None,
    resolver: StaticResolver | None = None,
) -> tuple[Governance, MemoryAuditSink]:
    sink = MemoryAuditSink()
    secrets = SecretResolver({"vault": provider} if provider else None, entry_points=False)
    policy = UntrustedPolicy(
        secret_references=SecretReferencePolicy(patterns),
        egress=EgressPolicy(rules=rules),
        resolver=resolver,
    )
    return Governance(audit=sink, secrets=secrets, untrusted=policy), sink


# -- the secret reference policy ------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "tenant", "allowed"),
    [
        ("vault:secret/data/tenants/acme/kv", "acme", True),
        ("vault:secret/data/tenants/acme/kv", "beta", False),
        ("vault:secret/data/tenants/acme/deeper/kv", "acme", False),  # * stops at /
        ("vault:secret/data/tenants/acme/../platform", "acme", False),
        ("vault:secret/data/tenants/acme/./kv", "acme", False),
        ("vault:secret/data/tenants/acme/%2e%2e", "acme", False),  # decoded by some providers
        ("vault:secret/data/tenants/acme/a\\b", "acme", False),
        ("vault:secret/data/tenants/acme/", "acme", True),  # an empty name: the vault says no
        ("vault:secret/data/tenants/acme/kv", None, False),  # no tenant, no {tenant}
        ("vault:secret/data/tenants/a/b/kv", "a/b", False),  # a tenant id is not a path
        ("vault:secret/data/tenants/*/kv", "*", False),  # nor a pattern
        ("env:TENANT_acme_API_KEY", "acme", True),
        ("env:PLATFORM_DB_PASSWORD", "acme", False),
        ("env:TENANT_beta_API_KEY", "acme", False),
        ("file:/etc/hostname", "acme", False),
        ("literal:anything", "acme", True),  # a value, not a reference
    ],
)
def test_reference_patterns(reference: str, tenant: str | None, allowed: bool) -> None:
    policy = SecretReferencePolicy(
        ["vault:secret/data/tenants/{tenant}/*", "env:TENANT_{tenant}_*"]
    )
    scheme, name = reference.split(":", 1)
    assert policy.allows(scheme, name, tenant) is allowed


def test_no_pattern_allows_no_reference() -> None:
    policy = SecretReferencePolicy()
    assert not policy.allows("env", "HOME", "acme")
    assert not policy.allows("file", "/run/secrets/acme", "acme")
    assert policy.allows("literal", "x", "acme")


def test_a_pattern_must_name_its_scheme() -> None:
    with pytest.raises(ValueError, match="scheme:pattern"):
        SecretReferencePolicy(["TENANT_*"])


# -- provenance ------------------------------------------------------------------------------


def test_untrusted_config_is_a_private_copy_and_not_a_mapping() -> None:
    data: dict[str, Any] = {"store": "tenant-store", "nested": {"a": 1}}
    wrapped = UntrustedConfig(data, origin="settings form")
    data["nested"]["a"] = 2
    data["store"] = "other"
    assert wrapped.data["store"] == "tenant-store"
    assert wrapped.data["nested"] == {"a": 1}
    assert not isinstance(wrapped, Mapping)
    assert repr(wrapped) == "UntrustedConfig(<2 fields>, origin='settings form')"
    with pytest.raises(TypeError):
        UntrustedConfig("env:X")  # type: ignore[arg-type]  # the runtime check under test


def test_a_trusted_config_resolves_references_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_DB_PASSWORD", "platform-secret")
    gov, _ = governance()
    connector = MockConnector()
    with Session(
        connector,
        config={"store": "t", "api_key": "env:PLATFORM_DB_PASSWORD"},
        context=CONTEXT,
        governance=gov,
    ):
        assert connector.config is not None
        assert connector.config.api_key is not None
        assert connector.config.api_key.reveal() == "platform-secret"
        assert not connector.config.egress.restricted


@pytest.mark.parametrize("reference", ["env:PLATFORM_DB_PASSWORD", "file:/etc/hostname"])
def test_an_untrusted_reference_is_denied_audited_and_never_resolved(
    reference: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLATFORM_DB_PASSWORD", "platform-secret")
    resolved: list[str] = []
    original = SecretResolver.resolve

    def spy(self: SecretResolver, value: str, field: str | None = None) -> str:
        result = original(self, value, field)
        if result != value:
            resolved.append(value)
        return result

    monkeypatch.setattr(SecretResolver, "resolve", spy)
    gov, sink = governance()
    connector = MockConnector()
    session = Session(
        connector,
        config=UntrustedConfig({"store": "u", "api_key": reference}),
        context=CONTEXT,
        governance=gov,
    )
    with pytest.raises(SecretReferenceDenied) as caught:
        session.open()
    assert caught.value.scheme == reference.split(":")[0]
    assert caught.value.field == "api_key"
    assert resolved == []
    assert connector.calls == ()  # not even auth
    denial = [e for e in sink.events if e.outcome == "denied"]
    assert [(e.operation, e.error_type) for e in denial] == [("connect", "PolicyError")]
    assert denial[0].detail is not None
    assert denial[0].detail.startswith("SECRET_REFERENCE_DENIED")
    name = reference.split(":", 1)[1]
    assert all(name not in str(e.to_dict()) for e in sink.events)
    assert name not in str(caught.value)


def test_one_refused_reference_leaves_every_reference_unresolved() -> None:
    provider = RecordingProvider()
    gov, _ = governance("vault:tenants/{tenant}/*", provider=provider)

    class TwoSecrets(ConnectorConfig):
        first: Secret
        second: Secret

    class TwoSecretConnector(NetworkConnector):
        config_model: ClassVar[type[ConnectorConfig]] = TwoSecrets

    session = Session(
        TwoSecretConnector(),
        config=UntrustedConfig({"first": "vault:tenants/acme/ok", "second": "vault:platform/db"}),
        context=CONTEXT,
        governance=gov,
    )
    with pytest.raises(SecretReferenceDenied):
        session.open()
    assert provider.asked == []  # the allowed first one was not resolved either


def test_allowed_references_resolve_for_their_tenant_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANT_acme_KEY", "acme-key")
    provider = RecordingProvider()
    gov, _ = governance("env:TENANT_{tenant}_*", "vault:tenants/{tenant}/*", provider=provider)
    connector = MockConnector()
    with Session(
        connector,
        config=UntrustedConfig({"store": "a", "api_key": "env:TENANT_acme_KEY"}),
        context=CONTEXT,
        governance=gov,
    ):
        assert connector.config is not None
        assert connector.config.api_key is not None
        assert connector.config.api_key.reveal() == "acme-key"
        assert connector.config.egress.restricted
    with Session(
        MockConnector(),
        config=UntrustedConfig({"store": "a", "api_key": "vault:tenants/acme/key"}),
        context=CONTEXT,
        governance=gov,
    ):
        pass
    assert provider.asked == ["tenants/acme/key"]
    beta = AuthContext(tenant="beta", actor="bob")
    with pytest.raises(SecretReferenceDenied):
        Session(
            MockConnector(),
            config=UntrustedConfig({"store": "a", "api_key": "env:TENANT_acme_KEY"}),
            context=beta,
            governance=gov,
        ).open()


def test_values_that_are_not_references_pass_untouched() -> None:
    gov, _ = governance()
    connector = MockConnector()
    for value, seen in [("plain-key", "plain-key"), ("literal:env:X", "env:X"), ("a:b", "a:b")]:
        with Session(
            connector,
            config=UntrustedConfig({"store": "v", "api_key": value}),
            context=CONTEXT,
            governance=gov,
        ):
            assert connector.config is not None
            assert connector.config.api_key is not None
            assert connector.config.api_key.reveal() == seen


# -- destinations ----------------------------------------------------------------------------


class NetworkConfig(ConnectorConfig):
    url: str

    def destinations(self) -> tuple[Destination, ...]:
        return (Destination.from_url(self.url),)


class NetworkConnector(BaseConnector[NetworkConfig]):
    """A connector whose config names a destination; it records the configs it gets."""

    config_model: ClassVar[type[ConnectorConfig]] = NetworkConfig
    connected: ClassVar[list[NetworkConfig]] = []

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("t"))

    def connect(self, config: NetworkConfig) -> Connection:
        NetworkConnector.connected.append(config)
        return Connection(connection_id="n")

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)


@pytest.fixture(autouse=True)
def _forget_connections() -> None:
    NetworkConnector.connected.clear()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "https://93.184.216.34:8443/",  # public, but not the default port
    ],
)
def test_destinations_outside_the_policy_never_reach_the_connector(url: str) -> None:
    resolver = StaticResolver({"localhost": ("127.0.0.1", "::1")})
    gov, sink = governance(resolver=resolver)
    with pytest.raises(EgressDenied) as caught:
        Session(
            NetworkConnector(),
            config=UntrustedConfig({"url": url}),
            context=CONTEXT,
            governance=gov,
        ).open()
    assert NetworkConnector.connected == []
    denial = [e for e in sink.events if e.outcome == "denied"]
    assert [(e.operation, e.detail is not None) for e in denial] == [("connect", True)]
    assert denial[0].detail is not None
    assert denial[0].detail.startswith("EGRESS_DENIED")
    assert "egress policy" in str(caught.value)


def test_an_allowed_destination_is_pinned_on_the_config_the_connector_gets() -> None:
    resolver = StaticResolver({"kv.acme.example": ("10.8.0.5",)})
    rule = EgressRule(tenants=("acme",), hosts=("kv.{tenant}.example",), ports=(8000,))
    gov, _ = governance(rules=(rule,), resolver=resolver)
    with Session(
        NetworkConnector(),
        config=UntrustedConfig({"url": "http://kv.acme.example:8000/"}),
        context=CONTEXT,
        governance=gov,
    ):
        (config,) = NetworkConnector.connected
        destination = Destination("kv.acme.example", 8000, 80)
        assert config.egress.addresses(destination) == ("10.8.0.5",)
        resolver.table["kv.acme.example"] = ("127.0.0.1",)  # a second answer is never asked
        assert config.egress.addresses(destination) == ("10.8.0.5",)
    assert resolver.lookups == 1
    beta = AuthContext(tenant="beta", actor="bob")
    with pytest.raises(EgressDenied):
        Session(
            NetworkConnector(),
            config=UntrustedConfig({"url": "http://kv.acme.example:8000/"}),
            context=beta,
            governance=gov,
        ).open()


def test_a_late_destination_is_checked_and_audited_as_egress() -> None:
    gov, sink = governance(resolver=StaticResolver({}))
    with Session(
        NetworkConnector(),
        config=UntrustedConfig({"url": "http://93.184.216.34/"}),
        context=CONTEXT,
        governance=gov,
    ):
        (config,) = NetworkConnector.connected
        with pytest.raises(EgressDenied):
            config.egress.addresses(Destination("127.0.0.1", 6379, 6379))
    denial = [e for e in sink.events if e.outcome == "denied"]
    assert [e.operation for e in denial] == ["egress"]


def test_run_lifecycle_reports_denials() -> None:
    gov, _ = governance()
    report = run_lifecycle(
        NetworkConnector(),
        config=UntrustedConfig({"url": "http://169.254.169.254/"}),
        context=CONTEXT,
        governance=gov,
        meta=ConnectorMeta("net"),
    )
    assert not report.ok
    assert [(s.step, s.outcome, s.error_type) for s in report.steps] == [
        ("connect", "denied", "PolicyError")
    ]
    assert report.error is not None
    assert report.error.startswith("EgressDenied: EGRESS_DENIED")
    assert "net may not reach 169.254.169.254:80" in report.error
    reference = run_lifecycle(
        MockConnector(),
        config=UntrustedConfig({"api_key": "env:HOME"}),
        context=CONTEXT,
        governance=gov,
    )
    assert [(s.step, s.outcome) for s in reference.steps] == [("connect", "denied")]
    assert reference.error is not None
    assert reference.error.startswith("SecretReferenceDenied")


def test_the_async_session_checks_untrusted_configs_the_same_way() -> None:
    gov, sink = governance()

    async def main() -> None:
        with pytest.raises(EgressDenied):
            await AsyncSession(
                NetworkConnector(),
                config=UntrustedConfig({"url": "http://10.0.0.1/"}),
                context=CONTEXT,
                governance=gov,
            ).open()
        with pytest.raises(SecretReferenceDenied):
            await AsyncSession(
                MockConnector(),
                config=UntrustedConfig({"api_key": "env:HOME"}),
                context=CONTEXT,
                governance=gov,
            ).open()

    asyncio.run(main())
    assert NetworkConnector.connected == []
    assert [e.operation for e in sink.events if e.outcome == "denied"] == ["connect", "connect"]


def test_policies_still_come_first() -> None:
    gov, sink = governance()
    with pytest.raises(PolicyError) as caught:
        Session(
            NetworkConnector(),
            config=UntrustedConfig({"url": "http://10.0.0.1/"}),
            context=AuthContext(),
            governance=gov,
        ).open()
    assert not isinstance(caught.value, EgressDenied)
    assert [e.detail for e in sink.events] == ["TENANT_REQUIRED"]


def test_an_untrusted_config_is_not_a_config_model_input() -> None:
    with pytest.raises(ConfigError):
        MockConnector.config_model.from_mapping(UntrustedConfig({}))  # type: ignore[arg-type]  # the runtime check under test


# -- settings --------------------------------------------------------------------------------


def test_settings_from_toml_and_env_build_the_same_policy(tmp_path: Path) -> None:
    toml = tmp_path / "governance.toml"
    toml.write_text(
        """
[governance.untrusted]
secret_references = ["vault:secret/data/tenants/{tenant}/*"]
egress_public = false

[[governance.untrusted.egress_allow]]
connectors = ["memory.*"]
tenants = ["acme"]
networks = ["10.8.0.0/16"]
ports = [6379]
""",
        encoding="utf-8",
    )
    from_toml = GovernanceSettings.from_toml(toml)
    from_env = GovernanceSettings.from_env(
        {
            "INTEGRATIONS_UNTRUSTED": (
                '{"secret_references": ["vault:secret/data/tenants/{tenant}/*"],'
                ' "egress_public": false, "egress_allow": [{"connectors": ["memory.*"],'
                ' "tenants": ["acme"], "networks": ["10.8.0.0/16"], "ports": [6379]}]}'
            )
        }
    )
    assert from_toml == from_env
    policy = from_toml.build().untrusted
    assert policy.secret_references.allows("vault", "secret/data/tenants/acme/redis", "acme")
    assert not policy.secret_references.allows("env", "HOME", "acme")
    redis = Destination("redis.internal", 6379, 6379)
    inside = [ipaddress.ip_address("10.8.1.1")]
    assert policy.egress.decide(redis, inside, connector="memory.redis", tenant="acme") is None
    refused = policy.egress.decide(redis, inside, connector="memory.redis", tenant="beta")
    assert refused == "no egress rule allows it"


def test_defaults_allow_no_reference_and_only_public_default_ports() -> None:
    policy = GovernanceSettings().build().untrusted
    assert policy.secret_references.patterns == ()
    assert policy.egress.public
    assert policy.egress.rules == ()


class PluginConfig(ConnectorConfig):
    """A config naming something to load: a tenant may only name what is marked for tenants."""

    plugin: str

    def admit_untrusted(self) -> None:
        if not self.plugin.startswith("safe."):
            raise PolicyError(f"plugin {self.plugin} is the platform's to choose", "plugin")


class PluginConnector(NetworkConnector):
    config_model: ClassVar[type[ConnectorConfig]] = PluginConfig


def test_a_config_model_refuses_what_a_tenant_may_not_choose_as_a_denial() -> None:
    gov, sink = governance()
    connector = PluginConnector()
    with pytest.raises(PolicyError, match="the platform's to choose"):
        Session(
            connector,
            config=UntrustedConfig({"plugin": "os.system"}),
            context=CONTEXT,
            governance=gov,
        ).open()
    assert NetworkConnector.connected == []
    denial = [(e.operation, e.outcome, e.detail) for e in sink.events if e.outcome]
    assert denial == [("connect", "denied", "UNTRUSTED_CONFIG_REFUSED plugin")]
    with Session(
        connector, config={"plugin": "os.system"}, context=CONTEXT, governance=gov
    ):  # the platform may choose it
        pass
    with Session(
        connector, config=UntrustedConfig({"plugin": "safe.x"}), context=CONTEXT, governance=gov
    ):
        pass
    assert len(NetworkConnector.connected) == 2
