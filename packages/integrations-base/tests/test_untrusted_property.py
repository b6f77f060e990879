"""Configs from tenants, generated: a session opens iff every reference and destination is allowed.

Each generated config draws its secret fields and its URL from labelled pools: values that
are allowed (plain values, ``literal:`` values, references the policy opens to tenant acme,
public destinations, a destination a rule opens) and values that are not (other tenants'
references, platform references, path tricks; loopback, link-local, private and embedded
addresses, names resolving to them, ports that are not the default). Secret providers record
every reference they are asked for and the resolver every name, so the property can say not
only whether the session opened but what was touched on the way.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from integrations.base import (
    AuthContext,
    AuthToken,
    BaseConnector,
    Capability,
    Connection,
    ConnectionFailed,
    ConnectorConfig,
    ConnectorMeta,
    Destination,
    EgressDenied,
    EgressPolicy,
    EgressRule,
    EnvSecretProvider,
    FileSecretProvider,
    Governance,
    MemoryAuditSink,
    PolicyError,
    RevokeResult,
    Secret,
    SecretError,
    SecretProvider,
    SecretReferenceDenied,
    SecretReferencePolicy,
    SecretResolver,
    Session,
    UntrustedConfig,
    UntrustedPolicy,
)
from integrations.base._secrets import split_reference

CONTEXT = AuthContext(tenant="acme", actor="a")
CONNECTOR = "probe"

ENVIRONMENT = {
    "TENANT_acme_API_KEY": "acme-env-api-key",
    "TENANT_acme_TOKEN": "acme-env-token",
    "TENANT_beta_API_KEY": "beta-env-api-key",
    "PLATFORM_DB_PASSWORD": "platform-env-db-password",
}
"""What the process environment holds: the tenant's variables, another's and the platform's."""

VAULT = {
    "tenants/acme/x": "acme-vault-x",
    "tenants/acme/api": "acme-vault-api",
    "tenants/beta/x": "beta-vault-x",
    "tenants/ACME/x": "other-case-vault-x",
    "tenants/acme/../platform": "platform-vault-via-dot-dot",
    "tenants/acme/./x": "acme-vault-via-dot",
    "tenants/acme/..": "tenants-folder-via-dot-dot",
    "tenants/acme/.": "acme-folder-via-dot",
    "tenants/acme/x/y": "acme-vault-nested",
    "platform/root": "platform-vault-root",
}
"""Every vault secret the tests name exists: a broken policy would resolve it, not fail."""


class RecordingProvider:
    """A secret provider that records each reference it is asked for, then asks `inner`."""

    def __init__(self, inner: SecretProvider) -> None:
        self.scheme = inner.scheme
        self.inner = inner
        self.asked: list[str] = []

    def resolve(self, reference: str) -> str:
        self.asked.append(f"{self.scheme}:{reference}")
        return self.inner.resolve(reference)


class DictVault:
    """``vault:`` served from `VAULT`."""

    scheme = "vault"

    def resolve(self, reference: str) -> str:
        try:
            return VAULT[reference]
        except KeyError:
            raise SecretError(f"secret vault:{reference} does not exist") from None


class ScriptedResolver:
    """Answers names from a script, one answer per lookup (the last one repeats); counts them."""

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]]) -> None:
        self._answers = {host: [tuple(a) for a in script] for host, script in answers.items()}
        self.calls: Counter[str] = Counter()

    def resolve(self, host: str, port: int) -> Sequence[str]:
        host = host.lower().rstrip(".")  # as DNS reads a name
        self.calls[host] += 1
        script = self._answers.get(host)
        if script is None:
            raise ConnectionFailed(f"cannot resolve {host!r}: unknown name")
        return script.pop(0) if len(script) > 1 else script[0]


DNS: dict[str, list[list[str]]] = {
    "public.example": [["93.184.215.14"]],
    "multi.example": [["8.8.8.8", "2606:4700:4700::1111"]],
    "acme.kv.internal": [["10.20.0.5"]],
    "beta.kv.internal": [["10.20.0.6"]],
    "acme.kv.internal.evil.example": [["10.20.0.5"]],  # a tenant's own name, pointing inside
    "localhost": [["127.0.0.1", "::1"]],
    "metadata.example": [["169.254.169.254"]],
    "mixed.example": [["8.8.8.8", "169.254.169.254"]],
    "nat64.example": [["64:ff9b::a9fe:a9fe"]],
    "sitelocal.example": [["fec0::1"]],
    "rebind.example": [["8.8.8.8"], ["127.0.0.1"]],
    "rebind-inward.example": [["127.0.0.1"], ["8.8.8.8"]],
}
"""A fresh copy answers each session: rebinding names change their answer after the first."""


# -- the connector ----------------------------------------------------------------------------


