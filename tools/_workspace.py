"""Shared helpers of the maintainer tools: the workspace's distributions and how to build them.

Every distribution under ``packages/`` describes itself in its own ``pyproject.toml``: PEP 621
``[project]`` metadata and the ``[tool.poetry].packages`` includes that say which import
packages its wheel carries. The tools read those files instead of keeping a second list, so
adding a distribution needs no tool change.

Wheels and sdists are built by calling the poetry-core PEP 517 hooks in-process, which is what
a build frontend does in its isolated environment, minus the environment: the tools run where
poetry-core is installed already (every tox environment lists it).

Run as a script, the module lists the workspace's distributions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version
except ModuleNotFoundError:  # a bare build environment: use the copy poetry-core vendors
    import poetry.core  # noqa: F401  (importing it puts its vendored packaging on sys.path)
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

__all__ = [
    "LOCAL_PREFIX",
    "NAMESPACE_LEVELS",
    "InvalidRequirement",
    "InvalidVersion",
    "LocalDependency",
    "Package",
    "Requirement",
    "SpecifierSet",
    "Version",
    "WorkspaceError",
    "build_sdist",
    "build_wheel",
    "canonicalize_name",
    "changelog_problem",
    "dependency_closure",
    "dependents_of",
    "find_package",
    "find_repo_root",
    "load_packages",
    "working_directory",
]

LOCAL_PREFIX = "integrations-"
"""Distribution names of this workspace start with this; so do their dependencies on each other."""

NAMESPACE_LEVELS: tuple[str, ...] = ("integrations", "integrations/adapters")
"""PEP 420 namespace directories: shared by every distribution, so no file may live in them."""


class WorkspaceError(Exception):
    """A problem with the workspace layout or a request the tools cannot satisfy."""


@dataclass(frozen=True)
class LocalDependency:
    """A dependency of one workspace distribution on another, with its declared range."""

    name: str
    specifier: SpecifierSet
    declared: str
    """The requirement as written in pyproject.toml, for messages."""
    extra: str | None = None
    """The dependent's extra that pulls this dependency in; None when it is always needed."""
    extras: tuple[str, ...] = ()
    """Extras the dependent asks of the dependency (``integrations-mocks[test]``)."""

    def __str__(self) -> str:
        return self.declared if self.extra is None else f"{self.declared} (extra {self.extra})"


@dataclass(frozen=True)
class Package:
    """One distribution of the workspace, as its ``pyproject.toml`` declares it."""

    directory: Path
    name: str
    version: str
    requirements: tuple[LocalDependency, ...]
    """Dependencies on other workspace distributions, unconditional and per extra."""
    import_paths: tuple[str, ...]
    """Package directories the wheel carries, relative to the wheel root (``integrations/base``)."""
    extras: tuple[str, ...]

    @property
    def pyproject(self) -> Path:
        """The distribution's ``pyproject.toml``."""
        return self.directory / "pyproject.toml"

    @property
    def local_dependencies(self) -> tuple[LocalDependency, ...]:
        """The workspace distributions this one always needs."""
        return self.requires(())

    def requires(self, extras: Iterable[str]) -> tuple[LocalDependency, ...]:
        """The workspace distributions this one needs when installed with ``extras``."""
        chosen = set(extras)
        return tuple(d for d in self.requirements if d.extra is None or d.extra in chosen)

    @property
    def source_roots(self) -> tuple[Path, ...]:
        """Where each import path lives in the source tree."""
        return tuple(self.directory / "src" / path for path in self.import_paths)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view, for ``--json`` listings."""
        return {
            "directory": self.directory.as_posix(),
            "name": self.name,
            "version": self.version,
            "dependencies": [str(dependency) for dependency in self.requirements],
            "import_paths": list(self.import_paths),
            "extras": list(self.extras),
        }


def find_repo_root(start: Path | None = None) -> Path:
    """The workspace root: the nearest directory above ``start`` holding ``packages/``.

    The tools live in ``tools/``, so by default the search starts there; tests pass their own
    location. Finding the root by layout (not by git) also works inside a ``git archive``.
    """
    here = (start or Path(__file__)).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "packages").is_dir() and (candidate / "pyproject.toml").is_file():
            return candidate
    raise WorkspaceError(f"no workspace root (a directory with packages/) above {here}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise WorkspaceError(f"cannot read {path}: {error}") from error


def _local_dependencies(
    path: Path, requirements: Iterable[str], extra: str | None = None
) -> list[LocalDependency]:
    found: list[LocalDependency] = []
    for text in requirements:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            raise WorkspaceError(f"{path}: invalid dependency {text!r}: {error}") from error
        name = canonicalize_name(requirement.name)
        if name.startswith(LOCAL_PREFIX):
            extras = tuple(sorted(requirement.extras))
            found.append(LocalDependency(name, requirement.specifier, text, extra, extras))
    return found


def _all_local_dependencies(path: Path, project: dict[str, Any]) -> tuple[LocalDependency, ...]:
    """Local dependencies of ``[project].dependencies`` and of every optional-dependencies extra.

    A test extra may need another workspace distribution (integrations-base's tests drive the
    mock connector); installing that extra must bring the local distribution, not an index's.
    """
    found = _local_dependencies(path, project.get("dependencies", []))
    for extra, requirements in project.get("optional-dependencies", {}).items():
        found += _local_dependencies(path, requirements, extra)
    return tuple(found)


def _import_paths(path: Path, poetry: dict[str, Any]) -> tuple[str, ...]:
    includes = poetry.get("packages")
    if not isinstance(includes, list) or not includes:
        raise WorkspaceError(f"{path}: [tool.poetry].packages must list the import packages")
    paths: list[str] = []
    for include in includes:
        if not isinstance(include, dict) or not isinstance(include.get("include"), str):
            raise WorkspaceError(f"{path}: unsupported [tool.poetry].packages entry {include!r}")
        paths.append(str(include["include"]).strip("/"))
    return tuple(paths)


def load_package(directory: Path) -> Package:
    """Read one distribution's ``pyproject.toml``."""
    path = directory / "pyproject.toml"
    data = _read_toml(path)
    project = data.get("project")
    if not isinstance(project, dict):
        raise WorkspaceError(f"{path}: no [project] table")
    name, version = project.get("name"), project.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise WorkspaceError(f"{path}: [project] needs a static name and version")
    poetry = data.get("tool", {}).get("poetry", {})
    return Package(
        directory=directory,
        name=canonicalize_name(name),
        version=version,
        requirements=_all_local_dependencies(path, project),
        import_paths=_import_paths(path, poetry),
        extras=tuple(project.get("optional-dependencies", {})),
    )


