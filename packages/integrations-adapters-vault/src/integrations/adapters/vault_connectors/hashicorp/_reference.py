"""What a ``vault:`` reference names: a Vault API read path, an optional version, and a key.

A reference is the path the Vault HTTP API reads (what ``vault read <path>`` takes) followed
by ``#<key>``: ``vault:secret/data/ai/openai#api_key`` reads ``GET /v1/secret/data/ai/openai``
from a KV version 2 engine mounted at ``secret``; ``vault:kv/ai/openai#api_key`` reads
``GET /v1/kv/ai/openai`` from a KV version 1 engine mounted at ``kv``. The path says which:
a KV v2 read always has a ``data`` segment after the mount, so the first ``data`` segment
after the first segment splits a v2 reference into mount and secret path, and a path without
one is a v1 read. ``?version=<n>`` after a v2 path reads that version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from integrations.base import SecretError

__all__ = ["VaultReference"]

SCHEME: Final = "vault"

_SEGMENT: Final = re.compile(r"^[^\x00-\x1f\x7f%\\?#]+$")
_VERSION: Final = re.compile(r"^version=(?P<version>[1-9][0-9]{0,9})$")


@dataclass(frozen=True, slots=True)
class VaultReference:
    """One parsed reference (the part after ``vault:``)."""

    mount: str
    path: str
    key: str
    kv_version: Literal[1, 2]
    version: int | None = None

    @property
    def api_path(self) -> str:
        """The path read, below ``/v1/``."""
        middle = "/data/" if self.kv_version == 2 else "/"
        return f"{self.mount}{middle}{self.path}"

    @property
    def cache_key(self) -> tuple[str, int | None]:
        """What identifies the secret read (every key of one secret shares one read)."""
        return (self.api_path, self.version)

    def __str__(self) -> str:
        version = "" if self.version is None else f"?version={self.version}"
        return f"{SCHEME}:{self.api_path}{version}#{self.key}"

    @classmethod
    def parse(cls, reference: str) -> VaultReference:
        """Parse `reference`; a malformed one raises `SecretError` saying what is wrong."""
        location, hash_sign, key = reference.partition("#")
        if not hash_sign or not key:
            raise _malformed(reference, "it names no key: add #<key> after the path")
        path, question, query = location.partition("?")
        version = None
        if question:
            found = _VERSION.fullmatch(query)
            if found is None:
                raise _malformed(reference, "the only query it takes is ?version=<n>, n >= 1")
            version = int(found["version"])
        segments = path.removeprefix("/").split("/")
        if len(segments) < 2:
            raise _malformed(reference, "a path is <mount>/<secret> or <mount>/data/<secret>")
        for segment in segments:
            if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
                raise _malformed(reference, f"the path has an invalid segment {segment!r}")
        if any(ord(char) < 0x20 or char == "\x7f" for char in key):
            raise _malformed(reference, "the key has a control character")
        if "data" in segments[1:-1]:
            split = segments.index("data", 1)
            mount, rest = segments[:split], segments[split + 1 :]
            return cls("/".join(mount), "/".join(rest), key, 2, version)
        if version is not None:
            raise _malformed(reference, "?version= reads a KV v2 path (<mount>/data/<secret>)")
        return cls(segments[0], "/".join(segments[1:]), key, 1)


def _malformed(reference: str, reason: str) -> SecretError:
    return SecretError(f"secret {SCHEME}:{reference} is not a valid Vault reference: {reason}")
