"""The `integrations` command: list, show, check and certify connectors; call one operation.

Discovery runs inside the commands that need it, never at start-up, so `integrations --help`
stays instant; `certify` imports the certification kit (and pytest) only when it runs. Other
distributions add commands through the `integrations.cli` entry-point group (`_cli_plugins`),
imported only when invoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._cli_plugins import PluginGroup
from ._connector import is_async_connector
from ._exceptions import ConfigError, IntegrationsError, InvalidRequest, ManifestError
from ._governance import Governance, GovernanceSettings
from ._manifest import manifest_json_schema, parse_manifest
from ._models import (
    AuthContext,
    FetchQuery,
    PushPayload,
    SyncState,
    describe_validation_error,
)
from ._registry import ConnectorInfo, ManifestProblem, Registry, Status
from ._session import AsyncSession, Session
from ._trust import TrustPolicy, decode_public_key
from .testing._spec import BOOLEAN_FLAGS

if TYPE_CHECKING:
    from .testing._runner import CertificationReport

__all__ = ["cli"]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _rows(registry: Registry, infos: Iterable[ConnectorInfo]) -> list[dict[str, Any]]:
    problems: Sequence[ManifestProblem] = registry.problems()
    return [info.to_json() for info in infos] + [problem.to_json() for problem in problems]


_STATUS_STYLES = {Status.OK.value: "green", Status.UNAVAILABLE.value: "yellow"}

_HEADERS = ("name", "distribution", "version", "capabilities", "status", "signature", "problem")
"""The listing's columns, left to right; signature and problem only when a row has one."""

_OPTIONAL = ("signature", "problem")

_DROPPED_FIRST = ("problem", "signature", "distribution", "version", "capabilities")
"""What gives way, in order, when the table is wider than the terminal; the name never does.

The problem moves below the table (whole, one line per connector) rather than disappearing.
"""


def _cells(row: Mapping[str, Any]) -> dict[str, str]:
    return {
        "name": row["name"] or "-",
        "distribution": row["distribution"] or "-",
        "version": row["version"] or "-",
        "capabilities": ", ".join(row["capabilities"]) or "-",
        "status": row["status"],
        "signature": _signature_cell(row),
        "problem": row["problem"] or "",
    }


def _signature_cell(row: Mapping[str, Any]) -> str:
    """``verified (key-id)``, ``invalid (key-id)``, or empty when no signature was checked."""
    state = row.get("signature")
    if not state:
        return ""
    return f"{state} ({row['signed_by']})" if row.get("signed_by") else str(state)


def _table_width(widths: Mapping[str, int], columns: Sequence[str]) -> int:
    """Characters a rich table with a box takes: each cell padded by one, plus the rules."""
    return sum(widths[column] for column in columns) + 3 * len(columns) + 1


def _columns_for(widths: Mapping[str, int], width: int | None) -> list[str]:
    """The columns that fit in `width` (None: no limit), dropping the least useful first."""
    columns = [header for header in _HEADERS if widths[header] > 0 or header not in _OPTIONAL]
    for dropped in _DROPPED_FIRST:
        if width is None or _table_width(widths, columns) <= width:
            break
        if dropped in columns:
            columns.remove(dropped)
    return columns


def _output_width() -> int | None:
    """The terminal's width, or ``COLUMNS`` when set; None when piped with no ``COLUMNS``."""
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size().columns


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    cells = [_cells(row) for row in rows]
    widths = {
        header: max(
            [len(header) if any(c[header] for c in cells) else 0] + [len(c[header]) for c in cells]
        )
        for header in _HEADERS
    }
    width = _output_width()
    columns = _columns_for(widths, width)
    needed = _table_width(widths, columns)
    table = Table(*columns)
    for column in table.columns:
        column.no_wrap = True
        column.min_width = widths[str(column.header)]
    for row in cells:
        style = _STATUS_STYLES.get(row["status"], "red")
        table.add_row(
            *(
                f"[{style}]{escape(row[c])}[/{style}]" if c == "status" else escape(row[c])
                for c in columns
            )
        )
    console = Console(highlight=False, soft_wrap=True, width=max(width or needed, needed))
    console.print(table)
    if "problem" not in columns:
        for row in cells:
            if row["problem"]:
                console.print(f"{escape(row['name'])}: {escape(row['problem'])}")


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option(
    "--strict",
    is_flag=True,
    help="Fail on unavailable connectors (optional extras not installed) as well.",
)
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, strict: bool) -> None:
    """Load every connector, check it against the contract and report every problem.

    Exit status 1 when any connector (or manifest) is broken, incompatible or refused. A
    connector whose optional extra is not installed is unavailable, which is not a defect:
    its row says which pip command installs the extra, and it fails only with --strict.
    """
    registry = _discovered(ctx)
    rows = _rows(registry, registry.load_all())
    _print_rows(rows, as_json)
    passing = {Status.OK.value} if strict else {Status.OK.value, Status.UNAVAILABLE.value}
    if any(row["status"] not in passing for row in rows):
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


