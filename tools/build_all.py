"""Build the wheel and sdist of every distribution of the workspace into one directory.

This is what a release of several distributions, or a CI artefact job, starts from: one
directory holding exactly what would be uploaded, built from the package sources by the same
poetry-core backend the distributions declare. Check the result with
``tools/check_namespace.py --wheels DIR``.

With ``--sign-key FILE --key-id ID`` every distribution's ``manifest.json`` is signed first
(``manifest.sig`` written beside it, so the wheel and the sdist carry it) and the signature
files are removed from the source tree once the build is done. Signing needs
``integrations-base[signing]`` installed where this runs.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

# tools/ is not an installed package: make `tools._workspace` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools._workspace import (
    Package,
    WorkspaceError,
    build_sdist,
    build_wheel,
    find_repo_root,
    load_packages,
)

Signing = tuple[Path, str]
"""The publisher's private key file and its key id."""


def build_everything(out_dir: Path, *, sdist: bool, signing: Signing | None = None) -> list[Path]:
    """Build every distribution (signing its manifest first); return the paths written."""
    built: list[Path] = []
    for package in load_packages(find_repo_root()):
        with signed_manifests(package, signing):
            built.append(build_wheel(package.directory, out_dir))
            if sdist:
                built.append(build_sdist(package.directory, out_dir))
    return built


@contextlib.contextmanager
def signed_manifests(package: Package, signing: Signing | None) -> Iterator[list[Path]]:
    """Sign each manifest of `package` for the duration of its build, then remove the files.

    A ``manifest.sig`` already in the tree is an error: it would be overwritten and deleted.
    """
    written: list[Path] = []
    if signing is None:
        yield written
        return
    try:
        from integrations.base import SigningError
        from integrations.base.signing import SIGNATURE_FILENAME, sign_manifest
    except ImportError:
        raise WorkspaceError("--sign-key needs integrations-base[signing] installed") from None

    key_file, key_id = signing
    try:
        for root in package.source_roots:
            manifest = root / "manifest.json"
            if not manifest.is_file():
                continue
            if (root / SIGNATURE_FILENAME).exists():
                raise WorkspaceError(f"{root / SIGNATURE_FILENAME} exists in the source tree")
            try:
                written.append(sign_manifest(manifest, key_file, key_id))
            except SigningError as error:
                raise WorkspaceError(f"signing {manifest}: {error}") from None
        yield written
    finally:
        for path in written:
            path.unlink(missing_ok=True)


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
    parser.add_argument(
        "--sign-key", type=Path, help="sign each manifest with this Ed25519 private key (PEM)"
    )
    parser.add_argument("--key-id", help="the id of --sign-key in the trust settings")
    args = parser.parse_args(argv)
    if (args.sign_key is None) != (args.key_id is None):
        parser.error("--sign-key and --key-id go together")
    signing = (args.sign_key, args.key_id) if args.sign_key is not None else None
    try:
        built = build_everything(args.out, sdist=args.sdist, signing=signing)
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in built:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
