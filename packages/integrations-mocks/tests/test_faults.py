"""Fault injection, through `connector.faults` and through the config."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import pytest

from integrations.base import (
    AuthContext,
    AuthError,
    AuthExpired,
    ConnectionFailed,
    FetchQuery,
    PushPayload,
    RateLimited,
    Record,
    SyncState,
    TransientError,
)
from integrations.mocks import FaultSpec, MockConfig, MockConnector, MockStore

OpenConnector = Callable[..., MockConnector]
CONTEXT = AuthContext(tenant="acme")


def outcomes(connector: MockConnector, count: int) -> list[str]:
    """Run `count` fetches and name what each one raised ("ok" when nothing)."""
    names = []
    for _ in range(count):
        try:
            connector.fetch(FetchQuery())
        except Exception as error:
            names.append(type(error).__name__)
        else:
            names.append("ok")
    return names


# -- fail ----------------------------------------------------------------------------------------


def test_fail_on_the_nth_call_with_an_error_class(ready: MockConnector) -> None:
    ready.faults.fail("fetch", TransientError, on_call=2)

    assert outcomes(ready, 3) == ["ok", "TransientError", "ok"]
    error = ready.calls_to("fetch")[1].error
    assert isinstance(error, TransientError)
    assert "fetch call #2" in str(error)


def test_fail_raises_an_instance_as_is(ready: MockConnector) -> None:
    error = RateLimited("slow down", retry_after=3)
    ready.faults.fail("push", error)

    with pytest.raises(RateLimited) as caught:
        ready.push(PushPayload(records=(Record(id="a"),)))

    assert caught.value is error
    assert caught.value.retry_after == 3
    assert ready.store.records("acme") == ()


def test_fail_defaults_to_the_next_call_once(ready: MockConnector) -> None:
    outcomes(ready, 2)
    ready.faults.fail("fetch", ConnectionFailed)

    assert outcomes(ready, 2) == ["ConnectionFailed", "ok"]
    assert ready.calls_to("fetch")[2].number == 3


def test_fail_several_times_and_for_ever(ready: MockConnector) -> None:
    ready.faults.fail("fetch", TransientError, on_call=2, times=2)
    ready.faults.fail("sync", RuntimeError, times=None)

    assert outcomes(ready, 4) == ["ok", "TransientError", "TransientError", "ok"]
    for _ in range(3):
        with pytest.raises(RuntimeError):
            ready.sync(SyncState())


def test_first_registered_fault_wins(ready: MockConnector) -> None:
    ready.faults.fail("fetch", TransientError)
    ready.faults.fail("fetch", ConnectionFailed)

    assert outcomes(ready, 1) == ["TransientError"]


def test_clear_removes_the_faults(ready: MockConnector) -> None:
    ready.faults.fail("fetch", TransientError, times=None)
    ready.faults.delay("fetch", 5)
    ready.faults.clear()

    assert outcomes(ready, 1) == ["ok"]


def test_faults_apply_to_lifecycle_operations_too(config: MockConfig) -> None:
    connector = MockConnector()
    connector.faults.fail("connect", ConnectionFailed)
    connector.faults.fail("revoke", TransientError)
    token = connector.auth(CONTEXT)

    with pytest.raises(ConnectionFailed):
        connector.connect(config)
    connector.connect(config)
    with pytest.raises(TransientError):
        connector.revoke(token)
    assert connector.revoke(token).revoked


def test_fail_after_applying_models_a_lost_response(ready: MockConnector, store: MockStore) -> None:
    ready.faults.fail("push", TransientError, after=True)
    payload = PushPayload(records=(Record(id="a", data={"n": 1}),), idempotency_key="retry-me")

    with pytest.raises(TransientError):
        ready.push(payload)
    retried = ready.push(payload)

    assert retried.accepted == ("a",)
    assert store.sequence("acme") == 1


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda f: f.fail("delete", TransientError), ValueError),
        (lambda f: f.fail("fetch", TransientError, on_call=0), ValueError),
        (lambda f: f.fail("fetch", TransientError, times=0), ValueError),
        (lambda f: f.fail("fetch", "boom"), TypeError),
        (lambda f: f.delay("fetch", -1), ValueError),
        (lambda f: f.delay("fetch", float("nan")), ValueError),
        (lambda f: f.delay("fetch", float("inf")), ValueError),
    ],
)
def test_bad_fault_requests_are_refused(call: Callable[..., None], error: type[Exception]) -> None:
    with pytest.raises(error):
        call(MockConnector().faults)


# -- delay ---------------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def test_delay_slows_the_chosen_calls(ready: MockConnector) -> None:
    # A delay far above what an undelayed in-memory fetch takes even on a loaded machine.
    ready.faults.delay("fetch", 1.0, times=1)

    slow = timed(lambda: ready.fetch(FetchQuery()))
    fast = timed(lambda: ready.fetch(FetchQuery()))

    assert slow >= 1.0
    assert fast < 1.0
    assert ready.calls_to("fetch")[0].duration_seconds >= 1.0


def test_config_latency_slows_every_operation(open_connector: OpenConnector) -> None:
    connector = open_connector(latency_seconds=0.02)

    assert timed(lambda: connector.fetch(FetchQuery())) >= 0.02
    assert timed(lambda: connector.sync(SyncState())) >= 0.02
    assert timed(lambda: connector.auth(CONTEXT)) >= 0.02


# -- auth faults ---------------------------------------------------------------------------------


def test_fail_auth_makes_auth_raise(ready: MockConnector) -> None:
    ready.faults.fail_auth()

    with pytest.raises(AuthError):
        ready.auth(CONTEXT)
    assert ready.auth(CONTEXT) == ready.token


def test_fail_auth_for_ever_with_a_chosen_error() -> None:
    connector = MockConnector()
    connector.faults.fail_auth(AuthError("tenant suspended"), times=None)

    for _ in range(3):
        with pytest.raises(AuthError, match="tenant suspended"):
            connector.auth(CONTEXT)
    assert connector.token is None


def test_expire_tokens_until_reauth(ready: MockConnector) -> None:
    ready.faults.expire_tokens()

    assert outcomes(ready, 2) == ["AuthExpired", "AuthExpired"]
    ready.auth(CONTEXT)
    assert outcomes(ready, 1) == ["ok"]


def test_expired_tokens_break_push_and_sync_too(ready: MockConnector) -> None:
    ready.faults.expire_tokens()

    with pytest.raises(AuthExpired):
        ready.push(PushPayload(records=(Record(id="a"),)))
    with pytest.raises(AuthExpired):
        ready.sync(SyncState())


# -- faults from the config ---------------------------------------------------------------------


def test_config_faults_from_a_mapping(store_name: str) -> None:
    config = MockConfig.from_mapping(
        {
            "store": store_name,
            "faults": [
                {"operation": "fetch", "error": "rate_limited", "retry_after": 2.5, "on_call": 2},
                {"operation": "push", "error": "connection", "times": None},
            ],
        }
    )
    connector = MockConnector()
    connector.auth(CONTEXT)
    connector.connect(config)

    assert outcomes(connector, 3) == ["ok", "RateLimited", "ok"]
    limited = connector.calls_to("fetch")[1].error
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 2.5
    with pytest.raises(ConnectionFailed):
        connector.push(PushPayload(records=(Record(id="a"),)))


def test_config_fault_can_only_delay(open_connector: OpenConnector) -> None:
    spec = FaultSpec(operation="sync", error=None, delay_seconds=0.03)
    connector = open_connector(faults=(spec,))

    assert timed(lambda: connector.sync(SyncState())) >= 0.03


def test_config_fault_after_applying(open_connector: OpenConnector, store: MockStore) -> None:
    connector = open_connector(faults=(FaultSpec(operation="push", after=True),))

    with pytest.raises(TransientError):
        connector.push(PushPayload(records=(Record(id="a"),)))

    assert [r.id for r in store.records("acme")] == ["a"]


def test_a_new_config_replaces_the_config_faults(ready: MockConnector, config: MockConfig) -> None:
    failing = config.model_copy(update={"faults": (FaultSpec(operation="fetch", times=None),)})
    ready.connect(failing)
    assert outcomes(ready, 1) == ["TransientError"]

    ready.connect(config)

    assert outcomes(ready, 1) == ["ok"]


def test_config_faults_survive_faults_clear(open_connector: OpenConnector) -> None:
    connector = open_connector(faults=(FaultSpec(operation="fetch", times=None),))
    connector.faults.clear()

    assert outcomes(connector, 1) == ["TransientError"]


def test_constructor_config_faults_reach_auth(config: MockConfig) -> None:
    failing = config.model_copy(update={"faults": (FaultSpec(operation="auth", error="auth"),)})
    connector = MockConnector(failing)

    with pytest.raises(AuthError, match="auth call #1"):
        connector.auth(CONTEXT)
    connector.auth(CONTEXT)


# -- concurrency ---------------------------------------------------------------------------------


def test_faults_hit_exactly_the_chosen_calls_under_concurrency(ready: MockConnector) -> None:
    ready.faults.fail("fetch", TransientError, on_call=10, times=5)
    failures: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            try:
                ready.fetch(FetchQuery())
            except TransientError:
                with lock:
                    failures.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    fetches = ready.calls_to("fetch")
    assert len(failures) == 5
    assert len(fetches) == 200
    assert sorted(call.number for call in fetches) == list(range(1, 201))
    assert sorted(call.number for call in fetches if not call.ok) == [10, 11, 12, 13, 14]


def test_faults_can_be_added_while_calls_run(ready: MockConnector) -> None:
    stop = threading.Event()

    def caller() -> None:
        while not stop.is_set():
            with contextlib.suppress(TransientError):
                ready.fetch(FetchQuery())

    thread = threading.Thread(target=caller)
    thread.start()
    try:
        for _ in range(200):
            ready.faults.fail("fetch", TransientError)
        ready.faults.clear()
    finally:
        stop.set()
        thread.join()

    assert all(call.ok or isinstance(call.error, TransientError) for call in ready.calls)
