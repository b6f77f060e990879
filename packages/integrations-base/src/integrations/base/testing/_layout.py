"""Checks a distribution's own tests run to prove it has the shape every distribution shares.

Every distribution of the framework, ours or a third party's, installs one leaf package under
a PEP 420 namespace, ships a `manifest.json` in it, announces that manifest through the
`integrations.manifests` entry point named after the distribution, and marks the package as
typed. `distribution_layout_problems` lists every way an installed distribution departs from
that shape, so a test is one line::

    assert distribution_layout_problems("acme-integrations", "acme_integrations") == []
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
from types import ModuleType

from integrations.base._discovery import MANIFEST_GROUP
from integrations.base._exceptions import ManifestError
from integrations.base._manifest import MANIFEST_FILENAME, ParsedManifest, parse_manifest

__all__ = ["distribution_layout_problems", "read_package_manifest"]

_NAMESPACE_LEVELS = frozenset({"integrations", "integrations/adapters"})


def read_package_manifest(package: str) -> ParsedManifest:
    """The manifest shipped inside `package`, parsed and validated."""
    resource = importlib.resources.files(package).joinpath(MANIFEST_FILENAME)
    return parse_manifest(resource.read_bytes(), f"{package}/{MANIFEST_FILENAME}")


def distribution_layout_problems(distribution: str, package: str) -> list[str]:
    """Every way installed `distribution` (leaf package `package`) breaks the shared shape."""
    try:
        module = importlib.import_module(package)
    except ImportError as error:
        return [f"{package} does not import: {error}"]
    return [
        *_manifest_problems(package),
        *_entry_point_problems(distribution, package, module),
        *_namespace_file_problems(distribution),
        *_parent_problems(package),
        *_typed_problems(package),
    ]


def _manifest_problems(package: str) -> list[str]:
    try:
        parsed = read_package_manifest(package)
    except (OSError, ManifestError) as error:
        return [f"{package} ships no usable {MANIFEST_FILENAME}: {error}"]
    return [f"manifest entry at {bad.pointer}: {bad.reason}" for bad in parsed.problems]


def _entry_point_problems(distribution: str, package: str, module: ModuleType) -> list[str]:
    found = [
        entry_point
        for entry_point in importlib.metadata.entry_points(group=MANIFEST_GROUP)
        if entry_point.dist is not None and entry_point.dist.name == distribution
    ]
    if [(ep.name, ep.value) for ep in found] != [(distribution, package)]:
        announced = [(ep.name, ep.value) for ep in found]
        return [f"{MANIFEST_GROUP} must hold {distribution} = {package}; found {announced}"]
    if found[0].load() is not module:
        return [f"the {MANIFEST_GROUP} entry point does not load {package}"]
    return []


def _namespace_file_problems(distribution: str) -> list[str]:
    files = importlib.metadata.files(distribution) or []
    stray = [str(f) for f in files if f.parent.as_posix() in _NAMESPACE_LEVELS]
    return [f"file at a namespace level (breaks PEP 420 siblings): {name}" for name in stray]


def _parent_problems(package: str) -> list[str]:
    """The framework's shared parents (`integrations`, `integrations.adapters`) stay namespaces."""
    parts = package.split(".")
    parents = {".".join(parts[:depth]) for depth in range(1, len(parts))}
    return [
        f"{name} is a regular package, not a PEP 420 namespace"
        for name in sorted(parents & {"integrations", "integrations.adapters"})
        if getattr(importlib.import_module(name), "__file__", None) is not None
    ]


def _typed_problems(package: str) -> list[str]:
    if importlib.resources.files(package).joinpath("py.typed").is_file():
        return []
    return [f"{package} has no py.typed marker"]
