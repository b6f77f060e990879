"""The certification of ``intent.signals``: a source class named in the config, fetch only.

A signal source is read, never written, so the kit cannot push its sample signals: they are
written to the JSON file that the config's source (`JsonFileSignalSource`, a class inside
this package, so the module allowlist admits it) reads at each fetch. The sample signals are
dated, so that their ids (`signal_id`, a hash of each signal) are the same when written and
when fetched back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest

from integrations.adapters.intent_adapters._signal import parse_signal
from integrations.adapters.intent_adapters.signals import signal_id
from integrations.base import Capability, Record, format_utc
from integrations.base.testing import GovernedSession

from ._certification import IntentCertification
from ._signal_sources import write_signal_file

__all__ = ["SignalsCertification"]

FILE_SOURCE: Final = (
    "integrations.adapters.intent_adapters.testing._signal_sources:JsonFileSignalSource"
)
"""The source class the certification's config names (`JsonFileSignalSource`)."""


class SignalsCertification(IntentCertification):
    """``intent.signals`` reading a JSON file of signals, a new file per check."""

    registry_name = "intent.signals"
    unsupported = frozenset({Capability.PUSH, Capability.SYNC})

    @pytest.fixture(autouse=True)
    def _signal_file(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.signal_file = tmp_path_factory.mktemp("signals-certification") / "signals.json"
        write_signal_file(self.signal_file, [])

    def config(self) -> Mapping[str, Any]:
        return {"source": FILE_SOURCE, "options": {"path": str(self.signal_file)}}

    def sample_records(self, count: int) -> list[Record]:
        """The kit's intent signals, dated now and named as the connector names them."""
        created = format_utc(datetime.now(UTC))
        records = []
        for record in super().sample_records(count):
            data = {**record.data, "created_at": created}
            records.append(Record(id=signal_id(parse_signal(data)), data=data))
        return records

    def write_records(self, session: GovernedSession, records: Sequence[Record]) -> None:
        """Add `records`' signals to the file the source reads (the source cannot be pushed to)."""
        path: Path = self.signal_file
        held = json.loads(path.read_text(encoding="utf-8"))
        write_signal_file(path, [*held, *(record.data for record in records)])
