"""A deployment installs only the distributions it needs, and gets exactly those.

In a fresh environment, the base and mocks wheels alone give a working ``integrations.base``
and ``integrations.mocks`` with no ``integrations.adapters`` at all; adding the memory adapter
wheel adds that one distribution (and the one library its default store needs) and nothing else;
adding the jobs wheel adds only that distribution, and its ``jobs`` command appears in the
``integrations`` command through the CLI plug-in group.

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
    "integrations.jobs",
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
    doctor: subprocess.CompletedProcess[str]
    strict_doctor: subprocess.CompletedProcess[str]
    with_jobs: Probe
    help_with_jobs: subprocess.CompletedProcess[str]
    jobs_schema: subprocess.CompletedProcess[str]


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
    with_memory = venv.probe(MODULES)
    memory_connectors = listed(venv.python)
    redis_without_driver = run([str(venv.python), "-c", _GET_REDIS]).strip()
    venv.install(f"integrations-base[cli] @ {wheels['integrations-base'].as_uri()}")
    doctor = _integrations(venv.path, "doctor", "--json")
    strict_doctor = _integrations(venv.path, "doctor", "--strict", "--json")
    before_jobs = venv.probe(MODULES)
    venv.install(wheels["integrations-base"], wheels["integrations-jobs"])
    return Steps(
        core=core,
        with_memory=with_memory,
        core_connectors=core_connectors,
        memory_connectors=memory_connectors,
        redis_without_driver=redis_without_driver,
        console_script=console_script,
        doctor=doctor,
        strict_doctor=strict_doctor,
        with_jobs=_compare(before_jobs, venv.probe(MODULES)),
        help_with_jobs=_integrations(venv.path, "--help"),
        jobs_schema=_integrations(venv.path, "jobs", "schema"),
    )


def _compare(before: Probe, after: Probe) -> Probe:
    """`after`, checked to hold every distribution of `before` at the same version."""
    kept = {name: after.distributions.get(name) for name in before.distributions}
    assert kept == before.distributions, "an installed version changed"
    return after


def _integrations(environment: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The environment's `integrations` console script, run to its end."""
    command = [str(environment / "bin" / "integrations"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


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


def test_adding_the_memory_wheel_lists_the_stores_whose_driver_is_missing_as_unavailable(
    steps: Steps,
) -> None:
    # Listing reads manifests and metadata without importing: the Redis, PostgreSQL and
    # Knowledge Vault stores are listed, unavailable until their extra (driver) is installed.
    rows = {row["name"]: row for row in steps.memory_connectors}
    assert {name: (row["status"], row["distribution"]) for name, row in rows.items()} == {
        "mock": ("ok", "integrations-mocks"),
        "memory.sqlite": ("ok", "integrations-adapters-memory"),
        "memory.redis": ("unavailable", "integrations-adapters-memory"),
        "memory.postgres": ("unavailable", "integrations-adapters-memory"),
        "memory.knowledge_vault": ("unavailable", "integrations-adapters-memory"),
    }
    assert {name: row["install"] for name, row in rows.items() if row["install"]} == {
        "memory.redis": "pip install 'integrations-adapters-memory[redis]'",
        "memory.postgres": "pip install 'integrations-adapters-memory[postgres]'",
        "memory.knowledge_vault": "pip install 'integrations-adapters-memory[knowledge-vault]'",
    }


def test_doctor_passes_with_missing_extras_and_fails_only_when_strict(steps: Steps) -> None:
    assert steps.doctor.returncode == 0, steps.doctor.stderr
    statuses = {row["name"]: row["status"] for row in json.loads(steps.doctor.stdout)}
    assert statuses["memory.redis"] == "unavailable"
    assert statuses["memory.sqlite"] == "ok"
    assert "broken" not in statuses.values()
    assert steps.strict_doctor.returncode == 1
    assert json.loads(steps.strict_doctor.stdout) == json.loads(steps.doctor.stdout)


def test_a_store_whose_driver_is_missing_says_which_extra_to_install(steps: Steps) -> None:
    assert steps.redis_without_driver.startswith("ConnectorUnavailable")
    assert "pip install 'integrations-adapters-memory[redis]'" in steps.redis_without_driver


def test_the_console_script_without_the_cli_extra_says_what_to_install(steps: Steps) -> None:
    assert steps.console_script.returncode == 1
    assert "pip install 'integrations-base[cli]'" in steps.console_script.stderr
    assert len(steps.console_script.stderr.strip().splitlines()) == 1


def test_adding_the_jobs_wheel_adds_exactly_that_distribution(steps: Steps) -> None:
    assert set(steps.with_jobs.local()) == {
        "integrations-base",
        "integrations-mocks",
        "integrations-adapters-memory",
        "integrations-jobs",
    }
    assert steps.with_jobs.imports["integrations.jobs"] == "ok"
    assert steps.with_memory.imports["integrations.jobs"] == "ModuleNotFoundError"


def test_the_jobs_command_is_a_plugin_of_the_integrations_command(steps: Steps) -> None:
    assert steps.help_with_jobs.returncode == 0, steps.help_with_jobs.stderr
    assert "(plug-in from integrations-jobs" in steps.help_with_jobs.stdout
    assert steps.jobs_schema.returncode == 0, steps.jobs_schema.stderr
    assert json.loads(steps.jobs_schema.stdout)["title"] == "integrations jobs spec"
