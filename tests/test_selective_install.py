"""A deployment installs only the distributions it needs, and gets exactly those.

In a fresh environment, the base and mocks wheels alone give a working ``integrations.base``
and ``integrations.mocks`` with no ``integrations.adapters`` at all; adding the memory adapter
wheel adds that one distribution (and the one library its default store needs) and nothing else.

Every workspace wheel is passed to the installer as a file, including integrations-base when
only an adapter is being added: named by file, it can never be replaced by a same-named
project from an index.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from tests.conftest import run

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


_LIST = """\
import json
from integrations.base import registry
rows = [info.to_json() for info in registry.connectors()]
rows += [problem.to_json() for problem in registry.problems()]
print(json.dumps(rows))
"""

_GET_REDIS = """\
from integrations.base import IntegrationsError, registry
try:
    registry.get("memory.redis")
except IntegrationsError as error:
    print(f"{type(error).__name__}: {error}")
"""


@dataclass(frozen=True)
class Steps:
    """The environment seen after each installation step."""

    core: Probe
    with_memory: Probe
    core_connectors: list[dict[str, Any]]
    memory_connectors: list[dict[str, Any]]
    redis_without_driver: str
    console_script: subprocess.CompletedProcess[str]


def listed(python: Path) -> list[dict[str, Any]]:
    """What the registry of that environment lists, as `integrations list --json` rows."""
    rows: list[dict[str, Any]] = json.loads(run([str(python), "-c", _LIST]))
    return rows


@pytest.fixture(scope="module")
def steps(venv_factory: VenvFactory, wheels: dict[str, Path]) -> Steps:
    """One environment: base + mocks first, then the memory adapter added."""
    venv = venv_factory.create("selective")
    venv.install(wheels["integrations-base"], wheels["integrations-mocks"])
    core = venv.probe(MODULES)
    core_connectors = listed(venv.python)
    console_script = subprocess.run(
        [str(venv.path / "bin" / "integrations"), "list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    venv.install(wheels["integrations-base"], wheels["integrations-adapters-memory"])
    return Steps(
        core=core,
        with_memory=venv.probe(MODULES),
        core_connectors=core_connectors,
        memory_connectors=listed(venv.python),
        redis_without_driver=run([str(venv.python), "-c", _GET_REDIS]).strip(),
        console_script=console_script,
    )


def test_base_and_mocks_alone_install_exactly_those(steps: Steps) -> None:
    assert sorted(steps.core.local()) == ["integrations-base", "integrations-mocks"]


def test_base_and_mocks_import(steps: Steps) -> None:
    assert steps.core.imports["integrations.base"] == "ok"
    assert steps.core.imports["integrations.mocks"] == "ok"


def test_no_adapters_namespace_without_an_adapter(steps: Steps) -> None:
    assert steps.core.imports["integrations.adapters"] == "ModuleNotFoundError"


def test_adding_memory_adds_exactly_that_distribution(steps: Steps) -> None:
    before, after = steps.core.distributions, steps.with_memory.distributions
    # platformdirs locates the default SQLite file; the other stores' drivers are extras.
    assert set(after) - set(before) == {"integrations-adapters-memory", "platformdirs"}
    assert {name: after[name] for name in before} == before, "an installed version changed"


def test_memory_imports_and_its_siblings_do_not(steps: Steps) -> None:
    imports = steps.with_memory.imports
    assert imports["integrations.adapters.memory_adapters"] == "ok"
    assert imports["integrations.adapters.intent_adapters"] == "ModuleNotFoundError"
    assert imports["integrations.adapters.vault_connectors"] == "ModuleNotFoundError"
    assert imports["integrations.base"] == "ok"
    assert imports["integrations.mocks"] == "ok"


def test_the_registry_lists_the_mock_alone_with_base_and_mocks(steps: Steps) -> None:
    assert [(row["name"], row["status"]) for row in steps.core_connectors] == [("mock", "ok")]
    assert steps.core_connectors[0]["distribution"] == "integrations-mocks"


def test_adding_the_memory_wheel_is_picked_up_and_brings_no_problem(steps: Steps) -> None:
    # Listing reads manifests without importing: the Redis, PostgreSQL and Knowledge Vault
    # connectors are listed although their drivers (extras) are not installed.
    rows = {row["name"]: (row["status"], row["distribution"]) for row in steps.memory_connectors}
    memory = ("ok", "integrations-adapters-memory")
    assert rows == {
        "mock": ("ok", "integrations-mocks"),
        "memory.sqlite": memory,
        "memory.redis": memory,
        "memory.postgres": memory,
        "memory.knowledge_vault": memory,
    }


def test_a_store_whose_driver_is_missing_says_which_extra_to_install(steps: Steps) -> None:
    assert steps.redis_without_driver.startswith("ConnectorUnavailable")
    assert "pip install 'integrations-adapters-memory[redis]'" in steps.redis_without_driver


def test_the_console_script_without_the_cli_extra_says_what_to_install(steps: Steps) -> None:
    assert steps.console_script.returncode == 1
    assert "pip install 'integrations-base[cli]'" in steps.console_script.stderr
    assert len(steps.console_script.stderr.strip().splitlines()) == 1
