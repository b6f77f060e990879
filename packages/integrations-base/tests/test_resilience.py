"""Retries and the circuit breaker against real faults: a loopback HTTP server, real sockets.

A small HTTP connector (sync, and its async twin) talks with httpx to the scripted server of
`loopback.py` through `map_http_errors` and `raise_for_status`; nothing in the client is
patched. Backoffs are 0.01-0.2 s and every test runs in well under a few seconds.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from pydantic import ValidationError

from integrations.base import (
    NO_RETRY,
    AsyncBaseConnector,
    AsyncSession,
    AuditEvent,
    AuthContext,
    AuthError,
    AuthToken,
    BaseConnector,
    BreakerPolicy,
    Capability,
    CircuitOpen,
    CircuitState,
    Connection,
    ConnectionFailed,
    ConnectorConfig,
    ConnectorMeta,
    FetchQuery,
    FetchResult,
    Governance,
    GovernanceSettings,
    InvalidRequest,
    MemoryAuditSink,
    NotFound,
    PushPayload,
    PushResult,
    RateLimited,
    Record,
    RetryPolicy,
    RevokeResult,
    Secret,
    Session,
    SyncResult,
    SyncState,
    TransientError,
)
from integrations.base._resilience import _BREAKERS, CircuitBreaker, breaker_for
from integrations.base.http import map_http_errors, raise_for_status
from integrations.base.lifecycle import run_lifecycle
from integrations.base.registry import ConnectorEntry
from integrations.mocks import MockConnector, reset_stores

sys.path.insert(0, str(Path(__file__).parent))  # the helper module next to this file
from loopback import Drop, LoopbackServer, Reply

pytestmark = pytest.mark.timeout(30)

CONTEXT = AuthContext(tenant="acme", actor="alice")
ITEMS = {"items": [{"id": "1"}, {"id": "2"}]}
OK = Reply(200, ITEMS)
FAST = RetryPolicy(
    max_attempts=4, initial_backoff=0.05, backoff_multiplier=2, max_backoff=0.2, deadline=5
)
"""Quick retries for the tests: waits of at most 0.05, 0.1, 0.2 s (jitter 0.5 by default)."""
STEADY = FAST.model_copy(update={"jitter": 0.0})
"""The same without jitter: waits of exactly 0.05, 0.1, 0.2 s."""
TIMING_SLACK = 0.7
"""Allowance for scheduling noise when an elapsed time is compared with an upper bound.

Generous enough for a loaded machine, and still below every gap that a broken behaviour would
show: a timed-out attempt stays below the 1 s the slow reply takes, a deadline overrun stays
below another attempt's worth of waiting."""


# -- the connector under test ---------------------------------------------------------------


class HttpConfig(ConnectorConfig):
    """Where the loopback server is, and how long one request may take."""

    base_url: str
    timeout: float = 2.0


def _records(response: httpx.Response) -> tuple[Record, ...]:
    return tuple(Record(id=item["id"]) for item in response.json()["items"])


def _push_headers(payload: PushPayload) -> dict[str, str]:
    key = payload.idempotency_key
    return {} if key is None else {"Idempotency-Key": key}


def _push_body(payload: PushPayload) -> dict[str, Any]:
    return {"ids": [record.id for record in payload.records]}


