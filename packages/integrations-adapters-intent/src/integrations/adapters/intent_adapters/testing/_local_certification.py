"""`LocalCertification`: ``intent.local`` certified in a new SQLite file per check.

What `integrations certify intent.local` runs (the manifest names it). The store keeps
deletions as tombstones that sync reports, pushes are idempotent by signal id, and sync is
incremental, so every standard check applies. The file lives in pytest's temporary directory;
the config is a plain mapping, so building it imports nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ._certification import IntentCertification

__all__ = ["LocalCertification"]


class LocalCertification(IntentCertification):
    """``intent.local`` in a new SQLite file per check, in pytest's temporary directory."""

    registry_name = "intent.local"
    supports_tombstones = True
    push_is_idempotent = True
    sync_is_incremental = True

    @pytest.fixture(autouse=True)
    def _sqlite_file(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.sqlite_path = tmp_path_factory.mktemp("intent-local-certification") / "intents.sqlite3"

    def config(self) -> Mapping[str, Any]:
        """A new file for this check."""
        return {"path": str(self.sqlite_path)}
