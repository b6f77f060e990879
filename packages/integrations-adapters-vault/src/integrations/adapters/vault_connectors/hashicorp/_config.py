"""Where the Vault is and how to log in: `VaultSettings`, read as Vault's own tools read them.

The Vault CLI and agent take their settings from ``VAULT_*`` environment variables; a provider
found through the entry point has nothing else to go on, so `VaultSettings.from_env` reads the
same variables with the same meaning. Code that builds a provider itself passes the same
fields in Python.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from integrations.base import ConfigError, Secret

__all__ = ["ENVIRONMENT", "VaultSettings"]

DEFAULT_URL: Final = "https://127.0.0.1:8200"
"""The address the Vault CLI uses when ``VAULT_ADDR`` is not set."""

ENVIRONMENT: Final[Mapping[str, str]] = {
    "url": "VAULT_ADDR",
    "token": "VAULT_TOKEN",
    "namespace": "VAULT_NAMESPACE",
    "ca_cert": "VAULT_CACERT",
    "ca_path": "VAULT_CAPATH",
    "client_cert": "VAULT_CLIENT_CERT",
    "client_key": "VAULT_CLIENT_KEY",
    "skip_verify": "VAULT_SKIP_VERIFY",
    "timeout_seconds": "VAULT_CLIENT_TIMEOUT",
    "role_id": "VAULT_ROLE_ID",
    "secret_id": "VAULT_SECRET_ID",
    "approle_mount": "VAULT_APPROLE_MOUNT",
    "cache_ttl_seconds": "INTEGRATIONS_VAULT_CACHE_TTL",
    "cache_max_entries": "INTEGRATIONS_VAULT_CACHE_SIZE",
}
"""The environment variable each field is read from (the ``VAULT_*`` ones mean what they
mean to the Vault CLI; the cache's two are this provider's own)."""

# Go's strconv.ParseBool, which the Vault CLI uses for VAULT_SKIP_VERIFY.
_TRUE: Final = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE: Final = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# The durations VAULT_CLIENT_TIMEOUT takes: plain seconds, or a number with one Go unit.
_DURATION: Final = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?$")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_MOUNT: Final = re.compile(r"^[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)*$")


class VaultSettings(BaseModel):
    """How to reach one Vault and authenticate to it.

    Authentication: with `role_id` (and usually `secret_id`) the provider logs in with
    AppRole at ``auth/<approle_mount>/login`` whenever it has no valid token; `token` is used
    as it is until Vault rejects it. Both may be given: the token first, AppRole when the
    token is rejected. TLS: `skip_verify` turns verification off; else `ca_cert` (a PEM file)
    and then `ca_path` (a directory of hashed certificates) replace the system's CAs, as in
    the Vault CLI, where ``VAULT_CACERT`` wins over ``VAULT_CAPATH``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = DEFAULT_URL
    token: Secret | None = None
    namespace: str | None = None
    ca_cert: str | None = None
    ca_path: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    skip_verify: bool = False
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    role_id: str | None = None
    secret_id: Secret | None = None
    approle_mount: str = "approle"
    cache_ttl_seconds: float = Field(default=30.0, ge=0, le=3600)
    cache_max_entries: int = Field(default=256, ge=0, le=100_000)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")

    @field_validator("ca_cert", "ca_path", "client_cert", "client_key", "role_id")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @field_validator("namespace")
    @classmethod
    def _namespace_path(cls, value: str | None) -> str | None:
        """``team/`` and ``team`` name the same namespace, as in the Vault CLI."""
        return (value.strip().strip("/") or None) if value is not None else None

    @field_validator("approle_mount")
    @classmethod
    def _mount_path(cls, value: str) -> str:
        value = value.strip("/")
        if not _MOUNT.fullmatch(value) or any(part in (".", "..") for part in value.split("/")):
            raise ValueError("must be a mount path such as 'approle' or 'team/approle'")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> Self:
        if self.secret_id is not None and self.role_id is None:
            raise ValueError("secret_id (VAULT_SECRET_ID) needs role_id (VAULT_ROLE_ID)")
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key (VAULT_CLIENT_CERT/KEY) go together")
        return self

    @property
    def approle(self) -> bool:
        """Whether the provider can log in with AppRole."""
        return self.role_id is not None

    @property
    def verify(self) -> bool | str:
        """What the HTTP client verifies the server's certificate with."""
        if self.skip_verify:
            return False
        return self.ca_cert or self.ca_path or True

    @property
    def auth_method(self) -> Literal["token", "approle", "token+approle", "none"]:
        """How the provider authenticates, for logs and reprs."""
        if self.token is not None and self.approle:
            return "token+approle"
        if self.approle:
            return "approle"
        return "token" if self.token is not None else "none"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> VaultSettings:
        """Validate `data`; `ConfigError` names each bad field (never a secret's value)."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as error:
            problems = tuple(
                (".".join(str(part) for part in item["loc"]) or "settings", item["msg"])
                for item in error.errors(include_input=False, include_url=False)
            )
            detail = "; ".join(f"{field}: {reason}" for field, reason in problems)
            raise ConfigError(f"invalid VaultSettings: {detail}", problems) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> VaultSettings:
        """The settings the ``VAULT_*`` variables of `environ` (default: the process's) give.

        An empty variable counts as unset. `overrides` replace what the environment says.
        A variable that cannot be read raises `ConfigError` naming the variable.
        """
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, variable in ENVIRONMENT.items():
            raw = source.get(variable, "").strip()
            if raw:
                values[field] = _parse(field, variable, raw)
        values.update(overrides)
        return cls.from_mapping(values)


def _parse(field: str, variable: str, raw: str) -> object:
    """The value of one environment variable for `field`."""
    if field == "skip_verify":
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ConfigError(f"{variable} must be a boolean (true, false, 1, 0), not {raw!r}")
    if field == "timeout_seconds":
        found = _DURATION.fullmatch(raw)
        if found is None:
            raise ConfigError(f"{variable} must be seconds or a duration like 30s, not {raw!r}")
        return float(found["number"]) * _UNIT_SECONDS[found["unit"]]
    return raw