class HttpConnector(BaseConnector[HttpConfig]):
    """Fetches ``GET /items``, pushes ``POST /items``, syncs ``GET /changes``, with httpx."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.FETCH, Capability.PUSH, Capability.SYNC}
    )
    config_model: ClassVar[type[ConnectorConfig]] = HttpConfig

    def __init__(self) -> None:
        self.client: httpx.Client | None = None
        self.auths = 0

    def auth(self, context: AuthContext) -> AuthToken:
        self.auths += 1
        return AuthToken(value=Secret(f"token-{self.auths}"))

    def connect(self, config: HttpConfig) -> Connection:
        self.client = httpx.Client(base_url=config.base_url, timeout=config.timeout)
        return Connection(connection_id="loopback")

    def _http(self) -> httpx.Client:
        assert self.client is not None, "connect() first"
        return self.client

    def fetch(self, query: FetchQuery) -> FetchResult:
        with map_http_errors():
            response = raise_for_status(self._http().get("/items", params={"limit": query.limit}))
        return FetchResult(records=_records(response))

    def push(self, payload: PushPayload) -> PushResult:
        with map_http_errors():
            raise_for_status(
                self._http().post(
                    "/items", json=_push_body(payload), headers=_push_headers(payload)
                )
            )
        return PushResult(accepted=tuple(record.id for record in payload.records))

    def sync(self, state: SyncState) -> SyncResult:
        with map_http_errors():
            response = raise_for_status(self._http().get("/changes"))
        return SyncResult(state=SyncState(cursor="end"), changes=_records(response))

    def revoke(self, token: AuthToken) -> RevokeResult:
        if self.client is not None:
            self.client.close()
        return RevokeResult(revoked=True)


class AsyncHttpConnector(AsyncBaseConnector[HttpConfig]):
    """The async twin of `HttpConnector`, on ``httpx.AsyncClient``."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FETCH})
    config_model: ClassVar[type[ConnectorConfig]] = HttpConfig

    def __init__(self) -> None:
        self.client: httpx.AsyncClient | None = None

    async def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("token"))

    async def connect(self, config: HttpConfig) -> Connection:
        self.client = httpx.AsyncClient(base_url=config.base_url, timeout=config.timeout)
        return Connection(connection_id="loopback")

    async def fetch(self, query: FetchQuery) -> FetchResult:
        assert self.client is not None
        with map_http_errors():
            response = raise_for_status(await self.client.get("/items"))
        return FetchResult(records=_records(response))

    async def revoke(self, token: AuthToken) -> RevokeResult:
        if self.client is not None:
            await self.client.aclose()
        return RevokeResult(revoked=True)


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as running:
        yield running


@pytest.fixture
def sink() -> MemoryAuditSink:
    return MemoryAuditSink()


def governance(sink: MemoryAuditSink, **fields: Any) -> Governance:
    fields.setdefault("retry", FAST)
    return Governance(audit=sink, **fields)


def http_session(
    server: LoopbackServer,
    sink: MemoryAuditSink,
    *,
    connector: HttpConnector | None = None,
    entry: ConnectorEntry | None = None,
    timeout: float = 2.0,
    **fields: Any,
) -> Session:
    return Session(
        connector or HttpConnector(),
        config={"base_url": server.url, "timeout": timeout},
        context=CONTEXT,
        governance=governance(sink, **fields),
        meta=ConnectorMeta("http"),
        entry=entry,
    )


def attempts(sink: MemoryAuditSink, operation: str) -> list[AuditEvent]:
    """The "finished" events of `operation`'s attempts (denials included), in order."""
    return [e for e in sink.events if e.operation == operation and e.phase == "finished"]


def outcomes(sink: MemoryAuditSink, operation: str) -> list[tuple[int, str | None, str | None]]:
    return [(e.attempt, e.outcome, e.error_type) for e in attempts(sink, operation)]


def delays(sink: MemoryAuditSink, operation: str) -> list[float | None]:
    """The delay each attempt's "started" event says was waited before it."""
    return [
        e.delay_seconds for e in sink.events if e.operation == operation and e.phase == "started"
    ]


def circuit_changes(sink: MemoryAuditSink) -> list[str | None]:
    return [e.detail for e in sink.events if e.operation == "circuit"]


def timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except Exception as error:
        return error, time.monotonic() - started


# -- policies --------------------------------------------------------------------------------


def test_backoff_grows_by_the_multiplier_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_backoff=0.1, backoff_multiplier=3, max_backoff=0.5)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.3, 0.5, 0.5])


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"jitter": 1.5},
        {"backoff_multiplier": 0.5},
        {"deadline": 0},
        {"initial_backoff": float("nan")},
        {"unknown": 1},
    ],
)
def test_retry_policy_rejects_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(**bad)


