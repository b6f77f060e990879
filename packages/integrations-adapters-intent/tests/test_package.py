"""integrations-adapters-intent installs and imports on its own, as a typed leaf of the namespace.

These tests run with only this distribution and its declared dependencies installed, so they
prove that a deployment can pick this adapter package alone.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import json
from types import ModuleType

import pytest

DIST = "integrations-adapters-intent"
PACKAGE = "integrations.adapters.intent_adapters"
MANIFEST_GROUP = "integrations.manifests"


def _load_manifest() -> dict[str, object]:
    text = importlib.resources.files(PACKAGE).joinpath("manifest.json").read_text("utf-8")
    document = json.loads(text)
    assert isinstance(document, dict)
    return document


def test_package_imports() -> None:
    module = importlib.import_module(PACKAGE)
    assert module.__all__ == []


def test_manifest_declares_no_connector() -> None:
    # The skeleton ships no connector, and no placeholder pretends to be one.
    assert _load_manifest() == {"schema_version": 1, "connectors": []}


def test_manifest_entry_point_points_at_the_package() -> None:
    found = [
        entry_point
        for entry_point in importlib.metadata.entry_points(group=MANIFEST_GROUP)
        if entry_point.dist is not None and entry_point.dist.name == DIST
    ]
    assert [(ep.name, ep.value) for ep in found] == [(DIST, PACKAGE)]
    assert found[0].load() is importlib.import_module(PACKAGE)


def test_distribution_ships_nothing_at_the_namespace_levels() -> None:
    # A file directly in integrations/ or integrations/adapters/ would turn the namespace
    # into a regular package and hide the sibling distributions.
    files = importlib.metadata.files(DIST)
    assert files is not None
    namespace_levels = {"integrations", "integrations/adapters"}
    assert [str(f) for f in files if f.parent.as_posix() in namespace_levels] == []


def test_package_is_typed() -> None:
    assert importlib.resources.files(PACKAGE).joinpath("py.typed").is_file()


@pytest.mark.parametrize("name", ["integrations", "integrations.adapters"])
def test_parents_are_namespace_packages(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    assert getattr(module, "__file__", None) is None
    assert module.__spec__ is not None
    assert module.__spec__.origin is None
    assert type(module.__path__).__name__ == "_NamespacePath"
