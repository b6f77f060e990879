"""How the collector reads its sources: each signal validated once, the report unchanged by it,
sources started one after the other, and a cancelled collection cancelling what it started.

Sources are real: loopback HTTP servers and source objects written here.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from integrations.adapters.intent_adapters import Signal, collect, collect_async, parse_signal
from integrations.adapters.intent_adapters.testing import SignalSourceServer
from integrations.base import NO_RETRY, AuthContext, Governance, MemoryAuditSink

pytestmark = pytest.mark.timeout(60)

CONTEXT = AuthContext(tenant="acme", actor="collector")


def signal(topic: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": "test",
        "topic": topic,
        "momentum": "rising",
        "confidence": 0.75,
        "authenticity": {"human_source_pct": 80.0},
        "streak_days": 4,
        "created_at": "2025-03-01T12:00:00Z",
    }
    return {**data, **changes}


@pytest.fixture
def governance() -> Governance:
    return Governance(audit=MemoryAuditSink(), retry=NO_RETRY)


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every signal pydantic validates, in order."""
    seen: list[object] = []
    validate = Signal.model_validate

    def counted(data: object, **options: Any) -> Signal:
        seen.append(data)
        return validate(data, **options)

    monkeypatch.setattr(Signal, "model_validate", counted)
    return seen


def test_each_signal_of_an_http_source_is_validated_once(
    validations: list[object], governance: Governance
) -> None:
    answered = [[signal(f"{server}-{n}") for n in range(20)] for server in range(5)]
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(SignalSourceServer(items)) for items in answered]
        report = collect(
            [server.source() for server in servers], context=CONTEXT, governance=governance
        )
    assert len(report.signals) == 100
    assert len(validations) == 100


class Moments:
    """A sync source answering Python values: datetimes, offsets, tuples, as legacy adapters do."""

    def fetch_signals(self) -> list[dict[str, Any]]:
        return [
            signal("aware", created_at=datetime(2025, 3, 1, 12, tzinfo=UTC)),
            signal("offset", created_at="2025-03-01T14:00:00+02:00"),
            signal("tuple", tags=("a", "b")),
            {key: value for key, value in signal("undated").items() if key != "created_at"},
            signal("plain", region={"name": "EMEA", "weight": 0.5}),
            signal(
                "aware", created_at=datetime(2025, 3, 1, 14, tzinfo=timezone(timedelta(hours=2)))
            ),
        ]


def state(item: Signal) -> tuple[object, ...]:
    return (repr(item), item.model_dump(), item.model_fields_set, item.model_extra)


def test_the_signals_reported_are_those_their_records_read_back_as(
    validations: list[object], governance: Governance
) -> None:
    """Validated once or twice, a signal in the report is the one its JSON reads as: a signal
    the JSON would change (a time zone, a tuple) is read again from its record."""
    with SignalSourceServer([signal("served"), signal("served", extra=[1, 2.5])]) as server:
        report = collect(
            {"objects": Moments(), "http": server.source()},
            context=CONTEXT,
            governance=governance,
        )
    assert [item.signal.topic for item in report.signals] == [
        "aware",
        "offset",
        "tuple",
        "undated",
        "plain",
        "served",
        "served",
    ]
    assert report.duplicates == 1  # 14:00+02:00 is 12:00 UTC: the same signal as the first
    # 8 signals validated as answered, and the 4 (of 7) whose JSON differs validated again
    assert len(validations) == 8 + 4
    for item in report.signals:
        assert state(item.signal) == state(parse_signal(item.to_record().data))
    assert report.signals[0].signal.created_at.tzinfo is not UTC  # read back from its JSON
    assert report.signals[2].signal.extra == {"tags": ["a", "b"]}


def test_cancelling_a_collection_cancels_every_source_it_started(governance: Governance) -> None:
    started: list[str] = []
    cancelled: list[str] = []

    class Hanging:
        def __init__(self, name: str) -> None:
            self.name = name

        async def fetch_signals(self) -> list[dict[str, Any]]:
            started.append(self.name)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(self.name)
                raise
            return []

    async def main() -> None:
        sources = {f"s{n}": Hanging(f"s{n}") for n in range(5)}
        task = asyncio.ensure_future(collect_async(sources, context=CONTEXT, governance=governance))
        for _ in range(200):  # bounded: until every source has started
            if len(started) == 5:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sorted(started) == sorted(cancelled) == [f"s{n}" for n in range(5)]


def test_sources_are_started_in_order_each_asked_before_the_next_opens() -> None:
    """A source is asked as soon as its own session is open, not after every session opened."""
    audit = MemoryAuditSink()
    asked: list[tuple[str, int]] = []

    def sessions_opened() -> int:
        return sum(
            1 for event in audit.events if event.operation == "auth" and event.phase == "started"
        )

    class Recording:
        def __init__(self, name: str) -> None:
            self.name = name

        async def fetch_signals(self) -> list[dict[str, Any]]:
            asked.append((self.name, sessions_opened()))
            await asyncio.sleep(0.05)
            return [signal(self.name)]

    sources = {f"s{n}": Recording(f"s{n}") for n in range(4)}
    governance = Governance(audit=audit, retry=NO_RETRY)
    report = collect(sources, context=CONTEXT, governance=governance)
    assert [item.signal.topic for item in report.signals] == ["s0", "s1", "s2", "s3"]
    assert asked == [("s0", 1), ("s1", 2), ("s2", 3), ("s3", 4)]
