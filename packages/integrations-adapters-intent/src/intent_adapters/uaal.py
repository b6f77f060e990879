"""Deprecated: the legacy alignment check, kept working on the ``intent.engine`` connector.

Replacement: a governed session on ``intent.engine`` (or ``intent.local``) and
`verify_intent` / `intent_aligned` from ``integrations.adapters.intent_adapters``::

    from integrations.adapters.intent_adapters import verify_intent
    from integrations.base import AuthContext, registry

    context = AuthContext(tenant="acme", actor="alice")
    with registry.open("intent.engine", config={"url": url}, context=context) as session:
        allowed = verify_intent(session, "AI governance", threshold=1.2).allowed

What still works, unchanged for its callers:

- ``INTENT_ENGINE_URL``: the engine's base URL, read from the ``INTENT_ENGINE_URL``
  environment variable when the module is imported (default ``http://127.0.0.1:8000``).
  Assigning the module attribute redirects later calls, as before.
- ``INTENT_THRESHOLD = 1.2``: the best score a topic needs; assigning it changes later calls.
- ``intent_alignment_required(topic)``: whether the topic's best intent score reaches the
  threshold, now asked through a governed ``intent.engine`` session (audited, under the
  default registry's governance, as tenant `LEGACY_TENANT` and actor `INTENT_ENGINE_ACTOR`:
  the ``INTENT_ENGINE_ACTOR`` environment variable read at import, default ``legacy``), with
  the legacy timeout of `TIMEOUT_SECONDS` per request. Topics now match case-insensitively,
  and failures raise the framework's errors (``ConnectionFailed`` when the engine cannot be
  reached, ...) instead of the HTTP client's. The ``engine`` extra must be installed.

Reading ``INTENT_ENGINE_URL`` or ``INTENT_THRESHOLD`` and calling
``intent_alignment_required`` emit a `DeprecationWarning` naming the replacement.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final

from integrations.adapters.intent_adapters import DEFAULT_THRESHOLD, verify_intent
from integrations.base import AuthContext, registry

from ._warning import deprecated

__all__ = [
    "INTENT_ENGINE_ACTOR",
    "INTENT_ENGINE_URL",
    "INTENT_THRESHOLD",
    "LEGACY_TENANT",
    "TIMEOUT_SECONDS",
    "intent_alignment_required",
]

ENGINE: Final = "intent.engine"
DEFAULT_URL: Final = "http://127.0.0.1:8000"

INTENT_ENGINE_ACTOR: Final = os.environ.get("INTENT_ENGINE_ACTOR") or "legacy"
"""The actor of the sessions `intent_alignment_required` opens (the legacy call took none)."""

LEGACY_TENANT: Final = "legacy"
"""The tenant of those sessions."""

TIMEOUT_SECONDS: Final = 2.0
"""Seconds each request to the engine may take, as in the legacy module."""

_URL_FROM_ENVIRONMENT: Final = os.environ.get("INTENT_ENGINE_URL") or DEFAULT_URL

_URL_REPLACEMENT: Final = (
    "configure the 'intent.engine' connector instead (IntentEngineConfig(url=...) from "
    "integrations.adapters.intent_adapters.engine)"
)
_THRESHOLD_REPLACEMENT: Final = (
    "pass the threshold to verify_intent(session, topic, threshold=...) from "
    "integrations.adapters.intent_adapters (DEFAULT_THRESHOLD is 1.2)"
)
_CHECK_REPLACEMENT: Final = (
    "open the 'intent.engine' connector with registry.open(...) and call "
    "verify_intent(session, topic, threshold=...) from integrations.adapters.intent_adapters"
)

if TYPE_CHECKING:
    INTENT_ENGINE_URL: str
    INTENT_THRESHOLD: float


def __getattr__(name: str) -> str | float:
    """The deprecated constants, with their warnings (PEP 562: asked only when not assigned)."""
    if name == "INTENT_ENGINE_URL":
        deprecated("uaal.INTENT_ENGINE_URL", _URL_REPLACEMENT)
        return _URL_FROM_ENVIRONMENT
    if name == "INTENT_THRESHOLD":
        deprecated("uaal.INTENT_THRESHOLD", _THRESHOLD_REPLACEMENT)
        return DEFAULT_THRESHOLD
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def intent_alignment_required(topic: str) -> bool:
    """Deprecated: whether `topic`'s intent reaches ``INTENT_THRESHOLD`` (see the module)."""
    deprecated("uaal.intent_alignment_required", _CHECK_REPLACEMENT)
    url = globals().get("INTENT_ENGINE_URL", _URL_FROM_ENVIRONMENT)
    threshold = float(globals().get("INTENT_THRESHOLD", DEFAULT_THRESHOLD))
    config = {"url": url, "timeout_seconds": TIMEOUT_SECONDS}
    context = AuthContext(tenant=LEGACY_TENANT, actor=INTENT_ENGINE_ACTOR)
    with registry.open(ENGINE, config=config, context=context) as session:
        return verify_intent(session, topic, threshold).allowed
