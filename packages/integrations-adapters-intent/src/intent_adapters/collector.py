"""Deprecated: the legacy collector, now concurrent and running on the new one.

Replacement: ``integrations.adapters.intent_adapters.collect(sources, context=...)``, which
reads every source in a governed session with its own deadline and returns a typed report
(the signals, how each source did, the rejected signals), and can push what it collected.

``collect_signals(adapters)`` still returns one flat list of signal dicts, the adapters'
order then each adapter's order, as before; the adapters now run at the same time. Each dict
is the validated signal (``created_at`` a timezone-aware datetime; unknown fields kept). What
changed, because the new collector never lets one source cost the others:

- an adapter that raises, or does not answer within `DEADLINE_SECONDS`, no longer makes the
  call fail: its signals are missing and a warning is logged (logger
  ``intent_adapters.collector``) with the adapter, the error and the time;
- invalid signals and exact duplicates are left out (also logged).

The sessions run as tenant `LEGACY_TENANT`, actor `LEGACY_ACTOR` (the ``INTENT_ADAPTERS_ACTOR``
environment variable read at import, default ``legacy``), under the default registry's
governance: they are audited like any other. Calling ``collect_signals`` emits a
`DeprecationWarning` naming the replacement.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any, Final

from integrations.adapters.intent_adapters import CollectReport, collect
from integrations.base import AuthContext

from ._warning import deprecated
from .base import SignalAdapter

__all__ = ["DEADLINE_SECONDS", "LEGACY_ACTOR", "LEGACY_TENANT", "collect_signals"]

logger = logging.getLogger(__name__)

DEADLINE_SECONDS: Final = 60.0
"""How long each adapter may take; the legacy collector waited for ever."""

LEGACY_TENANT: Final = "legacy"
"""The tenant of the sessions `collect_signals` opens (the legacy function took none)."""

LEGACY_ACTOR: Final = os.environ.get("INTENT_ADAPTERS_ACTOR") or "legacy"
"""The actor of those sessions (``INTENT_ADAPTERS_ACTOR``, read at import)."""

REPLACEMENT: Final = (
    "use integrations.adapters.intent_adapters.collect(sources, context=...), which reports "
    "failed sources and rejected signals"
)


def collect_signals(adapters: Iterable[SignalAdapter]) -> list[dict[str, Any]]:
    """Deprecated: every adapter's signals, in order, collected concurrently (see the module)."""
    deprecated("collector.collect_signals", REPLACEMENT)
    context = AuthContext(tenant=LEGACY_TENANT, actor=LEGACY_ACTOR)
    report = collect(list(adapters), context=context, deadline_seconds=DEADLINE_SECONDS)
    _log(report)
    return [item.signal.model_dump() for item in report.signals]


def _log(report: CollectReport) -> None:
    for source in report.failed:
        logger.warning(
            "adapter %s %s after %.3f s (%s: %s); its signals are missing",
            source.source,
            source.status.value,
            source.elapsed_seconds,
            source.error_type,
            source.error,
        )
    for rejection in report.rejections:
        logger.warning(
            "adapter %s: signal %d left out: %s",
            rejection.source,
            rejection.index,
            rejection.reason,
        )
    if report.duplicates:
        logger.warning("%d duplicate signals left out", report.duplicates)
