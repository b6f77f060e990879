"""memory.sqlite against real SQLite files, through governed sessions opened by the registry."""

from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from integrations.adapters.memory_adapters import (
    MemoryFilter,
    StoredMemory,
    encode_cursor,
    encode_sync_state,
    parse_query,
)
from integrations.adapters.memory_adapters.sqlite import (
    SqliteMemoryConfig,
    SqliteMemoryConnector,
    default_path,
)
from integrations.adapters.memory_adapters.sqlite._schema import MIGRATIONS, SCHEMA_VERSION, migrate
from integrations.base import (
    AuthContext,
    ConfigError,
    ConnectionFailed,
    ConnectorError,
    FetchQuery,
    InvalidRequest,
    PushPayload,
    Record,
    ResyncRequired,
    Session,
    SyncState,
    TransientError,
    registry,
)

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from memories import QUICK, fetch_all, ids, memory, push, sync_all


def delete(session: Session, *memory_ids: str) -> None:
    push(session, *(Record(id=memory_id, deleted=True) for memory_id in memory_ids))


def changes_of(records: list[Record]) -> list[tuple[str, bool]]:
    return [(record.id, record.deleted) for record in records]


def store(path: Path | str | None, tenant: str = "acme", **config: Any) -> Session:
    """A governed session on the store at `path` (None: the default file) for `tenant`."""
    settings: dict[str, Any] = {**config}
    if path is not None:
        settings["path"] = str(path)
    return registry.open(
        "memory.sqlite",
        config=settings,
        context=AuthContext(tenant=tenant, actor="tester"),
        governance=QUICK,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "memories.sqlite3"


@pytest.fixture
def session(path: Path) -> Iterator[Session]:
    with store(path) as opened:
        yield opened


# -- push, fetch, sync ------------------------------------------------------------------------


def test_pushed_memories_come_back_with_their_data_and_times(session: Session) -> None:
    before = datetime.now(UTC)
    push(session, memory("m1", "Buy oat milk", ["shopping", "weekly"], store="corner", qty=2))
    (back,) = session.fetch(FetchQuery()).records
    assert back.id == "m1"
    assert back.data["text"] == "Buy oat milk"
    assert back.data["tags"] == ["shopping", "weekly"]
    assert back.data["metadata"] == {"store": "corner", "qty": 2}
    created = datetime.fromisoformat(str(back.data["created_at"]))
    assert back.updated_at == created
    assert before <= created <= datetime.now(UTC)


def test_an_identical_upsert_changes_nothing(session: Session) -> None:
    push(session, memory("m1", "same text", ["a", "b"], x=1, y="z"))
    first = session.fetch(FetchQuery()).records[0]
    state = sync_all(session, SyncState())[1]
    # The same memory again, metadata written in another key order: canonical JSON is equal.
    again = Record(
        id="m1", data={"text": "same text", "tags": ["a", "b"], "metadata": {"y": "z", "x": 1}}
    )
    push(session, again)
    assert sync_all(session, state)[0] == []
    assert session.fetch(FetchQuery()).records[0] == first


def test_a_changed_upsert_is_one_new_change_keeping_its_creation(session: Session) -> None:
    push(session, memory("m1", "first", ["a", "b"]), memory("m2", "other"))
    created = session.fetch(FetchQuery(filters={"tags": ["a"]})).records[0].data["created_at"]
    state = sync_all(session, SyncState())[1]
    push(session, memory("m1", "first", ["b", "a"]))  # tag order is part of the memory
    changes, state = sync_all(session, state)
    assert ids(changes) == ["m1"]
    assert changes[0].data["tags"] == ["b", "a"]
    assert changes[0].data["created_at"] == created
    assert changes[0].updated_at is not None
    assert changes[0].updated_at > datetime.fromisoformat(str(created))
    assert ids(session.fetch(FetchQuery()).records) == ["m2", "m1"]  # creation order kept


def test_sync_numbers_every_change_in_order_and_pages(path: Path) -> None:
    with store(path, sync_page_size=4) as session:
        push(session, *[memory(f"m{i}", f"memory {i}") for i in range(10)])
        push(session, memory("m3", "memory 3 changed"), Record(id="m5", deleted=True))
        first = session.sync(SyncState())
        assert first.has_more
        assert len(first.changes) == 4
        changes, state = sync_all(session, SyncState())
        assert sync_all(session, state)[0] == []
    # Each memory appears once, at its latest change, and the changed two come last.
    assert sorted(ids(changes)) == sorted(f"m{i}" for i in range(10))
    assert ids(changes)[-2:] == ["m3", "m5"]
    assert changes[-1].deleted
    assert state.bookmarks == {"seq": 12}


def test_tombstones_delete_and_a_later_upsert_creates_the_memory_anew(session: Session) -> None:
    push(session, memory("old", "kept"), memory("gone", "to delete"))
    original_created = session.fetch(FetchQuery(text="delete")).records[0].data["created_at"]
    state = sync_all(session, SyncState())[1]
    push(session, Record(id="gone", deleted=True))
    assert ids(session.fetch(FetchQuery()).records) == ["old"]
    assert session.fetch(FetchQuery(text="delete")).records == ()
    changes, state = sync_all(session, state)
    assert [(c.id, c.deleted, c.data) for c in changes] == [("gone", True, {})]
    # Deleting again, or deleting what never existed, changes nothing.
    push(session, Record(id="gone", deleted=True), Record(id="never", deleted=True))
    assert sync_all(session, state)[0] == []
    # Pushed again, it is a new memory: newest first, with a new creation time.
    push(session, memory("gone", "back again"))
    assert ids(session.fetch(FetchQuery()).records) == ["gone", "old"]
    changes, state = sync_all(session, state)
    assert [(c.id, c.deleted, c.data["text"]) for c in changes] == [("gone", False, "back again")]
    recreated = datetime.fromisoformat(str(changes[0].data["created_at"]))
    assert recreated > datetime.fromisoformat(str(original_created))
    assert ids(session.fetch(FetchQuery(text="again")).records) == ["gone"]


def test_a_push_with_a_rejected_record_writes_the_others(session: Session) -> None:
    result = session.push(
        PushPayload(records=(memory("ok", "fine"), Record(id="bad", data={"text": 3})))
    )
    assert result.accepted == ("ok",)
    assert [r.id for r in result.rejected] == ["bad"]
    assert ids(session.fetch(FetchQuery()).records) == ["ok"]


def test_in_memory_databases_are_private_to_each_session() -> None:
    with store(":memory:") as first, store(":memory:") as second:
        push(first, memory("m1", "only in the first"))
        assert ids(first.fetch(FetchQuery()).records) == ["m1"]
        assert second.fetch(FetchQuery()).records == ()


# -- filters ----------------------------------------------------------------------------------

METADATA_VALUES: list[Any] = [
    0,
    1,
    -1,
    1.0,
    1.5,
    -0.0,
    2**53,
    2**53 + 1,
    -(2**63),
    1e300,
    0.1,
    "1",
    "",
    "true",
    "null",
    "é ü",
    True,
    False,
    None,
    [1],
    {"k": 1},
    [],
    {},
]
METADATA_KEYS = ["k", "a.b", 'we"ird', "$", "x y", "[0]"]


def test_metadata_filters_agree_with_the_reference_semantics(session: Session) -> None:
    stored: list[StoredMemory] = []
    records: list[Record] = []
    now = datetime.now(UTC)
    for index, (key, value) in enumerate(itertools.product(METADATA_KEYS[:3], METADATA_VALUES)):
        metadata = {key: value, "index": index, "nested": {key: value}}
        records.append(Record(id=f"m{index:03d}", data={"text": "m", "metadata": metadata}))
        stored.append(
            StoredMemory(
                id=f"m{index:03d}",
                text="",
                tags=(),
                metadata=json.loads(json.dumps(metadata)),
                created_at=now,
                updated_at=now,
                seq=index,
            )
        )
    push(session, *records)
    scalars = [v for v in METADATA_VALUES if not isinstance(v, (list, dict))]
    for key, value in itertools.product(METADATA_KEYS, scalars):
        wanted = MemoryFilter(metadata=((key, value),))
        expected = sorted(m.id for m in stored if wanted.matches(m))
        query = FetchQuery(filters={"metadata": {key: value}})
        found = sorted(ids(fetch_all(session, query, limit=100)))
        assert found == expected, f"metadata {key!r} = {value!r}"
    both = FetchQuery(filters={"metadata": {"k": 1, "index": 1}})
    assert ids(session.fetch(both).records) == ["m001"]


def test_integers_beyond_64_bits_are_refused_as_filters(session: Session) -> None:
    with pytest.raises(InvalidRequest, match="64 bits"):
        session.fetch(FetchQuery(filters={"metadata": {"n": 2**64}}))


def test_tag_filters_need_every_tag(session: Session) -> None:
    push(
        session,
        memory("ab", "one", ["a", "b"]),
        memory("a", "two", ["a"]),
        memory("bc", "three", ["b", "c"]),
    )
    assert sorted(ids(session.fetch(FetchQuery(filters={"tags": ["a"]})).records)) == ["a", "ab"]
    assert ids(session.fetch(FetchQuery(filters={"tags": ["b", "a"]})).records) == ["ab"]
    assert session.fetch(FetchQuery(filters={"tags": ["a", "c"]})).records == ()
    with_text = FetchQuery(text="three", filters={"tags": ["c"]})
    assert ids(session.fetch(with_text).records) == ["bc"]


def test_time_filters_are_strict_and_honour_offsets(session: Session) -> None:
    for name in ("first", "second", "third"):
        push(session, memory(name, f"the {name} memory"))
    created = {
        r.id: datetime.fromisoformat(str(r.data["created_at"]))
        for r in session.fetch(FetchQuery()).records
    }
    assert created["first"] < created["second"] < created["third"]

    def found(**filters: str) -> list[str]:
        return sorted(ids(session.fetch(FetchQuery(filters=dict(filters))).records))

    assert found(created_after=created["first"].isoformat()) == ["second", "third"]
    assert found(created_before=created["third"].isoformat()) == ["first", "second"]
    elsewhere = created["second"].astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert found(created_after=elsewhere.isoformat()) == ["third"]
    push(session, memory("first", "the first memory, changed"))
    assert found(updated_after=created["third"].isoformat()) == ["first"]
    assert found(updated_before=created["third"].isoformat()) == ["second"]


def test_filters_apply_to_text_queries(session: Session) -> None:
    push(
        session,
        memory("red", "a red apple", ["fruit"], colour="red"),
        memory("green", "a green apple", ["fruit"], colour="green"),
        memory("car", "a red car", ["vehicle"], colour="red"),
    )
    red_things = FetchQuery(text="red", filters={"metadata": {"colour": "red"}})
    assert sorted(ids(session.fetch(red_things).records)) == ["car", "red"]
    fruit = FetchQuery(text="apple", filters={"tags": ["fruit"], "metadata": {"colour": "red"}})
    assert ids(session.fetch(fruit).records) == ["red"]


# -- text search ------------------------------------------------------------------------------


def test_text_search_ranks_by_relevance_and_stems(session: Session) -> None:
    push(
        session,
        memory("once", "the garden needs water before the weekend trip to the coast"),
        memory("thrice", "garden garden garden: plan the garden beds"),
        memory("other", "the kitchen needs paint"),
    )
    assert ids(session.fetch(FetchQuery(text="garden")).records) == ["thrice", "once"]
    assert ids(session.fetch(FetchQuery(text="gardens needed")).records) == ["once"]
    assert sorted(ids(session.fetch(FetchQuery(text="NEEDS")).records)) == ["once", "other"]


def test_equal_ranks_list_the_newest_first(session: Session) -> None:
    push(session, memory("older", "same words here"))
    push(session, memory("newer", "same words here"))
    assert ids(session.fetch(FetchQuery(text="words")).records) == ["newer", "older"]


@pytest.mark.parametrize(
    "text",
    ['"garden', "garden*", "NEAR(garden plan)", "text:garden", "garden OR kitchen", "-garden", "^"],
)
def test_query_text_is_never_read_as_fts_syntax(session: Session, text: str) -> None:
    push(session, memory("g", "garden plan"), memory("k", "kitchen"))
    if text == "^":
        with pytest.raises(InvalidRequest):  # no words at all
            session.fetch(FetchQuery(text=text))
        return
    found = ids(session.fetch(FetchQuery(text=text)).records)
    assert found in (["g"], [])
    if text in ('"garden', "garden*", "-garden"):
        assert found == ["g"]


# -- pagination under concurrent writes -------------------------------------------------------


class Writer(threading.Thread):
    """Another session on the same file, writing one batch each time the pager asks."""

    def __init__(self, path: Path, rounds: int, batch: Any) -> None:
        super().__init__(daemon=True)
        self.path, self.rounds, self.batch = path, rounds, batch
        self.go, self.done = threading.Semaphore(0), threading.Semaphore(0)
        self.errors: list[BaseException] = []

    def run(self) -> None:
        try:
            with store(self.path) as other:
                for number in range(self.rounds):
                    if not self.go.acquire(timeout=60):
                        return
                    push(other, *self.batch(number))
                    self.done.release()
        except BaseException as error:  # reported by the test thread
            self.errors.append(error)
            self.done.release()

    def write_once(self) -> None:
        self.go.release()
        assert self.done.acquire(timeout=60)
        assert not self.errors, self.errors


def page_through_while_writing(
    session: Session, query: FetchQuery, writer: Writer, limit: int
) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    writer.start()
    try:
        for _ in range(200):
            page = session.fetch(query.model_copy(update={"limit": limit, "cursor": cursor}))
            pages.append(ids(page.records))
            cursor = page.next_cursor
            if cursor is None:
                break
            if len(pages) <= writer.rounds:
                writer.write_once()  # a commit lands between every two pages
    finally:
        writer.go.release(writer.rounds)
        writer.join(60)
    assert not writer.errors, writer.errors
    return pages


def test_newest_first_pages_neither_repeat_nor_skip_during_writes(path: Path) -> None:
    stable = [memory(f"stable-{i:03d}", f"stable memory {i}") for i in range(60)]
    volatile = [memory(f"volatile-{i:03d}", f"volatile memory {i}") for i in range(40)]
    with store(path) as session:
        push(session, *stable[:30], *volatile, *stable[30:])

        def batch(number: int) -> list[Record]:
            return [
                memory(f"new-{number:03d}-{i}", f"new memory {number} {i}") for i in range(3)
            ] + [
                Record(id=f"volatile-{number:03d}", deleted=True),
                memory(f"stable-{number * 2:03d}", f"stable memory {number * 2}, edited"),
            ]

        pages = page_through_while_writing(session, FetchQuery(), Writer(path, 40, batch), 7)
    returned = [i for page in pages for i in page]
    assert len(returned) == len(set(returned)), "a memory came back twice"
    assert {r.id for r in stable} <= set(returned), "a memory that stayed was skipped"
    assert not any(i.startswith("new-") for i in returned), "newer than the first page"


def test_ranked_pages_neither_repeat_nor_skip_during_writes(path: Path) -> None:
    stable = [memory(f"stable-{i:03d}", "alpha " * (i % 7 + 1) + f"note {i}") for i in range(50)]
    volatile = [memory(f"volatile-{i:03d}", f"alpha volatile {i}") for i in range(30)]
    with store(path) as session:
        push(session, *stable, *volatile, memory("beta", "beta only"))

        def batch(number: int) -> list[Record]:
            # New matches shift bm25's statistics (and may join later pages); deletions must
            # drop out of later pages.
            return [
                *[memory(f"new-{number}-{i}", "alpha " * 9 + "fresh") for i in range(5)],
                Record(id=f"volatile-{number:03d}", deleted=True),
                memory(f"stable-{number:03d}", "alpha " * (number % 7 + 1) + "edited"),
            ]

        pages = page_through_while_writing(
            session, FetchQuery(text="alpha"), Writer(path, 30, batch), 6
        )
    returned = [i for page in pages for i in page]
    assert len(returned) == len(set(returned)), "a memory came back twice"
    assert {r.id for r in stable} <= set(returned), "a memory that stayed was skipped"
    for number, page in enumerate(pages[1:]):
        # Volatile memories deleted before this page was read never show on it.
        deleted_before = {f"volatile-{n:03d}" for n in range(number + 1)}
        assert not deleted_before & set(page)
    # The first page is the best of the ranking at that moment: the most mentions first.
    assert pages[0][:6] == [f"stable-{i:03d}" for i in (48, 41, 34, 27, 20, 13)]


def test_an_edited_memory_is_found_by_its_new_words_and_the_ones_it_kept(
    session: Session,
) -> None:
    push(session, memory("m1", "alpha note"), memory("m2", "alpha other"))
    push(session, memory("m1", "alpha edited"))
    assert sorted(ids(session.fetch(FetchQuery(text="alpha")).records)) == ["m1", "m2"]
    assert ids(session.fetch(FetchQuery(text="edited")).records) == ["m1"]
    assert ids(session.fetch(FetchQuery(text="note")).records) == []
    push(session, Record(id="m1", deleted=True))
    push(session, memory("m1", "alpha again"))
    assert ids(session.fetch(FetchQuery(text="alpha again")).records) == ["m1"]


def test_a_ranked_cursor_stays_small_however_deep_the_pagination(session: Session) -> None:
    push(session, *[memory(f"m{i:03d}", f"deep note {i}") for i in range(300)])
    query, seen, longest = FetchQuery(text="deep", limit=10), [], 0
    for _ in range(40):
        page = session.fetch(query)
        seen += ids(page.records)
        if page.next_cursor is None:
            break
        longest = max(longest, len(page.next_cursor))
        query = query.model_copy(update={"cursor": page.next_cursor})
    assert sorted(seen) == [f"m{i:03d}" for i in range(300)]
    assert longest < 700  # 290 memories returned: about two bytes each


# -- cursors and tenants ----------------------------------------------------------------------


def test_damaged_or_foreign_cursors_are_invalid_requests(session: Session) -> None:
    push(session, *[memory(f"m{i}", f"cursor test {i}") for i in range(6)])
    recent = session.fetch(FetchQuery(limit=2)).next_cursor
    ranked = session.fetch(FetchQuery(text="cursor", limit=2)).next_cursor
    assert recent is not None
    assert ranked is not None
    plain = parse_query(FetchQuery(), max_limit=10).fingerprint
    words = parse_query(FetchQuery(text="cursor"), max_limit=10).fingerprint
    bad = [
        FetchQuery(cursor="garbage!"),
        FetchQuery(cursor=recent[:-4]),
        FetchQuery(cursor=ranked),  # a ranked cursor on a newest-first query
        FetchQuery(text="test", cursor=ranked),  # another query's cursor
        FetchQuery(text="cursor", cursor=recent),
        *(FetchQuery(cursor=encode_cursor("recent", plain, before=n)) for n in (-1, 2**70)),
        FetchQuery(text="cursor", cursor=encode_cursor("ranked", words, set=5, offset=2)),
        FetchQuery(text="cursor", cursor=encode_cursor("ranked", words, set="x", offset=2)),
    ]
    for query in bad:
        with pytest.raises(InvalidRequest):
            session.fetch(query)
    with pytest.raises(InvalidRequest):
        session.sync(SyncState(cursor="garbage!"))


def test_strings_no_store_can_hold_are_rejected_with_the_reason(session: Session) -> None:
    result = session.push(
        PushPayload(records=(memory("m1", "half a pair \ud800"), memory("m2", "whole")))
    )
    assert result.accepted == ("m2",)
    assert [(r.id, r.reason) for r in result.rejected] == [
        ("m1", "text must be valid Unicode (it holds a lone surrogate)")
    ]
    assert ids(session.fetch(FetchQuery()).records) == ["m2"]


def test_tenants_sharing_a_file_never_meet(path: Path) -> None:
    with store(path, tenant="north") as north, store(path, tenant="south") as south:
        push(north, *[memory(f"m{i}", f"north shared word {i}") for i in range(5)])
        push(south, memory("m0", "south shared word"))
        assert [r.data["text"] for r in south.fetch(FetchQuery()).records] == ["south shared word"]
        assert ids(north.fetch(FetchQuery(text="shared")).records) == ["m4", "m3", "m2", "m1", "m0"]
        assert ids(south.fetch(FetchQuery(text="shared")).records) == ["m0"]
        # Each tenant has its own change sequence.
        assert south.sync(SyncState()).state.bookmarks == {"seq": 1}
        assert north.sync(SyncState()).state.bookmarks == {"seq": 5}
        # A cursor of one tenant's results does not page another tenant's.
        cursor = north.fetch(FetchQuery(text="shared", limit=2)).next_cursor
        with pytest.raises(InvalidRequest):
            south.fetch(FetchQuery(text="shared", limit=2, cursor=cursor))
        push(north, Record(id="m0", deleted=True))
        assert ids(south.fetch(FetchQuery()).records) == ["m0"]


# -- the file: default location, schema versions, errors --------------------------------------


def test_without_a_path_the_store_lives_in_the_user_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    expected = tmp_path / "data" / "integrations" / "memory.sqlite3"
    assert default_path() == expected
    with store(None) as session:
        push(session, memory("m1", "in the default file"))
    with sqlite3.connect(expected) as raw:
        assert raw.execute("SELECT id, text FROM memories").fetchall() == [
            ("m1", "in the default file")
        ]


def test_an_older_file_is_migrated_and_keeps_its_memories(path: Path) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    assert migrate(raw, MIGRATIONS[:1]) == 1
    stamp = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1_000_000)
    raw.executemany(
        "INSERT INTO memories (tenant, id, text, tags, metadata, created_at, updated_at, "
        "created_order, seq) VALUES ('acme', ?, ?, '[]', '{}', ?, ?, ?, ?)",
        [(f"m{i:02d}", f"legacy note {i}", stamp, stamp, i, i) for i in range(1, 26)],
    )
    raw.execute("INSERT INTO tenant_sequences VALUES ('acme', 25)")
    raw.close()
    with store(path) as session:
        found = fetch_all(session, FetchQuery(text="legacy"), limit=10)
        assert sorted(ids(found)) == [f"m{i:02d}" for i in range(1, 26)]
        assert found[0].data["created_at"] == "2024-05-01T00:00:00Z"
        state = sync_all(session, SyncState())[1]
        assert state.bookmarks == {"seq": 25}
        push(session, memory("new", "after the migration"))
        changes, state = sync_all(session, state)
        assert (ids(changes), state.bookmarks) == (["new"], {"seq": 26})
    with sqlite3.connect(path) as raw_again:
        assert raw_again.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_file_from_before_compaction_is_migrated_and_can_be_compacted(path: Path) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    assert migrate(raw, MIGRATIONS[:2]) == 2
    old = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1_000_000)
    raw.executemany(
        "INSERT INTO memories (tenant, id, text, tags, metadata, created_at, updated_at, "
        "created_order, seq, deleted) VALUES ('acme', ?, ?, '[]', '{}', ?, ?, ?, ?, ?)",
        [("live", "legacy note", old, old, 1, 1, 0), ("gone", "", old, old, 2, 2, 1)],
    )
    raw.execute("INSERT INTO tenant_sequences VALUES ('acme', 2)")
    raw.close()
    before = encode_sync_state(1)
    with store(path) as session:
        assert changes_of(sync_all(session, before)[0]) == [("gone", True)]  # no horizon yet
        connector = session.connector
        assert isinstance(connector, SqliteMemoryConnector)
        assert connector.compact(timedelta(days=1)) == 1
        with pytest.raises(ResyncRequired, match="full sync"):
            session.sync(before)
        assert ids(session.fetch(FetchQuery(text="legacy")).records) == ["live"]
    with sqlite3.connect(path) as raw_again:
        assert raw_again.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw_again.execute(
            "SELECT tenant, last_seq, horizon FROM tenant_sequences"
        ).fetchall() == [("acme", 2, 2)]


