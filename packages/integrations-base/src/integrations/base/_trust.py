"""Trust: which publisher keys an application accepts, and whether signatures are required.

Trust comes from the application (code, governance settings, ``INTEGRATIONS_TRUST``), never
from a manifest. Public keys are read here without importing the crypto library, so that an
application that sets trust but whose manifests need no verification pays nothing for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ._exceptions import ConfigError
from ._models import describe_validation_error

__all__ = [
    "KEY_ID_PATTERN",
    "TRUST_ENV",
    "TrustPolicy",
    "TrustSettings",
    "decode_public_key",
    "encode_public_key",
]

TRUST_ENV: Final = "INTEGRATIONS_TRUST"
"""Environment variable: the trust settings as JSON (the `TrustSettings` fields)."""

KEY_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$"

_ED25519_SPKI_PREFIX: Final = bytes.fromhex("302a300506032b6570032100")
"""DER of an Ed25519 SubjectPublicKeyInfo up to the key: the whole structure is 44 bytes."""

_PEM = re.compile(r"-----BEGIN PUBLIC KEY-----(.*?)-----END PUBLIC KEY-----", re.DOTALL)


def decode_public_key(text: str) -> bytes:
    """The 32 raw bytes of an Ed25519 public key given as base64 (raw) or PEM.

    Raises `ValueError` naming the problem. PEM is the SubjectPublicKeyInfo form
    (``-----BEGIN PUBLIC KEY-----``); its DER is fixed for Ed25519, so it is checked here
    byte for byte rather than parsed by the crypto library.
    """
    match = _PEM.search(text)
    body = match.group(1) if match else text
    try:
        raw = base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a public key is base64 or PEM") from None
    if match:
        if len(raw) != 44 or not raw.startswith(_ED25519_SPKI_PREFIX):
            raise ValueError("the PEM public key is not an Ed25519 key")
        raw = raw[len(_ED25519_SPKI_PREFIX) :]
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key has 32 bytes, this one has {len(raw)}")
    return raw


def encode_public_key(raw: bytes) -> str:
    """The form the trust settings take: base64 of the 32 raw bytes."""
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class TrustPolicy:
    """The publisher keys the registry accepts and when a manifest must be signed.

    `keys` maps key ids to raw Ed25519 public keys; a key id in `revoked` is refused even
    when it is also in `keys`. A manifest entry must verify when its ``signing.required`` is
    true or when `require_signed_manifests` is set; other entries are not checked. The
    default trusts nothing and requires nothing, which keeps unsigned manifests usable.
    """

    keys: Mapping[str, bytes] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()
    require_signed_manifests: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        object.__setattr__(self, "revoked", frozenset(self.revoked))
        for key_id, raw in self.keys.items():
            if len(raw) != 32:
                raise ConfigError(f"trusted key {key_id!r} is not a 32-byte Ed25519 public key")

    def requires(self, entry_required: bool) -> bool:
        """Whether an entry (whose own ``signing.required`` is `entry_required`) must verify."""
        return entry_required or self.require_signed_manifests

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> TrustPolicy:
        """The policy ``INTEGRATIONS_TRUST`` describes (JSON), or the default when unset."""
        raw = (os.environ if environ is None else environ).get(TRUST_ENV)
        if raw is None or not raw.strip():
            return cls()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{TRUST_ENV}: not valid JSON ({error.msg})") from None
        return TrustSettings.from_mapping(data).build()


class TrustSettings(BaseModel):
    """Trust as operators write it: ``[governance.trust]`` in TOML, ``INTEGRATIONS_TRUST``.

    `keys` maps a key id to its public key, base64 (what ``integrations keys generate``
    prints) or PEM; `revoked` lists key ids never to accept.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    keys: dict[str, str] = {}
    revoked: tuple[str, ...] = ()
    require_signed_manifests: bool = False

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key_id, text in value.items():
            if not re.match(KEY_ID_PATTERN, key_id):
                raise ValueError(f"key id {key_id!r} does not match {KEY_ID_PATTERN}")
            try:
                decode_public_key(text)
            except ValueError as error:
                raise ValueError(f"key {key_id!r}: {error}") from None
        return value

    @classmethod
    def from_mapping(cls, data: object) -> TrustSettings:
        """Validate settings, raising `ConfigError` naming the bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = describe_validation_error(error)
            detail = "; ".join(f"{name}: {reason}" for name, reason in problems)
            raise ConfigError(f"invalid trust settings: {detail}", problems) from None

    def build(self) -> TrustPolicy:
        """The policy these settings describe."""
        return TrustPolicy(
            keys={key_id: decode_public_key(text) for key_id, text in self.keys.items()},
            revoked=frozenset(self.revoked),
            require_signed_manifests=self.require_signed_manifests,
        )
