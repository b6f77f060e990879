"""Opaque cursors: urlsafe base64 of a small versioned JSON document.

Callers must treat cursors as opaque; the mock still validates everything it decodes, so a
damaged or foreign cursor is an `InvalidRequest`, never a silent skip or a crash.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from integrations.base import FetchQuery, InvalidRequest

__all__ = [
    "FetchPosition",
    "SyncPosition",
    "decode_cursor",
    "encode_cursor",
    "query_fingerprint",
]

_PositionT = TypeVar("_PositionT", bound="_Position")


class _Position(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    epoch: str = Field(min_length=1)


class FetchPosition(_Position):
    """Where a fetch page ended: the snapshot it reads and the last record it returned."""

    kind: Literal["fetch"] = "fetch"
    snapshot: int = Field(ge=0)
    updated_at: AwareDatetime
    id: str
    query: str


class SyncPosition(_Position):
    """Where a sync stopped: the last change-log sequence it returned."""

    kind: Literal["sync"] = "sync"
    sequence: int = Field(ge=0)


def encode_cursor(position: _Position) -> str:
    """Encode a position as an opaque, URL-safe string."""
    return base64.urlsafe_b64encode(position.model_dump_json().encode()).decode().rstrip("=")


def decode_cursor(cursor: str, model: type[_PositionT]) -> _PositionT:
    """Decode a cursor made by `encode_cursor`, raising `InvalidRequest` for anything else."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        return model.model_validate_json(raw)
    except ValueError:
        # binascii.Error, UnicodeError and pydantic's ValidationError are all ValueErrors.
        raise InvalidRequest("malformed cursor: pass back a cursor the mock returned") from None


def query_fingerprint(query: FetchQuery) -> str:
    """A short digest of what a query selects, so a cursor cannot be reused with another one."""
    selection = json.dumps({"text": query.text, "filters": query.filters}, sort_keys=True)
    return hashlib.sha256(selection.encode()).hexdigest()[:16]
