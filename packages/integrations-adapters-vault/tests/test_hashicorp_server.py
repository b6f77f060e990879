"""`VaultServer` answers at wire level with Vault's documented JSON shapes and status codes.

These tests speak plain HTTP to the server (no hvac), so that what the provider's tests rely
on is pinned down on its own: the paths, headers, bodies and statuses of Vault's API.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from integrations.adapters.vault_connectors.testing import VaultServer, vault_server

pytestmark = pytest.mark.timeout(60)

TOKEN = "hvs.wire-token"


@pytest.fixture
def vault() -> Iterator[VaultServer]:
    with vault_server(token=TOKEN) as server:
        yield server


def call(
    server: VaultServer,
    path: str,
    *,
    token: str | None = TOKEN,
    namespace: str | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """The status and JSON body of one request."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Vault-Token"] = token
    if namespace is not None:
        headers["X-Vault-Namespace"] = namespace
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_kv_v2_read_has_the_documented_envelope(vault: VaultServer) -> None:
    assert vault.put("secret", "ai/openai", {"api_key": "k1"}) == 1
    assert vault.put("secret", "ai/openai", {"api_key": "k2"}) == 2
    status, body = call(vault, "/v1/secret/data/ai/openai")
    assert status == 200
    assert set(body) == {
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
        "mount_type",
    }
    assert (body["lease_duration"], body["renewable"], body["auth"]) == (0, False, None)
    assert body["data"]["data"] == {"api_key": "k2"}
    metadata = body["data"]["metadata"]
    assert set(metadata) == {
        "created_time",
        "custom_metadata",
        "deletion_time",
        "destroyed",
        "version",
    }
    assert (metadata["version"], metadata["deletion_time"], metadata["destroyed"]) == (2, "", False)
    assert metadata["created_time"].endswith("Z")
    assert call(vault, "/v1/secret/data/ai/openai?version=1")[1]["data"]["data"] == {
        "api_key": "k1"
    }


def test_kv_v2_missing_secret_version_and_deleted_version(vault: VaultServer) -> None:
    assert call(vault, "/v1/secret/data/nothing") == (404, {"errors": []})
    vault.put("secret", "app", {"k": "v"})
    assert call(vault, "/v1/secret/data/app?version=5") == (404, {"errors": []})
    vault.delete("secret", "app")
    status, body = call(vault, "/v1/secret/data/app")
    assert status == 404
    assert body["data"]["data"] is None
    assert body["data"]["metadata"]["deletion_time"] != ""


def test_kv_v1_read_has_the_refresh_hint(vault: VaultServer) -> None:
    vault.put("kv", "legacy", {"password": "p"})
    status, body = call(vault, "/v1/kv/legacy")
    assert status == 200
    assert body["data"] == {"password": "p"}
    assert body["lease_duration"] == 2_764_800
    assert call(vault, "/v1/kv/nothing") == (404, {"errors": []})


def test_an_unmounted_path_has_no_handler(vault: VaultServer) -> None:
    status, body = call(vault, "/v1/cubbyhole/x")
    assert status == 404
    assert body == {"errors": ['no handler for route "cubbyhole/x". route entry not found.']}


@pytest.mark.parametrize("token", [None, "hvs.unknown"])
def test_a_missing_or_unknown_token_is_permission_denied(
    vault: VaultServer, token: str | None
) -> None:
    vault.put("secret", "app", {"k": "v"})
    assert call(vault, "/v1/secret/data/app", token=token) == (
        403,
        {"errors": ["permission denied"]},
    )
    assert call(vault, "/v1/auth/token/lookup-self", token=token)[0] == 403


def test_a_path_outside_the_tokens_paths_is_permission_denied(vault: VaultServer) -> None:
    vault.add_token("hvs.narrow", paths=("secret/data/team/*",))
    vault.put("secret", "team/app", {"k": "v"})
    vault.put("secret", "other", {"k": "v"})
    assert call(vault, "/v1/secret/data/team/app", token="hvs.narrow")[0] == 200
    assert call(vault, "/v1/secret/data/other", token="hvs.narrow")[0] == 403


