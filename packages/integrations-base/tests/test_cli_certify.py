"""`integrations certify` and `integrations call`: the kit and one governed operation, from the CLI.

Most tests run the click group in-process with `CliRunner` (certify then runs pytest inside
this pytest, as `pytester` does); one test of each command runs the real console script in a
fresh interpreter. The mock's stores live in the process, so data pushed by one subprocess
is not there for the next: subprocess tests only read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from integrations.base import _cli
from integrations.base._cli import cli
from integrations.base.testing import standard_checks
from integrations.mocks import get_store

if TYPE_CHECKING:
    from conftest import FakeSite

CANARY = "CANARY-cli-4b1e7d-do-not-leak"
CHECKS = {name.removeprefix("test_") for name in standard_checks()}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", **(env or {})})
    return runner.invoke(cli, list(args), catch_exceptions=False)


def write_config(tmp_path: Path, document: dict[str, Any], suffix: str = ".json") -> Path:
    path = tmp_path / f"config-{uuid.uuid4().hex[:8]}{suffix}"
    if suffix == ".toml":
        path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in document.items()), "utf-8")
    else:
        path.write_text(json.dumps(document), encoding="utf-8")
    return path


@pytest.fixture
def store() -> str:
    return f"cli-{uuid.uuid4().hex}"


# -- certify ---------------------------------------------------------------------------------


def test_certify_mock_passes_with_a_line_per_check() -> None:
    result = invoke("certify", "mock")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("certification of mock (kit 1.3.0, integrations-base ")
    outcomes = {"passed", "failed", "expected-failure", "not-applicable"}
    listed = {line.split()[1] for line in lines[1:-1] if line.split()[0] in outcomes}
    assert listed == CHECKS
    assert "  not-applicable   text_search_finds_matching_records" in lines
    assert "                     supports_text_search is False" in lines
    assert lines[-1] == "certified: 17 passed, 0 failed, 0 expected failures, 8 not applicable"


def test_certify_json_report_with_optional_behaviour_enabled(tmp_path: Path, store: str) -> None:
    config = write_config(tmp_path, {"store": store}, ".toml")

    result = invoke(
        "certify",
        "mock",
        "--config",
        str(config),
        "--tenant",
        "acme",
        "--actor",
        "auditor",
        "--enable",
        "supports_text_search",
        "--enable",
        "supports_tombstones",
        "--json",
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["connector"] == "mock"
    assert report["kit_version"] == "1.3.0"
    assert report["ok"] is True
    assert report["counts"] == {
        "passed": 19,
        "failed": 0,
        "expected-failure": 0,
        "not-applicable": 6,
    }
    checks = {row["check"]: row for row in report["checks"]}
    assert checks.keys() == CHECKS
    assert checks["text_search_finds_matching_records"]["outcome"] == "passed"
    assert checks["unsupported_operations_raise_not_supported"] == {
        "check": "unsupported_operations_raise_not_supported",
        "outcome": "not-applicable",
        "reason": "`unsupported` is empty: the connector offers fetch, push and sync",
        "duration_seconds": checks["unsupported_operations_raise_not_supported"][
            "duration_seconds"
        ],
    }
    assert get_store(store).tenants() == {"acme"}  # every check ran as the given tenant


def test_certify_a_disabled_behaviour_is_reported_not_applicable() -> None:
    result = invoke("certify", "mock", "--disable", "sync_is_incremental", "--json")

    assert result.exit_code == 0, result.output
    checks = {row["check"]: row for row in json.loads(result.stdout)["checks"]}
    assert checks["sync_is_incremental"]["outcome"] == "not-applicable"
    assert checks["sync_is_incremental"]["reason"] == "sync_is_incremental is False"


def test_certify_a_hollow_connector_exits_1_naming_each_failed_check(fake_site: FakeSite) -> None:
    package = fake_site.unique("hollow")
    name = fake_site.connector_name("hollow")
    fake_site.add_distribution(
        "hollow",
        package=package,
        modules={"conn": fake_site.connector_source()},
        manifest={"connectors": [fake_site.entry(name, f"{package}.conn", capabilities=["fetch"])]},
    )

    result = invoke("certify", name, "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    checks = {row["check"]: row for row in report["checks"]}
    assert checks["errors_map_into_the_library_tree"] == {
        **checks["errors_map_into_the_library_tree"],
        "outcome": "failed",
        "reason": "fetch with a damaged cursor returned normally; expected InvalidRequest",
    }
    assert checks["fetch_respects_limit_and_cursor"]["outcome"] == "failed"
    assert checks["class_fits_the_contract"]["outcome"] == "passed"
    assert checks["manifest_entry_matches_the_class"]["outcome"] == "passed"

    text = invoke("certify", name)
    assert text.exit_code == 1
    assert "  failed           errors_map_into_the_library_tree" in text.stdout.splitlines()
    assert text.stdout.splitlines()[-1].startswith("not certified: ")


def test_certify_errors_before_any_check(tmp_path: Path) -> None:
    unknown = invoke("certify", "nope")
    assert unknown.exit_code == 1
    assert unknown.stderr == "Error: no connector named 'nope'\n"

    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    bad_config = invoke("certify", "mock", "--config", str(broken))
    assert bad_config.exit_code == 1
    assert bad_config.stderr.startswith(f"Error: config file {broken} is not valid JSON: ")

    both = invoke(
        "certify", "mock", "--enable", "push_is_idempotent", "--disable", "push_is_idempotent"
    )
    assert both.exit_code == 2
    assert "--enable and --disable both name push_is_idempotent" in both.stderr


def test_certify_without_the_testing_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def without_timeout(name: str, package: str | None = None) -> Any:
        return None if name == "pytest_timeout" else find_spec(name, package)

    monkeypatch.setattr(_cli, "find_spec", without_timeout)

    result = invoke("certify", "mock")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "integrations certify: the certification kit needs pytest and pytest-timeout; "
        "install them with: pip install 'integrations-base[testing]'\n"
    )


# -- call ------------------------------------------------------------------------------------


def test_call_push_fetch_and_sync_print_json(tmp_path: Path, store: str) -> None:
    config = str(write_config(tmp_path, {"store": store}))
    payload = {"records": [{"id": f"r{n}", "data": {"n": n}} for n in range(3)]}

    pushed = invoke("call", "mock", "push", "--config", config, "--payload", json.dumps(payload))
    fetched = invoke("call", "mock", "fetch", "--config", config, "--query", '{"limit": 2}')
    synced = invoke("call", "mock", "sync", "--config", config)

    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout) == {"accepted": ["r0", "r1", "r2"], "rejected": []}
    assert fetched.exit_code == 0, fetched.output
    page = json.loads(fetched.stdout)
    assert [record["id"] for record in page["records"]] == ["r2", "r1"]
    assert page["next_cursor"]
    assert synced.exit_code == 0, synced.output
    state = json.loads(synced.stdout)
    assert state["upserted"] == 3
    assert [change["id"] for change in state["changes"]] == ["r0", "r1", "r2"]

    resumed = invoke(
        "call", "mock", "sync", "--config", config, "--state", json.dumps(state["state"])
    )
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["changes"] == []
    second = invoke(
        "call",
        "mock",
        "fetch",
        "--config",
        config,
        "--query",
        json.dumps({"limit": 2, "cursor": page["next_cursor"]}),
    )
    assert [record["id"] for record in json.loads(second.stdout)["records"]] == ["r0"]


def test_call_runs_as_the_given_context(tmp_path: Path, store: str) -> None:
    config = str(write_config(tmp_path, {"store": store}, ".toml"))
    context = json.dumps({"tenant": "acme", "actor": "ops"})
    payload = json.dumps({"records": [{"id": "only-acme"}]})

    invoke("call", "mock", "push", "--config", config, "--context", context, "--payload", payload)
    as_acme = invoke("call", "mock", "fetch", "--config", config, "--context", context)
    as_default = invoke("call", "mock", "fetch", "--config", config)

    assert [r["id"] for r in json.loads(as_acme.stdout)["records"]] == ["only-acme"]
    assert json.loads(as_default.stdout)["records"] == []
    assert get_store(store).tenants() == {"acme", "default"}


@pytest.mark.parametrize(
    ("args", "document", "line"),
    [
        (["nope", "fetch"], {}, "error: ConnectorNotFound: no connector named 'nope'"),
        (
            ["mock", "fetch", "--query", '{"limit": 0}'],
            {},
            "error: InvalidRequest: invalid --query: limit: Input should be greater than or "
            "equal to 1",
        ),
        (
            ["mock", "fetch", "--query", "{oops"],
            {},
            "error: InvalidRequest: invalid --query: <root>: Invalid JSON: key must be a "
            "string at line 1 column 2",
        ),
        (
            ["mock", "fetch", "--context", '{"tenant": "acme"}'],
            {},
            "error: PolicyError: auth on 'mock' denied: ACTOR_REQUIRED: the auth context names "
            "no actor",
        ),
        (
            ["mock", "fetch"],
            {"page_size_max": 0},
            "error: ConfigError: invalid MockConfig: page_size_max: Input should be greater "
            "than or equal to 1",
        ),
        (
            ["mock", "fetch"],
            {"faults": [{"operation": "fetch", "error": "not_found", "message": "gone\nfor good"}]},
            "error: NotFound: gone for good (fetch call #1)",
        ),
    ],
    ids=["unknown", "bad-query", "not-json", "policy", "config", "backend"],
)
def test_call_errors_print_one_line_and_exit_1(
    tmp_path: Path, args: list[str], document: dict[str, Any], line: str
) -> None:
    config = str(write_config(tmp_path, document))

    result = invoke("call", *args[:2], "--config", config, *args[2:])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == line + "\n"


def test_call_usage_errors(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, {}))

    wrong_option = invoke("call", "mock", "fetch", "--config", config, "--payload", "{}")
    no_payload = invoke("call", "mock", "push", "--config", config)
    missing_file = invoke("call", "mock", "fetch", "--config", str(tmp_path / "absent.json"))

    assert wrong_option.exit_code == 2
    assert "--payload goes with another operation; fetch takes --query" in wrong_option.stderr
    assert no_payload.exit_code == 2
    assert "push needs --payload" in no_payload.stderr
    assert missing_file.exit_code == 1
    assert missing_file.stderr.startswith("error: ConfigError: cannot read config file ")


# -- secrets never reach the output ----------------------------------------------------------


def test_canary_secret_from_the_environment_never_reaches_cli_output(
    tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_CLI_KEY", CANARY)
    get_store(store).require_api_key(CANARY)
    good = str(write_config(tmp_path, {"store": store, "api_key": "env:CANARY_CLI_KEY"}))
    refused = str(write_config(tmp_path, {"api_key": "env:CANARY_CLI_KEY", "fail_auth": True}))
    invalid = str(write_config(tmp_path, {"api_key": "env:CANARY_CLI_KEY", "page_size_max": -1}))
    payload = json.dumps({"records": [{"id": "a", "data": {"note": "no secret here"}}]})
    runs = [
        invoke("call", "mock", "push", "--config", good, "--payload", payload),
        invoke("call", "mock", "fetch", "--config", good),
        invoke("call", "mock", "sync", "--config", good),
        invoke("call", "mock", "fetch", "--config", refused),
        invoke("call", "mock", "fetch", "--config", invalid),
        invoke("certify", "mock", "--config", good),
        invoke("certify", "mock", "--config", good, "--json"),
    ]

    assert [run.exit_code for run in runs] == [0, 0, 0, 1, 1, 0, 0]
    assert '"note": "no secret here"' in runs[1].stdout  # the scan read real results
    assert runs[3].stderr.startswith("error: AuthError: ")
    for run in runs:
        assert CANARY not in run.stdout
        assert CANARY not in run.stderr
    done = run_command(["call", "mock", "fetch", "--config", refused], CANARY_CLI_KEY=CANARY)
    assert done.returncode == 1
    assert CANARY not in done.stdout + done.stderr


# -- the real console script -----------------------------------------------------------------


def command() -> list[str]:
    """The installed console script of this interpreter, or its entry point run with -c."""
    script = shutil.which("integrations", path=os.path.dirname(sys.executable))
    if script is not None:
        return [script]
    return [sys.executable, "-c", "from integrations.base._cli_entry import main; main()"]


def run_command(args: list[str], **environment: str) -> subprocess.CompletedProcess[str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith("INTEGRATIONS_")}
    return subprocess.run(
        [*command(), *args],
        env={**variables, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_subprocess_certify_mock() -> None:
    done = run_command(["certify", "mock", "--json"])

    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert {row["check"] for row in report["checks"]} == CHECKS


def test_subprocess_call_mock_fetch(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"store": "subprocess"})

    done = run_command(
        ["call", "mock", "fetch", "--config", str(config), "--query", '{"limit": 2}']
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"records": [], "next_cursor": None}
    assert done.stderr == ""
