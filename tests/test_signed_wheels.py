"""Signed builds: wheels signed by ``tools/build_all.py`` verify once installed; tampering shows.

The workspace is built with a fresh publisher key, the base (with its ``signing`` and ``cli``
extras), mocks and memory wheels are installed into a clean environment, and that
environment's ``integrations`` command is asked, with the key trusted and signatures
required, what it thinks of them: first as installed, then with one byte of an installed
module changed, then with the installed manifest changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.conftest import REPO_ROOT, run

if TYPE_CHECKING:
    from tests.conftest import VenvFactory

KEY_ID = "integrations-test-publisher"


@dataclass(frozen=True)
class Outcome:
    """What one `integrations` command printed and how it exited."""

    returncode: int
    stdout: str
    stderr: str

    def rows(self) -> dict[str, dict[str, Any]]:
        return {row["name"]: row for row in json.loads(self.stdout) if row["name"]}


@dataclass(frozen=True)
class Steps:
    """The signed environment seen as installed, after a module edit, after a manifest edit."""

    wheel_files: dict[str, list[str]]
    verify: Outcome
    listed: Outcome
    get_mock: Outcome
    tampered_module: Outcome
    tampered_module_verify: Outcome
    tampered_manifest: Outcome
    tampered_manifest_doctor: Outcome


_GET = """\
from integrations.base import registry
cls = registry.get("mock")
import sys
print(cls.__module__, type(sys.modules[cls.__module__].__loader__).__name__)
"""


def _integrations(bin_dir: Path, environment: dict[str, str], *arguments: str) -> Outcome:
    done = subprocess.run(
        [str(bin_dir / "integrations"), *arguments],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=environment,
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def steps(venv_factory: VenvFactory, tmp_path_factory: pytest.TempPathFactory) -> Steps:
    import os
    import zipfile

    work = tmp_path_factory.mktemp("signed")
    key = work / "publisher.pem"
    from integrations.base._signing import generate_key

    public = generate_key(key)
    out = work / "wheels"
    build = [sys.executable, str(REPO_ROOT / "tools" / "build_all.py"), "--out", str(out)]
    run([*build, "--no-sdist", "--sign-key", str(key), "--key-id", KEY_ID])
    wheels = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    wheel_files = {
        name: sorted(item for item in zipfile.ZipFile(path).namelist() if "manifest" in item)
        for name, path in wheels.items()
    }
    venv = venv_factory.create("signed")
    venv.install(
        f"integrations-base[cli,signing] @ {wheels['integrations_base'].as_uri()}",
        wheels["integrations_mocks"],
        wheels["integrations_adapters_memory"],
    )
    site = venv.site_packages
    bin_dir = venv.path / "bin"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTEGRATIONS_")}
    environment["INTEGRATIONS_TRUST"] = json.dumps(
        {"keys": {KEY_ID: public}, "require_signed_manifests": True}
    )
    mocks = site / "integrations" / "mocks"
    verify = _integrations(
        bin_dir,
        environment,
        "manifest",
        "verify",
        str(mocks / "manifest.json"),
        str(site / "integrations" / "adapters" / "memory_adapters" / "manifest.json"),
    )
    listed = _integrations(bin_dir, environment, "list", "--json")
    got = subprocess.run(
        [str(venv.python), "-c", _GET], capture_output=True, text=True, env=environment, timeout=120
    )
    get_mock = Outcome(got.returncode, got.stdout, got.stderr)

    mock_file = mocks / "mock_connector.py"
    original = mock_file.read_bytes()
    changed = bytearray(original)
    changed[-2] ^= 0x01
    mock_file.write_bytes(bytes(changed))
    tampered_module = _integrations(bin_dir, environment, "list", "--json")
    tampered_module_verify = _integrations(
        bin_dir, environment, "manifest", "verify", str(mocks / "manifest.json")
    )
    mock_file.write_bytes(original)

    manifest = mocks / "manifest.json"
    document = json.loads(manifest.read_bytes())
    document["connectors"][0]["description"] = "Not what the publisher signed."
    manifest.write_text(json.dumps(document), encoding="utf-8")
    tampered_manifest = _integrations(bin_dir, environment, "list", "--json")
    tampered_manifest_doctor = _integrations(bin_dir, environment, "doctor", "--json")
    return Steps(
        wheel_files=wheel_files,
        verify=verify,
        listed=listed,
        get_mock=get_mock,
        tampered_module=tampered_module,
        tampered_module_verify=tampered_module_verify,
        tampered_manifest=tampered_manifest,
        tampered_manifest_doctor=tampered_manifest_doctor,
    )


def test_signed_wheels_carry_manifest_sig_beside_each_manifest(steps: Steps) -> None:
    assert steps.wheel_files["integrations_mocks"] == [
        "integrations/mocks/manifest.json",
        "integrations/mocks/manifest.sig",
    ]
    for name in ("integrations_adapters_memory", "integrations_adapters_intent"):
        stems = {item.rsplit("/", 1)[-1] for item in steps.wheel_files[name]}
        assert stems == {"manifest.json", "manifest.sig"}, name


def test_signing_leaves_the_source_tree_as_it_was(steps: Steps) -> None:
    assert steps.wheel_files  # the signed build has run
    assert sorted(REPO_ROOT.glob("packages/*/src/**/manifest.sig")) == []


def test_installed_signed_manifests_verify(steps: Steps) -> None:
    assert steps.verify.returncode == 0, steps.verify.stderr
    lines = steps.verify.stdout.splitlines()
    assert len(lines) == 2
    assert all(f"verified (key {KEY_ID}, " in line for line in lines)


def test_the_registry_lists_the_signed_connectors_verified_and_loads_them(steps: Steps) -> None:
    rows = steps.listed.rows()
    for name in ("mock", "memory.sqlite"):
        assert rows[name]["status"] == "ok", rows[name]
        assert (rows[name]["signature"], rows[name]["signed_by"]) == ("verified", KEY_ID)
    assert steps.get_mock.returncode == 0, steps.get_mock.stderr
    # integrations.mocks imports its connector module itself; it still runs the hashed bytes.
    assert steps.get_mock.stdout.split() == [
        "integrations.mocks.mock_connector",
        "_SignedSourceLoader",
    ]


def test_one_byte_of_an_installed_module_changed_is_refused(steps: Steps) -> None:
    rows = steps.tampered_module.rows()
    assert rows["mock"]["status"] == "refused"
    assert rows["mock"]["problem"].startswith(
        "module integrations.mocks.mock_connector (mock_connector.py) does not match its signature"
    )
    assert rows["memory.sqlite"]["status"] == "ok"
    assert steps.tampered_module_verify.returncode == 1
    assert "does not match its signature" in steps.tampered_module_verify.stderr


def test_a_changed_installed_manifest_is_refused(steps: Steps) -> None:
    rows = steps.tampered_manifest.rows()
    assert rows["mock"]["status"] == "refused"
    assert rows["mock"]["problem"].startswith("manifest does not match its signature")
    assert steps.tampered_manifest_doctor.returncode == 1
    doctor = steps.tampered_manifest_doctor.rows()
    assert doctor["mock"]["status"] == "refused"
    assert doctor["mock"]["loaded"] is False
    assert doctor["memory.sqlite"]["status"] == "ok"


# -- tools/build_all.py's signing step, on a package of its own ----------------------------------


def _package(root: Path) -> Any:
    from tools._workspace import Package

    source = root / "src" / "acme_tools_pkg"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("", encoding="utf-8")
    (source / "tickets.py").write_text("class Tickets:\n    pass\n", encoding="utf-8")
    manifest = {
        "connectors": [{"name": "acme.t", "module": "acme_tools_pkg.tickets", "class": "Tickets"}]
    }
    (source / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return Package(root, "acme-tools-pkg", "1.0", (), ("acme_tools_pkg",), ())


def _build_all() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_all", REPO_ROOT / "tools" / "build_all.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_signing_step_signs_for_the_build_then_removes_the_signature(tmp_path: Path) -> None:
    from integrations.base._signing import generate_key

    package = _package(tmp_path / "pkg")
    generate_key(tmp_path / "k.pem")
    signature = package.source_roots[0] / "manifest.sig"

    with _build_all().signed_manifests(package, (tmp_path / "k.pem", "tools-key")) as written:
        assert written == [signature]
        assert json.loads(signature.read_text())["key_id"] == "tools-key"

    assert not signature.exists()


def test_the_signing_step_refuses_a_signature_already_in_the_tree(tmp_path: Path) -> None:
    from integrations.base._signing import generate_key

    build_all = _build_all()
    package = _package(tmp_path / "pkg")
    generate_key(tmp_path / "k.pem")
    existing = package.source_roots[0] / "manifest.sig"
    existing.write_text("{}", encoding="utf-8")

    with (
        pytest.raises(build_all.WorkspaceError, match=r"manifest\.sig exists in the source tree"),
        build_all.signed_manifests(package, (tmp_path / "k.pem", "tools-key")),
    ):
        pass
    assert existing.read_text() == "{}"


def test_sign_key_goes_with_key_id(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "build_all.py"), "--sign-key", "k.pem"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert done.returncode == 2
    assert "--sign-key and --key-id go together" in done.stderr
