"""`integrations jobs worker` and `integrations jobs submit`: the Celery executor's commands.

They live apart from the subpackage so that `integrations jobs run` never imports Celery:
``integrations.jobs.celery`` is imported inside these commands only, and a missing extra is a
one-line error naming it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from integrations.base import GovernanceSettings, IntegrationsError, Registry

from ._cli import _SPEC, _STORE, _fail, _load, _registry, jobs, store_location
from ._spec import JobsSpec

if TYPE_CHECKING:
    from .celery import JobsCelery

__all__ = ["select_pairs", "submit_command", "worker_command"]

_BROKER = click.option(
    "--broker",
    metavar="URL",
    envvar="INTEGRATIONS_JOBS_BROKER",
    show_envvar=True,
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    help="The Celery broker: redis://host:port/db, or amqp://... for RabbitMQ.",
)
_QUEUE = click.option(
    "--queue",
    default="integrations-jobs",
    show_default=True,
    help="The queue runs go through (workers and submitters must agree).",
)


def _app(
    spec: JobsSpec,
    broker: str,
    queue: str,
    *,
    store_url: str | None = None,
    registry: Registry | None = None,
    governance: GovernanceSettings | None = None,
) -> JobsCelery:
    """The spec's Celery application; Celery is imported here, only for these commands."""
    try:
        from .celery import JobsCelery
    except ImportError as error:
        raise _fail(error) from None
    return JobsCelery(
        spec, broker, queue=queue, store_url=store_url, registry=registry, governance=governance
    )


def select_pairs(
    spec: JobsSpec, pipelines: Sequence[str] = (), tenants: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """The (pipeline, tenant) pairs named by the options, in spec order (all by default);
    an unknown pipeline or tenant is a `SpecError`."""
    chosen = [spec.pipeline(name) for name in pipelines] or list(spec.pipelines)
    for tenant in tenants:
        if not any(tenant in {t.tenant for t in p.tenants} for p in chosen):
            chosen[0].tenant(tenant)  # raises SpecError naming the tenant
    return [
        (pipeline.name, tenant.tenant)
        for pipeline in chosen
        for tenant in pipeline.tenants
        if not tenants or tenant.tenant in tenants
    ]


@jobs.command("worker")
@_SPEC
@_BROKER
@_STORE
@_QUEUE
@click.option(
    "--pool",
    type=click.Choice(["prefork", "solo", "threads"]),
    default="prefork",
    show_default=True,
    help="Celery's execution pool: processes, this process alone, or threads.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=None,
    help="Runs in flight in this worker (default: the spec's concurrency.workers).",
)
@click.option("--name", help="The worker's node name (default: celery@<host>).")
@click.option(
    "--beat",
    is_flag=True,
    help="Also send the scheduled runs (the pipelines' schedule); one worker of a fleet only.",
)
@click.option(
    "--schedule-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where beat keeps its state (default: SPEC's name with .celerybeat beside it).",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.pass_context
def worker_command(
    ctx: click.Context,
    spec_path: Path,
    broker: str,
    store_url: str | None,
    queue: str,
    pool: str,
    concurrency: int | None,
    name: str | None,
    beat: bool,
    schedule_file: Path | None,
    loglevel: str,
) -> None:
    """Run a Celery worker that runs SPEC's pipelines as they are submitted or scheduled.

    Every worker process opens the job store itself (--store, else the spec's store, else
    SPEC's name with .jobs.sqlite3 beside it); use PostgreSQL when workers run on more than
    one machine. Runs are acknowledged when they end and re-queued when a worker dies.
    """
    spec = _load(spec_path)
    registry = _registry(ctx)
    try:
        settings = spec.governance_settings() or GovernanceSettings.from_env()
    except IntegrationsError as error:
        raise _fail(error) from None
    app = _app(
        spec,
        broker,
        queue,
        store_url=store_location(spec, spec_path, store_url),
        registry=registry,
        governance=settings,
    )
    beat_file = schedule_file or spec_path.resolve().with_name(f"{spec_path.stem}.celerybeat")
    app.worker_main(
        name=name,
        pool=pool,
        concurrency=concurrency or spec.concurrency.workers,
        beat=beat,
        schedule_file=beat_file,
        loglevel=loglevel,
    )


@jobs.command("submit")
@_SPEC
@click.option("--pipeline", "pipelines", multiple=True, help="Only this pipeline (repeatable).")
@click.option("--tenant", "tenants", multiple=True, help="Only this tenant (repeatable).")
@_BROKER
@_QUEUE
@click.option(
    "--due", is_flag=True, help="The workers run each only when its schedule says it is due."
)
@click.option("--json", "as_json", is_flag=True, help="Print the enqueued runs as a JSON array.")
def submit_command(
    spec_path: Path,
    pipelines: tuple[str, ...],
    tenants: tuple[str, ...],
    broker: str,
    queue: str,
    due: bool,
    as_json: bool,
) -> None:
    """Enqueue a run of SPEC's pipelines for each of their tenants, for the Celery workers.

    Prints one line per run (pipeline, tenant, task id); follow them with
    `integrations jobs status`.
    """
    spec = _load(spec_path)
    try:
        pairs = select_pairs(spec, pipelines, tenants)
    except IntegrationsError as error:
        raise _fail(error) from None
    app = _app(spec, broker, queue)
    try:
        ids = app.submit(pairs, only_if_due=due)
    except IntegrationsError as error:
        raise _fail(error) from None
    finally:
        app.close()
    if as_json:
        rows = [
            {"pipeline": pipeline, "tenant": tenant, "task_id": task_id}
            for (pipeline, tenant), task_id in zip(pairs, ids, strict=True)
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    for (pipeline, tenant), task_id in zip(pairs, ids, strict=True):
        click.echo(f"{pipeline} {tenant}: submitted {task_id}")
