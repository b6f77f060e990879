"""The built wheels follow the packaging rules every distribution of the namespace relies on.

Six wheels, one per distribution; none ships a file directly in ``integrations/`` or
``integrations/adapters/`` (which would turn a shared namespace into one distribution's regular
package); every leaf package is typed; connector distributions ship the manifest their entry
point announces; the jobs distribution announces its command, no manifest; METADATA is
installable from an index (version ranges, never ``file://``).
"""

from __future__ import annotations

import configparser
import email.message
import email.parser
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from tools._workspace import Package, load_packages

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {package.name: package for package in load_packages(REPO_ROOT)}
NAMESPACE_LEVELS = {PurePosixPath("integrations"), PurePosixPath("integrations/adapters")}
MANIFEST_GROUP = "integrations.manifests"
CLI_GROUP = "integrations.cli"
NOT_CONNECTORS = {"integrations-base", "integrations-jobs"}
"""Distributions that declare no connector: the framework itself and the pipelines."""


@dataclass(frozen=True)
class Wheel:
    """The parts of a wheel these tests read."""

    members: frozenset[PurePosixPath]
    metadata: email.message.Message
    metadata_text: str
    entry_points: dict[str, dict[str, str]]
    files: dict[PurePosixPath, bytes]


def read_wheel(path: Path) -> Wheel:
    """Open a wheel and parse its METADATA and entry points."""
    with zipfile.ZipFile(path) as archive:
        files = {
            PurePosixPath(name): archive.read(name)
            for name in archive.namelist()
            if not name.endswith("/")
        }
    dist_info = next(p.parent for p in files if p.name == "METADATA")
    metadata_text = files[dist_info / "METADATA"].decode("utf-8")
    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep names' case
    parser.read_string(files.get(dist_info / "entry_points.txt", b"").decode("utf-8"))
    return Wheel(
        members=frozenset(files),
        metadata=email.parser.Parser().parsestr(metadata_text, headersonly=True),
        metadata_text=metadata_text,
        entry_points={section: dict(parser.items(section)) for section in parser.sections()},
        files=files,
    )


@pytest.fixture(scope="module")
def built(wheels: dict[str, Path]) -> dict[str, Wheel]:
    """Every distribution's wheel, parsed."""
    return {name: read_wheel(path) for name, path in wheels.items()}


def test_one_wheel_per_distribution(wheel_dir: Path) -> None:
    names = sorted(path.name.split("-")[0] for path in wheel_dir.glob("*.whl"))
    assert len(names) == 6
    assert names == sorted(name.replace("-", "_") for name in PACKAGES)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_nothing_directly_in_a_namespace_level(built: dict[str, Wheel], name: str) -> None:
    stray = sorted(str(m) for m in built[name].members if m.parent in NAMESPACE_LEVELS)
    assert stray == [], f"{name} ships files in a shared namespace directory"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_every_leaf_package_is_typed(built: dict[str, Wheel], name: str) -> None:
    package: Package = PACKAGES[name]
    for leaf in package.import_paths:
        assert PurePosixPath(leaf, "__init__.py") in built[name].members
        assert PurePosixPath(leaf, "py.typed") in built[name].members


@pytest.mark.parametrize("name", sorted(set(PACKAGES) - NOT_CONNECTORS))
def test_connector_distributions_ship_their_manifest(built: dict[str, Wheel], name: str) -> None:
    announced = built[name].entry_points.get(MANIFEST_GROUP, {})
    assert list(announced) == [name], f"{name} must announce one manifest under its own name"
    module = announced[name]
    manifest = PurePosixPath(*module.split("."), "manifest.json")
    assert manifest in built[name].members
    document = json.loads(built[name].files[manifest])
    assert document["schema_version"] == 1
    assert isinstance(document["connectors"], list)


def test_the_jobs_wheel_announces_its_command_and_no_manifest(built: dict[str, Wheel]) -> None:
    jobs = built["integrations-jobs"]
    assert jobs.entry_points.get(CLI_GROUP) == {"jobs": "integrations.jobs._cli:jobs"}
    assert MANIFEST_GROUP not in jobs.entry_points
    assert PurePosixPath("integrations/jobs/_cli.py") in jobs.members


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_metadata_matches_the_pyproject(built: dict[str, Wheel], name: str) -> None:
    metadata = built[name].metadata
    assert canonicalize_name(metadata["Name"]) == name
    assert Version(metadata["Version"]) == Version(PACKAGES[name].version)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_metadata_has_no_file_urls(built: dict[str, Wheel], name: str) -> None:
    assert "file://" not in built[name].metadata_text


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_local_requirements_are_version_ranges(built: dict[str, Wheel], name: str) -> None:
    requirements = [Requirement(t) for t in built[name].metadata.get_all("Requires-Dist") or []]
    local = [r for r in requirements if canonicalize_name(r.name).startswith("integrations-")]
    declared = PACKAGES[name].requirements  # unconditional and per-extra, from pyproject.toml
    assert sorted(canonicalize_name(r.name) for r in local) == sorted(d.name for d in declared)
    for requirement in local:
        operators = {spec.operator for spec in requirement.specifier}
        assert requirement.url is None
        assert operators & {">=", ">", "~="}, f"{requirement} has no lower bound"
        assert operators & {"<", "<=", "~="}, f"{requirement} has no upper bound"


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_typed_classifier_and_python_range(built: dict[str, Wheel], name: str) -> None:
    metadata = built[name].metadata
    assert "Typing :: Typed" in (metadata.get_all("Classifier") or [])
    requires_python = SpecifierSet(metadata["Requires-Python"])
    assert requires_python.contains("3.11")
    assert not requires_python.contains("3.10")