class ProbeConfig(ConnectorConfig):
    """A URL to reach and two secrets to reach it with."""

    url: str
    api_key: Secret | None = None
    token: Secret | None = None

    def destinations(self) -> tuple[Destination, ...]:
        return (Destination.from_url(self.url),)


@dataclass
class Received:
    """What `connect` was given: the config, and the addresses its guard hands out."""

    config: ProbeConfig
    addresses: tuple[str, ...]


class ProbeConnector(BaseConnector[ProbeConfig]):
    """Records the config `connect` receives and where it would connect."""

    capabilities = frozenset({Capability.FETCH})
    config_model: ClassVar[type[ConnectorConfig]] = ProbeConfig

    def __init__(self) -> None:
        self.received: list[Received] = []

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("session-token"))

    def connect(self, config: ProbeConfig) -> Connection:
        (destination,) = config.destinations()
        self.received.append(Received(config, config.egress.addresses(destination)))
        return Connection(connection_id="probe")

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)


# -- labelled pools ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretValue:
    """A value for a secret field, with what it must become when the session opens."""

    raw: str
    allowed: bool
    resolved: str
    reference: str | None = None
    """The reference a provider is asked for when this value resolves (None: not one)."""


@dataclass(frozen=True)
class Url:
    """A URL for the config, with the addresses a session must pin for it when it opens."""

    url: str
    allowed: bool
    pinned: tuple[str, ...] = ()


def reference(raw: str, allowed: bool) -> SecretValue:
    scheme, name = split_reference(raw) or ("", "")
    resolved = ENVIRONMENT[name] if scheme == "env" else VAULT.get(name, "")
    return SecretValue(raw, allowed, resolved, raw)


ALLOWED_REFERENCES = [
    reference("env:TENANT_acme_API_KEY", True),
    reference("env:TENANT_acme_TOKEN", True),
    reference("vault:tenants/acme/x", True),
    reference("vault:tenants/acme/api", True),
]

FORBIDDEN_REFERENCES = [
    reference("env:PLATFORM_DB_PASSWORD", False),
    reference("env:TENANT_beta_API_KEY", False),
    SecretValue("file:/etc/hostname", False, "", "file:/etc/hostname"),
    reference("vault:tenants/beta/x", False),
    reference("vault:tenants/ACME/x", False),
    reference("vault:tenants/acme/../platform", False),
    reference("vault:tenants/acme/./x", False),
    reference("vault:tenants/acme/..", False),  # `*` matches "..": only the segment rule stops it
    reference("vault:tenants/acme/.", False),
    reference("vault:tenants/acme/x/y", False),
    reference("vault:platform/root", False),
]

ODD_PLAIN_VALUES = [
    "hunter2",
    "ENV:PLATFORM_DB_PASSWORD",  # a scheme is lower case: this is a value
    " env:PLATFORM_DB_PASSWORD",  # so is anything before the scheme
    "unknown-scheme:tenants/beta/x",  # a scheme no provider serves is a value
]

_TEXT = st.text(string.ascii_letters + string.digits + ":/._-* ", max_size=24)

plain_values = st.one_of(
    st.sampled_from(ODD_PLAIN_VALUES),
    _TEXT.filter(lambda text: split_reference(text) is None),
).map(lambda text: SecretValue(text, True, text))

literal_values = st.one_of(
    st.sampled_from(["env:PLATFORM_DB_PASSWORD", "vault:tenants/beta/x", "file:/etc/hostname"]),
    _TEXT,
).map(lambda text: SecretValue(f"literal:{text}", True, text))

secret_values = st.one_of(
    st.none(),
    plain_values,
    literal_values,
    st.sampled_from(ALLOWED_REFERENCES),
    st.sampled_from(FORBIDDEN_REFERENCES),
)

ALLOWED_URLS = [
    Url("https://public.example/", True, ("93.184.215.14",)),
    Url("https://public.example:443/v1?q=1", True, ("93.184.215.14",)),
    Url("http://multi.example/", True, ("8.8.8.8", "2606:4700:4700::1111")),
    Url("https://8.8.8.8/", True, ("8.8.8.8",)),
    Url("https://[2606:4700:4700::1111]/", True, ("2606:4700:4700::1111",)),
    Url("https://acme.kv.internal:8200/", True, ("10.20.0.5",)),
    Url("https://ACME.kv.internal.:8200/", True, ("10.20.0.5",)),
    Url("https://rebind.example/", True, ("8.8.8.8",)),
]

FORBIDDEN_URLS = [
    Url(url, False)
    for url in (
        "http://127.0.0.1/",
        "http://127.0.0.53:80/",
        "http://localhost/",
        "http://[::1]/",
        "http://0.0.0.0/",
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.example/",
        "http://[fe80::1]/",
        "http://[fec0::1]/",
        "http://sitelocal.example/",
        "http://10.0.0.1/",
        "http://172.16.0.1/",
        "http://192.168.0.10/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://nat64.example/",
        "http://mixed.example/",
        "http://rebind-inward.example/",
        "https://public.example:8443/",
        "http://8.8.8.8:8080/",
        "https://acme.kv.internal/",
        "https://acme.kv.internal:8201/",
        "https://beta.kv.internal:8200/",
        "https://acme.kv.internal.evil.example:8200/",
    )
]

