"""Property-based tests: pagination and sync stay exact over random data and random writes."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.base import (
    AuthContext,
    FetchQuery,
    InvalidRequest,
    PushPayload,
    Record,
    SyncState,
)
from integrations.mocks import MockConfig, MockConnector

record_ids = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
record_data = st.fixed_dictionaries(
    {"n": st.integers(0, 3), "tag": st.sampled_from(["red", "blue", "Green"])}
)
# A handful of fixed timestamps makes ties, so the id tie-break is exercised across pages.
client_times = st.one_of(
    st.none(), st.sampled_from([datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)])
)
records = st.builds(Record, id=record_ids, data=record_data, updated_at=client_times)
tombstones = st.builds(Record, id=record_ids, deleted=st.just(True))
writes = st.lists(st.one_of(records, tombstones), max_size=4)
queries = st.one_of(
    st.just({}),
    st.builds(lambda tag: {"filters": {"tag": tag}}, st.sampled_from(["red", "blue"])),
    st.builds(lambda text: {"text": text}, st.sampled_from(["green", "RED", "n"])),
)

SETTINGS = settings(max_examples=60, deadline=None)


def open_connector(tenant: str = "acme", **settings_: Any) -> MockConnector:
    connector = MockConnector()
    connector.auth(AuthContext(tenant=tenant))
    connector.connect(MockConfig(store=f"prop-{uuid.uuid4().hex}", **settings_))
    return connector


def push_each(connector: MockConnector, batch: list[Record]) -> None:
    """Push records one payload each, so repeated ids in a batch are ordinary updates."""
    for record in batch:
        connector.push(PushPayload(records=(record,)))


@SETTINGS
@given(
    initial=st.lists(records, max_size=25),
    limit=st.integers(1, 6),
    query=queries,
    between=st.lists(writes, max_size=10),
)
def test_pages_equal_the_snapshot_despite_writes_between_pages(
    initial: list[Record], limit: int, query: dict[str, Any], between: list[list[Record]]
) -> None:
    connector = open_connector()
    push_each(connector, initial)
    expected = connector.fetch(FetchQuery(limit=10_000, **query)).records

    seen: list[Record] = []
    cursor = None
    pending = iter(between)
    while True:
        page = connector.fetch(FetchQuery(limit=limit, cursor=cursor, **query))
        assert len(page.records) <= limit
        seen.extend(page.records)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        push_each(connector, next(pending, []))

    assert seen == list(expected)
    assert len({record.id for record in seen}) == len(seen)


@SETTINGS
@given(batches=st.lists(writes, max_size=8), page_size=st.integers(1, 5))
def test_replaying_sync_pages_rebuilds_the_current_records(
    batches: list[list[Record]], page_size: int
) -> None:
    connector = open_connector(sync_page_size=page_size)
    replica: dict[str, Record] = {}
    state = SyncState()
    counts: list[int] = []

    for batch in batches:
        push_each(connector, batch)
        while True:
            result = connector.sync(SyncState.from_json(state.to_json()))
            assert len(result.changes) <= page_size
            for change in result.changes:
                if change.deleted:
                    replica.pop(change.id, None)
                else:
                    replica[change.id] = change
            counts.append(len(result.changes))
            state = result.state
            if not result.has_more:
                break

    current = connector.fetch(FetchQuery(limit=10_000)).records
    assert sorted(replica.values(), key=lambda r: r.id) == sorted(current, key=lambda r: r.id)
    assert sum(counts) == connector.store.sequence("acme")


@SETTINGS
@given(cursor=st.text(max_size=200))
def test_any_cursor_is_either_accepted_or_an_invalid_request(cursor: str) -> None:
    connector = open_connector()
    connector.push(PushPayload(records=(Record(id="a"), Record(id="b"))))

    for run in (
        lambda: connector.fetch(FetchQuery(cursor=cursor)),
        lambda: connector.sync(SyncState(cursor=cursor)),
    ):
        with contextlib.suppress(InvalidRequest):
            run()


@SETTINGS
@given(
    first=st.lists(records, max_size=10),
    second=st.lists(records, max_size=10),
)
def test_tenants_are_isolated_for_any_data(first: list[Record], second: list[Record]) -> None:
    acme = open_connector("acme")
    globex = MockConnector()
    globex.auth(AuthContext(tenant="globex"))
    config = acme.config
    assert config is not None
    globex.connect(config)

    push_each(acme, first)
    push_each(globex, second)

    acme_ids = {r.id for r in acme.fetch(FetchQuery(limit=10_000)).records}
    globex_ids = {r.id for r in globex.fetch(FetchQuery(limit=10_000)).records}
    assert acme_ids == {r.id for r in first}
    assert globex_ids == {r.id for r in second}
    assert {r.id for r in acme.sync(SyncState()).changes} <= {r.id for r in first}
