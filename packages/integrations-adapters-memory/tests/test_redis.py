"""memory.redis against a real redis-server (with RediSearch), through governed sessions."""

from __future__ import annotations

import os
import random
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from integrations.adapters.memory_adapters import StoredMemory
from integrations.adapters.memory_adapters._query import parse_filters
from integrations.adapters.memory_adapters.redis import RedisMemoryConfig, RedisMemoryConnector
from integrations.adapters.memory_adapters.testing import redis_server
from integrations.base import (
    AuthContext,
    AuthError,
    ConfigError,
    Connection,
    ConnectionFailed,
    ConnectorError,
    FetchQuery,
    InvalidRequest,
    NotSupported,
    PushPayload,
    Record,
    ResyncRequired,
    Session,
    SyncState,
    TransientError,
    format_utc,
    registry,
)

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from memories import QUICK, fetch_all, ids, memory, push, sync_all


def store(url: str, prefix: str, tenant: str = "acme", **config: Any) -> Session:
    """A governed session on the store under `prefix` at `url` for `tenant`."""
    return registry.open(
        "memory.redis",
        config={"url": url, "key_prefix": prefix, **config},
        context=AuthContext(tenant=tenant, actor="tester"),
        governance=QUICK,
    )


def stored(record: Record) -> StoredMemory:
    """A fetched record as the store holds it, for `MemoryFilter.matches`."""
    assert record.updated_at is not None
    data: dict[str, Any] = dict(record.data)
    return StoredMemory(
        id=record.id,
        text=data["text"],
        tags=tuple(data["tags"]),
        metadata=data["metadata"],
        created_at=datetime.fromisoformat(data["created_at"]),
        updated_at=record.updated_at,
        seq=0,
    )


