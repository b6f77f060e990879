"""The certification kit: its checks on good and broken connectors, the guard, the time limits.

The kit certifies an async connector here (the mock behind coroutines), so both flavours of
the contract go through it; integrations-mocks certifies the sync mock itself. Broken
connectors are certified in an inner pytest run (`pytester`), and the test reads which checks
failed and with which message, the way a connector author would read them.
"""

from __future__ import annotations

import textwrap
import uuid
from typing import Any, ClassVar

import pytest

from integrations.base import (
    AsyncBaseConnector,
    AuthContext,
    AuthToken,
    Capability,
    Connection,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    PushPayload,
    PushResult,
    RevokeResult,
    Secret,
    SyncResult,
    SyncState,
)
from integrations.base.testing import (
    KIT_VERSION,
    ConnectorCertification,
    certification_class,
    override_problems,
    standard_checks,
)
from integrations.base.testing._harness import (
    duplicates,
    invalid_config_candidates,
    json_subset,
    looks_secret,
    schema_declares_secret,
    secret_fields,
)
from integrations.base.testing._runner import CheckResult, _Collector
from integrations.mocks import MockConfig, MockConnector

pytest_plugins = ["pytester"]

ACTION_CHECKS = {
    "actions_have_schemas_and_samples",
    "invalid_action_input_is_refused_before_any_io",
    "actions_answer_valid_input",
    "action_quorum_is_enforced",
    "action_retries_follow_the_idempotency_flag",
}
"""The checks of named actions: not applicable to a connector that declares none."""


class AsyncMockConnector(AsyncBaseConnector[MockConfig]):
    """The mock connector behind coroutines: the async flavour of the contract."""

    capabilities: ClassVar[frozenset[Capability]] = MockConnector.capabilities
    config_model: ClassVar[type[ConnectorConfig]] = MockConfig

    def __init__(self) -> None:
        self._inner = MockConnector()

    async def auth(self, context: AuthContext) -> AuthToken:
        return self._inner.auth(context)

    async def connect(self, config: MockConfig) -> Connection:
        return self._inner.connect(config)

    async def fetch(self, query: FetchQuery) -> FetchResult:
        return self._inner.fetch(query)

    async def push(self, payload: PushPayload) -> PushResult:
        return self._inner.push(payload)

    async def sync(self, state: SyncState) -> SyncResult:
        return self._inner.sync(state)

    async def revoke(self, token: AuthToken) -> RevokeResult:
        return self._inner.revoke(token)


class TestAsyncConnectorCertification(ConnectorCertification):
    connector_class = AsyncMockConnector
    no_manifest_reason = "a wrapper written for this test; no distribution declares it"
    supports_text_search = True
    supports_tombstones = True
    push_is_idempotent = True

    def config(self) -> MockConfig:
        return MockConfig(store=f"async-certification-{uuid.uuid4().hex}")


# -- the guard -------------------------------------------------------------------------------


def test_the_guard_names_overrides_and_deletions_without_a_strict_xfail() -> None:
    class Careless(ConnectorCertification):
        def test_sync_is_incremental(self) -> None:
            """Replaced without a mark."""

        @pytest.mark.xfail(reason="loose")
        def test_fetch_respects_limit_and_cursor(self) -> None:
            """Marked, but not strict: a pass would go unnoticed."""

        test_push_is_idempotent = None  # type: ignore[assignment]  # the deletion under test

    class Careful(ConnectorCertification):
        @pytest.mark.xfail(reason="the backend pages by time, not by count", strict=True)
        def test_fetch_respects_limit_and_cursor(self) -> None:
            raise AssertionError("pages hold a minute of records")

    class Inheriting(Careless):
        """Overrides found anywhere in the MRO are named after the class that made them."""

    assert override_problems(Careful) == []
    assert override_problems(Inheriting) == [
        "Careless overrides test_fetch_respects_limit_and_cursor without "
        "@pytest.mark.xfail(reason=..., strict=True)",
        "Careless deletes test_push_is_idempotent",
        "Careless overrides test_sync_is_incremental without "
        "@pytest.mark.xfail(reason=..., strict=True)",
    ]


def test_the_guard_itself_cannot_be_overridden() -> None:
    with pytest.raises(TypeError, match="overrides test_standard_checks_are_kept"):

        class Sneaky(ConnectorCertification):
            def test_standard_checks_are_kept(self) -> None:
                """Would silence the guard."""


