"""The contract: models, `Secret`, the error tree, and the pluggy-style class check."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from integrations.base import (
    AuditError,
    AuthContext,
    AuthError,
    AuthExpired,
    AuthToken,
    BaseConnector,
    Capability,
    ConfigError,
    Connection,
    ConnectionFailed,
    Connector,
    ConnectorConfig,
    ConnectorConflict,
    ConnectorError,
    ConnectorNotFound,
    ConnectorUnavailable,
    ContractError,
    DiscoveryError,
    FetchQuery,
    FetchResult,
    IntegrationsError,
    InvalidRequest,
    LifecycleError,
    ManifestError,
    NotFound,
    NotSupported,
    PolicyError,
    PushPayload,
    PushResult,
    RateLimited,
    Record,
    Rejection,
    RevokeResult,
    Secret,
    SecretError,
    SyncResult,
    SyncState,
    TransientError,
    check_connector_class,
)
from integrations.base.connector import contract_problems

MASK = "**********"
RAW = "hunter2-very-secret"

# -- Secret ----------------------------------------------------------------------------------


def test_secret_never_shows_itself() -> None:
    secret = Secret(RAW)

    assert secret.reveal() == RAW
    for rendering in (repr(secret), str(secret), f"{secret}", f"{secret:>20}", format(secret, "")):
        assert RAW not in rendering
    assert str(secret) == MASK
    assert repr(secret) == f"Secret({MASK!r})"
    assert RAW not in repr([secret, {"key": secret}])


def test_secret_equality_hash_truth_and_pickle() -> None:
    assert Secret(RAW) == Secret(RAW)
    assert Secret(RAW) != Secret("other")
    assert Secret(RAW) != RAW
    assert hash(Secret(RAW)) == hash(Secret(RAW))
    assert bool(Secret(RAW)) is True
    assert bool(Secret("")) is False
    restored = pickle.loads(pickle.dumps(Secret(RAW)))
    assert isinstance(restored, Secret)
    assert restored.reveal() == RAW


def test_secret_wraps_only_strings() -> None:
    with pytest.raises(TypeError, match="a Secret wraps a str"):
        Secret(42)  # type: ignore[arg-type]


class ApiConfig(ConnectorConfig):
    """A config with a secret, a number and a nested requirement."""

    endpoint: str
    port: int = 443
    api_key: Secret


def test_secret_fields_are_masked_in_dumps_and_schema() -> None:
    config = ApiConfig.from_mapping({"endpoint": "https://x", "api_key": RAW})

    assert isinstance(config.api_key, Secret)
    assert config.api_key.reveal() == RAW
    assert config.model_dump(mode="json")["api_key"] == MASK
    assert repr(config.model_dump()["api_key"]) == f"Secret({MASK!r})"
    assert RAW not in config.model_dump_json()
    assert json.loads(config.model_dump_json())["api_key"] == MASK
    assert RAW not in repr(config)
    assert RAW not in str(config)
    schema = ApiConfig.json_schema()
    api_key = schema["properties"]["api_key"]
    assert {key: api_key[key] for key in ("type", "format", "writeOnly", "x-secret")} == {
        "type": "string",
        "format": "password",
        "writeOnly": True,
        "x-secret": True,
    }
    assert schema["required"] == ["endpoint", "api_key"]
    assert ApiConfig.from_mapping({"endpoint": "e", "api_key": Secret(RAW)}).api_key == Secret(RAW)


# -- ConfigError -----------------------------------------------------------------------------


def test_config_error_names_every_bad_field_without_leaking_values() -> None:
    data = {"port": f"not-a-port-{RAW}", "api_key": 12345, "unknown": RAW}

    with pytest.raises(ConfigError) as raised:
        ApiConfig.from_mapping(data)

    error = raised.value
    fields = [field for field, _ in error.problems]
    assert {field.split(".")[0] for field in fields} == {"api_key", "endpoint", "port", "unknown"}
    message = str(error)
    assert message.startswith("invalid ApiConfig: ")
    for field, reason in error.problems:
        assert f"{field}: {reason}" in message
    assert RAW not in message
    assert "12345" not in message
    assert RAW not in repr(error)
    assert RAW not in repr(error.problems)
    assert error.__cause__ is None  # pydantic's error, which holds the input, is not chained
    assert error.__suppress_context__ is True
    assert isinstance(error, ValueError)
    assert isinstance(error, IntegrationsError)


def test_config_error_for_a_nested_field_uses_a_dotted_name() -> None:
    class Outer(ConnectorConfig):
        inner: ApiConfig

    with pytest.raises(ConfigError) as raised:
        Outer.from_mapping({"inner": {"endpoint": "e", "api_key": RAW, "port": "x"}})

    assert [field for field, _ in raised.value.problems] == ["inner.port"]
    assert RAW not in str(raised.value)


# -- models ----------------------------------------------------------------------------------


def test_models_are_frozen_and_reject_unknown_fields() -> None:
    record = Record(id="1", data={"a": [1, 2, {"b": None}]})

    with pytest.raises(ValidationError):
        record.id = "2"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Record.model_validate({"id": "1", "surprise": True})
    with pytest.raises(ValidationError, match="at least 1 character"):
        Record(id="")
    assert hash(Rejection(id="1", reason="r")) == hash(Rejection(id="1", reason="r"))
    with pytest.raises(TypeError, match="unhashable"):
        hash(Connection(connection_id="c"))  # `info` is a dict: hashable only where fields are


@pytest.mark.parametrize("limit", [0, 10_001])
def test_fetch_query_limit_is_bounded(limit: int) -> None:
    with pytest.raises(ValidationError, match="limit"):
        FetchQuery(limit=limit)


def test_model_defaults() -> None:
    assert FetchQuery().limit == 100
    assert FetchResult().records == ()
    assert FetchResult().next_cursor is None
    assert PushResult() == PushResult(accepted=(), rejected=())
    assert PushPayload(records=(Record(id="1"),)).idempotency_key is None
    assert AuthContext().scopes == frozenset()
    assert RevokeResult(revoked=False).detail == ""


def test_token_expiry() -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    token = AuthToken(value=Secret(RAW), expires_at=now)

    assert token.is_expired(now) is True
    assert token.is_expired(now - timedelta(seconds=1)) is False
    assert AuthToken(value=Secret(RAW)).is_expired() is False
    assert RAW not in token.model_dump_json()
    with pytest.raises(ValidationError, match="timezone"):
        AuthToken(value=Secret(RAW), expires_at=datetime(2024, 1, 1))


def test_sync_state_round_trip_and_damaged_state() -> None:
    state = SyncState(cursor="c1", bookmarks={"page": 3, "ids": ["a", "b"]})

    assert SyncState.from_json(state.to_json()) == state
    with pytest.raises(InvalidRequest, match="invalid sync state"):
        SyncState.from_json('{"cursor": 1}')
    with pytest.raises(InvalidRequest, match="invalid sync state"):
        SyncState.from_json("not json")


def test_sync_result_counts() -> None:
    result = SyncResult(
        state=SyncState(),
        changes=(Record(id="1"), Record(id="2", deleted=True), Record(id="3")),
    )

    assert (result.upserted, result.deleted) == (2, 1)
    assert json.loads(result.model_dump_json())["upserted"] == 2


# -- the error tree --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "parents"),
    [
        (ConfigError, (IntegrationsError, ValueError)),
        (ContractError, (IntegrationsError, TypeError)),
        (ManifestError, (IntegrationsError, ValueError)),
        (ConnectorNotFound, (DiscoveryError, LookupError)),
        (ConnectorConflict, (DiscoveryError,)),
        (ConnectorUnavailable, (DiscoveryError,)),
        (DiscoveryError, (IntegrationsError,)),
        (LifecycleError, (IntegrationsError,)),
        (PolicyError, (IntegrationsError,)),
        (AuditError, (IntegrationsError,)),
        (SecretError, (IntegrationsError,)),
        (AuthExpired, (AuthError, ConnectorError)),
        (ConnectionFailed, (ConnectorError,)),
        (NotFound, (ConnectorError, LookupError)),
        (NotSupported, (ConnectorError, NotImplementedError)),
        (InvalidRequest, (ConnectorError, ValueError)),
        (RateLimited, (TransientError, ConnectorError)),
        (ConnectorError, (IntegrationsError,)),
    ],
)
def test_error_tree(error: type[Exception], parents: tuple[type[Exception], ...]) -> None:
    for parent in parents:
        assert issubclass(error, parent)
    assert issubclass(error, IntegrationsError)


def test_errors_carry_their_details() -> None:
    assert RateLimited("slow down", retry_after=2.5).retry_after == 2.5
    assert TransientError("later").retry_after is None
    assert PolicyError("denied", reason="no quorum").reason == "no quorum"
    assert PolicyError("denied").reason == "denied"
    manifest_error = ManifestError("bad", "m.json", "/connectors/0")
    assert (manifest_error.source, manifest_error.pointer) == ("m.json", "/connectors/0")
    assert ConfigError("bad").problems == ()


# -- the contract check ----------------------------------------------------------------------


class Good(BaseConnector[ConnectorConfig]):
    capabilities = frozenset({Capability.FETCH, Capability.SYNC})

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret(RAW))

    def connect(self, config: ConnectorConfig) -> Connection:
        return Connection(connection_id="good")

    def fetch(self, query: FetchQuery) -> FetchResult:
        return FetchResult()

    def sync(self, state: SyncState) -> SyncResult:
        return SyncResult(state=state)

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)


class Structural:
    """Fits the contract without inheriting from `BaseConnector`."""

    capabilities = frozenset({Capability.PUSH})
    config_model = ConnectorConfig

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret(RAW))

    def connect(self, config: ConnectorConfig) -> Connection:
        return Connection(connection_id="s")

    def push(self, payload: PushPayload, *, dry_run: bool = False) -> PushResult:
        return PushResult()

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)


def test_good_classes_fit() -> None:
    assert contract_problems(Good) == []
    assert contract_problems(Structural) == []
    check_connector_class(Good)
    assert isinstance(Good(), Connector)


def test_undeclared_operations_raise_not_supported() -> None:
    with pytest.raises(NotSupported, match="Good does not support push"):
        Good().push(PushPayload(records=()))


def _variant(**members: Any) -> type:
    return type("Variant", (Good,), members)


def _plain(**members: Any) -> type:
    namespace = {
        name: value for name, value in vars(Structural).items() if not name.startswith("__")
    }
    namespace.update(members)
    return type("Plain", (), {k: v for k, v in namespace.items() if v is not None})


async def _async_fetch(self: object, query: FetchQuery) -> FetchResult:
    return FetchResult()


@pytest.mark.parametrize(
    ("cls", "problem"),
    [
        (_plain(revoke=None), "missing method revoke()"),
        (_variant(fetch=lambda self: FetchResult()), "fetch() must take exactly one argument"),
        (
            _variant(sync=lambda self, state, extra: None),
            "sync() must take exactly one argument besides self",
        ),
        (_variant(fetch=_async_fetch), "fetch() must be a plain (non-async) method"),
        (_variant(fetch=staticmethod(lambda query: None)), "fetch is not a plain method"),
        (
            _variant(capabilities=frozenset({Capability.FETCH, Capability.PUSH})),
            "declares push but does not implement push()",
        ),
        (_variant(capabilities=frozenset({"fetch"})), "capabilities must be a frozenset"),
        (_variant(capabilities=None), "capabilities must be a frozenset of Capability"),
        (_variant(config_model=dict), "config_model must be a ConnectorConfig subclass"),
        (
            type("Abstract", (BaseConnector,), {}),
            "abstract methods not implemented: auth, connect, revoke",
        ),
    ],
)
def test_contract_problems_name_the_method(cls: type, problem: str) -> None:
    problems = contract_problems(cls)

    assert any(problem in item for item in problems), problems
    with pytest.raises(ContractError, match="does not implement the connector contract"):
        check_connector_class(cls)


def test_contract_problems_of_a_non_class() -> None:
    instance = Good()

    assert contract_problems(instance) == [f"{instance!r} is not a class"]
    with pytest.raises(ContractError, match="is not a class"):
        check_connector_class(42)


def test_check_lists_every_problem_at_once() -> None:
    bad = _plain(revoke=None, connect=None, capabilities=frozenset({"push"}))

    with pytest.raises(ContractError) as raised:
        check_connector_class(bad)

    message = str(raised.value)
    assert message.startswith("Plain does not implement the connector contract: ")
    for expected in ("missing method connect()", "missing method revoke()", "capabilities"):
        assert expected in message
