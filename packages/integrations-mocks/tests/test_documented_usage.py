"""The two usages the module documents run exactly as written, with nothing added.

The first discovers the installed connectors and loads the mock by name; the second runs the
mock's whole lifecycle with no config and no context. Without a context the caller is
anonymous, so the default policies decide: they deny, and the report says so instead of
raising.
"""

from __future__ import annotations

import uuid

from integrations.base import (
    AuthContext,
    AuthToken,
    BaseConnector,
    Capability,
    Connection,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    Governance,
    PolicySet,
    PushPayload,
    Record,
    RevokeResult,
    Secret,
    registry,
)
from integrations.base.lifecycle import run_lifecycle
from integrations.mocks import MockConfig, MockConnector, get_store


def test_discover_then_get_mock_returns_a_class() -> None:
    registry.discover()
    connector_class = registry.get("mock")

    assert isinstance(connector_class, type)
    assert connector_class is MockConnector


def test_run_lifecycle_of_a_mock_runs_without_error() -> None:
    report = run_lifecycle(MockConnector())

    # The anonymous caller is denied at auth by the default policies; revoke has nothing to do.
    assert [(step.step, step.outcome, step.error_type) for step in report.steps] == [
        ("auth", "denied", "PolicyError")
    ]
    assert report.ok is False
    assert report.error is not None
    assert report.error.startswith("PolicyError: auth on 'MockConnector' denied: TENANT_REQUIRED")


def test_run_lifecycle_with_a_context_uses_the_config_models_defaults() -> None:
    tenant = f"documented-{uuid.uuid4().hex}"  # the default store is shared: a tenant of its own
    report = run_lifecycle(
        MockConnector(),
        context=AuthContext(tenant=tenant, actor="alice"),
        plan=[PushPayload(records=(Record(id="doc-1", data={"title": "hello"}),)), FetchQuery()],
    )

    assert report.ok, report.error
    assert [step.step for step in report.steps] == ["auth", "connect", "push", "fetch", "revoke"]
    fetched = report.steps[3].result
    assert isinstance(fetched, FetchResult)
    assert [record.id for record in fetched.records] == ["doc-1"]
    assert get_store(MockConfig().store).tenants() >= {tenant}


class _RequiredConfig(ConnectorConfig):
    endpoint: str


class _NeedsConfig(BaseConnector[_RequiredConfig]):
    """A connector whose config model has a required field."""

    capabilities = frozenset({Capability.FETCH})
    config_model = _RequiredConfig

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("token"))

    def connect(self, config: _RequiredConfig) -> Connection:
        return Connection(connection_id=config.endpoint)

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)

    def fetch(self, query: FetchQuery) -> FetchResult:
        return FetchResult()


def test_run_lifecycle_without_a_config_reports_the_config_error() -> None:
    report = run_lifecycle(_NeedsConfig(), context=AuthContext(tenant="acme", actor="alice"))

    assert report.steps == ()  # the config is validated before auth: nothing ran
    assert report.error is not None
    assert report.error.startswith("ConfigError: ")
    assert "endpoint" in report.error


def test_run_lifecycle_with_neither_checks_the_policies_before_the_config() -> None:
    # A session's rule: a denied session never looks at its config.
    denied = run_lifecycle(_NeedsConfig())
    # Policies that let the anonymous caller through leave the config to decide.
    admitted = run_lifecycle(_NeedsConfig(), governance=Governance(policies=PolicySet([])))

    assert denied.error is not None
    assert denied.error.startswith("PolicyError: ")
    assert [(step.step, step.outcome) for step in denied.steps] == [("auth", "denied")]
    assert admitted.error is not None
    assert admitted.error.startswith("ConfigError: ")
    assert admitted.steps == ()
