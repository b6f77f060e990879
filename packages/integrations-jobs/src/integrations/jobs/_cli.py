"""`integrations jobs`: run a spec's pipelines in-process, show their status and dead letters,
print the spec's schema.

Registered in the `integrations.cli` entry-point group, so `integrations` lists it without
importing this module. On a terminal, runs draw rich progress bars and status is a table;
piped, both print plain lines (one per event or row) that scripts and logs can read.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from integrations.base import (
    Governance,
    GovernanceSettings,
    IntegrationsError,
    Registry,
    format_utc,
)

from ._executor import InProcessExecutor
from ._report import RunReport, StatusRow
from ._runner import close_audit
from ._spec import JobsSpec, jobs_json_schema, load_spec, parse_duration
from ._status import pipeline_status
from ._store import JobStore, open_store

__all__ = ["jobs"]

_OUTCOME_STYLES = {"succeeded": "green", "skipped": "yellow", "running": "cyan"}


@click.group()
def jobs() -> None:
    """Sync pipelines: run and serve them, show their status and dead letters, print the
    spec's JSON Schema."""


def _is_terminal() -> bool:
    """Whether output goes to a terminal: progress bars and tables, else plain lines."""
    return sys.stdout.isatty()


def _fail(error: BaseException) -> click.ClickException:
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return click.ClickException(f"{type(error).__name__}: {message}")


def _load(path: Path) -> JobsSpec:
    try:
        return load_spec(path)
    except IntegrationsError as error:
        raise _fail(error) from None


def store_location(spec: JobsSpec, spec_path: Path, given: str | None) -> str:
    """``--store``, else the spec's ``store``, else ``<spec name>.jobs.sqlite3`` beside it."""
    if given:
        return given
    if spec.store:
        return spec.store
    return str(spec_path.resolve().with_name(f"{spec_path.stem}.jobs.sqlite3"))


@contextmanager
def _opened(location: str) -> Iterator[JobStore]:
    try:
        store = open_store(location)
    except IntegrationsError as error:
        raise _fail(error) from None
    try:
        yield store
    finally:
        store.close()


@contextmanager
def _governed(spec: JobsSpec) -> Iterator[Governance]:
    """The governance of every session: the spec's settings, else ``INTEGRATIONS_*``; its
    audit files are closed when the command ends."""
    try:
        governance = (spec.governance_settings() or GovernanceSettings.from_env()).build()
    except IntegrationsError as error:
        raise _fail(error) from None
    try:
        yield governance
    finally:
        close_audit(governance)


def _registry(ctx: click.Context) -> Registry:
    """The installed connectors, plus the manifests given to ``integrations --manifest``."""
    registry = Registry()
    manifests: Sequence[Path] = ctx.find_root().obj or ()
    try:
        for path in manifests:
            registry.load_manifest(path)
        registry.discover()
    except IntegrationsError as error:
        raise _fail(error) from None
    return registry


_SPEC = click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
_STORE = click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="The job store: sqlite:///path.db, a file, or postgresql://... "
    "(default: the spec's store, else SPEC's name with .jobs.sqlite3 beside it).",
)


# -- run -----------------------------------------------------------------------------------


class _PlainProgress:
    """One line per event on stdout, for logs and pipes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _say(self, text: str) -> None:
        with self._lock:
            click.echo(text)

    def run_started(self, pipeline: str, tenant: str, run_id: str) -> None:
        self._say(f"{pipeline} {tenant}: started run {run_id}")

    def batch_committed(self, pipeline: str, tenant: str, records: int, rejected: int) -> None:
        self._say(f"{pipeline} {tenant}: committed {records} records, {rejected} rejected")

    def run_finished(self, report: RunReport) -> None:
        self._say(_summary(report))


class _BarProgress:
    """A rich progress line per (pipeline, tenant), updated from the worker threads."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[tuple[str, str], TaskID] = {}
        self._lock = threading.Lock()

    def _task(self, pipeline: str, tenant: str) -> TaskID:
        with self._lock:
            key = (pipeline, tenant)
            if key not in self._tasks:
                self._tasks[key] = self._progress.add_task(
                    f"{pipeline} {tenant}", total=None, moved=0, state="waiting"
                )
            return self._tasks[key]

    def run_started(self, pipeline: str, tenant: str, run_id: str) -> None:
        self._progress.update(self._task(pipeline, tenant), state="running")

    def batch_committed(self, pipeline: str, tenant: str, records: int, rejected: int) -> None:
        task = self._task(pipeline, tenant)
        moved = int(self._progress.tasks[task].fields.get("moved", 0)) + records
        self._progress.update(task, advance=records, moved=moved)

    def run_finished(self, report: RunReport) -> None:
        task = self._task(report.pipeline, report.tenant)
        style = _OUTCOME_STYLES.get(report.outcome, "red")
        self._progress.update(
            task,
            total=max(report.records_moved, 1),
            completed=max(report.records_moved, 1),
            moved=report.records_moved,
            state=f"[{style}]{report.outcome}[/{style}]",
        )


