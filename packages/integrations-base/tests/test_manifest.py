"""The manifest format: fields, legacy forms, per-entry isolation, and properties of the loader.

The property-based tests feed `parse_manifest` arbitrary JSON values and arbitrary bytes: the
result is a `ParsedManifest` or a `ManifestError`, never another exception, and no entry is
dropped silently. A strict discovery or load that fails leaves the registry as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from integrations.base import (
    AuthContext,
    AuthToken,
    BaseConnector,
    Capability,
    Connection,
    ConnectorConfig,
    IntegrationsError,
    ManifestError,
    RevokeResult,
    Secret,
)
from integrations.base.registry import (
    CapabilitySpec,
    ConnectorEntry,
    Registry,
    Status,
    parse_manifest,
)

# -- fields and defaults ---------------------------------------------------------------------


def _one(entry: dict[str, Any]) -> ConnectorEntry:
    parsed = parse_manifest(json.dumps({"connectors": [entry]}), "test.json")
    assert parsed.problems == ()
    [(_, parsed_entry)] = parsed.entries
    return parsed_entry


_MINIMAL = {"name": "crm.sales", "module": "integrations.crm", "class": "SalesConnector"}


def test_optional_fields_have_documented_defaults() -> None:
    entry = _one(_MINIMAL)

    assert entry.description == ""
    assert entry.version is None
    assert entry.capabilities == ()
    assert entry.declared_capabilities == frozenset()
    assert entry.contract == ">=1,<2"
    assert entry.tags == ()
    assert entry.config_schema is None
    assert (entry.auth.type, entry.auth.scopes) == ("none", ())
    assert (entry.audit.required, entry.audit.events) == (False, ())
    assert (entry.signing.required, entry.signing.publisher_key_id) == (False, None)
    assert entry.override is False


def test_legacy_capability_fields_are_mapped() -> None:
    entry = _one(
        {
            **_MINIMAL,
            "capabilities": [
                {
                    "action": "push",
                    "idempotency": True,
                    "quorum_policy": {"min_approvers": 2},
                    "schema": "schemas/push.json",
                },
                "fetch",
                {"action": "sync", "quorum_policy": 3},
            ],
            "auth": {"type": "oauth2", "scopes": ["crm.read", "crm.write"]},
            "audit": {"required": True, "events": ["push"]},
            "signing": {"required": True, "publisher_key_id": "key-1"},
        }
    )

    push = entry.capability(Capability.PUSH)
    assert push == CapabilitySpec(
        action=Capability.PUSH, idempotent=True, quorum=2, schema_ref="schemas/push.json"
    )
    assert entry.capability(Capability.FETCH) == CapabilitySpec(action=Capability.FETCH)
    sync = entry.capability(Capability.SYNC)
    assert sync is not None
    assert sync.quorum == 3
    assert entry.declared_capabilities == {Capability.FETCH, Capability.PUSH, Capability.SYNC}
    assert entry.auth.scopes == ("crm.read", "crm.write")
    assert entry.audit.required is True
    assert entry.signing.publisher_key_id == "key-1"


def test_current_capability_field_names() -> None:
    entry = _one(
        {
            **_MINIMAL,
            "capabilities": [
                {"action": "fetch", "idempotent": True, "quorum": 1, "schema_ref": "s.json"}
            ],
        }
    )

    assert entry.capabilities == (
        CapabilitySpec(action=Capability.FETCH, idempotent=True, quorum=1, schema_ref="s.json"),
    )
    assert entry.capability(Capability.PUSH) is None


@pytest.mark.parametrize(
    ("field", "value", "pointer", "reason"),
    [
        ("capabilities", ["fetch", "fetch"], "/capabilities", "each action may be listed once"),
        ("capabilities", ["delete"], "/capabilities/0", "Input should be 'fetch'"),
        (
            "capabilities",
            [{"action": "push", "quorum": -1}],
            "/capabilities/0/quorum",
            "greater than or equal to 0",
        ),
        ("contract", "not a range", "/contract", "not a version specifier: 'not a range'"),
        ("name", "Upper Case", "/name", "String should match pattern"),
        ("module", "no-dashes.allowed", "/module", "String should match pattern"),
        ("colour", "blue", "/colour", "Extra inputs are not permitted"),
    ],
)
def test_invalid_entry_is_a_problem_with_a_pointer(
    field: str, value: object, pointer: str, reason: str
) -> None:
    good = {**_MINIMAL, "name": "good"}
    bad = {**_MINIMAL, field: value}
    parsed = parse_manifest(json.dumps({"connectors": [good, bad]}), "m.json")

    assert [(index, entry.name) for index, entry in parsed.entries] == [(0, "good")]
    [problem] = parsed.problems
    assert problem.index == 1
    assert problem.pointer.startswith(f"/connectors/1{pointer}")
    assert reason in problem.reason


def test_schema_header_and_version_are_accepted() -> None:
    document = {"$schema": "./manifest.schema.json", "schema_version": 1, "connectors": []}

    parsed = parse_manifest(json.dumps(document), "m.json")

    assert (parsed.entries, parsed.problems) == ((), ())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid JSON"),
        (b"\x80\x81", "not valid JSON"),
        (b"1" * 5000, "not valid JSON"),  # longer than Python's integer conversion limit
        (b"[" * 100_000, "JSON nested too deeply"),
        (b"null", "a manifest is a JSON object"),
        (b'{"schema_version": "1"}', "Input should be 1"),
    ],
)
def test_unusable_documents_raise_manifest_error(data: bytes, message: str) -> None:
    with pytest.raises(ManifestError, match=message) as raised:
        parse_manifest(data, "doc.json")

    assert raised.value.source == "doc.json"
    assert str(raised.value).startswith("doc.json")


# -- properties of the loader ----------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)

_ENTRY_FIELDS = {
    "name": st.sampled_from(["good", "x.y", "Bad Name", ""]) | json_values,
    "module": st.sampled_from(["integrations.ok", "elsewhere.mod", "1bad"]) | json_values,
    "class": st.sampled_from(["Connector", "not valid"]) | json_values,
    "capabilities": st.lists(
        st.sampled_from(["fetch", "push", "sync", "nope"])
        | st.fixed_dictionaries(
            {},
            optional={
                "action": st.sampled_from(["fetch", "push", "sync"]) | json_values,
                "idempotency": json_values,
                "quorum_policy": st.fixed_dictionaries({"min_approvers": json_values})
                | json_values,
                "schema": json_values,
            },
        ),
        max_size=3,
    )
    | json_values,
    "contract": st.sampled_from([">=1,<2", ">=2", "~=1.0", "nonsense", "==1.*"]) | json_values,
    "override": json_values,
    "auth": json_values,
    "audit": json_values,
}

valid_entry = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"[a-z][a-z0-9.]{0,6}", fullmatch=True),
        "module": st.sampled_from(
            ["integrations.base", "integrations.base.connector", "integrations.x", "other.mod"]
        ),
        "class": st.sampled_from(["Connector", "Other"]),
    },
    optional={
        "capabilities": st.lists(st.sampled_from(["fetch", "push", "sync"]), unique=True),
        "contract": st.sampled_from([">=1,<2", ">=2", "~=1.0"]),
        "override": st.booleans(),
    },
)

manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": st.sampled_from([1, 2, "1"]),
        "$schema": json_values,
        "connectors": st.lists(
            valid_entry | st.fixed_dictionaries({}, optional=_ENTRY_FIELDS) | json_values,
            max_size=4,
        )
        | json_values,
    },
)


def _check_parse(data: bytes | str) -> None:
    try:
        parsed = parse_manifest(data, "generated.json")
    except ManifestError as error:
        failure: ManifestError | None = error
    else:
        failure = None
    event("manifest error" if failure else "parsed manifest")
    if failure is not None:
        assert failure.source == "generated.json"
        assert str(failure).startswith("generated.json")
        return
    document = json.loads(data)
    indices = sorted(
        [index for index, _ in parsed.entries] + [bad.index for bad in parsed.problems]
    )
    assert indices == list(range(len(document.get("connectors", []))))  # none dropped


@settings(max_examples=300, deadline=None)
@given(json_values | manifest_like)
def test_any_json_value_gives_a_manifest_or_a_manifest_error(value: Any) -> None:
    _check_parse(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | manifest_like.map(lambda doc: json.dumps(doc).encode()))
def test_any_bytes_give_a_manifest_or_a_manifest_error(data: bytes) -> None:
    _check_parse(data)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=100))
def test_any_text_gives_a_manifest_or_a_manifest_error(text: str) -> None:
    _check_parse(text)


class _Registered(BaseConnector[ConnectorConfig]):
    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("t"))

    def connect(self, config: ConnectorConfig) -> Connection:
        return Connection(connection_id="c")

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)


def _baseline(tmp_path: Path) -> Registry:
    """A registry holding one manifest connector and one registered connector, both ok."""
    baseline = tmp_path / "baseline.json"
    entry = {"name": "baseline", "module": "integrations.base", "class": "BaseConnector"}
    baseline.write_text(json.dumps({"connectors": [entry]}), encoding="utf-8")
    registry = Registry(distributions=False, environment=False)
    registry.load_manifest(baseline, strict=True)
    registry.register("baseline.registered", _Registered)
    return registry


def _state(registry: Registry) -> tuple[object, ...]:
    return registry.connectors(), registry.problems()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=100) | (json_values | manifest_like).map(lambda v: json.dumps(v)),
    load=st.booleans(),
)
def test_a_failing_strict_load_leaves_the_registry_unchanged(
    tmp_path: Path, data: bytes | str, load: bool
) -> None:
    registry = _baseline(tmp_path)
    before = _state(registry)
    path = tmp_path / "generated.json"
    path.write_bytes(data.encode() if isinstance(data, str) else data)

    try:
        if load:
            registry.load_manifest(path, strict=True)
        else:
            registry.discover(path, strict=True)
    except IntegrationsError as error:
        event(f"strict failed: {type(error).__name__}")
        assert _state(registry) == before
        registry.discover()  # nor did the failed file become a source
        assert _state(registry) == before
    else:
        event("strict succeeded")
        infos = registry.connectors()
        assert all(info.status is Status.OK for info in infos)
        assert {"baseline", "baseline.registered"} <= {info.name for info in infos}


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=(json_values | manifest_like).map(lambda v: json.dumps(v)))
def test_a_strict_discovery_succeeds_exactly_when_everything_is_ok(
    tmp_path: Path, data: str
) -> None:
    registry = Registry(distributions=False, environment=False)
    path = tmp_path / "generated.json"
    path.write_text(data, encoding="utf-8")
    lenient = Registry(distributions=False, environment=False)
    lenient.discover(path)
    infos = lenient.connectors()  # statuses after the checks made without importing
    all_ok = not lenient.problems() and all(info.status is Status.OK for info in infos)

    try:
        strict_infos = registry.discover(path, strict=True)
    except IntegrationsError:
        event("strict failed")
        assert not all_ok
        assert (registry.connectors(), registry.problems()) == ((), ())
    else:
        event("strict succeeded")
        assert all_ok
        assert strict_infos == infos
