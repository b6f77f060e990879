"""OpenTelemetry for sessions: a span per session and per step, counters and a histogram.

Optional: with the `otel` extra (opentelemetry-api) installed, sessions report to the
providers given to `Governance` or to the global ones. Without it nothing is imported and a
session pays one attribute check per step. Attributes name the connector, operation,
tenant, actor, attempt and correlation id — never payloads, records or secrets.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import TYPE_CHECKING, Any

from ._audit import ConnectorMeta

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from ._models import AuthContext

__all__ = ["SessionTelemetry", "Telemetry", "configured_telemetry", "otel_available"]

INSTRUMENTATION = "integrations.base"


@cache
def otel_available() -> bool:
    """Whether opentelemetry-api is installed (looked up once, without importing it)."""
    return importlib.util.find_spec("opentelemetry") is not None


_configured: tuple[object, object, Telemetry] | None = None


def configured_telemetry() -> Telemetry | None:
    """A `Telemetry` on the global providers, or None while no SDK provider is installed.

    Asked when each session starts, so that an application may configure OpenTelemetry at
    any time; until it does, sessions pay nothing for telemetry (the API's no-op objects
    alone would cost several microseconds per call).
    """
    global _configured
    if not otel_available():
        return None
    from opentelemetry import metrics, trace

    tracer_provider, meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    if (
        isinstance(tracer_provider, trace.ProxyTracerProvider)
        and type(meter_provider).__name__ == "_ProxyMeterProvider"
    ):
        return None
    if _configured is None or _configured[:2] != (tracer_provider, meter_provider):
        _configured = (tracer_provider, meter_provider, Telemetry())
    return _configured[2]


class Telemetry:
    """The tracer and instruments sessions report to; built once per `Governance`."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        """Report to the given providers, or to OpenTelemetry's global ones."""
        from opentelemetry import metrics, trace

        self._trace = trace
        self.tracer = trace.get_tracer(INSTRUMENTATION, tracer_provider=tracer_provider)
        meter = metrics.get_meter(INSTRUMENTATION, meter_provider=meter_provider)
        self.calls: Counter = meter.create_counter(
            "integrations.calls", unit="{call}", description="Connector steps run."
        )
        self.errors: Counter = meter.create_counter(
            "integrations.errors", unit="{call}", description="Connector steps that failed."
        )
        self.retries: Counter = meter.create_counter(
            "integrations.retries", unit="{call}", description="Attempts after the first."
        )
        self.duration: Histogram = meter.create_histogram(
            "integrations.duration", unit="s", description="Duration of connector steps."
        )

    def session(
        self, meta: ConnectorMeta, context: AuthContext, correlation_id: str
    ) -> SessionTelemetry:
        """Start the span of one session."""
        return SessionTelemetry(self, meta, context, correlation_id)


class SessionTelemetry:
    """The open spans of one session."""

    def __init__(
        self,
        telemetry: Telemetry,
        meta: ConnectorMeta,
        context: AuthContext,
        correlation_id: str,
    ) -> None:
        """Start the session span; steps become its children."""
        self._telemetry = telemetry
        self._attributes: dict[str, Any] = {
            "integrations.connector": meta.name,
            "integrations.correlation_id": correlation_id,
        }
        for key, value in (
            ("integrations.connector_version", meta.connector_version),
            ("integrations.distribution", meta.distribution),
            ("integrations.tenant", context.tenant),
            ("integrations.actor", context.actor),
        ):
            if value is not None:
                self._attributes[key] = value
        self._span: Span = telemetry.tracer.start_span(
            f"integrations session {meta.name}", attributes=self._attributes
        )
        self._context = telemetry._trace.set_span_in_context(self._span)
        self._steps: dict[tuple[str, int], Span] = {}

    def step_started(self, operation: str, attempt: int) -> None:
        """Open the span of one attempt of a step."""
        attributes = {
            **self._attributes,
            "integrations.operation": operation,
            "integrations.attempt": attempt,
        }
        self._steps[(operation, attempt)] = self._telemetry.tracer.start_span(
            f"integrations {operation} {self._attributes['integrations.connector']}",
            context=self._context,
            attributes=attributes,
        )

    def step_finished(
        self, operation: str, attempt: int, error_type: str | None, duration: float
    ) -> None:
        """Close the attempt's span and count it."""
        labels = {
            "integrations.connector": self._attributes["integrations.connector"],
            "integrations.operation": operation,
            "integrations.outcome": "ok" if error_type is None else "error",
        }
        telemetry = self._telemetry
        telemetry.calls.add(1, labels)
        telemetry.duration.record(duration, labels)
        if attempt > 1:
            telemetry.retries.add(1, labels)
        span = self._steps.pop((operation, attempt), None)
        if error_type is not None:
            telemetry.errors.add(1, {**labels, "error.type": error_type})
        if span is None:
            return
        if error_type is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()

    def close(self, error_type: str | None) -> None:
        """End the session span (and any step span a cancellation left open)."""
        for span in self._steps.values():
            span.end()
        self._steps.clear()
        if error_type is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_attribute("error.type", error_type)
            self._span.set_status(Status(StatusCode.ERROR, error_type))
        self._span.end()
