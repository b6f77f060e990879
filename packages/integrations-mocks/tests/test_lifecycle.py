"""Lifecycle of the mock: the contract, auth, connect, revoke, token expiry, credentials."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from integrations.base import (
    AuthContext,
    AuthError,
    AuthExpired,
    AuthToken,
    Capability,
    Connector,
    FetchQuery,
    LifecycleError,
    PushPayload,
    Record,
    Secret,
    SyncState,
    check_connector_class,
)
from integrations.mocks import MockConfig, MockConnector, MockStore

CONTEXT = AuthContext(tenant="acme", actor="alice", scopes=frozenset({"read", "write"}))


def test_mock_fits_the_contract() -> None:
    check_connector_class(MockConnector)

    assert isinstance(MockConnector(), Connector)
    assert MockConnector.capabilities == {Capability.FETCH, Capability.PUSH, Capability.SYNC}
    assert MockConnector.config_model is MockConfig


DATA_OPERATIONS: list[Callable[[MockConnector], object]] = [
    lambda connector: connector.fetch(FetchQuery()),
    lambda connector: connector.push(PushPayload(records=(Record(id="r1"),))),
    lambda connector: connector.sync(SyncState()),
]


@pytest.mark.parametrize("operation", DATA_OPERATIONS, ids=["fetch", "push", "sync"])
def test_data_operations_need_auth(operation: Callable[[MockConnector], object]) -> None:
    connector = MockConnector()

    with pytest.raises(LifecycleError, match="auth"):
        operation(connector)


@pytest.mark.parametrize("operation", DATA_OPERATIONS, ids=["fetch", "push", "sync"])
def test_data_operations_need_connect(operation: Callable[[MockConnector], object]) -> None:
    connector = MockConnector()
    connector.auth(CONTEXT)

    with pytest.raises(LifecycleError, match="connect"):
        operation(connector)


def test_connect_then_auth_also_works(config: MockConfig) -> None:
    connector = MockConnector()
    connector.connect(config)
    connector.auth(CONTEXT)

    assert connector.fetch(FetchQuery()).records == ()


def test_auth_issues_a_fresh_masked_token() -> None:
    connector = MockConnector()

    first = connector.auth(CONTEXT)
    second = connector.auth(CONTEXT)

    assert isinstance(first.value, Secret)
    assert len(first.value.reveal()) >= 32
    assert first.value != second.value
    assert first.scopes == CONTEXT.scopes
    assert first.expires_at is None
    assert connector.token == second
    for rendering in (repr(first), str(first), first.model_dump_json()):
        assert first.value.reveal() not in rendering


def test_token_expiry_comes_from_the_config(config: MockConfig) -> None:
    connector = MockConnector(config.model_copy(update={"token_ttl_seconds": 60}))
    before = datetime.now(UTC)

    token = connector.auth(CONTEXT)

    assert token.expires_at is not None
    assert before + timedelta(seconds=60) <= token.expires_at
    assert token.expires_at <= datetime.now(UTC) + timedelta(seconds=60)
    assert not token.is_expired()


def test_connect_returns_a_connection_naming_the_store(config: MockConfig) -> None:
    connector = MockConnector()

    connection = connector.connect(config)

    assert connection.connection_id.startswith("mock-")
    assert connection.info == {"store": config.store}
    assert connector.connection == connection
    assert connector.config == config


def test_revoke_releases_the_connection_and_the_token(ready: MockConnector) -> None:
    token = ready.token
    assert token is not None

    result = ready.revoke(token)

    assert result.revoked
    assert ready.connection is None
    with pytest.raises(AuthError, match="revoked"):
        ready.fetch(FetchQuery())


def test_after_revoke_auth_and_connect_again(ready: MockConnector, config: MockConfig) -> None:
    token = ready.token
    assert token is not None
    ready.revoke(token)

    ready.auth(CONTEXT)
    with pytest.raises(LifecycleError, match="connect"):
        ready.fetch(FetchQuery())
    ready.connect(config)

    assert ready.fetch(FetchQuery()).records == ()


def test_revoke_twice_is_harmless(ready: MockConnector) -> None:
    token = ready.token
    assert token is not None
    ready.revoke(token)

    again = ready.revoke(token)

    assert again.revoked
    assert "already" in again.detail


def test_revoke_of_a_foreign_token_revokes_nothing(ready: MockConnector) -> None:
    foreign = AuthToken(value=Secret("not-from-this-connector"))

    result = ready.revoke(foreign)

    assert not result.revoked
    assert ready.connection is not None


def test_revoking_an_older_token_keeps_the_connection(ready: MockConnector) -> None:
    old = ready.token
    assert old is not None
    ready.auth(CONTEXT)

    assert ready.revoke(old).revoked
    assert ready.connection is not None
    assert ready.fetch(FetchQuery()).records == ()


def test_token_expires_after_the_configured_ttl(
    open_connector: Callable[..., MockConnector],
) -> None:
    # Long enough that the first fetch is inside it on a loaded machine; the sleep passes it.
    connector = open_connector(token_ttl_seconds=2.0)
    connector.fetch(FetchQuery())

    time.sleep(2.05)

    with pytest.raises(AuthExpired):
        connector.fetch(FetchQuery())
    connector.auth(CONTEXT)
    assert connector.fetch(FetchQuery()).records == ()


def test_ttl_from_connect_governs_a_token_issued_before(
    open_connector: Callable[..., MockConnector],
) -> None:
    # A session runs auth before connect: the token was issued without a config.
    connector = open_connector(token_ttl_seconds=0)

    with pytest.raises(AuthExpired):
        connector.fetch(FetchQuery())


def test_auth_expired_is_an_auth_error() -> None:
    assert issubclass(AuthExpired, AuthError)


def test_fail_auth_in_the_constructor_config_fails_auth(config: MockConfig) -> None:
    connector = MockConnector(config.model_copy(update={"fail_auth": True}))

    with pytest.raises(AuthError, match="fail_auth"):
        connector.auth(CONTEXT)
    assert connector.token is None


def test_fail_auth_given_at_connect_fails_connect(config: MockConfig) -> None:
    connector = MockConnector()
    connector.auth(CONTEXT)

    with pytest.raises(AuthError, match="fail_auth"):
        connector.connect(config.model_copy(update={"fail_auth": True}))
    assert connector.connection is None


def test_store_can_demand_an_api_key(store: MockStore, config: MockConfig) -> None:
    store.require_api_key("the-right-key")
    connector = MockConnector()
    connector.auth(CONTEXT)

    with pytest.raises(AuthError) as wrong:
        connector.connect(config.model_copy(update={"api_key": Secret("a-wrong-key")}))
    with pytest.raises(AuthError):
        connector.connect(config)
    connector.connect(config.model_copy(update={"api_key": Secret("the-right-key")}))

    assert "a-wrong-key" not in str(wrong.value)
    assert "the-right-key" not in str(wrong.value)
    assert connector.fetch(FetchQuery()).records == ()


def test_api_key_is_checked_at_auth_when_the_config_is_known(
    store: MockStore, config: MockConfig
) -> None:
    store.require_api_key(Secret("k"))
    connector = MockConnector(config)

    with pytest.raises(AuthError):
        connector.auth(CONTEXT)


def test_repr_names_the_store_and_state(config: MockConfig) -> None:
    connector = MockConnector()
    assert repr(connector) == "MockConnector(store=None, connected=False)"

    connector.connect(config)

    assert repr(connector) == f"MockConnector(store={config.store!r}, connected=True)"
    assert connector.store.name == config.store
