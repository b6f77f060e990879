"""The two sample adapters of the legacy package, written once: one signal each, dated now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from ._warning import deprecated
from .base import SignalAdapter

__all__ = ["SampleAdapter"]

REPLACEMENT: Final = (
    "it only ever returned one fixed sample signal; read your platform's real source with a "
    "SignalSource of your own (integrations.adapters.intent_adapters.signals) and collect it "
    "with integrations.adapters.intent_adapters.collect"
)


class SampleAdapter(SignalAdapter):
    """An adapter answering one sample signal, created now (UTC), as the legacy ones did."""

    name: ClassVar[str] = ""
    """The adapter's legacy name, ``<module>.<Class>``, for the warning."""

    sample: ClassVar[dict[str, Any]] = {}
    """The signal's fields but ``created_at``."""

    def __init__(self) -> None:
        """Warn that the adapter is deprecated, naming its replacement."""
        deprecated(self.name, REPLACEMENT)

    def fetch_signals(self) -> list[dict[str, Any]]:
        """One signal: the sample, created now (a timezone-aware UTC datetime)."""
        authenticity = dict(self.sample["authenticity"])
        return [{**self.sample, "authenticity": authenticity, "created_at": datetime.now(UTC)}]
