"""The Celery application of a spec: the run task, its delivery settings, the beat schedule.

Celery ships no type information, so it is reached only here, through `JobsCelery`, a small
typed wrapper; the rest of the package sees typed methods. The task body is
`WorkerRuntime.execute`; this module turns its answers into Celery's (a retry with a
countdown, a return value).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from integrations.base import GovernanceSettings, Registry
from integrations.jobs import JobsSpec

from ._errors import BrokerUnavailable, CeleryUnavailable
from ._settings import DEFAULT_QUEUE, RUN_TASK, celery_settings
from ._tasks import RetryLater, WorkerRuntime

try:
    import celery  # type: ignore[import-untyped]  # celery ships no type information
    from celery import signals
    from kombu.exceptions import OperationalError
except ImportError as missing:  # pragma: no cover - exercised without the extra
    raise CeleryUnavailable(
        f"the Celery executor needs Celery: install integrations-jobs[celery] ({missing.msg})"
    ) from None

__all__ = ["JobsCelery"]

logger = logging.getLogger("integrations.jobs.celery")


class JobsCelery:
    """A Celery application that runs one spec's pipelines, and enqueues runs of them.

    The worker side needs the job store (`store_url`); a submitter does not. Every process
    of a worker opens its own store, after the fork (see `WorkerRuntime`).
    """

    def __init__(
        self,
        spec: JobsSpec,
        broker: str,
        *,
        store_url: str | None = None,
        registry: Registry | None = None,
        governance: GovernanceSettings | None = None,
        queue: str = DEFAULT_QUEUE,
    ) -> None:
        self.spec = spec
        self.broker = broker
        self.queue = queue
        self.runtime = (
            WorkerRuntime(spec, store_url, registry=registry, governance=governance)
            if store_url is not None
            else None
        )
        self.celery: Any = celery.Celery("integrations.jobs", set_as_current=False)
        self.celery.conf.update(celery_settings(spec, broker, queue=queue))
        self._register_task()

    def _register_task(self) -> None:
        runtime = self.runtime

        @self.celery.task(  # type: ignore[untyped-decorator]  # celery's decorator is untyped
            name=RUN_TASK,
            bind=True,
            acks_late=True,
            reject_on_worker_lost=True,
            max_retries=None,
        )
        def run(
            task: Any,
            pipeline: str,
            tenant: str,
            only_if_due: bool = False,
            lease_waits: int = 0,
            store_tries: int = 0,
        ) -> dict[str, Any] | None:
            if runtime is None:
                raise RuntimeError("this application has no job store: it only submits runs")
            answer = runtime.execute(
                pipeline,
                tenant,
                only_if_due=only_if_due,
                lease_waits=lease_waits,
                store_tries=store_tries,
            )
            if isinstance(answer, RetryLater):
                logger.info(
                    "%s %s: again in %.1fs (%s)", pipeline, tenant, answer.countdown, answer.reason
                )
                raise task.retry(
                    args=(pipeline, tenant),
                    kwargs={
                        "only_if_due": only_if_due,
                        "lease_waits": answer.lease_waits,
                        "store_tries": answer.store_tries,
                    },
                    countdown=answer.countdown,
                )
            return None if answer is None else answer.to_dict()

    # -- submitting ------------------------------------------------------------------------

    def submit(self, pairs: Sequence[tuple[str, str]], *, only_if_due: bool = False) -> list[str]:
        """Enqueue one run per (pipeline, tenant); the task ids, in order.

        `BrokerUnavailable` when the broker cannot be reached after the publish retries.
        """
        for pipeline, tenant in pairs:
            self.spec.pipeline(pipeline).tenant(tenant)  # SpecError before anything is sent
        ids: list[str] = []
        try:
            with self.celery.producer_or_acquire() as producer:
                for pipeline, tenant in pairs:
                    result = self.celery.send_task(
                        RUN_TASK,
                        args=(pipeline, tenant),
                        kwargs={"only_if_due": only_if_due},
                        queue=self.queue,
                        producer=producer,
                    )
                    ids.append(str(result.id))
        except (OperationalError, OSError) as error:
            where = _safe(self.broker)
            raise BrokerUnavailable(f"cannot enqueue runs on {where}: {error}") from None
        return ids

    def close(self) -> None:
        """Release the broker connections of this process."""
        self.celery.close()

    # -- working ---------------------------------------------------------------------------

    def worker_main(
        self,
        *,
        name: str | None = None,
        pool: str = "prefork",
        concurrency: int = 1,
        beat: bool = False,
        schedule_file: Path | None = None,
        loglevel: str = "INFO",
    ) -> None:
        """Run a Celery worker in this process until it is stopped (SIGTERM: warm shutdown)."""
        self._connect_signals()
        argv = [
            "worker",
            f"--loglevel={loglevel}",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            f"--queues={self.queue}",
            "--without-gossip",
            "--without-mingle",
        ]
        if name:
            argv.append(f"--hostname={name}")
        if beat:
            argv.append("--beat")
            if schedule_file is not None:
                argv.append(f"--schedule={schedule_file}")
        self.celery.worker_main(argv=argv)

    def _connect_signals(self) -> None:
        runtime = self.runtime

        def after_fork(**_: Any) -> None:
            if runtime is not None:
                runtime.reset()

        def on_exit(**_: Any) -> None:
            if runtime is not None:
                runtime.close()

        def ready(sender: Any = None, **_: Any) -> None:
            logger.warning("integrations jobs worker %s ready", getattr(sender, "hostname", "?"))

        signals.worker_process_init.connect(after_fork, weak=False)
        signals.worker_process_shutdown.connect(on_exit, weak=False)
        signals.worker_shutdown.connect(on_exit, weak=False)
        signals.worker_ready.connect(ready, weak=False)


def _safe(url: str) -> str:
    """The broker URL without its password, for messages."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
