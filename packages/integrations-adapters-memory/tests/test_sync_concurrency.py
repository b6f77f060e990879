"""A sync running while other sessions write never misses a change (SQLite and Redis).

Writers in threads, each with its own governed session on the same store and tenant, push
batches of upserts and deletions over shared ids while a syncer keeps pulling changes from
its saved state. Once the writers are done, one more sync must leave the syncer's view equal
to the store's current content: a change committed while a sync ran and numbered below what
that sync reported would be lost for good.

Nothing here depends on how fast the machine is: the writers pause halfway until the syncer
has taken a state in the middle of their work (so the syncer always continues from a state
that later writes follow), and the wait for the writers is bounded by time, not by a count
of sync rounds. PostgreSQL, where commits can land out of order,
has its own harder test in ``test_postgres_concurrency.py``.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from integrations.base import AuthContext, FetchQuery, PushPayload, Record, SyncState, registry
from integrations.base.lifecycle import Session

WRITERS, BATCHES, IDS = 4, 40, 60
CONTEXT = AuthContext(tenant="concurrency", actor="tester")
WRITERS_DEADLINE = 300.0
"""Seconds the writers get to finish: generous, so only a hang fails, never a slow machine."""


@pytest.fixture(params=["memory.sqlite", "memory.redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A registry name and the config of a fresh store of that backend."""
    name: str = request.param
    if name == "memory.sqlite":
        return name, {"path": str(tmp_path / "concurrency.sqlite3")}
    url = request.getfixturevalue("redis_url")
    return name, {"url": url, "key_prefix": f"concurrency:{uuid.uuid4().hex[:8]}"}


class Writers:
    """The writer threads, their progress, and the halfway point where they wait."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.errors: list[BaseException] = []
        self.done = [0] * WRITERS
        self.halfway = threading.Barrier(WRITERS + 1, timeout=WRITERS_DEADLINE)
        self.resume = threading.Event()
        self.threads = [
            threading.Thread(target=self._write, args=(name, config, seed), daemon=True)
            for seed in range(WRITERS)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def still_running(self) -> str:
        """Which writers are still running and how far each got, for a failure message."""
        return ", ".join(
            f"writer {seed} ({self.done[seed]} of {BATCHES} batches)"
            for seed, thread in enumerate(self.threads)
            if thread.is_alive()
        )

    def _write(self, name: str, config: dict[str, Any], seed: int) -> None:
        """One writer: `BATCHES` batches of upserts and deletions over the shared ids."""
        rng = random.Random(seed)
        try:
            with registry.open(name, config=config, context=CONTEXT) as session:
                for batch in range(BATCHES):
                    if batch == BATCHES // 2:
                        self.halfway.wait()
                        if not self.resume.wait(WRITERS_DEADLINE):
                            raise TimeoutError("the syncer never let the writers resume")
                    chosen = rng.sample(range(IDS), 8)
                    records = [
                        Record(id=f"m{n}", deleted=True)
                        if rng.random() < 0.25
                        else Record(id=f"m{n}", data={"text": f"writer {seed} batch {batch} note"})
                        for n in chosen
                    ]
                    session.push(PushPayload(records=tuple(records)))
                    self.done[seed] = batch + 1
        except BaseException as error:  # reported by the test thread
            self.errors.append(error)
            self.halfway.abort()


def sync_into(session: Session, view: dict[str, Record], state: SyncState) -> SyncState:
    """Apply every change after `state` to `view`; the state to go on from."""
    for _ in range(1000):
        result = session.sync(state)
        before, after = state.bookmarks.get("seq", 0), result.state.bookmarks.get("seq", 0)
        assert isinstance(before, int)
        assert isinstance(after, int)
        assert after >= before, "a sync state went backwards"
        for change in result.changes:
            view[change.id] = change
        state = result.state
        if not result.has_more:
            return state
    raise AssertionError("sync still had more after 1000 calls")


def current_content(session: Session) -> dict[str, str]:
    """Every live memory's text, read page by page."""
    found: dict[str, str] = {}
    query = FetchQuery(limit=25)
    for _ in range(100):
        page = session.fetch(query)
        found.update((record.id, str(record.data["text"])) for record in page.records)
        if page.next_cursor is None:
            return found
        query = query.model_copy(update={"cursor": page.next_cursor})
    raise AssertionError("paging did not end")


def sync_while_writing(
    writers: Writers, syncer: Session, view: dict[str, Record], state: SyncState
) -> SyncState:
    """Sync halfway through the writes, let the writers go on, and keep syncing until done."""
    # Halfway, every writer has committed half its batches and waits: the state synced now
    # lies in the middle of the writes, and the rest of them come after it.
    try:
        writers.halfway.wait()
    except threading.BrokenBarrierError:
        raise AssertionError(
            f"the writers did not all reach halfway: errors {writers.errors}, "
            f"still running: {writers.still_running()}"
        ) from None
    state = sync_into(syncer, view, state)
    assert view, "the halfway sync saw none of the first half of the writes"
    writers.resume.set()
    deadline = time.monotonic() + WRITERS_DEADLINE
    while writers.running() and time.monotonic() < deadline:
        state = sync_into(syncer, view, state)
    assert not writers.running(), (
        f"after {WRITERS_DEADLINE:.0f} s still running: {writers.still_running()}"
    )
    return state


def test_a_sync_during_writes_misses_nothing(store: tuple[str, dict[str, Any]]) -> None:
    name, config = store
    view: dict[str, Record] = {}
    writers = Writers(name, config)
    with registry.open(name, config=config, context=CONTEXT) as syncer:
        state = SyncState()
        writers.start()
        try:
            state = sync_while_writing(writers, syncer, view, state)
        finally:
            writers.resume.set()  # a failed syncer never leaves the writers waiting
        assert not writers.errors, writers.errors
        state = sync_into(syncer, view, state)
        expected = current_content(syncer)
    synced = {i: str(r.data["text"]) for i, r in view.items() if not r.deleted}
    assert synced == expected
