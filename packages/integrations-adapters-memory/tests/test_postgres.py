"""memory.postgres against a real PostgreSQL server, through governed sessions.

Each test works in a schema of its own, so tests never meet. The server is the session's
(`postgres_dsn`): a throwaway cluster whose DSN names a plain role, so row-level security
applies to the store's connections as it would to an application's.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from integrations.adapters.memory_adapters import (
    MemoryFilter,
    StoredMemory,
    encode_cursor,
    parse_query,
)
from integrations.adapters.memory_adapters.postgres import (
    PostgresMemoryConfig,
    PostgresMemoryConnector,
)
from integrations.adapters.memory_adapters.postgres._backend import (
    PostgresBackend,
    PostgresSettings,
    open_postgres,
)
from integrations.adapters.memory_adapters.postgres._errors import postgres_errors
from integrations.adapters.memory_adapters.postgres._schema import SCHEMA_VERSION, migrate
from integrations.base import (
    AuthContext,
    AuthError,
    ConfigError,
    ConnectionFailed,
    ConnectorError,
    FetchQuery,
    InvalidRequest,
    Record,
    ResyncRequired,
    Session,
    SyncState,
    TransientError,
    registry,
)

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from memories import QUICK, fetch_all, ids, memory, push, sync_all

PASSWORD = "pg-secret-7f3a91"


def store(dsn: str, schema: str, tenant: str = "acme", **config: Any) -> Session:
    """A governed session on `schema` of the database at `dsn`, for `tenant`."""
    return registry.open(
        "memory.postgres",
        config={"dsn": dsn, "schema_name": schema, **config},
        context=AuthContext(tenant=tenant, actor="tester"),
        governance=QUICK,
    )


def open_and_close(dsn: str, schema: str, **config: Any) -> None:
    """Open a session (connect: migrate, open the pool) and close it."""
    with store(dsn, schema, **config):
        pass


def connection_info(dsn: str, schema: str, **config: Any) -> dict[str, Any]:
    """What `connect` reports, from a connector used directly (sessions do not show it)."""
    connector = PostgresMemoryConnector()
    token = connector.auth(AuthContext(tenant="acme"))
    try:
        chosen = PostgresMemoryConfig(dsn=dsn, schema_name=schema, **config)
        return dict(connector.connect(chosen).info)
    finally:
        connector.revoke(token)


def with_password(dsn: str) -> str:
    """`dsn` (a ``postgresql://user@host...`` URI) with a password; trust auth ignores it."""
    scheme, rest = dsn.split("://", 1)
    user, location = rest.split("@", 1)
    return f"{scheme}://{user}:{PASSWORD}@{location}"


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def schema() -> str:
    return f"memtest_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def session(postgres_dsn: str, schema: str) -> Iterator[Session]:
    with store(postgres_dsn, schema) as opened:
        yield opened


@pytest.fixture
def raw(postgres_dsn: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A plain connection as the DSN's role, in autocommit mode."""
    with psycopg.connect(postgres_dsn, autocommit=True) as connection:
        yield connection


def table(schema: str, name: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(name))


# -- push, fetch, sync ------------------------------------------------------------------------


def test_pushed_memories_come_back_with_their_data_and_times(session: Session) -> None:
    push(session, memory("m1", "Buy oat milk", ["shopping", "weekly"], store="corner", qty=2.0))
    (back,) = session.fetch(FetchQuery()).records
    assert back.data["text"] == "Buy oat milk"
    assert back.data["tags"] == ["shopping", "weekly"]
    assert back.data["metadata"] == {"store": "corner", "qty": 2.0}
    metadata = back.data["metadata"]
    assert isinstance(metadata, dict)
    assert isinstance(metadata["qty"], float)
    created = datetime.fromisoformat(str(back.data["created_at"]))
    assert back.updated_at == created
    assert created.utcoffset() == timedelta(0)


def test_tag_order_and_metadata_types_survive(session: Session) -> None:
    metadata = {"n": 1, "f": 1.5, "s": "1", "b": True, "z": None, "list": [1, "a"], "o": {"k": 1}}
    push(session, memory("m1", "ordered tags", ["zeta", "alpha", "mu"], **metadata))
    (back,) = session.fetch(FetchQuery()).records
    assert back.data["tags"] == ["zeta", "alpha", "mu"]
    assert json.dumps(back.data["metadata"], sort_keys=True) == json.dumps(metadata, sort_keys=True)


def test_an_identical_upsert_changes_nothing(session: Session) -> None:
    record = memory("m1", "same text", ["a", "b"], n=1)
    push(session, record)
    first, state = sync_all(session, SyncState())
    push(session, record)
    again, _ = sync_all(session, state)
    assert again == []
    (back,) = session.fetch(FetchQuery()).records
    assert back.updated_at == first[0].updated_at


def test_any_content_difference_is_a_change(session: Session) -> None:
    push(session, memory("m1", "text", ["a", "b"], n=1))
    _, state = sync_all(session, SyncState())
    for changed in (
        memory("m1", "text", ["b", "a"], n=1),  # tag order
        memory("m1", "text", ["b", "a"], n=1.0),  # 1.0 is stored as written, unlike 1
        memory("m1", "text!", ["b", "a"], n=1.0),
    ):
        push(session, changed)
        changes, state = sync_all(session, state)
        assert ids(changes) == ["m1"]
        assert changes[0].data["metadata"] == changed.data["metadata"]


def test_updates_keep_the_creation_time_and_place(session: Session) -> None:
    push(session, memory("old", "first"), memory("new", "second"))
    before = {record.id: record for record in session.fetch(FetchQuery()).records}
    push(session, memory("old", "first, edited"))
    after = session.fetch(FetchQuery()).records
    assert ids(after) == ["new", "old"]
    edited = after[1]
    assert edited.data["created_at"] == before["old"].data["created_at"]
    edited_at, created_at = edited.updated_at, before["old"].updated_at
    assert edited_at is not None
    assert created_at is not None
    assert edited_at > created_at


def test_sync_numbers_every_change_once_in_order(session: Session) -> None:
    push(session, memory("a", "one"), memory("b", "two"), memory("c", "three"))
    first = session.sync(SyncState())
    assert ids(first.changes) == ["a", "b", "c"]
    assert first.state.bookmarks == {"seq": 3}
    push(session, memory("b", "two, edited"), Record(id="a", deleted=True))
    second = session.sync(first.state)
    assert [(r.id, r.deleted) for r in second.changes] == [("b", False), ("a", True)]
    assert second.state.bookmarks == {"seq": 5}


def test_sync_pages_follow_has_more(postgres_dsn: str, schema: str) -> None:
    with store(postgres_dsn, schema, sync_page_size=2) as session:
        push(session, *(memory(f"m{i}", f"memory {i}") for i in range(5)))
        first = session.sync(SyncState())
        assert ids(first.changes) == ["m0", "m1"]
        assert first.has_more
        changes, _ = sync_all(session, first.state)
    assert ids(changes) == ["m2", "m3", "m4"]


# -- tombstones ---------------------------------------------------------------------------------


def test_tombstones_hide_memories_and_are_synced(session: Session) -> None:
    push(session, memory("m1", "to forget"), memory("m2", "to keep"))
    _, state = sync_all(session, SyncState())
    push(session, Record(id="m1", deleted=True))
    assert ids(session.fetch(FetchQuery()).records) == ["m2"]
    assert session.fetch(FetchQuery(text="forget")).records == ()
    changes, state = sync_all(session, state)
    assert [(r.id, r.deleted) for r in changes] == [("m1", True)]
    push(session, Record(id="m1", deleted=True), Record(id="never", deleted=True))
    assert sync_all(session, state)[0] == []


def test_a_deleted_memory_comes_back_as_a_new_one(session: Session) -> None:
    push(session, memory("m1", "first life"), memory("m2", "other"))
    (original,) = [r for r in session.fetch(FetchQuery()).records if r.id == "m1"]
    push(session, Record(id="m1", deleted=True))
    push(session, memory("m1", "first life"))
    back = session.fetch(FetchQuery()).records
    assert ids(back) == ["m1", "m2"]  # newest first: created again
    assert back[0].data["created_at"] != original.data["created_at"]
    assert back[0].data["text"] == "first life"


def test_tombstones_keep_no_content(
    session: Session, raw: psycopg.Connection[Any], schema: str
) -> None:
    push(session, memory("m1", "private words", ["secret"], pin=1234))
    push(session, Record(id="m1", deleted=True))
    raw.execute("SELECT set_config('integrations.tenant', 'acme', false)")
    row = raw.execute(
        sql.SQL("SELECT text, tags, metadata_json, deleted FROM {}").format(
            table(schema, "memories")
        )
    ).fetchone()
    assert row == ("", [], "{}", True)


# -- fetch: newest first, filters ---------------------------------------------------------------


def test_recent_pages_are_newest_first_without_repeats(session: Session) -> None:
    push(session, *(memory(f"m{i:02d}", f"memory {i}") for i in range(10)))
    push(session, *(memory(f"n{i:02d}", f"later {i}") for i in range(3)))
    fetched = ids(fetch_all(session, FetchQuery(), limit=4))
    assert fetched == [f"n{i:02d}" for i in range(2, -1, -1)] + [
        f"m{i:02d}" for i in range(9, -1, -1)
    ]


def test_filters_on_tags_and_times(session: Session) -> None:
    push(session, memory("a", "one", ["x", "y"]), memory("b", "two", ["y"]), memory("c", "three"))
    assert ids(session.fetch(FetchQuery(filters={"tags": ["y"]})).records) == ["b", "a"]
    assert ids(session.fetch(FetchQuery(filters={"tags": ["y", "x"]})).records) == ["a"]
    assert session.fetch(FetchQuery(filters={"tags": ["x", "z"]})).records == ()
    push(session, memory("d", "four"))
    records = {r.id: r for r in session.fetch(FetchQuery()).records}
    first_batch = str(records["a"].data["created_at"])
    second_batch = str(records["d"].data["created_at"])
    after = session.fetch(FetchQuery(filters={"created_after": first_batch})).records
    assert ids(after) == ["d"]
    before = session.fetch(FetchQuery(filters={"created_before": second_batch})).records
    assert sorted(ids(before)) == ["a", "b", "c"]
    updated = session.fetch(FetchQuery(filters={"updated_after": second_batch})).records
    assert updated == ()


METADATA_VALUES: list[Any] = [
    1,
    1.0,
    1.5,
    0,
    -0.0,
    -7,
    10**15,
    2**53 + 1,
    float(2**53),
    "1",
    "1.0",
    "true",
    "",
    "é",
    True,
    False,
    None,
    [1],
    {"k": 1},
    [],
]
"""Values memories hold: numbers that are equal across int and float, strings that look
like numbers and booleans, booleans, null, and containers no scalar filter may match."""

FILTER_VALUES: list[Any] = [v for v in METADATA_VALUES if not isinstance(v, (list, dict))]


def test_metadata_filters_agree_with_the_reference_semantics(session: Session) -> None:
    records = [
        memory(f"v{i:02d}", f"value {i}", v=value) for i, value in enumerate(METADATA_VALUES)
    ]
    records.append(memory("absent", "no value", other=1))
    push(session, *records)
    stored = [
        StoredMemory(
            id=record.id,
            text=str(record.data["text"]),
            tags=(),
            metadata=record.data["metadata"],  # type: ignore[arg-type]  # a dict
            created_at=datetime.min,
            updated_at=datetime.min,
            seq=0,
        )
        for record in records
    ]
    for wanted in FILTER_VALUES:
        query = FetchQuery(filters={"metadata": {"v": wanted}}, limit=100)
        reference: MemoryFilter = parse_query(query, max_limit=100).filter
        expected = sorted(m.id for m in stored if reference.matches(m))
        assert expected, f"the reference matches nothing for {wanted!r}"
        found = sorted(ids(session.fetch(query).records))
        assert found == expected, f"filter v={wanted!r}"


def test_metadata_filters_combine(session: Session) -> None:
    push(
        session,
        memory("a", "one", kind="note", rank=1),
        memory("b", "two", kind="note", rank=2),
        memory("c", "three", kind="task", rank=1),
    )
    found = session.fetch(FetchQuery(filters={"metadata": {"kind": "note", "rank": 1}})).records
    assert ids(found) == ["a"]


# -- fetch: text ------------------------------------------------------------------------------


def test_text_search_needs_every_word_with_stemming(session: Session) -> None:
    push(
        session,
        memory("cats", "The cats chased mice"),
        memory("dogs", "Dogs chased the cat"),
        memory("both", "cats or dogs, chasing"),
    )
    assert sorted(ids(session.fetch(FetchQuery(text="cat chase")).records)) == [
        "both",
        "cats",
        "dogs",
    ]
    assert sorted(ids(session.fetch(FetchQuery(text="cats dogs")).records)) == ["both", "dogs"]
    # "or" is a word like any other, not an operator
    assert sorted(ids(session.fetch(FetchQuery(text="cats or mice")).records)) == ["cats"]


def test_text_search_ranks_by_relevance_then_newest(session: Session) -> None:
    push(
        session,
        memory("once", "apple pie recipe"),
        memory("thrice", "apple apple apple crumble"),
        memory("twice_old", "apple and apple"),
    )
    push(session, memory("twice_new", "apple with apple"))
    assert ids(session.fetch(FetchQuery(text="apple")).records) == [
        "thrice",
        "twice_new",
        "twice_old",
        "once",
    ]


def test_text_pages_neither_repeat_nor_skip_across_equal_ranks(session: Session) -> None:
    push(session, *(memory(f"m{i:02d}", f"needle {'hay ' * (i % 4)}") for i in range(25)))
    whole = ids(session.fetch(FetchQuery(text="needle", limit=100)).records)
    paged = ids(fetch_all(session, FetchQuery(text="needle"), limit=4))
    assert paged == whole
    assert sorted(paged) == [f"m{i:02d}" for i in range(25)]


def test_text_search_applies_filters(session: Session) -> None:
    push(
        session,
        memory("a", "garden plans", ["home"], season="spring"),
        memory("b", "garden tools", ["work"], season="spring"),
        memory("c", "garden party", ["home"], season="summer"),
    )
    query = FetchQuery(text="garden", filters={"tags": ["home"], "metadata": {"season": "spring"}})
    assert ids(session.fetch(query).records) == ["a"]


def test_only_stop_words_find_nothing(session: Session) -> None:
    push(session, memory("m1", "the and of"))
    assert session.fetch(FetchQuery(text="the")).records == ()


# -- cursors ------------------------------------------------------------------------------------


def test_damaged_and_foreign_cursors_are_invalid_requests(session: Session) -> None:
    push(session, *(memory(f"m{i}", f"word {i}") for i in range(5)))
    with pytest.raises(InvalidRequest):
        session.fetch(FetchQuery(cursor="not-a-cursor"))
    recent = session.fetch(FetchQuery(limit=2)).next_cursor
    ranked = session.fetch(FetchQuery(text="word", limit=2)).next_cursor
    assert recent is not None
    assert ranked is not None
    with pytest.raises(InvalidRequest):
        session.fetch(FetchQuery(text="word", limit=2, cursor=recent))
    with pytest.raises(InvalidRequest):
        session.fetch(FetchQuery(limit=2, cursor=ranked))
    with pytest.raises(InvalidRequest, match="another query"):
        session.fetch(FetchQuery(text="word 1", limit=2, cursor=ranked))
    with pytest.raises(InvalidRequest):
        session.sync(SyncState(cursor="damaged"))


def test_cursors_with_a_bad_position_are_invalid_requests(session: Session) -> None:
    push(session, memory("m1", "word"))
    for text, position in (
        (None, {"before": "x"}),
        (None, {"before": -1}),
        ("word", {"before": 3, "rank": "high"}),
        ("word", {"before": 3, "rank": None}),
    ):
        fingerprint = parse_query(FetchQuery(text=text), max_limit=10, scope="acme").fingerprint
        kind = "ranked" if text else "recent"
        cursor = encode_cursor(kind, fingerprint, **position)
        with pytest.raises(InvalidRequest, match="damaged"):
            session.fetch(FetchQuery(text=text, cursor=cursor))


# -- tenants and row-level security -----------------------------------------------------------


def test_tenants_see_only_their_memories(postgres_dsn: str, schema: str) -> None:
    with (
        store(postgres_dsn, schema, tenant="a") as first,
        store(postgres_dsn, schema, "b") as second,
    ):
        push(first, memory("shared", "tenant a words"))
        push(second, memory("shared", "tenant b words"), memory("own", "b only"))
        assert [r.data["text"] for r in first.fetch(FetchQuery()).records] == ["tenant a words"]
        assert ids(first.fetch(FetchQuery(text="words")).records) == ["shared"]
        assert ids(sync_all(first, SyncState())[0]) == ["shared"]
        assert ids(sync_all(second, SyncState())[0]) == ["shared", "own"]


def test_row_level_security_hides_other_tenants_rows(
    postgres_dsn: str, schema: str, raw: psycopg.Connection[Any]
) -> None:
    rls = connection_info(postgres_dsn, schema)["row_level_security"]
    assert rls == "enforced", "the DSN's role bypasses row security: test with a plain role"
    with (
        store(postgres_dsn, schema, tenant="a") as first,
        store(postgres_dsn, schema, "b") as second,
    ):
        push(first, memory("m1", "a's"))
        push(second, memory("m1", "b's"), memory("m2", "b's too"))
    memories = table(schema, "memories")
    count = sql.SQL("SELECT count(*) FROM {}").format(memories)  # no tenant condition
    assert raw.execute(count).fetchone() == (0,)  # no tenant set: nothing visible
    with raw.transaction():
        raw.execute("SELECT set_config('integrations.tenant', 'a', true)")
        assert raw.execute(count).fetchone() == (1,)
        assert raw.execute(
            sql.SQL("SELECT count(*) FROM {}").format(table(schema, "tenants"))
        ).fetchone() == (1,)
    with raw.transaction():
        raw.execute("SELECT set_config('integrations.tenant', 'b', true)")
        assert raw.execute(count).fetchone() == (2,)
    insert = sql.SQL(
        "INSERT INTO {} (tenant, id, text, tags, metadata_json, created_at, updated_at,"
        " created_seq, seq, deleted) VALUES ('b', 'x', 'forged', '[]', '{{}}', now(), now(),"
        " 99, 99, false)"
    ).format(memories)
    with raw.transaction(force_rollback=True):
        raw.execute("SELECT set_config('integrations.tenant', 'a', true)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            raw.execute(insert)


def test_row_security_can_be_switched_off_and_on_again(
    postgres_dsn: str, schema: str, raw: psycopg.Connection[Any]
) -> None:
    memories = sql.SQL("SELECT count(*) FROM {}").format(table(schema, "memories"))
    with store(postgres_dsn, schema, tenant="a", row_level_security=False) as session:
        push(session, memory("m1", "the needle"), memory("m2", "hay"))
        assert ids(session.fetch(FetchQuery(text="needle")).records) == ["m1"]
    assert (
        connection_info(postgres_dsn, schema, row_level_security=False)["row_level_security"]
        == "off"
    )
    assert raw.execute(memories).fetchone() == (2,)  # off: no tenant needed
    with store(postgres_dsn, schema, tenant="a") as session:  # the default turns it back on
        assert ids(session.fetch(FetchQuery(text="needle")).records) == ["m1"]
    assert raw.execute(memories).fetchone() == (0,)  # enforced again: no tenant, no rows


def haystack(session: Session, prefix: str) -> None:
    """4,000 memories holding "hay" and one of four other words, and four needles: enough
    rows for the planner to prefer an index for a rare word."""
    words = ["straw", "grass", "clover", "oats"]
    for batch in range(4):
        push(
            session,
            *(memory(f"{prefix}{batch}-{i}", f"hay {words[i % 4]} {i}") for i in range(1000)),
            memory(f"needle{batch}", f"a needle in the hay, lost by {prefix}"),
        )


def ranked_statement(
    backend: PostgresBackend, tenant: str, text: str
) -> tuple[str, dict[str, object]]:
    """The statement and parameters the store sends for a first page of `text`."""
    query = parse_query(FetchQuery(text=text), max_limit=100, scope=tenant)
    return backend._ranked_page(tenant, query, [], {})


def run_as(
    raw: psycopg.Connection[Any], tenant: str, statement: str, values: dict[str, object]
) -> list[tuple[Any, ...]]:
    """`statement`'s rows in a transaction whose row security setting names `tenant`."""
    with raw.transaction():
        raw.execute("SELECT set_config('integrations.tenant', %s, true)", (tenant,))
        return raw.execute(statement, values).fetchall()


@pytest.mark.parametrize("text", ["needle", "lost needle", "needle in hay"])
def test_text_queries_under_row_security_use_an_index(
    postgres_dsn: str, schema: str, raw: psycopg.Connection[Any], text: str
) -> None:
    """One word reads its best entries in order; several intersect the entries of their rare
    words ("hay" is common: the text match checks it). Either way an index serves the query
    under the policy, and the policy still decides what is seen."""
    with (
        store(postgres_dsn, schema, tenant="a") as first,
        store(postgres_dsn, schema, "b") as second,
    ):
        haystack(first, "a")
        haystack(second, "b")
        # Common words ("straw", "grass": 1,000 memories each) are checked by the text match.
        for nowhere in ("needle straw", "grass straw"):
            assert first.fetch(FetchQuery(text=nowhere)).records == ()
        assert ids(first.fetch(FetchQuery(text=text)).records) == [
            "needle3",
            "needle2",
            "needle1",
            "needle0",
        ]
    assert connection_info(postgres_dsn, schema)["row_level_security"] == "enforced"
    for name in ("memories", "memory_postings"):
        raw.execute(sql.SQL("VACUUM ANALYZE {}").format(table(schema, name)))
    backend = open_postgres(
        PostgresSettings(
            dsn=postgres_dsn, schema=schema, min_size=0, max_size=1, connect_timeout=10
        )
    )
    try:
        statement, values = ranked_statement(backend, "a", text)
    finally:
        backend.close()
    explain = f"EXPLAIN (ANALYZE, BUFFERS) {statement}"
    plan = "\n".join(str(row[0]) for row in run_as(raw, "a", explain, values))
    assert "using memory_postings_pkey" in plan, plan
    assert "Index Scan using memories_recent" in plan, plan
    assert "Seq Scan" not in plan, plan
    # The statement's own tenant condition names b: the policy (tenant a) still hides b's rows.
    assert run_as(raw, "a", statement, {**values, "tenant": "b"}) == []
    # No tenant condition at all: the policy alone keeps b's needles out.
    forgetful = sql.SQL(
        "SELECT m.id, m.text FROM {} AS w JOIN {} AS m USING (tenant, id) WHERE w.word = 'needl'"
    ).format(table(schema, "memory_words"), table(schema, "memories"))
    rows = run_as(raw, "a", forgetful.as_string(raw), {})
    assert sorted(rows) == [(f"needle{n}", "a needle in the hay, lost by a") for n in range(4)]


def test_stored_word_ranks_are_the_ranks_of_one_word_queries(
    session: Session, raw: psycopg.Connection[Any], schema: str
) -> None:
    push(
        session,
        memory("m1", "cats, cats and a cat"),
        memory("m2", "it's O'Neil's http://a.com/x'y path /usr/lo'cal and foo-bar"),
    )
    push(session, memory("m1", "one cat, edited"), memory("m3", "cats"))
    words = sql.SQL(
        "SELECT w.word, w.rank, w.id, ts_rank(m.document, {}(w.word))::float8,"
        " m.document @@ {}(w.word), numnode({}(w.word))"
        " FROM {} AS w JOIN {} AS m USING (tenant, id)"
    ).format(
        sql.Identifier(schema, "word_query"),
        sql.Identifier(schema, "word_query"),
        sql.Identifier(schema, "word_query"),
        table(schema, "memory_words"),
        table(schema, "memories"),
    )
    rows = run_as(raw, "acme", words.as_string(raw), {})
    assert {row[0] for row in rows} >= {"cat", "edit", "/x'y", "foo-bar", "/usr/lo"}
    for word, rank, memory_id, recomputed, matches, nodes in rows:
        assert (rank, matches, nodes) == (recomputed, True, 1), (word, memory_id)
    lexemes = sql.SQL(
        "SELECT w.id, array_agg(w.word ORDER BY w.word) FROM {} AS w GROUP BY w.id"
    ).format(table(schema, "memory_words"))
    documents = sql.SQL("SELECT id, tsvector_to_array(document) FROM {} WHERE NOT deleted").format(
        table(schema, "memories")
    )
    stored = dict(run_as(raw, "acme", lexemes.as_string(raw), {}))
    expected = dict(run_as(raw, "acme", documents.as_string(raw), {}))
    assert stored == {key: sorted(value) for key, value in expected.items()}
    push(session, Record(id="m2", deleted=True))
    assert "m2" not in dict(run_as(raw, "acme", lexemes.as_string(raw), {}))


def check_runs(raw: psycopg.Connection[Any], schema: str, tenant: str) -> int:
    """Check the invariants of `tenant`'s runs against its memories; return how many runs.

    Every run holds numbers, distinct, in descending order, within its range; the ranges of
    one word and rank never overlap; and the entries are exactly (word, rank of that word
    alone, creation number) of each word of each live memory.
    """
    runs = sql.SQL(
        "SELECT word, rank, first_seq, last_seq, seqs FROM {} WHERE tenant = %(tenant)s"
        " ORDER BY word, rank, first_seq"
    ).format(table(schema, "memory_postings"))
    words = sql.SQL(
        "SELECT w.word, ts_rank(m.document, {}(w.word))::float8, m.created_seq"
        " FROM {} AS m, unnest(tsvector_to_array(m.document)) AS w(word)"
        " WHERE m.tenant = %(tenant)s AND NOT m.deleted"
    ).format(sql.Identifier(schema, "word_query"), table(schema, "memories"))
    entries: list[tuple[str, float, int]] = []
    reached: dict[tuple[str, float], int] = {}
    rows = run_as(raw, tenant, runs.as_string(raw), {"tenant": tenant})
    for word, rank, first, last, numbers in rows:
        assert numbers, (word, rank, first)  # a run left empty is deleted
        assert numbers == sorted(set(numbers), reverse=True), (word, rank, numbers)
        assert first <= numbers[-1], (word, rank, first, numbers)
        assert numbers[0] <= last, (word, rank, last, numbers)
        assert reached.get((word, rank), 0) < first, (word, rank, first)  # no overlap
        reached[(word, rank)] = last
        entries.extend((word, rank, number) for number in numbers)
    assert sorted(entries) == sorted(run_as(raw, tenant, words.as_string(raw), {"tenant": tenant}))
    return len(rows)


def expected_ids(raw: psycopg.Connection[Any], schema: str, tenant: str, text: str) -> list[str]:
    """The ids a text query must return, in order, computed from the memories alone."""
    query = sql.SQL(
        "SELECT m.id FROM {} AS m, websearch_to_tsquery('english', %(search)s) AS q"
        " WHERE m.tenant = %(tenant)s AND NOT m.deleted AND m.document @@ q"
        " ORDER BY ts_rank(m.document, q) DESC, m.created_seq DESC"
    ).format(table(schema, "memories"))
    words = " ".join(f'"{word}"' for word in text.split())
    values: dict[str, object] = {"search": words, "tenant": tenant}
    return [row[0] for row in run_as(raw, tenant, query.as_string(raw), values)]


def check_answers(session: Session, raw: psycopg.Connection[Any], schema: str) -> None:
    """One-word and two-word queries, paged 7 at a time, give the memories' own order."""
    for text in ("alpha", "gamma", "delta", "alpha beta", "beta gamma"):
        paged = ids(fetch_all(session, FetchQuery(text=text), limit=7))
        assert paged == expected_ids(raw, schema, "acme", text), text


def test_runs_keep_every_word_once_in_order_through_edits_and_deletions(
    session: Session, raw: psycopg.Connection[Any], schema: str
) -> None:
    """New memories fill runs of at most 64 numbers; edits of older ones move their entries
    in and out of the runs that hold their numbers (or runs of their own), deletions empty
    runs, which go; queries page through the runs in (rank, newest) order throughout."""

    def text(i: int) -> str:
        return "alpha" + " beta" * (i % 3 == 0) + " alpha" * (i % 5 == 0) + f" n{i}"

    push(session, *(memory(f"m{i:03d}", text(i)) for i in range(150)))
    assert check_runs(raw, schema, "acme") > 150  # one run per word n<i>, several for alpha
    check_answers(session, raw, schema)
    push(session, memory("m200", "alpha gamma"))
    check_runs(raw, schema, "acme")
    push(
        session,
        memory("m010", "beta gamma"),  # leaves alpha; gamma at an old number: a run of its own
        memory("m011", "alpha alpha alpha"),  # alpha with a new rank
        memory("m012", "alpha delta n12"),  # keeps alpha and its rank, gains delta
        memory("m013", text(13), ["tagged"]),  # tags only: its entries stay
        Record(id="m014", deleted=True),
        Record(id="m015", deleted=True),
    )
    check_runs(raw, schema, "acme")
    check_answers(session, raw, schema)
    # Every memory with alpha twice: their run empties and goes; one comes back as new.
    push(session, *(Record(id=f"m{i:03d}", deleted=True) for i in range(0, 150, 5)))
    check_runs(raw, schema, "acme")
    push(session, memory("m005", "alpha alpha"), memory("m011", "alpha n11"))
    assert check_runs(raw, schema, "acme") > 0
    check_answers(session, raw, schema)
    runs = sql.SQL("SELECT count(*) FROM {}").format(table(schema, "memory_postings"))
    assert run_as(raw, "another", runs.as_string(raw), {}) == [(0,)]  # the policy holds


def test_an_edit_of_tags_or_metadata_leaves_the_runs_alone(
    session: Session, raw: psycopg.Connection[Any], schema: str
) -> None:
    push(session, memory("m1", "alpha beta"), memory("m2", "alpha"))
    versions = sql.SQL("SELECT word, xmin::text, ctid::text FROM {} ORDER BY word").format(
        table(schema, "memory_postings")
    )
    before = run_as(raw, "acme", versions.as_string(raw), {})
    push(session, memory("m1", "alpha beta", ["new"], source="edited"))
    assert run_as(raw, "acme", versions.as_string(raw), {}) == before
    assert ids(session.fetch(FetchQuery(text="beta")).records) == ["m1"]
    changes, _ = sync_all(session, SyncState())
    assert [change.id for change in changes] == ["m2", "m1"]  # the edit took a new number
    push(session, memory("m1", "alpha gamma", ["new"], source="edited"))
    assert run_as(raw, "acme", versions.as_string(raw), {}) != before
    check_runs(raw, schema, "acme")


def test_tenant_names_are_data_not_sql(postgres_dsn: str, schema: str) -> None:
    tenant = "o'brien; DROP TABLE x; -- é\\"
    with store(postgres_dsn, schema, tenant=tenant) as session:
        push(session, memory("m1", "quoted tenant"))
        assert ids(session.fetch(FetchQuery(text="quoted")).records) == ["m1"]


# -- migrations ---------------------------------------------------------------------------------


def versions(raw: psycopg.Connection[Any], schema: str) -> list[int]:
    rows = raw.execute(
        sql.SQL("SELECT version FROM {} ORDER BY version").format(table(schema, "schema_versions"))
    ).fetchall()
    return [row[0] for row in rows]


def test_a_fresh_schema_is_created_and_reopened_as_is(
    postgres_dsn: str, schema: str, raw: psycopg.Connection[Any]
) -> None:
    assert connection_info(postgres_dsn, schema)["schema_version"] == SCHEMA_VERSION
    with store(postgres_dsn, schema) as session:
        push(session, memory("m1", "kept"))
    assert versions(raw, schema) == list(range(1, SCHEMA_VERSION + 1))
    with store(postgres_dsn, schema) as session:
        assert ids(session.fetch(FetchQuery()).records) == ["m1"]
    assert versions(raw, schema) == list(range(1, SCHEMA_VERSION + 1))


def test_connectors_starting_together_migrate_once(
    postgres_dsn: str, schema: str, raw: psycopg.Connection[Any]
) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6, timeout=30)

    def open_one(index: int) -> None:
        try:
            barrier.wait()
            with store(postgres_dsn, schema, tenant=f"t{index}") as session:
                push(session, memory("m", f"from {index}"))
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert versions(raw, schema) == list(range(1, SCHEMA_VERSION + 1))


def test_a_schema_from_before_the_words_and_compaction_migrates(
    postgres_dsn: str, schema: str, raw: psycopg.Connection[Any]
) -> None:
    """Version 1 (no words, no horizon) with two tenants' memories becomes this version:
    the words of live memories are filled for every tenant, and compaction works."""
    migrate(raw, schema, target=1)
    insert = sql.SQL(
        "INSERT INTO {} (tenant, id, text, tags, metadata_json, created_at, updated_at,"
        " created_seq, seq, deleted) VALUES (%s, %s, %s, '[]', '{{}}', %s, %s, %s, %s, %s)"
    ).format(table(schema, "memories"))
    counters = sql.SQL("INSERT INTO {} (tenant, last_seq) VALUES (%s, 3)").format(
        table(schema, "tenants")
    )
    old = datetime(2020, 1, 1, tzinfo=UTC)
    for tenant in ("a", "b"):
        with raw.transaction():
            raw.execute("SELECT set_config('integrations.tenant', %s, true)", (tenant,))
            raw.execute(counters, (tenant,))
            for seq, (memory_id, text, deleted) in enumerate(
                [
                    ("kept", f"old apples of {tenant}", False),
                    ("gone", "", True),
                    ("pear", "pears", False),
                ],
                start=1,
            ):
                raw.execute(insert, (tenant, memory_id, text, old, old, seq, seq, deleted))
    assert versions(raw, schema) == [1]
    with (
        store(postgres_dsn, schema, tenant="a") as first,
        store(postgres_dsn, schema, "b") as second,
        store(postgres_dsn, schema, "a", sync_page_size=1) as paged,
    ):
        assert versions(raw, schema) == list(range(1, SCHEMA_VERSION + 1))
        early = paged.sync(SyncState()).state  # has seen change 1 only
        assert connection_info(postgres_dsn, schema)["row_level_security"] == "enforced"
        for session, tenant in ((first, "a"), (second, "b")):
            (apples,) = session.fetch(FetchQuery(text="apple")).records
            assert apples.data["text"] == f"old apples of {tenant}"
        _, state = sync_all(first, SyncState())
        assert state.bookmarks == {"seq": 3}
        connector = first.connector
        assert isinstance(connector, PostgresMemoryConnector)
        assert connector.compact(timedelta(days=1)) == 1
        with pytest.raises(ResyncRequired):
            first.sync(early)
        assert [r.id for r in sync_all(first, SyncState())[0]] == ["kept", "pear"]
        assert [r.id for r in sync_all(second, SyncState())[0]] == ["kept", "gone", "pear"]
    memory_words = sql.SQL("SELECT count(*) FROM {}").format(table(schema, "memory_words"))
    assert raw.execute(memory_words).fetchone() == (0,)  # row security covers the words too


@pytest.mark.parametrize("secured", [True, False])
def test_a_schema_with_one_row_per_word_migrates_to_runs(
    postgres_dsn: str, schema: str, raw: psycopg.Connection[Any], secured: bool
) -> None:
    """Version 3 (one row per word of each live memory) becomes this version: the rows become
    runs of at most 64 numbers for every tenant, the rows read the same through the
    ``memory_words`` view, row security stays as it was, and the store reads and writes."""
    migrate(raw, schema, target=1)
    insert = sql.SQL(
        "INSERT INTO {} (tenant, id, text, tags, metadata_json, created_at, updated_at,"
        " created_seq, seq, deleted) VALUES (%s, %s, %s, '[]', '{{}}', %s, %s, %s, %s, %s)"
    ).format(table(schema, "memories"))
    counters = sql.SQL("INSERT INTO {} (tenant, last_seq) VALUES (%s, %s)").format(
        table(schema, "tenants")
    )
    old = datetime(2020, 1, 1, tzinfo=UTC)
    sizes = {"a": 150, "b": 20}
    for tenant, size in sizes.items():
        with raw.transaction():
            raw.execute("SELECT set_config('integrations.tenant', %s, true)", (tenant,))
            raw.execute(counters, (tenant, size + 1))
            for seq in range(1, size + 1):
                text = f"apple{' apple' * (seq % 4 == 0)} n{seq} of {tenant}"
                raw.execute(insert, (tenant, f"m{seq:03d}", text, old, old, seq, seq, False))
            raw.execute(insert, (tenant, "gone", "", old, old, size + 1, size + 1, True))
    migrate(raw, schema, target=3)  # version 2 fills the words from the memories
    rows = sql.SQL("SELECT word, rank, created_seq, id FROM {} WHERE tenant = %(tenant)s").format(
        table(schema, "memory_words")
    )
    before = {
        tenant: sorted(run_as(raw, tenant, rows.as_string(raw), {"tenant": tenant}))
        for tenant in sizes
    }
    assert len(before["a"]) == 300  # "apple" and "n<seq>" ("of" and "a" are stop words)
    if not secured:
        for name in ("tenants", "memories", "memory_words"):
            raw.execute(
                sql.SQL(
                    "ALTER TABLE {} DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY"
                ).format(table(schema, name))
            )
    assert migrate(raw, schema) == 3
    assert versions(raw, schema) == list(range(1, SCHEMA_VERSION + 1))
    flags = sql.SQL(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass"
    )
    for name in ("memories", "memory_postings"):
        qualified = table(schema, name).as_string(raw)
        assert raw.execute(flags, (qualified,)).fetchone() == (secured, secured), name
    counts = {tenant: check_runs(raw, schema, tenant) for tenant in sizes}
    assert counts["a"] == 150 + 3  # n<seq> one each; apple: 113 once (2 runs), 37 twice
    for tenant in sizes:
        assert (
            sorted(run_as(raw, tenant, rows.as_string(raw), {"tenant": tenant})) == before[tenant]
        )
    runs = sql.SQL("SELECT count(*) FROM {}").format(table(schema, "memory_postings"))
    assert raw.execute(runs).fetchone() == (0 if secured else sum(counts.values()),)
    with (
        store(postgres_dsn, schema, tenant="a", row_level_security=secured) as first,
        store(postgres_dsn, schema, "b", row_level_security=secured) as second,
    ):
        for session, tenant in ((first, "a"), (second, "b")):
            paged = ids(fetch_all(session, FetchQuery(text="apple"), limit=9))
            assert paged == expected_ids(raw, schema, tenant, "apple")
            assert len(paged) == sizes[tenant]
        push(
            first, memory("m004", "pear"), memory("m005", "apple apple n5"), memory("m999", "apple")
        )
        push(first, Record(id="m006", deleted=True))
        check_runs(raw, schema, "a")
        assert ids(fetch_all(first, FetchQuery(text="apple"), limit=9)) == expected_ids(
            raw, schema, "a", "apple"
        )


def test_a_newer_schema_is_refused(
    postgres_dsn: str, schema: str, raw: psycopg.Connection[Any]
) -> None:
    with store(postgres_dsn, schema):
        pass
    raw.execute(
        sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(table(schema, "schema_versions")),
        (SCHEMA_VERSION + 1,),
    )
    with pytest.raises(ConnectorError, match="newer than this memory store knows"):
        open_and_close(postgres_dsn, schema)


# -- configuration and errors -------------------------------------------------------------------


def test_the_dsn_password_never_shows(postgres_dsn: str, schema: str) -> None:
    dsn = with_password(postgres_dsn)
    config = PostgresMemoryConfig(dsn=dsn, schema_name=schema)
    for rendering in (
        repr(config),
        str(config),
        config.model_dump_json(),
        repr(config.model_dump()),
    ):
        assert PASSWORD not in rendering
    assert PASSWORD not in json.dumps(connection_info(dsn, schema))
    with store(dsn, schema) as session:
        push(session, memory("m1", "reachable with a password in the DSN"))
    unreachable = dsn.replace(dsn.split("@", 1)[1].split("/", 1)[0], f"127.0.0.1:{closed_port()}")
    with pytest.raises(ConnectionFailed) as raised:
        open_and_close(unreachable, schema, connect_timeout_seconds=2)
    assert PASSWORD not in str(raised.value)
    assert raised.value.__cause__ is None  # the driver's error, which may quote the DSN, is dropped


def test_an_unreachable_server_is_connection_failed(schema: str) -> None:
    dsn = f"postgresql://nobody@127.0.0.1:{closed_port()}/nothing"
    with pytest.raises(ConnectionFailed, match="cannot reach the server"):
        open_and_close(dsn, schema, connect_timeout_seconds=2)


def test_an_unknown_role_is_an_auth_error(postgres_dsn: str, schema: str) -> None:
    scheme, rest = postgres_dsn.split("://", 1)
    dsn = f"{scheme}://no_such_role_{uuid.uuid4().hex[:6]}@{rest.split('@', 1)[1]}"
    with pytest.raises(AuthError):
        open_and_close(dsn, schema)


def test_a_malformed_dsn_is_a_config_error_that_does_not_quote_it(schema: str) -> None:
    dsn = f"host=127.0.0.1 password={PASSWORD} this-is-not-a-pair"
    with pytest.raises(ConfigError) as raised:
        open_and_close(dsn, schema)
    assert PASSWORD not in str(raised.value)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"schema_name": "Robert'); DROP"}, "schema_name"),
        ({"schema_name": ""}, "schema_name"),
        ({"min_connections": 5, "max_connections": 2}, "min_connections"),
        ({"connect_timeout_seconds": 0}, "connect_timeout_seconds"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        PostgresMemoryConfig.from_mapping({"dsn": "postgresql://x@127.0.0.1/x", **settings})
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("40001", TransientError),  # serialization failure
        ("40P01", TransientError),  # deadlock
        ("55P03", TransientError),  # lock not available
        ("57014", TransientError),  # statement timeout
        ("53300", TransientError),  # too many connections
        ("08006", ConnectionFailed),
        ("28P01", AuthError),
        ("42501", AuthError),  # insufficient privilege
        ("22023", InvalidRequest),  # a value PostgreSQL refuses
        ("42P01", ConnectorError),  # an undefined table: the store's own fault
    ],
)
def test_server_errors_map_by_sqlstate(
    raw: psycopg.Connection[Any], state: str, expected: type[ConnectorError]
) -> None:
    raise_it = sql.SQL(
        "DO $$ BEGIN RAISE EXCEPTION 'failed near password {}' USING ERRCODE = {}; END $$"
    ).format(sql.SQL(PASSWORD), sql.Literal(state))
    with pytest.raises(ConnectorError) as raised, postgres_errors(PASSWORD):
        raw.execute(raise_it)
    assert type(raised.value) is expected
    assert state in str(raised.value)
    assert PASSWORD not in str(raised.value)
    assert raised.value.__cause__ is None


def test_revoke_closes_the_pool(postgres_dsn: str, schema: str) -> None:
    connector = PostgresMemoryConnector()
    token = connector.auth(AuthContext(tenant="acme"))
    connector.connect(PostgresMemoryConfig(dsn=postgres_dsn, schema_name=schema))
    before = {thread.name for thread in threading.enumerate()}
    assert any("integrations-memory-postgres" in name for name in before)
    connector.revoke(token)
    after = {thread.name for thread in threading.enumerate()}
    assert not any("integrations-memory-postgres" in name for name in after)


def test_a_lost_connection_is_transient_and_the_pool_recovers(
    session: Session, raw: psycopg.Connection[Any]
) -> None:
    push(session, memory("m1", "before the cut"))
    raw.execute(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"  # waits for the exit
        " WHERE application_name = 'integrations-memory' AND pid <> pg_backend_pid()"
    )
    with pytest.raises(TransientError):
        session.fetch(FetchQuery())
    assert ids(session.fetch(FetchQuery()).records) == ["m1"]
