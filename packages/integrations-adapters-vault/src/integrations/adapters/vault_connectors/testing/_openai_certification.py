"""The certification of ``vault.openai``: what `integrations certify vault.openai` runs.

The connector offers named actions only (``model_invoke`` and ``tool_call``), no fetch, push
or sync: those are declared unsupported and must raise `NotSupported`. The kit's action
checks get a valid and an invalid input per action (`action_samples`) and the quorum
policies the manifest names (`quorum_policies`, as an operator would define them); the API
key is whatever the config gives (a test server's key as a ``literal:`` reference, say).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Final

from integrations.base import Capability
from integrations.base.testing import ConnectorCertification

__all__ = ["CERTIFICATION_QUORUM_POLICIES", "OpenAICertification"]

CERTIFICATION_QUORUM_POLICIES: Final = {"AI_SENSITIVE": 2, "AI_TOOL": 1}
"""The quorum policies the checks' governance defines for the manifest's policy names."""

_MESSAGES: Final = [{"role": "user", "content": "certification"}]
_TOOL: Final = {"type": "function", "function": {"name": "certify", "parameters": {}}}


class OpenAICertification(ConnectorCertification):
    """``vault.openai``: named actions only, with the manifest's quorum policies defined.

    Its ``url`` and ``api_key`` come from ``--config``; a test module gives it a running
    OpenAI-compatible server (see ``tests/test_openai_certification.py`` and `OpenAIServer`).
    """

    registry_name = "vault.openai"
    unsupported: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.FETCH, Capability.PUSH, Capability.SYNC}
    )
    quorum_policies: ClassVar[Mapping[str, int]] = CERTIFICATION_QUORUM_POLICIES
    action_samples: ClassVar[Mapping[str, tuple[dict[str, Any], dict[str, Any]]]] = {
        "model_invoke": (
            {"model": "gpt-4o-mini", "messages": _MESSAGES, "max_tokens": 8},
            {"model": "gpt-4o-mini", "messages": "not a list"},
        ),
        "tool_call": (
            {"model": "gpt-4o-mini", "messages": _MESSAGES, "tools": [_TOOL]},
            {"model": "gpt-4o-mini", "messages": _MESSAGES},  # no tools
        ),
    }

    @classmethod
    def configuration_problem(cls) -> str | None:
        return "pass --config with the OpenAI-compatible API's url and api_key"
