"""Install workspace distributions into the running interpreter from wheels built right now.

Every tox environment calls this before its tests. It builds the wheels of the requested
distributions and of their ``integrations-*`` dependencies (transitively) from the package
sources, then hands pip the wheel files themselves, so a same-named project on an index can
never stand in for a workspace distribution. Third-party dependencies (pydantic, ...) still
come from the index.

``--base min`` installs the lowest ``integrations-base`` the dependents' ranges admit. When
that is not the working tree's version, it is built from that release's sdist in
``releases/`` (checked against ``releases/SHA256SUMS``) into ``.wheelhouse/``; a missing or
altered archive is an error, never a silent fall-back to the current base.

After installing, the set of installed ``integrations-*`` distributions must be exactly the
requested closure; distributions left over from an earlier run are removed first, so the
environment proves what it claims (and a rebuilt wheel of an unchanged version is really
reinstalled: pip keeps an installed local wheel of the same version).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# tools/ is not an installed package: make `tools._workspace` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools._releases import RELEASES, released_source
from tools._workspace import (
    NAMESPACE_LEVELS,
    Package,
    SpecifierSet,
    Version,
    WorkspaceError,
    build_wheel,
    canonicalize_name,
    dependency_closure,
    find_package,
    find_repo_root,
    load_packages,
)

BASE = "integrations-base"
WHEELHOUSE = ".wheelhouse"

_INSTALLED_SCRIPT = """
import importlib.metadata, json, sys
found = {}
for dist in importlib.metadata.distributions():
    name = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
    if name.startswith(sys.argv[1]):
        found[name] = dist.version
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Plan:
    """What to install: the closure, how, and with which base."""

    closure: list[Package]
    requested: list[Package]
    extras: dict[str, tuple[str, ...]]
    """The extras each distribution of the closure is installed with."""
    editable: bool
    base_pick: str | None
    base_version: Version | None
    """The base version to install when ``--base`` picks one."""


def say(message: str) -> None:
    """Progress output, prefixed so it stands out in tox logs."""
    print(f"install_local: {message}", flush=True)


def _extras_by_distribution(
    requested: Sequence[Package], extras: Sequence[str]
) -> dict[str, list[str]]:
    """Each requested distribution's extras: those of ``--extra`` it declares (none is an error)."""
    chosen: dict[str, list[str]] = {p.name: [] for p in requested}
    for extra in extras:
        owners = [p for p in requested if extra in p.extras]
        if not owners:
            names = ", ".join(p.name for p in requested)
            raise WorkspaceError(
                f"no requested distribution ({names}) declares the extra {extra!r}"
            )
        for owner in owners:
            chosen[owner.name].append(extra)
    return chosen


def lowest_admitted(dependents: Sequence[tuple[Package, str]]) -> Version:
    """The lowest version every dependent's range admits, read off the ranges' lower bounds."""
    bounds: list[Version] = []
    for package, text in dependents:
        inclusive = [s for s in SpecifierSet(text) if s.operator in (">=", "~=", "==")]
        if not inclusive:
            raise WorkspaceError(
                f"{package.name} requires {BASE}{text}: no inclusive lower bound, so there is "
                "no lowest admitted version to test against"
            )
        bounds.extend(Version(s.version.removesuffix(".*")) for s in inclusive)
    lowest = max(bounds)
    for package, text in dependents:
        if not SpecifierSet(text).contains(lowest, prereleases=True):
            raise WorkspaceError(f"{package.name} requires {BASE}{text}, which excludes {lowest}")
    return lowest


def _base_dependents(
    closure: Sequence[Package], extras: dict[str, tuple[str, ...]]
) -> list[tuple[Package, str]]:
    return [
        (package, str(dependency.specifier))
        for package in closure
        for dependency in package.requires(extras[package.name])
        if dependency.name == BASE
    ]


def pick_base(
    closure: Sequence[Package],
    requested: Sequence[Package],
    extras: dict[str, tuple[str, ...]],
    pick: str,
) -> Version:
    """The base version ``--base min|latest`` asks for, checked against every dependent."""
    if any(p.name == BASE for p in requested):
        raise WorkspaceError(f"--base picks the {BASE} of its dependents; do not request {BASE}")
    dependents = _base_dependents(closure, extras)
    if not dependents:
        raise WorkspaceError(f"--base {pick}: no requested distribution depends on {BASE}")
    base = next(p for p in closure if p.name == BASE)
    if pick == "min":
        return lowest_admitted(dependents)
    current = Version(base.version)
    for package, text in dependents:
        if not SpecifierSet(text).contains(current, prereleases=True):
            raise WorkspaceError(
                f"{package.name} requires {BASE}{text}, which excludes the current {BASE} "
                f"{current}: widen the range or bump {package.name}"
            )
    return current


def make_plan(args: argparse.Namespace) -> Plan:
    """Turn the command line into a checked plan before anything is built or installed."""
    packages = load_packages(find_repo_root())
    if args.all == bool(args.dists):
        raise WorkspaceError("name the distributions to install, or pass --all (not both)")
    requested = packages if args.all else [find_package(packages, n) for n in args.dists]
    extras = dependency_closure(packages, _extras_by_distribution(requested, args.extra))
    closure = [find_package(packages, name) for name in extras]
    base_version = pick_base(closure, requested, extras, args.base) if args.base else None
    return Plan(
        closure=closure,
        requested=requested,
        extras=extras,
        editable=args.editable,
        base_pick=args.base,
        base_version=base_version,
    )


