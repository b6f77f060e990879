"""Console-script entry point of `integrations`: fails in one line when the CLI extra is absent."""

from __future__ import annotations

import sys
from importlib.util import find_spec

__all__ = ["main"]

_MISSING_EXTRA = (
    "integrations: the command-line tool needs its extra; "
    "install it with: pip install 'integrations-base[cli]'"
)


def main() -> None:
    """Run the `integrations` command, or say what to install when click or rich is missing."""
    if find_spec("click") is None or find_spec("rich") is None:
        print(_MISSING_EXTRA, file=sys.stderr)
        raise SystemExit(1)
    from ._cli import cli

    cli()
