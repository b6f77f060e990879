"""Opaque cursors and sync states: what a store needs to resume, sealed against misuse.

A fetch cursor is bound to the query that produced it (its fingerprint): offered with another
query it is refused rather than quietly paging the wrong results. A sync state carries the
last change sequence number the caller has seen and, once a full sync started after a
compaction, that compaction's horizon (the floor below which nothing the caller saw was
removed). Both are URL-safe base64 of a small JSON
object; anything that does not decode to what was issued raises `InvalidRequest`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any, Final, TypeGuard

from integrations.base import InvalidRequest, SyncState

from ._memory import canonical_json

__all__ = [
    "decode_cursor",
    "decode_sync_state",
    "encode_cursor",
    "encode_sync_state",
    "pack_numbers",
    "sync_floor",
    "unpack_numbers",
]

_VERSION: Final = 1
_SYNC_KIND: Final = "sync"


def encode_cursor(kind: str, fingerprint: str, **position: Any) -> str:
    """A cursor of `kind` for the query `fingerprint`, holding `position` (JSON values)."""
    body = {"v": _VERSION, "k": kind, "q": fingerprint, "p": position}
    return base64.urlsafe_b64encode(canonical_json(body).encode()).decode().rstrip("=")


def decode_cursor(
    cursor: str, *, fingerprint: str, kinds: frozenset[str]
) -> tuple[str, dict[str, Any]]:
    """The kind and position a cursor holds; `InvalidRequest` when it is damaged or foreign."""
    body = _decode(cursor, "cursor")
    kind, position = body.get("k"), body.get("p")
    if kind not in kinds or not isinstance(position, dict):
        raise InvalidRequest("the cursor was not issued by this memory store")
    if body.get("q") != fingerprint:
        raise InvalidRequest(
            "the cursor belongs to another query: page with the text and filters that issued it"
        )
    return str(kind), position


def encode_sync_state(seq: int, floor: int = 0) -> SyncState:
    """The state after the change numbered `seq` (0 before any change).

    `floor` is the compaction horizon the full sync this state descends from started at: the
    caller has never seen a memory whose deletion numbered at or below it was compacted.
    """
    position = {"seq": seq, "floor": floor} if floor else {"seq": seq}
    return SyncState(cursor=encode_cursor(_SYNC_KIND, "", **position), bookmarks={"seq": seq})


def decode_sync_state(state: SyncState) -> int:
    """The change sequence number `state` resumes after; `InvalidRequest` when it is damaged."""
    return _sync_position(state)[0]


def sync_floor(state: SyncState) -> int:
    """The compaction horizon the state's full sync started at (0 when none was known)."""
    return _sync_position(state)[1]


def _sync_position(state: SyncState) -> tuple[int, int]:
    if state.cursor is None:
        return 0, 0
    body = _decode(state.cursor, "sync state")
    position = body.get("p")
    if body.get("k") != _SYNC_KIND or not isinstance(position, dict):
        raise InvalidRequest("the sync state was not issued by this memory store")
    seq, floor = position.get("seq"), position.get("floor", 0)
    if not (_count(seq) and _count(floor)):
        raise InvalidRequest("the sync state was not issued by this memory store")
    return seq, floor


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _decode(token: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest(f"the {what} is damaged: it does not decode") from None
    if not isinstance(body, dict) or body.get("v") != _VERSION:
        raise InvalidRequest(f"the {what} is damaged or from an incompatible version")
    return body


def pack_numbers(numbers: Iterable[int]) -> str:
    """Non-negative integers as a compact string: sorted, delta-encoded varints, base64.

    Ranked cursors carry the memories a pagination has returned (by creation order) this way,
    about one to two bytes each.
    """
    out = bytearray()
    previous = 0
    for number in sorted(set(numbers)):
        delta, previous = number - previous, number
        while delta >= 0x80:
            out.append((delta & 0x7F) | 0x80)
            delta >>= 7
        out.append(delta)
    return base64.urlsafe_b64encode(bytes(out)).decode().rstrip("=")


def unpack_numbers(packed: object) -> list[int]:
    """The integers `pack_numbers` packed; `InvalidRequest` when `packed` is damaged."""
    if not isinstance(packed, str):
        raise InvalidRequest("the cursor is damaged: its positions do not decode")
    try:
        raw = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4))
    except (binascii.Error, ValueError):
        raise InvalidRequest("the cursor is damaged: its positions do not decode") from None
    numbers: list[int] = []
    value = shift = previous = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                raise InvalidRequest("the cursor is damaged: its positions do not decode")
            continue
        previous += value
        numbers.append(previous)
        value = shift = 0
    if shift:
        raise InvalidRequest("the cursor is damaged: its positions do not decode")
    return numbers
