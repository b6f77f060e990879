"""Sync: the per-tenant change log, incremental states, paging and state persistence."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from integrations.base import FetchQuery, InvalidRequest, PushPayload, Record, SyncState
from integrations.mocks import MockConnector

OpenConnector = Callable[..., MockConnector]
PushRecords = Callable[..., None]


def test_first_sync_returns_every_change_in_order(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(ready, a={"v": 1}, b={"v": 1})
    push_records(ready, a={"v": 2})
    ready.push(PushPayload(records=(Record(id="b", deleted=True),)))

    result = ready.sync(SyncState())

    assert [(r.id, r.deleted, r.data) for r in result.changes] == [
        ("a", False, {"v": 1}),
        ("b", False, {"v": 1}),
        ("a", False, {"v": 2}),
        ("b", True, {}),
    ]
    assert (result.upserted, result.deleted) == (3, 1)
    assert not result.has_more
    assert all(r.updated_at is not None for r in result.changes)


def test_next_sync_returns_only_later_changes(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(ready, a={}, b={})
    first = ready.sync(SyncState())
    push_records(ready, c={})
    ready.push(PushPayload(records=(Record(id="a", deleted=True),)))

    second = ready.sync(first.state)

    assert [(r.id, r.deleted) for r in second.changes] == [("c", False), ("a", True)]


def test_sync_without_changes_keeps_its_position(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(ready, a={})
    state = ready.sync(SyncState()).state

    quiet = ready.sync(state)
    push_records(ready, b={})
    later = ready.sync(quiet.state)

    assert quiet.changes == ()
    assert not quiet.has_more
    assert [r.id for r in later.changes] == ["b"]


def test_idempotent_writes_add_no_change(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, a={"v": 1})
    state = ready.sync(SyncState()).state

    push_records(ready, a={"v": 1})
    ready.push(PushPayload(records=(Record(id="ghost", deleted=True),)))

    assert ready.sync(state).changes == ()


def test_sync_pages_with_has_more(open_connector: OpenConnector, push_records: PushRecords) -> None:
    connector = open_connector(sync_page_size=2)
    push_records(connector, **{f"r{n}": {} for n in range(5)})

    pages = []
    state = SyncState()
    while True:
        result = connector.sync(state)
        pages.append([r.id for r in result.changes])
        state = result.state
        if not result.has_more:
            break

    assert pages == [["r0", "r1"], ["r2", "r3"], ["r4"]]


def test_state_survives_json_round_trip(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, a={})
    saved = ready.sync(SyncState(bookmarks={"note": "kept"})).state.to_json()
    push_records(ready, b={})

    restored = SyncState.from_json(saved)
    result = ready.sync(restored)

    assert json.loads(saved)["bookmarks"] == {"note": "kept"}
    assert [r.id for r in result.changes] == ["b"]
    assert result.state.bookmarks == {"note": "kept"}


def test_changes_are_per_tenant(open_connector: OpenConnector, push_records: PushRecords) -> None:
    acme = open_connector("acme")
    globex = open_connector("globex")
    push_records(acme, a={})
    push_records(globex, g={})

    assert [r.id for r in acme.sync(SyncState()).changes] == ["a"]
    assert [r.id for r in globex.sync(SyncState()).changes] == ["g"]


def test_state_of_another_tenant_is_refused(
    open_connector: OpenConnector, push_records: PushRecords
) -> None:
    acme = open_connector("acme")
    globex = open_connector("globex")
    push_records(acme, a={})
    state = acme.sync(SyncState()).state

    with pytest.raises(InvalidRequest, match="another tenant"):
        globex.sync(state)


@pytest.mark.parametrize("cursor", ["", "%%%", "eyJ2IjogMX0"])
def test_malformed_sync_cursor_is_an_invalid_request(ready: MockConnector, cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        ready.sync(SyncState(cursor=cursor))


def test_fetch_cursor_is_not_a_sync_state(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, a={}, b={})
    fetch_cursor = ready.fetch(FetchQuery(limit=1)).next_cursor

    with pytest.raises(InvalidRequest):
        ready.sync(SyncState(cursor=fetch_cursor))


def test_replaying_changes_rebuilds_the_store(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(ready, a={"v": 1}, b={"v": 1}, c={"v": 1})
    push_records(ready, b={"v": 2})
    ready.push(PushPayload(records=(Record(id="c", deleted=True),)))

    replica: dict[str, Record] = {}
    for change in ready.sync(SyncState()).changes:
        if change.deleted:
            replica.pop(change.id, None)
        else:
            replica[change.id] = change

    assert sorted(replica.values(), key=lambda r: r.id) == sorted(
        ready.fetch(FetchQuery()).records, key=lambda r: r.id
    )
