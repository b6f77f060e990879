"""Where the intent store's file is: the user's data directory, any path, or ``":memory:"``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import platformdirs

from integrations.base import Destination

__all__ = ["DEFAULT_FILE", "IN_MEMORY", "default_path", "destinations", "resolve"]

IN_MEMORY: Final = ":memory:"
"""The path of a private in-memory database (one per connection)."""

DEFAULT_FILE: Final = "/(the default file)"
"""The destination of a config without a path (it does not show where the platform keeps it)."""


def default_path() -> Path:
    """Where the store lives when the config names no path: the user's data directory."""
    return platformdirs.user_data_path("integrations") / "intents.sqlite3"


def resolve(path: str | None) -> str:
    """The file to open for `path` (creating the default file's directory)."""
    if path == IN_MEMORY:
        return path
    if path is None:
        chosen = default_path()
        chosen.parent.mkdir(parents=True, exist_ok=True)
        return str(chosen)
    return os.path.abspath(os.path.expanduser(path))


def destinations(path: str | None) -> tuple[Destination, ...]:
    """The file as a local destination (never open to an untrusted config); none in memory."""
    if path == IN_MEMORY:
        return ()
    if path is None:
        return (Destination(DEFAULT_FILE, 0, 0),)
    expanded = os.path.expanduser(path)
    return (Destination(expanded if expanded.startswith("/") else f"/{expanded}", 0, 0),)
