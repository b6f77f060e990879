"""The legacy ``intent_adapters`` package still works, on the new code, and says what replaces it.

Legacy adapters read real servers on 127.0.0.1 and the alignment check asks a real Intent
Engine API; every use of a legacy name is expected to warn (pytest turns an unexpected
warning into an error).
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest

from integrations.adapters.intent_adapters import parse_signal
from integrations.adapters.intent_adapters.signals import SignalSource
from integrations.adapters.intent_adapters.testing import IntentEngineServer, SignalSourceServer
from integrations.base import ConnectionFailed, NotSupported
from intent_adapters import foundary
from intent_adapters.base import SignalAdapter
from intent_adapters.collector import collect_signals
from intent_adapters.enterprise import EnterpriseAdapter
from intent_adapters.social import SocialAdapter

pytestmark = pytest.mark.timeout(60)

SOURCE_PROTOCOL = "SignalSource protocol"


def signal(topic: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "source": "legacy",
        "topic": topic,
        "momentum": "surging",
        "confidence": 0.9,
        "authenticity": {"human_source_pct": 90},
        "streak_days": 3,
        "created_at": datetime(2025, 3, 1, 12, tzinfo=UTC),
    }
    return {**data, **changes}


def legacy_adapter_class() -> type[SignalAdapter]:
    """A legacy adapter reading a signal server, as platforms wrote them (it warns once)."""
    with pytest.warns(DeprecationWarning, match=SOURCE_PROTOCOL):

        class ServerAdapter(SignalAdapter):
            def __init__(self, server: SignalSourceServer) -> None:
                self.source = server.blocking_source()

            def fetch_signals(self) -> list[dict[str, Any]]:
                return [dict(item) for item in self.source.fetch_signals()]

    return ServerAdapter


# -- intent_adapters.base ---------------------------------------------------------------------


def test_subclassing_signal_adapter_warns_at_the_class_statement() -> None:
    with pytest.warns(DeprecationWarning, match=SOURCE_PROTOCOL) as caught:

        class Mine(SignalAdapter):
            def fetch_signals(self) -> list[dict[str, Any]]:
                return [signal("mine")]

    assert caught[0].filename == __file__
    assert isinstance(Mine(), SignalSource)
    with pytest.raises(TypeError, match="abstract"):
        SignalAdapter()  # type: ignore[abstract]  # the base stays abstract, as before


# -- intent_adapters.social and .enterprise ---------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "expected"),
    [
        (
            SocialAdapter,
            {
                "source": "social",
                "topic": "AI governance",
                "momentum": "rising",
                "confidence": 0.8,
                "authenticity": {"human_source_pct": 85},
                "streak_days": 5,
            },
        ),
        (
            EnterpriseAdapter,
            {
                "source": "enterprise",
                "topic": "AI governance",
                "momentum": "steady",
                "confidence": 0.9,
                "authenticity": {"human_source_pct": 95},
                "streak_days": 12,
            },
        ),
    ],
)
def test_the_sample_adapters_answer_their_one_signal_created_now(
    adapter: type[SignalAdapter], expected: dict[str, Any]
) -> None:
    with pytest.warns(DeprecationWarning, match=r"read your platform's real source") as caught:
        instance = adapter()
    assert caught[0].filename == __file__
    before = datetime.now(UTC)
    (answered,) = instance.fetch_signals()
    after = datetime.now(UTC)
    created = answered.pop("created_at")
    assert answered == expected
    assert created.tzinfo is UTC
    assert before <= created <= after
    parse_signal({**answered, "created_at": created})  # a valid signal


# -- intent_adapters.collector ----------------------------------------------------------------


def test_collect_signals_returns_the_same_flat_list_in_the_same_order() -> None:
    with pytest.warns(DeprecationWarning, match=SOURCE_PROTOCOL):

        class Fixed(SignalAdapter):
            def __init__(self, *signals: dict[str, Any]) -> None:
                self.signals = list(signals)

            def fetch_signals(self) -> list[dict[str, Any]]:
                return self.signals

    adapters = [Fixed(signal("a"), signal("b", extra="kept")), Fixed(), Fixed(signal("c"))]
    sequential = [item for adapter in adapters for item in adapter.fetch_signals()]
    with pytest.warns(DeprecationWarning, match=r"collect\(sources, context=\.\.\.\)") as caught:
        collected = collect_signals(adapters)
    assert caught[0].filename == __file__
    assert collected == sequential
    assert [type(item) for item in collected] == [dict] * 3


def test_collect_signals_reads_the_sample_adapters() -> None:
    with pytest.deprecated_call():
        adapters = [SocialAdapter(), EnterpriseAdapter()]
    with pytest.deprecated_call():
        collected = collect_signals(adapters)
    assert [(item["source"], item["topic"]) for item in collected] == [
        ("social", "AI governance"),
        ("enterprise", "AI governance"),
    ]
    assert all(item["created_at"].tzinfo is not None for item in collected)


def test_collect_signals_runs_the_adapters_at_once() -> None:
    adapter = legacy_adapter_class()
    with (
        SignalSourceServer([signal("first")], delay=0.4) as first,
        SignalSourceServer([signal("second")], delay=0.4) as second,
        SignalSourceServer([signal("third")], delay=0.4) as third,
    ):
        adapters = [adapter(first), adapter(second), adapter(third)]  # type: ignore[call-arg]
        began = time.perf_counter()
        with pytest.deprecated_call():
            collected = collect_signals(adapters)
        took = time.perf_counter() - began
    assert [item["topic"] for item in collected] == ["first", "second", "third"]
    assert took < 1.0  # one after the other, they take 1.2 s


def test_a_failing_adapter_no_longer_fails_the_call_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = legacy_adapter_class()
    caplog.set_level(logging.WARNING, "intent_adapters.collector")
    with (
        SignalSourceServer([signal("kept")]) as healthy,
        SignalSourceServer([signal("lost")]) as failing,
    ):
        failing.fail_next(count=10, status=500)
        adapters = [adapter(failing), adapter(healthy)]  # type: ignore[call-arg]
        with pytest.deprecated_call():
            collected = collect_signals([*adapters, adapter(healthy)])  # type: ignore[call-arg]
    assert [item["topic"] for item in collected] == ["kept"]
    assert "ServerAdapter failed" in caplog.text
    assert "TransientError" in caplog.text
    assert "1 duplicate signals left out" in caplog.text


# -- intent_adapters.uaal ---------------------------------------------------------------------


@pytest.fixture
def uaal(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The shim module, imported afresh from a clean environment (and again afterwards)."""
    monkeypatch.delenv("INTENT_ENGINE_URL", raising=False)
    monkeypatch.delenv("INTENT_ENGINE_ACTOR", raising=False)
    module = importlib.reload(importlib.import_module("intent_adapters.uaal"))
    yield module
    monkeypatch.undo()
    for name in ("INTENT_ENGINE_URL", "INTENT_THRESHOLD"):
        vars(module).pop(name, None)  # a value a test assigned survives a reload
    importlib.reload(module)


