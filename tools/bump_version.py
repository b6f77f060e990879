"""Bump one distribution's version, refusing a bump that would leave the workspace inconsistent.

Distributions are versioned independently, so a bump touches one ``pyproject.toml`` only. It
is refused unless the distribution's CHANGELOG.md already has a ``## <new version>`` entry and
every workspace distribution that depends on it still admits the new version in its declared
range (otherwise the next install of that dependent would pick an older release, or none).

The version is written by ``poetry version`` in the package directory when poetry is
available, else by editing ``[project].version`` directly. A failure after writing restores
the file byte for byte: nothing is left half-done.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# tools/ is not an installed package: make `tools._workspace` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools._workspace import (
    InvalidVersion,
    Package,
    Version,
    WorkspaceError,
    changelog_problem,
    dependents_of,
    find_package,
    find_repo_root,
    load_package,
    load_packages,
)

RULES = ("major", "minor", "patch")
_TABLE_HEADER = re.compile(r"^\s*\[(?P<name>[^\[\]]+)\]\s*(#.*)?$")
_VERSION_LINE = re.compile(
    r"""^(?P<head>version\s*=\s*)(?P<quote>["'])[^"']*(?P=quote)(?P<tail>.*)$"""
)


def poetry_command() -> list[str] | None:
    """How to run poetry here (on PATH, or as a module of this interpreter), or None."""
    found = shutil.which("poetry")
    if found:
        return [found]
    if importlib.util.find_spec("poetry.console") is not None:
        return [sys.executable, "-m", "poetry"]
    return None


def run_poetry(poetry: list[str], package: Package, *arguments: str) -> str:
    """Run ``poetry version ...`` in the package directory; return its output."""
    command = [*poetry, "--no-interaction", "--no-ansi", "--no-plugins", "version", *arguments]
    done = subprocess.run(
        command, cwd=package.directory, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise WorkspaceError(f"poetry version {' '.join(arguments)} failed: {detail}")
    return done.stdout.strip()


def next_version_without_poetry(current: str, rule: str) -> str:
    """The version after ``rule`` (major, minor, patch or an explicit version)."""
    if rule not in RULES:
        return str(Version(rule))
    major, minor, patch = (*Version(current).release, 0, 0)[:3]
    if rule == "major":
        return f"{major + 1}.0.0"
    if rule == "minor":
        return f"{major}.{minor + 1}.0"
    return f"{major}.{minor}.{patch + 1}"


def next_version(poetry: list[str] | None, package: Package, rule: str) -> str:
    """The version the bump would write, computed without writing it."""
    if poetry is None:
        return next_version_without_poetry(package.version, rule)
    return run_poetry(poetry, package, "--dry-run", "--short", rule).splitlines()[-1].strip()


def problems_with(packages: Sequence[Package], package: Package, new: str) -> list[str]:
    """Every reason the workspace would be inconsistent with ``package`` at version ``new``."""
    try:
        target = Version(new)
    except InvalidVersion:
        return [f"{new!r} is not a valid version"]
    problems: list[str] = []
    if target <= Version(package.version):
        problems.append(f"{new} is not above the current {package.name} {package.version}")
    if (problem := changelog_problem(package, new)) is not None:
        problems.append(problem)
    for dependent, dependency in dependents_of(packages, package.name):
        if not dependency.specifier.contains(target, prereleases=True):
            problems.append(
                f"{dependent.name} requires {dependency}, which does not admit {new}: widen "
                f"its range in {dependent.pyproject} (and release it) in the same change"
            )
    return problems


def write_version(poetry: list[str] | None, package: Package, new: str) -> None:
    """Write ``new`` into ``[project].version``."""
    if poetry is not None:
        run_poetry(poetry, package, new)
        return
    lines = package.pyproject.read_text(encoding="utf-8").splitlines(keepends=True)
    package.pyproject.write_text("".join(edit_project_version(lines, new)), encoding="utf-8")


def edit_project_version(lines: Sequence[str], new: str) -> list[str]:
    """``lines`` of a pyproject.toml with the ``version`` key of ``[project]`` set to ``new``.

    Only a top-level ``version = "..."`` line inside the ``[project]`` table is touched, so
    a ``version`` key of another table (a dependency's, a tool's) is left alone.
    """
    table = ""
    edited = list(lines)
    for index, line in enumerate(lines):
        if header := _TABLE_HEADER.match(line):
            table = header["name"].strip()
        elif table == "project" and (match := _VERSION_LINE.match(line)):
            quote, ending = match["quote"], line[len(line.rstrip("\r\n")) :]
            edited[index] = f"{match['head']}{quote}{new}{quote}{match['tail']}{ending}"
            return edited
    raise WorkspaceError(f"no static [project].version line to edit (wanted {new})")


def bump(package: Package, rule: str, *, dry_run: bool) -> int:
    """Check, write, re-check; restore the file on any failure after writing."""
    poetry = poetry_command()
    how = "poetry version" if poetry else "a direct edit of [project].version (no poetry found)"
    new = next_version(poetry, package, rule)
    packages = load_packages(find_repo_root())
    problems = problems_with(packages, package, new)
    if problems:
        return refuse(package, new, problems)
    if dry_run:
        print(f"{package.name} {package.version} -> {new}: consistent (dry run, nothing written)")
        return 0
    original = package.pyproject.read_bytes()
    try:
        write_version(poetry, package, new)
        written = load_package(package.directory)
        if written.version != new:
            raise WorkspaceError(f"{package.pyproject} holds {written.version} after the bump")
    except WorkspaceError as error:
        package.pyproject.write_bytes(original)
        return refuse(package, new, [f"{error} (restored {package.version})"])
    print(f"{package.name} {package.version} -> {new} (written by {how})")
    return 0


def refuse(package: Package, new: str, problems: Sequence[str]) -> int:
    """Report why the bump is refused; nothing has been (or remains) written."""
    print(f"refusing to bump {package.name} {package.version} -> {new}:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and bump."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", metavar="DIST", help="distribution name, e.g. integrations-base")
    parser.add_argument("rule", metavar="RULE", help="major, minor, patch, or a version X.Y.Z")
    parser.add_argument("--dry-run", action="store_true", help="check only, write nothing")
    args = parser.parse_args(argv)
    try:
        package = find_package(load_packages(find_repo_root()), args.dist)
        if args.rule not in RULES:
            Version(args.rule)
        return bump(package, args.rule, dry_run=args.dry_run)
    except InvalidVersion:
        print(f"error: {args.rule!r} is neither {', '.join(RULES)} nor a version", file=sys.stderr)
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
