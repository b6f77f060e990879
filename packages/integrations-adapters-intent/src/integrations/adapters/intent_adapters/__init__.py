"""Intent connectors of the integrations framework.

Platforms collect intent signals (evidence that people care about a topic now), rank them by
the Intent Engine's score, and allow actions on a topic only when its intent is strong enough:

- ``intent.engine`` (`integrations.adapters.intent_adapters.engine`, extra ``engine``): the
  Intent Engine's HTTP API;
- ``intent.local`` (`...intent_adapters.local`): the embedded default, a SQLite file with the
  same scoring, filters and ranking;
- ``intent.signals`` (`...intent_adapters.signals`): signal sources as fetch-only connectors,
  and the collector that runs them concurrently.

The registry finds them through the `manifest.json` next to this file and imports a
connector's module only when it is used. This module exports what all of them share: the
signal model, the score, stored intents and their queries, and the typed alignment check.
"""

from ._alignment import intent_aligned, intent_aligned_async, verify_intent, verify_intent_async
from ._collect_report import (
    CollectedSignal,
    CollectReport,
    PushReport,
    RejectedSignal,
    SourceReport,
    SourceStatus,
)
from ._collector import collect, collect_async
from ._intent import (
    FILTER_KEYS,
    Intent,
    IntentQuery,
    Verification,
    decode_intent_cursor,
    encode_intent_cursor,
    page_of,
    parse_intent_query,
    verification_from,
    verification_query,
)
from ._scoring import DEFAULT_THRESHOLD, MOMENTUM_WEIGHTS, explain, rank_key, score, score_data
from ._signal import KNOWN_MOMENTUMS, Authenticity, Signal, parse_signal, signal_problem

__all__ = [
    "DEFAULT_THRESHOLD",
    "FILTER_KEYS",
    "KNOWN_MOMENTUMS",
    "MOMENTUM_WEIGHTS",
    "Authenticity",
    "CollectReport",
    "CollectedSignal",
    "Intent",
    "IntentQuery",
    "PushReport",
    "RejectedSignal",
    "Signal",
    "SourceReport",
    "SourceStatus",
    "Verification",
    "collect",
    "collect_async",
    "decode_intent_cursor",
    "encode_intent_cursor",
    "explain",
    "intent_aligned",
    "intent_aligned_async",
    "page_of",
    "parse_intent_query",
    "parse_signal",
    "rank_key",
    "score",
    "score_data",
    "signal_problem",
    "verification_from",
    "verification_query",
    "verify_intent",
    "verify_intent_async",
]
