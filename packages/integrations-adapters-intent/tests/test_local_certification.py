"""intent.local passes every check of the certification kit, on a real SQLite file."""

from __future__ import annotations

from integrations.adapters.intent_adapters.local import LocalIntentConnector
from integrations.adapters.intent_adapters.testing import LocalCertification


class TestLocalCertification(LocalCertification):
    connector_class = LocalIntentConnector
