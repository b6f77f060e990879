"""The error tree of the framework: every error the library raises derives from one root.

Our exception hierarchy::

    IntegrationsError
    ├── ConfigError
    ├── ContractError
    ├── ManifestError
    ├── SigningError
    ├── DiscoveryError
    │   ├── ConnectorNotFound
    │   ├── ConnectorConflict
    │   └── ConnectorUnavailable
    ├── LifecycleError
    ├── PolicyError
    │   ├── SecretReferenceDenied
    │   └── EgressDenied
    ├── AuditError
    ├── SecretError
    └── ConnectorError
        ├── AuthError
        │   └── AuthExpired
        ├── ConnectionFailed
        ├── NotFound
        ├── NotSupported
        ├── InvalidRequest
        │   └── ResyncRequired
        └── TransientError
            ├── RateLimited
            └── CircuitOpen

Messages never carry secret values: errors that concern a secret name its reference.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuditError",
    "AuthError",
    "AuthExpired",
    "CircuitOpen",
    "ConfigError",
    "ConnectionFailed",
    "ConnectorConflict",
    "ConnectorError",
    "ConnectorNotFound",
    "ConnectorUnavailable",
    "ContractError",
    "DiscoveryError",
    "EgressDenied",
    "IntegrationsError",
    "InvalidRequest",
    "LifecycleError",
    "ManifestError",
    "NotFound",
    "NotSupported",
    "PolicyError",
    "RateLimited",
    "ResyncRequired",
    "SecretError",
    "SecretReferenceDenied",
    "SigningError",
    "TransientError",
]


class IntegrationsError(Exception):
    """Base class of every error raised by the integrations framework."""


class ConfigError(IntegrationsError, ValueError):
    """A connector configuration failed validation; `problems` lists (field, reason) pairs."""

    def __init__(self, message: str, problems: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class ContractError(IntegrationsError, TypeError):
    """A class does not implement the connector contract it claims to implement."""


class ManifestError(IntegrationsError, ValueError):
    """A manifest could not be read or does not follow the manifest schema."""

    def __init__(self, message: str, source: str = "", pointer: str = "") -> None:
        super().__init__(message)
        self.source = source
        self.pointer = pointer


class SigningError(IntegrationsError):
    """A manifest could not be signed, a key could not be read, or a signed module changed."""


class DiscoveryError(IntegrationsError):
    """Discovering or loading connectors failed."""


class ConnectorNotFound(DiscoveryError, LookupError):
    """No connector is registered under the requested name."""


class ConnectorConflict(DiscoveryError):
    """Two sources declare a connector under the same name."""


class ConnectorUnavailable(DiscoveryError):
    """A connector is declared but cannot be used (broken, incompatible or refused)."""


class LifecycleError(IntegrationsError):
    """A lifecycle step was attempted in a state that does not allow it."""


class PolicyError(IntegrationsError):
    """A policy denied an operation; `reason` says why."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class SecretReferenceDenied(PolicyError):
    """A config from a tenant uses a secret reference the reference policy does not allow."""

    code: ClassVar[str] = "SECRET_REFERENCE_DENIED"

    def __init__(self, message: str, reason: str, *, scheme: str, field: str | None) -> None:
        super().__init__(message, reason)
        self.scheme = scheme
        self.field = field


class EgressDenied(PolicyError):
    """A config from a tenant names a network destination the egress policy refuses."""

    code: ClassVar[str] = "EGRESS_DENIED"


class AuditError(IntegrationsError):
    """An audit event that was required could not be written."""


class SecretError(IntegrationsError):
    """A secret reference could not be resolved; the message names the reference only."""


class ConnectorError(IntegrationsError):
    """An operation of a connector failed on the connector's or the backend's side."""


class AuthError(ConnectorError):
    """Authentication or authorisation with the external system failed."""


class AuthExpired(AuthError):
    """The token used by the operation has expired; re-authenticating may succeed."""


class ConnectionFailed(ConnectorError):
    """The connection to the external system could not be opened or was lost."""


class NotFound(ConnectorError, LookupError):
    """The external system has no such resource."""


class NotSupported(ConnectorError, NotImplementedError):
    """The connector does not offer the requested operation or feature."""


class InvalidRequest(ConnectorError, ValueError):
    """The external system rejected the request as malformed; retrying will not help."""


class ResyncRequired(InvalidRequest):
    """A sync state predates changes the store has compacted away; start a full sync."""


class TransientError(ConnectorError):
    """A temporary failure (network, 5xx, overload) after which a retry may succeed."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(TransientError):
    """The external system throttled the caller (HTTP 429); `retry_after` is in seconds."""


class CircuitOpen(TransientError):
    """The session's circuit breaker refused the call without reaching the connector."""
