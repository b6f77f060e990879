"""Call recording: what a test can assert about the calls a connector received."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from integrations.base import (
    AuthContext,
    FetchQuery,
    FetchResult,
    LifecycleError,
    PushPayload,
    Record,
    Secret,
    SyncState,
)
from integrations.mocks import Call, MockConfig, MockConnector


def test_every_operation_is_recorded_with_its_argument_and_result(config: MockConfig) -> None:
    connector = MockConnector()
    context = AuthContext(tenant="acme", actor="alice")
    query = FetchQuery(text="x")
    payload = PushPayload(records=(Record(id="a"),))
    state = SyncState()
    before = datetime.now(UTC)

    token = connector.auth(context)
    connection = connector.connect(config)
    pushed = connector.push(payload)
    fetched = connector.fetch(query)
    synced = connector.sync(state)
    revoked = connector.revoke(token)

    calls = connector.calls
    assert [call.operation for call in calls] == [
        "auth",
        "connect",
        "push",
        "fetch",
        "sync",
        "revoke",
    ]
    assert [call.argument for call in calls] == [context, config, payload, query, state, token]
    assert calls[3].argument is query
    assert [call.result for call in calls] == [token, connection, pushed, fetched, synced, revoked]
    assert [call.index for call in calls] == list(range(6))
    assert all(call.number == 1 for call in calls)
    assert all(call.ok and call.outcome == "ok" and call.error is None for call in calls)
    assert all(before <= call.started_at <= datetime.now(UTC) for call in calls)
    assert all(call.started_at.tzinfo is not None for call in calls)
    assert all(call.duration_seconds >= 0 for call in calls)
    assert [call.tenant for call in calls] == ["acme"] * 6


def test_failed_calls_are_recorded_with_their_error() -> None:
    connector = MockConnector()

    with pytest.raises(LifecycleError) as caught:
        connector.fetch(FetchQuery())

    call = connector.last_call()
    assert call.operation == "fetch"
    assert not call.ok
    assert call.outcome == "error"
    assert call.error is caught.value
    assert call.result is None
    assert call.tenant is None


def test_calls_are_an_immutable_snapshot(ready: MockConnector) -> None:
    calls = ready.calls
    ready.fetch(FetchQuery())

    assert isinstance(calls, tuple)
    assert len(ready.calls) == len(calls) + 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        calls[0].operation = "push"  # type: ignore[misc]  # asserting the runtime refusal


def test_calls_to_and_numbering(ready: MockConnector) -> None:
    for limit in (1, 2, 3):
        ready.fetch(FetchQuery(limit=limit))
    ready.sync(SyncState())

    fetches = ready.calls_to("fetch")

    assert [call.number for call in fetches] == [1, 2, 3]
    assert [call.argument for call in fetches] == [FetchQuery(limit=n) for n in (1, 2, 3)]
    assert ready.last_call("fetch") is fetches[-1]
    assert ready.last_call().operation == "sync"
    assert ready.calls_to("push") == ()


def test_last_call_without_calls_raises_lookup_error() -> None:
    connector = MockConnector()

    with pytest.raises(LookupError):
        connector.last_call()
    with pytest.raises(LookupError, match="push"):
        connector.last_call("push")


def test_calls_to_an_unknown_operation_is_a_value_error(ready: MockConnector) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        ready.calls_to("delete")  # type: ignore[arg-type]  # not an operation, on purpose


def test_clear_calls_keeps_the_numbering(ready: MockConnector) -> None:
    ready.fetch(FetchQuery())
    ready.clear_calls()
    ready.fetch(FetchQuery())

    assert [call.number for call in ready.calls] == [2]


def test_recorded_calls_never_show_secrets(config: MockConfig) -> None:
    connector = MockConnector()
    token = connector.auth(AuthContext(tenant="acme"))
    connector.connect(config.model_copy(update={"api_key": Secret("canary-api-key")}))
    connector.revoke(token)

    rendered = repr(connector.calls)

    assert "canary-api-key" not in rendered
    assert token.value.reveal() not in rendered


def test_call_is_a_plain_dataclass() -> None:
    call = Call(
        index=0,
        operation="fetch",
        number=1,
        argument=FetchQuery(),
        tenant=None,
        started_at=datetime.now(UTC),
        duration_seconds=0.0,
        result=FetchResult(),
    )

    assert call.ok
    assert dataclasses.replace(call, error=RuntimeError("x")).outcome == "error"
