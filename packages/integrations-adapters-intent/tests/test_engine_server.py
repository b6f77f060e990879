"""The Intent Engine test server speaks the engine's API exactly, quirks included.

The connector's tests rely on it, so it is checked here on its own, with a plain HTTP
client: every endpoint, the 200 answer for an unknown id, FastAPI's 422 shape, the fixed
verification threshold, the settable clock, and the shared server's controls.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from integrations.adapters.intent_adapters import DEFAULT_THRESHOLD, explain, parse_signal, score
from integrations.adapters.intent_adapters.testing import IntentEngineServer
from integrations.base import format_utc

pytestmark = pytest.mark.timeout(30)

NOW = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine() -> Iterator[IntentEngineServer]:
    with IntentEngineServer(clock=lambda: NOW) as server:
        yield server


@pytest.fixture
def client(engine: IntentEngineServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=engine.url, timeout=5) as opened:
        yield opened


def signal(topic: str = "AI governance", **fields: Any) -> dict[str, Any]:
    return {
        "source": "social",
        "topic": topic,
        "momentum": "rising",
        "confidence": 0.8,
        "authenticity": {"human_source_pct": 85},
        "streak_days": 5,
        **fields,
    }


def inject(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/inject-intent", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"id"}
    assert str(uuid.UUID(answer["id"])) == answer["id"]
    return str(answer["id"])


def test_health(client: httpx.Client) -> None:
    response = client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_inject_stores_the_body_as_sent_with_an_id_and_a_date(
    client: httpx.Client, engine: IntentEngineServer
) -> None:
    undated = inject(client, signal(extra={"kept": [1, 2]}))
    observed = format_utc(NOW - timedelta(hours=2))
    dated = inject(client, signal(created_at=observed, id="mine"))
    assert engine.intents() == [
        {**signal(extra={"kept": [1, 2]}), "id": undated, "created_at": format_utc(NOW)},
        {**signal(created_at=observed), "id": dated},
    ]
    assert dated != "mine"


def test_the_same_body_twice_is_two_intents(
    client: httpx.Client, engine: IntentEngineServer
) -> None:
    first, second = inject(client, signal()), inject(client, signal())
    assert first != second
    assert len(engine.intents()) == 2


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", "not JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'{"topic": "x"}', "source"),
        (
            b'{"source": "s", "topic": "t", "momentum": "rising", "confidence": NaN, '
            b'"authenticity": {"human_source_pct": 5}, "streak_days": 1}',
            "finite",
        ),
    ],
)
def test_a_body_the_engine_cannot_parse_is_422_with_a_detail(
    client: httpx.Client, engine: IntentEngineServer, content: bytes, field: str
) -> None:
    response = client.post(
        "/inject-intent", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body"]
    assert field in problem["msg"]
    assert engine.intents() == []


def test_ranked_intents_are_every_intent_scored_best_first(
    client: httpx.Client, engine: IntentEngineServer
) -> None:
    weak = inject(client, signal(confidence=0.2))
    strong = inject(client, signal(momentum="surging", confidence=1.0))
    tie = inject(client, signal(confidence=0.2))
    old = inject(client, signal(confidence=1.0, created_at=format_utc(NOW - timedelta(days=3))))
    broken = engine.store({"topic": "no signal"})
    ranked = client.get("/ranked/intents").json()
    assert [item["id"] for item in ranked] == [strong, weak, tie, old, broken]
    expected = score(
        parse_signal(signal(momentum="surging", confidence=1.0, created_at=NOW)), now=NOW
    )
    assert ranked[0]["intent_score"] == expected
    assert ranked[-1]["intent_score"] == 0
    assert {key for key in ranked[0] if key not in signal()} == {"id", "created_at", "intent_score"}


def test_scores_follow_the_server_clock(engine: IntentEngineServer, client: httpx.Client) -> None:
    inject(client, signal(confidence=1.0))
    parsed = parse_signal(signal(confidence=1.0, created_at=NOW))
    assert client.get("/ranked/intents").json()[0]["intent_score"] == score(parsed, now=NOW)
    engine.freeze(NOW + timedelta(hours=24))
    later = client.get("/ranked/intents").json()[0]["intent_score"]
    assert later == score(parsed, now=NOW + timedelta(hours=24))
    assert math.isclose(later, score(parsed, now=NOW) / math.e, abs_tol=0.001)
    with pytest.raises(ValueError, match="timezone-aware"):
        engine.freeze(datetime(2025, 1, 1))


def test_why_this_explains_the_score(client: httpx.Client) -> None:
    body = signal(created_at=format_utc(NOW - timedelta(hours=6)))
    intent_id = inject(client, body)
    answer = client.get("/why-this", params={"intent_id": intent_id}).json()
    parsed = parse_signal(body)
    assert answer == {
        "intent_id": intent_id,
        "intent_score": score(parsed, now=NOW),
        "explanation": [
            {"signal": name, "value": value} for name, value in explain(parsed, now=NOW)
        ],
    }


def test_why_this_answers_an_unknown_id_with_200_and_an_error(client: httpx.Client) -> None:
    response = client.get("/why-this", params={"intent_id": "no-such-intent"})
    assert (response.status_code, response.json()) == (200, {"error": "intent not found"})
    missing = client.get("/why-this")
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["query", "intent_id"]


def test_verify_compares_the_best_score_with_the_fixed_threshold(client: httpx.Client) -> None:
    # 1.3 x 1.0 x 0.9 x (1 + 0.3) = 1.521 and 1.1 x 1.0 x 0.8 x 1.3 = 1.144: either side of 1.2
    inject(
        client,
        signal(
            "Strong",
            momentum="surging",
            confidence=1.0,
            authenticity={"human_source_pct": 90},
            streak_days=9,
        ),
    )
    inject(
        client,
        signal("weak", confidence=1.0, authenticity={"human_source_pct": 80}, streak_days=30),
    )
    inject(client, signal("strong", confidence=0.1))
    strong = client.post("/verify-intent", json={"topic": "STRONG"}).json()
    weak = client.post("/verify-intent", json={"topic": "weak"}).json()
    absent = client.post("/verify-intent", json={"topic": "nobody"}).json()
    assert strong["allowed"] is True
    assert strong["intent_score"] == 1.521
    assert weak["allowed"] is False
    assert weak["intent_score"] == 1.144
    assert str(DEFAULT_THRESHOLD) in weak["reason"]
    assert absent == {"allowed": False, "reason": "no intent for this topic"}


@pytest.mark.parametrize("body", [{}, {"topic": ""}, {"topic": 3}, ["topic"]])
def test_verify_needs_a_topic(client: httpx.Client, body: object) -> None:
    response = client.post("/verify-intent", json=body)
    assert response.status_code == 422
    assert "detail" in response.json()


def test_the_api_key_is_required_when_set() -> None:
    with IntentEngineServer(api_key="k3y") as guarded, httpx.Client(base_url=guarded.url) as client:
        assert client.get("/health").status_code == 401
        authorized = client.get("/health", headers={"Authorization": "Bearer k3y"})
        assert authorized.status_code == 200


def test_the_shared_controls_and_counters(engine: IntentEngineServer, client: httpx.Client) -> None:
    engine.fail_next(status=503, path="/ranked/intents", retry_after=2)
    failed = client.get("/ranked/intents")
    assert (failed.status_code, failed.headers["Retry-After"]) == (503, "2")
    assert client.get("/ranked/intents").json() == []
    assert client.get("/inject-intent").status_code == 405
    assert client.get("/nowhere").status_code == 404
    assert engine.count("/ranked/intents") == 2
    assert engine.count() == 4
    engine.delay_next(1.0, path="/health")
    with pytest.raises(httpx.ReadTimeout):
        client.get("/health", timeout=0.05)
