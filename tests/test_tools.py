"""The maintainer tools refuse what would break the workspace, on a scratch copy of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of packages/ and tools/ in a fresh git repository."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".hypothesis")
    shutil.copytree(REPO_ROOT / "packages", root / "packages", ignore=ignore)
    shutil.copytree(REPO_ROOT / "tools", root / "tools", ignore=ignore)
    shutil.copy(REPO_ROOT / "pyproject.toml", root / "pyproject.toml")
    for command in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "scratch"],
    ):
        subprocess.run(command, cwd=root, check=True)
    return root


def run_tool(root: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *arguments], cwd=root, capture_output=True, text=True, timeout=300
    )


def test_bump_of_base_outside_the_adapters_ranges_is_refused_and_nothing_changes(
    workspace: Path,
) -> None:
    pyproject = workspace / "packages/integrations-base/pyproject.toml"
    changelog = workspace / "packages/integrations-base/CHANGELOG.md"
    changelog.write_text(changelog.read_text() + "\n## 0.4.0\n\n- A minor release.\n")
    before = pyproject.read_bytes()

    result = run_tool(workspace, "tools/bump_version.py", "integrations-base", "minor")

    assert result.returncode == 1
    output = result.stdout + result.stderr
    for dependent in ("integrations-mocks", "integrations-adapters-memory"):
        assert dependent in output
    assert ">=0.1,<0.4" in output
    assert pyproject.read_bytes() == before


def test_bump_without_a_changelog_entry_is_refused(workspace: Path) -> None:
    pyproject = workspace / "packages/integrations-adapters-memory/pyproject.toml"
    before = pyproject.read_bytes()

    result = run_tool(workspace, "tools/bump_version.py", "integrations-adapters-memory", "patch")

    assert result.returncode == 1
    assert "0.1.1" in result.stdout + result.stderr
    assert pyproject.read_bytes() == before


def test_bump_with_changelog_entry_and_admitted_ranges_succeeds(workspace: Path) -> None:
    changelog = workspace / "packages/integrations-base/CHANGELOG.md"
    changelog.write_text(changelog.read_text() + "\n## 0.3.1\n\n- A patch release.\n")

    result = run_tool(workspace, "tools/bump_version.py", "integrations-base", "patch")

    assert result.returncode == 0, result.stdout + result.stderr
    text = (workspace / "packages/integrations-base/pyproject.toml").read_text()
    assert 'version = "0.3.1"' in text


def test_namespace_check_rejects_a_stray_namespace_file(workspace: Path) -> None:
    assert run_tool(workspace, "tools/check_namespace.py").returncode == 0
    stray = workspace / "packages/integrations-adapters-vault/src/integrations/adapters/py.typed"
    stray.touch()

    result = run_tool(workspace, "tools/check_namespace.py")

    assert result.returncode == 1
    assert "py.typed" in result.stdout + result.stderr


def _release_source(root: Path, version: str) -> subprocess.CompletedProcess[str]:
    """Unpack integrations-base ``version`` from ``releases/`` the way install_local does."""
    script = (
        "import sys, tempfile; from pathlib import Path; sys.path.insert(0, '.');"
        "from tools._releases import released_source; from tools._workspace import Version;"
        "scratch = Path(tempfile.mkdtemp());"
        f"p = released_source(Path('.'), 'integrations-base', Version('{version}'), scratch);"
        "print(p.version, sorted(x.name for x in p.directory.iterdir()))"
    )
    return run_tool(root, "-c", script)


def test_a_release_archive_is_written_from_its_tag_and_unpacked_by_version(
    workspace: Path,
) -> None:
    tag = run_tool(workspace, "tools/release_tag.py", "integrations-base").stdout.strip()
    version = tag.split("==", 1)[1]
    subprocess.run(["git", "tag", "integrations-base==0.0.9"], cwd=workspace, check=True)
    tool = "tools/release_tag.py"
    mislabelled = run_tool(workspace, tool, "integrations-base", "--archive", "0.0.9")
    assert mislabelled.returncode != 0
    assert f"tag integrations-base==0.0.9 holds integrations-base {version}" in mislabelled.stderr
    assert not (workspace / "releases").exists()

    subprocess.run(["git", "tag", tag], cwd=workspace, check=True)
    written = run_tool(workspace, "tools/release_tag.py", "integrations-base", "--archive", version)
    assert written.returncode == 0, written.stderr
    archives = sorted(p.name for p in (workspace / "releases").iterdir())
    assert archives == ["SHA256SUMS", f"integrations_base-{version}.tar.gz"]
    unpacked = _release_source(workspace, version)
    assert unpacked.returncode == 0, unpacked.stderr
    assert unpacked.stdout.startswith(f"{version} ")
    assert "pyproject.toml" in unpacked.stdout


def test_a_missing_or_altered_release_archive_is_refused(workspace: Path) -> None:
    missing = _release_source(workspace, "0.0.1")
    assert missing.returncode != 0
    assert "the lowest admitted integrations-base is 0.0.1" in missing.stderr
    assert "releases/ holds no sdist of it" in missing.stderr
    assert "--archive 0.0.1" in missing.stderr

    tag = run_tool(workspace, "tools/release_tag.py", "integrations-base").stdout.strip()
    version = tag.split("==", 1)[1]
    subprocess.run(["git", "tag", tag], cwd=workspace, check=True)
    run_tool(workspace, "tools/release_tag.py", "integrations-base", "--archive", version)
    archive = workspace / "releases" / f"integrations_base-{version}.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"\0")
    altered = _release_source(workspace, version)
    assert altered.returncode != 0
    assert f"{archive.name} has SHA-256" in altered.stderr
    assert "but SHA256SUMS records" in altered.stderr
