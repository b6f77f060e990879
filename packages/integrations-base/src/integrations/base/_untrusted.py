"""Configuration from tenants: where a config came from decides what it may reference and reach.

A config the platform wrote is trusted: its secret references resolve and its destinations
are used as given. A config a tenant wrote is wrapped in `UntrustedConfig` when the platform
opens a session with it; the session then checks every secret reference against the
`SecretReferencePolicy` before any is resolved, and every destination against the
`EgressPolicy` (see `_egress`) before the connector is called. Both denials are
`PolicyError`s, audited like any other.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from ._egress import EgressPolicy, HostResolver
from ._exceptions import SecretReferenceDenied
from ._secrets import LITERAL_SCHEME, SecretResolver, split_reference

__all__ = [
    "SecretReferencePolicy",
    "UntrustedConfig",
    "UntrustedPolicy",
]

_TENANT_IN_NAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?")
"""What a tenant id must look like to stand in a reference pattern (no ``/``, no ``*``)."""

_UNSAFE: Final = re.compile(r"[%\\\x00-\x1f\x7f]")
"""Characters a provider might decode into a path step (``%2e%2e``, ``\\``): never matched."""

_PATTERN: Final = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.\-]*):(?P<rest>.+)$", re.DOTALL)


@dataclass(frozen=True, slots=True, init=False)
class UntrustedConfig:
    """A connector configuration written by a tenant, not by the platform.

    Pass it as a session's `config` (``registry.open(name, config=UntrustedConfig(data),
    ...)``). It is deliberately not a mapping: it cannot be handed to code that would treat
    it as trusted, and the type checker says so. `origin` names where it came from, for
    people reading code and logs (for example ``"tenant settings form"``).
    """

    data: Mapping[str, Any]
    origin: str

    def __init__(self, data: Mapping[str, Any], *, origin: str = "tenant") -> None:
        """Keep a private deep copy of `data`: later changes to the input do not reach it."""
        if not isinstance(data, Mapping):
            raise TypeError("UntrustedConfig wraps the mapping a tenant wrote")
        object.__setattr__(self, "data", MappingProxyType(copy.deepcopy(dict(data))))
        object.__setattr__(self, "origin", origin)

    def __repr__(self) -> str:
        return f"UntrustedConfig(<{len(self.data)} fields>, origin={self.origin!r})"


class SecretReferencePolicy:
    """The secret references an untrusted config may use, as ``scheme:pattern`` strings.

    In a pattern, ``*`` matches any run of characters but ``/`` and ``?`` one such character;
    ``{tenant}`` stands for the session's tenant (a pattern naming it matches nothing when
    the session has no tenant, or one that is not a plain id). A reference whose name has
    a ``.`` or ``..`` path segment, a ``%``, a backslash or a control character never
    matches. ``literal:`` values are not references and are always allowed. No pattern, the
    default, allows no reference at all.
    """

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        """Allow the references matching any of `patterns`."""
        self.patterns = tuple(patterns)
        for pattern in self.patterns:
            if _PATTERN.match(pattern) is None:
                raise ValueError(f"secret reference pattern {pattern!r} is not scheme:pattern")

    def allows(self, scheme: str, name: str, tenant: str | None) -> bool:
        """Whether the reference ``scheme:name`` may be used by an untrusted config of `tenant`."""
        if scheme == LITERAL_SCHEME:
            return True
        if any(part in (".", "..") for part in name.split("/")) or _UNSAFE.search(name):
            return False
        return any(self._matches(pattern, scheme, name, tenant) for pattern in self.patterns)

    def __repr__(self) -> str:
        return f"SecretReferencePolicy({list(self.patterns)!r})"

    @staticmethod
    def _matches(pattern: str, scheme: str, name: str, tenant: str | None) -> bool:
        match = _PATTERN.match(pattern)
        if match is None or match["scheme"] != scheme:
            return False
        return _compile(match["rest"], tenant).fullmatch(name) is not None


def _compile(pattern: str, tenant: str | None) -> re.Pattern[str]:
    """A regular expression for one pattern: ``*`` and ``?`` stop at ``/``."""
    pieces: list[str] = []
    for index, part in enumerate(pattern.split("{tenant}")):
        if index:
            if tenant is None or _TENANT_IN_NAME.fullmatch(tenant) is None:
                return re.compile(r"(?!)")  # matches nothing
            pieces.append(re.escape(tenant))
        pieces.extend(
            "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in part
        )
    return re.compile("".join(pieces), re.DOTALL)


class ReferenceGate:
    """Stands in for the secret resolver while an untrusted config is validated.

    It resolves nothing: it checks each reference against the policy and raises
    `SecretReferenceDenied` for the first one refused. The session validates an untrusted
    config with the gate first, so no reference is resolved unless every one is allowed.
    """

    def __init__(
        self, policy: SecretReferencePolicy, secrets: SecretResolver, tenant: str | None
    ) -> None:
        self._policy = policy
        self._secrets = secrets
        self._tenant = tenant

    def resolve(self, value: str, field: str | None = None) -> str:
        """`value` unchanged when it is allowed; raise `SecretReferenceDenied` when not."""
        reference = split_reference(value)
        if reference is None:
            return value
        scheme, name = reference
        if scheme != LITERAL_SCHEME and not self._secrets.knows(scheme):
            return value  # not a reference: the resolver would pass it through as a value
        if self._policy.allows(scheme, name, self._tenant):
            return value
        where = f"field {field}" if field else "a secret field"
        tenant = self._tenant or "<none>"
        raise SecretReferenceDenied(
            f"{SecretReferenceDenied.code}: {where} uses a reference of scheme {scheme}: that "
            f"the secret reference policy does not allow for untrusted configs of tenant {tenant}",
            f"{where}: {scheme}: reference not allowed",
            scheme=scheme,
            field=field,
        )


@dataclass(frozen=True, slots=True)
class UntrustedPolicy:
    """What untrusted configs may do: the secret references they may use, where they may go.

    `resolver` answers the egress checks' name lookups (default: the system's).
    """

    secret_references: SecretReferencePolicy = field(default_factory=SecretReferencePolicy)
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    resolver: HostResolver | None = None
