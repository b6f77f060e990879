"""``memory.knowledge_vault`` against a real Knowledge Vault API served on 127.0.0.1.

Sessions are opened through the registry, as platform code opens them, so the manifest's
declarations (push not idempotent) are what the retry machinery sees. Failures are real:
the server answers 503, 500 or 429, holds an answer back until the client's timeout fires, or
closes the connection without answering.

The `vault` fixture runs each test against both modes of the test server: the API as
documented (a list of documents, ingest answers the new id) and as the deployed service
answers (Chroma's parallel lists without text, ingest answers 500 after storing). Tests of
one answer shape script the server's ``/query`` answer instead.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from integrations.adapters.memory_adapters.knowledge_vault import (
    OUTCOME_UNKNOWN,
    RAW_ANSWER_ID,
    KnowledgeVaultConfig,
    KnowledgeVaultConnector,
    outcome_unknown,
)
from integrations.adapters.memory_adapters.testing import KnowledgeVaultServer
from integrations.base import (
    NO_RETRY,
    AuthContext,
    AuthError,
    ConfigError,
    ConnectionFailed,
    ConnectorError,
    EgressPolicy,
    EgressRule,
    FetchQuery,
    Governance,
    InvalidRequest,
    LifecycleError,
    MemoryAuditSink,
    NotSupported,
    PushPayload,
    PushResult,
    RateLimited,
    Record,
    Registry,
    RetryPolicy,
    Session,
    SyncState,
    TransientError,
    UntrustedConfig,
    UntrustedPolicy,
    format_utc,
)
from integrations.base.testing import HTTPDrop, HTTPReply

pytestmark = pytest.mark.timeout(60)

NAME = "memory.knowledge_vault"
ALICE = AuthContext(tenant="acme", actor="alice")
FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02, jitter=0, deadline=5)
MODES = ("documents", "deployed")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


@pytest.fixture(params=MODES)
def vault(request: pytest.FixtureRequest) -> Iterator[KnowledgeVaultServer]:
    """A Knowledge Vault with no documents, in each mode of the test server."""
    with KnowledgeVaultServer(mode=request.param) as server:
        yield server


@pytest.fixture
def scripted() -> Iterator[KnowledgeVaultServer]:
    """A Knowledge Vault whose answers a test scripts (``scripted.http.script``)."""
    with KnowledgeVaultServer() as server:
        yield server


def open_session(
    registry: Registry,
    server: KnowledgeVaultServer,
    *,
    context: AuthContext = ALICE,
    retry: RetryPolicy = FAST,
    audit: MemoryAuditSink | None = None,
    **config: Any,
) -> Session:
    governance = Governance(audit=audit or MemoryAuditSink(), retry=retry, breaker=None)
    return registry.open(
        NAME,
        config={"url": server.url, "timeout_seconds": 5, **config},
        context=context,
        governance=governance,
    )


@pytest.fixture
def session(registry: Registry, vault: KnowledgeVaultServer) -> Iterator[Session]:
    with open_session(registry, vault) as opened:
        yield opened


def memory(
    record_id: str, text: str, tags: list[str] | None = None, metadata: dict[str, Any] | None = None
) -> Record:
    data = {"text": text, "tags": tags or [], "metadata": metadata or {}}
    return Record(id=record_id, data=data)


def vault_connector(session: Session) -> KnowledgeVaultConnector:
    connector = session.connector
    assert isinstance(connector, KnowledgeVaultConnector)
    return connector


def deployed(server: KnowledgeVaultServer) -> bool:
    return server.mode == "deployed"


def text_back(server: KnowledgeVaultServer, text: str) -> str | None:
    """The text a fetch returns for a memory pushed with `text`: none from the deployed service."""
    return None if deployed(server) else text


def unknown_ids(result: PushResult) -> list[str]:
    return [rejection.id for rejection in result.rejected if outcome_unknown(rejection)]


def push(session: Session, server: KnowledgeVaultServer, *records: Record) -> None:
    """Push `records`, each of which the server stores: accepted, or (the deployed service
    answering 500 after storing) rejected as an unknown outcome."""
    result = session.push(PushPayload(records=records))
    ids = [record.id for record in records]
    if deployed(server):
        assert result.accepted == ()
        assert unknown_ids(result) == ids
        assert len(result.rejected) == len(ids)
    else:
        assert result.rejected == ()
        assert list(result.accepted) == ids


def fetch_ids(session: Session, text: str, **filters: Any) -> list[str]:
    result = session.fetch(FetchQuery(text=text, filters=filters))
    assert result.next_cursor is None
    return [record.id for record in result.records]


def wait_for_documents(server: KnowledgeVaultServer, count: int) -> None:
    """Wait (bounded) until the server stored `count` documents: a request the client gave up
    on is still being answered."""
    deadline = time.monotonic() + 5
    while len(server.documents()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.documents()) == count


# -- push and fetch map onto /ingest and /query ----------------------------------------------


def test_push_ingests_one_document_per_memory(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    push(
        session,
        vault,
        memory("m1", "Paris is the capital of France", ["geo"], {"source": "atlas", "page": 12}),
        memory("m2", "Berlin is the capital of Germany"),
    )
    documents = vault.documents()
    assert vault.requests("/ingest") == 2
    assert [(d.content, d.owner) for d in documents] == [
        ("Paris is the capital of France", "alice"),
        ("Berlin is the capital of Germany", "alice"),
    ]
    first = documents[0].metadata
    assert {k: v for k, v in first.items() if not k.startswith("_memory_")} == {
        "source": "atlas",
        "page": 12,
    }
    assert first["_memory_id"] == "m1"
    assert first["_memory_tags"] == ["geo"]
    assert first["_memory_tenant"] == "acme"
    assert isinstance(first["_memory_created_at"], str)


def test_fetch_rebuilds_pushed_memories_exactly(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    metadata = {"nested": {"list": [1, 2.5, None, True]}, "text": "é", "one": 1}
    push(session, vault, memory("m1", "capital capital city", ["b", "a"], metadata))
    push(session, vault, memory("m2", "a capital"))
    records = session.fetch(FetchQuery(text="Capital")).records
    assert [record.id for record in records] == ["m1", "m2"]  # more occurrences rank first
    first, second = records
    assert first.data["text"] == text_back(vault, "capital capital city")
    assert first.data["tags"] == ["b", "a"]
    assert first.data["metadata"] == metadata  # the deployed service's owner key removed
    assert first.updated_at is not None
    assert first.data["created_at"] == format_utc(first.updated_at)
    scores = first.data["score"], second.data["score"]
    assert isinstance(scores[0], float)
    assert isinstance(scores[1], float)
    assert scores[0] > scores[1]  # the deployed service's distances, negated: the API's order


def test_every_word_of_the_text_must_match(session: Session, vault: KnowledgeVaultServer) -> None:
    push(
        session,
        vault,
        memory("m1", "red apple"),
        memory("m2", "green apple"),
        memory("m3", "red car"),
    )
    assert sorted(fetch_ids(session, "apple")) == ["m1", "m2"]
    assert fetch_ids(session, "red apple") == ["m1"]
    assert fetch_ids(session, "blue") == []


def test_fetch_asks_for_the_actor_of_the_session(
    registry: Registry, vault: KnowledgeVaultServer
) -> None:
    with open_session(registry, vault) as alice:
        push(alice, vault, memory("a1", "shared word"))
    with open_session(registry, vault, context=AuthContext(tenant="acme", actor="bob")) as bob:
        push(bob, vault, memory("b1", "shared word"))
        assert fetch_ids(bob, "shared") == ["b1"]
    assert sorted(d.owner for d in vault.documents()) == ["alice", "bob"]


def test_results_of_another_tenant_are_dropped(
    registry: Registry, vault: KnowledgeVaultServer
) -> None:
    other = AuthContext(tenant="globex", actor="alice")  # the same actor in another tenant
    with open_session(registry, vault, context=other) as globex:
        push(globex, vault, memory("g1", "quarterly report"))
    with open_session(registry, vault) as acme:
        push(acme, vault, memory("a1", "quarterly report"))
        assert fetch_ids(acme, "quarterly") == ["a1"]
        raw = vault_connector(acme).query_body("quarterly")
    assert isinstance(raw, dict)
    results = raw["results"]
    if deployed(vault):
        assert isinstance(results, dict)
        assert results["ids"] == [[document.doc_id for document in vault.documents()][::-1]]
    else:
        assert isinstance(results, list)
        assert len(results) == 2  # the API itself knows only actors


def test_documents_without_a_tenant_are_returned_only_when_configured(
    registry: Registry, vault: KnowledgeVaultServer
) -> None:
    doc_id = vault.ingest("legacy note about invoices", "alice", {"source": "old client"})
    with open_session(registry, vault) as plain:
        assert fetch_ids(plain, "invoices") == []
    with open_session(registry, vault, include_legacy_documents=True) as legacy:
        (record,) = legacy.fetch(FetchQuery(text="invoices")).records
    assert record.id == doc_id
    score = record.data.pop("score")
    assert isinstance(score, float)
    metadata: dict[str, Any] = {"source": "old client"}
    if deployed(vault):
        metadata["owner"] = "alice"  # what the service holds for a document it did not get from us
    assert record.data == {
        "text": text_back(vault, "legacy note about invoices"),
        "tags": [],
        "metadata": metadata,
    }
    assert record.updated_at is None


def test_tags_and_metadata_filters_apply_to_the_results(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    push(
        session,
        vault,
        memory("m1", "note", ["work", "urgent"], {"n": 1, "flag": True}),
        memory("m2", "note", ["work"], {"n": "1", "flag": True}),
        memory("m3", "note", [], {"n": 1.0, "flag": 1}),
    )
    assert sorted(fetch_ids(session, "note", tags=["work"])) == ["m1", "m2"]
    assert fetch_ids(session, "note", tags=["work", "urgent"]) == ["m1"]
    assert sorted(fetch_ids(session, "note", metadata={"n": 1})) == ["m1", "m3"]
    assert fetch_ids(session, "note", metadata={"n": "1"}) == ["m2"]
    assert sorted(fetch_ids(session, "note", metadata={"flag": True})) == ["m1", "m2"]
    assert fetch_ids(session, "note", tags=["work"], metadata={"n": 1}) == ["m1"]


def test_the_owner_key_of_the_deployed_service_is_not_a_memorys(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    push(
        session,
        vault,
        memory("m1", "handover note", metadata={"owner": "carol"}),
        memory("m2", "handover plan"),
    )
    records = {r.id: r for r in session.fetch(FetchQuery(text="handover")).records}
    assert records["m2"].data["metadata"] == {}  # the service's "owner" is removed
    # The deployed service writes the ingest's owner over a memory's own "owner" key.
    expected = {} if deployed(vault) else {"owner": "carol"}
    assert records["m1"].data["metadata"] == expected


def test_a_memory_pushed_again_is_fetched_once_in_its_latest_version(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    push(session, vault, memory("m1", "draft plan", ["v1"]))
    push(session, vault, memory("m1", "final plan", ["v2"]))
    (record,) = session.fetch(FetchQuery(text="plan")).records
    assert (record.data["text"], record.data["tags"]) == (text_back(vault, "final plan"), ["v2"])
    assert len(vault.documents()) == 2  # the API cannot replace a document


# -- the two shapes of a /query answer -------------------------------------------------------


def chroma(ids: Any, **columns: Any) -> dict[str, Any]:
    """A ``/query`` body holding a Chroma query result; unnamed columns are null."""
    results = {"ids": ids, "embeddings": None, "uris": None, "data": None, "included": []}
    results.update({name: columns.get(name) for name in ("documents", "metadatas", "distances")})
    return {"query": "q", "results": results}


def pushed(record_id: str, **more: Any) -> dict[str, Any]:
    """The metadata of a memory the connector pushed for acme, as Chroma returns it."""
    return {"_memory_id": record_id, "_memory_tenant": "acme", "owner": "alice", **more}


def answer_query(server: KnowledgeVaultServer, body: object) -> None:
    server.http.script("/query", HTTPReply(body=body))


def test_chroma_hits_with_and_without_text_become_memories(
    registry: Registry, scripted: KnowledgeVaultServer
) -> None:
    answer_query(
        scripted,
        chroma(
            [["d1", "d2"]],
            documents=[["first text", None]],
            metadatas=[[pushed("m1", _memory_tags=["a"], k=1), pushed("m2")]],
            distances=[[0.25, 0.5]],
        ),
    )
    with open_session(registry, scripted) as session:
        first, second = session.fetch(FetchQuery(text="anything")).records
    assert (first.id, first.data) == (
        "m1",
        {"text": "first text", "tags": ["a"], "metadata": {"k": 1}, "score": -0.25},
    )
    assert (second.id, second.data) == (
        "m2",
        {"text": None, "tags": [], "metadata": {}, "score": -0.5},
    )


def test_chroma_hits_keep_the_servers_order(
    registry: Registry, scripted: KnowledgeVaultServer
) -> None:
    answer_query(
        scripted,
        chroma(
            [["d1", "d2"], ["d3"]],  # two query embeddings: read one after the other
            metadatas=[[pushed("m1"), pushed("m2")], [pushed("m3")]],
            distances=[[0.9, 0.1], None],
        ),
    )
    with open_session(registry, scripted) as session:
        records = session.fetch(FetchQuery(text="anything")).records
    assert [(r.id, r.data.get("score")) for r in records] == [
        ("m1", -0.9),
        ("m2", -0.1),
        ("m3", None),
    ]


def test_chroma_hits_without_metadata_follow_include_legacy_documents(
    registry: Registry, scripted: KnowledgeVaultServer
) -> None:
    answer_query(scripted, chroma([["d1", "d2"]], documents=[["kept text", None]]))
    with open_session(registry, scripted) as session:
        assert session.fetch(FetchQuery(text="anything")).records == ()
    with open_session(registry, scripted, include_legacy_documents=True) as session:
        records = session.fetch(FetchQuery(text="anything")).records
    assert [(r.id, r.data) for r in records] == [
        ("d1", {"text": "kept text", "tags": [], "metadata": {}}),
        ("d2", {"text": None, "tags": [], "metadata": {}}),
    ]


def test_listed_documents_without_content_are_kept(
    registry: Registry, scripted: KnowledgeVaultServer
) -> None:
    metadata = {"_memory_id": "m1", "_memory_tenant": "acme", "k": "v"}
    answer_query(
        scripted,
        {"query": "q", "results": [{"doc_id": "d1", "content": None, "metadata": metadata}]},
    )
    with open_session(registry, scripted) as session:
        (record,) = session.fetch(FetchQuery(text="anything")).records
    assert (record.id, record.data) == ("m1", {"text": None, "tags": [], "metadata": {"k": "v"}})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (chroma([["d1", "d2"]], documents=[["x"]]), r"documents\[0\] holding 1 entries for 2 ids"),
        (chroma([["d1"]], metadatas=[[{}], [{}]]), "metadatas holding 2 lists for 1 lists of ids"),
        (chroma([["d1"]], distances=[0.1]), r"distances\[0\] holding no list for 1 ids"),
        (chroma([["d1"]], distances={"d1": 0.1}), "distances holding no list"),
        (chroma(["d1"]), "ids that are not lists of ids"),
        (chroma([["d1", 7]]), r"ids\[0\]\[1\] that is not an id"),
        (chroma([["d1"]], documents=[[5]]), r"documents\[0\]\[0\] that is not text"),
        (chroma([["d1"]], metadatas=[["m"]]), r"metadatas\[0\]\[0\] that is not an object"),
        (chroma([["d1"]], distances=[["near"]]), r"distances\[0\]\[0\] that is not a number"),
        (chroma([["d1"]], distances=[[True]]), r"distances\[0\]\[0\] that is not a number"),
        ({"query": "q", "results": {"hits": []}}, "without results"),
        ({"query": "q", "results": None}, "without results"),
        ({"query": "q"}, "without results"),
        ([], "not a JSON object"),
        ({"results": [{"content": "x"}]}, "without a doc_id"),
        ({"results": ["x"]}, "not an object"),
        ({"results": [{"doc_id": "d", "content": 3}]}, "content of 'd' that is not text"),
        ({"results": [{"doc_id": "d", "metadata": []}]}, "metadata of 'd' that is not an object"),
        ({"results": [{"doc_id": "d", "score": "high"}]}, "score of 'd' that is not a number"),
        ("<html>oops</html>", "not JSON"),
    ],
)
def test_answers_of_neither_shape_raise_a_connector_error(
    registry: Registry, scripted: KnowledgeVaultServer, body: object, message: str
) -> None:
    answer_query(scripted, body)
    with (
        open_session(registry, scripted) as session,
        pytest.raises(ConnectorError, match=message) as raised,
    ):
        session.fetch(FetchQuery(text="anything"))
    assert type(raised.value) is ConnectorError  # not transient: never retried
    assert scripted.requests("/query") == 1


# -- raw answers -----------------------------------------------------------------------------


def test_raw_answers_are_the_body_as_the_api_sent_it(
    registry: Registry, vault: KnowledgeVaultServer
) -> None:
    with open_session(registry, vault, context=AuthContext(tenant="globex", actor="alice")) as s:
        push(s, vault, memory("g1", "raw answer"))
    audit = MemoryAuditSink()
    with open_session(registry, vault, audit=audit, raw_answers=True) as session:
        result = session.fetch(FetchQuery(text="Raw"))
    direct = httpx.get(f"{vault.url}/query", params={"q": "Raw", "actor_id": "alice"}).json()
    assert result.next_cursor is None
    (record,) = result.records
    assert (record.id, record.data) == (RAW_ANSWER_ID, {"body": direct})
    assert direct["query"] == "Raw"  # the text is sent as given, another tenant's hit included
    fetches = [e for e in audit.events if e.operation == "fetch" and e.phase == "finished"]
    assert [e.outcome for e in fetches] == ["ok"]


@pytest.mark.parametrize("body", [[1, "two", None], "just text", None, {"results": "odd"}])
def test_raw_answers_may_be_any_json(
    registry: Registry, scripted: KnowledgeVaultServer, body: object
) -> None:
    encoded = json.dumps(body).encode()
    scripted.http.script(
        "/query", HTTPReply(body=encoded, headers={"Content-Type": "application/json"})
    )
    with open_session(registry, scripted, raw_answers=True) as session:
        (record,) = session.fetch(FetchQuery(text="anything")).records
    assert record.data == {"body": body}


def test_raw_answers_are_retried_like_any_fetch(
    registry: Registry, scripted: KnowledgeVaultServer
) -> None:
    scripted.fail_next(2, status=503, retry_after="0", endpoint="/query")
    with open_session(registry, scripted, raw_answers=True) as session:
        (record,) = session.fetch(FetchQuery(text="again")).records
    assert record.data == {"body": {"query": "again", "results": []}}
    assert scripted.requests("/query") == 3


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        (FetchQuery(), NotSupported, "only searches text"),
        (FetchQuery(text="x", filters={"tags": ["a"]}), InvalidRequest, "cannot be filtered"),
        (FetchQuery(text="x", cursor="c"), InvalidRequest, "single page"),
    ],
)
def test_raw_answers_take_only_text(
    registry: Registry,
    scripted: KnowledgeVaultServer,
    query: FetchQuery,
    error: type[Exception],
    message: str,
) -> None:
    with (
        open_session(registry, scripted, raw_answers=True) as session,
        pytest.raises(error, match=message),
    ):
        session.fetch(query)
    assert scripted.requests("/query") == 0


def test_a_config_from_a_tenant_cannot_ask_for_raw_answers(
    registry: Registry, scripted: KnowledgeVaultServer
) -> None:
    port = int(scripted.url.rsplit(":", 1)[1])
    rule = EgressRule(networks=("127.0.0.0/8",), ports=(port,))
    governance = Governance(
        audit=MemoryAuditSink(),
        retry=NO_RETRY,
        breaker=None,
        untrusted=UntrustedPolicy(egress=EgressPolicy(rules=(rule,))),
    )
    config = UntrustedConfig({"url": scripted.url, "raw_answers": True})
    session = registry.open(NAME, config=config, context=ALICE, governance=governance)
    with pytest.raises(ConfigError, match="raw_answers"), session:
        pass
    assert scripted.requests("/health") == 0
    allowed = UntrustedConfig({"url": scripted.url})
    with registry.open(NAME, config=allowed, context=ALICE, governance=governance) as tenants:
        assert tenants.fetch(FetchQuery(text="x")).records == ()


# -- pages -----------------------------------------------------------------------------------


def test_pages_resume_after_the_last_memory_returned(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    push(session, vault, *(memory(f"m{i}", f"topic entry {i}") for i in range(5)))
    first = session.fetch(FetchQuery(text="topic", limit=2))
    assert len(first.records) == 2
    assert first.next_cursor is not None
    # A better-ranked memory arrives between pages: the next page does not shift back.
    push(session, vault, memory("new", "topic topic topic"))
    seen = [record.id for record in first.records]
    cursor: str | None = first.next_cursor
    for _ in range(10):
        if cursor is None:
            break
        page = session.fetch(FetchQuery(text="topic", limit=2, cursor=cursor))
        seen.extend(record.id for record in page.records)
        cursor = page.next_cursor
    assert sorted(seen) == [f"m{i}" for i in range(5)]


def test_a_page_is_capped_by_max_page_size(registry: Registry, vault: KnowledgeVaultServer) -> None:
    with open_session(registry, vault, max_page_size=2) as capped:
        push(capped, vault, *(memory(f"m{i}", "word") for i in range(3)))
        page = capped.fetch(FetchQuery(text="word", limit=100))
    assert len(page.records) == 2
    assert page.next_cursor is not None


def test_a_cursor_belongs_to_its_query(session: Session, vault: KnowledgeVaultServer) -> None:
    push(session, vault, *(memory(f"m{i}", "alpha beta") for i in range(3)))
    cursor = session.fetch(FetchQuery(text="alpha", limit=1)).next_cursor
    with pytest.raises(InvalidRequest, match="another query"):
        session.fetch(FetchQuery(text="beta", limit=1, cursor=cursor))
    with pytest.raises(InvalidRequest, match="damaged"):
        session.fetch(FetchQuery(text="alpha", cursor="not a cursor"))


# -- what the API cannot do ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (FetchQuery(), "only searches text"),
        (FetchQuery(text="   "), "only searches text"),
        (FetchQuery(text="x", filters={"created_after": "2024-01-01T00:00:00Z"}), "no creation"),
        (FetchQuery(text="x", filters={"updated_before": "2024-01-01T00:00:00Z"}), "no creation"),
    ],
)
def test_fetches_the_api_cannot_answer_are_not_supported(
    session: Session, vault: KnowledgeVaultServer, query: FetchQuery, message: str
) -> None:
    with pytest.raises(NotSupported, match=message):
        session.fetch(query)
    assert vault.requests("/query") == 0


def test_sync_is_not_supported(session: Session) -> None:
    with pytest.raises(NotSupported):
        session.sync(SyncState())


def test_push_rejects_what_the_api_cannot_store(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    result = session.push(
        PushPayload(
            records=(
                memory("ok", "kept"),
                Record(id="gone", deleted=True),
                memory("reserved", "clash", metadata={"_memory_tenant": "other"}),
                Record(id="bad", data={"text": ""}),
                memory("ok", "again"),
            )
        )
    )
    reasons = {rejection.id: rejection.reason for rejection in result.rejected}
    if deployed(vault):
        assert result.accepted == ()
        assert reasons["ok"].startswith(OUTCOME_UNKNOWN)
    else:
        assert result.accepted == ("ok",)
    assert "cannot delete" in reasons["gone"]
    assert "'_memory_tenant' is reserved" in reasons["reserved"]
    assert "text must not be empty" in reasons["bad"]
    assert len(result.rejected) == 4 + deployed(vault)  # the repeated "ok" as well
    assert [d.content for d in vault.documents()] == ["kept"]


def test_a_push_with_an_idempotency_key_is_refused(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    payload = PushPayload(records=(memory("m1", "text"),), idempotency_key="once")
    with pytest.raises(NotSupported, match="idempotency"):
        session.push(payload)
    assert vault.requests("/ingest") == 0


def test_a_record_the_api_refuses_is_rejected_alone(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    vault.delay_next(1, seconds=0, endpoint="/ingest")  # the first ingest answers normally
    vault.fail_next(1, status=400, endpoint="/ingest")
    result = session.push(PushPayload(records=tuple(memory(f"m{i}", "t") for i in range(3))))
    reasons = {rejection.id: rejection.reason for rejection in result.rejected}
    assert "refused by the API" in reasons["m1"]
    if deployed(vault):
        assert result.accepted == ()
        assert unknown_ids(result) == ["m0", "m2"]
    else:
        assert result.accepted == ("m0", "m2")
        assert list(reasons) == ["m1"]


# -- unknown outcomes of /ingest -------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504])
def test_an_ingest_answered_by_a_server_error_has_an_unknown_outcome(
    registry: Registry, scripted: KnowledgeVaultServer, status: int
) -> None:
    scripted.fail_next(1, status=status, endpoint="/ingest")
    with open_session(registry, scripted) as session:  # FAST: three attempts for what may retry
        result = session.push(PushPayload(records=(memory("m1", "one"), memory("m2", "two"))))
    assert result.accepted == ("m2",)  # the push went on after the unknown outcome
    (rejection,) = result.rejected
    assert rejection.id == "m1"
    assert outcome_unknown(rejection)
    assert rejection.reason.startswith(
        f"{OUTCOME_UNKNOWN} the Knowledge Vault answered HTTP {status}"
    )
    assert "may have been stored" in rejection.reason
    assert scripted.requests("/ingest") == 2  # never sent again


def test_the_deployed_service_stores_what_it_answers_500_to(
    registry: Registry,
) -> None:
    with KnowledgeVaultServer(mode="deployed") as service:
        with open_session(registry, service) as session:
            result = session.push(PushPayload(records=(memory("m1", "stored anyway"),)))
        (rejection,) = result.rejected
        assert outcome_unknown(rejection)
        assert service.requests("/ingest") == 1
        assert [d.metadata["_memory_id"] for d in service.documents()] == ["m1"]


def reconcile(session: Session, pushed_at: datetime, record: Record) -> bool:
    """What a caller does with an unknown outcome: whether a fetch of the memory's text
    returns it with an updated_at from the push (the documented reconciliation)."""
    text = record.data["text"]
    assert isinstance(text, str)
    return any(
        found.id == record.id and found.updated_at is not None and found.updated_at >= pushed_at
        for found in session.fetch(FetchQuery(text=text)).records
    )


def test_unknown_outcomes_are_reconciled_by_fetching_the_memory(
    registry: Registry, vault: KnowledgeVaultServer
) -> None:
    older = memory("m1", "reconcile this note", ["v1"])
    newer = memory("m1", "reconcile this note", ["v2"])
    with open_session(registry, vault) as session:
        push(session, vault, older)
        pushed_at = datetime.now(UTC)
        vault.fail_next(1, status=500, endpoint="/ingest")  # answered before anything is stored
        (rejection,) = session.push(PushPayload(records=(newer,))).rejected
        assert outcome_unknown(rejection)
        assert not reconcile(session, pushed_at, newer)  # only the older version is there
        pushed_at = datetime.now(UTC)
        push(session, vault, newer)  # so it is pushed again, once
        assert reconcile(session, pushed_at, newer)
        (record,) = session.fetch(FetchQuery(text="reconcile")).records
    assert record.data["tags"] == ["v2"]
    assert len(vault.documents()) == 2


def test_an_ingest_without_an_answer_has_an_unknown_outcome(
    registry: Registry, scripted: KnowledgeVaultServer
) -> None:
    with open_session(registry, scripted, timeout_seconds=0.2) as session:
        scripted.delay_next(1, seconds=1, endpoint="/ingest")  # stored after the client gave up
        timed_out = session.push(PushPayload(records=(memory("m1", "slow"),)))
        scripted.http.drop_next(1, path="/ingest")  # the connection closes without an answer
        dropped = session.push(PushPayload(records=(memory("m2", "dropped"),)))
    assert unknown_ids(timed_out) == ["m1"]
    assert "ReadTimeout" in timed_out.rejected[0].reason
    assert unknown_ids(dropped) == ["m2"]
    assert scripted.requests("/ingest") == 2
    wait_for_documents(scripted, 1)


def test_an_ingest_answered_without_a_doc_id_has_an_unknown_outcome(
    registry: Registry, scripted: KnowledgeVaultServer
) -> None:
    scripted.http.script("/ingest", HTTPReply(body={"status": "queued"}))
    with open_session(registry, scripted) as session:
        result = session.push(PushPayload(records=(memory("m1", "queued"),)))
    (rejection,) = result.rejected
    assert outcome_unknown(rejection)
    assert "without an ingested doc_id" in rejection.reason


def test_a_failure_after_an_unknown_outcome_is_reported_not_raised(
    registry: Registry, scripted: KnowledgeVaultServer
) -> None:
    scripted.fail_next(1, status=500, endpoint="/ingest")
    scripted.fail_next(1, status=503, endpoint="/ingest")
    with open_session(registry, scripted) as session:
        result = session.push(PushPayload(records=tuple(memory(f"m{i}", "t") for i in range(3))))
    assert result.accepted == ()
    reasons = [(rejection.id, rejection.reason) for rejection in result.rejected]
    assert [record_id for record_id, _ in reasons] == ["m0", "m1", "m2"]
    assert reasons[0][1].startswith(OUTCOME_UNKNOWN)
    assert "ingest failed (TransientError: HTTP 503" in reasons[1][1]
    assert "not sent" in reasons[2][1]
    assert scripted.requests("/ingest") == 2


# -- failures and retries --------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), [(503, TransientError), (429, RateLimited)])
def test_a_failed_fetch_is_retried_by_the_session(
    session: Session, vault: KnowledgeVaultServer, status: int, error: type[Exception]
) -> None:
    push(session, vault, memory("m1", "retry me"))
    vault.fail_next(2, status=status, retry_after="0", endpoint="/query")
    assert [r.id for r in session.fetch(FetchQuery(text="retry")).records] == ["m1"]
    assert vault.requests("/query") == 3


@pytest.mark.parametrize(("status", "error"), [(503, TransientError), (429, RateLimited)])
def test_failed_requests_raise_the_mapped_error(
    registry: Registry, vault: KnowledgeVaultServer, status: int, error: type[TransientError]
) -> None:
    with open_session(registry, vault, retry=NO_RETRY) as once:
        vault.fail_next(1, status=status, retry_after="7", endpoint="/query")
        with pytest.raises(error) as raised:
            once.fetch(FetchQuery(text="anything"))
    assert raised.value.retry_after == 7
    assert f"HTTP {status}" in str(raised.value)


def test_a_failed_push_is_never_retried(session: Session, vault: KnowledgeVaultServer) -> None:
    vault.fail_next(1, status=503, retry_after="0", endpoint="/ingest")
    with pytest.raises(TransientError):
        session.push(PushPayload(records=(memory("m1", "once"),)))
    assert vault.requests("/ingest") == 1  # the session's retry policy allows 3 attempts
    assert vault.documents() == []


def test_a_push_failing_midway_accepts_what_was_ingested(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    vault.delay_next(1, seconds=0, endpoint="/ingest")  # the first ingest answers normally
    vault.fail_next(1, status=503, endpoint="/ingest")
    result = session.push(PushPayload(records=tuple(memory(f"m{i}", "t") for i in range(3))))
    reasons = {rejection.id: rejection.reason for rejection in result.rejected}
    if deployed(vault):
        assert result.accepted == ()
        assert unknown_ids(result) == ["m0"]
    else:
        assert result.accepted == ("m0",)
    assert "ingest failed (TransientError: HTTP 503" in reasons["m1"]
    assert "not sent" in reasons["m2"]
    assert vault.requests("/ingest") == 2
    assert [d.metadata["_memory_id"] for d in vault.documents()] == ["m0"]


def test_a_slow_answer_times_out_as_transient(
    registry: Registry, vault: KnowledgeVaultServer
) -> None:
    with open_session(registry, vault, retry=NO_RETRY, timeout_seconds=0.05) as hasty:
        vault.delay_next(1, seconds=0.5, endpoint="/query")
        with pytest.raises(TransientError, match="timed out"):
            hasty.fetch(FetchQuery(text="slow"))
    with open_session(registry, vault, timeout_seconds=0.05) as patient:
        vault.delay_next(1, seconds=0.5, endpoint="/query")
        assert patient.fetch(FetchQuery(text="slow")).records == ()
    assert vault.requests("/query") == 3


def test_an_unreachable_api_fails_to_connect(registry: Registry) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = registry.open(
        NAME, config={"url": f"http://127.0.0.1:{port}", "timeout_seconds": 2}, context=ALICE
    )
    with pytest.raises(ConnectionFailed, match="cannot be reached"), session:
        pass


def test_an_unhealthy_api_fails_to_connect(vault: KnowledgeVaultServer) -> None:
    connector = KnowledgeVaultConnector()
    vault.fail_next(1, status=503, endpoint="/health")
    with pytest.raises(ConnectionFailed):
        connector.connect(KnowledgeVaultConfig(url=vault.url))


# -- auth, connect, revoke and the config ----------------------------------------------------


@pytest.mark.parametrize(
    "context", [AuthContext(tenant="acme"), AuthContext(actor="alice"), AuthContext()]
)
def test_auth_needs_a_tenant_and_an_actor(context: AuthContext) -> None:
    with pytest.raises(AuthError, match="tenant and an actor"):
        KnowledgeVaultConnector().auth(context)


@pytest.mark.parametrize("mode", MODES)
def test_the_api_key_is_sent_as_a_bearer_token(registry: Registry, mode: Any) -> None:
    with KnowledgeVaultServer(api_key="s3cret", mode=mode) as guarded:
        with open_session(registry, guarded, api_key="s3cret") as allowed:
            push(allowed, guarded, memory("m1", "guarded"))
            assert fetch_ids(allowed, "guarded") == ["m1"]
        with pytest.raises(AuthError, match="HTTP 401"), open_session(registry, guarded):
            pass


def test_revoke_closes_the_client(vault: KnowledgeVaultServer) -> None:
    connector = KnowledgeVaultConnector()
    token = connector.auth(ALICE)
    connector.connect(KnowledgeVaultConfig(url=vault.url))
    other = KnowledgeVaultConnector().auth(ALICE)
    assert connector.revoke(other).revoked is False
    assert connector.revoke(token).revoked is True
    with pytest.raises(LifecycleError, match="auth"):
        connector.fetch(FetchQuery(text="x"))


def test_operations_need_auth_and_connect(vault: KnowledgeVaultServer) -> None:
    connector = KnowledgeVaultConnector()
    with pytest.raises(LifecycleError, match="auth"):
        connector.query_body("x")
    connector.auth(ALICE)
    with pytest.raises(LifecycleError, match="connect"):
        connector.push(PushPayload(records=()))
    with pytest.raises(ConfigError):
        connector.connect(object())  # type: ignore[arg-type]  # the wrong config on purpose


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1",
        "http://",
        "http://user:pass@127.0.0.1:8000",
        "http://127.0.0.1:8000/?token=x",
        "http://127.0.0.1:port",
    ],
)
def test_the_url_must_be_a_plain_http_url(url: str) -> None:
    with pytest.raises(ConfigError, match="url"):
        KnowledgeVaultConfig.from_mapping({"url": url})


def test_the_config_defaults_and_masks_the_key() -> None:
    config = KnowledgeVaultConfig.from_mapping({"api_key": "s3cret"})
    assert config.url == "http://localhost:8000"
    assert config.raw_answers is False
    assert "s3cret" not in repr(config)
    assert "s3cret" not in config.model_dump_json()


def test_query_body_is_the_api_answer(session: Session, vault: KnowledgeVaultServer) -> None:
    push(session, vault, memory("m1", "raw answer"))
    direct = httpx.get(f"{vault.url}/query", params={"q": "raw", "actor_id": "alice"}).json()
    assert vault_connector(session).query_body("raw") == direct


# -- the test server -------------------------------------------------------------------------


def test_the_server_refuses_malformed_requests(vault: KnowledgeVaultServer) -> None:
    with httpx.Client(base_url=vault.url) as client:
        assert client.get("/query", params={"actor_id": "a"}).status_code == 400
        assert client.get("/query", params={"q": "x"}).status_code == 400
        assert client.post("/ingest", content=b"{not json").status_code == 400
        assert client.post("/ingest", json={"content": "x"}).status_code == 400
        assert client.post("/ingest", json=["content"]).status_code == 400
        assert client.get("/ingest").status_code == 405
        assert client.get("/nowhere").status_code == 404
    assert vault.requests("/query") == 2
    assert vault.documents() == []


def test_the_deployed_mode_answers_as_the_deployed_service() -> None:
    with (
        KnowledgeVaultServer(mode="deployed") as service,
        httpx.Client(base_url=service.url) as client,
    ):
        ingest = client.post(
            "/ingest", json={"content": "invoice", "owner": "alice", "metadata": {"tenant": "acme"}}
        )
        assert (ingest.status_code, ingest.text) == (500, "Internal Server Error")
        assert ingest.headers["Content-Type"].startswith("text/plain")
        (stored,) = service.documents()
        body = client.get("/query", params={"q": "invoice", "actor_id": "alice"}).json()
        empty = client.get("/query", params={"q": "nothing", "actor_id": "alice"}).json()
    assert body == {
        "query": "invoice",
        "results": {
            "ids": [[stored.doc_id]],
            "embeddings": None,
            "documents": [[None]],
            "uris": None,
            "included": ["metadatas", "documents", "distances"],
            "data": None,
            "metadatas": [[{"tenant": "acme", "owner": "alice"}]],
            "distances": [[0.5]],
        },
    }
    assert empty["results"]["ids"] == [[]]


def test_the_server_knows_its_modes_and_endpoints() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        KnowledgeVaultServer(mode="chroma")  # type: ignore[arg-type]  # not a mode, on purpose
    with KnowledgeVaultServer() as server, pytest.raises(ValueError, match="unknown endpoint"):
        server.fail_next(endpoint="/search")


def test_the_server_drops_connections_on_request(scripted: KnowledgeVaultServer) -> None:
    scripted.http.script("/health", HTTPDrop(), HTTPReply(body={"status": "ok"}))
    with httpx.Client(base_url=scripted.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/health")
        assert client.get("/health").json() == {"status": "ok"}


def test_the_server_stops_with_clients_still_connected() -> None:
    server = KnowledgeVaultServer().start()
    client = httpx.Client(base_url=server.url)
    assert client.get("/health").json() == {"status": "ok"}  # the connection stays open
    server.stop()
    with pytest.raises(httpx.TransportError):
        client.get("/health", timeout=1)
    client.close()
