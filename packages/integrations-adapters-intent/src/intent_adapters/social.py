"""Deprecated: the legacy social signal adapter, one sample signal (see `SocialAdapter`)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._samples import SampleAdapter

__all__ = ["SocialAdapter"]


class SocialAdapter(SampleAdapter):
    """Deprecated: answers one sample social signal, created now (UTC), as before.

    Topic "AI governance", momentum rising, confidence 0.8, 85 % human sources, a 5-day
    streak. Building one warns (`DeprecationWarning`) and names the replacement.
    """

    name: ClassVar[str] = "social.SocialAdapter"
    sample: ClassVar[dict[str, Any]] = {
        "source": "social",
        "topic": "AI governance",
        "momentum": "rising",
        "confidence": 0.8,
        "authenticity": {"human_source_pct": 85},
        "streak_days": 5,
    }
