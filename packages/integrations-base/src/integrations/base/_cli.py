"""The `integrations` command: list, show and check connectors; validate manifests.

Discovery runs inside the commands that need it, never at start-up, so `integrations --help`
stays instant.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._exceptions import IntegrationsError, ManifestError
from ._manifest import manifest_json_schema, parse_manifest
from ._registry import ConnectorInfo, ManifestProblem, Registry, Status

__all__ = ["cli"]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _rows(registry: Registry, infos: Iterable[ConnectorInfo]) -> list[dict[str, Any]]:
    problems: Sequence[ManifestProblem] = registry.problems()
    return [info.to_json() for info in infos] + [problem.to_json() for problem in problems]


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "distribution", "version", "capabilities", "status", "problem")
    for row in rows:
        style = "green" if row["status"] == Status.OK.value else "red"
        table.add_row(
            escape(row["name"] or "-"),
            escape(row["distribution"] or "-"),
            escape(row["version"] or "-"),
            ", ".join(row["capabilities"]) or "-",
            f"[{style}]{row['status']}[/{style}]",
            escape(row["problem"] or ""),
        )
    _console().print(table)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--manifest",
    "manifests",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="An application manifest to read as well (repeatable).",
)
@click.pass_context
def cli(ctx: click.Context, manifests: tuple[Path, ...]) -> None:
    """Discover, inspect and check the connectors installed in this environment."""
    ctx.obj = manifests


def _discovered(ctx: click.Context) -> Registry:
    registry = Registry()
    manifests: tuple[Path, ...] = ctx.obj or ()
    try:
        for path in manifests:
            registry.load_manifest(path)
    except ManifestError as error:
        raise click.ClickException(str(error)) from None
    registry.discover()
    return registry


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """One row per connector: name, distribution, version, capabilities, status, problem."""
    registry = _discovered(ctx)
    _print_rows(_rows(registry, registry.connectors()), as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Load every connector, check it against the contract and report every problem.

    Exit status 1 when any connector (or manifest) is not ok.
    """
    registry = _discovered(ctx)
    rows = _rows(registry, registry.load_all())
    _print_rows(rows, as_json)
    if any(row["status"] != Status.OK.value for row in rows):
        raise SystemExit(1)


@cli.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, name: str, as_json: bool) -> None:
    """The manifest entry of NAME, where it came from, and its config JSON Schema."""
    registry = _discovered(ctx)
    try:
        registry.info(name)
    except IntegrationsError as error:
        raise click.ClickException(str(error)) from None
    config_schema: dict[str, Any] | None = None
    with contextlib.suppress(IntegrationsError):  # the status row below says why it failed
        config_schema = registry.get(name).config_model.model_json_schema()
    info = registry.info(name)
    document = {
        **info.to_json(),
        "entry": info.entry.model_dump(mode="json", by_alias=True) if info.entry else None,
        "config_schema": config_schema,
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    console = _console()
    for key in ("name", "status", "problem", "distribution", "version", "source"):
        console.print(f"[bold]{key}[/bold]: {escape(str(document[key]))}")
    console.print("[bold]entry[/bold]:", escape(json.dumps(document["entry"], indent=2)))
    console.print("[bold]config schema[/bold]:", escape(json.dumps(config_schema, indent=2)))


@cli.group()
def manifest() -> None:
    """Validate manifest files and print the manifest JSON Schema."""


@manifest.command("schema")
def manifest_schema() -> None:
    """Print the JSON Schema of manifest documents."""
    click.echo(json.dumps(manifest_json_schema(), indent=2))


def _validation_errors(path: Path) -> list[str]:
    try:
        parsed = parse_manifest(path.read_bytes(), str(path))
    except OSError as error:
        return [f"{path}: cannot read: {error.strerror or error}"]
    except ManifestError as error:
        return [str(error)]
    errors = [f"{path}#{bad.pointer}: {bad.reason}" for bad in parsed.problems]
    seen: dict[str, int] = {}
    for index, entry in parsed.entries:
        if entry.name in seen:
            errors.append(
                f"{path}#/connectors/{index}/name: {entry.name!r} already declared "
                f"at /connectors/{seen[entry.name]}"
            )
        seen.setdefault(entry.name, index)
    return errors


@manifest.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def manifest_validate(paths: tuple[Path, ...]) -> None:
    """Validate manifest files; print each error with file and JSON pointer."""
    failed = False
    for path in paths:
        errors = _validation_errors(path)
        failed = failed or bool(errors)
        for error in errors:
            click.echo(error, err=True)
        if not errors:
            click.echo(f"{path}: ok")
    if failed:
        sys.exit(1)
