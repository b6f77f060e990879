"""Deprecated: the legacy enterprise signal adapter, one sample signal (see `EnterpriseAdapter`)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._samples import SampleAdapter

__all__ = ["EnterpriseAdapter"]


class EnterpriseAdapter(SampleAdapter):
    """Deprecated: answers one sample enterprise signal, created now (UTC), as before.

    Topic "AI governance", momentum steady, confidence 0.9, 95 % human sources, a 12-day
    streak. Building one warns (`DeprecationWarning`) and names the replacement.
    """

    name: ClassVar[str] = "enterprise.EnterpriseAdapter"
    sample: ClassVar[dict[str, Any]] = {
        "source": "enterprise",
        "topic": "AI governance",
        "momentum": "steady",
        "confidence": 0.9,
        "authenticity": {"human_source_pct": 95},
        "streak_days": 12,
    }