urls = st.one_of(st.sampled_from(ALLOWED_URLS), st.sampled_from(FORBIDDEN_URLS))


# -- the property -----------------------------------------------------------------------------


@dataclass
class World:
    """One session's surroundings: governance, the recording providers and the resolver."""

    governance: Governance
    audit: MemoryAuditSink
    providers: list[RecordingProvider]
    resolver: ScriptedResolver

    def references_asked(self) -> list[str]:
        return [item for provider in self.providers for item in provider.asked]


def world() -> World:
    providers = [
        RecordingProvider(EnvSecretProvider()),
        RecordingProvider(FileSecretProvider()),
        RecordingProvider(DictVault()),
    ]
    resolver = ScriptedResolver(DNS)
    audit = MemoryAuditSink()
    rule = EgressRule(
        connectors=(CONNECTOR,), tenants=("acme",), hosts=("{tenant}.kv.internal",), ports=(8200,)
    )
    governance = Governance(
        audit=audit,
        secrets=SecretResolver({p.scheme: p for p in providers}, entry_points=False),
        untrusted=UntrustedPolicy(
            secret_references=SecretReferencePolicy(
                ["env:TENANT_{tenant}_*", "vault:tenants/{tenant}/*"]
            ),
            egress=EgressPolicy(rules=(rule,)),
            resolver=resolver,
        ),
    )
    return World(governance, audit, providers, resolver)


@pytest.fixture(scope="module")
def environment() -> Iterator[Mapping[str, str]]:
    """The variables every example sees (module-wide: the same for each generated config)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENVIRONMENT.items():
            patch.setenv(name, value)
        yield ENVIRONMENT


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=urls, api_key=secret_values, token=secret_values)
@example(url=ALLOWED_URLS[0], api_key=ALLOWED_REFERENCES[0], token=ALLOWED_REFERENCES[2])
@example(url=ALLOWED_URLS[-1], api_key=None, token=None)
@example(url=FORBIDDEN_URLS[0], api_key=ALLOWED_REFERENCES[0], token=None)
@example(url=ALLOWED_URLS[0], api_key=ALLOWED_REFERENCES[3], token=FORBIDDEN_REFERENCES[5])
def test_a_session_opens_iff_everything_in_the_config_is_allowed(
    environment: Mapping[str, str],
    url: Url,
    api_key: SecretValue | None,
    token: SecretValue | None,
) -> None:
    secrets = {name: value for name, value in (("api_key", api_key), ("token", token)) if value}
    data: dict[str, str] = {"url": url.url, **{name: v.raw for name, v in secrets.items()}}
    references_allowed = all(value.allowed for value in secrets.values())
    allowed = references_allowed and url.allowed
    allowed_references = {v.reference for v in secrets.values() if v.allowed and v.reference}
    forbidden_references = {v.reference for v in secrets.values() if not v.allowed}
    here = world()
    connector = ProbeConnector()
    session = Session(
        connector,
        config=UntrustedConfig(data, origin="generated"),
        context=CONTEXT,
        governance=here.governance,
        meta=ConnectorMeta(CONNECTOR),
    )

    denial: PolicyError | None = None
    try:
        with session:
            pass
    except PolicyError as error:
        denial = error
    opened = denial is None
    event("opened" if opened else type(denial).__name__)

    asked = here.references_asked()
    assert not forbidden_references & set(asked), f"forbidden references resolved: {asked}"
    assert set(asked) <= allowed_references
    assert opened == allowed, f"opened={opened} for {data!r}: {denial!r}"
    if opened:
        (received,) = connector.received
        config = received.config
        for name in ("api_key", "token"):
            value = secrets.get(name)
            got = getattr(config, name)
            assert (got.reveal() if got is not None else None) == (value and value.resolved)
        assert config.url == url.url
        assert config.egress.restricted
        assert received.addresses == url.pinned
        assert sorted(asked) == sorted(v.reference for v in secrets.values() if v.reference)
        # Each name was looked up once: connect got the pinned answer, not a second one.
        assert all(count == 1 for count in here.resolver.calls.values())
        return
    assert connector.received == []
    expected = SecretReferenceDenied if not references_allowed else EgressDenied
    assert isinstance(denial, expected), f"{denial!r} for {data!r}"
    if not references_allowed:
        assert asked == []  # the gate runs before any reference resolves
        assert not here.resolver.calls  # nor is any name looked up
    denied = [event for event in here.audit.events if event.outcome == "denied"]
    assert [(event.operation, event.detail.split()[0]) for event in denied if event.detail] == [
        ("connect", expected.code)
    ]
