"""Governed sessions: auth → connect → operations → revoke, audited and policed.

`Session` (sync) and `AsyncSession` share one `_Governor` that holds every rule — the state
machine, policies, audit (fail-closed or not), secret resolution, the circuit breaker and
the retry decisions (made by `RetryRun`, re-authentication after an expired token
included). The two session classes only differ in how they call the connector and sleep.

An operation's first attempt runs on a fast path without tenacity: a call that succeeds
pays one attribute read for the breaker and nothing for retries. Only a failure builds the
retry machinery.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, cast

from ._actions import ActionSchema, action_schema
from ._audit import AuditEvent, ConnectorMeta, Outcome, Phase, run_id_of
from ._connector import (
    ActionConnector,
    AsyncActionConnector,
    AsyncConnector,
    Capability,
    Connector,
    is_async_connector,
)
from ._exceptions import (
    AuditError,
    AuthExpired,
    CircuitOpen,
    ConnectorUnavailable,
    ContractError,
    EgressDenied,
    InvalidRequest,
    LifecycleError,
    NotSupported,
    PolicyError,
    SecretReferenceDenied,
    TransientError,
)
from ._governance import Governance
from ._manifest import ActionSpec, ConnectorEntry
from ._models import (
    ActionRequest,
    ActionResult,
    AuthContext,
    AuthToken,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    PushPayload,
    PushResult,
    RevokeResult,
    SyncResult,
    SyncState,
)
from ._policy import Decision, PolicyRequest
from ._resilience import CircuitState, RetryPolicy, RetryRun, Transition, breaker_for
from ._stream import ActionStream, AsyncActionStream
from ._telemetry import configured_telemetry
from ._untrusted import ReferenceGate, UntrustedConfig

__all__ = ["AsyncSession", "Session", "SessionState", "StepListener"]

logger = logging.getLogger("integrations.lifecycle")

T = TypeVar("T")
R = TypeVar("R")
ConnectorT = TypeVar("ConnectorT", bound="Connector[Any] | AsyncConnector[Any]")

StepListener = Callable[[AuditEvent], None]
"""Called with every "finished" event of a session (how `run_lifecycle` builds its report)."""


class SessionState(StrEnum):
    """Where a session is in its lifecycle."""

    CREATED = "created"
    AUTHENTICATED = "authenticated"
    CONNECTED = "connected"
    CLOSED = "closed"
    FAILED = "failed"


_TRANSITIONS: Final[dict[SessionState, frozenset[SessionState]]] = {
    SessionState.CREATED: frozenset({SessionState.AUTHENTICATED, SessionState.FAILED}),
    SessionState.AUTHENTICATED: frozenset(
        {SessionState.CONNECTED, SessionState.FAILED, SessionState.CLOSED}
    ),
    SessionState.CONNECTED: frozenset({SessionState.CLOSED, SessionState.FAILED}),
    SessionState.FAILED: frozenset({SessionState.CLOSED}),
    SessionState.CLOSED: frozenset(),
}


class _Governor:
    """Every rule of a session, independent of whether the connector is sync or async."""

    __slots__ = (
        "_actions",
        "_actor",
        "_audit_failures",
        "_debug",
        "_decisions",
        "_entry",
        "_listener",
        "_notes",
        "_otel",
        "_push_idempotent",
        "_requests",
        "_run_id",
        "_schemas",
        "_sequence",
        "_sink",
        "_supported",
        "_tenant",
        "audit_required",
        "breaker",
        "capabilities",
        "context",
        "correlation_id",
        "governance",
        "meta",
        "retry",
        "state",
        "token",
        "usage",
    )

    def __init__(
        self,
        *,
        connector: object,
        meta: ConnectorMeta,
        entry: ConnectorEntry | None,
        capabilities: frozenset[Capability],
        context: AuthContext,
        governance: Governance,
        listener: StepListener | None,
    ) -> None:
        self.meta = meta
        self._entry = entry
        self.capabilities = capabilities
        self._supported = frozenset(capability.value for capability in capabilities)
        self._requests: dict[str, PolicyRequest] = {}
        self._decisions: dict[str, Decision] | None = (
            {} if getattr(governance.policies, "pure", False) is True else None
        )
        self.context = context
        self.governance = governance
        self.audit_required = governance.audit_required or bool(entry and entry.audit.required)
        self.correlation_id = uuid.uuid4().hex
        self.state = SessionState.CREATED
        self.token: AuthToken | None = None
        self._sequence = 0
        self._audit_failures = 0
        self._sink = governance.audit.emit
        self._tenant = context.tenant
        self._actor = context.actor
        self._run_id = run_id_of(context.attributes) if context.attributes else None
        self._listener = listener
        self.retry = governance.retry_for(meta.name)
        self.breaker = breaker_for(connector, governance.breaker_for(meta.name))
        push = entry.capability(Capability.PUSH) if entry is not None else None
        self._push_idempotent = push is not None and push.idempotent
        implemented = getattr(type(connector), "actions", None) or frozenset()
        self._actions: dict[str, ActionSpec] = (
            {spec.name: spec for spec in entry.actions if spec.name in implemented}
            if entry is not None and entry.actions and implemented
            else {}
        )
        self._schemas: dict[str, ActionSchema] = {}
        self._notes: dict[str, str] = {}
        self.usage: dict[str, int] = {}
        """Usage the running action reported, written into its "finished" event."""
        self._debug = logger.isEnabledFor(logging.DEBUG)  # decided once per session
        telemetry = governance.telemetry
        if telemetry == "global":
            telemetry = configured_telemetry()
        self._otel = (
            telemetry.session(meta, context, self.correlation_id) if telemetry is not None else None
        )

    @property
    def audit_failures(self) -> int:
        return self._audit_failures

    def transition(self, new: SessionState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise LifecycleError(f"session cannot go from {self.state} to {new}")
        self.state = new

    def require(self, state: SessionState, action: str) -> None:
        if self.state is not state:
            raise LifecycleError(f"cannot {action}: session is {self.state}, not {state}")

    def config(self, config_model: type[ConnectorConfig], raw: object) -> ConnectorConfig:
        """Validate the config, resolving secret references now, as the session opens.

        A config model instance is validated again from its fields, so references it holds
        in `Secret` fields are resolved too (`model_dump` keeps `Secret` values as they are).
        """
        if isinstance(raw, UntrustedConfig):
            return self._untrusted_config(config_model, raw)
        if isinstance(raw, ConnectorConfig):
            raw = raw.model_dump()
        if not isinstance(raw, Mapping):
            raise LifecycleError(f"config must be a mapping or a {config_model.__name__}")
        return config_model.from_mapping(raw, secrets=self.governance.secrets)

    def _untrusted_config(
        self, config_model: type[ConnectorConfig], raw: UntrustedConfig
    ) -> ConnectorConfig:
        """A tenant's config: references checked, then resolved; destinations checked, pinned.

        The first validation resolves nothing (the gate only checks), so a config with one
        refused reference has none resolved. Denials are audited as the connect step's; the
        connector is never called.
        """
        policy = self.governance.untrusted
        secrets = self.governance.secrets
        tenant = self.context.tenant
        guard = policy.egress.guard(
            connector=self.meta.name,
            tenant=tenant,
            resolver=policy.resolver,
            on_denied=self._egress_denied,
        )
        try:
            config_model.from_mapping(
                raw.data, secrets=ReferenceGate(policy.secret_references, secrets, tenant)
            )
            config = config_model.from_mapping(raw.data, secrets=secrets)
            guard.admit(config.destinations())
            config.admit_untrusted()
        except (SecretReferenceDenied, EgressDenied) as denial:
            self._deny("connect", "PolicyError", f"{denial.code} {denial.reason}")
            raise
        except PolicyError as denial:
            self._deny("connect", "PolicyError", f"UNTRUSTED_CONFIG_REFUSED {denial.reason}")
            raise
        config._egress = guard
        return config

    def _egress_denied(self, denial: EgressDenied) -> None:
        """Audit a destination refused once the connector runs (a redirect, a late connection)."""
        if self.state is not SessionState.CREATED:  # before that, the connect step audits it
            self._deny("egress", "PolicyError", f"{denial.code} {denial.reason}")

    def prepare(self, config_model: type[ConnectorConfig], raw: object) -> ConnectorConfig:
        """What opening a session does before the connector is called: policies, then config.

        The order is the session's rule: a denied or misconfigured session never reaches
        `auth`, so nothing has to be revoked.
        """
        self.authorize("auth")
        return self.config(config_model, raw)

    def admit(self, operation: str) -> None:
        """Check state, support and policies before a data operation reaches the connector."""
        if self.state is not SessionState.CONNECTED:
            self.require(SessionState.CONNECTED, operation)
        if operation not in self._supported:
            self._deny(operation, "NotSupported", f"{self.meta.name} does not support {operation}")
            raise NotSupported(f"connector {self.meta.name!r} does not support {operation}")
        decisions = self._decisions  # as in _police, inlined: this runs on every call
        decision = decisions.get(operation) if decisions is not None else None
        if decision is None:
            decision = self._decide(operation)
        if not decision.allowed:
            self._refuse(operation, decision)
        if decision.code:
            self._notes[operation] = decision.reason
        if not self.breaker.clean:
            self.gate(operation, 1)

    def _police(self, operation: str) -> None:
        """Run the policies (a pure set's decision is reused) and the breaker's gate."""
        decisions = self._decisions
        decision = decisions.get(operation) if decisions is not None else None
        if decision is None:
            decision = self._decide(operation)
        if not decision.allowed:
            self._refuse(operation, decision)
        if decision.code:  # an allowing decision worth auditing, e.g. QUORUM_MET's approvers
            self._notes[operation] = decision.reason
        if not self.breaker.clean:
            self.gate(operation, 1)

    def admit_action(self, action: str, data: object, *, streaming: bool = False) -> ActionSpec:
        """Before a named action reaches the connector: declared, input valid, policies.

        Every refusal is audited as a denial of the action. The input is checked against the
        action's draft 7 schema (compiled once) before the policies run. A stream needs the
        manifest's ``streaming`` flag.
        """
        if self.state is not SessionState.CONNECTED:
            self.require(SessionState.CONNECTED, action)
        spec = self._actions.get(action)
        reason = None
        if spec is None:
            reason = f"{self.meta.name} does not declare action {action} in its manifest entry"
        elif streaming and not spec.streaming:
            reason = f"{self.meta.name} does not declare action {action} as streaming"
        if spec is None or reason is not None:
            self._deny(action, "NotSupported", reason or "")
            raise NotSupported(f"connector {self.meta.name!r}: {reason}")
        try:
            if not isinstance(data, dict):
                raise InvalidRequest(f"the input of action {action} must be a JSON object")
            schema = self._schemas.get(action)
            if schema is None:
                schema = self._schemas[action] = action_schema(spec)
            schema.check(action, data)
        except (InvalidRequest, ContractError, ConnectorUnavailable) as error:
            self._deny(action, type(error).__name__, str(error))
            raise
        self._police(action)
        return spec

    def action_result(self, action: str, result: object) -> ActionResult:
        """Check what `invoke` returned and keep its usage for the audit event."""
        if not isinstance(result, ActionResult):
            raise ContractError(
                f"{self.meta.name}.invoke returned {type(result).__name__}, not ActionResult"
            )
        self.usage = result.usage
        return result

    def authorize(self, operation: str) -> None:
        """Check support and policies before anything reaches the connector."""
        if operation in _OPERATIONS and operation not in self._supported:
            self._deny(operation, "NotSupported", f"{self.meta.name} does not support {operation}")
            raise NotSupported(f"connector {self.meta.name!r} does not support {operation}")
        decision = self._decide(operation)
        if not decision.allowed:
            self._refuse(operation, decision)

    def _refuse(self, operation: str, decision: Decision) -> None:
        self._deny(operation, "PolicyError", decision.code)
        raise PolicyError(
            f"{operation} on {self.meta.name!r} denied: {decision.code}: {decision.reason}",
            decision.reason,
        )

    def _decide(self, operation: str) -> Decision:
        """The policies' decision; pure policies are asked once per operation and session."""
        decisions = self._decisions
        if decisions is not None and operation in decisions:
            return decisions[operation]
        request = self._requests.get(operation)
        if request is None:  # the request only depends on the session and the operation
            request = self._requests[operation] = PolicyRequest(
                self.context, self.meta, self._entry, operation
            )
        decision = self.governance.policies.evaluate(request)
        if decisions is not None:
            decisions[operation] = decision
        return decision

    def _deny(self, operation: str, error_type: str, detail: str, attempt: int = 1) -> None:
        event = self._emit(operation, "finished", attempt, "denied", error_type, 0.0, detail)
        if self._listener is not None:
            self._listener(event)

    # -- resilience --------------------------------------------------------------------------

    def gate(self, operation: str, attempt: int) -> None:
        """Fail fast with `CircuitOpen`, audited as a denial, while the breaker refuses calls."""
        admitted, transition, remaining = self.breaker.admit()
        if transition is not None:
            self._circuit(transition, None)
        if not admitted:
            self._deny(operation, "CircuitOpen", "circuit open", attempt)
            wait = "" if remaining is None else f"; retry in {remaining:.3g} s"
            raise CircuitOpen(
                f"circuit open for {self.meta.name!r}: {operation} was not sent{wait}",
                retry_after=remaining,
            )

    def observe(self, error: BaseException | None) -> None:
        """Tell the breaker how a call that reached the connector ended."""
        transition = self.breaker.record(error)
        if transition is not None:
            self._circuit(transition, error)

    def _circuit(self, transition: Transition, error: BaseException | None) -> None:
        """Audit a change of the breaker's state (not a step: listeners do not see it)."""
        old, new = transition
        error_type = None if error is None else type(error).__name__
        self._emit("circuit", "finished", 1, None, error_type, None, f"{old}->{new}")
        logger.warning(
            "circuit %s -> %s",
            old,
            new,
            extra=self.log_fields("circuit", error_type=error_type),
        )

    def failed(
        self,
        operation: str,
        argument: object,
        error: BaseException,
        started: float,
        retry: RetryPolicy | None,
    ) -> RetryRun | None:
        """Count a failed first attempt; the retries to run, or None to raise `error` now."""
        self.observe(error)
        if not isinstance(error, (TransientError, AuthExpired)):
            return None
        run = RetryRun(
            operation,
            retry or self.retry,
            idempotent=self._idempotent(operation, argument),
            breaker=self.breaker,
            started=started,
            first_error=error,
        )
        return run if run.follows() else None

    def _idempotent(self, operation: str, argument: object) -> bool:
        """Reads always are; a push or a named action when its argument has a key or the
        manifest says so (``idempotent``)."""
        if operation == "push":
            flag = self._push_idempotent
        else:
            spec = self._actions.get(operation) if self._actions else None
            if spec is None:
                return True
            flag = spec.idempotent
        return flag or getattr(argument, "idempotency_key", None) is not None

    def attempt_ended(self, run: RetryRun, error: BaseException | None) -> None:
        """Book a retried attempt's end with the breaker and the deadline rule."""
        run.ended()
        self.observe(error)

    # -- audit -------------------------------------------------------------------------------

    def started(self, operation: str, attempt: int, delay: float | None = None) -> float:
        """Audit the start of a step; when audit is required and fails, the step must not run.

        `delay` is the wait chosen before a retried attempt. Revoke is the exception:
        withdrawing access is never blocked by a failing audit sink; its lost event is
        counted like any optional one. This and `finished` build their event inline: they
        run on every governed call.
        """
        self._sequence = sequence = self._sequence + 1
        event = _new_event(
            AuditEvent,
            (
                self.correlation_id,
                sequence,
                _wall_clock(),
                self.meta,
                operation,
                "started",
                self._tenant,
                self._actor,
                attempt,
                None,
                None,
                None,
                self._notes.get(operation) if self._notes else None,
                delay,
                self._run_id,
            ),
        )
        try:
            self._sink(event)
        except Exception as error:  # a sink may fail in any way; fail closed or count it
            self._sink_failed(operation, error, self.audit_required and operation != "revoke")
        if self._otel is not None:
            self._otel.step_started(operation, attempt)
        return _monotonic()

    def finished(
        self,
        operation: str,
        attempt: int,
        started: float,
        error: BaseException | None,
        extra: str | None = None,
    ) -> None:
        """Audit the end of a step, with its outcome and duration (`extra`: a note)."""
        duration = _monotonic() - started
        self._sequence = sequence = self._sequence + 1
        event: AuditEvent = _new_event(
            AuditEvent,
            (
                self.correlation_id,
                sequence,
                _wall_clock(),
                self.meta,
                operation,
                "finished",
                self._tenant,
                self._actor,
                attempt,
                "ok" if error is None else "error",
                None if error is None else type(error).__name__,
                duration,
                self._detail(operation, extra) if self._notes or self._actions else None,
                None,
                self._run_id,
            ),
        )
        try:
            self._sink(event)
        except Exception as failure:  # a lost "finished" event never undoes the step
            self._sink_failed(operation, failure, False)
        if self._otel is not None:
            self._otel.step_finished(operation, attempt, event.error_type, duration)
        if self._debug:
            logger.debug(
                "%s attempt %d %s in %.6f s",
                operation,
                attempt,
                event.outcome,
                duration,
                extra=self.log_fields(operation, attempt=attempt, error_type=event.error_type),
            )
        if self._listener is not None:
            self._listener(event)

    def _detail(self, operation: str, extra: str | None = None) -> str | None:
        """What a step's "finished" event adds: who approved it, what an action used."""
        note = self._notes.get(operation)
        usage, self.usage = self.usage, {}
        if (not usage or operation not in self._actions) and extra is None:
            return note
        parts = [note] if note is not None else []
        if extra is not None:
            parts.append(extra)
        if usage:
            parts.append("usage " + ",".join(f"{k}={v}" for k, v in sorted(usage.items())))
        return "; ".join(parts)

    def closed(self, pending: BaseException | None) -> None:
        """Mark the session closed and end its telemetry span."""
        self.state = SessionState.CLOSED
        if self._otel is not None:
            self._otel.close(None if pending is None else type(pending).__name__)

    def _emit(
        self,
        operation: str,
        phase: Phase,
        attempt: int,
        outcome: Outcome | None,
        error_type: str | None,
        duration: float | None,
        detail: str | None,
        strict: bool = False,
    ) -> AuditEvent:
        """Build one event and hand it to the sink: denials and circuit changes, not steps."""
        self._sequence += 1
        event: AuditEvent = _new_event(
            AuditEvent,
            (
                self.correlation_id,
                self._sequence,
                _wall_clock(),
                self.meta,
                operation,
                phase,
                self._tenant,
                self._actor,
                attempt,
                outcome,
                error_type,
                duration,
                detail,
                None,
                self._run_id,
            ),
        )
        try:
            self._sink(event)
        except Exception as error:  # a sink may fail in any way; fail closed or count it
            self._sink_failed(operation, error, strict)
        return event

    def _sink_failed(self, operation: str, error: Exception, strict: bool) -> None:
        if strict:
            raise AuditError(
                f"audit is required and the {operation} event could not be written "
                f"({type(error).__name__}); {operation} was not run"
            ) from None
        self._audit_failures += 1
        logger.warning(
            "audit event not written",
            extra=self.log_fields(operation, error_type=type(error).__name__),
        )

    def log_fields(self, operation: str, **more: object) -> dict[str, object]:
        """Structured fields for `integrations.*` log records."""
        return {
            "connector": self.meta.name,
            "operation": operation,
            "tenant": self.context.tenant,
            "correlation_id": self.correlation_id,
            **more,
        }


_OPERATIONS: Final = frozenset(capability.value for capability in Capability)

_new_event = tuple.__new__
_wall_clock = time.time
_monotonic = time.perf_counter
"""Builds an `AuditEvent` from all its fields at once, skipping the per-field defaults."""


async def _invoke(call: Callable[[T], Any], argument: T) -> Any:
    """Await an async connector's method; run a sync connector's in a worker thread."""
    if inspect.iscoroutinefunction(call):
        return await cast(Callable[[T], Awaitable[Any]], call)(argument)
    return await asyncio.to_thread(call, argument)


def _action_request(
    action: str, data: dict[str, Any], idempotency_key: str | None
) -> ActionRequest:
    """The request for an input the session has validated (so it is not validated again)."""
    return ActionRequest.model_construct(action=action, input=data, idempotency_key=idempotency_key)


def _revoke_failure_note(error: BaseException) -> str:
    return f"revoke failed while the session was closing: {type(error).__name__}: {error}"


class _SessionBase(Generic[ConnectorT]):
    """State and properties shared by the sync and async sessions."""

    def __init__(
        self,
        connector: ConnectorT,
        *,
        config: ConnectorConfig | Mapping[str, Any] | UntrustedConfig,
        context: AuthContext,
        governance: Governance | None = None,
        meta: ConnectorMeta | None = None,
        entry: ConnectorEntry | None = None,
        listener: StepListener | None = None,
    ) -> None:
        """Prepare a session; nothing reaches the connector before it is opened.

        `config` is trusted (written by the platform) unless wrapped in `UntrustedConfig`.
        `meta` and `entry` (the manifest entry) describe the connector in audit events and
        to policies; `listener` sees every "finished" event.
        """
        self._accept(connector)
        self.connector = connector
        self._raw_config = config
        self._governor = _Governor(
            connector=connector,
            meta=meta or ConnectorMeta(type(connector).__name__),
            entry=entry,
            capabilities=frozenset(type(connector).capabilities),
            context=context,
            governance=governance or Governance(),
            listener=listener,
        )
        self._streams: set[Any] = set()
        """Streams opened and not yet ended: closing the session closes them (audited)."""
        self.revoke_error: BaseException | None = None
        """The error revoke raised while closing, if any (also audited and surfaced)."""

    def _accept(self, connector: ConnectorT) -> None:
        """Refuse a connector this kind of session cannot drive."""

    @property
    def state(self) -> SessionState:
        """The lifecycle state."""
        return self._governor.state

    @property
    def correlation_id(self) -> str:
        """The id shared by every audit event of this session."""
        return self._governor.correlation_id

    @property
    def audit_failures(self) -> int:
        """Audit events that could not be written (when audit is optional)."""
        return self._governor.audit_failures

    @property
    def circuit_state(self) -> CircuitState:
        """The state of the circuit breaker of this session's connector instance.

        An open circuit becomes half-open with the first call after its cool-down.
        """
        return self._governor.breaker.state


class Session(_SessionBase[Connector[Any]]):
    """A governed session on a sync connector, used as a context manager.

    Entering authenticates and connects; leaving — normally, by exception or by
    cancellation — revokes the token. Only the operations the connector declares are
    exposed; the others raise `NotSupported` before any call.
    """

    def _accept(self, connector: Connector[Any]) -> None:
        if is_async_connector(type(connector)):
            raise LifecycleError(f"{type(connector).__name__} is async: use AsyncSession")

    def _step(
        self,
        operation: str,
        call: Callable[[T], R],
        argument: T,
        attempt: int = 1,
        delay: float | None = None,
    ) -> R:
        governor = self._governor
        started = governor.started(operation, attempt, delay)
        try:
            result = call(argument)
        except BaseException as error:
            governor.finished(operation, attempt, started, error)
            raise
        governor.finished(operation, attempt, started, None)
        return result

    def open(self) -> Session:
        """Validate the config, authenticate, connect; on failure revoke and re-raise."""
        governor = self._governor
        governor.require(SessionState.CREATED, "open")
        try:
            config = governor.prepare(type(self.connector).config_model, self._raw_config)
            governor.token = self._step("auth", self.connector.auth, governor.context)
            governor.transition(SessionState.AUTHENTICATED)
            self._step("connect", self.connector.connect, config)
            governor.transition(SessionState.CONNECTED)
        except BaseException as error:
            governor.transition(SessionState.FAILED)
            self.close(error)
            raise
        return self

    def _operate(
        self,
        operation: str,
        call: Callable[[T], R],
        argument: T,
        retry: RetryPolicy | None,
        admitted: bool = False,
    ) -> R:
        """Admit (unless `admitted`), call the connector once, then retry what may be
        retried; every attempt audited."""
        governor = self._governor
        if not admitted:
            governor.admit(operation)
        started = governor.started(operation, 1)
        try:
            result = call(argument)
        except BaseException as error:
            governor.finished(operation, 1, started, error)
            run = governor.failed(operation, argument, error, started, retry)
            if run is None:
                raise
            retried: R = run.retrying()(self._attempt, run, call, argument)
            return retried
        governor.finished(operation, 1, started, None)
        if not governor.breaker.clean:
            governor.observe(None)
        return result

    def _attempt(self, run: RetryRun, call: Callable[[T], R], argument: T) -> R:
        """One retried attempt, as tenacity calls it (after re-authenticating when due)."""
        governor = self._governor
        attempt = run.begin()
        governor.gate(run.operation, attempt)
        try:
            if run.reauth_due:
                governor.token = self._step("auth", self.connector.auth, governor.context, attempt)
                run.reauth_due = False
            result = self._step(run.operation, call, argument, attempt, run.delay)
        except BaseException as error:
            governor.attempt_ended(run, error)
            raise
        governor.attempt_ended(run, None)
        return result

    def fetch(self, query: FetchQuery, *, retry: RetryPolicy | None = None) -> FetchResult:
        """Fetch one page through the connector; `retry` overrides the retry policy."""
        return self._operate("fetch", self.connector.fetch, query, retry)

    def push(self, payload: PushPayload, *, retry: RetryPolicy | None = None) -> PushResult:
        """Push records; retried only when idempotent; `retry` overrides the retry policy."""
        return self._operate("push", self.connector.push, payload, retry)

    def sync(self, state: SyncState, *, retry: RetryPolicy | None = None) -> SyncResult:
        """Sync changes through the connector; `retry` overrides the retry policy."""
        return self._operate("sync", self.connector.sync, state, retry)

    def invoke(
        self,
        action: str,
        input: dict[str, Any],  # the contract's name for an action's input
        *,
        retry: RetryPolicy | None = None,
        idempotency_key: str | None = None,
    ) -> ActionResult:
        """Run named action `action` on `input` and return its typed result.

        Before any I/O the action must be declared by the manifest entry and the class, the
        input must follow the action's JSON Schema (else `InvalidRequest` naming the JSON
        pointer) and the policies (quorum included) must allow it; every refusal is audited.
        The action is retried only when its manifest flag ``idempotent`` says so or an
        `idempotency_key` is given; `retry` overrides the retry policy.
        """
        governor = self._governor
        governor.admit_action(action, input)
        request = _action_request(action, input, idempotency_key)
        invoke = cast(ActionConnector[Any], self.connector).invoke

        def call(argument: ActionRequest) -> ActionResult:
            return governor.action_result(action, invoke(argument))

        return self._operate(action, call, request, retry, admitted=True)

    def stream(
        self,
        action: str,
        input: dict[str, Any],  # the contract's name for an action's input
        *,
        idempotency_key: str | None = None,
    ) -> ActionStream:
        """Stream named action `action`: ``with session.stream(...) as chunks: for ...``.

        Admitted now, as `invoke` is (declared streaming, input valid, policies); the
        connector is called on entry. The step is audited once, when the stream ends, fails
        or is closed early, with the usage the chunks reported. Streams are not retried.
        """
        self._governor.admit_action(action, input, streaming=True)
        request = _action_request(action, input, idempotency_key)
        connector = cast(ActionConnector[Any], self.connector)
        opened = ActionStream._create(
            self._governor, request, connector.stream, self._streams.discard
        )
        self._streams.add(opened)
        return opened

    def close(self, pending: BaseException | None = None) -> RevokeResult | None:
        """Revoke the token (if any) and close; a revoke failure never hides `pending`."""
        governor = self._governor
        if governor.state is SessionState.CLOSED:
            return None
        for stream in list(self._streams):
            with contextlib.suppress(Exception):  # audited by the stream itself
                stream.close()
        token, governor.token = governor.token, None
        result: RevokeResult | None = None
        try:
            if token is not None:
                result = self._step("revoke", self.connector.revoke, token)
        except Exception as error:
            self.revoke_error = error
            if pending is None:
                raise
            pending.add_note(_revoke_failure_note(error))
        finally:
            governor.closed(pending)
        return result

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(exc)


class AsyncSession(_SessionBase[AsyncConnector[Any] | Connector[Any]]):
    """The async twin of `Session`, used with ``async with``.

    Works with async connectors and with sync ones, whose calls run in a worker thread.
    """

    async def _step(
        self,
        operation: str,
        call: Callable[[T], Any],
        argument: T,
        attempt: int = 1,
        delay: float | None = None,
    ) -> Any:
        governor = self._governor
        started = governor.started(operation, attempt, delay)
        try:
            result = await _invoke(call, argument)
        except BaseException as error:
            governor.finished(operation, attempt, started, error)
            raise
        governor.finished(operation, attempt, started, None)
        return result

    async def open(self) -> AsyncSession:
        """Validate the config, authenticate, connect; on failure revoke and re-raise."""
        governor = self._governor
        governor.require(SessionState.CREATED, "open")
        try:
            model, raw = type(self.connector).config_model, self._raw_config
            if isinstance(raw, UntrustedConfig):  # name lookups block: not on the event loop
                config = await asyncio.to_thread(governor.prepare, model, raw)
            else:
                config = governor.prepare(model, raw)
            governor.token = await self._step("auth", self.connector.auth, governor.context)
            governor.transition(SessionState.AUTHENTICATED)
            await self._step("connect", self.connector.connect, config)
            governor.transition(SessionState.CONNECTED)
        except BaseException as error:
            governor.transition(SessionState.FAILED)
            await self.close(error)
            raise
        return self

    async def _operate(
        self,
        operation: str,
        call: Callable[[T], Any],
        argument: T,
        retry: RetryPolicy | None,
        admitted: bool = False,
    ) -> Any:
        """Admit (unless `admitted`), call the connector once, then retry what may be
        retried; every attempt audited."""
        governor = self._governor
        if not admitted:
            governor.admit(operation)
        started = governor.started(operation, 1)
        try:
            result = await _invoke(call, argument)
        except BaseException as error:
            governor.finished(operation, 1, started, error)
            run = governor.failed(operation, argument, error, started, retry)
            if run is None:
                raise
            return await run.async_retrying()(self._attempt, run, call, argument)
        governor.finished(operation, 1, started, None)
        if not governor.breaker.clean:
            governor.observe(None)
        return result

    async def _attempt(self, run: RetryRun, call: Callable[[T], Any], argument: T) -> Any:
        """One retried attempt, as tenacity awaits it (after re-authenticating when due)."""
        governor = self._governor
        attempt = run.begin()
        governor.gate(run.operation, attempt)
        try:
            if run.reauth_due:
                auth = self.connector.auth
                governor.token = await self._step("auth", auth, governor.context, attempt)
                run.reauth_due = False
            result = await self._step(run.operation, call, argument, attempt, run.delay)
        except BaseException as error:
            governor.attempt_ended(run, error)
            raise
        governor.attempt_ended(run, None)
        return result

    async def fetch(self, query: FetchQuery, *, retry: RetryPolicy | None = None) -> FetchResult:
        """Fetch one page through the connector; `retry` overrides the retry policy."""
        fetch = self.connector.fetch
        return cast(FetchResult, await self._operate("fetch", fetch, query, retry))

    async def push(self, payload: PushPayload, *, retry: RetryPolicy | None = None) -> PushResult:
        """Push records; retried only when idempotent; `retry` overrides the retry policy."""
        push = self.connector.push
        return cast(PushResult, await self._operate("push", push, payload, retry))

    async def sync(self, state: SyncState, *, retry: RetryPolicy | None = None) -> SyncResult:
        """Sync changes through the connector; `retry` overrides the retry policy."""
        sync = self.connector.sync
        return cast(SyncResult, await self._operate("sync", sync, state, retry))

    async def invoke(
        self,
        action: str,
        input: dict[str, Any],  # the contract's name for an action's input
        *,
        retry: RetryPolicy | None = None,
        idempotency_key: str | None = None,
    ) -> ActionResult:
        """The async twin of `Session.invoke` (a sync connector's call runs in a thread)."""
        governor = self._governor
        governor.admit_action(action, input)
        request = _action_request(action, input, idempotency_key)
        invoke = cast(AsyncActionConnector[Any] | ActionConnector[Any], self.connector).invoke

        async def call(argument: ActionRequest) -> ActionResult:
            return governor.action_result(action, await _invoke(invoke, argument))

        return cast(ActionResult, await self._operate(action, call, request, retry, True))

    def stream(
        self,
        action: str,
        input: dict[str, Any],  # the contract's name for an action's input
        *,
        idempotency_key: str | None = None,
    ) -> AsyncActionStream:
        """The async twin of `Session.stream`: ``async with session.stream(...) as chunks``."""
        self._governor.admit_action(action, input, streaming=True)
        request = _action_request(action, input, idempotency_key)
        connector = cast(AsyncActionConnector[Any] | ActionConnector[Any], self.connector)
        opened = AsyncActionStream._create(
            self._governor,
            request,
            connector.stream,
            self._streams.discard,
            asynchronous=is_async_connector(type(connector)),
        )
        self._streams.add(opened)
        return opened

    async def close(self, pending: BaseException | None = None) -> RevokeResult | None:
        """Revoke the token (if any) and close, shielded from a second cancellation."""
        governor = self._governor
        if governor.state is SessionState.CLOSED:
            return None
        for stream in list(self._streams):
            with contextlib.suppress(Exception):  # audited by the stream itself
                await stream.aclose()
        token, governor.token = governor.token, None
        result: RevokeResult | None = None
        try:
            if token is not None:
                result = await asyncio.shield(self._step("revoke", self.connector.revoke, token))
        except Exception as error:
            self.revoke_error = error
            if pending is None:
                raise
            pending.add_note(_revoke_failure_note(error))
        finally:
            governor.closed(pending)
        return result

    async def __aenter__(self) -> AsyncSession:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close(exc)
