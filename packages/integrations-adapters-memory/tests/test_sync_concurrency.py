"""A sync running while other sessions write never misses a change (SQLite and Redis).

Writers in threads, each with its own governed session on the same store and tenant, push
batches of upserts and deletions over shared ids while a syncer keeps pulling changes from
its saved state. Once the writers are done, one more sync must leave the syncer's view equal
to the store's current content: a change committed while a sync ran and numbered below what
that sync reported would be lost for good. PostgreSQL, where commits can land out of order,
has its own harder test in ``test_postgres_concurrency.py``.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from integrations.base import AuthContext, FetchQuery, PushPayload, Record, SyncState, registry
from integrations.base.lifecycle import Session

WRITERS, BATCHES, IDS = 4, 40, 60
CONTEXT = AuthContext(tenant="concurrency", actor="tester")


@pytest.fixture(params=["memory.sqlite", "memory.redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """A registry name and the config of a fresh store of that backend."""
    name: str = request.param
    if name == "memory.sqlite":
        return name, {"path": str(tmp_path / "concurrency.sqlite3")}
    url = request.getfixturevalue("redis_url")
    return name, {"url": url, "key_prefix": f"concurrency:{uuid.uuid4().hex[:8]}"}


def write_batches(
    name: str, config: dict[str, Any], seed: int, errors: list[BaseException]
) -> None:
    """One writer: `BATCHES` batches of upserts and deletions over the shared ids."""
    rng = random.Random(seed)
    try:
        with registry.open(name, config=config, context=CONTEXT) as session:
            for batch in range(BATCHES):
                chosen = rng.sample(range(IDS), 8)
                records = [
                    Record(id=f"m{n}", deleted=True)
                    if rng.random() < 0.25
                    else Record(id=f"m{n}", data={"text": f"writer {seed} batch {batch} note"})
                    for n in chosen
                ]
                session.push(PushPayload(records=tuple(records)))
    except BaseException as error:  # reported by the test thread
        errors.append(error)


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


def run_writers(
    name: str, config: dict[str, Any], errors: list[BaseException]
) -> Callable[[], bool]:
    threads = [
        threading.Thread(target=write_batches, args=(name, config, seed, errors), daemon=True)
        for seed in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    return lambda: any(thread.is_alive() for thread in threads)


def test_a_sync_during_writes_misses_nothing(store: tuple[str, dict[str, Any]]) -> None:
    name, config = store
    errors: list[BaseException] = []
    view: dict[str, Record] = {}
    with registry.open(name, config=config, context=CONTEXT) as syncer:
        state = SyncState()
        writing = run_writers(name, config, errors)
        rounds = 0
        while writing() and rounds < 10_000:
            state = sync_into(syncer, view, state)
            rounds += 1
        assert not writing(), "the writers did not finish"
        assert not errors, errors
        assert rounds > 1, "the syncer never ran while the writers wrote"
        state = sync_into(syncer, view, state)
        expected = current_content(syncer)
    synced = {i: str(r.data["text"]) for i, r in view.items() if not r.deleted}
    assert synced == expected
