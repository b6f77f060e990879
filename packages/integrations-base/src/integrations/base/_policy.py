"""Policies: checks a session runs before authenticating and before every operation.

A policy looks at who is calling (the auth context), which connector and what operation,
and allows or denies with a reason. Policies in a `PolicySet` run in order and the first
denial wins; a denial raises `PolicyError` and is audited with outcome "denied".
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import ClassVar, Final, Protocol, runtime_checkable

from ._audit import ConnectorMeta
from ._manifest import ConnectorEntry
from ._models import AuthContext

__all__ = [
    "ALLOW",
    "CapabilityAllowlist",
    "Decision",
    "Policy",
    "PolicyRequest",
    "PolicySet",
    "QuorumRequired",
    "TenantAndActorRequired",
    "approvers",
]

APPROVALS_ATTRIBUTE: Final = "approvals"
"""Context attribute holding approval records: a list of approver ids or ``{"approver": id}``."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow, or deny with a machine-readable code and a reason for people."""

    allowed: bool
    code: str = ""
    reason: str = ""


ALLOW: Final = Decision(True)


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """What a policy decides on."""

    context: AuthContext
    connector: ConnectorMeta
    entry: ConnectorEntry | None
    operation: str


@runtime_checkable
class Policy(Protocol):
    """Decides whether an operation may run.

    A policy may set a class attribute ``pure = True`` to say that its decision depends on
    the request alone; a session then evaluates a `PolicySet` of pure policies once per
    operation and reuses the decision (every denial is still raised and audited).
    """

    def evaluate(self, request: PolicyRequest) -> Decision:
        """Allow or deny `request`."""
        ...


class TenantAndActorRequired:
    """Every step needs a tenant and an actor (codes TENANT_REQUIRED, ACTOR_REQUIRED)."""

    pure: ClassVar[bool] = True

    def __init__(self, *, tenant: bool = True, actor: bool = True) -> None:
        """Require a tenant and/or an actor in the auth context."""
        self.tenant = tenant
        self.actor = actor

    def evaluate(self, request: PolicyRequest) -> Decision:
        """Deny when the context lacks a required tenant or actor."""
        if self.tenant and not request.context.tenant:
            return Decision(False, "TENANT_REQUIRED", "the auth context names no tenant")
        if self.actor and not request.context.actor:
            return Decision(False, "ACTOR_REQUIRED", "the auth context names no actor")
        return ALLOW


class CapabilityAllowlist:
    """Per tenant, the ``connector:operation`` patterns allowed (shell-style wildcards).

    The key ``"*"`` applies to every tenant. Lifecycle steps (auth, connect, revoke) are
    always allowed; the list governs the data operations.
    """

    LIFECYCLE: Final = frozenset({"auth", "connect", "revoke"})
    pure: ClassVar[bool] = True

    def __init__(self, allowed: Mapping[str, Collection[str]]) -> None:
        """Allow, for each tenant, the operations matching its patterns."""
        self.allowed = {tenant: tuple(patterns) for tenant, patterns in allowed.items()}

    def evaluate(self, request: PolicyRequest) -> Decision:
        """Deny a data operation no pattern of the tenant (or of ``*``) allows."""
        if request.operation in self.LIFECYCLE:
            return ALLOW
        target = f"{request.connector.name}:{request.operation}"
        patterns = (*self.allowed.get(request.context.tenant or "", ()), *self.allowed.get("*", ()))
        if any(fnmatchcase(target, pattern) for pattern in patterns):
            return ALLOW
        tenant = request.context.tenant or "<none>"
        return Decision(False, "CAPABILITY_NOT_ALLOWED", f"{target} is not allowed for {tenant}")


def approvers(context: AuthContext) -> frozenset[str]:
    """The distinct approvers recorded in the context's ``approvals`` attribute."""
    records = context.attributes.get(APPROVALS_ATTRIBUTE)
    if not isinstance(records, list):
        return frozenset()
    names: set[str] = set()
    for record in records:
        name = record.get("approver") if isinstance(record, dict) else record
        if isinstance(name, str) and name:
            names.add(name)
    return frozenset(names)


class QuorumRequired:
    """Operations and actions the manifest marks with a quorum need that many approvers.

    The requesting actor does not count towards the quorum (code QUORUM_REQUIRED). A named
    action may give its quorum as a policy name (``"AI_SENSITIVE"``), looked up in
    `policies` (governance settings' ``quorum_policies``); a name that is not defined there
    fails closed with code QUORUM_POLICY_UNKNOWN naming it. When a quorum is met the
    decision allows with code QUORUM_MET and names the approvers, which the session writes
    into the operation's audit events.
    """

    pure: ClassVar[bool] = True

    def __init__(self, policies: Mapping[str, int] | None = None) -> None:
        """Resolve quorum policy names with `policies` (name → approvers needed)."""
        self.policies: Mapping[str, int] = dict(policies or {})

    def evaluate(self, request: PolicyRequest) -> Decision:
        """Deny when fewer distinct approvers than the manifest's quorum are recorded."""
        if request.entry is None or request.operation in CapabilityAllowlist.LIFECYCLE:
            return ALLOW
        quorum = self._quorum(request.entry, request.operation)
        if isinstance(quorum, str):
            if quorum not in self.policies:
                return Decision(
                    False,
                    "QUORUM_POLICY_UNKNOWN",
                    f"{request.operation} names quorum policy {quorum!r}, "
                    "which the governance settings do not define",
                )
            quorum = self.policies[quorum]
        if quorum == 0:
            return ALLOW
        found = approvers(request.context) - {request.context.actor or ""}
        if len(found) >= quorum:
            return Decision(True, "QUORUM_MET", "approved by " + ",".join(sorted(found)))
        return Decision(
            False,
            "QUORUM_REQUIRED",
            f"{request.operation} needs {quorum} approvers, the context has {len(found)}",
        )

    @staticmethod
    def _quorum(entry: ConnectorEntry, operation: str) -> int | str:
        """The quorum the manifest sets for `operation` (a count or a policy name)."""
        spec = next((c for c in entry.capabilities if c.action.value == operation), None)
        if spec is not None:
            return spec.quorum
        action = entry.action(operation) if entry.actions else None
        return action.quorum if action is not None else 0


class PolicySet:
    """Policies evaluated in order; the first denial wins."""

    def __init__(self, policies: Iterable[Policy] = ()) -> None:
        """Evaluate `policies` in the order given."""
        self.policies = tuple(policies)
        self.pure = all(getattr(policy, "pure", False) is True for policy in self.policies)
        """Whether every policy is pure, so a decision may be reused for the same request."""

    def evaluate(self, request: PolicyRequest) -> Decision:
        """The first denial; else the last allowing decision with a code (such as
        QUORUM_MET, whose approvers the audit records), or `ALLOW`."""
        noted = ALLOW
        for policy in self.policies:
            decision = policy.evaluate(request)
            if not decision.allowed:
                return decision
            if decision.code:
                noted = decision
        return noted
