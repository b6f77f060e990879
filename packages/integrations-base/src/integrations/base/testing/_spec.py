"""The kit's version and the names of its behaviour flags, importable without pytest.

The `integrations` command offers the flags as choices and prints the version in its
reports; it must be able to do both before it knows whether pytest is installed.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BOOLEAN_FLAGS", "KIT_VERSION", "NOT_APPLICABLE"]

KIT_VERSION: Final = "1.3.0"
"""Semantic version of the certification kit, independent of the distribution's version.

A major bump adds a check or makes one stricter, so a connector certified by an older major
may fail; a minor bump adds flags or hooks, or checks of contract features an older kit did
not know (such as named actions: not applicable to connectors without them); a patch fixes
the kit without changing what passes. Reports name it, so a certification says which checks it ran.
"""

BOOLEAN_FLAGS: Final = (
    "supports_text_search",
    "supports_tombstones",
    "sync_is_incremental",
    "push_is_idempotent",
)
"""Optional behaviour a subclass (or `integrations certify --enable/--disable`) switches."""

NOT_APPLICABLE: Final = "not applicable: "
"""Prefix of the skip reason of a check that a declared flag or capability rules out."""
