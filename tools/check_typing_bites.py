"""Prove the type check bites: mypy must reject every snippet in ``tests/typing/negative/``.

A clean mypy run means little unless mypy would have said something about a real mistake:
a misconfigured ``mypy_path``, an ``Any`` leaking out of a public signature or a missing
``py.typed`` all make the contract silently untyped. Each negative snippet names the error it
must produce in a first-lines comment ``# expect-error: <code>``; the check fails when a
snippet type-checks clean, or fails for any other reason than the named one.

mypy runs as ``python -m mypy`` of the running interpreter with the root ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

# tools/ is not an installed package: make `tools._workspace` importable from the repo root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools._workspace import WorkspaceError, find_repo_root

NEGATIVE_DIR = Path("tests/typing/negative")
_EXPECT = re.compile(r"^#\s*expect-error:\s*(?P<code>[a-z][a-z0-9-]*)\s*$")
_ERROR_LINE = re.compile(
    r"^(?P<path>[^:]+):\d+(?::\d+)?: error: .*?(?:\s+\[(?P<code>[a-z0-9-]+)\])?$"
)
_HEADER_LINES = 5


def expected_code(snippet: Path) -> str | None:
    """The code a snippet's ``# expect-error: <code>`` comment names, from its first lines."""
    with snippet.open(encoding="utf-8") as handle:
        for _, line in zip(range(_HEADER_LINES), handle, strict=False):
            if match := _EXPECT.match(line.strip()):
                return match["code"]
    return None


def mypy_errors(root: Path, snippet: Path) -> tuple[int, list[tuple[str, str | None]]]:
    """mypy's exit code and its (message, code) errors for ``snippet``."""
    relative = snippet.relative_to(root)
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--show-error-codes", "--no-pretty", str(relative)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [
        (line, match["code"])
        for line in done.stdout.splitlines()
        if (match := _ERROR_LINE.match(line)) and Path(match["path"]) == relative
    ]
    if done.returncode not in (0, 1):
        errors.append(((done.stderr or done.stdout).strip(), None))
    return done.returncode, errors


def check_snippet(root: Path, snippet: Path) -> str | None:
    """Why ``snippet`` does not prove the check bites, or None when mypy rejects it as named."""
    code = expected_code(snippet)
    if code is None:
        return f"{snippet}: no '# expect-error: <code>' comment in its first {_HEADER_LINES} lines"
    returncode, errors = mypy_errors(root, snippet)
    if returncode == 0:
        return f"{snippet}: type-checks clean, but must fail with [{code}]: the check does not bite"
    if returncode != 1:
        return f"{snippet}: mypy could not check it (exit {returncode}): {errors[-1][0]}"
    if not any(error_code == code for _, error_code in errors):
        found = "; ".join(message for message, _ in errors) or "no error in this file"
        return f"{snippet}: mypy fails, but not with [{code}]: {found}"
    others = [message for message, error_code in errors if error_code != code]
    if others:
        return f"{snippet}: fails with [{code}] and also for other reasons: {'; '.join(others)}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Check every negative snippet; exit 1 when any does not fail as its comment says."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    try:
        root = find_repo_root()
    except WorkspaceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    snippets = sorted((root / NEGATIVE_DIR).glob("*.py"))
    if not snippets:
        print(f"error: no negative snippets in {root / NEGATIVE_DIR}", file=sys.stderr)
        return 1
    problems = [p for snippet in snippets if (p := check_snippet(root, snippet)) is not None]
    for problem in problems:
        print(f"typing check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"mypy rejects all {len(snippets)} negative snippet(s) with the expected error codes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
