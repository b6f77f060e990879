"""Commands other distributions add to `integrations` through the `integrations.cli` group."""

from __future__ import annotations

from typing import TYPE_CHECKING

from click.testing import CliRunner

from integrations.base._cli import cli

if TYPE_CHECKING:
    from conftest import FakeSite

_COMMANDS = """\
import click


@click.group()
def hello():
    \"\"\"Say hello.\"\"\"


@hello.command()
@click.argument("name")
def to(name):
    \"\"\"Greet NAME.\"\"\"
    click.echo(f"hello {name}")


not_a_command = 42
"""


def install_commands(site: FakeSite, entries: dict[str, str]) -> str:
    """A distribution with a commands module and `integrations.cli` entries; its module name.

    `entries` maps command names to attributes of the module (``{module}`` is replaced).
    """
    module = site.unique("commands")
    site.write_module(module, _COMMANDS)
    dist_info = site.root / f"{module}-2.5.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 2.5\n")
    lines = "".join(f"{name} = {value.format(module=module)}\n" for name, value in entries.items())
    (dist_info / "entry_points.txt").write_text(f"[integrations.cli]\n{lines}")
    (dist_info / "RECORD").write_text(f"{module}.py,,\n")
    return module


def imported(site: FakeSite) -> str:
    return site.marker.read_text() if site.marker.exists() else ""


def test_plugin_commands_are_listed_without_importing_them(fake_site: FakeSite) -> None:
    module = install_commands(fake_site, {"hello": "{module}:hello"})
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    assert f"hello     (plug-in from {module} 2.5)" in result.output
    assert "list " in result.output
    assert module not in imported(fake_site)


def test_a_plugin_command_is_loaded_when_invoked(fake_site: FakeSite) -> None:
    module = install_commands(fake_site, {"hello": "{module}:hello"})
    result = CliRunner().invoke(cli, ["hello", "to", "ada"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello ada\n"
    assert module in imported(fake_site)
    help_result = CliRunner().invoke(cli, ["hello", "--help"])
    assert "Greet NAME." in help_result.output


def test_a_broken_plugin_is_a_clear_error_and_the_rest_of_the_cli_works(
    fake_site: FakeSite,
) -> None:
    module = install_commands(
        fake_site,
        {
            "missing": "{module}_gone:hello",
            "number": "{module}:not_a_command",
            "hello": "{module}:hello",
        },
    )
    runner = CliRunner()
    listed = runner.invoke(cli, ["--help"])
    assert listed.exit_code == 0
    assert "missing" in listed.output
    assert "number" in listed.output

    missing = runner.invoke(cli, ["missing", "--anything"])
    assert missing.exit_code == 1
    assert f"the command 'missing' from {module} 2.5 cannot be loaded" in missing.output
    assert "ModuleNotFoundError" in missing.output

    number = runner.invoke(cli, ["number"])
    assert number.exit_code == 1
    assert "it is a int, not a command" in number.output

    assert runner.invoke(cli, ["hello", "to", "bob"]).output == "hello bob\n"
    assert runner.invoke(cli, ["manifest", "schema"]).exit_code == 0


def test_a_plugin_cannot_replace_a_built_in_command(fake_site: FakeSite) -> None:
    module = install_commands(fake_site, {"list": "{module}:hello"})
    runner = CliRunner()
    assert module not in runner.invoke(cli, ["--help"]).output
    result = runner.invoke(cli, ["list", "--help"])
    assert "One row per connector" in result.output
    assert module not in imported(fake_site)