def build_released(root: Path, package: Package, version: Version) -> Path:
    """Build ``package`` as released at ``version`` (from ``releases/``) into the wheelhouse."""
    with tempfile.TemporaryDirectory(prefix="integrations-release-") as scratch:
        released = released_source(root, package.name, version, Path(scratch))
        wheel = build_wheel(released.directory, root / WHEELHOUSE)
    say(f"built {package.name} {version} from {RELEASES}/: {wheel}")
    return wheel


def _requirement(package: Package, extras: Sequence[str], wheel: Path | None) -> list[str]:
    """pip arguments for one distribution: a wheel as ``name[extras] @ file:///...`` or ``-e``."""
    suffix = f"[{','.join(extras)}]" if extras else ""
    if wheel is None:
        return ["-e", f"{package.directory}{suffix}"]
    return [f"{package.name}{suffix} @ {wheel.resolve().as_uri()}"]


def pip_arguments(plan: Plan, root: Path, wheelhouse: Path) -> list[str]:
    """Build what needs building and return the pip install arguments for the whole closure."""
    arguments: list[str] = []
    for package in plan.closure:
        extras = plan.extras[package.name]
        is_base = package.name == BASE
        if is_base and plan.base_version == Version(package.version):
            say(f"--base {plan.base_pick}: {BASE} {package.version}, the working tree's")
        if is_base and plan.base_version and plan.base_version != Version(package.version):
            wheel: Path | None = build_released(root, package, plan.base_version)
        elif plan.editable:
            wheel = None
        else:
            wheel = build_wheel(package.directory, wheelhouse)
            say(f"built {wheel.name}")
        arguments += _requirement(package, extras, wheel)
    return arguments


def installed_local() -> dict[str, str]:
    """The ``integrations-*`` distributions installed in this interpreter, with versions.

    Asked in a fresh interpreter: this process's import machinery caches what it has seen.
    """
    done = subprocess.run(
        [sys.executable, "-c", _INSTALLED_SCRIPT, "integrations-"],
        check=True,
        capture_output=True,
        text=True,
    )
    found: dict[str, str] = json.loads(done.stdout)
    return found


def pip(*arguments: str) -> None:
    """Run pip of the running interpreter; a failure stops the tool."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    try:
        subprocess.run([*command, *arguments], check=True)
    except subprocess.CalledProcessError as error:
        raise WorkspaceError(f"pip {arguments[0]} failed (exit {error.returncode})") from error


def prune_empty_namespace_dirs() -> None:
    """Remove namespace directories that an uninstall emptied.

    pip leaves ``integrations/adapters/`` behind when it uninstalls the last adapter, and an
    empty directory still imports as a namespace portion: ``import integrations.adapters``
    would succeed with no adapter installed.
    """
    paths = sysconfig.get_paths()
    for lib in {Path(paths["purelib"]), Path(paths["platlib"])}:
        for relative in reversed(NAMESPACE_LEVELS):
            directory = lib / relative
            with contextlib.suppress(OSError):
                if directory.is_dir() and not any(directory.iterdir()):
                    directory.rmdir()


def verify(plan: Plan) -> None:
    """The installed ``integrations-*`` set is exactly the closure, with the picked base."""
    installed = installed_local()
    say("installed: " + ", ".join(f"{n}=={v}" for n, v in sorted(installed.items())))
    expected = {canonicalize_name(p.name) for p in plan.closure}
    if set(installed) != expected:
        extra = sorted(set(installed) - expected)
        missing = sorted(expected - set(installed))
        raise WorkspaceError(f"installed set differs: unexpected {extra}, missing {missing}")
    if plan.base_version is not None and Version(installed[BASE]) != plan.base_version:
        raise WorkspaceError(f"{BASE} {installed[BASE]} installed, {plan.base_version} expected")


def install(plan: Plan) -> None:
    """Build, remove leftovers, install, verify: a failed build leaves the environment as it was."""
    root = find_repo_root()
    with tempfile.TemporaryDirectory(prefix="integrations-wheels-") as wheelhouse:
        arguments = pip_arguments(plan, root, Path(wheelhouse))
        leftovers = sorted(installed_local())
        if leftovers:
            say("removing previously installed " + ", ".join(leftovers))
            pip("uninstall", "--yes", *leftovers)
            prune_empty_namespace_dirs()
        options = ["--no-build-isolation"] if plan.editable else []
        say("pip install " + " ".join(arguments))
        pip("install", "--progress-bar", "off", *options, *arguments)
    verify(plan)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, as tox.ini uses it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="X",
        help="install extra X of the requested distributions that declare it (repeatable)",
    )
    parser.add_argument(
        "--editable",
        action="store_true",
        help="install editable (pip install -e packages/<dir>) instead of from wheels",
    )
    parser.add_argument(
        "--base",
        choices=["min", "latest"],
        help=f"install the lowest or the current {BASE} the requested distributions admit",
    )
    parser.add_argument("--all", action="store_true", help="install every distribution")
    parser.add_argument("dists", nargs="*", metavar="DIST", help="distributions to install")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Plan, install and verify; print a one-line error and exit 1 on any problem."""
    args = parse_arguments(argv)
    try:
        plan = make_plan(args)
        say("closure: " + ", ".join(p.name for p in plan.closure))
        install(plan)
    except WorkspaceError as error:
        print(f"install_local: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
