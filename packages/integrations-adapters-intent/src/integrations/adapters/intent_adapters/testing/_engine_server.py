"""An Intent Engine HTTP API on 127.0.0.1, served from memory, for tests and local work.

The server speaks the API the ``intent.engine`` connector calls, quirks included:

- ``GET /health`` answers ``{"status": "ok"}``;
- ``POST /inject-intent`` with a signal as JSON stores the body as sent, adds ``id`` (a new
  uuid4, replacing any id the body carried) and, when the body has none, ``created_at`` (the
  server's clock, RFC 3339 in UTC), and answers ``{"id": <id>}``. A body's own
  ``created_at`` is kept: it says when the signal was observed, and the score decays from
  then. Injecting the same body twice stores two intents: the server assigns the ids;
- ``GET /ranked/intents`` answers a JSON array of every stored intent with its
  ``intent_score`` (`score_data` at the server's clock), highest first, intents of equal
  score in the order they were stored: the whole list, no paging;
- ``GET /why-this?intent_id=<id>`` answers ``{"intent_id", "intent_score", "explanation":
  [{"signal", "value"}, ...]}`` (the factors of `explain`); for an unknown id it answers
  **status 200** with ``{"error": "intent not found"}``;
- ``POST /verify-intent`` with ``{"topic"}`` answers ``{"allowed", "reason",
  "intent_score"?}``: the topic's best score (topics compared case-insensitively, as the
  connectors filter them) against the engine's fixed threshold, 1.2 (`DEFAULT_THRESHOLD`);
  ``intent_score`` only when the topic has intents;
- a body the server cannot parse (not JSON, not an object, not a valid signal by
  `parse_signal`, a verify body without a topic) and a why-this without ``intent_id``
  answer 422 with ``{"detail": [{"loc", "msg", "type"}]}``, the shape FastAPI gives.

The machinery is the shared `LoopbackHTTPServer` (this class only declares the routes): the
latency and fault controls (`latency`, `fail_next`, `delay_next`, `drop_next`), the request
log and counters (`requests`, `seen`, `count`), an optional bearer token (`api_key`) and a
clean stop. The server's clock is settable (`clock`, or `freeze` to stop it at a moment), so
that a test can let time pass for the scores without waiting. `intents` lists what is
stored; `store` adds an intent without validation, as another client of a real engine might.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from integrations.adapters.intent_adapters._intent import (
    Intent,
    IntentQuery,
    verification_from,
)
from integrations.adapters.intent_adapters._scoring import DEFAULT_THRESHOLD, explain, score_data
from integrations.adapters.intent_adapters._signal import parse_signal
from integrations.base import InvalidRequest, format_utc
from integrations.base.testing import HTTPReply, HTTPRequest, InvalidBody, LoopbackHTTPServer

__all__ = ["IntentEngineServer"]

NOT_FOUND: Final = {"error": "intent not found"}
"""What ``/why-this`` answers, with status 200, for an id it does not know."""

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class IntentEngineServer(LoopbackHTTPServer):
    """The Intent Engine's endpoints served from memory; see the module.

    Use it with ``with``; `url` is the base URL to give the connector.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency: float = 0.0,
        clock: Clock | None = None,
    ) -> None:
        """A stopped server with no intents; with `api_key`, requests must present it."""
        super().__init__(bearer_token=api_key, latency=latency, name="intent-engine")
        self.clock: Clock = clock or _utc_now
        """The server's time: scores, explanations and added ``created_at`` are computed at it."""
        self._store_lock = threading.Lock()
        self._intents: list[dict[str, Any]] = []
        self.route("GET", "/health", lambda _: HTTPReply(body={"status": "ok"}))
        self.route("POST", "/inject-intent", self._inject)
        self.route("GET", "/ranked/intents", self._ranked)
        self.route("GET", "/why-this", self._why_this)
        self.route("POST", "/verify-intent", self._verify)

    # -- the API, also callable directly -------------------------------------------------

    def store(self, data: Mapping[str, Any]) -> str:
        """Store `data` as ``/inject-intent`` would, without validating it; return its id."""
        intent = dict(data)
        intent["id"] = str(uuid.uuid4())
        intent.setdefault("created_at", format_utc(self.clock()))
        with self._store_lock:
            self._intents.append(intent)
        return str(intent["id"])

    def intents(self) -> list[dict[str, Any]]:
        """Every stored intent as stored (no score), oldest first."""
        with self._store_lock:
            return [dict(intent) for intent in self._intents]

    def ranked(self) -> list[dict[str, Any]]:
        """What ``GET /ranked/intents`` answers now: every intent with its score, best first."""
        now = self.clock()
        scored = [
            {**intent, "intent_score": score_data(intent, now=now)} for intent in self.intents()
        ]
        return sorted(scored, key=lambda intent: -float(intent["intent_score"]))

    def freeze(self, moment: datetime) -> None:
        """Stop the server's clock at `moment` (timezone-aware) until it is set again."""
        if moment.tzinfo is None:
            raise ValueError("the server's clock keeps timezone-aware moments")
        self.clock = lambda: moment

    # -- routes --------------------------------------------------------------------------

    def _inject(self, request: HTTPRequest) -> HTTPReply:
        try:
            body = request.json_object()
            parse_signal(body)
        except InvalidRequest as error:  # InvalidBody too
            return _unprocessable(str(error))
        return HTTPReply(body={"id": self.store(body)})

    def _ranked(self, request: HTTPRequest) -> HTTPReply:
        return HTTPReply(body=self.ranked())

    def _why_this(self, request: HTTPRequest) -> HTTPReply:
        values = request.query.get("intent_id")
        if not values:
            return _unprocessable("Field required", location=("query", "intent_id"))
        found = next((i for i in self.intents() if i.get("id") == values[0]), None)
        if found is None:
            return HTTPReply(body=NOT_FOUND)
        now = self.clock()
        factors = _factors(found, now)
        body = {"intent_id": values[0], "intent_score": score_data(found, now=now)}
        return HTTPReply(body={**body, "explanation": factors})

    def _verify(self, request: HTTPRequest) -> HTTPReply:
        try:
            topic = request.json_object().get("topic")
        except InvalidBody as error:
            return _unprocessable(str(error))
        if not isinstance(topic, str) or not topic.strip():
            return _unprocessable("topic must be a non-empty string", location=("body", "topic"))
        query = IntentQuery(verify=topic, threshold=DEFAULT_THRESHOLD)
        verification = verification_from(self._valid_intents(), query, self.clock())
        answer = verification.model_dump(mode="json", exclude={"topic"}, exclude_none=True)
        return HTTPReply(body=answer)

    def _valid_intents(self) -> list[Intent]:
        intents = []
        for stored in self.intents():
            try:
                intents.append(Intent.from_json(str(stored.get("id")), stored))
            except InvalidRequest:
                continue  # a body stored without validation scores nothing
        return intents


def _factors(stored: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The explanation of a stored intent; none for one that is not a signal (it scores 0)."""
    try:
        signal = Intent.from_json("", dict(stored)).signal
    except InvalidRequest:
        return []
    return [{"signal": name, "value": value} for name, value in explain(signal, now=now)]


def _unprocessable(message: str, *, location: tuple[str, ...] = ("body",)) -> HTTPReply:
    """A 422 as FastAPI answers it: ``{"detail": [{"loc", "msg", "type"}]}``."""
    detail = [{"loc": list(location), "msg": message, "type": "value_error"}]
    return HTTPReply(422, {"detail": detail})
