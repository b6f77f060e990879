"""How the PostgreSQL driver's exceptions become the library's errors: one place, one table.

The SQLSTATE class of a server error says what went wrong. Errors raised by libpq carry none:
while connecting, their (English) message tells an authentication failure from an unreachable
server (`ConnectionFailed`); during an operation they mean a pooled connection was lost, which
a retry on another connection may survive (`TransientError`; pushes are idempotent). Messages
never include the DSN: the password, when the driver's text holds it, is cut out, and the
driver's exception is not chained.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import psycopg
import psycopg_pool

from integrations.base import (
    AuthError,
    ConnectionFailed,
    ConnectorError,
    InvalidRequest,
    TransientError,
)

__all__ = ["postgres_errors"]

MASK: Final = "**********"

_TRANSIENT_STATES: Final = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available
        "57014",  # query_canceled (a statement timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down)
    }
)
_TRANSIENT_CLASSES: Final = ("53", "58")  # insufficient resources, system error
_AUTH_CLASSES: Final = ("28",)  # invalid authorization specification
_AUTH_STATES: Final = frozenset({"42501"})  # insufficient_privilege
_INVALID_CLASSES: Final = ("22",)  # data exception: a value PostgreSQL cannot store
_AUTH_MESSAGES: Final = (
    "authentication failed",
    "no pg_hba.conf entry",
    "password is required",
    "permission denied for database",
)


@contextmanager
def postgres_errors(secret: str | None, *, connecting: bool = False) -> Iterator[None]:
    """A block in which psycopg's exceptions become the library's; `secret` is scrubbed.

    `connecting` says the block opens the store, where a connection error is final.
    """
    try:
        yield
    except psycopg_pool.PoolTimeout as error:
        raise TransientError(
            f"PostgreSQL: no pooled connection became free in time ({_text(error, secret)})"
        ) from None
    except psycopg.Error as error:
        raise _mapped(error, secret, connecting) from None


def _mapped(error: psycopg.Error, secret: str | None, connecting: bool) -> ConnectorError:
    state = error.sqlstate
    text = _text(error, secret)
    if state is None:
        return _unstated(error, text, connecting)
    if state in _TRANSIENT_STATES or state.startswith(_TRANSIENT_CLASSES):
        return TransientError(f"PostgreSQL: temporary failure ({state}): {text}")
    if state.startswith("08"):
        return ConnectionFailed(f"PostgreSQL: the connection failed ({state}): {text}")
    if state in _AUTH_STATES or state.startswith(_AUTH_CLASSES):
        return AuthError(f"PostgreSQL refused the role ({state}): {text}")
    if state.startswith(_INVALID_CLASSES):
        return InvalidRequest(f"PostgreSQL cannot store a value ({state}): {text}")
    return ConnectorError(f"PostgreSQL error ({state}): {text}")


def _unstated(error: psycopg.Error, text: str, connecting: bool) -> ConnectorError:
    """An error without SQLSTATE: raised by libpq (connecting, or a connection lost) or psycopg."""
    if not isinstance(error, psycopg.OperationalError):
        return ConnectorError(f"PostgreSQL driver error: {text}")
    if not connecting:
        return TransientError(f"PostgreSQL: the connection was lost: {text}")
    if "FATAL" in text and (
        any(marker in text for marker in _AUTH_MESSAGES) or _unknown_role(text)
    ):
        return AuthError(f"PostgreSQL refused the connection: {text}")
    return ConnectionFailed(f"PostgreSQL: cannot reach the server: {text}")


def _unknown_role(text: str) -> bool:
    return 'role "' in text and "does not exist" in text


def _text(error: BaseException, secret: str | None) -> str:
    """The error's message on one line, without `secret`."""
    text = " ".join(str(error).split())
    if secret:
        text = text.replace(secret, MASK)
    return text or type(error).__name__
