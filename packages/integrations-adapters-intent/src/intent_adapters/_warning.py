"""The one way every legacy name says it is deprecated, and what replaces it."""

from __future__ import annotations

import warnings

__all__ = ["deprecated"]


def deprecated(name: str, replacement: str, *, stacklevel: int = 3) -> None:
    """Warn that ``intent_adapters.<name>`` is deprecated, naming `replacement`.

    `stacklevel` 3 attributes the warning to the line that called the legacy function that
    calls this one, where the legacy name is used.
    """
    warnings.warn(
        f"intent_adapters.{name} is deprecated: {replacement}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )
