"""A small in-process cache of secrets read from Vault: a time to live, and a bounded size.

Sessions resolve their references each time they open, and a platform may open many a
second; without a cache every one of them would be a Vault read. A short time to live keeps
rotation visible (a changed secret is read again within the TTL) while the size bound keeps
a process that reads many paths from growing without end (least recently used goes first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["SecretCache"]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class _Entry:
    expires_at: float
    data: Mapping[str, object] = field(repr=False)


class SecretCache(Generic[K]):
    """Secrets by key until `expires_at` of the clock; at most `max_entries` of them.

    A `max_entries` or a TTL of 0 turns caching off. `clock` is a monotonic clock in
    seconds (tests pass their own).
    """

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SecretCache({len(self)} of {self._max_entries} entries)"

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: K) -> Mapping[str, object] | None:
        """The secret cached under `key`, unless it expired (then it is dropped)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if now >= entry.expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry.data

    def put(self, key: K, data: Mapping[str, object], ttl: float) -> None:
        """Keep `data` under `key` for `ttl` seconds, dropping the oldest entry when full."""
        if ttl <= 0 or self._max_entries <= 0:
            return
        entry = _Entry(self._clock() + ttl, data)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every secret (after an authentication failure: they were read by a token
        Vault no longer accepts)."""
        with self._lock:
            self._entries.clear()
