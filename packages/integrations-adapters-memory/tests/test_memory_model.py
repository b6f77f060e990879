"""What every memory store accepts, rejects and asks: the checks written once for all backends."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from integrations.adapters.memory_adapters import (
    MAX_TAGS,
    MemoryFilter,
    StoredMemory,
    check_push,
    decode_cursor,
    decode_sync_state,
    encode_cursor,
    encode_sync_state,
    json_equal,
    parse_query,
    text_words,
)
from integrations.base import FetchQuery, InvalidRequest, PushPayload, Record, SyncState

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def memory(record_id: str, **data: object) -> Record:
    return Record.model_validate({"id": record_id, "data": {"text": "a memory", **data}})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"colour": "blue"}, "unknown field 'colour': a memory holds text, tags and metadata"),
        ({"text": 3}, "text must be a string"),
        ({"text": "   "}, "text must not be empty"),
        ({"text": "nul \x00 inside"}, "text must not contain NUL characters"),
        ({"text": "lone \ud800"}, "text must be valid Unicode (it holds a lone surrogate)"),
        ({"tags": "work"}, "tags must be a list of strings"),
        ({"tags": ["a", "a"]}, "tags must not repeat"),
        ({"tags": [f"t{n}" for n in range(MAX_TAGS + 1)]}, f"at most {MAX_TAGS} tags"),
        ({"tags": [" "]}, "printable characters"),
        ({"metadata": []}, "metadata must be a JSON object"),
        ({"metadata": {"x": math.inf}}, "metadata numbers must be finite"),
        ({"metadata": {"x": ["nul \x00"]}}, "metadata must not contain NUL characters"),
        ({"metadata": {"lone \udc00": 1}}, "metadata must be valid Unicode"),
    ],
)
def test_a_record_that_is_no_memory_is_rejected_with_the_reason(
    data: dict[str, object], reason: str
) -> None:
    batch, accepted, rejected = check_push(
        PushPayload(records=(memory("bad", **data), memory("good")))
    )
    assert accepted == ("good",)
    assert [r.id for r in rejected] == ["bad"]
    assert reason in rejected[0].reason
    assert [m.id for m in batch.upserts] == ["good"]


def test_a_repeated_id_is_rejected_and_the_first_change_kept() -> None:
    batch, accepted, rejected = check_push(
        PushPayload(records=(memory("a"), Record(id="a", deleted=True), memory("b")))
    )
    assert accepted == ("a", "b")
    assert [(r.id, r.reason.split(":")[0]) for r in rejected] == [
        ("a", "duplicate id in this payload")
    ]
    assert [m.id for m in batch.upserts] == ["a", "b"]
    assert batch.deletes == ()


def test_stored_json_is_canonical_so_equal_memories_compare_equal_as_text() -> None:
    one = check_push(PushPayload(records=(memory("a", metadata={"b": 1, "a": "é"}),)))[0]
    two = check_push(PushPayload(records=(memory("a", metadata={"a": "é", "b": 1}),)))[0]
    assert one.upserts[0].metadata_json == two.upserts[0].metadata_json == '{"a":"é","b":1}'
    tagged = check_push(PushPayload(records=(memory("a", tags=["z", "a"]),)))[0]
    assert tagged.upserts[0].tags_json == '["z","a"]'  # the order pushed is kept


def test_a_tombstone_needs_only_its_id() -> None:
    batch, accepted, _ = check_push(PushPayload(records=(Record(id="x", deleted=True),)))
    assert (batch.deletes, accepted) == (("x",), ("x",))


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": "blue"}, "unknown filter 'colour'"),
        ({"tags": "work"}, "filter 'tags' must be a list"),
        ({"metadata": {"a": [1]}}, "must be a string, number, boolean or null"),
        ({"metadata": "a"}, "filter 'metadata' must be an object"),
        ({"created_after": "yesterday"}, "is not an ISO 8601 time"),
        ({"updated_before": "2026-01-01T00:00:00"}, "needs a UTC offset"),
        ({"created_before": 5}, "must be an ISO 8601 time string"),
    ],
)
def test_a_malformed_filter_is_an_invalid_request(filters: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_query(FetchQuery.model_validate({"filters": filters}), max_limit=100)


def test_text_without_words_is_an_invalid_request_and_blank_text_means_none() -> None:
    with pytest.raises(InvalidRequest, match="holds no words"):
        parse_query(FetchQuery(text="?!"), max_limit=100)
    assert parse_query(FetchQuery(text="  "), max_limit=100).words == ()
    assert text_words("Émile, émile and AND") == ("émile", "and")


def test_the_limit_is_capped_and_the_fingerprint_ignores_the_page() -> None:
    first = parse_query(FetchQuery(text="a b", limit=500), max_limit=100)
    second = parse_query(FetchQuery(text="A  b", limit=3, cursor="x"), max_limit=100)
    other = parse_query(FetchQuery(text="a b", filters={"tags": ["t"]}), max_limit=100)
    assert first.limit == 100
    assert first.fingerprint == second.fingerprint != other.fingerprint


def stored(**metadata: object) -> StoredMemory:
    return StoredMemory("m", "t", ("a", "b"), dict(metadata), NOW, NOW, 1)  # type: ignore[arg-type]  # JSON values


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [(1, 1.0, True), (1, True, False), (1, "1", False), (None, None, True), (False, 0, False)],
)
def test_json_equality_keeps_json_types_apart(left: object, right: object, equal: bool) -> None:
    assert json_equal(left, right) is equal
    assert json_equal(right, left) is equal


def test_the_reference_filter() -> None:
    assert MemoryFilter(tags=("a",), metadata=(("n", 1),)).matches(stored(n=1.0))
    assert not MemoryFilter(metadata=(("n", 1),)).matches(stored(n=True))
    assert not MemoryFilter(metadata=(("n", None),)).matches(stored())
    assert not MemoryFilter(tags=("c",)).matches(stored())
    assert not MemoryFilter(created_after=NOW).matches(stored())  # strictly after
    deleted = StoredMemory("m", "", (), {}, NOW, NOW, 2, deleted=True)
    assert not MemoryFilter().matches(deleted)


def test_cursors_are_bound_to_their_query_and_damage_is_an_invalid_request() -> None:
    cursor = encode_cursor("recent", "q1", before=7)
    assert decode_cursor(cursor, fingerprint="q1", kinds=frozenset({"recent"})) == (
        "recent",
        {"before": 7},
    )
    with pytest.raises(InvalidRequest, match="belongs to another query"):
        decode_cursor(cursor, fingerprint="q2", kinds=frozenset({"recent"}))
    with pytest.raises(InvalidRequest, match="not issued by this memory store"):
        decode_cursor(cursor, fingerprint="q1", kinds=frozenset({"ranked"}))
    for damaged in ("%%%", "bm90IGpzb24", cursor[:-3]):
        with pytest.raises(InvalidRequest):
            decode_cursor(damaged, fingerprint="q1", kinds=frozenset({"recent"}))


def test_sync_states_round_trip_through_json_and_refuse_foreign_ones() -> None:
    state = encode_sync_state(42)
    assert decode_sync_state(SyncState.from_json(state.to_json())) == 42
    assert decode_sync_state(SyncState()) == 0
    foreign = SyncState(cursor=encode_cursor("recent", "", seq=3))
    for bad in (
        foreign,
        SyncState(cursor="garbage"),
        SyncState(cursor=encode_cursor("sync", "", seq=-1)),
    ):
        with pytest.raises(InvalidRequest):
            decode_sync_state(bad)


def test_memory_record_builds_what_model_construct_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`memory_record` assembles a record itself when pydantic lays models out as it knows
    (the installed one does), and through `model_construct` otherwise: the two records are
    the same, down to pydantic's bookkeeping, and behave like a validated one."""
    from integrations.adapters.memory_adapters import _memory

    def build() -> Record:
        return _memory.memory_record("m1", "a memory", ("work",), {"n": 1}, "2026-01-02Z", NOW)

    assert _memory._RECORD_LAYOUT_KNOWN
    direct, again = build(), build()
    assert direct.model_fields_set is not again.model_fields_set  # each record owns its set
    monkeypatch.setattr(_memory, "_RECORD_LAYOUT_KNOWN", False)
    constructed = build()
    validated = Record.model_validate(direct.model_dump())
    for record in (direct, constructed):
        assert record == validated
        assert record.model_fields_set == validated.model_fields_set
        assert record.__pydantic_extra__ is None
        assert record.__pydantic_private__ is None
        assert record.model_dump_json() == validated.model_dump_json()
        assert record.model_copy(update={"id": "m2"}).id == "m2"
        with pytest.raises(ValueError, match="frozen"):
            record.id = "changed"  # type: ignore[misc]  # the model is frozen: the point here
    assert direct.data["tags"] == ["work"]