@pytest.fixture
def engine() -> Iterator[IntentEngineServer]:
    """An Intent Engine holding a strong "AI governance" intent and a weak "Chess" one."""
    with IntentEngineServer() as server:
        now = datetime.now(UTC)
        server.store(signal("AI governance", created_at=now.isoformat()))
        server.store(signal("Chess", confidence=0.2, created_at=now.isoformat()))
        yield server


def test_the_constants_keep_their_values_and_warn(uaal: ModuleType) -> None:
    with pytest.warns(DeprecationWarning, match="IntentEngineConfig") as caught:
        assert uaal.INTENT_ENGINE_URL == "http://127.0.0.1:8000"
    assert caught[0].filename == __file__
    with pytest.warns(DeprecationWarning, match="verify_intent"):
        from intent_adapters.uaal import INTENT_THRESHOLD
    assert INTENT_THRESHOLD == 1.2


def test_the_url_honours_the_environment(uaal: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTENT_ENGINE_URL", "http://intent.internal:9000")
    reloaded = importlib.reload(uaal)
    with pytest.deprecated_call():
        assert reloaded.INTENT_ENGINE_URL == "http://intent.internal:9000"


def test_intent_alignment_required_asks_the_engine_through_a_governed_session(
    uaal: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    engine: IntentEngineServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("INTENT_ENGINE_URL", engine.url)
    reloaded = importlib.reload(uaal)
    caplog.set_level(logging.INFO, "integrations.audit")
    with pytest.warns(DeprecationWarning, match=r"verify_intent\(session") as caught:
        aligned = reloaded.intent_alignment_required("AI governance")
    assert caught[0].filename == __file__
    with pytest.deprecated_call():
        assert not reloaded.intent_alignment_required("Chess")
    with pytest.deprecated_call():
        assert not reloaded.intent_alignment_required("Unknown topic")
    with pytest.deprecated_call():
        assert reloaded.intent_alignment_required("ai GOVERNANCE")
    assert aligned
    assert engine.count("/ranked/intents") >= 4
    audited = [record.getMessage() for record in caplog.records]
    assert any('"intent.engine"' in line and '"legacy"' in line for line in audited)


def test_assigning_the_constants_changes_later_calls(
    uaal: ModuleType, engine: IntentEngineServer
) -> None:
    vars(uaal)["INTENT_ENGINE_URL"] = engine.url
    with pytest.deprecated_call():
        assert uaal.intent_alignment_required("AI governance")
    vars(uaal)["INTENT_THRESHOLD"] = 5
    with pytest.deprecated_call():
        assert not uaal.intent_alignment_required("AI governance")


def test_intent_alignment_required_raises_the_librarys_errors(uaal: ModuleType) -> None:
    with IntentEngineServer() as stopped:
        url = stopped.url
    vars(uaal)["INTENT_ENGINE_URL"] = url
    with pytest.deprecated_call(), pytest.raises(ConnectionFailed):
        uaal.intent_alignment_required("AI governance")


# -- intent_adapters.foundary -----------------------------------------------------------------


def test_get_risk_score_fails_and_says_why() -> None:
    with (
        pytest.warns(DeprecationWarning, match="no replacement") as caught,
        pytest.raises(NotSupported) as raised,
    ):
        foundary.get_risk_score("deploy", {"model": "m"})
    assert caught[0].filename == __file__
    assert "aifoundary" in str(raised.value)
    assert "no longer provide evaluate_risk" in str(raised.value)
    assert "aifoundary" not in sys.modules
