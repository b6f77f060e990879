"""Secrets by reference: config fields name where a secret lives, resolved at connect time.

A `Secret` field of a config model may hold a reference instead of a value: ``env:NAME``
(an environment variable), ``file:/path`` (a file's content, without its final newline), or
``<scheme>:<rest>`` served by a `SecretProvider` registered in code or through the
`integrations.secret_providers` entry-point group. ``literal:<value>`` passes a value that
would otherwise read as a reference. Errors name the reference, never a value.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from ._exceptions import SecretError

__all__ = [
    "EnvSecretProvider",
    "FileSecretProvider",
    "ReferenceResolver",
    "SecretProvider",
    "SecretResolver",
    "split_reference",
]

_REFERENCE = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.\-]*):(?P<rest>.*)$", re.DOTALL)
LITERAL_SCHEME = "literal"


def split_reference(value: str) -> tuple[str, str] | None:
    """The scheme and name of `value` when it has the shape of a reference (``scheme:name``)."""
    match = _REFERENCE.match(value)
    return None if match is None else (match["scheme"], match["rest"])


@runtime_checkable
class SecretProvider(Protocol):
    """Serves the secrets of one reference scheme (``vault:``, ``aws-sm:`` ...)."""

    scheme: str

    def resolve(self, reference: str) -> str:
        """The secret value `reference` (the part after ``scheme:``) names.

        Raise `SecretError` naming the reference when there is no such secret.
        """
        ...


class ReferenceResolver(Protocol):
    """What turns the values of `Secret` fields into secrets while a config is validated."""

    def resolve(self, value: str, field: str | None = None) -> str:
        """The secret `value` names, or `value` itself when it is not a reference."""
        ...


class EnvSecretProvider:
    """``env:NAME`` — the value of an environment variable."""

    scheme = "env"

    def resolve(self, reference: str) -> str:
        """The environment variable `reference`; missing or empty is an error."""
        value = os.environ.get(reference)
        if not value:
            raise SecretError(f"secret env:{reference} is not set")
        return value


class FileSecretProvider:
    """``file:/path`` — a file's content, as mounted by Docker or Kubernetes secrets."""

    scheme = "file"

    def resolve(self, reference: str) -> str:
        """The content of file `reference` without its final newline."""
        try:
            text = Path(reference).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise SecretError(f"secret file:{reference} cannot be read: {reason}") from None
        value = text.removesuffix("\n").removesuffix("\r")
        if not value:
            raise SecretError(f"secret file:{reference} is empty")
        return value


class SecretResolver:
    """Resolves references with the providers it knows, loading plug-in providers on demand."""

    def __init__(
        self,
        providers: Mapping[str, SecretProvider] | None = None,
        *,
        entry_points: bool = True,
    ) -> None:
        """Create a resolver with `env` and `file` plus `providers` (by scheme).

        With `entry_points`, a scheme not known yet is looked up once in the
        `integrations.secret_providers` group (entry point name = scheme).
        """
        self._providers: dict[str, SecretProvider] = {
            "env": EnvSecretProvider(),
            "file": FileSecretProvider(),
            **(providers or {}),
        }
        self._entry_points = entry_points
        self._lock = threading.Lock()

    def add(self, provider: SecretProvider) -> None:
        """Serve `provider.scheme` with `provider`."""
        with self._lock:
            self._providers[provider.scheme] = provider

    def knows(self, scheme: str) -> bool:
        """Whether values of `scheme` are references this resolver would resolve."""
        return scheme == LITERAL_SCHEME or self._provider(scheme) is not None

    def resolve(self, value: str, field: str | None = None) -> str:
        """The secret `value` names when it is a reference with a known scheme, else `value`.

        `field` names the config field the value came from (for resolvers that care).
        """
        reference = split_reference(value)
        if reference is None:
            return value
        scheme, rest = reference
        if scheme == LITERAL_SCHEME:
            return rest
        provider = self._provider(scheme)
        return value if provider is None else provider.resolve(rest)

    def _provider(self, scheme: str) -> SecretProvider | None:
        with self._lock:
            provider = self._providers.get(scheme)
        if provider is None and self._entry_points:
            provider = self._load_plugin(scheme)
        return provider

    def _load_plugin(self, scheme: str) -> SecretProvider | None:
        from ._discovery import SECRET_PROVIDER_GROUP, entry_points_by_group

        for entry_point in entry_points_by_group()[SECRET_PROVIDER_GROUP]:
            if entry_point.name != scheme:
                continue
            try:
                factory = entry_point.load()
                provider = factory()
            except Exception as error:  # a broken plug-in must not reveal or crash the caller
                raise SecretError(
                    f"secret provider {scheme!r} failed to load: {type(error).__name__}"
                ) from None
            if not isinstance(provider, SecretProvider):
                raise SecretError(f"secret provider {scheme!r} does not implement SecretProvider")
            self.add(provider)
            return provider
        return None