@manifest.command("sign")
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The publisher's Ed25519 private key (PEM), as `integrations keys generate` writes it.",
)
@click.option("--key-id", required=True, help="The id the trust settings know the key by.")
def manifest_sign(path: Path, key_file: Path, key_id: str) -> None:
    """Sign manifest PATH and the module files its entries name; write manifest.sig beside it.

    Module files are read from the manifest's directory (the package directory).
    """
    from ._signing import sign_manifest

    try:
        written = sign_manifest(path, key_file, key_id)
    except IntegrationsError as error:
        raise click.ClickException(str(error)) from None
    click.echo(str(written))


@manifest.command("verify")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    metavar="ID=KEY",
    help="Trust this key (base64, as `keys generate` prints it) as well as INTEGRATIONS_TRUST.",
)
def manifest_verify(paths: tuple[Path, ...], public_keys: tuple[str, ...]) -> None:
    """Check the signature of each manifest PATH and the hashes of the modules it names.

    Keys come from INTEGRATIONS_TRUST (keys and revoked key ids) and --public-key. Exit
    status 1 when any manifest does not verify.
    """
    from ._signing import verify_manifest

    try:
        trust = _verify_trust(public_keys)
    except (ConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    failed = False
    for path in paths:
        try:
            data = path.read_bytes()
            parsed = parse_manifest(data, str(path))
        except OSError as error:
            click.echo(f"{path}: cannot read: {error.strerror or error}", err=True)
            failed = True
            continue
        except ManifestError as error:
            click.echo(str(error), err=True)
            failed = True
            continue
        modules = list(dict.fromkeys(entry.module for _, entry in parsed.entries))
        verdict = verify_manifest(path, data, modules, trust)
        found = (
            verdict.problem_for(entry.module, entry.signing.publisher_key_id)
            for _, entry in parsed.entries
        )
        problems = list(dict.fromkeys(problem for problem in found if problem is not None))
        if verdict.problem is not None:
            problems = [verdict.problem]
        for problem in problems:
            click.echo(f"{path}: {problem}", err=True)
        if problems:
            failed = True
        else:
            click.echo(f"{path}: verified (key {verdict.key_id}, {len(modules)} modules)")
    if failed:
        sys.exit(1)


def _verify_trust(public_keys: Sequence[str]) -> TrustPolicy:
    """INTEGRATIONS_TRUST with the keys given on the command line added."""
    trust = TrustPolicy.from_environment()
    keys = dict(trust.keys)
    for item in public_keys:
        key_id, separator, text = item.partition("=")
        if not separator or not key_id or not text:
            raise click.UsageError(f"--public-key takes ID=KEY, not {item!r}")
        keys[key_id] = decode_public_key(text)
    return TrustPolicy(keys=keys, revoked=trust.revoked, require_signed_manifests=True)


@cli.group()
def keys() -> None:
    """Publisher keys for signing manifests."""


@keys.command("generate")
@click.argument("private_key", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key-id", help="Print the trust settings line for this key id as well.")
def keys_generate(private_key: Path, key_id: str | None) -> None:
    """Write a new Ed25519 private key to PRIVATE_KEY (mode 0600); print its public key.

    The public key is printed as the trust settings take it (base64). The file is never
    overwritten; keep it out of the source tree.
    """
    from ._signing import generate_key

    try:
        public = generate_key(private_key)
    except IntegrationsError as error:
        raise click.ClickException(str(error)) from None
    click.echo(public)
    if key_id is not None:
        click.echo(f"# [governance.trust.keys] entry:\n{json.dumps(key_id)} = {json.dumps(public)}")


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


# -- certify and call ----------------------------------------------------------------------------

_MISSING_TESTING = (
    "integrations certify: the certification kit needs pytest and pytest-timeout; "
    "install them with: pip install 'integrations-base[testing]'"
)


def _read_config(path: Path) -> dict[str, Any]:
    """A connector config from a JSON file, or a TOML file when the name ends in ``.toml``.

    Errors name the file and the position, never the content, which may hold secrets.
    """
    kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise ConfigError(f"cannot read config file {path}: {reason}") from None
    try:
        data = tomllib.loads(text) if kind == "TOML" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"config file {path} is not valid {kind}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold an object, not {type(data).__name__}")
    return data


def _manifest_paths(ctx: click.Context) -> list[str]:
    return [str(path) for path in (ctx.obj or ())]


@cli.command(short_help="Run the certification kit against installed connectors.")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Certify every installed connector.")
@click.option(
    "--config",
    "config_options",
    multiple=True,
    help="The connector's config: a JSON or TOML file (default: what its certification builds). "
    "With --all: NAME=FILE, repeatable.",
)
@click.option("--tenant", help="Tenant of every check (default: a fresh tenant per check).")
@click.option("--actor", help="Actor of every check (default: certification).")
@click.option(
    "--enable",
    multiple=True,
    type=click.Choice(BOOLEAN_FLAGS),
    help="Check an optional behaviour the connector offers (repeatable).",
)
@click.option(
    "--disable",
    multiple=True,
    type=click.Choice(BOOLEAN_FLAGS),
    help="Declare an optional behaviour the connector lacks (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def certify(
    ctx: click.Context,
    name: str | None,
    every: bool,
    config_options: tuple[str, ...],
    tenant: str | None,
    actor: str | None,
    enable: tuple[str, ...],
    disable: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run the certification kit against installed connector NAME, or every one (--all).

    The kit is the certification class the connector's manifest names (it knows how to build
    the connector's config), or the plain kit. Exit status 1 when any check fails, or with
    --all when any connector does not pass.
    """
    if (name is None) == (not every):
        raise click.UsageError("name one connector, or pass --all")
    both = sorted(set(enable) & set(disable))
    if both:
        raise click.UsageError(f"--enable and --disable both name {', '.join(both)}")
    if find_spec("pytest") is None or find_spec("pytest_timeout") is None:
        click.echo(_MISSING_TESTING, err=True)
        ctx.exit(1)
    options = _CertifyOptions(
        tenant=tenant,
        actor=actor,
        manifests=tuple(_manifest_paths(ctx)),
        flags={**dict.fromkeys(enable, True), **dict.fromkeys(disable, False)},
    )
    try:
        if every:
            outcomes = _certify_all(ctx, _named_configs(config_options), options)
            _print_summary(outcomes, as_json)
            passed = all(outcome.result == "passed" for outcome in outcomes)
        else:
            assert name is not None  # one of name and --all, checked above
            report = _certify_one(name, _single_config(config_options), options)
            _print_report(report, as_json)
            passed = report.ok
    except IntegrationsError as error:
        raise click.ClickException(str(error)) from None
    if not passed:
        ctx.exit(1)


@dataclass(frozen=True, slots=True)
class _CertifyOptions:
    """What every certification of one `certify` run shares."""

    tenant: str | None
    actor: str | None
    manifests: tuple[str, ...]
    flags: Mapping[str, bool]


def _single_config(values: tuple[str, ...]) -> dict[str, Any] | None:
    if len(values) > 1:
        raise click.UsageError("--config is given once for one connector")
    return _read_config(Path(values[0])) if values else None


def _named_configs(values: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``NAME=FILE`` options of --all, read now so that a bad file stops the run at once."""
    configs: dict[str, dict[str, Any]] = {}
    for value in values:
        name, separator, path = value.partition("=")
        if not separator or not name or not path:
            raise click.UsageError(f"with --all, --config takes NAME=FILE, not {value!r}")
        configs[name] = _read_config(Path(path))
    return configs


def _certify_one(
    name: str, config: Mapping[str, Any] | None, options: _CertifyOptions
) -> CertificationReport:
    from .testing._runner import certify as run_certification

    return run_certification(
        name,
        config=config,
        tenant=options.tenant,
        actor=options.actor,
        manifests=options.manifests,
        flags=options.flags,
    )


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one connector of `certify --all` ended."""

    connector: str
    result: str
    """passed, failed, not-configured, unavailable, broken, incompatible, refused or error."""
    reason: str | None = None
    report: CertificationReport | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "result": self.result,
            "ok": self.result == "passed",
            "reason": self.reason,
            "report": self.report.to_json() if self.report is not None else None,
        }


def _certify_all(
    ctx: click.Context, configs: Mapping[str, dict[str, Any]], options: _CertifyOptions
) -> list[_Outcome]:
    """Certify every installed connector in turn; one that cannot run is reported, not raised."""
    from .testing._runner import NotConfigured

    infos = _discovered(ctx).connectors()
    unknown = sorted(set(configs) - {info.name for info in infos})
    if unknown:
        raise click.UsageError(f"--config names no installed connector: {', '.join(unknown)}")
    outcomes: list[_Outcome] = []
    for info in infos:
        if info.status is not Status.OK:
            outcomes.append(_Outcome(info.name, info.status.value, info.problem))
            continue
        try:
            report = _certify_one(info.name, configs.get(info.name), options)
        except NotConfigured as error:  # say how to configure it in this command's terms
            how = error.reason.replace("--config", f"--config {info.name}=FILE")
            outcomes.append(_Outcome(info.name, "not-configured", how))
            continue
        except IntegrationsError as error:
            outcomes.append(_Outcome(info.name, "error", f"{type(error).__name__}: {error}"))
            continue
        result = "passed" if report.ok else "failed"
        reason = None if report.ok else _failure_summary(report)
        outcomes.append(_Outcome(info.name, result, reason, report))
    return outcomes


def _failure_summary(report: CertificationReport) -> str:
    failed = [check.check for check in report.checks if check.outcome == "failed"]
    if report.problems:
        return "; ".join(report.problems)
    if failed:
        return "failed: " + ", ".join(failed)
    return "no check ran"


_RESULT_STYLES = {"passed": "green", "not-configured": "yellow", "unavailable": "yellow"}


def _print_summary(outcomes: Sequence[_Outcome], as_json: bool) -> None:
    """One row per connector: its result, its check counts and, when it did not pass, why."""
    if as_json:
        click.echo(json.dumps([outcome.to_json() for outcome in outcomes], indent=2))
        return
    headers = ("connector", "result", "passed", "failed")
    rows = []
    for outcome in outcomes:
        counts = outcome.report.counts() if outcome.report is not None else None
        rows.append(
            (
                outcome.connector,
                outcome.result,
                str(counts["passed"]) if counts else "-",
                str(counts["failed"]) if counts else "-",
            )
        )
    widths = {h: max([len(h)] + [len(row[i]) for row in rows]) for i, h in enumerate(headers)}
    table = Table(*headers)
    for column in table.columns:
        column.no_wrap = True
    for (connector, result, passed_checks, failed_checks), outcome in zip(
        rows, outcomes, strict=True
    ):
        style = _RESULT_STYLES.get(outcome.result, "red")
        table.add_row(
            escape(connector), f"[{style}]{result}[/{style}]", passed_checks, failed_checks
        )
    # Never narrower than the table: a narrow terminal wraps the lines, nothing is cut.
    needed = _table_width(widths, headers)
    console = Console(highlight=False, soft_wrap=True, width=max(_output_width() or needed, needed))
    console.print(table)
    # Reasons are printed whole under the table: they name what to set or run, to be copied.
    for outcome in outcomes:
        if outcome.reason:
            console.print(f"{escape(outcome.connector)}: {escape(outcome.reason)}", soft_wrap=True)
    passed = sum(outcome.result == "passed" for outcome in outcomes)
    console.print(f"{passed} of {len(outcomes)} connectors certified")


_OUTCOME_STYLES = {
    "passed": "green",
    "failed": "red",
    "expected-failure": "yellow",
    "not-applicable": "dim",
}


def _print_report(report: CertificationReport, as_json: bool) -> None:
    """The per-check report: one line per check (its reason indented below), then the verdict."""
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        console = _console()
        console.print(
            f"certification of {escape(report.connector)} "
            f"(kit {report.kit_version}, integrations-base {report.base_version or 'unknown'})"
        )
        for check in report.checks:
            style = _OUTCOME_STYLES[check.outcome]
            console.print(f"  [{style}]{check.outcome:<16}[/{style}] {escape(check.check)}")
            for line in (check.reason or "").splitlines():
                console.print(f"  {'':<16}   {escape(line)}")
        for problem in report.problems:
            console.print(f"  [red]problem[/red] {escape(problem)}")
        counts = report.counts()
        verdict = "[green]certified[/green]" if report.ok else "[red]not certified[/red]"
        console.print(
            f"{verdict}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['expected-failure']} expected failures, "
            f"{counts['not-applicable']} not applicable"
        )
    if report.problems or not report.checks:
        click.echo(report.output, err=True)


_ARGUMENT_OPTIONS = {"fetch": "query", "push": "payload", "sync": "state"}
_ARGUMENT_MODELS: dict[str, type[FetchQuery] | type[PushPayload] | type[SyncState]] = {
    "fetch": FetchQuery,
    "push": PushPayload,
    "sync": SyncState,
}
DEFAULT_CONTEXT = AuthContext(tenant="default", actor="integrations-cli")
"""Who `integrations call` runs as without ``--context``."""


def _argument_text(operation: str, given: Mapping[str, str | None]) -> str | None:
    """The JSON text of the operation's own option; another operation's option is misuse."""
    wanted = _ARGUMENT_OPTIONS[operation]
    for option, text in given.items():
        if text is not None and option != wanted:
            raise click.UsageError(
                f"--{option} goes with another operation; {operation} takes --{wanted}"
            )
    if operation == "push" and given["payload"] is None:
        raise click.UsageError("push needs --payload")
    return given[wanted]


def _parse(model: type[BaseModel], text: str, option: str) -> Any:
    """Validate `text` as JSON for `model`; a bad value is the caller's `InvalidRequest`."""
    try:
        return model.model_validate_json(text)
    except ValidationError as error:
        detail = "; ".join(
            f"{field}: {reason}" for field, reason in describe_validation_error(error)
        )
        raise InvalidRequest(f"invalid --{option}: {detail}") from None


Argument = FetchQuery | PushPayload | SyncState


def _argument(operation: str, text: str | None) -> Argument:
    """The operation's argument from its option's JSON; fetch and sync default to empty."""
    if text is not None:
        parsed: Argument = _parse(_ARGUMENT_MODELS[operation], text, _ARGUMENT_OPTIONS[operation])
        return parsed
    return FetchQuery() if operation == "fetch" else SyncState()


def _operate(session: Session, argument: Argument) -> BaseModel:
    if isinstance(argument, FetchQuery):
        return session.fetch(argument)
    if isinstance(argument, PushPayload):
        return session.push(argument)
    return session.sync(argument)


async def _operate_async(session: AsyncSession, argument: Argument) -> BaseModel:
    async with session:
        if isinstance(argument, FetchQuery):
            return await session.fetch(argument)
        if isinstance(argument, PushPayload):
            return await session.push(argument)
        return await session.sync(argument)


def _call(
    name: str,
    manifests: Sequence[str],
    config: Mapping[str, Any],
    context: AuthContext,
    argument: Argument,
) -> BaseModel:
    """Run one governed operation on connector `name` (auth, connect, operation, revoke)."""
    registry = Registry()
    for path in manifests:
        registry.load_manifest(path)
    governance: Governance = GovernanceSettings.from_env().build()
    options: dict[str, Any] = {"config": config, "context": context, "governance": governance}
    if is_async_connector(registry.get(name)):
        return asyncio.run(_operate_async(registry.open_async(name, **options), argument))
    with registry.open(name, **options) as session:
        return _operate(session, argument)


def _error_line(error: BaseException) -> str:
    """``error: <Type>: <message>`` on one line."""
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"error: {type(error).__name__}: {message}"


@cli.command("call", short_help="Run one governed operation and print its result as JSON.")
@click.argument("name")
@click.argument("operation", type=click.Choice(list(_ARGUMENT_OPTIONS)))
@click.option(
    "--config",
    "config_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The connector's config: a JSON or TOML file; secrets may be references (env:NAME).",
)
@click.option(
    "--context",
    "context_json",
    help='The caller as JSON, e.g. {"tenant": "acme", "actor": "ops"} '
    '(default: tenant "default", actor "integrations-cli").',
)
@click.option("--query", help="fetch: a FetchQuery as JSON (default: {}).")
@click.option("--payload", help="push: a PushPayload as JSON (required).")
@click.option("--state", help="sync: a SyncState as JSON, e.g. the state of an earlier sync.")
@click.pass_context
def call_command(
    ctx: click.Context,
    name: str,
    operation: str,
    config_file: Path,
    context_json: str | None,
    query: str | None,
    payload: str | None,
    state: str | None,
) -> None:
    """Run one governed OPERATION of connector NAME and print its result as JSON.

    Secrets in the result print masked; an error prints one line and exits 1.
    """
    text = _argument_text(operation, {"query": query, "payload": payload, "state": state})
    try:
        config = _read_config(config_file)
        context = DEFAULT_CONTEXT
        if context_json is not None:
            context = _parse(AuthContext, context_json, "context")
        argument = _argument(operation, text)
        result = _call(name, _manifest_paths(ctx), config, context, argument)
    except Exception as error:  # an operator's tool: every failure is one line, exit 1
        click.echo(_error_line(error), err=True)
        ctx.exit(1)
    click.echo(result.model_dump_json(indent=2))