def _bars(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[moved]} records"),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=console,
    )


def _summary(report: RunReport) -> str:
    line = (
        f"{report.pipeline} {report.tenant}: {report.outcome} "
        f"({report.records_moved} records in {report.batches} batches, "
        f"{report.rejected} rejected, {report.attempts} attempts, "
        f"delivery {report.delivery}; run {report.run_id})"
    )
    return line if report.error is None else f"{line}: {report.error}"


@jobs.command("run")
@_SPEC
@click.option("--pipeline", "pipelines", multiple=True, help="Only this pipeline (repeatable).")
@click.option("--tenant", "tenants", multiple=True, help="Only this tenant (repeatable).")
@_STORE
@click.option(
    "--due", is_flag=True, help="Only the pipelines and tenants their schedule says are due."
)
@click.option("--json", "as_json", is_flag=True, help="Print the run reports as a JSON array.")
@click.pass_context
def run_command(
    ctx: click.Context,
    spec_path: Path,
    pipelines: tuple[str, ...],
    tenants: tuple[str, ...],
    store_url: str | None,
    due: bool,
    as_json: bool,
) -> None:
    """Run SPEC's pipelines once for each of their tenants, in this process.

    Every run moves what its source has until it has nothing more, then ends. Exit status 1
    when a run failed or lost its lease; a run skipped because another worker holds its
    lease is reported, not failed.
    """
    spec = _load(spec_path)
    registry = _registry(ctx)
    with (
        _governed(spec) as governance,
        _opened(store_location(spec, spec_path, store_url)) as store,
    ):
        executor = InProcessExecutor(spec, store, registry=registry, governance=governance)
        try:
            reports = _run(executor, pipelines, tenants, due, as_json)
        except IntegrationsError as error:
            raise _fail(error) from None
    if as_json:
        click.echo(json.dumps([report.to_dict() for report in reports], indent=2))
    elif not reports:
        click.echo("nothing to run" + (" (nothing is due)" if due else ""))
    if any(not report.ok for report in reports):
        ctx.exit(1)


def _run(
    executor: InProcessExecutor,
    pipelines: Sequence[str],
    tenants: Sequence[str],
    due: bool,
    as_json: bool,
) -> list[RunReport]:
    if as_json:
        return executor.run(pipelines, tenants, due_only=due)
    if not _is_terminal():
        executor.progress = _PlainProgress()
        return executor.run(pipelines, tenants, due_only=due)
    console = Console(highlight=False)
    with _bars(console) as progress:
        executor.progress = _BarProgress(progress)
        reports = executor.run(pipelines, tenants, due_only=due)
    for report in reports:
        console.print(escape(_summary(report)))
    return reports


# -- serve ---------------------------------------------------------------------------------


