"""The `integrations` command: list, show, doctor, manifest validate/schema, fast --help.

Most tests run the click group in-process with `CliRunner`; a few run the real console entry
point in a fresh interpreter. Rows of distributions these tests did not create are ignored:
the environment may hold other connectors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from integrations.base import _cli_entry
from integrations.base._cli import cli
from integrations.base._registry import Registry
from integrations.base.registry import manifest_json_schema

if TYPE_CHECKING:
    from conftest import FakeDistribution, FakeSite

ROW_KEYS = {"name", "distribution", "version", "capabilities", "status", "problem"}


def invoke(*args: str) -> Result:
    # A wide terminal, so that rich tables do not wrap the long generated names.
    return CliRunner(env={"COLUMNS": "400"}).invoke(cli, list(args), catch_exceptions=False)


def rows_by_name(output: str) -> dict[str | None, dict[str, Any]]:
    rows = json.loads(output)
    assert isinstance(rows, list)
    return {row["name"]: row for row in rows}


def install(
    site: FakeSite, stem: str, source: str | None = None, **fields: Any
) -> tuple[FakeDistribution, str]:
    package = site.unique(stem)
    name = site.connector_name(stem)
    dist = site.add_distribution(
        stem,
        package=package,
        version="3.2.1",
        modules={"conn": site.connector_source() if source is None else source},
        manifest={"connectors": [site.entry(name, f"{package}.conn", **fields)]},
    )
    return dist, name


# -- list ------------------------------------------------------------------------------------


def test_list_json_rows(fake_site: FakeSite) -> None:
    good_dist, good = install(fake_site, "good", capabilities=["fetch"])
    _, future = install(fake_site, "future", contract=">=2")
    _, raising = install(fake_site, "raising", "raise RuntimeError('boom')\n")

    result = invoke("list", "--json")

    assert result.exit_code == 0
    rows = rows_by_name(result.stdout)
    for name in (good, future, raising):
        assert rows[name].keys() >= ROW_KEYS
    assert {key: rows[good][key] for key in ROW_KEYS} == {
        "name": good,
        "distribution": good_dist.name,
        "version": "3.2.1",
        "capabilities": ["fetch"],
        "status": "ok",
        "problem": None,
    }
    assert rows[future]["status"] == "incompatible"
    assert rows[future]["problem"] == "supports contract >=2, installed contract is 1.1.0"
    assert rows[raising]["status"] == "ok"  # `list` imports nothing, so it cannot know yet
    assert fake_site.imported() == []


def test_list_json_includes_broken_manifests(fake_site: FakeSite) -> None:
    dist = fake_site.add_distribution("broken", manifest=b"{")

    result = invoke("list", "--json")

    assert result.exit_code == 0
    [row] = [row for row in json.loads(result.stdout) if row["distribution"] == dist.name]
    assert row["name"] is None
    assert row["status"] == "broken"
    assert row["problem"].startswith(f"{dist.manifest_path}: not valid JSON")


def test_list_table(fake_site: FakeSite) -> None:
    dist, name = install(fake_site, "table")

    result = invoke("list")

    assert result.exit_code == 0
    assert name in result.stdout
    assert dist.name in result.stdout
    for header in ("name", "distribution", "version", "capabilities", "status"):
        assert header in result.stdout
    # No row has a problem: the column would be empty, so it is left out.
    assert "problem" not in result.stdout.splitlines()[1]


def test_list_with_an_application_manifest_option(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = fake_site.unique("app")
    fake_site.write_module(f"{package}.conn", fake_site.connector_source())
    name = fake_site.connector_name("app")
    path = fake_site.write_manifest({"connectors": [fake_site.entry(name, f"{package}.conn")]})
    monkeypatch.setenv("INTEGRATIONS_ALLOWED_MODULES", package)

    result = invoke("--manifest", str(path), "list", "--json")

    assert result.exit_code == 0
    row = rows_by_name(result.stdout)[name]
    assert (row["status"], row["problem"], row["distribution"]) == ("ok", None, None)
    assert row["source"] == f"{path.resolve()}#/connectors/0"


def test_unusable_manifest_option_is_a_one_line_error(fake_site: FakeSite) -> None:
    path = fake_site.manifests / "absent.json"

    result = invoke("--manifest", str(path), "list")

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {path.resolve()}: cannot read manifest: No such file or directory"
    )


# -- doctor ----------------------------------------------------------------------------------


def test_doctor_exits_1_and_reports_the_broken_connector(fake_site: FakeSite) -> None:
    _, good = install(fake_site, "good")
    _, raising = install(fake_site, "raising", "raise RuntimeError('boom')\n")

    result = invoke("doctor", "--json")

    assert result.exit_code == 1
    rows = rows_by_name(result.stdout)
    assert (rows[good]["status"], rows[good]["problem"], rows[good]["loaded"]) == (
        "ok",
        None,
        True,
    )
    assert rows[raising]["status"] == "broken"
    assert rows[raising]["problem"].endswith("raised RuntimeError: boom")


def test_doctor_exits_0_when_every_connector_is_ok(only_fake_distributions: FakeSite) -> None:
    site = only_fake_distributions
    _, first = install(site, "first")
    _, second = install(site, "second", site.connector_source(capabilities=("push", "sync")))

    result = invoke("doctor", "--json")

    assert result.exit_code == 0
    rows = rows_by_name(result.stdout)
    assert rows.keys() == {first, second}
    assert all(row["status"] == "ok" and row["problem"] is None for row in rows.values())
    assert rows[second]["capabilities"] == ["push", "sync"]

    table = invoke("doctor")
    assert table.exit_code == 0
    assert first in table.stdout


# -- show ------------------------------------------------------------------------------------


def test_show_json_includes_the_config_schema(fake_site: FakeSite) -> None:
    dist, name = install(fake_site, "shown", description="A connector to show.")

    result = invoke("show", name, "--json")

    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document.keys() >= ROW_KEYS
    assert (document["name"], document["status"], document["problem"]) == (name, "ok", None)
    assert document["distribution"] == dist.name
    assert document["source"] == f"{dist.manifest_path}#/connectors/0"
    assert document["entry"]["class"] == "FakeConnector"
    assert document["entry"]["description"] == "A connector to show."
    schema = document["config_schema"]
    assert schema["title"] == "Config"
    assert schema["properties"]["endpoint"]["type"] == "string"
    secret = schema["properties"]["api_key"]["anyOf"][0]
    assert (secret["format"], secret["writeOnly"]) == ("password", True)


def test_show_of_a_broken_connector_has_no_schema_and_says_why(fake_site: FakeSite) -> None:
    _, name = install(fake_site, "noclass", "VALUE = 1\n")

    result = invoke("show", name, "--json")

    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["config_schema"] is None
    assert document["status"] == "broken"
    assert document["problem"].endswith("has no class FakeConnector")

    text = invoke("show", name)
    assert "has no class FakeConnector" in text.stdout


def test_show_unknown_name(fake_site: FakeSite) -> None:
    missing = fake_site.connector_name("missing")

    result = invoke("show", missing)

    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: no connector named '{missing}'"


# -- manifest --------------------------------------------------------------------------------


def test_manifest_validate_prints_each_error_with_file_and_pointer(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"connectors": [{"name": "a", "module": "m", "class": "C"}]}))
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "connectors": [
                    {"name": "a", "module": "m", "class": "C"},
                    {"name": "b", "module": "m", "class": "not a class"},
                    {"name": "a", "module": "m", "class": "D"},
                    {"name": "c", "module": "m", "class": "C", "contract": "nonsense"},
                ]
            }
        )
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    missing = tmp_path / "missing.json"

    result = invoke("manifest", "validate", str(good), str(bad), str(broken), str(missing))

    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"{good}: ok"]
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{bad}#/connectors/1/class: String should match pattern")
    assert errors[1].startswith(f"{bad}#/connectors/3/contract: Value error, not a version")
    assert errors[2] == f"{bad}#/connectors/2/name: 'a' already declared at /connectors/0"
    assert errors[3].startswith(f"{broken}: not valid JSON")
    assert errors[4] == f"{missing}: cannot read: No such file or directory"
    assert len(errors) == 5


def test_manifest_validate_ok(tmp_path: Path) -> None:
    path = tmp_path / "good.json"
    path.write_text(json.dumps({"connectors": [{"name": "a", "module": "m", "class": "C"}]}))

    result = invoke("manifest", "validate", str(path))

    assert (result.exit_code, result.stdout, result.stderr) == (0, f"{path}: ok\n", "")


def test_manifest_schema_prints_the_schema() -> None:
    result = invoke("manifest", "schema")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == manifest_json_schema()


# -- start-up --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["--help"], ["-h"], ["list", "--help"], ["doctor", "--help"], ["manifest", "--help"]]
)
def test_help_does_not_run_discovery(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    def forbidden(*args: object, **kwargs: object) -> Any:
        raise AssertionError("discovery ran")

    monkeypatch.setattr(Registry, "discover", forbidden)
    monkeypatch.setattr(metadata, "entry_points", forbidden)

    result = invoke(*args)

    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    with pytest.raises(AssertionError, match="discovery ran"):
        invoke("list")  # the trap is armed: a command that discovers does trip it


def test_missing_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def without_click(name: str, package: str | None = None) -> Any:
        return None if name == "click" else find_spec(name, package)

    monkeypatch.setattr(_cli_entry, "find_spec", without_click)

    with pytest.raises(SystemExit) as raised:
        _cli_entry.main()

    assert raised.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "integrations: the command-line tool needs its extra; "
        "install it with: pip install 'integrations-base[cli]'\n"
    )


# -- the real command in a fresh interpreter -------------------------------------------------

_ONLY_SITE = """\
import sys
from importlib import metadata
from importlib.util import find_spec

