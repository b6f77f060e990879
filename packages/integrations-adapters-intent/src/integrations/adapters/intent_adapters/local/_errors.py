"""The one place where sqlite3's exceptions become the library's errors, for the intent store."""

from __future__ import annotations

import sqlite3
from types import TracebackType
from typing import Final

from integrations.base import ConnectionFailed, ConnectorError, InvalidRequest, TransientError

__all__ = ["BUSY_CODES", "SQLiteErrors", "sqlite_errors"]

BUSY_CODES: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_UNREACHABLE: Final = frozenset({3, 8, 10, 14})  # SQLITE_PERM, _READONLY, _IOERR, _CANTOPEN
_DAMAGED: Final = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def sqlite_errors(path: str) -> SQLiteErrors:
    """A context manager that maps sqlite3's exceptions (see `SQLiteErrors`), naming `path`."""
    return SQLiteErrors(path)


class SQLiteErrors:
    """Map sqlite3's exceptions into the library's errors, naming the file `path`.

    A busy or locked file is transient (another process held the write lock past the busy
    timeout, so the session may retry); a file that cannot be opened, read or written is a
    failed connection; a damaged file is a connector error that says so; anything else is a
    connector error. Text SQLite cannot encode (lone surrogates) is an invalid request.

    A plain context manager rather than a generator one: it wraps every call of the store,
    an alignment check included, and holds no state, so one instance serves every call.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            return
        if isinstance(error, sqlite3.Error):
            raise _mapped(error, self.path) from error
        if isinstance(error, UnicodeEncodeError):  # sqlite3 stores UTF-8: no lone surrogates
            raise InvalidRequest(
                "a filter or id holds characters that are not valid Unicode "
                f"({error.reason}): SQLite cannot store or compare it"
            ) from error


def _mapped(error: sqlite3.Error, path: str) -> ConnectorError:
    code = getattr(error, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in BUSY_CODES:
        return TransientError(
            f"the intent store {path} is busy: another connection held its lock past the busy "
            f"timeout ({error})"
        )
    if primary in _UNREACHABLE:
        return ConnectionFailed(f"the intent store {path} cannot be opened or written: {error}")
    if primary in _DAMAGED:
        return ConnectorError(
            f"the intent store {path} is damaged or is not a SQLite database ({error}); "
            "restore it from a backup or point the connector at another file"
        )
    return ConnectorError(f"the intent store {path} failed: {error}")
