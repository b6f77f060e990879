"""MockConfig: validation through the library's ConfigError, JSON Schema, secret masking."""

from __future__ import annotations

import json
from typing import Any

import pytest

from integrations.base import (
    AuthError,
    ConfigError,
    ConnectorConfig,
    InvalidRequest,
    RateLimited,
    Secret,
    TransientError,
)
from integrations.mocks import FaultSpec, MockConfig, MockConnector

CANARY = "canary-s3cr3t-value"


def test_defaults_are_valid() -> None:
    config = MockConfig.from_mapping({})

    assert config == MockConfig()
    assert config.store == "default"
    assert config.api_key is None
    assert config.latency_seconds == 0
    assert config.faults == ()


def test_from_mapping_builds_nested_faults() -> None:
    config = MockConfig.from_mapping(
        {
            "store": "shared",
            "api_key": CANARY,
            "token_ttl_seconds": 30,
            "faults": [{"operation": "fetch", "error": "rate_limited", "retry_after": 2}],
        }
    )

    assert isinstance(config.api_key, Secret)
    assert config.api_key.reveal() == CANARY
    assert config.faults == (FaultSpec(operation="fetch", error="rate_limited", retry_after=2),)


@pytest.mark.parametrize(
    ("mapping", "field"),
    [
        ({"store": ""}, "store"),
        ({"latency_seconds": -1}, "latency_seconds"),
        ({"latency_seconds": "nan"}, "latency_seconds"),
        ({"page_size_max": 0}, "page_size_max"),
        ({"sync_page_size": 10_001}, "sync_page_size"),
        ({"token_ttl_seconds": -5}, "token_ttl_seconds"),
        ({"max_record_bytes": 1}, "max_record_bytes"),
        ({"fail_auth": "perhaps"}, "fail_auth"),
        ({"required_fields": "title"}, "required_fields"),
        ({"unknown_option": 1}, "unknown_option"),
        ({"faults": [{"operation": "explode"}]}, "faults.0.operation"),
        ({"faults": [{"operation": "fetch", "error": "meltdown"}]}, "faults.0.error"),
        ({"faults": [{"operation": "fetch", "on_call": 0}]}, "faults.0.on_call"),
        ({"faults": [{"operation": "fetch", "times": 0}]}, "faults.0.times"),
    ],
)
def test_bad_config_raises_config_error_naming_the_field(
    mapping: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        MockConfig.from_mapping(mapping)

    assert field in [name for name, _reason in caught.value.problems]
    assert field in str(caught.value)


def test_config_error_never_shows_the_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        MockConfig.from_mapping({"api_key": CANARY, "latency_seconds": -1})

    assert CANARY not in str(caught.value)
    assert CANARY not in repr(caught.value.problems)


def test_api_key_is_masked_everywhere() -> None:
    config = MockConfig(api_key=Secret(CANARY))

    renderings = [
        repr(config),
        str(config),
        config.model_dump_json(),
        json.dumps(config.model_dump(mode="json")),
        repr(config.model_dump()),
        f"{config.api_key}",
    ]
    for rendering in renderings:
        assert CANARY not in rendering


def test_json_schema_marks_api_key_as_secret() -> None:
    schema = MockConfig.json_schema()

    assert "x-secret" in json.dumps(schema["properties"]["api_key"])
    assert schema["additionalProperties"] is False
    assert {"store", "latency_seconds", "faults", "token_ttl_seconds"} <= set(schema["properties"])


def test_config_is_immutable() -> None:
    config = MockConfig()

    with pytest.raises(ValueError, match="frozen"):
        config.store = "other"  # type: ignore[misc]  # asserting the runtime refusal


def test_connect_refuses_another_config_model() -> None:
    connector = MockConnector()

    with pytest.raises(ConfigError, match="MockConfig"):
        connector.connect(ConnectorConfig())  # type: ignore[arg-type]  # wrong model on purpose


def test_constructor_refuses_another_config_model() -> None:
    with pytest.raises(ConfigError, match="MockConfig"):
        MockConnector(ConnectorConfig())  # type: ignore[arg-type]  # wrong model on purpose


@pytest.mark.parametrize(
    ("kind", "error_class"),
    [("transient", TransientError), ("rate_limited", RateLimited), ("auth", AuthError)],
)
def test_fault_spec_builds_library_errors(kind: Any, error_class: type[Exception]) -> None:
    spec = FaultSpec(operation="push", error=kind, message="boom", retry_after=1.5)

    error = spec.build_error(3)

    assert type(error) is error_class
    assert "boom" in str(error)
    assert "push call #3" in str(error)
    if isinstance(error, TransientError):
        assert error.retry_after == 1.5


def test_fault_spec_without_error_only_delays() -> None:
    assert FaultSpec(operation="sync", error=None, delay_seconds=0.1).build_error(1) is None


def test_invalid_request_kind_is_available() -> None:
    spec = FaultSpec(operation="fetch", error="invalid_request")

    assert isinstance(spec.build_error(1), InvalidRequest)