site = sys.argv.pop(1)


real_distributions = metadata.distributions


def only_site(**params):
    return real_distributions(path=[site])


metadata.distributions = only_site
from integrations.base._cli_entry import main

main()
"""


def command() -> list[str]:
    """The installed console script of this interpreter, or its entry point run with -c."""
    script = shutil.which("integrations", path=os.path.dirname(sys.executable))
    if script is not None:
        return [script]
    return [sys.executable, "-c", "from integrations.base._cli_entry import main; main()"]


def run(
    args: list[str], environment: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=environment, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_subprocess_doctor_exits_1_with_a_broken_connector(fake_site: FakeSite) -> None:
    _, good = install(fake_site, "good")
    _, raising = install(fake_site, "raising", "raise RuntimeError('boom')\n")

    done = run([*command(), "doctor", "--json"], fake_site.subprocess_environment())

    assert done.returncode == 1, done.stderr
    rows = rows_by_name(done.stdout)
    assert rows[good]["status"] == "ok"
    assert rows[raising]["status"] == "broken"
    assert rows[raising]["problem"].endswith("raised RuntimeError: boom")


def test_subprocess_doctor_exits_0_and_lists_environment_manifests(fake_site: FakeSite) -> None:
    _, good = install(fake_site, "good")
    package = fake_site.unique("app")
    fake_site.write_module(f"{package}.conn", fake_site.connector_source())
    app = fake_site.connector_name("app")
    path = fake_site.write_manifest({"connectors": [fake_site.entry(app, f"{package}.conn")]})
    environment = fake_site.subprocess_environment(
        INTEGRATIONS_MANIFEST=str(path), INTEGRATIONS_ALLOWED_MODULES=package
    )
    # Only the fake site's distributions are visible, whatever else this environment holds.
    args = [sys.executable, "-c", _ONLY_SITE, str(fake_site.root), "doctor", "--json"]

    done = run(args, environment)

    assert done.returncode == 0, done.stdout + done.stderr
    rows = rows_by_name(done.stdout)
    assert rows.keys() == {good, app}
    assert {row["status"] for row in rows.values()} == {"ok"}
    assert rows[app]["source"] == f"{path.resolve()}#/connectors/0"

    listed = run([*command(), "list", "--json"], environment)
    assert listed.returncode == 0, listed.stderr
    assert {good, app} <= rows_by_name(listed.stdout).keys()


def test_subprocess_help(fake_site: FakeSite) -> None:
    done = run([*command(), "--help"], fake_site.subprocess_environment())

    assert done.returncode == 0, done.stderr
    assert "Discover, inspect and check the connectors" in done.stdout
    for name in ("list", "show", "doctor", "manifest"):
        assert name in done.stdout


# -- list at every width ---------------------------------------------------------------------


def listing_fixture(site: FakeSite) -> list[str]:
    """A long-named connector and an incompatible one (a problem to show); every name listed."""
    install(site, "knowledge_archive_long_name")
    install(site, "from_the_future", contract=">=2.5,<3")
    rows = json.loads(invoke("list", "--json").stdout)
    return [row["name"] for row in rows if row["name"]]


def listing(columns: str | None) -> str:
    result = CliRunner(env={"COLUMNS": columns}).invoke(cli, ["list"], catch_exceptions=False)
    assert result.exit_code == 0
    return result.stdout


@pytest.mark.parametrize("columns", [80, 60])
def test_list_in_a_narrow_terminal_keeps_every_name_whole(
    fake_site: FakeSite, columns: int
) -> None:
    names = listing_fixture(fake_site)

    output = listing(str(columns))

    lines = output.splitlines()
    table = [line for line in lines if line[:1] in "┏┃┡│└"]
    assert "…" not in output
    assert max(len(line) for line in table) <= columns
    table_rows = [line for line in table if line.startswith("│")]
    for name in names:
        assert any(line.split("│")[1].strip() == name for line in table_rows), name
    # What gave way: the problem moved below the table, whole, one line per connector (the
    # terminal wraps it, so it copies as one line); the distribution went next.
    assert "problem" not in table[1]
    assert "distribution" not in table[1]
    assert "status" in table[1]
    [future] = [name for name in names if name.endswith("from_the_future")]
    assert f"{future}: supports contract >=2.5,<3, installed contract is 1.1.0" in lines


def test_list_piped_shows_every_column_and_cuts_nothing(fake_site: FakeSite) -> None:
    names = listing_fixture(fake_site)

    output = listing(None)  # no terminal and no COLUMNS: as wide as the rows need

    lines = output.splitlines()
    assert "…" not in output
    for header in ("name", "distribution", "version", "capabilities", "status", "problem"):
        assert header in lines[1]
    table_rows = [line for line in lines if line.startswith("│")]
    for name in names:
        assert any(line.split("│")[1].strip() == name for line in table_rows), name
    assert any("supports contract >=2.5,<3, installed contract is" in line for line in table_rows)


def test_list_in_a_real_80_column_terminal_keeps_every_name_whole(fake_site: FakeSite) -> None:
    import fcntl
    import pty
    import struct
    import termios

    names = listing_fixture(fake_site)
    environment = fake_site.subprocess_environment()
    environment.pop("COLUMNS", None)
    environment.pop("LINES", None)
    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 80, 0, 0))
    code = "from integrations.base._cli_entry import main; main()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "list"],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**environment, "TERM": "dumb"},
    )
    os.close(child)
    chunks: list[bytes] = []
    while True:  # ends when the child closes the terminal (EIO), bounded by the read size
        try:
            chunk = os.read(parent, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    assert process.wait(timeout=120) == 0
    text = b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")
    table = [line for line in text.splitlines() if line[:1] in "┏┃┡│└"]

    assert "…" not in text
    assert max(len(line) for line in table) <= 80
    for name in names:
        assert name in text
