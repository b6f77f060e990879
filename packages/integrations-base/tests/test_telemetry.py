"""OpenTelemetry: spans per session and step, counters and a histogram, checked in memory."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from integrations.base import (
    AuthContext,
    AuthError,
    FetchQuery,
    Governance,
    MemoryAuditSink,
    PushPayload,
    Record,
    RetryPolicy,
    Session,
    TransientError,
)
from integrations.base.telemetry import Telemetry
from integrations.mocks import MockConnector, reset_stores

CONTEXT = AuthContext(tenant="acme", actor="alice")


class Collected:
    """Spans and metric points exported in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[self.reader]))

    def finished(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.spans.get_finished_spans())

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        assert data is not None
        return [
            (dict(point.attributes or {}), point)
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for found in scope.metrics
            if found.name == metric
            for point in found.data.data_points
        ]


@pytest.fixture
def collected() -> Iterator[Collected]:
    reset_stores()
    yield Collected()
    reset_stores()


def session(collected: Collected, connector: MockConnector, **governance: Any) -> Session:
    return Session(
        connector,
        config={"store": "otel"},
        context=CONTEXT,
        governance=Governance(audit=MemoryAuditSink(), telemetry=collected.telemetry, **governance),
    )


def test_a_span_per_session_and_per_step_with_attributes_and_no_payload(
    collected: Collected,
) -> None:
    with session(collected, MockConnector()) as governed:
        governed.push(PushPayload(records=(Record(id="r", data={"text": "payload-text"}),)))
        governed.fetch(FetchQuery())

    spans = collected.finished()
    names = [span.name for span in spans]
    assert names == [
        "integrations auth MockConnector",
        "integrations connect MockConnector",
        "integrations push MockConnector",
        "integrations fetch MockConnector",
        "integrations revoke MockConnector",
        "integrations session MockConnector",
    ]
    session_span = spans[-1]
    assert session_span.context is not None
    for step in spans[:-1]:
        assert step.parent is not None
        assert step.parent.span_id == session_span.context.span_id
        assert step.attributes is not None
        assert step.attributes["integrations.tenant"] == "acme"
        assert step.attributes["integrations.correlation_id"] == governed.correlation_id
    assert dict(spans[2].attributes or {})["integrations.operation"] == "push"
    assert "payload-text" not in repr([dict(span.attributes or {}) for span in spans])


def test_counters_and_histogram_count_calls_errors_and_retries(collected: Collected) -> None:
    connector = MockConnector()
    connector.faults.fail("fetch", TransientError("blip"))
    connector.faults.fail("push", AuthError("refused"), on_call=1)
    retry = RetryPolicy(max_attempts=2, initial_backoff=0.01, jitter=0.0)
    with session(collected, connector, retry=retry) as governed:
        governed.fetch(FetchQuery())
        with pytest.raises(AuthError):
            governed.push(PushPayload(records=(Record(id="r"),)))

    calls = {
        (labels["integrations.operation"], labels["integrations.outcome"]): point.value
        for labels, point in collected.points("integrations.calls")
    }
    assert calls == {
        ("auth", "ok"): 1,
        ("connect", "ok"): 1,
        ("fetch", "error"): 1,
        ("fetch", "ok"): 1,
        ("push", "error"): 1,
        ("revoke", "ok"): 1,
    }
    errors = {
        labels["error.type"]: point.value
        for labels, point in collected.points("integrations.errors")
    }
    assert errors == {"TransientError": 1, "AuthError": 1}
    retries = [
        (labels["integrations.operation"], p.value)
        for labels, p in collected.points("integrations.retries")
    ]
    assert retries == [("fetch", 1)]
    durations = sum(point.count for _, point in collected.points("integrations.duration"))
    assert durations == 6
    failed = [span for span in collected.finished() if span.status.status_code is StatusCode.ERROR]
    assert [span.name for span in failed] == [
        "integrations fetch MockConnector",
        "integrations push MockConnector",
    ]


def test_without_opentelemetry_nothing_is_imported_and_sessions_still_run() -> None:
    program = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        from integrations.base import AuthContext, FetchQuery, Governance, MemoryAuditSink, Session
        from integrations.mocks import MockConnector
        governance = Governance(audit=MemoryAuditSink())
        context = AuthContext(tenant="acme", actor="alice")
        with Session(MockConnector(), config={}, context=context, governance=governance) as s:
            s.fetch(FetchQuery())
        loaded = [name for name in sys.modules if name.startswith("opentelemetry.")]
        assert loaded == [], loaded
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_importing_the_base_package_does_not_import_opentelemetry() -> None:
    program = "import sys, integrations.base; print('opentelemetry' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_debug_logs_carry_structured_fields_and_the_library_adds_no_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reset_stores()
    governance = Governance(audit=MemoryAuditSink(), telemetry=None)
    with caplog.at_level(logging.DEBUG, logger="integrations"):
        # The level is read when the session is created: debug logging costs nothing otherwise.
        s = Session(MockConnector(), config={}, context=CONTEXT, governance=governance)
        with s:
            s.fetch(FetchQuery())
    steps = [r for r in caplog.records if r.name == "integrations.lifecycle"]
    assert [r.getMessage().split()[0] for r in steps] == ["auth", "connect", "fetch", "revoke"]
    fetch = steps[2]
    assert (fetch.connector, fetch.operation, fetch.tenant) == ("MockConnector", "fetch", "acme")  # type: ignore[attr-defined]  # structured extra fields
    assert fetch.correlation_id == s.correlation_id  # type: ignore[attr-defined]  # structured extra field
    for name in ("integrations", "integrations.lifecycle", "integrations.audit"):
        assert logging.getLogger(name).handlers == []


def test_global_providers_are_followed_once_an_sdk_sets_them() -> None:
    program = textwrap.dedent(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from integrations.base import AuthContext, FetchQuery, Governance, MemoryAuditSink, Session
        from integrations.mocks import MockConnector

        governance = Governance(audit=MemoryAuditSink())  # telemetry="global", the default
        context = AuthContext(tenant="acme", actor="alice")
        with Session(MockConnector(), config={}, context=context, governance=governance) as s:
            s.fetch(FetchQuery())  # no SDK yet: nothing reported, nothing to pay
        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(provider)
        with Session(MockConnector(), config={}, context=context, governance=governance) as s:
            s.fetch(FetchQuery())
        print(len(spans.get_finished_spans()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