def test_policies_are_frozen_and_no_retry_means_one_attempt() -> None:
    assert NO_RETRY.max_attempts == 1
    with pytest.raises(ValidationError):
        NO_RETRY.max_attempts = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        BreakerPolicy(failure_threshold=0)


def test_governance_resolves_overrides_by_connector_name_and_keeps_them_read_only() -> None:
    special = RetryPolicy(max_attempts=7)
    overrides: dict[str, RetryPolicy] = {"memory.redis": special}
    governed = Governance(
        retry_overrides=overrides, breaker_overrides={"memory.redis": None}, breaker=None
    )
    overrides["mock"] = special  # the governance took a copy
    assert governed.retry_for("memory.redis") is special
    assert governed.retry_for("mock") == RetryPolicy()
    assert governed.breaker_for("memory.redis") is None
    assert governed.breaker_for("mock") is None
    assert Governance().breaker_for("mock") == BreakerPolicy()
    with pytest.raises(TypeError):
        governed.retry_overrides["x"] = special  # type: ignore[index]


def test_governance_settings_read_policies_from_the_environment() -> None:
    settings = GovernanceSettings.from_env(
        {
            "INTEGRATIONS_RETRY": json.dumps({"max_attempts": 5, "deadline": 2.5}),
            "INTEGRATIONS_RETRY_OVERRIDES": json.dumps({"mock": {"max_attempts": 1}}),
            "INTEGRATIONS_BREAKER": json.dumps({"failure_threshold": 2, "cool_down": 1}),
            "INTEGRATIONS_BREAKER_OVERRIDES": json.dumps({"mock": None}),
        }
    )
    built = settings.build()
    assert built.retry == RetryPolicy(max_attempts=5, deadline=2.5)
    assert built.retry_for("mock") == NO_RETRY
    assert built.breaker == BreakerPolicy(failure_threshold=2, cool_down=1)
    assert built.breaker_for("mock") is None


# -- retries against the loopback server -----------------------------------------------------


def test_5xx_then_success_is_retried_and_every_attempt_is_audited(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(503), Reply(500), OK)
    with http_session(server, sink, retry=STEADY) as session:
        result = session.fetch(FetchQuery())
    assert [record.id for record in result.records] == ["1", "2"]
    assert len(server.seen("/items")) == 3
    assert outcomes(sink, "fetch") == [
        (1, "error", "TransientError"),
        (2, "error", "TransientError"),
        (3, "ok", None),
    ]
    chosen = delays(sink, "fetch")
    assert chosen[0] is None  # the first attempt waits for nothing
    assert chosen[1:] == pytest.approx([0.05, 0.1])
    # The server saw the waits the session chose (never less; generous upper bound).
    for gap, delay in zip(server.gaps("/items"), (0.05, 0.1), strict=True):
        assert delay - 0.01 <= gap <= delay + TIMING_SLACK
    fetch_events = [(e.phase, e.attempt) for e in sink.events if e.operation == "fetch"]
    assert fetch_events == [(phase, n) for n in (1, 2, 3) for phase in ("started", "finished")]
    assert session.circuit_state is CircuitState.CLOSED


def test_jittered_waits_stay_between_half_and_all_of_the_backoff(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(502), Reply(502), Reply(502), OK)
    with http_session(server, sink) as session:  # FAST: jitter 0.5
        session.fetch(FetchQuery())
    chosen = delays(sink, "fetch")[1:]
    for delay, backoff in zip(chosen, (0.05, 0.1, 0.2), strict=True):
        assert delay is not None
        assert backoff * 0.5 <= delay <= backoff


