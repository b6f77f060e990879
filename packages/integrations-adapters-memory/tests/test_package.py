"""integrations-adapters-memory installs and imports on its own, as a typed leaf of the namespace.

These tests run with only this distribution and its declared dependencies installed, so they
prove that a deployment can pick this adapter package alone.
"""

from __future__ import annotations

from integrations.base.testing import distribution_layout_problems, read_package_manifest

DIST = "integrations-adapters-memory"
PACKAGE = "integrations.adapters.memory_adapters"


def test_distribution_has_the_shape_every_distribution_shares() -> None:
    assert distribution_layout_problems(DIST, PACKAGE) == []


def test_manifest_declares_no_connector() -> None:
    # The package ships no connector yet, and no placeholder pretends to be one.
    assert read_package_manifest(PACKAGE).entries == ()