def test_every_subclass_runs_its_checks_under_a_time_limit() -> None:
    class Slow(ConnectorCertification):
        timeout_seconds = 300.0

    marks = [mark.mark for mark in Slow.pytestmark if mark.name == "timeout"]
    assert [mark.args for mark in marks] == [(300.0,)]
    assert ConnectorCertification.pytestmark == []
    assert standard_checks()[0] == "test_standard_checks_are_kept"
    assert KIT_VERSION == "1.3.0"


# -- what the checks stand on ------------------------------------------------------------------


class ProbeConfig(ConnectorConfig):
    """A config model with a secret, a credential typed str and an innocent look-alike."""

    endpoint: str = "memory://"
    api_key: Secret | None = None
    password: str = ""
    token_ttl_seconds: float = 1.0
    tags: tuple[str, ...] = ()


def test_config_probes() -> None:
    assert secret_fields(ProbeConfig) == ["api_key"]
    assert looks_secret(ProbeConfig, frozenset()) == ["password"]
    assert looks_secret(ProbeConfig, frozenset({"password"})) == []
    properties = ProbeConfig.json_schema()["properties"]
    assert schema_declares_secret(properties["api_key"])
    assert not schema_declares_secret(properties["password"])
    assert invalid_config_candidates(ProbeConfig, {}) == [
        {"certification_unknown_field": True},
        {"endpoint": [["certification", "wrong", "type"]]},
    ]


def test_record_comparisons() -> None:
    assert json_subset({"a": 1, "b": [1]}, {"a": 1, "b": [1], "extra": True}) == []
    assert json_subset({"a": 1, "b": True}, {"a": 1.5, "b": 1}) == ["a", "b"]
    assert duplicates(["a", "b", "a", "c", "b", "a"]) == ["a", "b"]


def test_certification_class_for_an_installed_connector() -> None:
    cls = certification_class("mock", config={"store": "x"}, tenant="t1", flags={})

    assert cls.registry_name == "mock"
    assert cls.unsupported == frozenset()
    assert cls.push_is_idempotent is True  # what the mock's manifest says
    assert cls().config() == {"store": "x"}
    assert cls().context() == AuthContext(tenant="t1", actor="certification")
    with pytest.raises(ValueError, match="unknown certification flag"):
        certification_class("mock", flags={"supports_teleport": True})


# -- broken connectors in an inner pytest run --------------------------------------------------

SLOPPY = '''
import os
import threading

import pytest

from integrations.base import (
    AuthToken, BaseConnector, Capability, Connection, ConnectorConfig, FetchResult,
    PushResult, Record, RevokeResult, Secret, SyncResult, SyncState,
)
from integrations.base.testing import ConnectorCertification

LEAKED = []
STOP = threading.Event()


class SloppyConfig(ConnectorConfig):
    endpoint: str = "memory://"
    password: str = "hunter2"


class SloppyConnector(BaseConnector[SloppyConfig]):
    """Fits the contract by its signatures and breaks it in every behaviour."""

    capabilities = frozenset({Capability.FETCH, Capability.PUSH, Capability.SYNC})
    config_model = SloppyConfig

    def auth(self, context):
        return AuthToken(value=Secret("token"))

    def connect(self, config):
        self.store = {}
        LEAKED.append(os.open(os.devnull, os.O_RDONLY))
        threading.Thread(target=STOP.wait, daemon=True).start()
        return Connection(connection_id="sloppy")

    def fetch(self, query):
        if query.cursor is not None:
            raise ValueError(f"unknown cursor {query.cursor}")
        return FetchResult(records=tuple(self.store.values()))

    def push(self, payload):
        for record in payload.records:
            self.store[record.id] = Record(id=record.id)
        return PushResult(accepted=tuple(record.id for record in payload.records))

    def sync(self, state):
        return SyncResult(state=SyncState(cursor="end"), changes=tuple(self.store.values()))

    def revoke(self, token):
        return RevokeResult(revoked=True)


@pytest.fixture(autouse=True, scope="module")
def _release_what_the_connector_leaked():
    yield
    STOP.set()
    for descriptor in LEAKED:
        os.close(descriptor)


class TestSloppyCertification(ConnectorCertification):
    connector_class = SloppyConnector
    no_manifest_reason = "a connector written for this test"

    def test_sync_state_is_json_serialisable(self):
        pass

    test_push_is_idempotent = None

    @pytest.mark.xfail(reason="the sloppy connector keeps deleted records", strict=True)
    def test_tombstones_delete_records(self):
        raise AssertionError("deleted records stay")
'''


