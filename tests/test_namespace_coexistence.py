"""The six distributions share the ``integrations`` namespace wherever they are installed from.

Two layouts a deployment or a developer ends up with: all six wheels in one site-packages
(the namespace is one directory holding every sibling), and a mix of wheels and editable
installs (the namespace spans site-packages and the package source trees, and every sibling
still imports). A regular-package ``__init__.py`` at a namespace level breaks exactly these.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import Probe, Venv, VenvFactory

REPO_ROOT = Path(__file__).resolve().parents[1]
LEAVES = {
    "integrations-base": "integrations.base",
    "integrations-mocks": "integrations.mocks",
    "integrations-adapters-intent": "integrations.adapters.intent_adapters",
    "integrations-adapters-memory": "integrations.adapters.memory_adapters",
    "integrations-adapters-vault": "integrations.adapters.vault_connectors",
    "integrations-jobs": "integrations.jobs",
}
EDITABLE = ["integrations-adapters-memory", "integrations-adapters-vault"]
NAMESPACES = ["integrations", "integrations.adapters"]


@pytest.fixture(scope="module")
def all_wheels(venv_factory: VenvFactory, wheels: dict[str, Path]) -> tuple[Venv, Probe]:
    """An environment with every distribution installed from its wheel."""
    venv = venv_factory.create("all-wheels")
    venv.install(*(wheels[name] for name in LEAVES))
    return venv, venv.probe([*NAMESPACES, *LEAVES.values()])


@pytest.fixture(scope="module")
def mixed(venv_factory: VenvFactory, wheels: dict[str, Path]) -> tuple[Venv, Probe]:
    """base and mocks from wheels next to memory and vault installed editable."""
    venv = venv_factory.create("mixed")
    editables: list[str] = []
    for name in EDITABLE:
        editables += ["-e", str(REPO_ROOT / "packages" / name)]
    venv.install(wheels["integrations-base"], wheels["integrations-mocks"], *editables)
    return venv, venv.probe([*NAMESPACES, *LEAVES.values()])


def _under(path: str | None, directory: Path) -> bool:
    return path is not None and Path(path).resolve().is_relative_to(directory.resolve())


def test_all_wheels_install_every_sibling(all_wheels: tuple[Venv, Probe]) -> None:
    _, probe = all_wheels
    assert sorted(probe.local()) == sorted(LEAVES)
    assert {module: probe.imports[module] for module in LEAVES.values()} == dict.fromkeys(
        LEAVES.values(), "ok"
    )


def test_all_wheels_import_from_one_site_packages(all_wheels: tuple[Venv, Probe]) -> None:
    venv, probe = all_wheels
    site_packages = venv.site_packages
    for module in LEAVES.values():
        assert _under(probe.files[module], site_packages), f"{module} from {probe.files[module]}"
    assert probe.namespace_path is not None
    assert [Path(p).resolve() for p in probe.namespace_path] == [site_packages / "integrations"]


@pytest.mark.parametrize("name", NAMESPACES)
def test_namespace_levels_stay_namespaces(all_wheels: tuple[Venv, Probe], name: str) -> None:
    _, probe = all_wheels
    assert probe.imports[name] == "ok"
    assert probe.files[name] is None, f"{name} became a regular package: {probe.files[name]}"


def test_mixed_install_imports_every_installed_sibling(mixed: tuple[Venv, Probe]) -> None:
    _, probe = mixed
    installed = ["integrations-base", "integrations-mocks", *EDITABLE]
    assert sorted(probe.local()) == sorted(installed)
    for name in installed:
        assert probe.imports[LEAVES[name]] == "ok", f"{LEAVES[name]}: {probe.imports[LEAVES[name]]}"
    assert probe.imports["integrations.adapters.intent_adapters"] == "ModuleNotFoundError"
    assert probe.imports["integrations.jobs"] == "ModuleNotFoundError"


def test_mixed_install_loads_each_sibling_from_its_origin(mixed: tuple[Venv, Probe]) -> None:
    venv, probe = mixed
    for name in ["integrations-base", "integrations-mocks"]:
        assert _under(probe.files[LEAVES[name]], venv.site_packages)
    for name in EDITABLE:
        assert _under(probe.files[LEAVES[name]], REPO_ROOT / "packages" / name / "src")


def test_mixed_namespace_spans_site_packages_and_sources(mixed: tuple[Venv, Probe]) -> None:
    venv, probe = mixed
    assert probe.namespace_path is not None
    portions = {Path(p).resolve() for p in probe.namespace_path}
    expected = {venv.site_packages / "integrations"} | {
        (REPO_ROOT / "packages" / name / "src" / "integrations").resolve() for name in EDITABLE
    }
    assert portions == expected
