"""The in-process backend the mock connector talks to: named stores, partitioned by tenant.

A store keeps, per tenant, every version of every record in a change log numbered 1, 2, 3...
That single log serves all three data operations: push appends to it, sync reads it from a
sequence number on, and fetch reads the records as they were at a sequence number (a snapshot),
which is what keeps pagination free of duplicates and gaps while writes happen between pages.
"""

from __future__ import annotations

import copy
import hmac
import secrets
import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from integrations.base import (
    AuthError,
    FetchQuery,
    FetchResult,
    InvalidRequest,
    PushPayload,
    PushResult,
    Record,
    Rejection,
    Secret,
    SyncResult,
    SyncState,
)

from ._cursors import (
    FetchPosition,
    SyncPosition,
    decode_cursor,
    encode_cursor,
    query_fingerprint,
)
from ._matching import data_equal, matches, order_key

__all__ = ["MockStore", "RecordCheck", "get_store", "reset_stores"]

RecordCheck = Callable[[Record], str | None]
"""A validation hook for push: the reason to reject a record, or None to accept it."""

Tenant = str | None


class _History:
    """Every version of one record, with the sequence number that created each."""

    __slots__ = ("sequences", "versions")

    def __init__(self) -> None:
        self.sequences: list[int] = []
        self.versions: list[Record] = []

    def at(self, snapshot: int) -> Record | None:
        """The version current at `snapshot` (a tombstone when deleted), None before creation."""
        position = bisect_right(self.sequences, snapshot)
        return self.versions[position - 1] if position else None


class _Partition:
    """One tenant's data in one store.

    `epoch` is random per partition and goes into every cursor, so a cursor from another
    tenant, another store, or from before `clear()` is recognised and refused.
    """

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(8)
        self.changes: list[Record] = []
        self.histories: dict[str, _History] = {}
        self.push_results: dict[str, PushResult] = {}

    @property
    def sequence(self) -> int:
        return len(self.changes)

    def current(self, record_id: str) -> Record | None:
        """The live version of `record_id`, None when absent or deleted."""
        history = self.histories.get(record_id)
        latest = history.versions[-1] if history else None
        return None if latest is None or latest.deleted else latest

    def append(self, record: Record) -> None:
        self.changes.append(record)
        history = self.histories.setdefault(record.id, _History())
        history.sequences.append(self.sequence)
        history.versions.append(record)

    def live_at(self, snapshot: int) -> list[Record]:
        versions = (history.at(snapshot) for history in self.histories.values())
        return [record for record in versions if record is not None and not record.deleted]