def test_compaction_keeps_the_full_text_index_in_step(path: Path) -> None:
    with store(path) as session:
        push(session, *[memory(f"m{i}", f"shared word {i} extra{i}") for i in range(20)])
        delete(session, *[f"m{i}" for i in range(0, 20, 2)])
        push(session, memory("m0", "shared word back"), memory("m3", "shared word edited"))
        connector = session.connector
        assert isinstance(connector, SqliteMemoryConnector)
        assert connector.compact(datetime.now(UTC) + timedelta(minutes=1)) == 9
        found = sorted(ids(fetch_all(session, FetchQuery(text="shared"), limit=100)))
        assert found == sorted(["m0", *(f"m{i}" for i in range(1, 20, 2))])
        assert ids(session.fetch(FetchQuery(text="extra4")).records) == []
        assert ids(session.fetch(FetchQuery(text="edited")).records) == ["m3"]
    with sqlite3.connect(path) as raw:
        # Every live memory is indexed and nothing else; with no tombstone left in the
        # content table, FTS5 can check the index against the content row by row.
        indexed = raw.execute("SELECT id FROM memories_fts_docsize ORDER BY id").fetchall()
        live = raw.execute("SELECT ref FROM memories WHERE deleted = 0 ORDER BY ref").fetchall()
        assert indexed == live
        assert raw.execute("SELECT count(*) FROM memories WHERE deleted = 1").fetchone() == (0,)
        raw.execute("INSERT INTO memories_fts (memories_fts, rank) VALUES ('integrity-check', 1)")


