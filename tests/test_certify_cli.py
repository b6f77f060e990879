"""`integrations certify` certifies every connector the project ships, end to end.

Real parts only: a SQLite file, a redis-server and a PostgreSQL cluster started for this
module, and the Knowledge Vault API served on 127.0.0.1. Their addresses reach the command the
way an operator gives them: ``REDIS_URL`` and ``DATABASE_URL`` in the environment, the
Knowledge Vault's and the Intent Engine's ``url`` in ``--config`` files. The certification
class each connector's manifest entry names builds the rest of its config.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from integrations.adapters.intent_adapters.testing import IntentEngineServer
from integrations.adapters.memory_adapters.testing import (
    KnowledgeVaultServer,
    postgres_server,
    redis_server,
)
from integrations.adapters.vault_connectors.testing import OpenAIServer
from integrations.base._cli import cli

SHIPPED = {
    "mock",
    "memory.sqlite",
    "memory.redis",
    "memory.postgres",
    "memory.knowledge_vault",
    "intent.local",
    "intent.engine",
    "intent.signals",
    "vault.openai",
}


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def vault_config(tmp_path: Path) -> Iterator[Path]:
    with KnowledgeVaultServer() as server:
        path = tmp_path / "knowledge-vault.json"
        path.write_text(json.dumps({"url": server.url, "timeout_seconds": 5}), "utf-8")
        yield path


@pytest.fixture
def engine_config(tmp_path: Path) -> Iterator[Path]:
    with IntentEngineServer() as server:
        path = tmp_path / "intent-engine.json"
        path.write_text(json.dumps({"url": server.url, "timeout_seconds": 5}), "utf-8")
        yield path


@pytest.fixture
def openai_config(tmp_path: Path) -> Iterator[Path]:
    with OpenAIServer(api_key="sk-certify-cli") as server:
        path = tmp_path / "openai.json"
        config = {"url": server.url, "api_key": "literal:sk-certify-cli", "timeout_seconds": 5}
        path.write_text(json.dumps(config), "utf-8")
        yield path


def servers_configs(vault_config: Path, engine_config: Path, openai_config: Path) -> list[str]:
    """The ``--config`` options that give the HTTP connectors their servers."""
    return [
        "--config",
        f"memory.knowledge_vault={vault_config}",
        "--config",
        f"intent.engine={engine_config}",
        "--config",
        f"vault.openai={openai_config}",
    ]


def certify(*arguments: str, env: dict[str, str | None] | None = None) -> Result:
    runner = CliRunner(
        env={"COLUMNS": "200", "REDIS_URL": None, "DATABASE_URL": None, **(env or {})}
    )
    return runner.invoke(cli, ["certify", *arguments], catch_exceptions=False)


def outcomes(result: Result) -> dict[str, dict[str, Any]]:
    return {row["connector"]: row for row in json.loads(result.stdout)}


def test_certify_memory_sqlite_uses_a_temporary_file_by_default() -> None:
    result = certify("memory.sqlite", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["connector"], report["ok"]) == ("memory.sqlite", True)
    assert report["counts"]["failed"] == 0
    assert report["counts"]["passed"] >= 17
    checks = {row["check"]: row["outcome"] for row in report["checks"]}
    # The memory certification ran, not the plain kit: memories are searchable by text.
    assert checks["text_search_finds_matching_records"] == "passed"
    assert checks["tombstones_delete_records"] == "passed"


def test_certify_memory_postgres_from_a_config_file(database_url: str, tmp_path: Path) -> None:
    config = tmp_path / "postgres.toml"
    schema = f"certify_{uuid.uuid4().hex[:10]}"
    config.write_text(f'dsn = "{database_url}"\nschema_name = "{schema}"\n', "utf-8")

    result = certify("memory.postgres", "--config", str(config))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].startswith("certified: ")


def test_certify_all_passes_every_shipped_connector(
    redis_url: str,
    database_url: str,
    vault_config: Path,
    engine_config: Path,
    openai_config: Path,
) -> None:
    result = certify(
        "--all",
        *servers_configs(vault_config, engine_config, openai_config),
        "--json",
        env={"REDIS_URL": redis_url, "DATABASE_URL": database_url},
    )

    assert result.exit_code == 0, result.output
    rows = outcomes(result)
    assert rows.keys() == SHIPPED
    for name, row in rows.items():
        assert (row["result"], row["ok"], row["reason"]) == ("passed", True, None), name
        assert row["report"]["counts"]["failed"] == 0, name
        assert row["report"]["counts"]["passed"] > 0, name


def test_certify_all_prints_a_summary_table(
    redis_url: str,
    database_url: str,
    vault_config: Path,
    engine_config: Path,
    openai_config: Path,
) -> None:
    result = certify(
        "--all",
        *servers_configs(vault_config, engine_config, openai_config),
        env={"REDIS_URL": redis_url, "DATABASE_URL": database_url},
    )

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for name in SHIPPED:
        [row] = [line for line in lines if line.startswith(f"│ {name} ")]
        assert row.split("│")[2].strip() == "passed"
    assert lines[-1] == f"{len(SHIPPED)} of {len(SHIPPED)} connectors certified"


def test_certify_all_without_servers_names_what_would_configure_them() -> None:
    result = certify("--all", "--json")

    assert result.exit_code == 1
    rows = outcomes(result)
    assert rows.keys() == SHIPPED
    assert rows["mock"]["result"] == "passed"
    assert rows["memory.sqlite"]["result"] == "passed"
    assert {
        name: (rows[name]["result"], rows[name]["reason"])
        for name in SHIPPED - {"mock", "memory.sqlite", "intent.local", "intent.signals"}
    } == {
        "memory.redis": (
            "not-configured",
            "set REDIS_URL to the server's URL, or pass --config memory.redis=FILE",
        ),
        "memory.postgres": (
            "not-configured",
            "set DATABASE_URL to the server's URL, or pass --config memory.postgres=FILE",
        ),
        "memory.knowledge_vault": (
            "not-configured",
            "pass --config memory.knowledge_vault=FILE with the Knowledge Vault API's url",
        ),
        "intent.engine": (
            "not-configured",
            "pass --config intent.engine=FILE with the Intent Engine API's url",
        ),
        "vault.openai": (
            "not-configured",
            "pass --config vault.openai=FILE with the OpenAI-compatible API's url and api_key",
        ),
    }
    embedded = {"mock", "memory.sqlite", "intent.local", "intent.signals"}
    assert all(rows[name]["result"] == "passed" for name in embedded)
    assert all(rows[name]["ok"] is False for name in SHIPPED - embedded)


def test_the_summary_prints_every_reason_whole_in_a_narrow_terminal() -> None:
    result = certify("--all", env={"COLUMNS": "60"})

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert (
        "memory.redis: set REDIS_URL to the server's URL, or pass --config memory.redis=FILE"
        in lines
    )
    assert "…" not in result.stdout


def test_certify_one_unconfigured_store_exits_1_saying_how_to_configure_it() -> None:
    result = certify("memory.redis")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "Error: connector 'memory.redis' is not configured for certification: "
        "set REDIS_URL to the server's URL, or pass --config"
    )


def test_certify_exits_1_when_a_check_fails(vault_config: Path) -> None:
    # The Knowledge Vault cannot delete: declaring that it can makes the tombstone check fail.
    result = certify(
        "memory.knowledge_vault",
        "--config",
        str(vault_config),
        "--enable",
        "supports_tombstones",
        "--json",
    )

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    checks = {row["check"]: row["outcome"] for row in report["checks"]}
    assert checks["tombstones_delete_records"] == "failed"
    assert report["ok"] is False


def test_certify_all_exits_1_when_one_connector_fails(
    redis_url: str,
    database_url: str,
    vault_config: Path,
    engine_config: Path,
    openai_config: Path,
) -> None:
    result = certify(
        "--all",
        *servers_configs(vault_config, engine_config, openai_config),
        "--enable",
        "supports_tombstones",
        "--json",
        env={"REDIS_URL": redis_url, "DATABASE_URL": database_url},
    )

    assert result.exit_code == 1
    rows = outcomes(result)
    # Declaring deletion for every connector fails exactly those that cannot delete.
    cannot_delete = {"memory.knowledge_vault", "intent.engine", "intent.signals"}
    for name in cannot_delete:
        assert rows[name]["result"] == "failed", name
        assert "tombstones_delete_records" in rows[name]["reason"], name
    passed = {name for name, row in rows.items() if row["result"] == "passed"}
    assert passed == SHIPPED - cannot_delete
