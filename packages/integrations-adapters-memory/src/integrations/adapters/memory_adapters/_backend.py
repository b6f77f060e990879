"""The storage side of a memory store: what a backend (SQLite, Redis, PostgreSQL) implements.

`MemoryStoreConnector` does everything the backends share (the tenant from the auth context,
checking pushes and queries, cursors of sync states, the lifecycle), so a backend only
stores and finds memories. Its rules:

- `write` applies a whole batch in one transaction (all or nothing). Every memory whose
  stored state changes gets the next numbers of its tenant's change sequence; numbers are
  handed out in commit order, so a sync that has seen number N never meets a later commit
  with a number at or below N. An upsert equal to the stored memory (text, tags and
  metadata) and a deletion of an absent or deleted memory change nothing and take no number.
- `query` returns one page of live memories matching the query, ranked by relevance when
  it has words and newest first (by creation) otherwise, with a cursor for the next page that
  neither repeats nor skips memories that stay unchanged while the caller pages.
- `changes` returns the tenant's memories whose latest change is numbered after `after`,
  tombstones included, in number order. When `after` > 0 and both `after` and `floor` are
  below the tenant's compaction horizon (the highest change number a compaction removed),
  some deletions the caller has not seen are gone for good: `changes` raises
  `ResyncRequired` instead of an incomplete list. `floor` is the horizon at the start of the
  full sync the caller's state descends from: a memory whose deletion was compacted before
  that full sync began was never shown to the caller, so its loss hides nothing. The check
  and the read come from one snapshot.
- `horizon` is the tenant's compaction horizon now (0 before any compaction).
- `compact` removes tombstones whose deletion is older than `older_than` (for one tenant,
  or for every tenant when `tenant` is None) in one transaction per tenant, and raises each
  affected tenant's horizon to the highest change number it removed.

Every call runs inside the backend's `errors()`, which maps the driver's exceptions into the
library's error tree.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from integrations.base import JsonObject, Record, ResyncRequired

from ._memory import StoredMemory, WriteBatch
from ._query import MemoryQuery

__all__ = ["MemoryBackend", "MemoryPage", "check_horizon"]


def check_horizon(after: int, floor: int, horizon: int) -> None:
    """`ResyncRequired` when deletions a sync state has not seen were compacted away.

    The rule of `MemoryBackend.changes`, applied by every backend to the horizon it read in the
    same snapshot as the changes: a full sync's start (`after` 0) is always served; any other
    state needs `after` or its `floor` at or above the horizon.
    """
    if after > 0 and max(after, floor) < horizon:
        raise ResyncRequired(
            f"the sync state (after change {after}) is older than the store's compaction "
            f"horizon (change {horizon}): deletions it has not seen were removed for good; "
            "start a full sync from an empty state (SyncState())"
        )


@dataclass(frozen=True, slots=True)
class MemoryPage:
    """One page of a fetch, as the contract returns it, and the cursor to the next (None on
    the last page). Backends build the records themselves: a text search can build them
    straight from what its reply holds."""

    records: tuple[Record, ...]
    next_cursor: str | None = None


class MemoryBackend(Protocol):
    """A memory store's storage: one per open connection, used under the connector's lock."""

    def errors(self) -> AbstractContextManager[None]:
        """A block in which the driver's exceptions become the library's errors."""
        ...

    def describe(self) -> JsonObject:
        """What the connection reports as `Connection.info` (never credentials)."""
        ...

    def write(self, tenant: str, batch: WriteBatch, now: datetime) -> None:
        """Apply `batch` for `tenant` in one transaction, stamping changes with `now`."""
        ...

    def query(self, tenant: str, query: MemoryQuery) -> MemoryPage:
        """One page of `tenant`'s live memories matching `query`."""
        ...

    def changes(
        self, tenant: str, after: int, limit: int, floor: int = 0
    ) -> tuple[StoredMemory, ...]:
        """Up to `limit` of `tenant`'s changes numbered after `after`, in number order."""
        ...

    def horizon(self, tenant: str) -> int:
        """The highest change number a compaction removed for `tenant` (0: none yet)."""
        ...

    def compact(self, older_than: datetime, tenant: str | None = None) -> int:
        """Remove tombstones deleted before `older_than`; the number removed."""
        ...

    def close(self) -> None:
        """Release the connection; called once, by revoke."""
        ...
