"""Push and fetch: upserts, tombstones, rejections, idempotency, tenants, queries and cursors."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from integrations.base import (
    AuthContext,
    FetchQuery,
    InvalidRequest,
    PushPayload,
    Record,
    Rejection,
    SyncState,
)
from integrations.mocks import MockConfig, MockConnector, MockStore, get_store, reset_stores

OpenConnector = Callable[..., MockConnector]
PushRecords = Callable[..., None]


def ids(connector: MockConnector, **query: Any) -> list[str]:
    return [record.id for record in connector.fetch(FetchQuery(**query)).records]


def fetch_all(
    connector: MockConnector, between: Callable[[], None] | None = None, **query: Any
) -> list[Record]:
    """Every page of a query; `between` runs after each page, to write while paginating."""
    records: list[Record] = []
    cursor = None
    while True:
        page = connector.fetch(FetchQuery(cursor=cursor, **query))
        records.extend(page.records)
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor
        if between is not None:
            between()


# -- storage -----------------------------------------------------------------------------------


def test_pushed_records_come_back_with_a_timestamp(ready: MockConnector) -> None:
    result = ready.push(PushPayload(records=(Record(id="a", data={"title": "Alpha"}),)))

    assert result.accepted == ("a",)
    assert result.rejected == ()
    (record,) = ready.fetch(FetchQuery()).records
    assert record.id == "a"
    assert record.data == {"title": "Alpha"}
    assert record.updated_at is not None
    assert record.updated_at.tzinfo is not None


def test_push_upserts_by_id(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, a={"v": 1})
    push_records(ready, a={"v": 2})

    (record,) = ready.fetch(FetchQuery()).records
    assert record.data == {"v": 2}


def test_pushing_the_same_record_twice_changes_nothing(
    ready: MockConnector, store: MockStore
) -> None:
    payload = PushPayload(records=(Record(id="a", data={"v": 1}),))
    ready.push(payload)
    first = ready.fetch(FetchQuery()).records
    sequence = store.sequence("acme")

    again = ready.push(payload)

    assert again.accepted == ("a",)
    assert store.sequence("acme") == sequence
    assert ready.fetch(FetchQuery()).records == first


def test_true_and_one_are_different_values(ready: MockConnector, store: MockStore) -> None:
    ready.push(PushPayload(records=(Record(id="a", data={"flag": 1}),)))
    ready.push(PushPayload(records=(Record(id="a", data={"flag": True}),)))

    assert store.sequence("acme") == 2
    assert store.records("acme")[0].data == {"flag": True}


def test_tombstone_deletes(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, a={}, b={})

    result = ready.push(PushPayload(records=(Record(id="a", deleted=True),)))

    assert result.accepted == ("a",)
    assert ids(ready) == ["b"]


def test_tombstone_for_an_unknown_id_is_accepted_without_change(
    ready: MockConnector, store: MockStore
) -> None:
    result = ready.push(PushPayload(records=(Record(id="ghost", deleted=True),)))

    assert result.accepted == ("ghost",)
    assert store.sequence("acme") == 0


def test_a_deleted_record_can_come_back(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, a={"v": 1})
    ready.push(PushPayload(records=(Record(id="a", deleted=True),)))
    push_records(ready, a={"v": 2})

    assert [r.data for r in ready.fetch(FetchQuery()).records] == [{"v": 2}]


def test_duplicate_ids_in_one_payload_are_rejected_alone(ready: MockConnector) -> None:
    payload = PushPayload(
        records=(Record(id="dup", data={"n": 1}), Record(id="ok"), Record(id="dup", data={"n": 2}))
    )

    result = ready.push(payload)

    assert result.accepted == ("ok",)
    assert [rejection.id for rejection in result.rejected] == ["dup"]
    assert "2 times" in result.rejected[0].reason
    assert ids(ready) == ["ok"]


def test_required_fields_reject_incomplete_records(
    open_connector: OpenConnector,
) -> None:
    connector = open_connector(required_fields=("title",))
    payload = PushPayload(
        records=(
            Record(id="good", data={"title": "x"}),
            Record(id="bad", data={"body": "y"}),
            Record(id="gone", deleted=True),
        )
    )

    result = connector.push(payload)

    assert result.accepted == ("good", "gone")
    assert result.rejected == (Rejection(id="bad", reason="missing required field(s): title"),)


def test_max_record_bytes_rejects_large_records(open_connector: OpenConnector) -> None:
    connector = open_connector(max_record_bytes=20)

    result = connector.push(
        PushPayload(
            records=(Record(id="small", data={"a": 1}), Record(id="big", data={"a": "x" * 50}))
        )
    )

    assert result.accepted == ("small",)
    assert result.rejected[0].id == "big"
    assert "max_record_bytes=20" in result.rejected[0].reason


def test_idempotency_key_returns_the_first_result_without_reapplying(
    ready: MockConnector, store: MockStore, push_records: PushRecords
) -> None:
    payload = PushPayload(records=(Record(id="a", data={"v": 1}),), idempotency_key="k-1")
    first = ready.push(payload)
    push_records(ready, a={"v": 2})
    sequence = store.sequence("acme")

    replay = ready.push(payload)

    assert replay == first
    assert store.sequence("acme") == sequence
    assert store.records("acme")[0].data == {"v": 2}


def test_idempotency_keys_are_per_tenant(open_connector: OpenConnector, store: MockStore) -> None:
    payload = PushPayload(records=(Record(id="a"),), idempotency_key="same-key")

    open_connector("acme").push(payload)
    open_connector("globex").push(payload)

    assert store.sequence("acme") == 1
    assert store.sequence("globex") == 1


def test_stored_data_is_isolated_from_caller_mutation(
    ready: MockConnector, store: MockStore
) -> None:
    data: dict[str, Any] = {"tags": ["a"]}
    ready.push(PushPayload(records=(Record(id="a", data=data),)))
    data["tags"].append("pushed-then-mutated")
    fetched = ready.fetch(FetchQuery()).records[0]
    fetched.data["tags"] = "fetched-then-mutated"

    assert store.records("acme")[0].data == {"tags": ["a"]}


# -- tenants and stores ------------------------------------------------------------------------


def test_tenants_never_see_each_other(
    open_connector: OpenConnector, push_records: PushRecords
) -> None:
    acme = open_connector("acme")
    globex = open_connector("globex")
    anonymous = open_connector(None)
    push_records(acme, shared_id={"owner": "acme"})
    push_records(globex, shared_id={"owner": "globex"})

    assert [r.data for r in acme.fetch(FetchQuery()).records] == [{"owner": "acme"}]
    assert [r.data for r in globex.fetch(FetchQuery()).records] == [{"owner": "globex"}]
    assert anonymous.fetch(FetchQuery()).records == ()
    assert [r.data for r in acme.sync(SyncState()).changes] == [{"owner": "acme"}]
    assert anonymous.sync(SyncState()).changes == ()


def test_delete_in_one_tenant_leaves_the_other(
    open_connector: OpenConnector, push_records: PushRecords
) -> None:
    acme = open_connector("acme")
    globex = open_connector("globex")
    push_records(acme, x={})
    push_records(globex, x={})

    acme.push(PushPayload(records=(Record(id="x", deleted=True),)))

    assert ids(acme) == []
    assert ids(globex) == ["x"]


def test_connectors_on_one_store_share_data(
    open_connector: OpenConnector, push_records: PushRecords
) -> None:
    writer = open_connector()
    reader = open_connector()

    push_records(writer, a={"n": 1})

    assert ids(reader) == ["a"]


def test_stores_are_separate(ready: MockConnector, push_records: PushRecords) -> None:
    other = MockConnector()
    other.auth(AuthContext(tenant="acme"))
    other.connect(MockConfig(store=f"{ready.store.name}-other"))

    push_records(ready, a={})

    assert ids(other) == []


def test_get_store_returns_one_object_per_name(store_name: str) -> None:
    assert get_store(store_name) is get_store(store_name)


def test_store_inspection(
    ready: MockConnector, store: MockStore, push_records: PushRecords
) -> None:
    push_records(ready, a={"n": 1}, b={"n": 2})
    ready.push(PushPayload(records=(Record(id="a", deleted=True),)))

    assert [r.id for r in store.records("acme")] == ["b"]
    assert [(r.id, r.deleted) for r in store.changes("acme")] == [
        ("a", False),
        ("b", False),
        ("a", True),
    ]
    assert store.sequence("acme") == 3
    assert store.sequence("nobody") == 0
    assert "acme" in store.tenants()
    assert repr(store) == f"MockStore(name={store.name!r})"


# -- queries -----------------------------------------------------------------------------------


def test_text_search_is_case_insensitive_over_data(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(
        ready,
        a={"title": "Quarterly REPORT"},
        b={"title": "Minutes", "tags": ["report"]},
        c={"title": "Invoice"},
    )

    assert sorted(ids(ready, text="report")) == ["a", "b"]
    assert ids(ready, text="INVOICE") == ["c"]
    assert ids(ready, text="absent") == []


def test_filters_are_equality_on_top_level_keys(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(
        ready,
        a={"status": "open", "priority": 1},
        b={"status": "closed", "priority": 1},
        c={"status": "open", "priority": 2},
        d={"priority": 1},
        e={"status": "open", "priority": True},
    )

    assert sorted(ids(ready, filters={"status": "open"})) == ["a", "c", "e"]
    assert ids(ready, filters={"status": "open", "priority": 1}) == ["a"]
    assert ids(ready, filters={"status": None}) == []
    assert ids(ready, filters={"priority": True}) == ["e"]


def test_text_and_filters_combine(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, a={"kind": "doc", "title": "alpha"}, b={"kind": "mail", "title": "alpha"})

    assert ids(ready, text="ALPHA", filters={"kind": "mail"}) == ["b"]


def test_newest_first(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, first={})
    push_records(ready, second={})
    push_records(ready, third={})
    push_records(ready, first={"touched": True})

    assert ids(ready) == ["first", "third", "second"]


def test_client_timestamps_are_kept_and_ties_break_by_id(ready: MockConnector) -> None:
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    later = datetime(2024, 6, 1, tzinfo=UTC)
    ready.push(
        PushPayload(
            records=(
                Record(id="b", updated_at=moment),
                Record(id="c", updated_at=moment),
                Record(id="a", updated_at=later),
            )
        )
    )

    records = ready.fetch(FetchQuery()).records

    assert [r.id for r in records] == ["a", "c", "b"]
    assert records[0].updated_at == later


def test_limit_and_page_size_max(open_connector: OpenConnector, push_records: PushRecords) -> None:
    connector = open_connector(page_size_max=2)
    push_records(connector, a={}, b={}, c={})

    assert len(connector.fetch(FetchQuery(limit=1)).records) == 1
    page = connector.fetch(FetchQuery(limit=100))
    assert len(page.records) == 2
    assert page.next_cursor is not None


def test_last_page_has_no_cursor(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, a={}, b={})

    assert ready.fetch(FetchQuery(limit=2)).next_cursor is None
    assert ready.fetch(FetchQuery(limit=3)).next_cursor is None
    assert ready.fetch(FetchQuery(limit=1)).next_cursor is not None


# -- pagination --------------------------------------------------------------------------------


def test_pagination_visits_every_record_once(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(ready, **{f"r{n:02}": {"n": n} for n in range(23)})

    records = fetch_all(ready, limit=5)

    assert len(records) == 23
    assert {r.id for r in records} == {f"r{n:02}" for n in range(23)}


def test_pushing_new_records_between_pages_neither_repeats_nor_skips(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(ready, **{f"r{n}": {"n": n} for n in range(10)})
    expected = [r.id for r in fetch_all(ready, limit=100)]
    counter = iter(range(1000))

    records = fetch_all(ready, lambda: push_records(ready, **{f"new{next(counter)}": {}}), limit=3)

    assert [r.id for r in records] == expected


def test_updates_and_deletes_between_pages_keep_the_snapshot(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(ready, **{f"r{n}": {"n": n} for n in range(6)})
    expected = [r.id for r in fetch_all(ready, limit=100)]

    def disturb() -> None:
        # r0 is the oldest record, so it is on the last page: not seen yet when this runs.
        push_records(ready, r0={"n": "updated"})
        ready.push(PushPayload(records=(Record(id="r1", deleted=True),)))

    records = fetch_all(ready, disturb, limit=2)

    assert [r.id for r in records] == expected
    assert next(r for r in records if r.id == "r0").data == {"n": 0}
    assert sorted(ids(ready, limit=100)) == ["r0", "r2", "r3", "r4", "r5"]


def test_cursor_keeps_working_with_a_different_limit(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(ready, **{f"r{n}": {} for n in range(5)})
    first = ready.fetch(FetchQuery(limit=2))

    rest = ready.fetch(FetchQuery(limit=10, cursor=first.next_cursor))

    assert len(first.records) + len(rest.records) == 5
    assert rest.next_cursor is None


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 at all!",
        "\u00e9\u00e9\u00e9\u00e9",
        _b64("not json"),
        _b64("[1, 2, 3]"),
        _b64('{"v": 1, "kind": "fetch"}'),
        _b64(
            '{"v": 2, "epoch": "x", "kind": "fetch", "snapshot": 0,'
            ' "updated_at": "2024-01-01T00:00:00Z", "id": "a", "query": "q"}'
        ),
    ],
)
def test_malformed_cursor_is_an_invalid_request(ready: MockConnector, cursor: str) -> None:
    with pytest.raises(InvalidRequest, match="cursor"):
        ready.fetch(FetchQuery(cursor=cursor))


def test_cursor_of_another_query_is_refused(
    ready: MockConnector, push_records: PushRecords
) -> None:
    push_records(ready, a={"k": 1}, b={"k": 1})
    cursor = ready.fetch(FetchQuery(limit=1, filters={"k": 1})).next_cursor

    with pytest.raises(InvalidRequest, match="different query"):
        ready.fetch(FetchQuery(limit=1, cursor=cursor))


def test_cursor_of_another_tenant_is_refused(
    open_connector: OpenConnector, push_records: PushRecords
) -> None:
    acme = open_connector("acme")
    globex = open_connector("globex")
    push_records(acme, a={}, b={})
    cursor = acme.fetch(FetchQuery(limit=1)).next_cursor

    with pytest.raises(InvalidRequest, match="another tenant"):
        globex.fetch(FetchQuery(limit=1, cursor=cursor))


def test_sync_cursor_is_not_a_fetch_cursor(ready: MockConnector, push_records: PushRecords) -> None:
    push_records(ready, a={})
    sync_cursor = ready.sync(SyncState()).state.cursor

    with pytest.raises(InvalidRequest, match="malformed cursor"):
        ready.fetch(FetchQuery(cursor=sync_cursor))


def test_clearing_the_store_invalidates_cursors(
    ready: MockConnector, store: MockStore, push_records: PushRecords
) -> None:
    push_records(ready, a={}, b={})
    cursor = ready.fetch(FetchQuery(limit=1)).next_cursor

    store.clear()

    assert ids(ready) == []
    with pytest.raises(InvalidRequest):
        ready.fetch(FetchQuery(cursor=cursor))


def test_reset_stores_clears_every_store_in_place(
    ready: MockConnector, store: MockStore, push_records: PushRecords
) -> None:
    push_records(ready, a={})

    reset_stores()

    assert store.records("acme") == ()
    assert get_store(store.name) is store
    assert ids(ready) == []


def test_store_without_a_config_is_the_default_store() -> None:
    assert MockConnector().store is get_store("default")
