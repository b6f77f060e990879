"""`VaultSecretProvider`: the ``vault:`` scheme of secret references, served by HashiCorp Vault.

What happens on `resolve`:

1. the reference is parsed (`VaultReference`): a malformed one is a `SecretError`;
2. a secret read less than the cache's TTL ago is answered from the cache;
3. otherwise the provider makes sure it holds a token: the configured one, or an AppRole
   login when there is none or the last login's token is near the end of its lifetime;
4. it reads the secret; when Vault answers 403, it asks ``auth/token/lookup-self`` whether
   the token itself was rejected. If so, it forgets every cached secret, logs in again with
   AppRole (when it can) and reads once more; a second refusal, a token it cannot replace,
   or a token Vault still accepts (the policy denies the path) raise `AuthError`;
5. the key is taken from the secret: a missing key is a `SecretError`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Final, Self

from integrations.base import AuthError, ConfigError, SecretError

from ._cache import SecretCache
from ._client import VaultClient
from ._config import VaultSettings
from ._reference import SCHEME, VaultReference

__all__ = ["VaultSecretProvider"]

logger = logging.getLogger("integrations.vault.hashicorp")

RENEW_AT: Final = 0.9
"""The share of an AppRole token's lifetime after which the provider logs in again first."""


class VaultSecretProvider:
    """Serves ``vault:<path>#<key>`` references from HashiCorp Vault (see the module docstring).

    Without `settings`, they are read from the ``VAULT_*`` variables of `environ` (default:
    the process's environment) when the first reference is resolved, not before: the
    resolver builds the provider just to learn the scheme, and that must work anywhere.
    `clock` is a monotonic clock in seconds, for the cache and the token's lifetime.
    """

    scheme = SCHEME

    def __init__(
        self,
        settings: VaultSettings | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """A provider that has not talked to Vault yet."""
        self._settings = settings
        self._environ = environ
        self._clock = clock
        self._lock = threading.RLock()
        self._client: VaultClient | None = None
        self._generation = 0  # counts the tokens the client was given, to spot a renewal
        self._renew_at: float | None = None
        self._cache: SecretCache[tuple[str, int | None]] | None = None

    def __repr__(self) -> str:
        settings = self._settings
        if settings is None:
            return "VaultSecretProvider(settings from the environment, not read yet)"
        namespace = f", namespace={settings.namespace!r}" if settings.namespace else ""
        return f"VaultSecretProvider(url={settings.url!r}{namespace}, auth={settings.auth_method})"

    @property
    def settings(self) -> VaultSettings:
        """The settings in use (read from the environment on first use when none were given)."""
        with self._lock:
            if self._settings is None:
                try:
                    self._settings = VaultSettings.from_env(self._environ)
                except ConfigError as error:
                    raise SecretError(
                        f"the vault: secret provider is misconfigured: {error}"
                    ) from None
            return self._settings

    def resolve(self, reference: str) -> str:
        """The value of the key `reference` (the part after ``vault:``) names."""
        subject = f"secret {SCHEME}:{reference}"
        parsed = VaultReference.parse(reference)
        data = self._secret(parsed, subject)
        if parsed.key not in data:
            raise SecretError(f"{subject} not found (the secret has no such key)")
        return _text(data[parsed.key], subject)

    def invalidate(self) -> None:
        """Forget every cached secret: the next resolutions read Vault again."""
        with self._lock:
            if self._cache is not None:
                self._cache.clear()

    def close(self) -> None:
        """Close the connections to Vault; a later `resolve` opens new ones."""
        with self._lock:
            client, self._client = self._client, None
            self._renew_at = None
        if client is not None:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def _secret(self, reference: VaultReference, subject: str) -> Mapping[str, object]:
        cache = self._secret_cache()
        cached = cache.get(reference.cache_key)
        if cached is not None:
            logger.debug("vault: %s answered from the cache", reference.api_path)
            return cached
        client, generation = self._authenticated(subject)
        try:
            read = client.read(reference, subject)
        except AuthError:
            if not self._recover(client, generation, subject):
                raise
            client, _ = self._authenticated(subject)
            read = client.read(reference, subject)
        ttl = self.settings.cache_ttl_seconds
        if read.lease_seconds > 0:
            ttl = min(ttl, read.lease_seconds)
        cache.put(reference.cache_key, read.data, ttl)
        logger.debug("vault: %s read from Vault", reference.api_path)
        return read.data

    def _secret_cache(self) -> SecretCache[tuple[str, int | None]]:
        with self._lock:
            if self._cache is None:
                self._cache = SecretCache(self.settings.cache_max_entries, self._clock)
            return self._cache

    # -- authentication --------------------------------------------------------------------

    def _authenticated(self, subject: str) -> tuple[VaultClient, int]:
        """The client, holding a token it may use, and the number of that token."""
        with self._lock:
            settings = self.settings
            if self._client is None:
                self._client = VaultClient(settings)
                self._generation += 1
            client = self._client
            expired = self._renew_at is not None and self._clock() >= self._renew_at
            if settings.approle and (expired or not client.has_token):
                self._login(client, subject)
            elif not client.has_token:
                raise SecretError(
                    f"{subject}: no Vault token; set VAULT_TOKEN, or VAULT_ROLE_ID and "
                    "VAULT_SECRET_ID for AppRole"
                )
            return client, self._generation

    def _login(self, client: VaultClient, subject: str) -> None:
        """Log in with AppRole (the lock is held)."""
        settings = self.settings
        lease = client.login_approle(f"{subject}: AppRole login at auth/{settings.approle_mount}")
        self._generation += 1
        self._renew_at = self._clock() + lease * RENEW_AT if lease > 0 else None
        logger.info(
            "vault: logged in with AppRole at auth/%s (token lifetime %ss)",
            settings.approle_mount,
            int(lease),
        )

    def _recover(self, client: VaultClient, generation: int, subject: str) -> bool:
        """After a 403: whether a new token is in place, so that the read is worth repeating."""
        with self._lock:
            if self._generation != generation:
                return True  # another thread renewed the token meanwhile
            if client.token_accepted(subject):
                return False  # the token is fine: the policy denies this path
            if self._cache is not None:
                self._cache.clear()
            if not self.settings.approle:
                logger.warning("vault: the token was rejected and cannot be renewed (no AppRole)")
                return False
            logger.warning("vault: the token was rejected; logging in with AppRole again")
            self._login(client, subject)
            return True


def _text(value: object, subject: str) -> str:
    """A secret's value as text: strings as they are, other JSON values as compact JSON."""
    text = value if isinstance(value, str) else "" if value is None else _json(value)
    if not text:
        raise SecretError(f"{subject} is empty")
    return text


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