def created(record: Record) -> datetime:
    return stored(record).created_at


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses: each test has a store of its own."""
    return f"test:{uuid.uuid4().hex[:10]}"


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


# -- writing, reading, syncing ---------------------------------------------------------------


def test_push_fetch_and_sync_round_trip(redis_url: str, prefix: str) -> None:
    with store(redis_url, prefix) as session:
        result = session.push(
            PushPayload(
                records=(
                    memory("a", "first memory", ["x"], n=1),
                    memory("b", "second memory", ["x", "y"], n=2),
                    Record(id="bad", data={"text": ""}),
                )
            )
        )
        assert result.accepted == ("a", "b")
        assert [r.id for r in result.rejected] == ["bad"]
        fetched = session.fetch(FetchQuery()).records
        changes, state = sync_all(session, SyncState())
    assert ids(fetched) == ["b", "a"]  # newest first
    assert fetched[1].data["text"] == "first memory"
    assert fetched[1].data["tags"] == ["x"]
    assert fetched[1].data["metadata"] == {"n": 1}
    assert ids(changes) == ["a", "b"]
    assert state.bookmarks == {"seq": 2}


def test_an_unchanged_upsert_takes_no_number_and_keeps_its_time(
    redis_url: str, prefix: str
) -> None:
    with store(redis_url, prefix) as session:
        session.push(PushPayload(records=(memory("a", "same", ["t"], k="v"),)))
        before = session.fetch(FetchQuery()).records[0]
        state = sync_all(session, SyncState())[1]
        session.push(PushPayload(records=(memory("a", "same", ["t"], k="v"),)))
        assert sync_all(session, state)[0] == []
        assert session.fetch(FetchQuery()).records[0] == before
        session.push(PushPayload(records=(memory("a", "same", ["t"], k="w"),)))
        changed, after = sync_all(session, state)
    assert ids(changed) == ["a"]
    assert after.bookmarks == {"seq": 2}
    assert changed[0].data["created_at"] == before.data["created_at"]


def test_tombstones_and_resurrection(redis_url: str, prefix: str) -> None:
    with store(redis_url, prefix) as session:
        session.push(PushPayload(records=(memory("a", "alpha one"), memory("b", "alpha two"))))
        first_created = created(session.fetch(FetchQuery()).records[1])
        state = sync_all(session, SyncState())[1]
        session.push(
            PushPayload(records=(Record(id="a", deleted=True), Record(id="zz", deleted=True)))
        )
        changes, state = sync_all(session, state)
        assert [(r.id, r.deleted) for r in changes] == [("a", True)]
        assert ids(session.fetch(FetchQuery()).records) == ["b"]
        assert ids(session.fetch(FetchQuery(text="alpha")).records) == ["b"]
        session.push(PushPayload(records=(Record(id="a", deleted=True),)))
        assert sync_all(session, state)[0] == []  # deleting a deleted memory changes nothing
        session.push(PushPayload(records=(memory("a", "alpha one"),)))
        newest = session.fetch(FetchQuery()).records
        changes = sync_all(session, state)[0]
    assert ids(newest) == ["a", "b"]  # resurrected: a new memory, created last
    assert created(newest[0]) > first_created
    assert [(r.id, r.deleted) for r in changes] == [("a", False)]


def test_sync_pages_in_number_order(redis_url: str, prefix: str) -> None:
    with store(redis_url, prefix, sync_page_size=3) as session:
        for start in range(0, 10, 5):
            batch = [memory(f"m{n}", f"memory {n}") for n in range(start, start + 5)]
            session.push(PushPayload(records=tuple(batch)))
        first = session.sync(SyncState())
        changes, _ = sync_all(session, SyncState())
    assert first.has_more
    assert len(first.changes) == 3
    assert ids(changes) == [f"m{n}" for n in range(10)]


# -- filters -------------------------------------------------------------------------------


FILTERS: list[dict[str, Any]] = [
    {"tags": ["work"]},
    {"tags": ["work", "Urgent"]},
    {"tags": ["a,b"]},
    {"tags": ["{x}"]},
    {"metadata": {"n": 1}},
    {"metadata": {"n": 1.0}},
    {"metadata": {"n": True}},
    {"metadata": {"n": "1"}},
    {"metadata": {"n": None}},
    {"metadata": {"missing": None}},
    {"tags": ["work"], "metadata": {"n": 1}},
]


def test_filters_agree_with_the_reference(redis_url: str, prefix: str) -> None:
    values: list[Any] = [1, 1.0, True, "1", None, 2, "x"]
    tag_sets = [["work"], ["work", "Urgent"], ["urgent"], ["a,b"], ["{x}", "work"], []]
    records = [
        memory(f"m{n}", f"note number {n} about planning", tag_sets[n % 6], n=values[n % 7])
        for n in range(42)
    ]
    with store(redis_url, prefix, max_scan=100) as session:
        session.push(PushPayload(records=tuple(records)))
        everything = [stored(r) for r in fetch_all(session, FetchQuery(limit=100), limit=None)]
        moment = sorted(m.created_at for m in everything)[20].isoformat()
        for filters in [*FILTERS, {"created_after": moment}, {"created_before": moment}]:
            reference = parse_filters(filters)
            expected = [m.id for m in everything if reference.matches(m)]
            newest = ids(fetch_all(session, FetchQuery(filters=filters), limit=3))
            assert newest == expected, filters
            found = ids(fetch_all(session, FetchQuery(text="planning", filters=filters), limit=4))
            assert sorted(found) == sorted(expected), filters


def test_a_filtered_page_examines_at_most_max_scan_memories(redis_url: str, prefix: str) -> None:
    with store(redis_url, prefix, max_scan=100) as session:
        session.push(PushPayload(records=(memory("old", "the one", ["rare"]),)))
        session.push(PushPayload(records=tuple(memory(f"m{n}", "filler") for n in range(250))))
        first = session.fetch(FetchQuery(filters={"tags": ["rare"]}, limit=5))
        everything = fetch_all(session, FetchQuery(filters={"tags": ["rare"]}), limit=5)
    assert first.records == ()
    assert first.next_cursor is not None
    assert ids(everything) == ["old"]


# -- text search ---------------------------------------------------------------------------


def test_text_search_matches_every_word_and_ranks(redis_url: str, prefix: str) -> None:
    with store(redis_url, prefix) as session:
        session.push(
            PushPayload(
                records=(
                    memory("strong", "alpha alpha beta"),
                    memory("weak", "alpha beta beta beta"),
                    memory("both", "alpha epsilon"),
                    memory("accent", "Émile went to the café; and/or ÜBER"),
                )
            )
        )
        session.push(PushPayload(records=(memory("twin-new", "gamma delta"),)))
        session.push(PushPayload(records=(memory("twin-newer", "gamma delta"),)))
        assert ids(session.fetch(FetchQuery(text="alpha epsilon")).records) == ["both"]
        ranked = ids(session.fetch(FetchQuery(text="alpha")).records)
        assert ranked[-1] == "weak"
        assert set(ranked) == {"strong", "weak", "both"}
        ties = ids(session.fetch(FetchQuery(text="gamma")).records)
        assert ties == ["twin-newer", "twin-new"]  # equal scores: newest first
        for text in ("émile", "ÉMILE", "über", "and or", "CAFÉ"):
            assert ids(session.fetch(FetchQuery(text=text)).records) == ["accent"], text
        assert session.fetch(FetchQuery(text="nothing-like-this")).records == ()


def test_text_pages_neither_repeat_nor_skip_while_writers_shift_the_scores(
    redis_url: str, prefix: str
) -> None:
    originals = [memory(f"m{n:02d}", "needle " * (1 + n % 5) + f"hay {n}") for n in range(30)]
    with store(redis_url, prefix) as session, store(redis_url, prefix) as writer:
        session.push(PushPayload(records=tuple(originals)))
        query = FetchQuery(text="needle", limit=4)
        page = session.fetch(query)
        seen = ids(page.records)
        removed: set[str] = set()
        for step in range(100):
            if page.next_cursor is None:
                break
            # Writers change the corpus (and so every score) between pages.
            writer.push(
                PushPayload(
                    records=(
                        memory(f"new{step}", "needle needle needle needle needle needle"),
                        memory(f"m{(step * 7) % 30:02d}x", "needle unrelated"),
                    )
                )
            )
            victim = f"m{29 - step:02d}"
            if victim not in seen:
                writer.push(PushPayload(records=(Record(id=victim, deleted=True),)))
                removed.add(victim)
            page = session.fetch(query.model_copy(update={"cursor": page.next_cursor}))
            seen += ids(page.records)
    assert len(seen) == len(set(seen)), "a page repeated a memory"
    # Memories created while paging may join later pages; every original that stayed comes once.
    assert {r for r in seen if r[:3] != "new" and not r.endswith("x")} == {
        r.id for r in originals
    } - removed


def test_a_text_search_returns_the_records_a_newest_first_fetch_returns(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    with store(redis_url, prefix) as session:
        session.push(
            PushPayload(records=(memory("a", "shared word", ["x"], n=1), memory("b", "shared")))
        )
        session.push(PushPayload(records=(memory("a", "shared word again", ["x"], n=2),)))
        searched = session.fetch(FetchQuery(text="shared")).records
        newest = session.fetch(FetchQuery()).records
        # A time stored in the spelling of earlier versions comes back in today's spelling.
        key = f"{prefix}:{{{b'acme'.hex()}}}:m:b"
        raw.hset(key, "a", str(raw.hget(key, "a")).replace("Z", "+00:00"))
        rewritten = session.fetch(FetchQuery(text="shared")).records
    assert sorted(searched, key=lambda r: r.id) == sorted(newest, key=lambda r: r.id)
    assert rewritten == searched
    for record in searched:
        assert record.updated_at is not None
        assert str(record.data["created_at"]).endswith("Z")
    edited = next(record for record in searched if record.id == "a")
    assert edited.updated_at is not None
    assert str(edited.data["created_at"]) < format_utc(edited.updated_at)


def test_a_text_search_skips_hashes_removed_or_emptied_behind_the_store(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    """The index keeps a memory whose hash an operator deleted, or whose fields were
    removed: the search reply then lists it with fewer fields, or none. Such a match is
    left out, and a hash missing only its optional fields still reads with their defaults."""
    with store(redis_url, prefix) as session:
        session.push(
            PushPayload(
                records=(
                    memory("kept", "shared word", ["x"], n=1),
                    memory("gone", "shared word"),
                    memory("bare", "shared word", ["y"], n=3),
                    memory("orderless", "shared word"),
                )
            )
        )
        base = f"{prefix}:{{{b'acme'.hex()}}}:m:"
        raw.delete(base + "gone")
        raw.hdel(base + "bare", "g", "x")
        raw.hdel(base + "orderless", "c")
        found = {record.id: record for record in session.fetch(FetchQuery(text="shared")).records}
    assert sorted(found) == ["bare", "kept"]
    assert found["bare"].data["tags"] == []
    assert found["bare"].data["metadata"] == {}
    assert found["kept"].data["tags"] == ["x"]
    assert found["kept"].data["metadata"] == {"n": 1}


def connected(url: str, prefix: str) -> tuple[RedisMemoryConnector, Connection]:
    connector = RedisMemoryConnector()
    connector.auth(AuthContext(tenant="acme"))
    return connector, connector.connect(RedisMemoryConfig(url=url, key_prefix=prefix))


def test_text_queries_need_redisearch(redis_url: str, prefix: str) -> None:
    connector, connection = connected(redis_url, prefix)
    assert connection.info["text_search"] == "RediSearch 1.2.0"
    connector.revoke(connector.auth(AuthContext(tenant="acme")))
    with redis_server(search=False) as url:
        connector, connection = connected(url, prefix)
        assert connection.info["text_search"] is None
        with store(url, prefix) as session:
            session.push(PushPayload(records=(memory("a", "plain words"),)))
            assert ids(session.fetch(FetchQuery()).records) == ["a"]
            with pytest.raises(NotSupported, match="needs the RediSearch module"):
                session.fetch(FetchQuery(text="plain"))


# -- tenants -------------------------------------------------------------------------------


def test_tenants_never_share_keys_or_memories(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    tenants = ["acme", "acme}:m:x", "{acme}", "ac:me"]
    for tenant in tenants:
        with store(redis_url, prefix, tenant) as session:
            session.push(PushPayload(records=(memory("shared", f"secret of {tenant} word"),)))
    keys: dict[str, set[str]] = {}
    for tenant in tenants:
        with store(redis_url, prefix, tenant) as session:
            fetched = session.fetch(FetchQuery()).records
            searched = session.fetch(FetchQuery(text="secret word")).records
            changes = sync_all(session, SyncState())[0]
        for records in (fetched, searched, changes):
            assert [r.data["text"] for r in records] == [f"secret of {tenant} word"]
        tag = "{" + tenant.encode().hex() + "}"
        keys[tenant] = set(raw.scan_iter(match=f"{prefix}:{tag}:*"))
        assert keys[tenant]
    everything = set(raw.scan_iter(match=f"{prefix}:*"))
    assert sum(len(found) for found in keys.values()) == len(everything - {f"{prefix}:idx"})


def test_a_cursor_from_another_tenant_reads_nothing_of_theirs(redis_url: str, prefix: str) -> None:
    with store(redis_url, prefix, "one") as session:
        session.push(PushPayload(records=tuple(memory(f"m{n}", "word") for n in range(5))))
        cursor = session.fetch(FetchQuery(text="word", limit=2)).next_cursor
    with store(redis_url, prefix, "two") as session, pytest.raises(InvalidRequest):
        session.fetch(FetchQuery(text="word", limit=2, cursor=cursor))


# -- atomicity -----------------------------------------------------------------------------


def test_readers_see_a_batch_wholly_or_not_at_all(redis_url: str, prefix: str) -> None:
    batches, size = 25, 40
    done = threading.Event()
    seen_partial: list[dict[str, int]] = []

    def read() -> None:
        with store(redis_url, prefix, sync_page_size=10_000) as reader:
            while True:
                finished = done.is_set()  # one more round after the last batch
                for records in (
                    sync_all(reader, SyncState())[0],
                    reader.fetch(FetchQuery(limit=10_000)).records,
                    reader.fetch(FetchQuery(text="batch", limit=10_000)).records,
                ):
                    counts: dict[str, int] = {}
                    for record in records:
                        group = record.id.split("-")[0]
                        counts[group] = counts.get(group, 0) + 1
                    if any(count != size for count in counts.values()):
                        seen_partial.append(counts)
                if finished:
                    return

    thread = threading.Thread(target=read)
    thread.start()
    try:
        with store(redis_url, prefix) as writer:
            for number in range(batches):
                records = [
                    memory(f"b{number}-{n}", f"batch {number} item {n}") for n in range(size)
                ]
                writer.push(PushPayload(records=tuple(records)))
    finally:
        done.set()
        thread.join(timeout=60)
    assert not seen_partial


# -- connections, credentials and errors ---------------------------------------------------


def test_the_password_never_shows(redis_url: str, prefix: str, raw: redis.Redis) -> None:
    user, password = f"tester{uuid.uuid4().hex[:6]}", "pw-" + uuid.uuid4().hex
    raw.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all"])
    address = redis_url.split("://", 1)[1]
    url = f"redis://{user}:{password}@{address}"
    try:
        with store(url, prefix) as session:
            session.push(PushPayload(records=(memory("a", "kept safe"),)))
        connector, connection = connected(url, prefix)
        connector.revoke(connector.auth(AuthContext(tenant="acme")))
        shown = [repr(connection), connection.model_dump_json(), repr(connector)]
        config = RedisMemoryConfig.from_mapping({"url": url, "key_prefix": prefix})
        shown += [repr(config), str(config), config.model_dump_json()]
        wrong = url.replace(password, "not-" + password)
        with pytest.raises(AuthError) as refused, store(wrong, prefix):
            pass
        shown.append(str(refused.value))
    finally:
        raw.acl_deluser(user)
    assert not [text for text in shown if password in text]


def test_a_refused_connection_is_connection_failed(prefix: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = f"redis://127.0.0.1:{port}/0"
    with pytest.raises(ConnectionFailed, match="cannot connect to Redis"), store(refused, prefix):
        pass


def test_a_url_that_is_not_redis_is_a_config_error(prefix: str) -> None:
    connector = RedisMemoryConnector()
    connector.auth(AuthContext(tenant="acme"))
    with pytest.raises(ConfigError, match="redis://"):
        connector.connect(RedisMemoryConfig(url="http://user:secret@127.0.0.1/", key_prefix=prefix))


def test_damaged_cursors_and_states_are_invalid_requests(redis_url: str, prefix: str) -> None:
    with store(redis_url, prefix) as session:
        session.push(PushPayload(records=tuple(memory(f"m{n}", "word") for n in range(5))))
        recent = session.fetch(FetchQuery(limit=2)).next_cursor
        ranked = session.fetch(FetchQuery(text="word", limit=2)).next_cursor
        assert recent is not None
        assert ranked is not None
        for cursor, text in ((recent, "word"), (ranked, None), ("garbage", None), ("x", "word")):
            with pytest.raises(InvalidRequest):
                session.fetch(FetchQuery(text=text, limit=2, cursor=cursor))
        with pytest.raises(InvalidRequest):
            session.sync(SyncState(cursor="garbage"))


def test_a_refused_command_names_the_step_not_the_data(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    tag = "{" + b"acme".hex() + "}"
    raw.set(f"{prefix}:{tag}:changes", "not a sorted set holding private-data")
    with store(redis_url, prefix) as session, pytest.raises(ConnectorError) as refused:
        session.push(PushPayload(records=(memory("a", "private-data"),)))
    message = str(refused.value)
    assert "write script" in message
    assert "WRONGTYPE" in message
    assert "private-data" not in message


def test_redis_server_names_the_missing_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.devnull)
    with pytest.raises(RuntimeError, match="redis-server is not installed"), redis_server():
        pass


def test_sessions_release_their_connections(redis_url: str, prefix: str, raw: redis.Redis) -> None:
    before = len(raw.client_list())
    for _ in range(5):
        with store(redis_url, prefix) as session:
            session.fetch(FetchQuery())
    assert len(raw.client_list()) == before


def test_scripts_flushed_from_the_server_are_loaded_again(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    with store(redis_url, prefix) as session:
        session.push(PushPayload(records=(memory("a", "before the flush"),)))
        raw.script_flush()
        session.push(PushPayload(records=(memory("b", "after the flush"),)))
        assert ids(session.fetch(FetchQuery(text="flush")).records) == ["b", "a"]


def test_a_command_that_times_out_is_transient(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    with store(redis_url, prefix, socket_timeout_seconds=0.2) as session:
        raw.client_pause(2000, all=True)  # every client's commands wait
        try:
            with pytest.raises(TransientError, match="connection to Redis failed"):
                session.fetch(FetchQuery())
        finally:
            raw.client_unpause()
        assert session.fetch(FetchQuery()).records == ()


# -- compaction ----------------------------------------------------------------------------

WRITERS, BATCHES, IDS_PER_WRITER = 3, 30, 12
DEADLINE = 300.0
"""Seconds the threads of a concurrency test get: generous, so only a hang fails."""


def test_compaction_while_writers_run_loses_nothing(redis_url: str, prefix: str) -> None:
    """Writers upsert, delete and resurrect while compactions remove every tombstone and a
    syncer follows: each sync is complete or refused, and nothing live is lost."""
    models: list[dict[str, str]] = [{} for _ in range(WRITERS)]
    errors: list[BaseException] = []
    writing = [threading.Thread(target=_write, args=(redis_url, prefix, n, models[n], errors))
               for n in range(WRITERS)]  # fmt: skip
    compactions = threading.Thread(target=_compact_while, args=(redis_url, prefix, writing, errors))
    for thread in [*writing, compactions]:
        thread.start()
    view: dict[str, str] = {}
    state, refused = SyncState(), 0
    with store(redis_url, prefix) as syncer:
        deadline = time.monotonic() + DEADLINE
        while any(thread.is_alive() for thread in writing) and time.monotonic() < deadline:
            state, refused = _follow(syncer, state, view, refused)
        for thread in [*writing, compactions]:
            thread.join(timeout=DEADLINE)
        assert not errors, errors
        state, refused = _follow(syncer, state, view, refused)
        live = {r.id: str(r.data["text"]) for r in fetch_all(syncer, FetchQuery(limit=100))}
    expected = {key: text for model in models for key, text in model.items()}
    assert live == expected
    assert view == expected
    _check_layout(redis_url, prefix, "acme", expected)


def _write(
    url: str, prefix: str, writer: int, model: dict[str, str], errors: list[BaseException]
) -> None:
    """`BATCHES` batches over the writer's own ids; `model` ends as what must be live."""
    rng = random.Random(writer)
    try:
        with store(url, prefix) as session:
            for batch in range(BATCHES):
                records: list[Record] = []
                for number in rng.sample(range(IDS_PER_WRITER), 4):
                    key = f"w{writer}-{number}"
                    if key in model and rng.random() < 0.5:
                        records.append(Record(id=key, deleted=True))
                        del model[key]
                    else:
                        model[key] = f"writer {writer} batch {batch} memory {number}"
                        records.append(memory(key, model[key]))
                session.push(PushPayload(records=tuple(records)))
    except BaseException as error:  # reported by the test
        errors.append(error)


