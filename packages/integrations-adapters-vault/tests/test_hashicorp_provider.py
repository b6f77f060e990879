"""The ``vault:`` provider reading secrets over HTTP from a Vault API on 127.0.0.1.

Every test talks to a real `VaultServer` through hvac; nothing is patched. Time is a clock the
test moves, so cache expiry is exact and no test sleeps.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from integrations.adapters.vault_connectors.hashicorp import (
    VaultReference,
    VaultSecretProvider,
    VaultSettings,
)
from integrations.adapters.vault_connectors.testing import VaultServer, vault_server
from integrations.base import (
    AuthError,
    ConnectionFailed,
    RateLimited,
    SecretError,
    TransientError,
)

pytestmark = pytest.mark.timeout(60)

TOKEN = "hvs.root-token-for-tests"
API_KEY = "sk-live-4f9c2d"
OPENAI = "/v1/secret/data/ai/openai"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def vault() -> Iterator[VaultServer]:
    with vault_server(token=TOKEN) as server:
        server.put("secret", "ai/openai", {"api_key": API_KEY, "org": "acme"})
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


def provider_for(server: VaultServer, clock: Clock, **settings: object) -> VaultSecretProvider:
    fields: dict[str, object] = {"url": server.url, "token": TOKEN, **settings}
    return VaultSecretProvider(VaultSettings.from_mapping(fields), clock=clock)


@pytest.fixture
def provider(vault: VaultServer, clock: Clock) -> Iterator[VaultSecretProvider]:
    with provider_for(vault, clock) as provider:
        yield provider


# -- references ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "mount", "path", "kv_version", "version"),
    [
        ("secret/data/ai/openai#api_key", "secret", "ai/openai", 2, None),
        ("secret/data/ai/openai?version=3#api_key", "secret", "ai/openai", 2, 3),
        ("team/kv/data/app#key", "team/kv", "app", 2, None),
        ("kv/ai/openai#api_key", "kv", "ai/openai", 1, None),
        ("kv/app/data#key", "kv", "app/data", 1, None),
        ("/secret/data/x#k", "secret", "x", 2, None),
    ],
)
def test_a_reference_is_the_api_path_and_a_key(
    reference: str, mount: str, path: str, kv_version: int, version: int | None
) -> None:
    parsed = VaultReference.parse(reference)
    assert (parsed.mount, parsed.path, parsed.kv_version, parsed.version) == (
        mount,
        path,
        kv_version,
        version,
    )
    assert str(parsed) == f"vault:{reference.removeprefix('/')}"


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("secret/data/ai/openai", "names no key"),
        ("secret/data/ai/openai#", "names no key"),
        ("secret#key", "<mount>/<secret>"),
        ("secret/data/../sys/x#k", "invalid segment '..'"),
        ("secret/data//x#k", "invalid segment ''"),
        ("secret/data/a%2e%2e/x#k", "invalid segment"),
        ("secret/data/x?version=0#k", "?version=<n>"),
        ("secret/data/x?ttl=3#k", "?version=<n>"),
        ("kv/x?version=2#k", "KV v2 path"),
        ("secret/data/x#k\ney", "control character"),
    ],
)
def test_a_malformed_reference_is_a_secret_error_before_any_request(
    vault: VaultServer, provider: VaultSecretProvider, reference: str, reason: str
) -> None:
    with pytest.raises(SecretError, match="is not a valid Vault reference") as caught:
        provider.resolve(reference)
    assert reason in str(caught.value)
    assert vault.count() == 0


# -- reading -----------------------------------------------------------------------------------


def test_token_auth_reads_a_kv_v2_secret(vault: VaultServer, provider: VaultSecretProvider) -> None:
    assert provider.resolve("secret/data/ai/openai#api_key") == API_KEY
    (request,) = vault.requests
    assert request.path == OPENAI
    assert request.method == "GET"
    assert request.headers["X-Vault-Token"] == TOKEN
    assert "X-Vault-Namespace" not in request.headers


def test_kv_v2_reads_the_version_asked_for(
    vault: VaultServer, provider: VaultSecretProvider
) -> None:
    second = vault.put("secret", "ai/openai", {"api_key": "sk-rotated"})
    assert second == 2
    assert provider.resolve("secret/data/ai/openai?version=1#api_key") == API_KEY
    assert provider.resolve("secret/data/ai/openai?version=2#api_key") == "sk-rotated"
    assert provider.resolve("secret/data/ai/openai#api_key") == "sk-rotated"
    assert [r.query.get("version") for r in vault.requests] == [["1"], ["2"], None]


def test_kv_v1_reads_a_secret_by_its_plain_path(
    vault: VaultServer, provider: VaultSecretProvider
) -> None:
    vault.put("kv", "ai/legacy", {"api_key": "sk-v1"})
    assert provider.resolve("kv/ai/legacy#api_key") == "sk-v1"
    assert [r.path for r in vault.requests] == ["/v1/kv/ai/legacy"]


def test_keys_of_one_secret_share_one_read(
    vault: VaultServer, provider: VaultSecretProvider
) -> None:
    assert provider.resolve("secret/data/ai/openai#api_key") == API_KEY
    assert provider.resolve("secret/data/ai/openai#org") == "acme"
    assert vault.count(OPENAI) == 1


def test_values_that_are_not_strings_come_back_as_json(
    vault: VaultServer, provider: VaultSecretProvider
) -> None:
    vault.put("secret", "typed", {"port": 5432, "on": True, "cfg": {"b": 1, "a": [1, 2]}})
    assert provider.resolve("secret/data/typed#port") == "5432"
    assert provider.resolve("secret/data/typed#on") == "true"
    assert json.loads(provider.resolve("secret/data/typed#cfg")) == {"a": [1, 2], "b": 1}


@pytest.mark.parametrize("empty", ["", None])
def test_an_empty_value_is_an_error(
    vault: VaultServer, provider: VaultSecretProvider, empty: str | None
) -> None:
    vault.put("secret", "blank", {"key": empty})
    with pytest.raises(SecretError, match=r"^secret vault:secret/data/blank#key is empty$"):
        provider.resolve("secret/data/blank#key")


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("secret/data/ai/nothing#api_key", "not found (HTTP 404)"),
        ("secret/data/ai/openai#password", "not found (the secret has no such key)"),
        ("secret/data/ai/openai?version=9#api_key", "not found (HTTP 404)"),
        ("kv/ai/nothing#api_key", "not found (HTTP 404)"),
        ("nomount/ai/openai#api_key", "not found (HTTP 404)"),
    ],
)
def test_a_missing_secret_key_or_version_is_the_resolvers_secret_error(
    provider: VaultSecretProvider, reference: str, message: str
) -> None:
    with pytest.raises(SecretError) as caught:
        provider.resolve(reference)
    assert str(caught.value) == f"secret vault:{reference} {message}"


def test_a_deleted_kv_v2_version_is_missing(
    vault: VaultServer, provider: VaultSecretProvider
) -> None:
    vault.delete("secret", "ai/openai")
    with pytest.raises(SecretError, match=r"not found \(HTTP 404\)"):
        provider.resolve("secret/data/ai/openai#api_key")


def test_a_policy_that_denies_the_path_is_an_auth_error_without_a_retry(
    vault: VaultServer, clock: Clock
) -> None:
    vault.add_token("hvs.narrow", paths=("secret/data/team/*",))
    with (
        provider_for(vault, clock, token="hvs.narrow") as provider,
        pytest.raises(AuthError, match=r"permission denied \(HTTP 403\)") as caught,
    ):
        provider.resolve("secret/data/ai/openai#api_key")
    assert not isinstance(caught.value, SecretError)
    # The token itself is fine (lookup-self answers), so the read is not repeated.
    assert [r.path for r in vault.requests] == [OPENAI, "/v1/auth/token/lookup-self"]


def test_a_rejected_token_without_approle_is_an_auth_error_after_one_lookup(
    vault: VaultServer, provider: VaultSecretProvider
) -> None:
    vault.revoke(TOKEN)
    with pytest.raises(AuthError, match="permission denied"):
        provider.resolve("secret/data/ai/openai#api_key")
    assert [r.path for r in vault.requests] == [OPENAI, "/v1/auth/token/lookup-self"]


def test_a_sealed_vault_is_transient_and_reads_again_once_unsealed(
    vault: VaultServer, provider: VaultSecretProvider
) -> None:
    vault.seal()
    with pytest.raises(TransientError, match=r"Vault is sealed \(HTTP 503\)"):
        provider.resolve("secret/data/ai/openai#api_key")
    vault.unseal()
    assert provider.resolve("secret/data/ai/openai#api_key") == API_KEY


@pytest.mark.parametrize(
    ("status", "said"),
    [(500, "HTTP 500"), (502, "HTTP 502"), (503, "HTTP 503"), (504, "an unexpected status")],
)
def test_server_errors_are_transient(
    vault: VaultServer, provider: VaultSecretProvider, status: int, said: str
) -> None:
    vault.http.fail_next(status=status, body={"errors": ["internal error"]})
    with pytest.raises(TransientError) as caught:
        provider.resolve("secret/data/ai/openai#api_key")
    assert str(caught.value).endswith(f": Vault is unavailable ({said})")
    assert not isinstance(caught.value, RateLimited)
    assert provider.resolve("secret/data/ai/openai#api_key") == API_KEY


def test_rate_limiting_is_rate_limited(vault: VaultServer, provider: VaultSecretProvider) -> None:
    vault.http.fail_next(status=429, body={"errors": ["request path: rate limit quota exceeded"]})
    with pytest.raises(RateLimited, match=r"HTTP 429"):
        provider.resolve("secret/data/ai/openai#api_key")


def test_a_connection_refused_is_transient(clock: Clock) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connections are refused
        settings = VaultSettings(url=f"http://127.0.0.1:{port}", token=TOKEN)
        with (
            VaultSecretProvider(settings, clock=clock) as provider,
            pytest.raises(TransientError, match="Vault cannot be reached") as caught,
        ):
            provider.resolve("secret/data/ai/openai#api_key")
    assert not isinstance(caught.value, ConnectionFailed)


def test_a_dropped_connection_is_transient(
    vault: VaultServer, provider: VaultSecretProvider
) -> None:
    vault.http.drop_next()
    with pytest.raises(TransientError, match="Vault cannot be reached"):
        provider.resolve("secret/data/ai/openai#api_key")


def test_no_token_and_no_approle_is_a_secret_error_before_any_request(
    vault: VaultServer, clock: Clock
) -> None:
    with (
        VaultSecretProvider(VaultSettings(url=vault.url), clock=clock) as provider,
        pytest.raises(SecretError, match="no Vault token; set VAULT_TOKEN"),
    ):
        provider.resolve("secret/data/ai/openai#api_key")
    assert vault.count() == 0


# -- the cache ---------------------------------------------------------------------------------


def test_the_cache_answers_within_the_ttl_and_reads_again_after_it(
    vault: VaultServer, provider: VaultSecretProvider, clock: Clock
) -> None:
    assert provider.settings.cache_ttl_seconds == 30.0
    assert provider.resolve("secret/data/ai/openai#api_key") == API_KEY
    vault.put("secret", "ai/openai", {"api_key": "sk-rotated"})
    clock.advance(29.9)
    assert provider.resolve("secret/data/ai/openai#api_key") == API_KEY
    assert vault.count(OPENAI) == 1
    clock.advance(0.1)
    assert provider.resolve("secret/data/ai/openai#api_key") == "sk-rotated"
    assert vault.count(OPENAI) == 2


def test_the_cache_keeps_versions_apart(vault: VaultServer, provider: VaultSecretProvider) -> None:
    vault.put("secret", "ai/openai", {"api_key": "sk-2"})
    assert provider.resolve("secret/data/ai/openai?version=1#api_key") == API_KEY
    assert provider.resolve("secret/data/ai/openai#api_key") == "sk-2"
    assert provider.resolve("secret/data/ai/openai?version=1#api_key") == API_KEY
    assert vault.count(OPENAI) == 2


def test_the_cache_is_bounded_and_drops_the_least_recently_used(
    vault: VaultServer, clock: Clock
) -> None:
    for name in "abc":
        vault.put("secret", name, {"k": name})
    with provider_for(vault, clock, cache_max_entries=2) as provider:
        provider.resolve("secret/data/a#k")
        provider.resolve("secret/data/b#k")
        provider.resolve("secret/data/a#k")  # a is now the most recently used
        provider.resolve("secret/data/c#k")  # evicts b
        provider.resolve("secret/data/a#k")
        provider.resolve("secret/data/b#k")
    assert [r.path.rsplit("/", 1)[1] for r in vault.requests] == ["a", "b", "c", "b"]


def test_a_ttl_of_zero_turns_the_cache_off(vault: VaultServer, clock: Clock) -> None:
    with provider_for(vault, clock, cache_ttl_seconds=0) as provider:
        for _ in range(3):
            assert provider.resolve("secret/data/ai/openai#api_key") == API_KEY
    assert vault.count(OPENAI) == 3


def test_a_kv_v1_refresh_hint_shorter_than_the_ttl_wins(vault: VaultServer, clock: Clock) -> None:
    # KV v1 answers lease_duration 2764800 (32 days): the cache's own TTL is the shorter.
    vault.put("kv", "app", {"k": "v"})
    with provider_for(vault, clock, cache_ttl_seconds=60) as provider:
        provider.resolve("kv/app#k")
        clock.advance(59)
        provider.resolve("kv/app#k")
        clock.advance(1)
        provider.resolve("kv/app#k")
    assert vault.count("/v1/kv/app") == 2


def test_invalidate_forgets_every_cached_secret(
    vault: VaultServer, provider: VaultSecretProvider
) -> None:
    provider.resolve("secret/data/ai/openai#api_key")
    provider.invalidate()
    provider.resolve("secret/data/ai/openai#api_key")
    assert vault.count(OPENAI) == 2


def test_failures_are_not_cached(vault: VaultServer, provider: VaultSecretProvider) -> None:
    with pytest.raises(SecretError):
        provider.resolve("secret/data/later#k")
    vault.put("secret", "later", {"k": "now"})
    assert provider.resolve("secret/data/later#k") == "now"
