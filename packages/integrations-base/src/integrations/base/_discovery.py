"""Finding manifests and module files without importing anything.

Discovery must stay cheap and must never execute connector code: entry points are scanned
once per process, a distribution's manifest is located through its metadata (or, for
editable installs, by walking `sys.path`), and module files are located the same way so that
ownership can be checked before an import.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.requirements import Requirement

__all__ = [
    "ENTRY_POINT_GROUPS",
    "MANIFEST_GROUP",
    "ManifestSource",
    "clear_entry_point_cache",
    "distribution_extras",
    "distribution_identity",
    "distribution_manifests",
    "distribution_owns",
    "entry_points_by_group",
    "entry_points_in",
    "extra_providing",
    "find_module_file",
    "missing_extra_requirements",
    "normalize_name",
]

MANIFEST_GROUP = "integrations.manifests"
AUDIT_SINK_GROUP = "integrations.audit_sinks"
SECRET_PROVIDER_GROUP = "integrations.secret_providers"
CLI_GROUP = "integrations.cli"
"""Commands other distributions add to the `integrations` command (click commands or groups)."""
ENTRY_POINT_GROUPS = (MANIFEST_GROUP, AUDIT_SINK_GROUP, SECRET_PROVIDER_GROUP, CLI_GROUP)

_scan_lock = threading.Lock()
_scan: dict[str, tuple[metadata.EntryPoint, ...]] | None = None
"""The framework's entry points by group, from the one scan per process (None before it)."""

_GROUP_MARKER = "[integrations."


def _scan_distributions() -> dict[str, tuple[metadata.EntryPoint, ...]]:
    """Read every installed distribution's entry points once, keeping the framework's groups.

    The same distributions as `importlib.metadata.entry_points()`, in the same order and
    with the same rule for duplicates (the first on `sys.path` wins), but only files that
    mention one of our groups are parsed: parsing every entry point of every distribution is
    what makes the generic scan slow.
    """
    found: dict[str, list[metadata.EntryPoint]] = {group: [] for group in ENTRY_POINT_GROUPS}
    seen: set[str] = set()
    for distribution in metadata.distributions():
        key = _normalized_name(distribution)
        if key in seen:
            continue
        seen.add(key)
        text = _read_entry_points(distribution)
        if not text or _GROUP_MARKER not in text:
            continue
        for group, name, value in _parse_entry_points(text):
            if group in found:
                found[group].append(_entry_point(name, value, group, distribution))
    return {group: tuple(entries) for group, entries in found.items()}


def _normalized_name(distribution: metadata.Distribution) -> str:
    """The key `importlib.metadata` deduplicates distributions by (PEP 503 normalisation).

    Read from the ``<name>-<version>.dist-info`` directory name when there is one, as
    importlib does, so that no METADATA file is parsed.
    """
    metadata_dir = getattr(distribution, "_path", None)
    stem = os.path.basename(os.fspath(metadata_dir)) if metadata_dir is not None else ""
    if stem.endswith((".dist-info", ".egg-info")) and "-" in stem:
        raw = stem.partition("-")[0]
    else:
        raw = distribution.metadata["Name"] or ""
    return _NON_ALPHANUMERIC.sub("_", raw).lower()


_NON_ALPHANUMERIC = re.compile(r"[-_.]+")