def test_lookup_self_describes_the_token(vault: VaultServer) -> None:
    status, body = call(vault, "/v1/auth/token/lookup-self")
    assert status == 200
    data = body["data"]
    assert data["id"] == TOKEN
    assert data["policies"] == ["root"]
    assert {"accessor", "creation_ttl", "expire_time", "ttl", "type", "renewable"} <= set(data)
    assert body["mount_type"] == "token"


def test_approle_login_issues_a_token_with_the_documented_auth_block(vault: VaultServer) -> None:
    vault.add_approle("role", "secret", policies=("app",), token_ttl=1200)
    status, body = call(
        vault, "/v1/auth/approle/login", token=None, body={"role_id": "role", "secret_id": "secret"}
    )
    assert status == 200
    auth = body["auth"]
    assert auth["client_token"] == vault.issued[0]
    assert (auth["lease_duration"], auth["renewable"], auth["policies"]) == (1200, True, ["app"])
    assert auth["token_policies"] == ["app"]
    assert auth["metadata"] == {"role_name": "role"}
    assert body["data"] is None
    assert call(vault, "/v1/auth/token/lookup-self", token=auth["client_token"])[0] == 200


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"role_id": "role", "secret_id": "wrong"}, ["invalid role or secret ID"]),
        ({"role_id": "other", "secret_id": "secret"}, ["invalid role or secret ID"]),
        ({"secret_id": "secret"}, ["missing role_id"]),
    ],
)
def test_a_bad_approle_login_is_a_400(
    vault: VaultServer, body: dict[str, Any], errors: list[str]
) -> None:
    vault.add_approle("role", "secret")
    assert call(vault, "/v1/auth/approle/login", token=None, body=body) == (400, {"errors": errors})
    assert vault.issued == []


def test_a_revoked_token_is_refused(vault: VaultServer) -> None:
    vault.revoke(TOKEN)
    assert call(vault, "/v1/auth/token/lookup-self") == (403, {"errors": ["permission denied"]})


def test_namespaces_scope_tokens_roles_and_secrets(vault: VaultServer) -> None:
    vault.add_token("hvs.ns", namespace="team")
    vault.put("secret", "app", {"k": "team"}, namespace="team")
    vault.put("secret", "app", {"k": "root"})
    assert call(vault, "/v1/secret/data/app", token="hvs.ns", namespace="team/")[0] == 200
    assert call(vault, "/v1/secret/data/app", token="hvs.ns")[0] == 403
    assert call(vault, "/v1/secret/data/app", namespace="team")[0] == 403  # a root token
    vault.add_approle("role", "secret", namespace="team")
    login = {"role_id": "role", "secret_id": "secret"}
    assert call(vault, "/v1/auth/approle/login", token=None, body=login)[0] == 404
    assert call(vault, "/v1/auth/approle/login", token=None, namespace="team", body=login)[0] == 200


def test_a_sealed_vault_answers_503_everywhere_until_unsealed(vault: VaultServer) -> None:
    vault.put("secret", "app", {"k": "v"})
    vault.add_approle("role", "secret")
    vault.seal()
    sealed = (503, {"errors": ["Vault is sealed"]})
    assert call(vault, "/v1/secret/data/app") == sealed
    assert call(vault, "/v1/auth/token/lookup-self") == sealed
    login = {"role_id": "role", "secret_id": "secret"}
    assert call(vault, "/v1/auth/approle/login", token=None, body=login) == sealed
    vault.unseal()
    assert call(vault, "/v1/secret/data/app")[0] == 200
    assert vault.count("/v1/secret/data/app") == 2


def test_test_controls_refuse_unknown_mounts(vault: VaultServer) -> None:
    with pytest.raises(KeyError, match="no secrets engine is mounted at 'cubbyhole'"):
        vault.put("cubbyhole", "x", {"k": "v"})
    with pytest.raises(KeyError, match="no secret at secret/nothing"):
        vault.delete("secret", "nothing")