def test_a_file_from_a_newer_release_is_refused_and_left_untouched(path: Path) -> None:
    with store(path) as session:
        push(session, memory("m1", "written by this release"))
    with sqlite3.connect(path) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(ConnectorError, match="newer than this release") as raised:
        store(path).open()
    assert type(raised.value) is ConnectorError
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_a_file_that_is_not_a_database_is_a_clear_connector_error(path: Path) -> None:
    path.write_bytes(b"these are not the bytes of a SQLite database\n" * 200)
    with pytest.raises(ConnectorError, match="not a SQLite database") as raised:
        store(path).open()
    assert type(raised.value) is ConnectorError


def test_a_path_that_cannot_be_opened_is_a_failed_connection(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed, match="cannot be opened"):
        store(tmp_path).open()  # a directory
    with pytest.raises(ConnectionFailed):
        store(tmp_path / "missing" / "dir" / "memories.sqlite3").open()


def test_a_writer_blocked_past_the_busy_timeout_gets_a_transient_error(path: Path) -> None:
    with store(path, busy_timeout_seconds=0.05) as session:
        push(session, memory("m1", "before the lock"))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(TransientError, match="busy"):
                session.push(PushPayload(records=(memory("m2", "blocked"),)))
            assert ids(session.fetch(FetchQuery()).records) == ["m1"]  # readers go on (WAL)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        push(session, memory("m2", "after the lock"))
        assert ids(session.fetch(FetchQuery()).records) == ["m2", "m1"]