def _read_entry_points(distribution: metadata.Distribution) -> str | None:
    metadata_dir = getattr(distribution, "_path", None)
    if metadata_dir is None:
        return distribution.read_text("entry_points.txt")
    try:
        with open(os.path.join(os.fspath(metadata_dir), "entry_points.txt"), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def _parse_entry_points(text: str) -> list[tuple[str, str, str]]:
    """(group, name, value) triples of an entry_points.txt (an INI file without continuations)."""
    triples: list[tuple[str, str, str]] = []
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
        elif "=" in line and group:
            name, _, value = line.partition("=")
            triples.append((group, name.strip(), value.strip()))
    return triples


def _entry_point(
    name: str, value: str, group: str, distribution: metadata.Distribution
) -> metadata.EntryPoint:
    entry_point = metadata.EntryPoint(name=name, value=value, group=group)
    # EntryPoint is immutable; importlib.metadata attaches the distribution the same way.
    vars(entry_point)["dist"] = distribution
    return entry_point


def entry_points_in(group: str) -> tuple[metadata.EntryPoint, ...]:
    """The entry points of one of the framework's groups, from the one scan per process."""
    global _scan
    with _scan_lock:
        if _scan is None:
            _scan = _scan_distributions()
        return _scan[group]


def entry_points_by_group() -> Mapping[str, tuple[metadata.EntryPoint, ...]]:
    """Every entry point of the framework's groups, from one scan per process."""
    return {group: entry_points_in(group) for group in ENTRY_POINT_GROUPS}


def clear_entry_point_cache() -> None:
    """Forget the scan, so that the next discovery sees distributions installed since."""
    global _scan
    with _scan_lock:
        _scan = None
    with _ownership_lock:
        _ownership.clear()
        _identities.clear()
    with _extras_lock:
        _extras.clear()
        _installed.clear()


@dataclass(frozen=True, slots=True)
class ManifestSource:
    """A manifest announced by a distribution's entry point."""

    label: str
    package: str
    distribution: metadata.Distribution | None
    path: Path | None
    problem: str | None


def distribution_manifests(filename: str) -> list[ManifestSource]:
    """Locate the manifest of every distribution in the `integrations.manifests` group."""
    sources = [_locate(entry_point, filename) for entry_point in entry_points_in(MANIFEST_GROUP)]
    return sorted(sources, key=lambda source: source.label)


def _locate(entry_point: metadata.EntryPoint, filename: str) -> ManifestSource:
    package = entry_point.value.strip()
    distribution = getattr(entry_point, "dist", None)
    if ":" in package or not package:
        problem = f"entry point {entry_point.name!r} must name a package, not {package!r}"
        return ManifestSource(entry_point.name, package, distribution, None, problem)
    relative = os.path.join(*package.split("."), filename)
    root = _installation_root(distribution)
    if root is not None:
        candidate = os.path.join(root, relative)
        if os.path.isfile(candidate):
            return ManifestSource(entry_point.name, package, distribution, Path(candidate), None)
    package_dir = find_package_dir(package)
    if package_dir is not None and (package_dir / filename).is_file():
        return ManifestSource(entry_point.name, package, distribution, package_dir / filename, None)
    problem = f"package {package!r} has no {filename}"
    return ManifestSource(entry_point.name, package, distribution, None, problem)


def _installation_root(distribution: metadata.Distribution | None) -> str | None:
    """The directory a distribution's files are installed relative to (site-packages)."""
    if distribution is None:
        return None
    metadata_dir = getattr(distribution, "_path", None)  # set by importlib's PathDistribution
    if metadata_dir is not None:
        return os.path.dirname(str(metadata_dir))
    return str(distribution.locate_file(""))


def _search_path() -> list[Path]:
    return [Path(entry or os.curdir) for entry in sys.path if isinstance(entry, str)]


def find_package_dir(package: str) -> Path | None:
    """The first directory on `sys.path` holding `package`, found without importing it."""
    relative = Path(*package.split("."))
    for root in _search_path():
        candidate = root / relative
        if candidate.is_dir():
            return candidate
    return None


def find_module_file(module: str) -> Path | None:
    """The file that `import module` would load, found without importing it.

    Follows the path-based finder's order for source modules and packages; modules served
    by custom import hooks are not found, so their entries are reported broken, never imported.
    """
    if module in sys.modules:
        loaded = getattr(sys.modules[module], "__file__", None)
        if loaded:
            return Path(loaded).resolve()
    relative = os.path.join(*module.split("."))  # plain strings: pathlib costs 2x here
    roots = [entry or os.curdir for entry in sys.path if isinstance(entry, str)]
    for root in roots:
        base = os.path.join(root, relative)
        for candidate in (os.path.join(base, "__init__.py"), base + ".py"):
            if os.path.isfile(candidate):
                return Path(os.path.realpath(candidate))
    return None


# Keyed by the distribution objects of the scan (identity): reading a key must not parse
# metadata, and `clear_entry_point_cache` drops both caches with the scan they came from.
_ownership_lock = threading.Lock()
_ownership: dict[metadata.Distribution, tuple[str, frozenset[str], tuple[Path, ...]]] = {}
_identities: dict[metadata.Distribution, tuple[str | None, str | None]] = {}


def distribution_identity(distribution: metadata.Distribution) -> tuple[str | None, str | None]:
    """The distribution's name and version, read from its metadata once per scan."""
    with _ownership_lock:
        if distribution in _identities:
            return _identities[distribution]
    found = distribution.metadata
    identity = (found["Name"], found["Version"])
    with _ownership_lock:
        _identities[distribution] = identity
    return identity


def _installed_paths(
    distribution: metadata.Distribution,
) -> tuple[str, frozenset[str], tuple[Path, ...]]:
    """Where a distribution installs, the files it lists there, and its `.pth` source roots.

    File names stay as RECORD spells them (relative, ``/``-separated), so no file is stat'ed
    or resolved until a module is actually checked.
    """
    with _ownership_lock:
        if distribution in _ownership:
            return _ownership[distribution]
    root = os.path.realpath(_installation_root(distribution) or os.curdir)
    files: set[str] = set()
    roots: list[Path] = []
    for item in distribution.files or ():
        relative = item.as_posix()
        files.add(relative)
        if relative.endswith(".pth"):
            pth = os.path.join(root, relative)
            if os.path.isfile(pth):
                roots.extend(_pth_roots(Path(pth)))
    result = (root, frozenset(files), tuple(roots))
    with _ownership_lock:
        _ownership[distribution] = result
    return result


def _pth_roots(pth: Path) -> list[Path]:
    lines = pth.read_text(encoding="utf-8", errors="replace").splitlines()
    return [
        Path(line.strip()).resolve()
        for line in lines
        if line.strip() and not line.startswith(("#", "import ", "import\t"))
    ]


def distribution_owns(distribution: metadata.Distribution, module_file: Path) -> bool:
    """Whether `module_file` was installed by `distribution` (as a file or an editable root)."""
    root, files, roots = _installed_paths(distribution)
    relative = os.path.relpath(module_file, root).replace(os.sep, "/")
    if relative in files:
        return True
    return any(module_file.is_relative_to(source) for source in roots)


# -- optional extras ---------------------------------------------------------------------------

_extras_lock = threading.Lock()
_extras: dict[metadata.Distribution, dict[str, tuple[Requirement, ...]]] = {}
_installed: dict[str, metadata.Distribution | None] = {}


def normalize_name(name: str) -> str:
    """A distribution or extra name as PEP 503 / PEP 685 compare them."""
    return _NON_ALPHANUMERIC.sub("-", name).lower()


def distribution_extras(distribution: metadata.Distribution) -> dict[str, tuple[Requirement, ...]]:
    """Each extra the distribution provides (normalised name) and the requirements it adds.

    Read from the metadata (``Provides-Extra``, ``Requires-Dist ...; extra == "x"``) once per
    scan; nothing is imported.
    """
    with _extras_lock:
        if distribution in _extras:
            return _extras[distribution]
    from packaging.requirements import InvalidRequirement, Requirement

    found = distribution.metadata
    extras: dict[str, list[Requirement]] = {
        normalize_name(extra): [] for extra in found.get_all("Provides-Extra") or ()
    }
    for line in found.get_all("Requires-Dist") or ():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        if marker is None or marker.evaluate({"extra": ""}):
            continue  # a plain dependency, needed with or without an extra
        for extra, requirements in extras.items():
            if marker.evaluate({"extra": extra}):
                requirements.append(requirement)
    result = {extra: tuple(requirements) for extra, requirements in extras.items()}
    with _extras_lock:
        _extras[distribution] = result
    return result


def missing_extra_requirements(distribution: metadata.Distribution, extra: str) -> list[str]:
    """The requirements of `extra` (and of the extras they name) that are not installed.

    Checked by looking the required distributions up in the installed metadata, never by
    importing them; a required extra of another distribution is followed (a bounded walk).
    """
    missing: list[str] = []
    pending = [(distribution, normalize_name(extra))]
    seen: set[tuple[str, str]] = set()
    while pending and len(seen) < 64:
        owner, wanted = pending.pop()
        key = (normalize_name(distribution_identity(owner)[0] or ""), wanted)
        if key in seen:
            continue
        seen.add(key)
        for requirement in distribution_extras(owner).get(wanted, ()):
            installed = _installed_distribution(requirement.name)
            if installed is None:
                missing.append(requirement.name)
                continue
            pending.extend((installed, normalize_name(item)) for item in requirement.extras)
    return sorted(set(missing))


def _installed_distribution(name: str) -> metadata.Distribution | None:
    """The installed distribution called `name`, looked up once per scan."""
    key = normalize_name(name)
    with _extras_lock:
        if key in _installed:
            return _installed[key]
    found: metadata.Distribution | None
    try:
        found = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        found = None
    with _extras_lock:
        _installed[key] = found
    return found


def extra_providing(distribution: metadata.Distribution, module: str) -> str | None:
    """The extra whose requirements include the distribution that `import module` would need.

    Matches the module's top-level name against the required distributions' names (``redis``
    for ``redis[hiredis]``, ``psycopg`` for ``psycopg[binary]``), the usual spelling.
    """
    top = normalize_name(module.split(".")[0])
    for extra, requirements in distribution_extras(distribution).items():
        if any(normalize_name(requirement.name) == top for requirement in requirements):
            return extra
    return None