def test_a_dropped_connection_and_a_timeout_are_retried(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Drop(), Reply(200, ITEMS, delay=1.0), OK)
    with http_session(server, sink, timeout=0.2) as session:
        result = session.fetch(FetchQuery())
    assert len(result.records) == 2
    assert outcomes(sink, "fetch") == [
        (1, "error", "TransientError"),
        (2, "error", "TransientError"),
        (3, "ok", None),
    ]
    slow = attempts(sink, "fetch")[1]
    assert slow.duration_seconds is not None
    assert 0.2 <= slow.duration_seconds <= 0.2 + TIMING_SLACK  # the client's timeout


def test_retry_after_of_a_429_is_the_wait_chosen(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(429, headers={"Retry-After": "0.3"}), OK)
    with http_session(server, sink) as session:
        session.fetch(FetchQuery())
    assert outcomes(sink, "fetch") == [(1, "error", "RateLimited"), (2, "ok", None)]
    assert delays(sink, "fetch") == [None, 0.3]
    (gap,) = server.gaps("/items")
    assert 0.29 <= gap <= 0.3 + TIMING_SLACK


def test_retry_after_of_a_503_is_honoured_too(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(503, headers={"Retry-After": "0.15"}), OK)
    with http_session(server, sink) as session:
        session.fetch(FetchQuery())
    assert delays(sink, "fetch") == [None, 0.15]
    assert server.gaps("/items")[0] >= 0.14


def test_retry_after_can_be_ignored(server: LoopbackServer, sink: MemoryAuditSink) -> None:
    server.script("/items", Reply(429, headers={"Retry-After": "30"}), OK)
    policy = STEADY.model_copy(update={"honour_retry_after": False})
    with http_session(server, sink, retry=policy) as session:
        session.fetch(FetchQuery())
    assert delays(sink, "fetch") == [None, 0.05]


def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(429, headers={"Retry-After": "5"}), OK)
    policy = FAST.model_copy(update={"max_retry_after": 1.0})
    with http_session(server, sink, retry=policy) as session:
        error, elapsed = timed(lambda: session.fetch(FetchQuery()))
    assert isinstance(error, RateLimited)
    assert error.retry_after == 5
    assert any("max_retry_after" in note for note in error.__notes__)
    assert len(server.seen("/items")) == 1
    assert elapsed < 2.5  # far below the 5 s the server asked for


def test_retries_stop_after_max_attempts(server: LoopbackServer, sink: MemoryAuditSink) -> None:
    server.script("/items", Reply(500))
    policy = STEADY.model_copy(update={"max_attempts": 3})
    with (
        http_session(server, sink, retry=policy) as session,
        pytest.raises(TransientError) as raised,
    ):
        session.fetch(FetchQuery())
    assert len(server.seen("/items")) == 3
    assert [n for n, _, _ in outcomes(sink, "fetch")] == [1, 2, 3]
    assert any("after 3 attempts" in note for note in raised.value.__notes__)


def test_the_deadline_stops_retries_against_a_server_that_keeps_failing(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(500))
    policy = RetryPolicy(
        max_attempts=100, initial_backoff=0.05, max_backoff=0.2, jitter=0.0, deadline=1.0
    )
    with http_session(server, sink, retry=policy, breaker=None) as session:
        error, elapsed = timed(lambda: session.fetch(FetchQuery()))
    assert isinstance(error, TransientError)
    assert any("deadline" in note for note in error.__notes__)
    assert elapsed <= 1.0 + TIMING_SLACK
    assert len(server.seen("/items")) >= 5  # 0.05 + 0.1 + 0.2 + 0.2 ... fit in one second


def test_the_deadline_counts_slow_attempts_too(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(500, delay=0.3))
    policy = RetryPolicy(max_attempts=100, initial_backoff=0.05, jitter=0.0, deadline=1.0)
    with http_session(server, sink, retry=policy, breaker=None) as session:
        error, elapsed = timed(lambda: session.fetch(FetchQuery()))
    assert isinstance(error, TransientError)
    # Attempts of 0.3 s: a third one would end past the deadline, so it is not started.
    assert elapsed <= 1.0 + TIMING_SLACK
    assert len(server.seen("/items")) == 2


