"""Deprecated: the legacy risk score, which can no longer work.

``get_risk_score(action, context)`` called ``evaluate_risk`` from the ``aifoundary``
package, which current releases of that package no longer provide. The name is kept so that
importing it still works, but calling it raises `NotSupported` saying so (after a
`DeprecationWarning`). integrations does not depend on ``aifoundary`` and has no
replacement: score the action's risk in your own code, or remove the call.
"""

from __future__ import annotations

from typing import Any, Final, NoReturn

from integrations.base import NotSupported

from ._warning import deprecated

__all__ = ["get_risk_score"]

REASON: Final = (
    "intent_adapters.foundary.get_risk_score() cannot score risk: it called evaluate_risk() "
    "from the aifoundary package, and current releases of aifoundary no longer provide "
    "evaluate_risk. integrations does not depend on aifoundary and has no replacement: score "
    "the action's risk in your own code, or remove the call"
)


def get_risk_score(action: str, context: dict[str, Any]) -> NoReturn:
    """Deprecated: always raises `NotSupported` with the reason (see the module)."""
    deprecated("foundary.get_risk_score", "it has no replacement and always fails (see why)")
    raise NotSupported(REASON)
