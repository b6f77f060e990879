"""The provider as a plug-in: found by base's resolver, used by sessions, never leaking.

The provider is loaded the way a deployment gets it: the ``vault`` entry point of the
``integrations.secret_providers`` group, configured from ``VAULT_*`` variables. The session
tests open governed sessions on a small connector whose ``api_key`` is a `Secret`: it sends
the key to a real HTTP server that demands it, so a session that opens has proven the key
came out of Vault.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import traceback
import urllib.request
from collections.abc import Iterator
from importlib.metadata import entry_points

import pytest

from integrations.adapters.vault_connectors.hashicorp import VaultSecretProvider
from integrations.adapters.vault_connectors.testing import VaultServer, vault_server
from integrations.base import (
    AuthContext,
    AuthError,
    AuthToken,
    BaseConnector,
    Capability,
    Connection,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    Governance,
    MemoryAuditSink,
    Record,
    RevokeResult,
    Secret,
    SecretError,
    SecretReferenceDenied,
    SecretReferencePolicy,
    SecretResolver,
    Session,
    TransientError,
    UntrustedConfig,
    UntrustedPolicy,
)
from integrations.base.testing import HTTPReply, LoopbackHTTPServer

pytestmark = pytest.mark.timeout(60)

API_KEY = "sk-canary-7d41e0b9c2"
TOKEN = "hvs.canary-token-5be8"
ROLE_ID = "canary-role-id"
SECRET_ID = "canary-secret-id-90af"
CANARIES = (API_KEY, TOKEN, SECRET_ID)
CONTEXT = AuthContext(tenant="acme", actor="alice")


class KeyedConfig(ConnectorConfig):
    """An HTTP API and the key it demands."""

    url: str
    api_key: Secret


class KeyedConnector(BaseConnector[KeyedConfig]):
    """Calls ``GET <url>/whoami`` with ``Authorization: Bearer <api_key>`` when it connects."""

    capabilities = frozenset({Capability.FETCH})
    config_model = KeyedConfig

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("session-token"))

    def connect(self, config: KeyedConfig) -> Connection:
        self.config = config
        request = urllib.request.Request(
            f"{config.url}/whoami",
            headers={"Authorization": f"Bearer {config.api_key.reveal()}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            self.whoami = answer.read().decode()
        return Connection(connection_id="keyed")

    def fetch(self, query: FetchQuery) -> FetchResult:
        return FetchResult(records=(Record(id="me", data={"whoami": self.whoami}),))

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)


@pytest.fixture
def api() -> Iterator[LoopbackHTTPServer]:
    """The HTTP API the connector calls: it answers only the key stored in Vault."""
    server = LoopbackHTTPServer(bearer_token=API_KEY, name="keyed-api")
    server.route("GET", "/whoami", lambda _: HTTPReply(body="alice"))
    with server:
        yield server


@pytest.fixture
def vault(monkeypatch: pytest.MonkeyPatch) -> Iterator[VaultServer]:
    """A Vault holding the API key, and the environment pointing at it (AppRole)."""
    with vault_server() as server:
        server.put("secret", "ai/openai", {"api_key": API_KEY})
        server.put("secret", "tenants/acme/api", {"api_key": API_KEY})
        server.put("secret", "tenants/globex/api", {"api_key": "globex-key"})
        server.add_approle(ROLE_ID, SECRET_ID, paths=("secret/data/*",))
        for name in ("VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_CAPATH"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("VAULT_ADDR", server.url)
        monkeypatch.setenv("VAULT_ROLE_ID", ROLE_ID)
        monkeypatch.setenv("VAULT_SECRET_ID", SECRET_ID)
        yield server


def session(config: dict[str, str] | UntrustedConfig, governance: Governance) -> Session:
    return Session(KeyedConnector(), config=config, context=CONTEXT, governance=governance)


# -- the entry point ---------------------------------------------------------------------------


def test_the_distribution_declares_the_vault_scheme() -> None:
    (entry,) = entry_points(group="integrations.secret_providers", name="vault")
    assert entry.value == "integrations.adapters.vault_connectors.hashicorp:VaultSecretProvider"
    assert entry.load() is VaultSecretProvider


def test_base_knows_the_scheme_without_settings_or_a_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    resolver = SecretResolver()
    assert resolver.knows("vault")  # loads the provider: no settings are read yet
    assert not SecretResolver(entry_points=False).knows("vault")


WITHOUT_HVAC = """
import sys

sys.modules["hvac"] = None  # an import of hvac fails, as without the hashicorp extra
from integrations.base import SecretError, SecretResolver

resolver = SecretResolver()
print(resolver.knows("vault"))
try:
    resolver.resolve("vault:secret/data/app#k")
except SecretError as error:
    print(error)
"""


def test_without_hvac_the_scheme_is_known_and_resolving_says_what_to_install() -> None:
    environ = {**os.environ, "VAULT_ADDR": "http://127.0.0.1:9", "VAULT_TOKEN": "hvs.x"}
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_HVAC],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "True",
        "the vault: secret provider needs hvac: "
        "pip install 'integrations-adapters-vault[hashicorp]'",
    ]


def test_base_resolves_vault_references_through_the_entry_point(vault: VaultServer) -> None:
    resolver = SecretResolver()
    assert resolver.resolve("vault:secret/data/ai/openai#api_key") == API_KEY
    assert [r.path for r in vault.requests] == [
        "/v1/auth/approle/login",
        "/v1/secret/data/ai/openai",
    ]
    with pytest.raises(SecretError, match=r"^secret vault:secret/data/ai/none#k not found"):
        resolver.resolve("vault:secret/data/ai/none#k")


# -- sessions ----------------------------------------------------------------------------------


def test_a_session_resolves_a_secret_field_from_vault_end_to_end(
    vault: VaultServer, api: LoopbackHTTPServer
) -> None:
    config = {"url": api.url, "api_key": "vault:secret/data/ai/openai#api_key"}
    with session(config, Governance()) as opened:
        (record,) = opened.fetch(FetchQuery()).records
        assert record.data == {"whoami": "alice"}
        assert opened.connector.config.api_key.reveal() == API_KEY
        assert API_KEY not in repr(opened.connector.config)
    assert api.count("/whoami") == 1
    assert vault.count("/v1/secret/data/ai/openai") == 1


def test_each_session_resolves_again_and_the_cache_spares_vault(
    vault: VaultServer, api: LoopbackHTTPServer
) -> None:
    governance = Governance()  # one resolver: one provider, one cache
    config = {"url": api.url, "api_key": "vault:secret/data/ai/openai#api_key"}
    for _ in range(3):
        with session(config, governance) as opened:
            opened.fetch(FetchQuery())
    assert api.count("/whoami") == 3
    assert vault.count("/v1/secret/data/ai/openai") == 1
    assert vault.count("/v1/auth/approle/login") == 1


def test_a_sealed_vault_keeps_the_session_from_opening_with_a_transient_error(
    vault: VaultServer, api: LoopbackHTTPServer
) -> None:
    vault.seal()
    config = {"url": api.url, "api_key": "vault:secret/data/ai/openai#api_key"}
    opened = session(config, Governance())
    with pytest.raises(TransientError, match="Vault is sealed"):
        opened.open()
    assert api.count() == 0


def test_an_untrusted_config_may_use_only_the_tenants_vault_paths(
    vault: VaultServer, api: LoopbackHTTPServer
) -> None:
    audit = MemoryAuditSink()
    policy = SecretReferencePolicy(["vault:secret/data/tenants/{tenant}/*"])
    governance = Governance(audit=audit, untrusted=UntrustedPolicy(secret_references=policy))
    own = {"url": api.url, "api_key": "vault:secret/data/tenants/acme/api#api_key"}
    with session(UntrustedConfig(own), governance) as opened:
        assert opened.connector.config.api_key.reveal() == API_KEY
    requests_before = vault.count()

    for reference in (
        "vault:secret/data/tenants/globex/api#api_key",  # another tenant's
        "vault:secret/data/ai/openai#api_key",  # the platform's
        "vault:secret/data/tenants/acme/../globex/api#api_key",  # a path step out
    ):
        other = {"url": api.url, "api_key": reference}
        with pytest.raises(SecretReferenceDenied) as caught:
            session(UntrustedConfig(other), governance).open()
        assert "globex" not in str(caught.value)
        assert "openai" not in str(caught.value)
    assert vault.count() == requests_before  # refused before anything was read
    assert api.count("/whoami") == 1


# -- nothing leaks -----------------------------------------------------------------------------


def test_no_secret_token_or_secret_id_appears_in_logs_errors_reprs_or_audit(
    vault: VaultServer, api: LoopbackHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", TOKEN)
    vault.add_token(TOKEN)
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    root = logging.getLogger()
    loggers = [root, logging.getLogger("integrations"), logging.getLogger("urllib3")]
    levels = [logger.level for logger in loggers]
    root.addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    audit = MemoryAuditSink()
    provider = VaultSecretProvider()  # from the environment: the token, then AppRole
    governance = Governance(audit=audit, secrets=SecretResolver({"vault": provider}))
    texts: list[str] = []

    def refused(reference: str, expected: type[Exception]) -> str:
        with pytest.raises(expected) as caught:
            session({"url": api.url, "api_key": reference}, governance).open()
        return "".join(traceback.format_exception(caught.value))

    try:
        good = {"url": api.url, "api_key": "vault:secret/data/ai/openai#api_key"}
        with session(good, governance) as opened:  # read with the token
            opened.fetch(FetchQuery())
            texts += [repr(opened.connector.config), str(opened.connector.config)]
            texts.append(opened.connector.config.model_dump_json())
        vault.revoke(TOKEN)
        tenant = {"url": api.url, "api_key": "vault:secret/data/tenants/acme/api#api_key"}
        with session(tenant, governance) as opened:  # 403: AppRole takes over
            opened.fetch(FetchQuery())
        texts.append(refused("vault:secret/data/ai/openai#missing", SecretError))
        texts.append(refused("vault:secret/data/ai/nothing#api_key", SecretError))
        vault.add_approle(ROLE_ID, "another-secret-id")  # the deployment's id is stale now
        vault.revoke(vault.issued[-1])
        stale = refused("vault:secret/data/tenants/globex/api#api_key", AuthError)
        texts.append(stale)
        vault.seal()
        sealed = refused("vault:kv/x#y", TransientError)
        texts.append(sealed)
    finally:
        root.removeHandler(handler)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        provider.close()
    texts += [repr(provider), repr(provider.settings), str(provider.settings)]
    texts.append(provider.settings.model_dump_json())
    texts += [repr(event) for event in audit.events]
    texts += [event.to_json() for event in audit.events]
    texts.append(log.getvalue())
    # The scan saw the renewal, the refused login and the sealed Vault.
    assert "logging in with AppRole again" in log.getvalue()
    assert "Vault refused the credentials" in stale
    assert "Vault is sealed" in sealed
    # Two logins answered (the first, and the refused one); the sealed Vault refused a third.
    assert vault.count("/v1/auth/approle/login") == 3
    for text in texts:
        for canary in CANARIES:
            assert canary not in text
