"""Authenticating to Vault: tokens, AppRole logins and renewals, namespaces, TLS, settings.

Against a real `VaultServer` on 127.0.0.1 (HTTPS with a test CA for the TLS tests); the
clock is moved by hand, so token lifetimes are exact and no test sleeps.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from urllib3.exceptions import InsecureRequestWarning

from integrations.adapters.vault_connectors.hashicorp import (
    ENVIRONMENT,
    VaultSecretProvider,
    VaultSettings,
)
from integrations.adapters.vault_connectors.testing import VaultServer, vault_server
from integrations.base import AuthError, ConfigError, ConnectionFailed, Secret, SecretError

pytestmark = pytest.mark.timeout(60)

TLS = Path(__file__).parent / "hashicorp_tls"
ROLE_ID = "3c0a5f2e-role"
SECRET_ID = "9b1d-secret-id-for-tests"
OPENAI = "/v1/secret/data/ai/openai"
LOGIN = "/v1/auth/approle/login"
LOOKUP = "/v1/auth/token/lookup-self"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def vault() -> Iterator[VaultServer]:
    with vault_server() as server:
        server.put("secret", "ai/openai", {"api_key": "sk-approle"})
        server.add_approle(ROLE_ID, SECRET_ID, paths=("secret/data/ai/*",), token_ttl=600)
        yield server


def approle(server: VaultServer, clock: Clock, **settings: object) -> VaultSecretProvider:
    fields: dict[str, object] = {
        "url": server.url,
        "role_id": ROLE_ID,
        "secret_id": SECRET_ID,
        **settings,
    }
    return VaultSecretProvider(VaultSettings.from_mapping(fields), clock=clock)


# -- AppRole -----------------------------------------------------------------------------------


def test_approle_logs_in_once_and_reads_with_the_token_it_got(
    vault: VaultServer, clock: Clock
) -> None:
    with approle(vault, clock, cache_ttl_seconds=0) as provider:
        assert provider.resolve("secret/data/ai/openai#api_key") == "sk-approle"
        assert provider.resolve("secret/data/ai/openai#api_key") == "sk-approle"
    login, first, second = vault.requests
    assert (login.method, login.path) == ("POST", LOGIN)
    assert login.json() == {"role_id": ROLE_ID, "secret_id": SECRET_ID}
    assert "X-Vault-Token" not in login.headers
    (token,) = vault.issued
    assert [r.headers["X-Vault-Token"] for r in (first, second)] == [token, token]


def test_a_revoked_token_mid_run_logs_in_again_and_reads_again(
    vault: VaultServer, clock: Clock
) -> None:
    with approle(vault, clock) as provider:
        assert provider.resolve("secret/data/ai/openai#api_key") == "sk-approle"
        vault.revoke(vault.issued[0])
        vault.put("secret", "ai/openai", {"api_key": "sk-rotated"})
        clock.advance(31)  # past the cache's TTL: the next resolution reads Vault
        assert provider.resolve("secret/data/ai/openai#api_key") == "sk-rotated"
    assert [(r.method, r.path) for r in vault.requests] == [
        ("POST", LOGIN),
        ("GET", OPENAI),
        ("GET", OPENAI),  # 403: the token was revoked
        ("GET", LOOKUP),  # 403 too: the token itself is dead, not the policy
        ("POST", LOGIN),
        ("GET", OPENAI),
    ]
    first, second = vault.issued
    assert vault.requests[-1].headers["X-Vault-Token"] == second != first
    assert "X-Vault-Token" not in vault.requests[4].headers  # the dead token stays home


def test_an_auth_failure_drops_the_cache(vault: VaultServer, clock: Clock) -> None:
    vault.put("secret", "ai/other", {"k": "v1"})
    with approle(vault, clock) as provider:
        assert provider.resolve("secret/data/ai/other#k") == "v1"  # cached for 30 s
        vault.revoke(vault.issued[0])
        vault.put("secret", "ai/other", {"k": "v2"})
        provider.resolve("secret/data/ai/openai#api_key")  # 403, a new login, read again
        # The secret cached under the revoked token went with it: it is read again.
        assert provider.resolve("secret/data/ai/other#k") == "v2"
    assert vault.count("/v1/secret/data/ai/other") == 2


def test_a_token_the_policy_denies_is_an_auth_error_without_a_new_login(clock: Clock) -> None:
    with vault_server() as server:
        server.put("secret", "ai/openai", {"api_key": "x"})
        server.add_approle(ROLE_ID, SECRET_ID, paths=("secret/data/team/*",))
        with (
            approle(server, clock) as provider,
            pytest.raises(AuthError, match=r"permission denied \(HTTP 403\)"),
        ):
            provider.resolve("secret/data/ai/openai#api_key")
        # The login's token is valid (lookup-self answers), so no second login is tried.
        assert [r.path for r in server.requests] == [LOGIN, OPENAI, LOOKUP]


def test_a_refusal_after_the_new_login_is_an_auth_error(vault: VaultServer, clock: Clock) -> None:
    with approle(vault, clock) as provider:
        provider.resolve("secret/data/ai/openai#api_key")
        vault.add_approle(ROLE_ID, SECRET_ID, paths=("secret/data/team/*",))  # narrowed
        vault.revoke(vault.issued[0])
        vault.put("secret", "ai/other", {"k": "v"})
        with pytest.raises(AuthError, match=r"permission denied \(HTTP 403\)"):
            provider.resolve("secret/data/ai/other#k")
    assert [r.path for r in vault.requests] == [
        LOGIN,
        OPENAI,
        "/v1/secret/data/ai/other",
        LOOKUP,
        LOGIN,
        "/v1/secret/data/ai/other",  # read once more with the new token: refused again
    ]


def test_an_approle_token_near_its_end_is_replaced_before_reading(
    vault: VaultServer, clock: Clock
) -> None:
    with approle(vault, clock, cache_ttl_seconds=0) as provider:
        provider.resolve("secret/data/ai/openai#api_key")
        clock.advance(539)  # the token lasts 600 s; the provider renews after 90 % of it
        provider.resolve("secret/data/ai/openai#api_key")
        assert len(vault.issued) == 1
        clock.advance(1)
        provider.resolve("secret/data/ai/openai#api_key")
    assert len(vault.issued) == 2
    assert [r.path for r in vault.requests] == [LOGIN, OPENAI, OPENAI, LOGIN, OPENAI]


@pytest.mark.parametrize(
    ("role_id", "secret_id"), [(ROLE_ID, "wrong-secret-id"), ("unknown-role", SECRET_ID)]
)
def test_a_refused_login_is_an_auth_error(
    vault: VaultServer, clock: Clock, role_id: str, secret_id: str
) -> None:
    with (
        approle(vault, clock, role_id=role_id, secret_id=secret_id) as provider,
        pytest.raises(AuthError) as caught,
    ):
        provider.resolve("secret/data/ai/openai#api_key")
    assert str(caught.value) == (
        "secret vault:secret/data/ai/openai#api_key: AppRole login at auth/approle: "
        "Vault refused the credentials or the mount (HTTP 400)"
    )
    assert vault.count(OPENAI) == 0


def test_approle_at_another_mount_and_without_a_secret_id(clock: Clock) -> None:
    with vault_server() as server:
        server.put("secret", "app", {"k": "v"})
        server.add_approle("ci-role", None, mount="ci/approle")
        settings = VaultSettings(url=server.url, role_id="ci-role", approle_mount="/ci/approle")
        with VaultSecretProvider(settings, clock=clock) as provider:
            assert provider.resolve("secret/data/app#k") == "v"
        login = server.requests[0]
        assert login.path == "/v1/auth/ci/approle/login"
        assert login.json() == {"role_id": "ci-role", "secret_id": None}


def test_a_missing_approle_mount_is_an_auth_error(vault: VaultServer, clock: Clock) -> None:
    with (
        approle(vault, clock, approle_mount="elsewhere") as provider,
        pytest.raises(AuthError, match=r"auth/elsewhere: .* \(HTTP 404\)"),
    ):
        provider.resolve("secret/data/ai/openai#api_key")


def test_a_token_and_approle_use_the_token_first_and_approle_when_it_is_revoked(
    vault: VaultServer, clock: Clock
) -> None:
    vault.add_token("hvs.given", paths=("secret/*",))
    with approle(vault, clock, token="hvs.given", cache_ttl_seconds=0) as provider:
        provider.resolve("secret/data/ai/openai#api_key")
        vault.revoke("hvs.given")
        provider.resolve("secret/data/ai/openai#api_key")
    assert [r.path for r in vault.requests] == [OPENAI, OPENAI, LOOKUP, LOGIN, OPENAI]
    assert vault.requests[0].headers["X-Vault-Token"] == "hvs.given"


def test_concurrent_resolutions_after_a_revocation_log_in_once(
    vault: VaultServer, clock: Clock
) -> None:
    for number in range(8):
        vault.put("secret", f"ai/n{number}", {"k": str(number)})
    results: dict[int, str] = {}
    errors: list[BaseException] = []
    with approle(vault, clock, cache_ttl_seconds=0) as provider:
        provider.resolve("secret/data/ai/openai#api_key")
        vault.revoke(vault.issued[0])
        barrier = threading.Barrier(8, timeout=10)

        def resolve(number: int) -> None:
            try:
                barrier.wait()
                results[number] = provider.resolve(f"secret/data/ai/n{number}#k")
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=resolve, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert results == {n: str(n) for n in range(8)}
    assert len(vault.issued) == 2  # one login at the start, one after the revocation


# -- namespaces --------------------------------------------------------------------------------


def test_a_namespace_goes_with_every_request_and_scopes_the_secrets(clock: Clock) -> None:
    with vault_server() as server:
        server.put("secret", "app", {"k": "team-a"}, namespace="team-a")
        server.put("secret", "app", {"k": "root"})
        server.add_approle(ROLE_ID, SECRET_ID, namespace="team-a")
        with approle(server, clock, namespace="team-a/") as provider:
            assert provider.resolve("secret/data/app#k") == "team-a"
        assert [r.headers.get("X-Vault-Namespace") for r in server.requests] == [
            "team-a",
            "team-a",
        ]


def test_a_token_used_in_another_namespace_is_refused(clock: Clock) -> None:
    with vault_server() as server:
        server.add_token("hvs.team-a", namespace="team-a")
        server.put("secret", "app", {"k": "root"})
        settings = VaultSettings(url=server.url, token="hvs.team-a")  # no namespace given
        with (
            VaultSecretProvider(settings, clock=clock) as provider,
            pytest.raises(AuthError, match="permission denied"),
        ):
            provider.resolve("secret/data/app#k")
        with (
            VaultSecretProvider(settings.model_copy(update={"namespace": "team-a"})) as other,
            pytest.raises(SecretError, match=r"not found \(HTTP 404\)"),
        ):
            other.resolve("secret/data/app#k")  # in team-a there is no such secret


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_vault() -> Iterator[VaultServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "server.pem", TLS / "server-key.pem")
    with vault_server(token="hvs.tls", tls=context) as server:
        server.put("secret", "app", {"k": "over-tls"})
        yield server


@pytest.mark.parametrize(
    "trust",
    [{"ca_cert": str(TLS / "ca.pem")}, {"ca_path": str(TLS / "capath")}],
    ids=["VAULT_CACERT", "VAULT_CAPATH"],
)
def test_https_with_the_test_ca_verifies_and_reads(
    tls_vault: VaultServer, trust: dict[str, str]
) -> None:
    assert tls_vault.url.startswith("https://127.0.0.1:")
    settings = VaultSettings(url=tls_vault.url, token="hvs.tls", **trust)
    with VaultSecretProvider(settings) as provider:
        assert provider.resolve("secret/data/app#k") == "over-tls"


def test_https_without_the_ca_fails_verification(tls_vault: VaultServer) -> None:
    before = tls_vault.count()
    with (
        VaultSecretProvider(VaultSettings(url=tls_vault.url, token="hvs.tls")) as provider,
        pytest.raises(ConnectionFailed, match="TLS connection to Vault failed"),
    ):
        provider.resolve("secret/data/app#k")
    assert tls_vault.count() == before  # no request got through the handshake


def test_skip_verify_reads_without_the_ca_and_urllib3_warns(tls_vault: VaultServer) -> None:
    settings = VaultSettings(url=tls_vault.url, token="hvs.tls", skip_verify=True)
    with VaultSecretProvider(settings) as provider, pytest.warns(InsecureRequestWarning):
        assert provider.resolve("secret/data/app#k") == "over-tls"


SETTINGS_IN_CODE = """
import sys
from integrations.adapters.vault_connectors.hashicorp import VaultSecretProvider, VaultSettings

