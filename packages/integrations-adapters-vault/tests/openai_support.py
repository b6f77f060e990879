"""What the ``vault.openai`` tests share: the canary key, contexts, governance, inputs."""

from __future__ import annotations

from typing import Any, Final

from integrations.base import (
    AuditSink,
    AuthContext,
    Governance,
    MemoryAuditSink,
    PolicySet,
    QuorumRequired,
    RetryPolicy,
    TenantAndActorRequired,
)

CONNECTOR: Final = "vault.openai"
KEY_VARIABLE: Final = "PV_OPENAI_API_KEY"
KEY: Final = "sk-canary-7f3a9c1e5b2d4f60a8e1"
"""The API key of every test: a canary that must never show outside the request header."""

QUORUM_POLICIES: Final = {"AI_SENSITIVE": 2, "AI_TOOL": 1}
APPROVED: Final = AuthContext(
    tenant="acme", actor="alice", attributes={"approvals": ["bob", "carol"]}
)
"""Alice, with the two approvers ``model_invoke`` needs."""
UNAPPROVED: Final = AuthContext(tenant="acme", actor="alice")

QUICK: Final = RetryPolicy(max_attempts=3, initial_backoff=0.01, jitter=0, deadline=20)
"""Three attempts with short waits (the default's attempts, a test's patience)."""


def governance(audit: AuditSink | None = None, *, retry: RetryPolicy = QUICK) -> Governance:
    """The default policies with the quorum policies defined, and quick retries."""
    return Governance(
        policies=PolicySet([TenantAndActorRequired(), QuorumRequired(QUORUM_POLICIES)]),
        audit=audit if audit is not None else MemoryAuditSink(),
        retry=retry,
    )


def chat(text: str, **more: Any) -> dict[str, Any]:
    """A ``model_invoke`` input: one user message."""
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **more}


LOOKUP_TOOL: Final = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by its number.",
        "parameters": {"type": "object", "properties": {"input": {"type": "string"}}},
    },
}


def tool_input(text: str, **more: Any) -> dict[str, Any]:
    """A ``tool_call`` input offering `LOOKUP_TOOL`."""
    return {**chat(text), "tools": [LOOKUP_TOOL], **more}
