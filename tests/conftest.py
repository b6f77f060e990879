"""Fixtures of the cross-package tests: the built wheels and throwaway virtual environments.

These tests install the distributions the way a deployment does (wheels into a clean
environment) and look at the result from inside that environment, in a subprocess: the
interpreter running pytest has every package installed already and cannot show what a
selective install looks like.

Virtual environments are made with uv, which creates one in well under a second and installs
from its cache. They are still the slow part, so each test module shares its environments
through module-scoped fixtures.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# tools/ is not an installed package; the tests reuse its workspace reader.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools._workspace import Package, load_packages  # noqa: E402

_PROBE = r"""
import importlib, importlib.metadata, json, sys
report = {"distributions": {}, "imports": {}, "files": {}, "namespace_path": None}
for dist in importlib.metadata.distributions():
    name = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
    report["distributions"][name] = dist.version
for module_name in sys.argv[1:]:
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        report["imports"][module_name] = type(error).__name__
    else:
        report["imports"][module_name] = "ok"
        report["files"][module_name] = getattr(module, "__file__", None)
try:
    import integrations
    report["namespace_path"] = list(integrations.__path__)
except ImportError:
    pass
print(json.dumps(report))
"""


@dataclass(frozen=True)
class Probe:
    """What an environment holds, seen from inside it."""

    distributions: dict[str, str]
    """Every installed distribution (normalised name) with its version."""
    imports: dict[str, str]
    """Each probed module: ``ok`` or the name of the exception importing it raised."""
    files: dict[str, str | None]
    """Each imported module's ``__file__``."""
    namespace_path: list[str] | None
    """``integrations.__path__``: every directory the namespace spans."""

    def local(self) -> dict[str, str]:
        """The ``integrations-*`` distributions only."""
        return {n: v for n, v in self.distributions.items() if n.startswith("integrations-")}


@dataclass(frozen=True)
class Venv:
    """A throwaway virtual environment driven through uv."""

    path: Path
    uv: tuple[str, ...]

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.path / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        """The environment's purelib directory, as its interpreter reports it."""
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        return Path(run([str(self.python), "-c", code]).strip()).resolve()

    def install(self, *arguments: str | Path) -> None:
        """``uv pip install`` into this environment; wheels are passed as file paths."""
        run([*self.uv, "pip", "install", "--python", str(self.python), *map(str, arguments)])

    def probe(self, modules: Sequence[str]) -> Probe:
        """Distributions, import results and the namespace path, from a fresh interpreter."""
        report = json.loads(run([str(self.python), "-c", _PROBE, *modules]))
        return Probe(
            distributions=report["distributions"],
            imports=report["imports"],
            files=report["files"],
            namespace_path=report["namespace_path"],
        )


def run(command: Sequence[str], cwd: Path | None = None) -> str:
    """Run a command; on failure, fail the test with the command's output."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"command failed (exit {done.returncode}): {' '.join(command)}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}",
            pytrace=False,
        )
    return done.stdout


def find_uv() -> tuple[str, ...]:
    """The uv command: on PATH, or as the module of the uv package. Absent, the tests fail."""
    found = shutil.which("uv")
    if found:
        return (found,)
    if (
        subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True).returncode
        == 0
    ):
        return (sys.executable, "-m", "uv")
    pytest.fail("uv is needed to create the test environments: pip install uv", pytrace=False)


@pytest.fixture(scope="session")
def packages() -> list[Package]:
    """Every distribution of the workspace, from the pyproject.toml files."""
    return load_packages(REPO_ROOT)


@pytest.fixture(scope="session")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a freshly built wheel of every distribution.

    The build runs ``tools/build_all.py`` in a subprocess rather than in this process:
    importing poetry-core puts its vendored copy of ``packaging`` first on ``sys.path``, which
    would shadow the installed one for every later import in the test session.
    """
    out = tmp_path_factory.mktemp("wheels")
    run(
        [sys.executable, str(REPO_ROOT / "tools" / "build_all.py"), "--out", str(out), "--no-sdist"]
    )
    return out


@pytest.fixture(scope="session")
def wheels(wheel_dir: Path, packages: list[Package]) -> dict[str, Path]:
    """The built wheel of each distribution, by distribution name."""
    found: dict[str, Path] = {}
    for package in packages:
        stem = package.name.replace("-", "_")
        matches = sorted(wheel_dir.glob(f"{stem}-{package.version}-*.whl"))
        assert len(matches) == 1, f"expected one wheel of {package.name}, found {matches}"
        found[package.name] = matches[0]
    return found


@pytest.fixture(scope="session")
def uv() -> tuple[str, ...]:
    """The uv command line prefix."""
    return find_uv()


@dataclass(frozen=True)
class VenvFactory:
    """Creates empty environments for this interpreter's Python version."""

    base: Path
    uv: tuple[str, ...]

    def create(self, name: str) -> Venv:
        """A new, empty environment called ``name``."""
        path = self.base / name
        run([*self.uv, "venv", "--quiet", "--python", sys.executable, str(path)], cwd=self.base)
        return Venv(path=path, uv=self.uv)


@pytest.fixture(scope="session")
def venv_factory(tmp_path_factory: pytest.TempPathFactory, uv: tuple[str, ...]) -> VenvFactory:
    """Where test modules get their (module-scoped, shared) environments from."""
    return VenvFactory(base=tmp_path_factory.mktemp("venvs"), uv=uv)
