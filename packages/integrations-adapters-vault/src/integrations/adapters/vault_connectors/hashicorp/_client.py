"""The hvac client, behind the four calls the provider makes: read, log in, look up, close.

hvac is imported when the first client is built, not when the provider is: the resolver
loads the provider to learn that ``vault`` is a reference scheme (for the untrusted-config
policy, say) and must be able to do that where the ``hashicorp`` extra is not installed.
hvac ships no type information, so what the provider relies on is typed here, once.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Final

from integrations.base import SecretError

from ._config import VaultSettings
from ._errors import vault_error
from ._reference import VaultReference

__all__ = ["VaultClient", "VaultRead"]

INSTALL_HINT: Final = "pip install 'integrations-adapters-vault[hashicorp]'"


class VaultRead:
    """The key/value pairs of one secret, and how long Vault says they stay valid."""

    __slots__ = ("data", "lease_seconds")

    def __init__(self, data: Mapping[str, object], lease_seconds: float) -> None:
        self.data = data
        self.lease_seconds = lease_seconds

    def __repr__(self) -> str:
        return f"VaultRead({len(self.data)} keys, lease {self.lease_seconds}s)"


class VaultClient:
    """One hvac client configured from `VaultSettings`: address, namespace, TLS, timeout."""

    def __init__(self, settings: VaultSettings) -> None:
        try:
            hvac: Any = importlib.import_module("hvac")
        except ImportError:
            raise SecretError(f"the vault: secret provider needs hvac: {INSTALL_HINT}") from None
        # Every setting is passed explicitly (an empty token, an empty client certificate)
        # so that hvac reads nothing from the environment or ~/.vault-token behind the
        # settings' back: it falls back to VAULT_TOKEN and VAULT_CLIENT_CERT on None.
        cert = (settings.client_cert, settings.client_key) if settings.client_cert else ()
        self._client: Any = hvac.Client(
            url=settings.url,
            token=settings.token.reveal() if settings.token is not None else "",
            namespace=settings.namespace,
            verify=settings.verify,
            cert=cert,
            timeout=settings.timeout_seconds,
        )
        self._settings = settings

    def __repr__(self) -> str:
        return f"VaultClient({self._settings.url!r})"

    @property
    def verify(self) -> bool | str:
        """What the HTTP session verifies Vault's certificate with."""
        verify: bool | str = self._client.adapter.session.verify
        return verify

    @property
    def has_token(self) -> bool:
        """Whether requests carry a token."""
        return bool(self._client.token)

    def login_approle(self, subject: str) -> float:
        """Log in with the settings' AppRole; the token's lifetime in seconds (0: none)."""
        settings = self._settings
        self._client.token = None  # a rejected token must not ride along on the login
        try:
            answer = self._client.auth.approle.login(
                role_id=settings.role_id,
                secret_id=settings.secret_id.reveal() if settings.secret_id else None,
                mount_point=settings.approle_mount,
            )
        except Exception as error:
            raise vault_error(error, subject, login=True) from None
        auth = answer.get("auth") if isinstance(answer, dict) else None
        if not isinstance(auth, dict) or not isinstance(auth.get("client_token"), str):
            raise SecretError(f"{subject}: Vault's answer holds no client token")
        return _seconds(auth.get("lease_duration"))

    def token_accepted(self, subject: str) -> bool:
        """Whether Vault still accepts the token (``auth/token/lookup-self``)."""
        if not self.has_token:
            return False
        hvac_errors: Any = importlib.import_module("hvac.exceptions")
        try:
            self._client.auth.token.lookup_self()
        except (hvac_errors.Forbidden, hvac_errors.Unauthorized):
            return False
        except Exception as error:
            raise vault_error(error, subject) from None
        return True

    def read(self, reference: VaultReference, subject: str) -> VaultRead:
        """Read the secret `reference` names, KV v2 or v1 as its path says."""
        kv = self._client.secrets.kv
        try:
            if reference.kv_version == 2:
                answer = kv.v2.read_secret_version(
                    path=reference.path,
                    mount_point=reference.mount,
                    version=reference.version,
                    raise_on_deleted_version=True,
                )
            else:
                answer = kv.v1.read_secret(path=reference.path, mount_point=reference.mount)
        except Exception as error:
            raise vault_error(error, subject) from None
        return _secret(answer, reference, subject)

    def close(self) -> None:
        """Close the HTTP session's connections."""
        self._client.adapter.close()


def _secret(answer: object, reference: VaultReference, subject: str) -> VaultRead:
    """The key/value pairs of a read's answer, checked against the engine's documented shape."""
    body = answer if isinstance(answer, dict) else {}
    data = body.get("data")
    if reference.kv_version == 2:
        data = data.get("data") if isinstance(data, dict) else None
    if not isinstance(data, dict):
        engine = f"KV v{reference.kv_version}"
        raise SecretError(f"{subject}: Vault's answer is not a {engine} secret")
    return VaultRead(data, _seconds(body.get("lease_duration")))


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else 0.0