def run_kit(pytester: pytest.Pytester, source: str, *args: str) -> dict[str, CheckResult]:
    """Run `source` as a test module in an inner pytest; the result of each check by name."""
    pytester.makepyfile(test_connector=textwrap.dedent(source))
    collector = _Collector()
    pytester.inline_run("-p", "no:cacheprovider", *args, plugins=[collector])
    assert collector.problems == []
    return {result.check: result for result in collector.results()}


def outcomes(results: dict[str, CheckResult], outcome: str) -> set[str]:
    return {name for name, result in results.items() if result.outcome == outcome}


def test_a_sloppy_connector_fails_the_expected_checks_with_readable_reasons(
    pytester: pytest.Pytester,
) -> None:
    results = run_kit(pytester, SLOPPY)

    assert outcomes(results, "failed") == {
        "standard_checks_are_kept",
        "secret_fields_are_declared_and_masked",
        "fetch_respects_limit_and_cursor",
        "fetch_paginates_to_completion_without_duplicates",
        "push_then_fetch_round_trips_records",
        "sync_is_incremental",
        "errors_map_into_the_library_tree",
        "sessions_leak_no_descriptors_or_threads",
    }
    assert outcomes(results, "expected-failure") == {"tombstones_delete_records"}
    assert outcomes(results, "not-applicable") == {
        "manifest_entry_matches_the_class",
        "unsupported_operations_raise_not_supported",
        "text_search_finds_matching_records",
        *ACTION_CHECKS,
    }
    assert "push_is_idempotent" not in results  # deleted: only the guard can tell
    reasons = {name: str(results[name].reason) for name in outcomes(results, "failed")}
    assert reasons["standard_checks_are_kept"] == (
        "standard checks changed without an expected-failure mark:\n"
        "- TestSloppyCertification deletes test_push_is_idempotent\n"
        "- TestSloppyCertification overrides test_sync_state_is_json_serialisable without "
        "@pytest.mark.xfail(reason=..., strict=True)"
    )
    assert reasons["secret_fields_are_declared_and_masked"] == (
        "SloppyConfig field(s) password look like credentials but are typed str: "
        "type them Secret (or list them in plain_fields)"
    )
    assert reasons["fetch_respects_limit_and_cursor"] == (
        "fetch with limit=2 returned 5 records (5 were written)"
    )
    assert reasons["fetch_paginates_to_completion_without_duplicates"] == (
        "fetch returned 7 records on page 1 for limit=2: a page must hold at most `limit` records"
    )
    assert reasons["push_then_fetch_round_trips_records"].endswith(
        "came back with different data in ['title', 'label', 'batch', 'n']"
    )
    assert reasons["sync_is_incremental"].startswith("a sync from the saved state returned [")
    assert reasons["errors_map_into_the_library_tree"] == (
        "fetch with a damaged cursor raised builtins.ValueError: unknown cursor "
        "certification-damaged-cursor; connectors must map backend errors into the library's "
        "tree (InvalidRequest)"
    )
    leak = reasons["sessions_leak_no_descriptors_or_threads"]
    assert leak.startswith("after 20 sessions the process holds more: file descriptors ")
    assert "; threads " in leak
    assert leak.endswith("something opened at auth or connect is not released at revoke")


HALF = '''
from integrations.base import (
    AuthToken, BaseConnector, Capability, Connection, ConnectorConfig, FetchResult,
    PushResult, RevokeResult, Secret,
)
from integrations.base.testing import ConnectorCertification


class HalfConnector(BaseConnector[ConnectorConfig]):
    """Declares fetch, implements push as well, and nothing else."""

    capabilities = frozenset({Capability.FETCH})

    def auth(self, context):
        return AuthToken(value=Secret("token"))

    def connect(self, config):
        return Connection(connection_id="half")

    def fetch(self, query):
        return FetchResult()

    def push(self, payload):
        return PushResult()

    def revoke(self, token):
        return RevokeResult(revoked=True)


class TestHalfCertification(ConnectorCertification):
    connector_class = HalfConnector
    unsupported = frozenset({Capability.PUSH})
'''