@pytest.mark.parametrize(
    ("status", "error"), [(404, NotFound), (400, InvalidRequest), (401, AuthError)]
)
def test_errors_that_are_not_transient_are_not_retried(
    server: LoopbackServer, sink: MemoryAuditSink, status: int, error: type[Exception]
) -> None:
    server.script("/items", Reply(status), OK)
    with http_session(server, sink) as session, pytest.raises(error):
        session.fetch(FetchQuery())
    assert len(server.seen("/items")) == 1


def test_an_expired_token_re_authenticates_once_and_retries(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    expired = Reply(401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    server.script("/items", expired, OK)
    connector = HttpConnector()
    with http_session(server, sink, connector=connector, retry=NO_RETRY) as session:
        session.fetch(FetchQuery())
    assert connector.auths == 2
    finished = [(e.operation, e.attempt, e.outcome) for e in sink.events if e.phase == "finished"]
    assert finished[2:5] == [("fetch", 1, "error"), ("auth", 2, "ok"), ("fetch", 2, "ok")]


def test_sync_is_retried_like_fetch(server: LoopbackServer, sink: MemoryAuditSink) -> None:
    server.script("/changes", Reply(503), OK)
    with http_session(server, sink) as session:
        assert session.sync(SyncState()).state.cursor == "end"
    assert len(server.seen("/changes")) == 2


# -- push and idempotency --------------------------------------------------------------------

PAYLOAD = PushPayload(records=(Record(id="a"),))


def test_a_push_without_idempotency_is_not_retried(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(503), OK)
    with http_session(server, sink) as session, pytest.raises(TransientError):
        session.push(PAYLOAD)
    assert len(server.seen("/items")) == 1


def test_a_push_with_an_idempotency_key_is_retried_with_the_same_key(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Drop(), Reply(503), OK)
    payload = PAYLOAD.model_copy(update={"idempotency_key": "push-42"})
    with http_session(server, sink) as session:
        assert session.push(payload).accepted == ("a",)
    keys = [request.headers.get("Idempotency-Key") for request in server.seen("/items")]
    assert keys == ["push-42"] * 3
    assert [n for n, _, _ in outcomes(sink, "push")] == [1, 2, 3]


def test_a_push_the_manifest_marks_idempotent_is_retried(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(500), OK)
    entry = ConnectorEntry.model_validate(
        {
            "name": "http",
            "module": "tests.http",
            "class": "HttpConnector",
            "capabilities": ["fetch", {"action": "push", "idempotent": True}],
        }
    )
    with http_session(server, sink, entry=entry) as session:
        session.push(PAYLOAD)
    assert len(server.seen("/items")) == 2


# -- configuration per connector and per call -----------------------------------------------


def test_the_per_call_policy_wins_over_the_governance(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(503), OK)
    with http_session(server, sink) as session:
        with pytest.raises(TransientError):
            session.fetch(FetchQuery(), retry=NO_RETRY)
        assert session.fetch(FetchQuery(), retry=STEADY).records  # the next call is retried
    assert [n for n, _, _ in outcomes(sink, "fetch")] == [1, 1]


def test_a_connector_override_applies_to_that_connector_only(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(503), OK)
    with (
        http_session(server, sink, retry_overrides={"http": NO_RETRY}) as session,
        pytest.raises(TransientError),
    ):
        session.fetch(FetchQuery())
    server.script("/items", Reply(503), OK)
    with http_session(server, sink, retry_overrides={"other": NO_RETRY}) as session:
        session.fetch(FetchQuery())


# -- the circuit breaker ---------------------------------------------------------------------

BREAKER = BreakerPolicy(failure_threshold=2, cool_down=0.3)


def test_the_circuit_opens_fails_fast_half_opens_and_closes(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(503), Reply(503), OK)
    with http_session(server, sink, retry=NO_RETRY, breaker=BREAKER) as session:
        for _ in range(2):
            with pytest.raises(TransientError):
                session.fetch(FetchQuery())
        assert session.circuit_state is CircuitState.OPEN
        with pytest.raises(CircuitOpen) as refused:
            session.fetch(FetchQuery())
        assert refused.value.retry_after is not None
        assert 0 < refused.value.retry_after <= 0.3
        assert len(server.seen("/items")) == 2  # the connector was not called
        time.sleep(0.35)
        assert session.fetch(FetchQuery()).records  # the trial call
        assert session.circuit_state is CircuitState.CLOSED
    assert circuit_changes(sink) == ["closed->open", "open->half-open", "half-open->closed"]
    opened = next(e for e in sink.events if e.operation == "circuit")
    assert opened.error_type == "TransientError"
    denied = [e for e in attempts(sink, "fetch") if e.outcome == "denied"]
    assert [(e.error_type, e.detail) for e in denied] == [("CircuitOpen", "circuit open")]
    assert json.loads(opened.to_json())["detail"] == "closed->open"


def test_a_failed_trial_opens_the_circuit_again(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Drop())
    with http_session(server, sink, retry=NO_RETRY, breaker=BREAKER) as session:
        for _ in range(2):
            with pytest.raises(TransientError):
                session.fetch(FetchQuery())
        time.sleep(0.35)
        with pytest.raises(TransientError) as trial:
            session.fetch(FetchQuery())
        assert not isinstance(trial.value, CircuitOpen)  # the trial reached the server
        assert session.circuit_state is CircuitState.OPEN
        with pytest.raises(CircuitOpen):
            session.fetch(FetchQuery())
    assert len(server.seen("/items")) == 3
    assert circuit_changes(sink) == ["closed->open", "open->half-open", "half-open->open"]


def test_retries_stop_when_the_circuit_opens(server: LoopbackServer, sink: MemoryAuditSink) -> None:
    server.script("/items", Reply(500))
    with http_session(server, sink, retry=STEADY, breaker=BREAKER) as session:
        with pytest.raises(TransientError) as raised:
            session.fetch(FetchQuery())
        assert not isinstance(raised.value, CircuitOpen)  # the backend's own error
        assert session.circuit_state is CircuitState.OPEN
    assert len(server.seen("/items")) == 2
    assert raised.value.__notes__ == ["not retried after 2 attempts: the circuit breaker opened"]


def test_answers_that_are_not_failures_of_the_backend_keep_the_circuit_closed(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(503), Reply(404), Reply(503), Reply(400), Reply(503))
    with http_session(server, sink, retry=NO_RETRY, breaker=BREAKER) as session:
        for _ in range(5):
            with pytest.raises((TransientError, NotFound, InvalidRequest)):
                session.fetch(FetchQuery())
        assert session.circuit_state is CircuitState.CLOSED
    assert circuit_changes(sink) == []


def test_connection_failures_count_against_the_circuit_but_are_not_retried(
    sink: MemoryAuditSink,
) -> None:
    reset_stores()
    connector = MockConnector()
    connector.faults.fail("fetch", ConnectionFailed, times=None)
    session = Session(
        connector,
        config={"store": "resilience"},
        context=CONTEXT,
        governance=governance(sink, breaker=BREAKER),
    )
    with session:
        for _ in range(2):
            with pytest.raises(ConnectionFailed):
                session.fetch(FetchQuery())
        assert session.circuit_state is CircuitState.OPEN
    assert len(connector.calls_to("fetch")) == 2


def test_sessions_on_one_connector_instance_share_its_breaker(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(503))
    connector = HttpConnector()
    for _ in range(2):
        with (
            http_session(server, sink, connector=connector, retry=NO_RETRY, breaker=BREAKER) as s,
            pytest.raises(TransientError),
        ):
            s.fetch(FetchQuery())
    with http_session(server, sink, connector=connector, breaker=BREAKER) as shared:
        assert shared.circuit_state is CircuitState.OPEN
        with pytest.raises(CircuitOpen):
            shared.fetch(FetchQuery())
    with http_session(server, sink, breaker=BREAKER) as other:  # another instance
        assert other.circuit_state is CircuitState.CLOSED


def test_the_breaker_can_be_switched_off(server: LoopbackServer, sink: MemoryAuditSink) -> None:
    server.script("/items", Reply(503))
    with http_session(server, sink, retry=NO_RETRY, breaker=None) as session:
        for _ in range(6):
            with pytest.raises(TransientError):
                session.fetch(FetchQuery())
        assert session.circuit_state is CircuitState.CLOSED
    assert len(server.seen("/items")) == 6


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_trial_that_never_reports_back_is_given_up_after_a_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=1, cool_down=10), clock)
    assert breaker.record(TransientError("down")) == (CircuitState.CLOSED, CircuitState.OPEN)
    assert breaker.admit() == (False, None, 10)
    clock.now += 10
    assert breaker.admit() == (True, (CircuitState.OPEN, CircuitState.HALF_OPEN), None)
    assert breaker.admit()[0] is False  # the trial is running
    clock.now += 10  # ... and never reported back (its session failed before the call)
    assert breaker.admit() == (True, None, None)
    assert breaker.record(None) == (CircuitState.HALF_OPEN, CircuitState.CLOSED)
    assert breaker.clean


