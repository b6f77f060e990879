"""The certification of ``vault.openai``: what `integrations certify vault.openai` runs.

The connector offers named actions only (``model_invoke`` and ``tool_call``), no fetch, push
or sync: those are declared unsupported and must raise `NotSupported`. The actions' quorum
policies (``AI_SENSITIVE``, ``AI_TOOL``) are defined in the governance the checks run under,
and the checks' context carries two approvers, so every action may run; the API key is
whatever the config gives (a test server's key as a ``literal:`` reference, say).
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Final

from integrations.base import (
    AuthContext,
    Capability,
    Governance,
    MemoryAuditSink,
    PolicySet,
    QuorumRequired,
    TenantAndActorRequired,
)
from integrations.base.testing import ConnectorCertification

__all__ = ["CERTIFICATION_QUORUM_POLICIES", "OpenAICertification"]

CERTIFICATION_QUORUM_POLICIES: Final = {"AI_SENSITIVE": 2, "AI_TOOL": 1}
"""The quorum policies the checks' governance defines for the manifest's policy names."""


class OpenAICertification(ConnectorCertification):
    """``vault.openai``: named actions only; quorum policies defined, two approvers given.

    Its ``url`` and ``api_key`` come from ``--config``; a test module gives it a running
    OpenAI-compatible server (see ``tests/test_openai_certification.py`` and `OpenAIServer`).
    """

    registry_name = "vault.openai"
    unsupported: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.FETCH, Capability.PUSH, Capability.SYNC}
    )

    @classmethod
    def configuration_problem(cls) -> str | None:
        return "pass --config with the OpenAI-compatible API's url and api_key"

    def context(self) -> AuthContext:
        """A fresh tenant per check, with the two approvers the actions' quorum asks for."""
        return AuthContext(
            tenant=f"certification-{uuid.uuid4().hex[:12]}",
            actor="certification",
            attributes={"approvals": ["approver-1", "approver-2"]},
        )

    def governance(self) -> Governance:
        """The default policies, with the manifest's quorum policies defined."""
        return Governance(
            policies=PolicySet(
                [TenantAndActorRequired(), QuorumRequired(CERTIFICATION_QUORUM_POLICIES)]
            ),
            audit=MemoryAuditSink(),
        )

    def action_inputs(self) -> dict[str, dict[str, Any]]:
        """A valid input for each action."""
        messages = [{"role": "user", "content": "certification"}]
        tool = {"type": "function", "function": {"name": "certify", "parameters": {}}}
        return {
            "model_invoke": {"model": "gpt-4o-mini", "messages": messages},
            "tool_call": {"model": "gpt-4o-mini", "messages": messages, "tools": [tool]},
        }
