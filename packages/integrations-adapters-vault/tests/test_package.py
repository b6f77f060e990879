"""integrations-adapters-vault installs and imports on its own, as a typed leaf of the namespace.

These tests run with only this distribution and its declared dependencies installed, so they
prove that a deployment can pick this adapter package alone.
"""

from __future__ import annotations

from integrations.base.testing import distribution_layout_problems, read_package_manifest

DIST = "integrations-adapters-vault"
PACKAGE = "integrations.adapters.vault_connectors"


def test_distribution_has_the_shape_every_distribution_shares() -> None:
    assert distribution_layout_problems(DIST, PACKAGE) == []


def test_manifest_declares_the_openai_connector_and_its_actions() -> None:
    manifest = read_package_manifest(PACKAGE)
    assert manifest.problems == ()
    (entry,) = [entry for _, entry in manifest.entries]
    assert entry.name == "vault.openai"
    assert entry.certification
    assert entry.action_names == {"model_invoke", "tool_call"}
    assert entry.capabilities == ()