def test_undeclared_operations_and_missing_declarations_are_named(
    pytester: pytest.Pytester,
) -> None:
    results = run_kit(pytester, HALF)

    def reason(name: str) -> str | None:
        assert results[name].outcome == "failed"
        return results[name].reason

    assert reason("class_fits_the_contract") == (
        "HalfConnector does not fit the contract: implements push() but does not declare "
        "Capability.PUSH; the class declares [fetch] but the subclass expects [fetch, sync] "
        "(every operation not in `unsupported`)"
    )
    assert reason("manifest_entry_matches_the_class") == (
        "set registry_name to the connector's name in its distribution's manifest, "
        "or no_manifest_reason to say why it has none"
    )
    assert reason("unsupported_operations_raise_not_supported") == (
        "push() on a fresh connector returned instead of raising NotSupported"
    )
    assert reason("sync_is_incremental") == (
        "this check needs sync, which the connector does not offer and the subclass does "
        "not list in `unsupported`"
    )
    assert reason("fetch_respects_limit_and_cursor") is not None
    assert "override write_records()" in str(reason("fetch_respects_limit_and_cursor"))
    assert reason("errors_map_into_the_library_tree") == (
        "fetch with a damaged cursor returned normally; expected InvalidRequest"
    )
    assert results["lifecycle_runs_and_revokes"].outcome == "passed"


def test_a_manifest_that_disagrees_with_the_class_is_reported(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"fetchonly_{uuid.uuid4().hex[:8]}"
    pytester.makepyfile(
        **{
            module: """
            from integrations.base import (
                AuthToken, BaseConnector, Capability, Connection, ConnectorConfig,
                FetchResult, RevokeResult, Secret,
            )

            class FetchOnly(BaseConnector[ConnectorConfig]):
                capabilities = frozenset({Capability.FETCH})

                def auth(self, context):
                    return AuthToken(value=Secret("token"))

                def connect(self, config):
                    return Connection(connection_id="fetch-only")

                def fetch(self, query):
                    return FetchResult()

                def revoke(self, token):
                    return RevokeResult(revoked=True)
            """
        }
    )
    entry = {"name": "cert.fetchonly", "module": module, "class": "FetchOnly"}
    pytester.makefile(
        ".json", app=f'{{"connectors": [{_json({**entry, "capabilities": ["fetch", "push"]})}]}}'
    )
    pytester.syspathinsert()
    monkeypatch.setenv("INTEGRATIONS_ALLOWED_MODULES", module)
    source = f"""
    from {module} import FetchOnly
    from integrations.base import Capability
    from integrations.base.testing import ConnectorCertification


    class TestFetchOnlyCertification(ConnectorCertification):
        connector_class = FetchOnly
        registry_name = "cert.fetchonly"
        manifests = ("app.json",)
        unsupported = frozenset({{Capability.PUSH, Capability.SYNC}})
    """

    results = run_kit(pytester, source, "-k", "manifest or contract")

    assert results["class_fits_the_contract"].outcome == "passed"
    assert results["manifest_entry_matches_the_class"].outcome == "failed"
    assert results["manifest_entry_matches_the_class"].reason == (
        "manifest entry 'cert.fetchonly': connector 'cert.fetchonly' is broken: FetchOnly does "
        "not fit the contract: manifest declares capabilities [fetch, push] but the class "
        "declares [fetch]"
    )


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


SLOW = """
import time

from integrations.base.testing import ConnectorCertification
from integrations.mocks import MockConnector


class Sluggish(MockConnector):
    def connect(self, config):
        time.sleep(30)
        return super().connect(config)


class TestSluggishCertification(ConnectorCertification):
    connector_class = Sluggish
    no_manifest_reason = "a connector written for this test"
    timeout_seconds = 0.5
"""


def test_a_check_that_hangs_fails_at_its_time_limit(pytester: pytest.Pytester) -> None:
    results = run_kit(pytester, SLOW, "-k", "lifecycle_runs")

    assert results["lifecycle_runs_and_revokes"].outcome == "failed"
    assert "Timeout" in str(results["lifecycle_runs_and_revokes"].reason)


def test_checks_refuse_to_run_without_the_timeout_plugin(pytester: pytest.Pytester) -> None:
    source = """
    from integrations.base.testing import ConnectorCertification
    from integrations.mocks import MockConnector


    class TestUntimedCertification(ConnectorCertification):
        connector_class = MockConnector
        no_manifest_reason = "a connector written for this test"
    """

    results = run_kit(pytester, source, "-p", "no:timeout", "-W", "ignore", "-k", "contract")

    assert results["class_fits_the_contract"].outcome == "failed"
    assert results["class_fits_the_contract"].reason == (
        "error in setup: the certification kit runs every check under pytest-timeout; "
        "install it with: pip install 'integrations-base[testing]' "
        "(and do not disable it with -p no:timeout)"
    )