def load_packages(root: Path | None = None) -> list[Package]:
    """Every distribution under ``packages/``, sorted by name."""
    root = root or find_repo_root()
    directories = sorted(p.parent for p in (root / "packages").glob("*/pyproject.toml"))
    if not directories:
        raise WorkspaceError(f"no packages/*/pyproject.toml under {root}")
    return sorted((load_package(d) for d in directories), key=lambda p: p.name)


def find_package(packages: Sequence[Package], name: str) -> Package:
    """The distribution called ``name`` (or living in ``packages/<name>``)."""
    wanted = canonicalize_name(name)
    for package in packages:
        if wanted in (package.name, canonicalize_name(package.directory.name)):
            return package
    known = ", ".join(p.name for p in packages)
    raise WorkspaceError(f"unknown distribution {name!r}; the workspace has: {known}")


def dependency_closure(
    packages: Sequence[Package], requests: Mapping[str, Iterable[str]]
) -> dict[str, tuple[str, ...]]:
    """The requested distributions plus their workspace dependencies, transitively.

    ``requests`` maps each requested distribution to the extras it is installed with; the
    result maps every distribution of the closure to its extras. Dependencies pulled in by an
    extra count, and may loop back (integrations-base[test] needs integrations-mocks, which
    needs integrations-base): a loop is fine, since wheels build independently. A dependency on
    an ``integrations-*`` name the workspace does not have is an error: only an index could
    satisfy it.
    """
    closure: dict[str, set[str]] = {}
    pending = [(name, tuple(extras)) for name, extras in requests.items()]
    while pending:
        name, extras = pending.pop()
        package = find_package(packages, name)
        known = closure.get(package.name)
        if known is not None and set(extras) <= known:
            continue  # seen already, with at least these extras
        known = closure.setdefault(package.name, set())
        known.update(extras)
        pending.extend((d.name, d.extras) for d in package.requires(known))
    return {name: tuple(sorted(closure[name])) for name in sorted(closure)}


def dependents_of(packages: Sequence[Package], name: str) -> list[tuple[Package, LocalDependency]]:
    """Every distribution depending on ``name`` directly (or through an extra), with its range."""
    wanted = canonicalize_name(name)
    return [
        (package, dependency)
        for package in packages
        for dependency in package.requirements
        if dependency.name == wanted
    ]


def changelog_problem(package: Package, version: str) -> str | None:
    """Why ``package``'s CHANGELOG.md lacks a ``## <version>`` entry, or None when it has one.

    Each distribution is released on its own, so each keeps its own changelog; a release
    without an entry there is a release nobody can read about.
    """
    changelog = package.directory / "CHANGELOG.md"
    if not changelog.is_file():
        return f"{changelog} is missing"
    heading = re.compile(rf"^##\s+\[?{re.escape(version)}\]?(\s|$)", re.MULTILINE)
    if not heading.search(changelog.read_text(encoding="utf-8")):
        return f"{changelog} has no '## {version}' entry: describe the release there first"
    return None


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run a block in ``path``: poetry-core reads the current directory's ``pyproject.toml``."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _build(kind: str, package_dir: Path, out_dir: Path) -> Path:
    from poetry.core.masonry import api

    hook = api.build_wheel if kind == "wheel" else api.build_sdist
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with working_directory(package_dir.resolve()):
        try:
            filename = hook(str(out_dir))
        except Exception as error:
            raise WorkspaceError(f"building the {kind} of {package_dir} failed: {error}") from error
    return out_dir / filename


def build_wheel(package_dir: Path, out_dir: Path) -> Path:
    """Build the wheel of the distribution in ``package_dir`` into ``out_dir``; return its path."""
    return _build("wheel", package_dir, out_dir)


def build_sdist(package_dir: Path, out_dir: Path) -> Path:
    """Build the sdist of the distribution in ``package_dir`` into ``out_dir``; return its path."""
    return _build("sdist", package_dir, out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """List the workspace's distributions with versions, local ranges and import packages."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--json", action="store_true", help="print the listing as JSON")
    args = parser.parse_args(argv)
    try:
        packages = load_packages()
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([p.as_dict() for p in packages], indent=2))
        return 0
    for package in packages:
        needs = ", ".join(str(d) for d in package.requirements) or "-"
        imports = ", ".join(package.import_paths)
        print(f"{package.name} {package.version}  needs: {needs}  ships: {imports}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
