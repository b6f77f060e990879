"""Helpers the memory stores' behaviour tests share: memories to push, and reading everything.

A plain module next to the tests (imported after putting this directory on `sys.path`), so
the SQLite, Redis and PostgreSQL tests say the same thing the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.base import (
    NO_RETRY,
    FetchQuery,
    Governance,
    MemoryAuditSink,
    PushPayload,
    Record,
    Session,
    SyncState,
)

QUICK = Governance(audit=MemoryAuditSink(), retry=NO_RETRY)
"""Errors surface at once: the tests check which error, not the retries."""

MAX_CALLS = 1000
"""Pages or sync calls a helper makes before it calls the pagination endless."""


def memory(memory_id: str, text: str, tags: Sequence[str] = (), **metadata: Any) -> Record:
    """A memory record: `text`, `tags` and the keyword arguments as metadata."""
    return Record(id=memory_id, data={"text": text, "tags": list(tags), "metadata": metadata})


def push(session: Session, *records: Record) -> None:
    """Push `records`, which must all be accepted."""
    result = session.push(PushPayload(records=records))
    assert result.rejected == ()
    assert sorted(result.accepted) == sorted(record.id for record in records)


def ids(records: Sequence[Record]) -> list[str]:
    """The records' ids, in order."""
    return [record.id for record in records]


def fetch_all(session: Session, query: FetchQuery, limit: int | None = 3) -> list[Record]:
    """Every page of `query`, `limit` records at a time (None: the query's own limit)."""
    page_size = query.limit if limit is None else limit
    records: list[Record] = []
    cursor: str | None = None
    for _ in range(MAX_CALLS):
        page = session.fetch(query.model_copy(update={"limit": page_size, "cursor": cursor}))
        assert len(page.records) <= page_size
        records.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            return records
    raise AssertionError("paging never ended")


def sync_all(session: Session, state: SyncState) -> tuple[list[Record], SyncState]:
    """Every change after `state`, following `has_more`, and the state to resume from."""
    changes: list[Record] = []
    for _ in range(MAX_CALLS):
        result = session.sync(state)
        changes.extend(result.changes)
        state = result.state
        if not result.has_more:
            return changes, state
    raise AssertionError("sync never ended")


class Clock:
    """A clock a test moves by hand: give `clock.now` to a connector as its `clock`.

    It starts at the current time, so stored times stay realistic, and only moves forward
    when told: a test of what happens after an hour never waits an hour.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The time the clock shows."""
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)``; the new time."""
        step = timedelta(**delta)
        assert step >= timedelta(0), "the clock only moves forward"
        with self._lock:
            self._now += step
            return self._now