def test_the_breaker_ignores_what_says_nothing_about_the_backend() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=2))
    breaker.record(ConnectionFailed("refused"))
    breaker.record(KeyboardInterrupt())  # neither a failure nor a success
    assert breaker.record(TransientError("down")) == (CircuitState.CLOSED, CircuitState.OPEN)
    assert breaker.record(CircuitOpen("refused")) is None
    assert CircuitBreaker(None).record(TransientError("down")) is None


# -- the async session -----------------------------------------------------------------------


def async_session(server: LoopbackServer, sink: MemoryAuditSink, **fields: Any) -> AsyncSession:
    return AsyncSession(
        AsyncHttpConnector(),
        config={"base_url": server.url, "timeout": 0.5},
        context=CONTEXT,
        governance=governance(sink, **fields),
        meta=ConnectorMeta("http"),
    )


def test_the_async_session_retries_the_same_way(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Drop(), Reply(429, headers={"Retry-After": "0.1"}), OK)

    async def scenario() -> FetchResult:
        async with async_session(server, sink, retry=STEADY) as session:
            return await session.fetch(FetchQuery())

    assert len(asyncio.run(scenario()).records) == 2
    assert outcomes(sink, "fetch") == [
        (1, "error", "TransientError"),
        (2, "error", "RateLimited"),
        (3, "ok", None),
    ]
    assert delays(sink, "fetch") == [None, 0.05, 0.1]


