"""Print, or create with ``--create``, the release tag ``<dist>==<version>`` of one distribution.

Each distribution is released on its own, so each has its own tags. A tag must name the commit
that holds the released sources: the tool refuses a working tree with uncommitted changes to
tracked files, an existing tag, and a version without a CHANGELOG entry.

Creating a tag also writes the release's sdist, built from the tagged tree, into ``releases/``
with its checksum (commit both): ``tools/install_local.py --base min`` builds an older
integrations-base from there, because a shallow or tag-less clone has no tags to build from.
``--archive`` writes that archive for a tag that exists already.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# tools/ is not an installed package: make `tools._workspace` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools._releases import archive_release
from tools._workspace import (
    Package,
    WorkspaceError,
    changelog_problem,
    find_package,
    find_repo_root,
    load_packages,
)


def git(root: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run git in the workspace; a missing git is a workspace error."""
    try:
        return subprocess.run(
            ["git", "-C", str(root), *arguments], capture_output=True, text=True, check=False
        )
    except OSError as error:
        raise WorkspaceError(f"cannot run git: {error}") from error


def tag_problems(root: Path, tag: str, changelog: str | None) -> list[str]:
    """Why ``tag`` must not be created now (an empty list when it may)."""
    problems: list[str] = []
    status = git(root, "status", "--porcelain", "--untracked-files=no")
    if status.returncode != 0:
        problems.append(f"git status failed: {status.stderr.strip()}")
    elif status.stdout.strip():
        changed = ", ".join(line[3:] for line in status.stdout.splitlines())
        problems.append(f"the working tree has uncommitted changes ({changed}): commit first")
    if git(root, "rev-parse", "--quiet", "--verify", f"refs/tags/{tag}").returncode == 0:
        problems.append(f"the tag {tag} exists already: bump the version for a new release")
    if changelog is not None:
        problems.append(changelog)
    return problems


def write_archive(root: Path, package: Package, tag: str) -> int:
    """Archive the release named by ``tag`` into ``releases/``; say what to commit."""
    try:
        archive = archive_release(root, package, tag)
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {archive.relative_to(root)}: commit it with releases/SHA256SUMS")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Check the release, then print the tag or create it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", metavar="DIST", help="distribution name, e.g. integrations-base")
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--create", action="store_true", help="create the annotated tag and archive the release"
    )
    action.add_argument(
        "--archive",
        metavar="VERSION",
        help="write releases/ sdist of the existing tag <dist>==VERSION",
    )
    args = parser.parse_args(argv)
    try:
        root = find_repo_root()
        package = find_package(load_packages(root), args.dist)
        if args.archive:
            return write_archive(root, package, f"{package.name}=={args.archive}")
        tag = f"{package.name}=={package.version}"
        problems = tag_problems(root, tag, changelog_problem(package, package.version))
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if problems:
        print(f"refusing to tag {tag}:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    if args.create:
        message = f"{package.name} {package.version}"
        created = git(root, "tag", "--annotate", "--message", message, tag)
        if created.returncode != 0:
            print(f"error: git tag failed: {created.stderr.strip()}", file=sys.stderr)
            return 1
        print(f"created tag {tag}")
        return write_archive(root, package, tag)
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
