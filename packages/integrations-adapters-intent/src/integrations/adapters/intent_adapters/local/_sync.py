"""Sync states of the intent store: where a sync stopped, and when it is too old to resume.

A sync state is the memory stores' kind: its cursor is URL-safe base64 of a small JSON object
holding the number of the last change the caller has seen in its tenant's change sequence
(``seq``) and, when a compaction had happened, the compaction horizon the full sync it
descends from started at (``floor``); its bookmarks show ``seq`` for people reading it.
Anything that does not decode to what this store issued raises `InvalidRequest`.

`check_horizon` is the rule (and the words) of the memory stores: a state after change N
cannot resume once a compaction has removed deletions numbered above both N and its floor,
since the caller would never learn of them; it gets `ResyncRequired` and starts again from
``SyncState()``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final, TypeGuard

from integrations.base import InvalidRequest, ResyncRequired, SyncState

__all__ = ["check_horizon", "decode_sync_state", "encode_sync_state"]

_VERSION: Final = 1
_KIND: Final = "sync"
_FOREIGN: Final = "the sync state was not issued by this intent store"


def encode_sync_state(seq: int, floor: int = 0) -> SyncState:
    """The state after the change numbered `seq` (0 before any change), with its full sync's
    starting horizon `floor` (0: no compaction had happened)."""
    position = {"seq": seq, "floor": floor} if floor else {"seq": seq}
    body = {"k": _KIND, "p": position, "q": "", "v": _VERSION}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return SyncState(cursor=cursor, bookmarks={"seq": seq})


def decode_sync_state(state: SyncState) -> tuple[int, int]:
    """The change number `state` resumes after and its floor; `InvalidRequest` when damaged."""
    if state.cursor is None:
        return 0, 0
    body = _decode(state.cursor)
    position = body.get("p")
    if body.get("k") != _KIND or not isinstance(position, dict):
        raise InvalidRequest(_FOREIGN)
    seq, floor = position.get("seq"), position.get("floor", 0)
    if not (_count(seq) and _count(floor)):
        raise InvalidRequest(_FOREIGN)
    return seq, floor


def check_horizon(after: int, floor: int, horizon: int) -> None:
    """`ResyncRequired` when deletions a sync state has not seen were compacted away.

    A full sync's start (`after` 0) is always served; any other state needs `after` or its
    `floor` at or above the tenant's horizon, read in the same snapshot as the changes.
    """
    if after > 0 and max(after, floor) < horizon:
        raise ResyncRequired(
            f"the sync state (after change {after}) is older than the store's compaction "
            f"horizon (change {horizon}): deletions it has not seen were removed for good; "
            "start a full sync from an empty state (SyncState())"
        )


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _decode(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidRequest("the sync state is damaged: it does not decode") from None
    if not isinstance(body, dict) or body.get("v") != _VERSION:
        raise InvalidRequest("the sync state is damaged or from an incompatible version")
    return body