def test_the_async_session_keeps_the_deadline_and_the_circuit(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(500))
    policy = RetryPolicy(max_attempts=100, initial_backoff=0.05, jitter=0.0, deadline=0.5)

    async def scenario() -> tuple[BaseException, float, CircuitState]:
        async with async_session(
            server, sink, retry=policy, breaker=BreakerPolicy(failure_threshold=50)
        ) as session:
            started = time.monotonic()
            try:
                await session.fetch(FetchQuery())
            except TransientError as error:
                return error, time.monotonic() - started, session.circuit_state
        raise AssertionError("the fetch should have failed")

    error, elapsed, state = asyncio.run(scenario())
    assert any("deadline" in note for note in error.__notes__)
    assert elapsed <= 0.5 + TIMING_SLACK
    assert state is CircuitState.CLOSED


def test_the_async_session_fails_fast_while_the_circuit_is_open(
    server: LoopbackServer, sink: MemoryAuditSink
) -> None:
    server.script("/items", Reply(503))

    async def scenario() -> None:
        async with async_session(server, sink, retry=NO_RETRY, breaker=BREAKER) as session:
            for _ in range(2):
                with pytest.raises(TransientError):
                    await session.fetch(FetchQuery())
            with pytest.raises(CircuitOpen):
                await session.fetch(FetchQuery())

    asyncio.run(scenario())
    assert len(server.seen("/items")) == 2
    assert circuit_changes(sink) == ["closed->open"]


