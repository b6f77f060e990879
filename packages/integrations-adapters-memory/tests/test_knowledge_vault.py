"""``memory.knowledge_vault`` against a real Knowledge Vault API served on 127.0.0.1.

Sessions are opened through the registry, as platform code opens them, so the manifest's
declarations (push not idempotent) are what the retry machinery sees. Failures are real:
the server answers 503 or 429, or holds an answer back until the client's timeout fires.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from integrations.adapters.memory_adapters.knowledge_vault import (
    KnowledgeVaultConfig,
    KnowledgeVaultConnector,
)
from integrations.adapters.memory_adapters.testing import KnowledgeVaultServer
from integrations.base import (
    NO_RETRY,
    AuthContext,
    AuthError,
    ConfigError,
    ConnectionFailed,
    FetchQuery,
    Governance,
    InvalidRequest,
    LifecycleError,
    MemoryAuditSink,
    NotSupported,
    PushPayload,
    RateLimited,
    Record,
    Registry,
    RetryPolicy,
    Session,
    SyncState,
    TransientError,
    format_utc,
)

pytestmark = pytest.mark.timeout(60)

NAME = "memory.knowledge_vault"
ALICE = AuthContext(tenant="acme", actor="alice")
FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02, jitter=0, deadline=5)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry()


@pytest.fixture
def vault(knowledge_vault: KnowledgeVaultServer) -> KnowledgeVaultServer:
    return knowledge_vault


def open_session(
    registry: Registry,
    server: KnowledgeVaultServer,
    *,
    context: AuthContext = ALICE,
    retry: RetryPolicy = FAST,
    **config: Any,
) -> Session:
    governance = Governance(audit=MemoryAuditSink(), retry=retry, breaker=None)
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


def push(session: Session, *records: Record) -> None:
    result = session.push(PushPayload(records=records))
    assert result.rejected == ()
    assert result.accepted == tuple(record.id for record in records)


def fetch_ids(session: Session, text: str, **filters: Any) -> list[str]:
    result = session.fetch(FetchQuery(text=text, filters=filters))
    assert result.next_cursor is None
    return [record.id for record in result.records]


# -- push and fetch map onto /ingest and /query ----------------------------------------------


def test_push_ingests_one_document_per_memory(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    push(
        session,
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


def test_fetch_rebuilds_pushed_memories_exactly(session: Session) -> None:
    metadata = {"nested": {"list": [1, 2.5, None, True]}, "text": "é", "one": 1}
    push(session, memory("m1", "capital capital city", ["b", "a"], metadata))
    push(session, memory("m2", "a capital"))
    records = session.fetch(FetchQuery(text="Capital")).records
    assert [record.id for record in records] == ["m1", "m2"]  # more occurrences rank first
    first = records[0]
    assert first.data["text"] == "capital capital city"
    assert first.data["tags"] == ["b", "a"]
    assert first.data["metadata"] == metadata
    assert first.updated_at is not None
    assert first.data["created_at"] == format_utc(first.updated_at)


def test_every_word_of_the_text_must_match(session: Session) -> None:
    push(session, memory("m1", "red apple"), memory("m2", "green apple"), memory("m3", "red car"))
    assert sorted(fetch_ids(session, "apple")) == ["m1", "m2"]
    assert fetch_ids(session, "red apple") == ["m1"]
    assert fetch_ids(session, "blue") == []


def test_fetch_asks_for_the_actor_of_the_session(
    registry: Registry, vault: KnowledgeVaultServer
) -> None:
    with open_session(registry, vault) as alice:
        push(alice, memory("a1", "shared word"))
    with open_session(registry, vault, context=AuthContext(tenant="acme", actor="bob")) as bob:
        push(bob, memory("b1", "shared word"))
        assert fetch_ids(bob, "shared") == ["b1"]
    assert sorted(d.owner for d in vault.documents()) == ["alice", "bob"]


def test_results_of_another_tenant_are_dropped(
    registry: Registry, vault: KnowledgeVaultServer
) -> None:
    other = AuthContext(tenant="globex", actor="alice")  # the same actor in another tenant
    with open_session(registry, vault, context=other) as globex:
        push(globex, memory("g1", "quarterly report"))
    with open_session(registry, vault) as acme:
        push(acme, memory("a1", "quarterly report"))
        assert fetch_ids(acme, "quarterly") == ["a1"]
        raw = vault_connector(acme).query_body("quarterly")
    results = raw["results"]
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
    assert record.data == {
        "text": "legacy note about invoices",
        "tags": [],
        "metadata": {"source": "old client"},
    }
    assert record.updated_at is None


def test_tags_and_metadata_filters_apply_to_the_results(session: Session) -> None:
    push(
        session,
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


def test_a_memory_pushed_again_is_fetched_once_in_its_latest_version(
    session: Session, vault: KnowledgeVaultServer
) -> None:
    push(session, memory("m1", "draft plan", ["v1"]))
    push(session, memory("m1", "final plan", ["v2"]))
    (record,) = session.fetch(FetchQuery(text="plan")).records
    assert (record.data["text"], record.data["tags"]) == ("final plan", ["v2"])
    assert len(vault.documents()) == 2  # the API cannot replace a document


# -- pages -----------------------------------------------------------------------------------


def test_pages_resume_after_the_last_memory_returned(session: Session) -> None:
    push(session, *(memory(f"m{i}", f"topic entry {i}") for i in range(5)))
    first = session.fetch(FetchQuery(text="topic", limit=2))
    assert len(first.records) == 2
    assert first.next_cursor is not None
    # A better-ranked memory arrives between pages: the next page does not shift back.
    push(session, memory("new", "topic topic topic"))
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
        push(capped, *(memory(f"m{i}", "word") for i in range(3)))
        page = capped.fetch(FetchQuery(text="word", limit=100))
    assert len(page.records) == 2
    assert page.next_cursor is not None


def test_a_cursor_belongs_to_its_query(session: Session) -> None:
    push(session, *(memory(f"m{i}", "alpha beta") for i in range(3)))
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
    assert result.accepted == ("ok",)
    reasons = {rejection.id: rejection.reason for rejection in result.rejected}
    assert "cannot delete" in reasons["gone"]
    assert "'_memory_tenant' is reserved" in reasons["reserved"]
    assert "text must not be empty" in reasons["bad"]
    assert len(result.rejected) == 4  # the repeated "ok" as well
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
    assert result.accepted == ("m0", "m2")
    (rejection,) = result.rejected
    assert rejection.id == "m1"
    assert "refused by the API" in rejection.reason


# -- failures and retries --------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error"), [(503, TransientError), (429, RateLimited)])
def test_a_failed_fetch_is_retried_by_the_session(
    session: Session, vault: KnowledgeVaultServer, status: int, error: type[Exception]
) -> None:
    push(session, memory("m1", "retry me"))
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
    assert result.accepted == ("m0",)
    reasons = {rejection.id: rejection.reason for rejection in result.rejected}
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


def test_the_api_key_is_sent_as_a_bearer_token(registry: Registry) -> None:
    with KnowledgeVaultServer(api_key="s3cret") as guarded:
        with open_session(registry, guarded, api_key="s3cret") as allowed:
            push(allowed, memory("m1", "guarded"))
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
    assert "s3cret" not in repr(config)
    assert "s3cret" not in config.model_dump_json()


def test_query_body_is_the_api_answer(session: Session, vault: KnowledgeVaultServer) -> None:
    push(session, memory("m1", "raw answer"))
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


def test_the_server_stops_with_clients_still_connected() -> None:
    server = KnowledgeVaultServer().start()
    client = httpx.Client(base_url=server.url)
    assert client.get("/health").json() == {"status": "ok"}  # the connection stays open
    server.stop()
    with pytest.raises(httpx.TransportError):
        client.get("/health", timeout=1)
    client.close()
