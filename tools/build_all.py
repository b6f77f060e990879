"""Build the wheel and sdist of every distribution of the workspace into one directory.

This is what a release of several distributions, or a CI artefact job, starts from: one
directory holding exactly what would be uploaded, built from the package sources by the same
poetry-core backend the distributions declare. Check the result with
``tools/check_namespace.py --wheels DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

# tools/ is not an installed package: make `tools._workspace` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools._workspace import (
    WorkspaceError,
    build_sdist,
    build_wheel,
    find_repo_root,
    load_packages,
)


def build_everything(out_dir: Path, *, sdist: bool) -> list[Path]:
    """Build every distribution; return the paths of the files written."""
    built: list[Path] = []
    for package in load_packages(find_repo_root()):
        built.append(build_wheel(package.directory, out_dir))
        if sdist:
            built.append(build_sdist(package.directory, out_dir))
    return built


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, build, and print one line per file written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist"), help="output directory")
    parser.add_argument(
        "--sdist",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also build each sdist (default: yes)",
    )
    args = parser.parse_args(argv)
    try:
        built = build_everything(args.out, sdist=args.sdist)
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in built:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