@pytest.mark.parametrize(
    "settings",
    [
        {"path": ""},
        {"path": "   "},
        {"path": "file:memories.db?mode=ro"},
        {"path": "bad\x00name"},
        {"busy_timeout_seconds": -1},
        {"busy_timeout_seconds": "soon"},
        {"max_page_size": 0},
        {"unknown": 1},
    ],
)
def test_bad_configs_are_config_errors(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SqliteMemoryConfig.from_mapping(settings)


def test_relative_and_home_paths_are_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    with store("relative.sqlite3") as session:
        push(session, memory("m1", "relative"))
    with store("~/home.sqlite3") as session:
        push(session, memory("m1", "home"))
    assert (tmp_path / "relative.sqlite3").exists()
    assert (tmp_path / "home" / "home.sqlite3").exists()


# -- several processes ------------------------------------------------------------------------

WRITER = """
import pathlib, sys, time
from integrations.base import AuthContext, PushPayload, Record, registry
import integrations.adapters.memory_adapters.sqlite

path, writer, batches, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
# Start together: the first thing every writer does is open (and so migrate) the fresh file.
print("ready", flush=True)
go = pathlib.Path(path + ".go")
for _ in range(6000):
    if go.exists():
        break
    time.sleep(0.01)
context = AuthContext(tenant="shared", actor=writer)
with registry.open("memory.sqlite", config={"path": path}, context=context) as session:
    for batch in range(batches):
        records = tuple(
            Record(
                id=f"{writer}-{batch}-{index}",
                data={"text": f"{writer} wrote {batch} {index}",
                      "metadata": {"writer": writer, "batch": batch}},
            )
            for index in range(size)
        )
        result = session.push(PushPayload(records=records))
        assert not result.rejected, result.rejected
print("done", flush=True)
"""


def test_processes_writing_one_fresh_file_at_once_keep_every_batch(path: Path) -> None:
    batches, size = 30, 200
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(batches), str(size)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("left", "right", "middle")
    ]
    for process in writers:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    Path(f"{path}.go").touch()
    for process in writers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert out.strip() == "done"
    with store(path, tenant="shared") as session:
        changes, _ = sync_all(session, SyncState())
    assert len(changes) == 3 * batches * size
    counts: dict[tuple[Any, Any], int] = {}
    for change in changes:
        metadata = change.data["metadata"]
        assert isinstance(metadata, dict)
        key = (metadata["writer"], metadata["batch"])
        counts[key] = counts.get(key, 0) + 1
    assert set(counts.values()) == {size}
    assert len(counts) == 3 * batches
    # Change numbers are unique and increase in commit order.
    with sqlite3.connect(path) as raw:
        seqs = [row[0] for row in raw.execute("SELECT seq FROM memories ORDER BY seq")]
        assert len(seqs) == len(set(seqs)) == 3 * batches * size
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def open_together(opener: Any, path: str, count: int) -> list[BaseException]:
    """Open `path` from `count` threads released at once; the errors they met."""
    barrier = threading.Barrier(count)
    failures: list[BaseException] = []

    def open_it() -> None:
        barrier.wait()
        try:
            opener(path, busy_timeout=10).close()
        except BaseException as error:  # collected for the caller's assertion
            failures.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failures


def test_threads_opening_a_new_file_together_all_get_the_store(tmp_path: Path) -> None:
    # Switching a file to WAL needs it to itself, and SQLite answers "database is locked" at
    # once, without its busy handler, while another connection holds it.
    from integrations.adapters.memory_adapters.sqlite._backend import open_sqlite

    for attempt in range(20):
        path = str(tmp_path / f"together-{attempt}.sqlite3")
        failures = open_together(open_sqlite, path, 4)
        assert failures == [], f"attempt {attempt}: {failures[0]!r}"
        mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
