"""The one place where Vault's failures (hvac's and the HTTP client's) become the library's.

| Vault or the network says | Raised |
| --- | --- |
| 404: no such secret or version | `SecretError` (base's error for an unknown reference) |
| 400 on a read | `SecretError` (the reference is not one Vault can read) |
| 401, 403: permission denied | `AuthError` |
| 400, 403, 404 on the AppRole login | `AuthError` (wrong role or secret id, AppRole not mounted) |
| 429 | `RateLimited` |
| 503 (sealed, standby), 500, 501, 502, 412, other statuses | `TransientError` |
| connection refused or reset, timeout | `TransientError` |
| TLS handshake or certificate verification failed | `ConnectionFailed` |

Messages name the subject (the reference, or the login) and the status, never a value, and
never Vault's own error text except the one known phrase that says it is sealed. The
original exception is not chained (``from None``): it holds response bodies and URLs.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from integrations.base import (
    AuthError,
    ConnectionFailed,
    IntegrationsError,
    RateLimited,
    SecretError,
    TransientError,
)

__all__ = ["vault_error"]

_STATUS: Final = {
    "InvalidRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "InvalidPath": 404,
    "PreconditionFailed": 412,
    "RateLimitExceeded": 429,
    "InternalServerError": 500,
    "VaultNotInitialized": 501,
    "BadGateway": 502,
    "VaultDown": 503,
}


def vault_error(error: BaseException, subject: str, *, login: bool = False) -> IntegrationsError:
    """The library's error for `error`, raised while doing `subject` (a reference or a login).

    An error already in the library's tree is returned as it is.
    """
    if isinstance(error, IntegrationsError):
        return error
    hvac_errors: Any = importlib.import_module("hvac.exceptions")
    if isinstance(error, hvac_errors.VaultError):
        return _status_error(_status(error), subject, _sealed(error), login=login)
    requests_errors: Any = importlib.import_module("requests.exceptions")
    if isinstance(error, requests_errors.SSLError):
        return ConnectionFailed(f"{subject}: the TLS connection to Vault failed (certificate?)")
    if isinstance(error, requests_errors.Timeout):
        return TransientError(f"{subject}: Vault did not answer in time")
    if isinstance(error, requests_errors.RequestException):
        return TransientError(f"{subject}: Vault cannot be reached ({type(error).__name__})")
    return SecretError(f"{subject}: reading from Vault failed ({type(error).__name__})")


def _status(error: BaseException) -> int | None:
    for kind in type(error).__mro__:
        status = _STATUS.get(kind.__name__)
        if status is not None:
            return status
    return None


def _sealed(error: BaseException) -> bool:
    errors = getattr(error, "errors", None)
    return isinstance(errors, list) and any(
        isinstance(text, str) and "sealed" in text.lower() for text in errors
    )


def _status_error(
    status: int | None, subject: str, sealed: bool, *, login: bool
) -> IntegrationsError:
    code = f"HTTP {status}" if status is not None else "an unexpected status"
    if status in (401, 403):
        return AuthError(f"{subject}: permission denied ({code})")
    if login and status in (400, 404):
        return AuthError(f"{subject}: Vault refused the credentials or the mount ({code})")
    if status == 404:
        return SecretError(f"{subject} not found ({code})")
    if status == 400:
        return SecretError(f"{subject}: Vault refused the request ({code})")
    if status == 429:
        return RateLimited(f"{subject}: Vault is rate limiting requests ({code})")
    if sealed:
        return TransientError(f"{subject}: Vault is sealed ({code})")
    return TransientError(f"{subject}: Vault is unavailable ({code})")
