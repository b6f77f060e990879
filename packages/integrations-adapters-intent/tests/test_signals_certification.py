"""intent.signals passes every check of the certification kit, reading a real JSON file."""

from __future__ import annotations

from integrations.adapters.intent_adapters.signals import SignalSourceConnector
from integrations.adapters.intent_adapters.testing import SignalsCertification


class TestSignalsCertification(SignalsCertification):
    connector_class = SignalSourceConnector
