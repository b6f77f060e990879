"""OpenTelemetry reporting of sessions (the `otel` extra): see `Telemetry`."""

from ._telemetry import SessionTelemetry, Telemetry, configured_telemetry, otel_available

__all__ = ["SessionTelemetry", "Telemetry", "configured_telemetry", "otel_available"]
