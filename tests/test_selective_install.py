"""A deployment installs only the distributions it needs, and gets exactly those.

In a fresh environment, the base and mocks wheels alone give a working ``integrations.base``
and ``integrations.mocks`` with no ``integrations.adapters`` at all; adding the memory adapter
wheel adds that one distribution and nothing else.

Every workspace wheel is passed to the installer as a file, including integrations-base when
only an adapter is being added: named by file, it can never be replaced by a same-named
project from an index.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import Probe, VenvFactory

MODULES = [
    "integrations.base",
    "integrations.mocks",
    "integrations.adapters",
    "integrations.adapters.intent_adapters",
    "integrations.adapters.memory_adapters",
    "integrations.adapters.vault_connectors",
]


@dataclass(frozen=True)
class Steps:
    """The environment seen after each installation step."""

    core: Probe
    with_memory: Probe


@pytest.fixture(scope="module")
def steps(venv_factory: VenvFactory, wheels: dict[str, Path]) -> Steps:
    """One environment: base + mocks first, then the memory adapter added."""
    venv = venv_factory.create("selective")
    venv.install(wheels["integrations-base"], wheels["integrations-mocks"])
    core = venv.probe(MODULES)
    venv.install(wheels["integrations-base"], wheels["integrations-adapters-memory"])
    return Steps(core=core, with_memory=venv.probe(MODULES))


def test_base_and_mocks_alone_install_exactly_those(steps: Steps) -> None:
    assert sorted(steps.core.local()) == ["integrations-base", "integrations-mocks"]


def test_base_and_mocks_import(steps: Steps) -> None:
    assert steps.core.imports["integrations.base"] == "ok"
    assert steps.core.imports["integrations.mocks"] == "ok"


def test_no_adapters_namespace_without_an_adapter(steps: Steps) -> None:
    assert steps.core.imports["integrations.adapters"] == "ModuleNotFoundError"


def test_adding_memory_adds_exactly_that_distribution(steps: Steps) -> None:
    before, after = steps.core.distributions, steps.with_memory.distributions
    assert set(after) - set(before) == {"integrations-adapters-memory"}
    assert {name: after[name] for name in before} == before, "an installed version changed"


def test_memory_imports_and_its_siblings_do_not(steps: Steps) -> None:
    imports = steps.with_memory.imports
    assert imports["integrations.adapters.memory_adapters"] == "ok"
    assert imports["integrations.adapters.intent_adapters"] == "ModuleNotFoundError"
    assert imports["integrations.adapters.vault_connectors"] == "ModuleNotFoundError"
    assert imports["integrations.base"] == "ok"
    assert imports["integrations.mocks"] == "ok"