def _poll_seconds(ctx: click.Context, param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@jobs.command("serve")
@_SPEC
@_STORE
@click.option(
    "--poll",
    default="30s",
    show_default=True,
    callback=_poll_seconds,
    help="The longest wait between two rounds (seconds, or '30s', '5m').",
)
@click.pass_context
def serve_command(ctx: click.Context, spec_path: Path, store_url: str | None, poll: float) -> None:
    """Run SPEC's pipelines on their schedules, in this process, until stopped.

    Each round runs what is due (what never succeeded, or whose interval has passed since
    its last success), then waits for the next pipeline to fall due, at most --poll. One
    plain line per event. Ctrl-C or SIGTERM stops it after the round in flight.
    """
    spec = _load(spec_path)
    registry = _registry(ctx)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with (
            _governed(spec) as governance,
            _opened(store_location(spec, spec_path, store_url)) as store,
        ):
            executor = InProcessExecutor(
                spec, store, registry=registry, governance=governance, progress=_PlainProgress()
            )
            pairs = len(executor.selection())
            click.echo(f"serving {pairs} pipeline and tenant pairs of {spec_path.name}")
            executor.serve(stop, poll=poll)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo("stopped")


# -- status --------------------------------------------------------------------------------


def _age(seconds: float | None) -> str:
    """``45s``, ``12m05s``, ``3h02m``, ``2d04h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def _cells(row: StatusRow) -> dict[str, str]:
    return {
        "pipeline": row.pipeline,
        "tenant": row.tenant,
        "outcome": row.outcome or "never run",
        "moved": "-" if row.records_moved is None else str(row.records_moved),
        "total": str(row.records_total),
        "lag": _age(row.lag_seconds),
        "checkpoint_age": _age(row.checkpoint_age_seconds),
        "due": "yes" if row.due else "no",
        "dead_letters": str(row.dead_letters),
        "last_run": row.last_run_id or "-",
        "last_error": row.last_error or "-",
    }


@jobs.command("status")
@_SPEC
@_STORE
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per row.")
def status_command(spec_path: Path, store_url: str | None, as_json: bool) -> None:
    """Per pipeline and tenant of SPEC: the last run, its outcome, records moved, lag,
    checkpoint age, dead letters and the last error."""
    spec = _load(spec_path)
    with _opened(store_location(spec, spec_path, store_url)) as store:
        try:
            rows = pipeline_status(spec, store, now=datetime.now(UTC))
        except IntegrationsError as error:
            raise _fail(error) from None
    if as_json:
        click.echo(json.dumps([row.to_dict() for row in rows], indent=2))
        return
    cells = [_cells(row) for row in rows]
    if _is_terminal():
        _status_table(cells)
        return
    for cell in cells:
        click.echo(" ".join(f"{key}={value}" for key, value in cell.items()))


_TABLE_COLUMNS = {
    "pipeline": "pipeline",
    "tenant": "tenant",
    "outcome": "outcome",
    "moved": "moved",
    "total": "total",
    "lag": "lag",
    "checkpoint_age": "checkpoint",
    "due": "due",
    "dead_letters": "dead",
    "last_run": "last run",
}
"""The table's columns (key -> header); errors are too long for a cell and follow the table."""


def _status_table(cells: list[dict[str, str]]) -> None:
    """The rows as a table on the terminal, each last error on its own line below it."""
    shown_cells = [{**cell, "last_run": cell["last_run"][:8]} for cell in cells]
    table = Table(*_TABLE_COLUMNS.values())
    for column, key in zip(table.columns, _TABLE_COLUMNS, strict=True):
        column.no_wrap = True  # a cut-off tenant or outcome is worse than a wide table
        column.min_width = max([len(str(column.header))] + [len(c[key]) for c in shown_cells])
    needed = sum(int(column.min_width or 0) + 3 for column in table.columns) + 1
    console = Console(highlight=False)
    console = Console(highlight=False, width=max(console.width, needed))
    for cell, shown in zip(cells, shown_cells, strict=True):
        style = _OUTCOME_STYLES.get(cell["outcome"], "red")
        table.add_row(
            *(
                f"[{style}]{escape(shown[key])}[/{style}]"
                if key == "outcome"
                else escape(shown[key])
                for key in _TABLE_COLUMNS
            )
        )
    console.print(table)
    for cell in cells:
        if cell["last_error"] != "-":
            console.print(
                f"{escape(cell['pipeline'])} {escape(cell['tenant'])}: "
                f"[red]{escape(cell['last_error'])}[/red]"
            )


# -- dead letters --------------------------------------------------------------------------


@jobs.command("dead-letters")
@_SPEC
@click.option("--pipeline", required=True, help="The pipeline.")
@click.option("--tenant", required=True, help="The tenant.")
@_STORE
@click.option("--limit", default=100, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, records included.")
def dead_letters_command(
    spec_path: Path, pipeline: str, tenant: str, store_url: str | None, limit: int, as_json: bool
) -> None:
    """The records the destination rejected for PIPELINE and TENANT, with the reasons."""
    spec = _load(spec_path)
    try:
        spec.pipeline(pipeline).tenant(tenant)
    except IntegrationsError as error:
        raise _fail(error) from None
    with _opened(store_location(spec, spec_path, store_url)) as store:
        try:
            letters = store.dead_letters(pipeline, tenant, limit=limit)
        except IntegrationsError as error:
            raise _fail(error) from None
    if as_json:
        rows = [
            {
                "run_id": letter.run_id,
                "created_at": format_utc(letter.created_at),
                "reason": letter.reason,
                "record": dict(letter.record),
            }
            for letter in letters
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for letter in letters:
        record_id = letter.record.get("id", "?")
        click.echo(
            f"{format_utc(letter.created_at)} run={letter.run_id} id={record_id}: {letter.reason}"
        )


# -- schema --------------------------------------------------------------------------------


@jobs.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of spec files."""
    click.echo(json.dumps(jobs_json_schema(), indent=2))


# `worker` and `submit` (the Celery executor) register themselves on `jobs`; that module
# imports Celery only when one of them runs.
from . import _celery_cli  # noqa: E402, F401