def test_the_async_session_retries_a_sync_connector_run_in_a_thread(
    sink: MemoryAuditSink,
) -> None:
    reset_stores()
    config = {"store": "resilience", "faults": [{"operation": "sync", "error": "transient"}]}
    session = AsyncSession(
        MockConnector(), config=config, context=CONTEXT, governance=governance(sink, retry=STEADY)
    )

    async def scenario() -> SyncResult:
        async with session:
            return await session.sync(SyncState())

    asyncio.run(scenario())
    assert outcomes(sink, "sync") == [(1, "error", "TransientError"), (2, "ok", None)]
    assert delays(sink, "sync") == [None, 0.05]


# -- the mock connector's fault injection, and reports --------------------------------------


def test_the_mock_s_rate_limit_fault_is_retried_after_its_retry_after(
    sink: MemoryAuditSink,
) -> None:
    reset_stores()
    config = {
        "store": "resilience",
        "faults": [{"operation": "fetch", "error": "rate_limited", "retry_after": 0.1, "times": 2}],
    }
    session = Session(MockConnector(), config=config, context=CONTEXT, governance=governance(sink))
    with session:
        session.fetch(FetchQuery())
    assert delays(sink, "fetch") == [None, 0.1, 0.1]
    assert [n for n, _, _ in outcomes(sink, "fetch")] == [1, 2, 3]


def test_a_negative_retry_after_means_no_wait(sink: MemoryAuditSink) -> None:
    reset_stores()
    connector = MockConnector()
    connector.faults.fail("fetch", TransientError("confused clock", retry_after=-5))
    session = Session(
        connector, config={"store": "resilience"}, context=CONTEXT, governance=governance(sink)
    )
    with session:
        session.fetch(FetchQuery())
    assert delays(sink, "fetch") == [None, 0.0]


def test_a_lost_push_response_is_retried_only_with_an_idempotency_key(
    sink: MemoryAuditSink,
) -> None:
    reset_stores()
    connector = MockConnector()
    connector.faults.fail("push", TransientError, after=True, times=1)
    session = Session(
        connector, config={"store": "resilience"}, context=CONTEXT, governance=governance(sink)
    )
    with session:
        keyed = PAYLOAD.model_copy(update={"idempotency_key": "k-1"})
        assert session.push(keyed).accepted == ("a",)
        assert len(connector.calls_to("push")) == 2


def test_run_lifecycle_reports_ok_when_a_retry_succeeded(sink: MemoryAuditSink) -> None:
    reset_stores()
    report = run_lifecycle(
        MockConnector(),
        config={"store": "resilience", "faults": [{"operation": "fetch", "error": "transient"}]},
        context=CONTEXT,
        plan=[FetchQuery()],
        governance=governance(sink),
    )
    assert [(s.step, s.attempt, s.outcome) for s in report.steps] == [
        ("auth", 1, "ok"),
        ("connect", 1, "ok"),
        ("fetch", 1, "error"),
        ("fetch", 2, "ok"),
        ("revoke", 1, "ok"),
    ]
    assert report.steps[3].result is not None
    assert report.ok


@pytest.mark.timeout(60)
def test_breakers_follow_their_connectors_through_garbage_collection() -> None:
    # Connectors caught in reference cycles die during a later collection, which may run in
    # the middle of `breaker_for`: nothing of the registry of breakers may block it then.
    class Cyclic:
        def __init__(self) -> None:
            self.me = self

    policy = BreakerPolicy(failure_threshold=3, cool_down=1.0)
    kept = Cyclic()
    shared = breaker_for(kept, policy)
    for _ in range(2000):
        breaker_for(Cyclic(), policy)
    gc.collect()

    assert breaker_for(kept, policy) is shared
    assert len(_BREAKERS) < 50
