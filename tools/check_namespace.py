"""Check the PEP 420 namespace rule over the package sources and, optionally, built wheels.

Every distribution shares the ``integrations`` and ``integrations.adapters`` namespaces, so
neither level may hold a file of any distribution: an ``__init__.py`` there turns the namespace
into a regular package that hides its siblings (and breaks editable installs with ``No module
named 'integrations.adapters'``), and a ``py.typed`` there makes mypy treat every sibling as
typed. Each leaf package carries its own ``py.typed`` instead.

Built wheels must also carry installable metadata: a dependency on another ``integrations-*``
distribution is a version range, never a ``file://`` URL left over from a path dependency.

Exits 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import email.parser
import sys
import zipfile
from collections.abc import Iterable, Sequence
from configparser import ConfigParser
from pathlib import Path, PurePosixPath

# tools/ is not an installed package: make `tools._workspace` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools._workspace import (
    LOCAL_PREFIX,
    NAMESPACE_LEVELS,
    InvalidRequirement,
    Package,
    Requirement,
    SpecifierSet,
    WorkspaceError,
    canonicalize_name,
    find_repo_root,
    load_packages,
)

MANIFEST_GROUP = "integrations.manifests"
_LOWER_BOUNDS = frozenset({">=", ">", "~=", "=="})
_UPPER_BOUNDS = frozenset({"<", "<=", "~=", "=="})


def is_version_range(specifier: SpecifierSet) -> bool:
    """Whether ``specifier`` bounds the version from below and from above."""
    operators = {spec.operator for spec in specifier}
    return bool(operators & _LOWER_BOUNDS) and bool(operators & _UPPER_BOUNDS)


def _stray_files(level: Path) -> list[Path]:
    return sorted(p for p in level.iterdir() if not p.is_dir()) if level.is_dir() else []


def _undeclared_leaves(package: Package, level: Path) -> list[Path]:
    """Directories in a namespace level that the wheel would silently leave out."""
    if not level.is_dir():
        return []
    declared = set(package.source_roots) | {package.directory / "src" / "integrations/adapters"}
    return sorted(
        p for p in level.iterdir() if p.is_dir() and p.name != "__pycache__" and p not in declared
    )


def check_source_package(package: Package) -> list[str]:
    """Problems of one distribution's source tree."""
    problems: list[str] = []
    src = package.directory / "src"
    for relative in NAMESPACE_LEVELS:
        level = src / relative
        problems.extend(
            f"{path}: file directly in the namespace {relative}/ (move it into a leaf package)"
            for path in _stray_files(level)
        )
        problems.extend(
            f"{path}: package directory not declared in [tool.poetry].packages of "
            f"{package.pyproject}, so no wheel ships it"
            for path in _undeclared_leaves(package, level)
        )
    for root in package.source_roots:
        if not root.is_dir():
            problems.append(f"{root}: declared in {package.pyproject} but missing")
            continue
        problems.extend(
            f"{root}: leaf package without {marker}"
            for marker in ("__init__.py", "py.typed")
            if not (root / marker).is_file()
        )
    return problems


def check_sources(packages: Iterable[Package]) -> list[str]:
    """Problems of every distribution's source tree."""
    return [problem for package in packages for problem in check_source_package(package)]


def _leaf_of(path: PurePosixPath) -> PurePosixPath | None:
    """The leaf package a wheel member belongs to (None for metadata and top-level modules)."""
    parts = path.parts
    if parts[0].endswith((".dist-info", ".data")):
        return None
    if parts[0] != "integrations":
        return PurePosixPath(parts[0]) if len(parts) >= 2 else None
    if len(parts) >= 4 and parts[1] == "adapters":
        return PurePosixPath(*parts[:3])
    if len(parts) >= 3 and parts[1] != "adapters":
        return PurePosixPath(*parts[:2])
    return None


def _metadata_problems(wheel: Path, metadata_text: str) -> list[str]:
    problems: list[str] = []
    if "file://" in metadata_text:
        problems.append(f"{wheel.name}: METADATA contains a file:// URL")
    metadata = email.parser.Parser().parsestr(metadata_text, headersonly=True)
    for text in metadata.get_all("Requires-Dist") or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            problems.append(f"{wheel.name}: unparsable Requires-Dist {text!r}: {error}")
            continue
        if not canonicalize_name(requirement.name).startswith(LOCAL_PREFIX):
            continue
        if requirement.url is not None or not is_version_range(requirement.specifier):
            problems.append(
                f"{wheel.name}: Requires-Dist {text!r} must be a version range such as "
                f"'{requirement.name}>=X,<Y'"
            )
    return problems


def _manifest_paths(entry_points_text: str) -> list[PurePosixPath]:
    """Where the manifests announced by a wheel's entry points must be inside the wheel."""
    parser = ConfigParser(delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep names' case
    parser.read_string(entry_points_text)
    if not parser.has_section(MANIFEST_GROUP):
        return []
    return [
        PurePosixPath(*value.split(":")[0].strip().split("."), "manifest.json")
        for _, value in parser.items(MANIFEST_GROUP)
    ]


def check_wheel(wheel: Path) -> list[str]:
    """Problems of one built wheel."""
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        dist_info = next((n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA")), "")
        if not dist_info:
            return [f"{wheel.name}: no .dist-info/METADATA"]
        metadata_text = archive.read(f"{dist_info}/METADATA").decode("utf-8")
        entry_points = f"{dist_info}/entry_points.txt"
        entry_text = archive.read(entry_points).decode("utf-8") if entry_points in names else ""
    members = {PurePosixPath(n) for n in names}
    problems = [
        f"{wheel.name}: {path} is directly in the namespace {path.parent}/"
        for path in sorted(members)
        if path.parent.as_posix() in NAMESPACE_LEVELS
    ]
    leaves = sorted({leaf for path in members if (leaf := _leaf_of(path)) is not None})
    problems.extend(
        f"{wheel.name}: leaf package {leaf}/ has no {marker}"
        for leaf in leaves
        for marker in ("__init__.py", "py.typed")
        if leaf / marker not in members
    )
    problems.extend(
        f"{wheel.name}: entry point group {MANIFEST_GROUP} announces {path}, which is missing"
        for path in _manifest_paths(entry_text)
        if path not in members
    )
    problems.extend(_metadata_problems(wheel, metadata_text))
    return problems


def check_wheels(directory: Path) -> list[str]:
    """Problems of every wheel in ``directory`` (none there is a problem too)."""
    wheels = sorted(directory.glob("*.whl"))
    if not wheels:
        return [f"{directory}: no wheels to check (build them with tools/build_all.py)"]
    return [problem for wheel in wheels for problem in check_wheel(wheel)]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the source checks, and the wheel checks when ``--wheels`` is given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="also check every *.whl in this directory")
    args = parser.parse_args(argv)
    try:
        packages = load_packages(find_repo_root())
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    problems = check_sources(packages)
    checked = f"{len(packages)} source trees"
    if args.wheels is not None:
        problems += check_wheels(args.wheels)
        checked += f" and {len(list(args.wheels.glob('*.whl')))} wheels in {args.wheels}"
    for problem in problems:
        print(f"namespace rule: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {checked}", file=sys.stderr)
        return 1
    print(f"namespace rule holds for {checked}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
