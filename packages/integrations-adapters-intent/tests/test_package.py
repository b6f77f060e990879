"""integrations-adapters-intent installs and imports on its own, as a typed leaf of the namespace.

These tests run with only this distribution and its declared dependencies installed, so they
prove that a deployment can pick this adapter package alone.
"""

from __future__ import annotations

from integrations.base.testing import distribution_layout_problems, read_package_manifest

DIST = "integrations-adapters-intent"
PACKAGE = "integrations.adapters.intent_adapters"


def test_distribution_has_the_shape_every_distribution_shares() -> None:
    assert distribution_layout_problems(DIST, PACKAGE) == []


def test_manifest_declares_the_three_intent_connectors() -> None:
    manifest = read_package_manifest(PACKAGE)
    assert manifest.problems == ()
    entries = [entry for _, entry in manifest.entries]
    assert [entry.name for entry in entries] == ["intent.local", "intent.engine", "intent.signals"]
    assert all(entry.certification for entry in entries)
