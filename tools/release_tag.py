"""Print, or create with ``--create``, the release tag ``<dist>==<version>`` of one distribution.

Each distribution is released on its own, so each has its own tags. ``tools/install_local.py
--base min`` builds an older integrations-base from exactly these tags, so a tag must name the
commit that holds the released sources: the tool refuses a working tree with uncommitted
changes to tracked files, an existing tag, and a version without a CHANGELOG entry.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# tools/ is not an installed package: make `tools._workspace` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools._workspace import (
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


def main(argv: Sequence[str] | None = None) -> int:
    """Check the release, then print the tag or create it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", metavar="DIST", help="distribution name, e.g. integrations-base")
    parser.add_argument("--create", action="store_true", help="create the annotated tag")
    args = parser.parse_args(argv)
    try:
        root = find_repo_root()
        package = find_package(load_packages(root), args.dist)
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
        return 0
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
