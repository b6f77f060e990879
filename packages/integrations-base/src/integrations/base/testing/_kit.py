"""`ConnectorCertification`: the standard checks every connector's test module inherits.

The model is LangChain's standard tests: a connector's test module subclasses the kit in a
few lines (the connector class or registry name, a config, and flags for optional
behaviour) and inherits every check. Checks run through governed sessions opened by a
`Registry`, the way platform code runs the connector, and fail with messages that say what
the connector did and what the contract expects.

A check that cannot apply is never skipped silently: it is ruled out by a capability the
subclass lists in `unsupported` or by a flag, and the skip reason (prefixed ``not
applicable:``) says which. The guard check fails when a subclass overrides or deletes a
standard check without marking it as an expected failure with a reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any, ClassVar, NoReturn, cast

import pytest

from integrations.base._actions import action_schema
from integrations.base._audit import AuditEvent, ConnectorMeta, FanOutAuditSink, MemoryAuditSink
from integrations.base._connector import (
    AsyncBaseConnector,
    BaseConnector,
    Capability,
    _inherits_default,
    contract_problems,
    is_async_connector,
)
from integrations.base._exceptions import (
    ConfigError,
    IntegrationsError,
    InvalidRequest,
    NotSupported,
    PolicyError,
    TransientError,
)
from integrations.base._governance import Governance
from integrations.base._manifest import ActionSpec, ConnectorEntry
from integrations.base._models import (
    ActionRequest,
    ActionResult,
    AuthContext,
    ConnectorConfig,
    FetchQuery,
    PushPayload,
    Record,
    SyncState,
)
from integrations.base._policy import PolicySet, QuorumRequired, TenantAndActorRequired
from integrations.base._registry import ConnectorClass, Registry, Status
from integrations.base._resilience import RetryPolicy
from integrations.base._session import AsyncSession, Session, SessionState

from ._harness import (
    GovernedSession,
    blocking_session,
    call_directly,
    descriptor_directory,
    duplicates,
    invalid_config_candidates,
    json_subset,
    looks_secret,
    operation_argument,
    resources,
    schema_declares_secret,
    secret_fields,
    settled_resources,
    stream_all,
)
from ._spec import KIT_VERSION, NOT_APPLICABLE

__all__ = [
    "GUARD",
    "KIT_VERSION",
    "ConnectorCertification",
    "override_problems",
    "standard_checks",
]

GUARD = "test_standard_checks_are_kept"
"""The check that keeps the others honest; a subclass cannot override it."""

MISSING_TIMEOUT = (
    "the certification kit runs every check under pytest-timeout; "
    "install it with: pip install 'integrations-base[testing]'"
)
DAMAGED_CURSOR = "certification-damaged-cursor"
MAX_PAGES = 10_000
"""Pages a fetch or sync may take before the kit calls the pagination endless."""

SECRET_CANARY = "certification-canary-5e3c1d"


def _fail(message: str) -> NoReturn:
    """Fail the running check with `message` alone: the message is the report.

    Raised from None: when a check fails while handling the connector's error, the message
    already names that error, and pytest would otherwise print both.
    """
    raise pytest.fail.Exception(message, pytrace=False) from None


def _not_applicable(reason: str) -> NoReturn:
    """Rule the running check out, naming the declaration that rules it out."""
    pytest.skip(NOT_APPLICABLE + reason)


def _names(capabilities: Iterable[Capability]) -> str:
    return ", ".join(sorted(capability.value for capability in capabilities)) or "nothing"


def _ids(records: Iterable[Record]) -> list[str]:
    return [record.id for record in records]


class ConnectorCertification:
    """The standard certification checks; a connector's test module subclasses this class.

    A subclass named ``Test...`` sets `connector_class` and/or `registry_name`, overrides
    `config()` when the config model's defaults do not make a working config, and sets the
    flags for optional behaviour. Every other hook has a default. Each check gets a fresh
    instance (pytest's rule), so per-check state such as the context and the audit trail is
    cached on the instance.
    """

    pytestmark: ClassVar[list[Any]] = []

    # -- what a subclass declares ----------------------------------------------------------

    connector_class: ClassVar[ConnectorClass | None] = None
    """The connector class under test (optional when `registry_name` is set)."""

    registry_name: ClassVar[str | None] = None
    """The connector's name in its distribution's manifest; sessions are opened by this name."""

    no_manifest_reason: ClassVar[str | None] = None
    """Why the connector has no manifest entry, when `registry_name` is None."""

    manifests: ClassVar[tuple[str, ...]] = ()
    """Application manifest files the kit's registry reads as well."""

    unsupported: ClassVar[frozenset[Capability]] = frozenset()
    """Operations the connector must not offer: they must raise `NotSupported`."""

    supports_text_search: ClassVar[bool] = False
    """`FetchQuery.text` selects records whose data contains the text."""

    supports_tombstones: ClassVar[bool] = False
    """Pushing a record with ``deleted=True`` deletes it (and sync reports the deletion)."""

    sync_is_incremental: ClassVar[bool] = True
    """A sync from a returned state yields only the changes made since."""

    push_is_idempotent: ClassVar[bool] = False
    """Pushing the same payload with the same idempotency key twice has one effect."""

    plain_fields: ClassVar[frozenset[str]] = frozenset()
    """Config fields whose names look like credentials but are not (a public key id...)."""

    bad_cursor_error: ClassVar[type[IntegrationsError]] = InvalidRequest
    """The error a damaged fetch cursor or sync state raises."""

    timeout_seconds: ClassVar[float] = 60.0
    """Time limit of each check (a pytest-timeout mark on the subclass)."""

    leak_sessions: ClassVar[int] = 20
    """Sessions opened and closed by the resource-leak check."""

    descriptor_tolerance: ClassVar[int] = 2
    """File descriptors the leak check lets the process gain over `leak_sessions` sessions."""

    thread_tolerance: ClassVar[int] = 1
    """Threads the leak check lets the process gain over `leak_sessions` sessions."""

    action_samples: ClassVar[Mapping[str, tuple[dict[str, Any], dict[str, Any]]]] = {}
    """Per named action, a valid input and an input its schema refuses: ``{"model_invoke":
    ({"model": "m", "messages": [...]}, {"messages": "not a list"})}``. Every action the
    connector declares needs one."""

    quorum_policies: ClassVar[Mapping[str, int]] = {}
    """The quorum policies the default `governance()` defines, for actions naming one."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Protect the guard and put every check of the subclass under a time limit."""
        super().__init_subclass__(**kwargs)
        if GUARD in vars(cls):
            raise TypeError(
                f"{cls.__qualname__} overrides {GUARD}, the check that keeps the standard "
                "checks honest; it cannot be overridden"
            )
        if importlib.util.find_spec("pytest_timeout") is None:
            raise ImportError(MISSING_TIMEOUT)
        own = vars(cls).get("pytestmark", [])
        marks = list(own) if isinstance(own, list) else [own]
        cls.pytestmark = [*marks, pytest.mark.timeout(cls.timeout_seconds)]

    # -- hooks a subclass may override -----------------------------------------------------

    def config(self) -> ConnectorConfig | Mapping[str, Any]:
        """A valid config for the connector; called once per check. Default: the defaults."""
        return {}

    @classmethod
    def configuration_problem(cls) -> str | None:
        """Why `config()` cannot build a working config here, or None when it can.

        A connector that needs a server says what would name one (an environment variable,
        ``--config``); `integrations certify` then reports the connector as not configured
        instead of running checks that could only fail. Not asked when a config is given.
        """
        return None

    def invalid_configs(self) -> list[Mapping[str, Any]]:
        """Configs the model must reject with `ConfigError`; by default derived from `config()`.

        The derived ones add an unknown key and give the first field that refuses it a value
        of the wrong type.
        """
        return list(invalid_config_candidates(self.subject.config_model, self.config_mapping))

    def probe_query(self) -> FetchQuery:
        """The fetch the resource-leak check runs in each of its sessions.

        The default asks for one record with no text or filter; a connector whose backend
        only answers text queries returns one it can answer.
        """
        return FetchQuery(limit=1)

    def context(self) -> AuthContext:
        """Who the checks run as; by default a fresh tenant per check, so checks never meet."""
        return AuthContext(tenant=f"certification-{uuid.uuid4().hex[:12]}", actor="certification")

    def governance(self) -> Governance:
        """The governance sessions run under; the kit adds its own audit trail to it.

        The default policies are the library's defaults, with `quorum_policies` defined.
        """
        policies = PolicySet([TenantAndActorRequired(), QuorumRequired(self.quorum_policies)])
        return Governance(policies=policies, audit=MemoryAuditSink())

    def registry(self) -> Registry:
        """The registry `registry_name` is looked up in: installed distributions, the
        environment's manifests and `manifests`."""
        registry = Registry()
        for path in self.manifests:
            registry.load_manifest(path)
        return registry

    def sample_records(self, count: int) -> list[Record]:
        """`count` new records the backend accepts; each call returns records never seen before.

        Each record's data carries a `label` unique to it (what `search_text` searches for)
        and the `batch` shared by the call's records.
        """
        batch = uuid.uuid4().hex[:10]
        return [
            Record(
                id=f"cert-{batch}-{index:03d}",
                data={
                    "title": f"Certification record {index}",
                    "label": f"cert{batch}x{index:03d}",
                    "batch": batch,
                    "n": index,
                },
            )
            for index in range(count)
        ]

    def updated_record(self, record: Record) -> Record:
        """`record` with a change the backend stores as an update."""
        title = str(record.data.get("title", record.id))
        return record.model_copy(update={"data": {**record.data, "title": f"{title} (updated)"}})

    def sample_queries(self, records: Sequence[Record]) -> list[FetchQuery]:
        """Queries that must each return every one of `records` (among others, maybe)."""
        return [FetchQuery()]

    def search_text(self, record: Record) -> str:
        """Text that `FetchQuery.text` finds in `record` and in no other sample record."""
        label = record.data.get("label")
        if not isinstance(label, str):
            _fail("sample records carry no `label`: override search_text() as well")
        return label

    def write_records(self, session: GovernedSession, records: Sequence[Record]) -> None:
        """Make the backend hold `records` (tombstones delete); by default one push."""
        if Capability.PUSH not in self.subject.capabilities:
            _fail(
                "the connector cannot push, so the kit cannot put records into the backend: "
                "override write_records(), or mark the checks that need data as expected "
                "failures with a reason"
            )
        result = session.push(PushPayload(records=tuple(records)))
        if result.rejected:
            reasons = "; ".join(f"{item.id}: {item.reason}" for item in result.rejected)
            _fail(
                f"push rejected sample records ({reasons}); override sample_records() to "
                "produce records the backend accepts"
            )

    # -- per-check state -------------------------------------------------------------------

    @cached_property
    def audit_trail(self) -> MemoryAuditSink:
        """Every audit event of the sessions this check opened."""
        return MemoryAuditSink()

    @cached_property
    def auth_context(self) -> AuthContext:
        """The context of this check (`context()`, asked once)."""
        return self.context()

    @cached_property
    def config_mapping(self) -> dict[str, Any]:
        """The config of this check (`config()`, asked once), as a mapping."""
        value = self.config()
        if isinstance(value, ConnectorConfig):
            return value.model_dump()
        return dict(value)

    @cached_property
    def kit_registry(self) -> Registry:
        """The registry sessions are opened from: `registry()`, or a private one."""
        if self.registry_name is None:
            return Registry(distributions=False, environment=False)
        return self.registry()

    @cached_property
    def subject(self) -> ConnectorClass:
        """The connector class under test."""
        if self.connector_class is not None:
            return self.connector_class
        if self.registry_name is None:
            _fail("set connector_class or registry_name on the certification subclass")
        try:
            return self.kit_registry.get(self.registry_name)
        except IntegrationsError as error:
            _fail(f"cannot load connector {self.registry_name!r}: {error}")

    @cached_property
    def _session_name(self) -> str:
        """The registry name sessions open; a class without one is registered privately."""
        if self.registry_name is not None:
            return self.registry_name
        name = f"certification.{self.subject.__name__.lower()}"
        try:
            self.kit_registry.register(name, self.subject, replace=True)
        except IntegrationsError as error:
            _fail(f"the connector cannot be registered: {error}")
        return name

    @cached_property
    def _governance(self) -> Governance:
        chosen = self.governance()
        trail = FanOutAuditSink([chosen.audit, self.audit_trail])
        return dataclasses.replace(chosen, audit=trail)

    # -- tools for checks (also for a subclass's own tests) --------------------------------

    @contextlib.contextmanager
    def open_session(
        self,
        config: ConnectorConfig | Mapping[str, Any] | None = None,
        context: AuthContext | None = None,
    ) -> Iterator[GovernedSession]:
        """A governed session on the connector: auth and connect on entry, revoke on exit.

        `context` replaces the check's context (`auth_context`) for this session.
        """
        chosen = self.config_mapping if config is None else config
        name = self._session_name
        options: dict[str, Any] = {
            "config": chosen,
            "context": self.auth_context if context is None else context,
            "governance": self._governance,
        }
        if is_async_connector(self.subject):
            with blocking_session(self.kit_registry.open_async(name, **options)) as session:
                yield session
        else:
            with self.kit_registry.open(name, **options) as session:
                yield session

    def events_of(self, session: GovernedSession) -> list[AuditEvent]:
        """The audit events of `session`, oldest first."""
        return [e for e in self.audit_trail.events if e.correlation_id == session.correlation_id]

    def fetch_all(
        self, session: GovernedSession, query: FetchQuery, limit: int = 2
    ) -> list[Record]:
        """Every page of `query`, `limit` records at a time, checking each page's size."""
        records: list[Record] = []
        cursor: str | None = None
        seen: set[str] = set()
        for page in range(1, MAX_PAGES + 1):
            result = session.fetch(query.model_copy(update={"limit": limit, "cursor": cursor}))
            if len(result.records) > limit:
                _fail(
                    f"fetch returned {len(result.records)} records on page {page} for "
                    f"limit={limit}: a page must hold at most `limit` records"
                )
            records.extend(result.records)
            if result.next_cursor is None:
                return records
            if result.next_cursor in seen:
                _fail(f"fetch returned the same next_cursor twice (page {page}): it never ends")
            seen.add(result.next_cursor)
            cursor = result.next_cursor
        _fail(f"fetch still returned a next_cursor after {MAX_PAGES} pages")

    def sync_all(
        self, session: GovernedSession, state: SyncState
    ) -> tuple[list[Record], SyncState]:
        """Every change after `state` (following `has_more`) and the state to resume from."""
        changes: list[Record] = []
        for _ in range(MAX_PAGES):
            result = session.sync(state)
            changes.extend(result.changes)
            state = result.state
            if not result.has_more:
                return changes, state
        _fail(f"sync still said has_more=True after {MAX_PAGES} calls")

    # -- rules about applicability ---------------------------------------------------------

    def _needs(self, *capabilities: Capability) -> None:
        """Rule the check out when it needs an operation the subclass declared unsupported."""
        missing = [c for c in capabilities if c not in self.subject.capabilities]
        undeclared = [c for c in missing if c not in self.unsupported]
        if undeclared:
            _fail(
                f"this check needs {_names(undeclared)}, which the connector does not offer "
                "and the subclass does not list in `unsupported`"
            )
        if missing:
            _not_applicable(f"needs {_names(missing)}, listed in `unsupported`")

    def _needs_flag(self, flag: str) -> None:
        if not getattr(self, flag):
            _not_applicable(f"{flag} is False")

    @pytest.fixture(autouse=True)
    def _certification_requirements(self, request: pytest.FixtureRequest) -> None:
        """Every check has a time limit: refuse to run when the timeout plugin is off."""
        if not request.config.pluginmanager.has_plugin("timeout"):
            _fail(MISSING_TIMEOUT + " (and do not disable it with -p no:timeout)")

    # -- the guard -------------------------------------------------------------------------

    def test_standard_checks_are_kept(self) -> None:
        """A standard check may be replaced only by a strict expected failure with a reason."""
        problems = override_problems(type(self))
        if problems:
            _fail(
                "standard checks changed without an expected-failure mark:\n- "
                + "\n- ".join(problems)
            )

    # -- the class, its manifest entry and its config model --------------------------------

    def test_class_fits_the_contract(self) -> None:
        """Methods and signatures fit; declared capabilities are exactly those implemented."""
        cls = self.subject
        problems = contract_problems(cls)
        base_classes = (BaseConnector, AsyncBaseConnector)
        if isinstance(cls, type) and issubclass(cls, base_classes):
            problems.extend(
                f"implements {capability.value}() but does not declare Capability.{capability.name}"
                for capability in Capability
                if capability not in cls.capabilities
                and not _inherits_default(cls, capability.value)
            )
        expected = frozenset(Capability) - self.unsupported
        if frozenset(cls.capabilities) != expected:
            problems.append(
                f"the class declares [{_names(cls.capabilities)}] but the subclass expects "
                f"[{_names(expected)}] (every operation not in `unsupported`)"
            )
        if problems:
            _fail(f"{cls.__qualname__} does not fit the contract: " + "; ".join(problems))

    def test_manifest_entry_matches_the_class(self) -> None:
        """The manifest entry is valid, loads this class and declares its capabilities."""
        if self.registry_name is None:
            if self.no_manifest_reason:
                _not_applicable(f"no manifest entry: {self.no_manifest_reason}")
            _fail(
                "set registry_name to the connector's name in its distribution's manifest, "
                "or no_manifest_reason to say why it has none"
            )
        name = self.registry_name
        try:
            loaded = self.kit_registry.get(name)
        except IntegrationsError as error:
            _fail(f"manifest entry {name!r}: {error}")
        info = self.kit_registry.info(name)
        if info.status is not Status.OK or info.entry is None:
            _fail(f"manifest entry {name!r} is not usable: {info.problem or 'no manifest entry'}")
        if self.connector_class is not None and loaded is not self.connector_class:
            _fail(
                f"manifest entry {name!r} at {info.location} loads "
                f"{loaded.__module__}.{loaded.__qualname__}, not the class under test "
                f"{self.connector_class.__module__}.{self.connector_class.__qualname__}"
            )
        self._check_push_flag(name, info.entry.capability(Capability.PUSH))

    def _check_push_flag(self, name: str, push: object) -> None:
        idempotent = getattr(push, "idempotent", None)
        if idempotent is not None and idempotent != self.push_is_idempotent:
            _fail(
                f"manifest entry {name!r} says push idempotent={idempotent} but the subclass "
                f"says push_is_idempotent={self.push_is_idempotent}: they must agree, since "
                "sessions retry a push only when the manifest calls it idempotent"
            )

    def test_config_model_has_a_json_schema(self) -> None:
        """The config model publishes a JSON Schema, and `config()` validates against it."""
        model = self.subject.config_model
        try:
            schema = model.json_schema()
            json.dumps(schema)
        except Exception as error:  # any failure to build or encode the schema is the finding
            _fail(f"{model.__name__}.json_schema() failed: {type(error).__name__}: {error}")
        if schema.get("type") != "object":
            _fail(f"the JSON Schema of {model.__name__} is not an object schema: {schema!r}")
        try:
            model.from_mapping(self.config_mapping)
        except ConfigError as error:
            _fail(f"config() is not a valid {model.__name__}: {error}")

    def test_invalid_config_raises_config_error(self) -> None:
        """Bad configs raise `ConfigError` naming the field, before the connector is called."""
        model = self.subject.config_model
        candidates = self.invalid_configs()
        if not candidates:
            _fail(f"no invalid {model.__name__} could be derived: override invalid_configs()")
        for index, candidate in enumerate(candidates):
            self._rejects(model, index, candidate)

    def _rejects(
        self, model: type[ConnectorConfig], index: int, candidate: Mapping[str, Any]
    ) -> None:
        try:
            model.from_mapping(candidate)
        except ConfigError as error:
            if not error.problems:
                _fail(f"invalid config #{index} raised ConfigError without naming a field")
        except Exception as error:  # the finding is the wrong type of error
            _fail(
                f"invalid config #{index} raised {type(error).__name__}, not ConfigError: {error}"
            )
        else:
            _fail(f"invalid config #{index} was accepted by {model.__name__}: {sorted(candidate)}")
        try:
            with self.open_session(candidate):
                pass
        except ConfigError:
            pass
        except Exception as error:  # the finding is the wrong type of error
            _fail(f"opening a session with invalid config #{index} raised {type(error).__name__}")
        else:
            _fail(f"a session opened with invalid config #{index}")
        started = [e.operation for e in self.audit_trail.events if e.phase == "started"]
        if started:
            _fail(f"the connector was called ({', '.join(started)}) with an invalid config")

    def test_secret_fields_are_declared_and_masked(self) -> None:
        """`Secret` fields are secrets in the JSON Schema and never show their value."""
        model = self.subject.config_model
        plain = looks_secret(model, self.plain_fields)
        if plain:
            _fail(
                f"{model.__name__} field(s) {', '.join(plain)} look like credentials but are "
                "typed str: type them Secret (or list them in plain_fields)"
            )
        names = secret_fields(model)
        properties = model.json_schema().get("properties", {})
        undeclared = [n for n in names if not schema_declares_secret(properties.get(n))]
        if undeclared:
            _fail(f"the JSON Schema does not mark {', '.join(undeclared)} as secret (x-secret)")
        if names:
            self._masks(model, names)

    def _masks(self, model: type[ConnectorConfig], names: list[str]) -> None:
        planted = {**self.config_mapping, **dict.fromkeys(names, SECRET_CANARY)}
        config = model.from_mapping(planted)
        kept = [n for n in names if getattr(getattr(config, n), "reveal", None) is not None]
        if len(kept) != len(names):
            _fail(f"secret field(s) of {model.__name__} did not keep a Secret value")
        renderings = {
            "repr": repr(config),
            "str": str(config),
            "model_dump_json": config.model_dump_json(),
            "model_dump(mode='json')": json.dumps(config.model_dump(mode="json")),
            "repr(model_dump())": repr(config.model_dump()),
        }
        try:
            model.from_mapping({**planted, "certification_unknown_field": SECRET_CANARY[::-1]})
        except ConfigError as error:
            renderings["ConfigError"] = f"{error} {error.problems}"
        leaked = [where for where, text in renderings.items() if SECRET_CANARY in text]
        if leaked:
            _fail(f"a secret value of {model.__name__} shows in: {', '.join(leaked)}")

    # -- lifecycle -------------------------------------------------------------------------

    def test_lifecycle_runs_and_revokes(self) -> None:
        """auth → connect → (operations) → revoke, audited under one correlation id."""
        with self.open_session() as session:
            inside = session.state
        after = session.state
        if inside is not SessionState.CONNECTED:
            _fail(f"inside the with block the session is {inside}, not connected")
        if after is not SessionState.CLOSED:
            _fail(f"after the with block the session is {after}, not closed")
        finished = [
            (e.operation, e.outcome) for e in self.events_of(session) if e.phase == "finished"
        ]
        steps = [operation for operation, _ in finished]
        if steps[:2] != ["auth", "connect"] or steps[-1:] != ["revoke"]:
            _fail(f"the audited steps are {steps}, not auth, connect, ..., revoke")
        failed = [f"{operation}: {outcome}" for operation, outcome in finished if outcome != "ok"]
        if failed:
            _fail(f"lifecycle steps did not succeed: {', '.join(failed)}")
        context = self.auth_context
        strangers = {
            (e.tenant, e.actor)
            for e in self.events_of(session)
            if (e.tenant, e.actor) != (context.tenant, context.actor)
        }
        if strangers:
            _fail(f"audit events name other callers than the context: {sorted(strangers)}")

    def test_revoke_runs_when_the_block_raises(self) -> None:
        """An exception inside the with block propagates unchanged, after revoke."""

        class Interrupted(Exception):
            """Raised by the check inside the session's with block."""

        session: GovernedSession | None = None
        try:
            with self.open_session() as session:
                raise Interrupted
        except Interrupted:
            pass
        except Exception as error:  # the finding is the replaced exception
            _fail(f"the exception raised in the with block came out as {type(error).__name__}")
        self._revoked(session, "after an exception in the with block")

    def test_revoke_runs_when_an_operation_fails(self) -> None:
        """An operation's error propagates out of the session, after revoke."""
        session: GovernedSession | None = None
        try:
            with self.open_session() as session:
                what = self._failing_operation(session)
        except Exception:  # whatever the error, revoke must have run; its type is checked elsewhere
            pass
        else:
            _fail(f"{what} did not fail, so the kit could not end a session on a failed operation")
        self._revoked(session, "after a failed operation")

    def _failing_operation(self, session: GovernedSession) -> str:
        """Run an operation that must fail: a damaged cursor, or an unsupported operation."""
        offered = self.subject.capabilities
        if Capability.FETCH in offered:
            session.fetch(FetchQuery(cursor=DAMAGED_CURSOR))
            return "fetch with a damaged cursor"
        if Capability.SYNC in offered:
            session.sync(SyncState(cursor=DAMAGED_CURSOR))
            return "sync from a damaged state"
        session.fetch(FetchQuery())
        return "an unsupported fetch"

    def _revoked(self, session: GovernedSession | None, when: str) -> None:
        if session is None:
            _fail(f"the session did not open, so revoke {when} could not be observed")
        revokes = [
            e.outcome
            for e in self.events_of(session)
            if e.operation == "revoke" and e.phase == "finished"
        ]
        if revokes != ["ok"]:
            _fail(f"revoke did not run exactly once and succeed {when}: outcomes {revokes}")
        if session.state is not SessionState.CLOSED:
            _fail(f"the session is {session.state} {when}, not closed")

    def test_unsupported_operations_raise_not_supported(self) -> None:
        """An undeclared operation raises `NotSupported` before reaching the connector."""
        absent = sorted(self.unsupported - self.subject.capabilities)
        if not absent:
            _not_applicable("`unsupported` is empty: the connector offers fetch, push and sync")
        for capability in absent:
            self._refused_directly(capability)
        with self.open_session() as session:
            for capability in absent:
                self._refused_by_session(session, capability)

    def _refused_directly(self, capability: Capability) -> None:
        try:
            call_directly(self.subject(), capability)
        except NotSupported:
            return
        except Exception as error:  # the finding is the wrong type of error
            _fail(
                f"{capability.value}() on a fresh connector raised {type(error).__name__}, "
                "not NotSupported"
            )
        _fail(f"{capability.value}() on a fresh connector returned instead of raising NotSupported")

    def _refused_by_session(self, session: GovernedSession, capability: Capability) -> None:
        operation = getattr(session, capability.value)
        try:
            operation(operation_argument(capability))
        except NotSupported:
            pass
        else:
            _fail(f"session.{capability.value}() did not raise NotSupported")
        reached = [
            e
            for e in self.events_of(session)
            if e.operation == capability.value and e.phase == "started"
        ]
        if reached:
            _fail(f"the unsupported {capability.value} reached the connector")

    # -- fetch and push --------------------------------------------------------------------

    def test_fetch_respects_limit_and_cursor(self) -> None:
        """A page holds at most `limit` records; its cursor resumes after it."""
        self._needs(Capability.FETCH)
        with self.open_session() as session:
            written = self.sample_records(5)
            self.write_records(session, written)
            query = self.sample_queries(written)[0]
            first = session.fetch(query.model_copy(update={"limit": 2}))
            if not 1 <= len(first.records) <= 2:
                _fail(f"fetch with limit=2 returned {len(first.records)} records (5 were written)")
            if first.next_cursor is None:
                _fail("fetch with limit=2 returned no next_cursor although 5 records were written")
            second = session.fetch(
                query.model_copy(update={"limit": 2, "cursor": first.next_cursor})
            )
        repeated = set(_ids(first.records)) & set(_ids(second.records))
        if repeated:
            _fail(f"the page after next_cursor repeats {sorted(repeated)} from the first page")
        if len(second.records) > 2:
            _fail(f"the second page returned {len(second.records)} records for limit=2")

    def test_fetch_paginates_to_completion_without_duplicates(self) -> None:
        """Following next_cursor returns every record once, for every sample query."""
        self._needs(Capability.FETCH)
        with self.open_session() as session:
            written = self.sample_records(7)
            self.write_records(session, written)
            for query in self.sample_queries(written):
                fetched = _ids(self.fetch_all(session, query, limit=2))
                repeated = duplicates(fetched)
                if repeated:
                    _fail(f"paging {query!r} returned {repeated} more than once")
                missing = sorted(set(_ids(written)) - set(fetched))
                if missing:
                    _fail(f"paging {query!r} to the end never returned {missing}")

    def test_text_search_finds_matching_records(self) -> None:
        """`FetchQuery.text` returns the record holding the text and not the others."""
        self._needs_flag("supports_text_search")
        self._needs(Capability.FETCH)
        with self.open_session() as session:
            written = self.sample_records(3)
            self.write_records(session, written)
            target = written[1]
            found = _ids(self.fetch_all(session, FetchQuery(text=self.search_text(target)), 10))
        if target.id not in found:
            _fail(f"searching for {self.search_text(target)!r} did not return {target.id}")
        others = sorted({written[0].id, written[2].id} & set(found))
        if others:
            _fail(f"searching for {self.search_text(target)!r} also returned {others}")

    def test_push_then_fetch_round_trips_records(self) -> None:
        """Every pushed record is accepted and fetched back with its data."""
        self._needs(Capability.PUSH, Capability.FETCH)
        written = self.sample_records(3)
        with self.open_session() as session:
            result = session.push(PushPayload(records=tuple(written)))
            if sorted(result.accepted) != sorted(_ids(written)) or result.rejected:
                _fail(
                    f"push accepted {sorted(result.accepted)} and rejected "
                    f"{[r.id for r in result.rejected]}; expected all of {_ids(written)}"
                )
            fetched = {
                r.id: r for r in self.fetch_all(session, self.sample_queries(written)[0], 10)
            }
        for record in written:
            back = fetched.get(record.id)
            if back is None:
                _fail(f"pushed record {record.id} was not fetched back")
            differing = json_subset(record.data, back.data)
            if differing:
                _fail(f"record {record.id} came back with different data in {differing}")

    def test_push_is_idempotent(self) -> None:
        """The same payload and idempotency key pushed twice takes effect once."""
        self._needs_flag("push_is_idempotent")
        self._needs(Capability.PUSH)
        payload = PushPayload(
            records=tuple(self.sample_records(2)), idempotency_key=uuid.uuid4().hex
        )
        offered = self.subject.capabilities
        with self.open_session() as session:
            before = self.sync_all(session, SyncState())[1] if Capability.SYNC in offered else None
            first, second = session.push(payload), session.push(payload)
            if sorted(first.accepted) != sorted(second.accepted):
                _fail(f"a repeated push accepted {second.accepted}, the first {first.accepted}")
            if before is not None:
                changed = _ids(self.sync_all(session, before)[0])
            elif Capability.FETCH in offered:
                changed = _ids(self.fetch_all(session, self.sample_queries(payload.records)[0], 10))
            else:
                return
        repeated = duplicates([i for i in changed if i in _ids(payload.records)])
        if repeated:
            _fail(f"the repeated push took effect twice for {repeated}")

    def test_tombstones_delete_records(self) -> None:
        """A pushed tombstone deletes the record: fetch drops it, sync reports the deletion."""
        self._needs_flag("supports_tombstones")
        offered = self.subject.capabilities
        if not offered & {Capability.FETCH, Capability.SYNC}:
            self._needs(Capability.FETCH)
        written = self.sample_records(2)
        with self.open_session() as session:
            self.write_records(session, written)
            state = self.sync_all(session, SyncState())[1] if Capability.SYNC in offered else None
            self.write_records(session, [Record(id=written[0].id, deleted=True)])
            if state is not None:
                changes = self.sync_all(session, state)[0]
                if not any(c.id == written[0].id and c.deleted for c in changes):
                    _fail(f"sync after deleting {written[0].id} reported no tombstone for it")
            if Capability.FETCH in offered:
                left = _ids(self.fetch_all(session, self.sample_queries(written)[0], 10))
                if written[0].id in left:
                    _fail(f"{written[0].id} is still fetched after its tombstone was pushed")
                if written[1].id not in left:
                    _fail(f"deleting {written[0].id} also removed {written[1].id}")

    # -- sync ------------------------------------------------------------------------------

    def test_sync_state_is_json_serialisable(self) -> None:
        """The state sync returns survives `to_json` / `from_json` unchanged."""
        self._needs(Capability.SYNC)
        with self.open_session() as session:
            state = session.sync(SyncState()).state
        try:
            text = state.to_json()
            json.loads(text)
            restored = SyncState.from_json(text)
        except Exception as error:  # any failure to serialise is the finding
            _fail(f"the sync state does not survive JSON: {type(error).__name__}: {error}")
        if restored != state:
            _fail("SyncState.from_json(state.to_json()) differs from the state sync returned")

    def test_sync_is_incremental(self) -> None:
        """A sync from a saved state returns exactly the changes made since, then nothing."""
        self._needs_flag("sync_is_incremental")
        self._needs(Capability.SYNC)
        original = self.sample_records(3)
        with self.open_session() as session:
            self.write_records(session, original)
            seen, state = self.sync_all(session, SyncState())
            missing = sorted(set(_ids(original)) - set(_ids(seen)))
            if missing:
                _fail(f"a first sync from SyncState() did not return {missing}")
            saved = state.to_json()
            added = self.sample_records(2)
            self.write_records(session, [*added, self.updated_record(original[0])])
            changes, state = self.sync_all(session, SyncState.from_json(saved))
            again = self.sync_all(session, state)[0]
        expected = sorted([*_ids(added), original[0].id])
        if sorted(_ids(changes)) != expected:
            _fail(
                f"a sync from the saved state returned {sorted(_ids(changes))}; "
                f"expected only the changes made since: {expected}"
            )
        if again:
            _fail(f"a sync with the latest state returned {_ids(again)} though nothing changed")

    # -- errors and resources --------------------------------------------------------------

    def test_errors_map_into_the_library_tree(self) -> None:
        """A damaged cursor or state raises the library's error, not a backend's or builtin."""
        offered = self.subject.capabilities
        if not offered & {Capability.FETCH, Capability.SYNC}:
            self._needs(Capability.FETCH, Capability.SYNC)
        with self.open_session() as session:
            if Capability.FETCH in offered:
                self._raises_mapped(
                    "fetch with a damaged cursor", session.fetch, FetchQuery(cursor=DAMAGED_CURSOR)
                )
            if Capability.SYNC in offered:
                self._raises_mapped(
                    "sync from a damaged state", session.sync, SyncState(cursor=DAMAGED_CURSOR)
                )

    def _raises_mapped(self, what: str, operation: Any, argument: object) -> None:
        expected = self.bad_cursor_error
        try:
            operation(argument)
        except expected:
            return
        except IntegrationsError as error:
            _fail(
                f"{what} raised {type(error).__name__}, expected {expected.__name__} "
                "(set bad_cursor_error if the backend reports it differently)"
            )
        except Exception as error:  # the finding is an error outside the library's tree
            _fail(
                f"{what} raised {type(error).__module__}.{type(error).__name__}: {error}; "
                f"connectors must map backend errors into the library's tree ({expected.__name__})"
            )
        _fail(f"{what} returned normally; expected {expected.__name__}")

    def test_sessions_leak_no_descriptors_or_threads(self) -> None:
        """Opening and closing many sessions leaves descriptors and threads where they were."""
        directory = descriptor_directory()
        if directory is None:
            _not_applicable("this platform has neither /proc/self/fd nor /dev/fd to count")
        for _ in range(2):  # first sessions may fill pools and caches that then stay
            self._one_session()
        before = resources(directory)
        for _ in range(self.leak_sessions):
            self._one_session()
        after = settled_resources(directory, before, self.thread_tolerance)
        grown = []
        if after.descriptors > before.descriptors + self.descriptor_tolerance:
            grown.append(f"file descriptors {before.descriptors} → {after.descriptors}")
        if after.threads > before.threads + self.thread_tolerance:
            grown.append(f"threads {before.threads} → {after.threads}")
        if grown:
            _fail(
                f"after {self.leak_sessions} sessions the process holds more: "
                f"{'; '.join(grown)}; something opened at auth or connect is not released at revoke"
            )

    def _one_session(self) -> None:
        offered = self.subject.capabilities
        with self.open_session() as session:
            if Capability.FETCH in offered:
                session.fetch(self.probe_query())
            elif Capability.SYNC in offered:
                session.sync(SyncState())

    # -- named actions ---------------------------------------------------------------------

    def _action_entry(self) -> ConnectorEntry:
        """The manifest entry of a connector with actions (which needs one), or not applicable."""
        declared = frozenset(getattr(self.subject, "actions", frozenset()))
        if not declared:
            _not_applicable("the connector declares no named actions")
        if self.registry_name is None:
            _fail(
                f"the connector declares actions ({', '.join(sorted(declared))}) but has no "
                "manifest entry: actions need one that names each action's schema"
            )
        try:
            self.kit_registry.get(self.registry_name)
        except IntegrationsError as error:
            _fail(f"manifest entry {self.registry_name!r}: {error}")
        entry = self.kit_registry.info(self.registry_name).entry
        if entry is None:
            _fail(f"manifest entry {self.registry_name!r} is not usable")
        return entry

    def _samples(self, spec: ActionSpec) -> tuple[dict[str, Any], dict[str, Any]]:
        samples = self.action_samples.get(spec.name)
        if samples is None:
            _fail(
                f"action_samples has no (valid, invalid) inputs for action {spec.name}: "
                "the kit needs them to call it"
            )
        return samples

    def approving_context(self, spec: ActionSpec) -> AuthContext:
        """The check's context with as many approvers as `spec`'s quorum asks for."""
        quorum = spec.quorum
        count = self.quorum_policies.get(quorum, 0) if isinstance(quorum, str) else quorum
        context = self.auth_context
        approvals = [f"certification-approver-{index}" for index in range(count)]
        return context.model_copy(
            update={"attributes": {**context.attributes, "approvals": approvals}}
        )

    def test_actions_have_schemas_and_samples(self) -> None:
        """Every declared action has a draft 7 schema that takes the valid sample and refuses
        the invalid one."""
        entry = self._action_entry()
        for spec in entry.actions:
            valid, invalid = self._samples(spec)
            try:
                schema = action_schema(spec)
            except IntegrationsError as error:
                _fail(f"the schema of action {spec.name} cannot be used: {error}")
            try:
                schema.check(spec.name, valid)
            except InvalidRequest as error:
                _fail(f"the valid sample of action {spec.name} is refused by its schema: {error}")
            try:
                schema.check(spec.name, invalid)
            except InvalidRequest:
                continue
            _fail(f"the invalid sample of action {spec.name} is accepted by its schema")

    def test_invalid_action_input_is_refused_before_any_io(self) -> None:
        """An input its schema refuses raises `InvalidRequest`; the connector is not called."""
        entry = self._action_entry()
        for spec in entry.actions:
            _, invalid = self._samples(spec)
            with self.open_session(context=self.approving_context(spec)) as session:
                try:
                    session.invoke(spec.name, invalid)
                except InvalidRequest:
                    pass
                else:
                    _fail(f"action {spec.name} accepted its invalid sample")
                self._not_reached(session, spec.name, "with invalid input")

    def _not_reached(self, session: GovernedSession, action: str, why: str) -> None:
        events = [e for e in self.events_of(session) if e.operation == action]
        if any(e.phase == "started" for e in events):
            _fail(f"action {action} {why} reached the connector")
        if [e.outcome for e in events] != ["denied"]:
            _fail(f"action {action} {why} was not audited as one denial")

    def test_actions_answer_valid_input(self) -> None:
        """A valid sample is answered with an `ActionResult` (and streamed when declared)."""
        entry = self._action_entry()
        for spec in entry.actions:
            valid, _ = self._samples(spec)
            with self.open_session(context=self.approving_context(spec)) as session:
                result = session.invoke(spec.name, valid)
                if not isinstance(result, ActionResult) or result.action != spec.name:
                    _fail(f"action {spec.name} answered {result!r}, not its ActionResult")
                if spec.streaming:
                    chunks = stream_all(session, spec.name, valid)
                    if not chunks:
                        _fail(f"the stream of action {spec.name} ended without a chunk")
            finished = [
                e.outcome
                for e in self.events_of(session)
                if e.operation == spec.name and e.phase == "finished"
            ]
            if finished != ["ok"] * (2 if spec.streaming else 1):
                _fail(f"action {spec.name} was audited as {finished}")

    def test_action_quorum_is_enforced(self) -> None:
        """An action with a quorum is denied without approvers, before the connector runs."""
        entry = self._action_entry()
        guarded = [spec for spec in entry.actions if spec.quorum not in (0, "")]
        if not guarded:
            _not_applicable("no action declares a quorum")
        for spec in guarded:
            valid, _ = self._samples(spec)
            with self.open_session() as session:
                try:
                    session.invoke(spec.name, valid)
                except PolicyError:
                    pass
                else:
                    _fail(f"action {spec.name} ran without the approvers its quorum needs")
                self._not_reached(session, spec.name, "without approvers")

    def test_action_retries_follow_the_idempotency_flag(self) -> None:
        """After one transient failure an idempotent action is retried, another is not."""
        entry = self._action_entry()
        name = self.registry_name or self._session_name
        for spec in entry.actions:
            valid, _ = self._samples(spec)
            sink = MemoryAuditSink()
            governance = dataclasses.replace(
                self._governance,
                audit=FanOutAuditSink([self._governance.audit, sink]),
                retry=RetryPolicy(max_attempts=2, initial_backoff=0.001, max_backoff=0.001),
                breaker=None,
            )
            options: dict[str, Any] = {
                "config": self.config_mapping,
                "context": self.approving_context(spec),
                "governance": governance,
                "meta": ConnectorMeta(name),
                "entry": entry,
            }
            connector = _failing_once(self.subject)()
            try:
                if is_async_connector(self.subject):
                    with blocking_session(AsyncSession(connector, **options)) as session:
                        session.invoke(spec.name, valid)
                else:
                    with Session(connector, **options) as sync_session:
                        sync_session.invoke(spec.name, valid)
            except TransientError:
                retried = False
            else:
                retried = True
            attempts = sum(
                1 for e in sink.events if e.operation == spec.name and e.phase == "started"
            )
            if retried != spec.idempotent or attempts != (2 if spec.idempotent else 1):
                _fail(
                    f"action {spec.name} (idempotent={spec.idempotent}) ran {attempts} "
                    "attempt(s) after one transient failure; expected "
                    f"{2 if spec.idempotent else 1}"
                )


def _failing_once(cls: ConnectorClass) -> type[Any]:
    """A subclass of `cls` whose first `invoke` raises `TransientError` without any I/O."""
    failed: list[bool] = []

    def fail_first() -> None:
        if not failed:
            failed.append(True)
            raise TransientError("certification: one injected transient failure")

    if is_async_connector(cls):

        async def invoke_async(self: Any, request: ActionRequest) -> ActionResult:
            fail_first()
            return cast(ActionResult, await super(subclass, self).invoke(request))

        method: Any = invoke_async
    else:

        def invoke_sync(self: Any, request: ActionRequest) -> ActionResult:
            fail_first()
            return cast(ActionResult, super(subclass, self).invoke(request))

        method = invoke_sync
    subclass: type[Any] = type(f"FailingOnce{cls.__name__}", (cls,), {"invoke": method})
    return subclass


def standard_checks() -> tuple[str, ...]:
    """The names of the kit's standard checks, in definition order."""
    return tuple(name for name in vars(ConnectorCertification) if name.startswith("test_"))


def _xfail_reason(function: object) -> str | None:
    """The reason of a strict xfail mark on `function`, or None without one."""
    for mark in getattr(function, "pytestmark", []):
        if getattr(mark, "name", None) != "xfail":
            continue
        reason = mark.kwargs.get("reason")
        if isinstance(reason, str) and reason.strip() and mark.kwargs.get("strict") is True:
            return reason
    return None


def override_problems(cls: type) -> list[str]:
    """Every standard check `cls` deletes, or overrides without a strict xfail with a reason.

    A check counts as overridden when the attribute pytest finds on `cls` is not the kit's
    function; the class of `cls`'s MRO that replaced it is named.
    """
    problems: list[str] = []
    for name in standard_checks():
        standard = vars(ConnectorCertification)[name]
        if getattr(standard, "pytestmark", None):
            problems.append(f"the kit's own {name} was marked in place: mark an override instead")
        current = getattr(cls, name, None)
        if current is standard:
            continue
        owner = next((k.__name__ for k in cls.__mro__ if name in vars(k)), cls.__name__)
        if current is None or not callable(current):
            problems.append(f"{owner} deletes {name}")
        elif _xfail_reason(current) is None:
            problems.append(
                f"{owner} overrides {name} without @pytest.mark.xfail(reason=..., strict=True)"
            )
    return problems
