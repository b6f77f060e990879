"""Released sources kept in the repository: what ``install_local.py --base min`` builds from.

A dependent's range may admit an ``integrations-base`` older than the working tree's, and the
``compat-*-basemin`` environments must test against exactly that release. Its sources are kept
as the sdist built from the release tag, in ``releases/``, with a ``SHA256SUMS`` line each, so
any clone can rebuild it: a shallow or tag-less clone (as CI systems make) has no tag to build
from, and a package index may not hold our releases at all.

``tools/release_tag.py --create`` writes the archive when it tags a release;
``--archive`` writes it for a tag that exists already.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import tempfile
from pathlib import Path

from tools._workspace import (
    InvalidVersion,
    Package,
    Version,
    WorkspaceError,
    build_sdist,
    canonicalize_name,
    load_package,
)

RELEASES = "releases"
"""The directory, at the repository root, that holds released sdists."""

CHECKSUMS = "SHA256SUMS"
"""``sha256sum``-format list of the archives in ``releases/``: ``<hex>  <file name>``."""


def _find_archive(root: Path, name: str, version: Version) -> Path | None:
    """The sdist of ``name`` at ``version`` in ``releases/`` (any spelling of the version)."""
    prefix = f"{canonicalize_name(name).replace('-', '_')}-"
    for archive in sorted((root / RELEASES).glob(f"{prefix}*.tar.gz")):
        try:
            if Version(archive.name.removeprefix(prefix).removesuffix(".tar.gz")) == version:
                return archive
        except InvalidVersion:
            continue
    return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_checksums(root: Path) -> dict[str, str]:
    """File name → SHA-256 from ``releases/SHA256SUMS`` (empty when there is none)."""
    listing = root / RELEASES / CHECKSUMS
    if not listing.exists():
        return {}
    checksums: dict[str, str] = {}
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, filename = line.partition("  ")
        if len(digest) != 64 or not filename:
            raise WorkspaceError(f"{listing}:{number}: expected '<sha256>  <file name>'")
        checksums[filename.strip()] = digest
    return checksums


def _write_checksums(root: Path, checksums: dict[str, str]) -> None:
    lines = [f"{digest}  {filename}\n" for filename, digest in sorted(checksums.items())]
    (root / RELEASES / CHECKSUMS).write_text("".join(lines))


def _extract(archive: Path, destination: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, filter="data")
        else:  # Python before 3.11.4
            tar.extractall(destination)


def released_source(root: Path, name: str, version: Version, scratch: Path) -> Package:
    """Unpack the checked release archive of ``name`` ``version`` into ``scratch``.

    A missing archive, a checksum that differs, or an archive holding another version is an
    error: the current sources are never used in place of a release.
    """
    archive = _find_archive(root, name, version)
    if archive is None:
        raise WorkspaceError(
            f"the lowest admitted {name} is {version}, but {RELEASES}/ holds no sdist of it. "
            f"Write it from the release tag (tools/release_tag.py {name} --archive {version}) "
            "or raise "
            f"the dependents' lower bound; the current {name} is not used in its place."
        )
    filename = archive.name
    expected = read_checksums(root).get(filename)
    if expected is None:
        raise WorkspaceError(f"{RELEASES}/{CHECKSUMS} has no line for {filename}")
    actual = _sha256(archive)
    if actual != expected:
        raise WorkspaceError(
            f"{RELEASES}/{filename} has SHA-256 {actual}, but {CHECKSUMS} records {expected}"
        )
    _extract(archive, scratch)
    released = load_package(scratch / filename.removesuffix(".tar.gz"))
    if Version(released.version) != version:
        raise WorkspaceError(f"{filename} holds {name} {released.version}, not {version}")
    return released


def archive_release(root: Path, package: Package, tag: str) -> Path:
    """Build the sdist of ``package`` as tagged by ``tag`` into ``releases/`` and record it."""
    relative = package.directory.relative_to(root).as_posix()
    with tempfile.TemporaryDirectory(prefix="integrations-release-") as scratch:
        tree = Path(scratch) / "tree.tar"
        command = ["git", "-C", str(root), "archive", "--format=tar", f"--output={tree}", tag]
        try:
            subprocess.run(
                [*command, "--", relative],
                check=True,
                capture_output=True,
                text=True,
            )
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or str(error)
            raise WorkspaceError(f"git archive {tag} failed: {detail.strip()}") from error
        _extract(tree, Path(scratch))
        tagged = load_package(Path(scratch) / relative)
        if Version(tagged.version) != Version(tag.split("==", 1)[-1]):
            raise WorkspaceError(f"tag {tag} holds {package.name} {tagged.version}")
        archive = build_sdist(tagged.directory, root / RELEASES)
    checksums = read_checksums(root)
    checksums[archive.name] = _sha256(archive)
    _write_checksums(root, checksums)
    return archive