def _compact_while(
    url: str, prefix: str, writers: list[threading.Thread], errors: list[BaseException]
) -> None:
    """Compact every tombstone, again and again, until the writers are done."""
    connector, _ = connected(url, prefix)
    backend = connector._backend  # the bare backend, as a maintenance job uses it
    assert backend is not None
    deadline = time.monotonic() + DEADLINE
    try:
        while any(thread.is_alive() for thread in writers) and time.monotonic() < deadline:
            backend.compact(datetime.now(UTC) + timedelta(days=1), "acme")
    except BaseException as error:  # reported by the test
        errors.append(error)
    finally:
        connector.revoke(connector.auth(AuthContext(tenant="acme")))


def _follow(
    session: Session, state: SyncState, view: dict[str, str], refused: int
) -> tuple[SyncState, int]:
    """Apply the changes after `state` to `view`; after `ResyncRequired`, start over."""
    for _ in range(1000):
        try:
            changes, state = sync_all(session, state)
        except ResyncRequired:
            view.clear()
            state, refused = SyncState(), refused + 1
            continue
        for record in changes:
            if record.deleted:
                view.pop(record.id, None)
            else:
                view[record.id] = str(record.data["text"])
        return state, refused
    raise AssertionError("every sync was refused")


def _check_layout(url: str, prefix: str, tenant: str, live: dict[str, str]) -> None:
    """The tenant's sets agree with its hashes: created holds the live memories, tombstones
    the deleted ones, changes both."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        base = f"{prefix}:{{{tenant.encode().hex()}}}:"
        created = set(client.zrange(base + "created", 0, -1))
        tombstones = set(client.zrange(base + "tombstones", 0, -1))
        changes = set(client.zrange(base + "changes", 0, -1))
        hashes = {key.removeprefix(base + "m:") for key in client.scan_iter(match=base + "m:*")}
        deleted = {key for key in hashes if client.hexists(base + "m:" + key, "d")}
    finally:
        client.close()
    assert created == set(live) == hashes - deleted
    assert tombstones == deleted
    assert changes == hashes


def snapshot(client: redis.Redis, patterns: list[str]) -> dict[bytes, Any]:
    """Every key matching one of `patterns`, with its serialised value."""
    return {key: client.dump(key) for pattern in patterns for key in client.scan_iter(pattern)}


def test_compaction_touches_no_other_tenant_or_store(redis_url: str, prefix: str) -> None:
    other_prefix = prefix + "-other"
    tenants = ["north", "x}:seq", "{south}"]  # names that spell key syntax
    for key_prefix in (prefix, other_prefix):
        for tenant in tenants:
            with store(redis_url, key_prefix, tenant) as session:
                push(session, memory("kept", f"{tenant} kept"), memory("gone", f"{tenant} gone"))
                push(session, Record(id="gone", deleted=True))
    others = [f"{prefix}:{{{tenant.encode().hex()}}}:*" for tenant in tenants[1:]]
    elsewhere = [f"{other_prefix}:*"]
    later = datetime.now(UTC) + timedelta(days=1)
    client = redis.Redis.from_url(redis_url)
    try:
        before = snapshot(client, others + elsewhere)
        with store(redis_url, prefix, "north") as session:
            connector = session.connector
            assert isinstance(connector, RedisMemoryConnector)
            assert connector.compact(later) == 1
        assert snapshot(client, others + elsewhere) == before
        connector, _ = connected(redis_url, prefix)
        backend = connector._backend  # the bare backend, as a maintenance job uses it
        assert backend is not None
        assert backend.compact(later) == 2  # every tenant of the prefix: one each left
        assert backend.compact(later) == 0
        untouched = {k: v for k, v in before.items() if k.startswith(other_prefix.encode())}
        assert snapshot(client, elsewhere) == untouched
    finally:
        client.close()
    for tenant in tenants:
        with store(redis_url, prefix, tenant) as session:
            fetched = session.fetch(FetchQuery()).records
            changes = sync_all(session, SyncState())[0]
        assert [r.data["text"] for r in fetched] == [f"{tenant} kept"]
        assert [(r.id, r.deleted) for r in changes] == [("kept", False)]


def test_the_first_compaction_finds_tombstones_written_before_the_tombstone_set(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    """Stores written by earlier versions have no tombstone set, and spell times with
    ``+00:00`` (and without a fraction when it is zero): the times compare as times."""
    with store(redis_url, prefix) as session:
        push(session, *(memory(key, f"memory {key}") for key in ("live", "early", "late")))
        push(session, Record(id="early", deleted=True), Record(id="late", deleted=True))
        base = f"{prefix}:{{{b'acme'.hex()}}}:"
        raw.delete(base + "tombstones")
        raw.hset(base + "m:early", "u", "2020-01-01T10:00:00+00:00")
        raw.hset(base + "m:late", "u", "2020-01-01T10:00:00.500000Z")
        connector = session.connector
        assert isinstance(connector, RedisMemoryConnector)
        assert connector.compact(datetime(2020, 1, 1, 10, 0, 0, 250_000, tzinfo=UTC)) == 1
        assert [(r.id, r.deleted) for r in sync_all(session, SyncState())[0]] == [
            ("live", False),
            ("late", True),
        ]
        assert raw.get(base + "horizon") == "4"  # the first deletion's number
        assert connector.compact(datetime(2020, 1, 1, 10, 0, 1, tzinfo=UTC)) == 1
        assert raw.get(base + "horizon") == "5"
        assert ids(session.fetch(FetchQuery(text="memory")).records) == ["live"]