class MockStore:
    """A named in-memory backend shared by every mock connector configured with its name.

    Tests may use it directly to inspect what connectors wrote (`records`, `changes`) or to
    make the backend demand an API key (`require_api_key`). All methods are thread-safe.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.RLock()
        self._partitions: dict[Tenant, _Partition] = {}
        self._last_stamp: datetime | None = None
        self._api_key: Secret | None = None

    def __repr__(self) -> str:
        return f"MockStore(name={self.name!r})"

    # -- the backend's API, used by MockConnector ------------------------------------------

    def push(
        self, tenant: Tenant, payload: PushPayload, *, check: RecordCheck | None = None
    ) -> PushResult:
        """Upsert and delete the payload's records for `tenant`.

        A payload whose idempotency key this tenant used before is not applied again: the
        first push's result is returned. Records that repeat an id within the payload, or that
        `check` refuses, are rejected without affecting the others.
        """
        with self._lock:
            partition = self._partition(tenant)
            key = payload.idempotency_key
            if key is not None and key in partition.push_results:
                return partition.push_results[key]
            result = self._apply(partition, payload.records, check)
            if key is not None:
                partition.push_results[key] = result
            return result

    def fetch(self, tenant: Tenant, query: FetchQuery, *, page_size_max: int) -> FetchResult:
        """One page of `tenant`'s live records matching `query`, newest first.

        Every page of one pagination reads the snapshot taken by its first page.
        """
        fingerprint = query_fingerprint(query)
        with self._lock:
            partition = self._partition(tenant)
            position = _fetch_position(partition, query.cursor, fingerprint)
            snapshot = partition.sequence if position is None else position.snapshot
            rows = [record for record in partition.live_at(snapshot) if matches(record, query)]
        rows.sort(key=order_key, reverse=True)
        if position is not None:
            boundary = (position.updated_at, position.id)
            rows = [record for record in rows if order_key(record) < boundary]
        limit = min(query.limit, page_size_max)
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = encode_cursor(
                FetchPosition(
                    epoch=partition.epoch,
                    snapshot=snapshot,
                    updated_at=order_key(last)[0],
                    id=last.id,
                    query=fingerprint,
                )
            )
        return FetchResult(records=_copies(page), next_cursor=next_cursor)

    def sync(self, tenant: Tenant, state: SyncState, *, limit: int) -> SyncResult:
        """Up to `limit` changes of `tenant` after `state`, in sequence order."""
        with self._lock:
            partition = self._partition(tenant)
            start = _sync_start(partition, state.cursor)
            batch = partition.changes[start : start + limit]
            end = start + len(batch)
            has_more = end < partition.sequence
            cursor = encode_cursor(SyncPosition(epoch=partition.epoch, sequence=end))
        return SyncResult(
            state=SyncState(cursor=cursor, bookmarks=copy.deepcopy(state.bookmarks)),
            changes=_copies(batch),
            has_more=has_more,
        )

    def check_api_key(self, presented: Secret | None) -> None:
        """Raise `AuthError` unless `presented` is the key this store requires (if any)."""
        with self._lock:
            required = self._api_key
        if required is None:
            return
        if presented is None or not hmac.compare_digest(
            presented.reveal().encode(), required.reveal().encode()
        ):
            raise AuthError(f"mock store {self.name!r} rejected the API key")

    # -- inspection and control, for tests --------------------------------------------------

    def require_api_key(self, key: Secret | str | None) -> None:
        """Make auth and connect demand `key` as the config's `api_key` (None lifts it)."""
        with self._lock:
            self._api_key = Secret(key) if isinstance(key, str) else key

    def records(self, tenant: Tenant = None) -> tuple[Record, ...]:
        """`tenant`'s live records now, newest first."""
        with self._lock:
            partition = self._partitions.get(tenant)
            rows = partition.live_at(partition.sequence) if partition else []
        return _copies(sorted(rows, key=order_key, reverse=True))

    def changes(self, tenant: Tenant = None) -> tuple[Record, ...]:
        """`tenant`'s whole change log (upserts and tombstones), oldest first."""
        with self._lock:
            partition = self._partitions.get(tenant)
            return _copies(partition.changes if partition else [])

    def sequence(self, tenant: Tenant = None) -> int:
        """The sequence number of `tenant`'s latest change (0 when nothing changed yet)."""
        with self._lock:
            partition = self._partitions.get(tenant)
            return partition.sequence if partition else 0

    def tenants(self) -> frozenset[Tenant]:
        """Every tenant that has touched this store."""
        with self._lock:
            return frozenset(self._partitions)

    def clear(self) -> None:
        """Drop all data, idempotency keys and the API-key requirement; old cursors go stale."""
        with self._lock:
            self._partitions.clear()
            self._api_key = None

    # -- internals ---------------------------------------------------------------------------

    def _partition(self, tenant: Tenant) -> _Partition:
        partition = self._partitions.get(tenant)
        if partition is None:
            partition = self._partitions[tenant] = _Partition()
        return partition

    def _apply(
        self, partition: _Partition, records: Sequence[Record], check: RecordCheck | None
    ) -> PushResult:
        counts = Counter(record.id for record in records)
        accepted: list[str] = []
        rejected: list[Rejection] = []
        for record in records:
            if counts[record.id] > 1:
                if not any(rejection.id == record.id for rejection in rejected):
                    reason = f"id appears {counts[record.id]} times in one payload"
                    rejected.append(Rejection(id=record.id, reason=reason))
                continue
            problem = check(record) if check is not None else None
            if problem is not None:
                rejected.append(Rejection(id=record.id, reason=problem))
                continue
            self._write(partition, record)
            accepted.append(record.id)
        return PushResult(accepted=tuple(accepted), rejected=tuple(rejected))

    def _write(self, partition: _Partition, record: Record) -> None:
        """Apply one record; writing what is already stored adds no change."""
        current = partition.current(record.id)
        if record.deleted:
            if current is not None:
                partition.append(Record(id=record.id, deleted=True, updated_at=self._stamp()))
            return
        unchanged = (
            current is not None
            and data_equal(current.data, record.data)
            and (record.updated_at is None or record.updated_at == current.updated_at)
        )
        if not unchanged:
            partition.append(
                Record(
                    id=record.id,
                    data=copy.deepcopy(record.data),
                    updated_at=record.updated_at or self._stamp(),
                )
            )

    def _stamp(self) -> datetime:
        """The store's clock: UTC now, strictly increasing so write order is newest-first order."""
        now = datetime.now(UTC)
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(microseconds=1)
        self._last_stamp = now
        return now


def _fetch_position(
    partition: _Partition, cursor: str | None, fingerprint: str
) -> FetchPosition | None:
    if cursor is None:
        return None
    position = decode_cursor(cursor, FetchPosition)
    if position.epoch != partition.epoch or position.snapshot > partition.sequence:
        raise InvalidRequest("cursor belongs to another tenant or store, or the store was cleared")
    if position.query != fingerprint:
        raise InvalidRequest("cursor was issued for a different query (text or filters changed)")
    return position


def _sync_start(partition: _Partition, cursor: str | None) -> int:
    if cursor is None:
        return 0
    position = decode_cursor(cursor, SyncPosition)
    if position.epoch != partition.epoch or position.sequence > partition.sequence:
        raise InvalidRequest(
            "sync state belongs to another tenant or store, or the store was cleared; "
            "start again from SyncState()"
        )
    return position.sequence


def _copies(records: Sequence[Record]) -> tuple[Record, ...]:
    """Deep copies, so callers mutating a returned record's data cannot alter the store."""
    return tuple(record.model_copy(deep=True) for record in records)


_STORES: dict[str, MockStore] = {}
_STORES_LOCK = threading.Lock()


def get_store(name: str = "default") -> MockStore:
    """The process-wide store called `name`, created on first use."""
    with _STORES_LOCK:
        store = _STORES.get(name)
        if store is None:
            store = _STORES[name] = MockStore(name)
        return store


def reset_stores() -> None:
    """Clear every store in place (references held by tests stay valid)."""
    with _STORES_LOCK:
        stores = list(_STORES.values())
    for store in stores:
        store.clear()
