"""Deprecated: the legacy signal adapter base class, kept so that existing adapters still work.

Replacement: the `SignalSource` protocol of
``integrations.adapters.intent_adapters.signals``: any object with a ``fetch_signals()``
method that answers a list of signals is a source, with no base class to inherit. Every
``SignalAdapter`` subclass already is one, so the collector (`collect`) and the
``intent.signals`` connector read legacy adapters as they are.

Subclassing ``SignalAdapter`` outside this package emits a `DeprecationWarning` naming the
replacement, attributed to the ``class`` statement.
"""

from __future__ import annotations

import abc
from typing import Any, Final

from ._warning import deprecated

__all__ = ["SignalAdapter"]

REPLACEMENT: Final = (
    "implement the SignalSource protocol of integrations.adapters.intent_adapters.signals "
    "(any class with fetch_signals(); no base class needed)"
)

_SHIM: Final = __name__.rpartition(".")[0] + "."


class SignalAdapter(abc.ABC):
    """Deprecated: a source of intent signals (see the module for the replacement)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Warn the author of a subclass (the shim's own sample adapters excepted)."""
        super().__init_subclass__(**kwargs)
        if not cls.__module__.startswith(_SHIM):
            deprecated("base.SignalAdapter", REPLACEMENT, stacklevel=4)

    @abc.abstractmethod
    def fetch_signals(self) -> list[dict[str, Any]]:
        """The adapter's current signals, as dicts (see `Signal` for the fields)."""