settings = VaultSettings(url=sys.argv[1], token="hvs.tls", ca_cert=sys.argv[2])
with VaultSecretProvider(settings) as provider:
    print(provider.resolve("secret/data/app#k"))
"""


def test_settings_given_in_code_are_all_hvac_uses(tls_vault: VaultServer) -> None:
    # hvac falls back to these variables (read when it is imported) when given None.
    environ = {
        **os.environ,
        "VAULT_CLIENT_CERT": "/nonexistent/client.pem",
        "VAULT_CLIENT_KEY": "/nonexistent/client-key.pem",
        "VAULT_CACERT": "/nonexistent/ca.pem",
        "VAULT_TOKEN": "hvs.not-this-one",
    }
    done = subprocess.run(
        [sys.executable, "-c", SETTINGS_IN_CODE, tls_vault.url, str(TLS / "ca.pem")],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "over-tls\n", "")
    assert tls_vault.requests[-1].headers["X-Vault-Token"] == "hvs.tls"


def test_a_token_in_the_environment_is_not_used_by_settings_without_one(
    vault: VaultServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.ambient")
    vault.add_token("hvs.ambient")
    with (
        VaultSecretProvider(VaultSettings(url=vault.url), clock=clock) as provider,
        pytest.raises(SecretError, match="no Vault token"),
    ):
        provider.resolve("secret/data/ai/openai#api_key")
    assert vault.count() == 0


def test_the_ca_cert_wins_over_the_ca_path_and_skip_verify_over_both() -> None:
    both = VaultSettings(ca_cert="/etc/vault/ca.pem", ca_path="/etc/vault/certs")
    assert both.verify == "/etc/vault/ca.pem"
    assert VaultSettings(ca_path="/etc/vault/certs").verify == "/etc/vault/certs"
    assert both.model_copy(update={"skip_verify": True}).verify is False
    assert VaultSettings().verify is True


# -- settings ----------------------------------------------------------------------------------


def test_settings_come_from_the_variables_vault_tools_read() -> None:
    environ = {
        "VAULT_ADDR": "https://vault.internal:8200/",
        "VAULT_TOKEN": "hvs.from-env",
        "VAULT_NAMESPACE": "platform/",
        "VAULT_CACERT": "/etc/vault/ca.pem",
        "VAULT_CAPATH": "/etc/vault/certs",
        "VAULT_CLIENT_CERT": "/etc/vault/client.pem",
        "VAULT_CLIENT_KEY": "/etc/vault/client-key.pem",
        "VAULT_SKIP_VERIFY": "false",
        "VAULT_CLIENT_TIMEOUT": "1m",
        "VAULT_ROLE_ID": ROLE_ID,
        "VAULT_SECRET_ID": SECRET_ID,
        "VAULT_APPROLE_MOUNT": "platform-approle",
        "INTEGRATIONS_VAULT_CACHE_TTL": "5",
        "INTEGRATIONS_VAULT_CACHE_SIZE": "10",
    }
    assert set(environ) == set(ENVIRONMENT.values())
    settings = VaultSettings.from_env(environ)
    assert settings == VaultSettings(
        url="https://vault.internal:8200",
        token=Secret("hvs.from-env"),
        namespace="platform",
        ca_cert="/etc/vault/ca.pem",
        ca_path="/etc/vault/certs",
        client_cert="/etc/vault/client.pem",
        client_key="/etc/vault/client-key.pem",
        skip_verify=False,
        timeout_seconds=60.0,
        role_id=ROLE_ID,
        secret_id=Secret(SECRET_ID),
        approle_mount="platform-approle",
        cache_ttl_seconds=5.0,
        cache_max_entries=10,
    )
    assert settings.auth_method == "token+approle"
    assert "hvs.from-env" not in repr(settings)
    assert SECRET_ID not in repr(settings)


def test_unset_and_empty_variables_leave_the_defaults() -> None:
    settings = VaultSettings.from_env({"VAULT_TOKEN": "", "VAULT_NAMESPACE": "  "})
    assert settings == VaultSettings()
    assert settings.url == "https://127.0.0.1:8200"  # the Vault CLI's default address
    assert (settings.timeout_seconds, settings.cache_ttl_seconds) == (10.0, 30.0)
    assert settings.auth_method == "none"


def test_keyword_overrides_replace_what_the_environment_says() -> None:
    environ = {"VAULT_ADDR": "https://vault.internal:8200", "VAULT_TOKEN": "hvs.env"}
    settings = VaultSettings.from_env(environ, token=None, role_id=ROLE_ID, cache_ttl_seconds=5)
    assert (settings.url, settings.token, settings.role_id) == (
        environ["VAULT_ADDR"],
        None,
        ROLE_ID,
    )
    assert (settings.auth_method, settings.cache_ttl_seconds) == ("approle", 5.0)


@pytest.mark.parametrize(
    ("raw", "seconds"), [("15", 15.0), ("2.5", 2.5), ("30s", 30.0), ("500ms", 0.5), ("2m", 120)]
)
def test_the_client_timeout_takes_seconds_or_a_duration(raw: str, seconds: float) -> None:
    assert VaultSettings.from_env({"VAULT_CLIENT_TIMEOUT": raw}).timeout_seconds == seconds


@pytest.mark.parametrize(("raw", "skip"), [("1", True), ("true", True), ("T", True), ("0", False)])
def test_skip_verify_reads_gos_booleans(raw: str, skip: bool) -> None:
    assert VaultSettings.from_env({"VAULT_SKIP_VERIFY": raw}).skip_verify is skip


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VAULT_SKIP_VERIFY": "yes"}, "VAULT_SKIP_VERIFY must be a boolean"),
        ({"VAULT_CLIENT_TIMEOUT": "soon"}, "VAULT_CLIENT_TIMEOUT must be seconds"),
        ({"VAULT_ADDR": "vault.internal:8200"}, "url: Value error, must be an http"),
        ({"VAULT_SECRET_ID": "orphan-secret-id"}, "needs role_id"),
        ({"VAULT_CLIENT_CERT": "/c.pem"}, "go together"),
        ({"VAULT_APPROLE_MOUNT": "a/../b"}, "approle_mount"),
        ({"INTEGRATIONS_VAULT_CACHE_SIZE": "-1"}, "cache_max_entries"),
        ({"VAULT_CLIENT_TIMEOUT": "1h"}, "timeout_seconds"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_field(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        VaultSettings.from_env(environ)
    assert message in str(caught.value)
    assert "orphan-secret-id" not in str(caught.value)


def test_the_settings_reach_hvac(tls_vault: VaultServer) -> None:
    from integrations.adapters.vault_connectors.hashicorp._client import VaultClient

    settings = VaultSettings(url=tls_vault.url, token="hvs.tls", ca_path=str(TLS / "capath"))
    client = VaultClient(settings)
    try:
        assert client.verify == str(TLS / "capath")
        assert client.has_token
    finally:
        client.close()


def test_a_provider_without_settings_reads_the_environment_at_first_use(
    vault: VaultServer, clock: Clock
) -> None:
    environ = {"VAULT_ADDR": vault.url, "VAULT_ROLE_ID": ROLE_ID, "VAULT_SECRET_ID": SECRET_ID}
    provider = VaultSecretProvider(environ=environ, clock=clock)
    assert repr(provider) == "VaultSecretProvider(settings from the environment, not read yet)"
    with provider:
        assert provider.resolve("secret/data/ai/openai#api_key") == "sk-approle"
    assert repr(provider) == f"VaultSecretProvider(url={vault.url!r}, auth=approle)"


def test_a_misconfigured_environment_is_a_secret_error_at_first_use() -> None:
    provider = VaultSecretProvider(environ={"VAULT_SKIP_VERIFY": "maybe"})
    with pytest.raises(SecretError, match="misconfigured: VAULT_SKIP_VERIFY must be a boolean"):
        provider.resolve("secret/data/app#k")
