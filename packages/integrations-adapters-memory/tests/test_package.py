"""integrations-adapters-memory installs and imports on its own, as a typed leaf of the namespace.

These tests run with only this distribution and its declared dependencies installed, so they
prove that a deployment can pick this adapter package alone.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

from integrations.base import check_connector_class
from integrations.base.testing import distribution_layout_problems, read_package_manifest

DIST = "integrations-adapters-memory"
PACKAGE = "integrations.adapters.memory_adapters"


def test_distribution_has_the_shape_every_distribution_shares() -> None:
    assert distribution_layout_problems(DIST, PACKAGE) == []


def test_manifest_declares_the_four_memory_stores() -> None:
    entries = {entry.name: entry for _, entry in read_package_manifest(PACKAGE).entries}
    assert sorted(entries) == [
        "memory.knowledge_vault",
        "memory.postgres",
        "memory.redis",
        "memory.sqlite",
    ]
    assert {name: entry.module.rsplit(".", 1)[1] for name, entry in entries.items()} == {
        "memory.knowledge_vault": "knowledge_vault",
        "memory.postgres": "postgres",
        "memory.redis": "redis",
        "memory.sqlite": "sqlite",
    }


def test_every_entry_names_a_class_that_fits_the_contract() -> None:
    for _, entry in read_package_manifest(PACKAGE).entries:
        module = importlib.import_module(entry.module)
        check_connector_class(getattr(module, entry.class_name))


def test_importing_the_package_imports_no_driver() -> None:
    # A deployment that uses only the SQLite store never loads redis, psycopg or httpx.
    code = (
        "import sys, integrations.adapters.memory_adapters, "
        "integrations.adapters.memory_adapters.sqlite\n"
        "drivers = ('redis', 'psycopg', 'psycopg_pool', 'httpx')\n"
        "print(sorted(m for m in drivers if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert output.strip() == "[]"


BACKEND_SUBPACKAGES = {
    "sqlite": ("SqliteMemoryConfig", "SqliteMemoryConnector"),
    "redis": ("RedisMemoryConfig", "RedisMemoryConnector"),
    "postgres": ("PostgresMemoryConfig", "PostgresMemoryConnector"),
    "knowledge_vault": ("KnowledgeVaultConfig", "KnowledgeVaultConnector"),
}


def test_each_backend_is_a_subpackage_reached_by_its_old_import_path() -> None:
    # `from integrations.adapters.memory_adapters.sqlite import SqliteMemoryConnector` was a
    # module path before each backend got its own subpackage; it must keep working.
    for backend, names in BACKEND_SUBPACKAGES.items():
        module = importlib.import_module(f"{PACKAGE}.{backend}")
        assert module.__file__ is not None
        assert module.__file__.endswith(f"{backend}/__init__.py"), module.__file__
        for name in names:
            assert name in module.__all__, (backend, name)
            assert getattr(module, name).__module__.startswith(f"{PACKAGE}.{backend}")
