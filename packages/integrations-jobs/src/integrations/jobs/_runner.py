"""One run of one pipeline for one tenant: lease → batches → checkpoint commits → run record.

`run_pipeline` is the unit of work every executor calls, so it takes only what can be named
or shipped to another process (the spec, the pipeline and tenant names, a store, a holder
id) plus optional in-process helpers, and returns a plain `RunReport`.

The order of writes is what makes the guarantees:

1. the destination accepts the batch (its push carries an idempotency key derived from the
   pipeline, the tenant, the source state the batch was read from, and the batch itself);
2. rejected records go to the dead letters (fenced by the lease's token);
3. only then is the source's new state committed as the checkpoint (fenced too).

A crash between 1 and 3 leaves the checkpoint behind the destination, never ahead of it: the
next run reads the same batch again and pushes it with the same key.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from integrations.base import (
    NO_RETRY,
    RUN_ID_ATTRIBUTE,
    AuthContext,
    AuthExpired,
    Capability,
    ConnectionFailed,
    FanOutAuditSink,
    FetchQuery,
    Governance,
    IntegrationsError,
    JsonLinesAuditSink,
    PushPayload,
    Record,
    Registry,
    ResyncRequired,
    Session,
    SyncState,
    TransientError,
    format_utc,
)

from ._exceptions import LeaseHeld, LeaseLost, StoreError
from ._records import Lease
from ._report import Delivery, Outcome, RunReport
from ._spec import JobsSpec, PipelineSpec, TenantSpec, TransformSpec
from ._store import JobStore

__all__ = ["ConnectorLimits", "ProgressListener", "idempotency_key", "run_pipeline"]

logger = logging.getLogger("integrations.jobs")

NOT_ACKNOWLEDGED = "the destination neither accepted nor rejected the record"

_NO_LEASE = Lease("", "", "", 0, datetime.min.replace(tzinfo=UTC))
"""A run's lease before it is acquired (never written with: acquiring comes first)."""
"""The dead-letter reason of a record a push result does not mention at all."""


class ProgressListener(Protocol):
    """Told what a run is doing, from the thread that runs it (the CLI draws progress bars)."""

    def run_started(self, pipeline: str, tenant: str, run_id: str) -> None:
        """A run holds its lease and starts its first attempt."""

    def batch_committed(self, pipeline: str, tenant: str, records: int, rejected: int) -> None:
        """A batch was accepted and its checkpoint committed."""

    def run_finished(self, report: RunReport) -> None:
        """A run ended (or was skipped); `report` says how."""


class ConnectorLimits:
    """Per-connector limits on calls in flight, shared by every run of one executor.

    A limit bounds calls (opening a session, each read, each push, each close), not whole
    runs: a run holds one connector's slot only while it calls that connector, so a pipeline
    from a connector into the same connector cannot deadlock on a limit of 1.
    """

    def __init__(self, limits: Mapping[str, int] | None = None) -> None:
        """`limits`: connector name → calls in flight at once (absent: unlimited)."""
        self._semaphores = {
            name: threading.BoundedSemaphore(limit) for name, limit in (limits or {}).items()
        }

    @contextlib.contextmanager
    def slot(self, connector: str) -> Iterator[None]:
        """Hold one of `connector`'s slots for the block (immediately when it has no limit)."""
        semaphore = self._semaphores.get(connector)
        if semaphore is None:
            yield
            return
        with semaphore:
            yield


def idempotency_key(
    pipeline: str,
    tenant: str,
    state: Mapping[str, Any] | None,
    index: int,
    records: Sequence[Record],
) -> str:
    """The key of one push: the same batch read from the same state always gets the same key.

    The batch's content is part of it, so a source that changed between a crash and the
    retry yields a new key (and its new content is applied) instead of a stale duplicate.
    """
    digest = hashlib.sha256()
    for part in (pipeline, tenant, _canonical(state), str(index)):
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    for record in records:
        digest.update(record.model_dump_json().encode("utf-8"))
        digest.update(b"\x00")
    return f"jobs-{digest.hexdigest()[:40]}"


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class _Page:
    """What one read of the source gave: records, the state after them, whether more wait."""

    records: tuple[Record, ...]
    state: dict[str, Any]
    more: bool


@dataclass(slots=True)
class _Run:
    """The state of one run across its attempts."""

    spec: PipelineSpec
    tenant: TenantSpec
    store: JobStore
    lease: Lease
    run_id: str
    registry: Registry
    governance: Governance | None
    limits: ConnectorLimits
    progress: ProgressListener | None
    delivery: Delivery
    moved: int = 0
    batches: int = 0
    rejected: int = 0
    attempts: int = 0
    resynced: bool = False

    @property
    def context(self) -> AuthContext:
        """Who the sessions run as, carrying the run id into every audit event."""
        attributes = {**self.tenant.attributes, RUN_ID_ATTRIBUTE: self.run_id}
        return AuthContext(
            tenant=self.tenant.tenant,
            actor=self.tenant.actor,
            scopes=frozenset(self.tenant.scopes),
            attributes=attributes,
        )


def run_pipeline(
    spec: JobsSpec,
    pipeline: str,
    tenant: str,
    store: JobStore,
    holder: str,
    *,
    registry: Registry | None = None,
    governance: Governance | None = None,
    limits: ConnectorLimits | None = None,
    progress: ProgressListener | None = None,
    executor: str = "in-process",
    sleep: Callable[[float], None] = time.sleep,
) -> RunReport:
    """Run `pipeline` for `tenant` once, until its source has nothing more, and report.

    Never raises for what happens to the run (a failing connector, a lost lease, another
    holder running it): the report says so, and the store's run record too. Raises
    `SpecError` for an unknown pipeline or tenant, and `StoreError` when the store cannot
    be asked for the lease, both before anything is written: the caller decides whether to
    try later (a worker re-queues the run; the in-process executor reports it failed).

    Sessions run under `governance`, else the spec's ``governance`` settings, else the
    registry's governance (`registry`: the default registry when None).
    """
    pipeline_spec = spec.pipeline(pipeline)
    tenant_spec = pipeline_spec.tenant(tenant)
    registry = registry or _default_registry()
    owned = None if governance is not None else spec_governance(spec)
    try:
        return _start(
            _Run(
                pipeline_spec,
                tenant_spec,
                store,
                _NO_LEASE,
                uuid.uuid4().hex,
                registry,
                governance or owned,
                limits or ConnectorLimits(),
                progress,
                destination_delivery(registry, pipeline_spec.destination.connector),
            ),
            holder,
            executor,
            sleep,
        )
    finally:
        close_audit(owned)


def _start(run: _Run, holder: str, executor: str, sleep: Callable[[float], None]) -> RunReport:
    """Take the lease (or report the run skipped), then execute the run."""
    started_at = _utcnow()
    pipeline, tenant = run.spec.name, run.tenant.tenant
    try:
        run.lease = run.store.acquire_lease(pipeline, tenant, holder, run.spec.lease_ttl)
    except LeaseHeld as error:
        report = not_started(run.run_id, pipeline, tenant, run.delivery, started_at, error)
        if run.progress is not None:
            run.progress.run_finished(report)
        return report
    return _execute(run, executor, started_at, sleep)


def _execute(
    run: _Run, executor: str, started_at: datetime, sleep: Callable[[float], None]
) -> RunReport:
    """Record the run, try it, and always write its end and release the lease."""
    outcome: Outcome = "failed"
    error: str | None = "interrupted"
    try:
        run.store.start_run(run.run_id, run.spec.name, run.tenant.tenant, executor)
        _end_abandoned_runs(run)
        if run.progress is not None:
            run.progress.run_started(run.spec.name, run.tenant.tenant, run.run_id)
        outcome, error = _attempt_all(run, sleep)
    except StoreError as failure:
        error = _describe(failure)
    finally:
        _finish(run, outcome, error)
    report = RunReport(
        run_id=run.run_id,
        pipeline=run.spec.name,
        tenant=run.tenant.tenant,
        outcome=outcome,
        records_moved=run.moved,
        batches=run.batches,
        rejected=run.rejected,
        attempts=run.attempts,
        delivery=run.delivery,
        started_at=started_at,
        finished_at=_utcnow(),
        error=error,
        resynced=run.resynced,
    )
    if run.progress is not None:
        run.progress.run_finished(report)
    return report


_ABANDONED_LOOKBACK: Final = 20
"""How many earlier runs of a (pipeline, tenant) a new run looks through for abandoned ones."""


def _end_abandoned_runs(run: _Run) -> None:
    """Record the end of earlier runs still marked running: their worker died before writing
    it (a SIGKILL, a lost machine). The new run holds the lease, so none of them is running
    any more; one that is only paused finds its lease lost when it tries to commit.

    They end as ``abandoned`` with the counts they recorded, so `status` never shows a dead
    run as running; a paused run that wakes up still records its own end over it.
    """
    for earlier in run.store.runs(run.spec.name, run.tenant.tenant, _ABANDONED_LOOKBACK):
        if earlier.outcome != "running" or earlier.run_id == run.run_id:
            continue
        reason = (
            f"no end recorded when run {run.run_id} took over the lease: its worker stopped, "
            "or it lost the lease"
        )
        try:
            run.store.finish_run(
                earlier.run_id,
                "abandoned",
                earlier.records_moved,
                earlier.batches,
                earlier.rejected,
                reason,
            )
        except StoreError:
            logger.info("run %s recorded its own end meanwhile", earlier.run_id)


def _finish(run: _Run, outcome: Outcome, error: str | None) -> None:
    """Write the run's end and release its lease; a store failing here is logged, not raised,
    so the report still reaches the caller (the lease then expires by itself)."""
    try:
        run.store.finish_run(
            run.run_id, outcome, run.moved, run.batches, run.rejected, _one_line(error)
        )
    except StoreError:
        logger.warning("the end of run %s could not be recorded", run.run_id, exc_info=True)
    try:
        run.store.release_lease(run.lease)
    except StoreError:
        logger.warning("the lease of run %s was not released", run.run_id, exc_info=True)


def _attempt_all(run: _Run, sleep: Callable[[float], None]) -> tuple[Outcome, str | None]:
    """Try the run up to its attempts; each try resumes at the last committed checkpoint."""
    for attempt in range(1, run.spec.attempts + 1):
        run.attempts = attempt
        try:
            _transfer(run)
        except LeaseLost as lost:
            return "lease_lost", _describe(lost)
        except Exception as failure:  # a connector or store may fail in any way: report it
            if not _retryable(failure) or attempt == run.spec.attempts:
                logger.info("run %s failed", run.run_id, exc_info=not _expected(failure))
                return "failed", _describe(failure, attempt)
            delay = run.spec.retry_delay * 2 ** (attempt - 1)
            logger.warning(
                "run %s of %s for %s: %s; trying again in %.1f s",
                run.run_id,
                run.spec.name,
                run.tenant.tenant,
                _describe(failure, attempt),
                delay,
            )
            sleep(delay)
            try:
                run.lease = run.store.renew_lease(run.lease, run.spec.lease_ttl)
            except LeaseLost as lost:
                return "lease_lost", _describe(lost)
        else:
            return "succeeded", None
    raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover


def _retryable(error: BaseException) -> bool:
    """Failures after which a later try may succeed: transient errors, lost connections,
    an expired token, a store that was busy."""
    if isinstance(error, StoreError):
        return error.transient
    return isinstance(error, TransientError | ConnectionFailed | AuthExpired)


def _expected(error: BaseException) -> bool:
    return isinstance(error, IntegrationsError)


def _describe(error: BaseException, attempt: int | None = None) -> str:
    text = f"{type(error).__name__}: {_one_line(str(error)) or '-'}"
    return text if attempt is None else f"{text} (attempt {attempt})"


def _one_line(text: str | None) -> str | None:
    if text is None:
        return None
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _transfer(run: _Run) -> None:
    """One attempt: open a session on each side, then move batches until the source is dry."""
    source, destination = run.spec.source, run.spec.destination
    with contextlib.ExitStack() as stack:
        reader = _open(run, stack, source.connector, {**source.config, **run.tenant.source})
        writer = _open(
            run, stack, destination.connector, {**destination.config, **run.tenant.destination}
        )
        checkpoint = run.store.checkpoint(run.spec.name, run.tenant.tenant)
        state = None if checkpoint is None else dict(checkpoint.state or {}) or None
        while True:
            page = _read(run, reader, state)
            if not page.records and page.state == (state or _empty_state(run)):
                return
            _deliver(run, writer, state, page)
            state = page.state
            if not page.more:
                return


def _open(
    run: _Run, stack: contextlib.ExitStack, connector: str, config: Mapping[str, Any]
) -> Session:
    """A governed session on `connector` for the run's tenant, closed with the attempt."""
    session = run.registry.open(
        connector, config=dict(config), context=run.context, governance=run.governance
    )
    with run.limits.slot(connector):
        session.open()
    stack.callback(_close, run, connector, session)
    return session


def _close(run: _Run, connector: str, session: Session) -> None:
    with run.limits.slot(connector):
        session.close()


def _empty_state(run: _Run) -> dict[str, Any]:
    if run.spec.source.operation == "sync":
        return SyncState().model_dump(mode="json")
    return {"cursor": None}


def _read(run: _Run, session: Session, state: Mapping[str, Any] | None) -> _Page:
    """One page of the source from `state` (the start when None)."""
    source = run.spec.source
    with run.limits.slot(source.connector):
        if source.operation == "fetch":
            return _fetch(run, session, state)
        return _sync(run, session, state)


def _sync(run: _Run, session: Session, state: Mapping[str, Any] | None) -> _Page:
    """Changes after the checkpointed sync state; a state the source has compacted away
    (`ResyncRequired`) starts a full sync, which an idempotent destination absorbs."""
    start = SyncState.model_validate(state) if state else SyncState()
    try:
        result = session.sync(start)
    except ResyncRequired:
        logger.warning(
            "pipeline %s, tenant %s: the source needs a full resync",
            run.spec.name,
            run.tenant.tenant,
        )
        run.resynced = True
        result = session.sync(SyncState())
    return _Page(result.changes, result.state.model_dump(mode="json"), result.has_more)


def _fetch(run: _Run, session: Session, state: Mapping[str, Any] | None) -> _Page:
    """The page at the checkpointed cursor; the last page's state has no cursor, so the
    next run reads the query from its first page again."""
    cursor = (state or {}).get("cursor")
    query = FetchQuery.model_validate(
        {**run.spec.source.query, "cursor": cursor, "limit": run.spec.batch_size}
    )
    result = session.fetch(query)
    return _Page(result.records, {"cursor": result.next_cursor}, result.next_cursor is not None)


def _deliver(run: _Run, writer: Session, state: Mapping[str, Any] | None, page: _Page) -> None:
    """Push the page in batches, dead-letter what was refused, then commit the checkpoint.

    A sync page may be larger than a batch (the source decides its page size): its batches
    are pushed one after the other and the page's state is committed after the last, since
    the source has no state between them.
    """
    records = tuple(_transform(record, run.spec.transform) for record in _latest(page.records))
    accepted = 0
    letters: list[tuple[Mapping[str, Any], str]] = []
    size = run.spec.batch_size
    for index, start in enumerate(range(0, len(records), size)):
        batch = records[start : start + size]
        done, refused = _push(run, writer, state, index, batch)
        accepted += done
        letters.extend(refused)
        run.batches += 1
    run.lease = run.store.commit_batch(
        run.lease,
        page.state,
        accepted,
        run_id=run.run_id,
        letters=letters,
        ttl_seconds=run.spec.lease_ttl,
    )
    run.moved += accepted
    run.rejected += len(letters)
    if run.progress is not None:
        run.progress.batch_committed(run.spec.name, run.tenant.tenant, accepted, len(letters))


def _push(
    run: _Run,
    writer: Session,
    state: Mapping[str, Any] | None,
    index: int,
    batch: tuple[Record, ...],
) -> tuple[int, list[tuple[Mapping[str, Any], str]]]:
    """Push one batch; the accepted count and the refused records with their reasons.

    Only an idempotent destination gets a key (a destination without idempotency may refuse
    keys it cannot honour), and only its pushes are retried by the session.
    """
    idempotent = run.delivery == "exactly-once"
    key = idempotency_key(run.spec.name, run.tenant.tenant, state, index, batch)
    payload = PushPayload(records=batch, idempotency_key=key if idempotent else None)
    with run.limits.slot(run.spec.destination.connector):
        result = writer.push(payload, retry=None if idempotent else NO_RETRY)
    reasons = {rejection.id: rejection.reason for rejection in result.rejected}
    acknowledged = set(result.accepted)
    refused: list[tuple[Mapping[str, Any], str]] = [
        (record.model_dump(mode="json"), reasons.get(record.id, NOT_ACKNOWLEDGED))
        for record in batch
        if record.id not in acknowledged
    ]
    return len(batch) - len(refused), refused


def _latest(records: Sequence[Record]) -> list[Record]:
    """One record per id, the last change of each, in the order of those last changes.

    A change log may hold several changes of one record in a page; the last one is the
    record's state, and a destination may refuse a payload that names an id twice.
    """
    last = {record.id: index for index, record in enumerate(records)}
    return [record for index, record in enumerate(records) if last[record.id] == index]


def _transform(record: Record, transform: TransformSpec) -> Record:
    """The record with the spec's field selection and renames applied to its data."""
    if record.deleted or (
        transform.include is None and not transform.exclude and not transform.rename
    ):
        return record
    data = dict(record.data)
    if transform.include is not None:
        data = {name: value for name, value in data.items() if name in transform.include}
    for name in transform.exclude:
        data.pop(name, None)
    for old, new in transform.rename.items():
        if old in data:
            data[new] = data.pop(old)
    return record.model_copy(update={"data": data})


def destination_delivery(registry: Registry, connector: str) -> Delivery:
    """``exactly-once`` when the destination's manifest declares its push idempotent."""
    try:
        entry = registry.info(connector).entry
    except IntegrationsError:
        return "at-least-once"  # the run fails opening the session, with the real reason
    push = entry.capability(Capability.PUSH) if entry is not None else None
    return "exactly-once" if push is not None and push.idempotent else "at-least-once"


def not_started(
    run_id: str,
    pipeline: str,
    tenant: str,
    delivery: Delivery,
    started_at: datetime,
    error: LeaseHeld | StoreError,
) -> RunReport:
    """The report of a run that could not take its lease: skipped when another holder has
    it, failed when the store could not be asked (nothing is recorded either way)."""
    if isinstance(error, LeaseHeld):
        until = f" until {format_utc(error.expires_at)}" if error.expires_at else ""
        reason = f"LeaseHeld: {error.holder or 'another worker'} holds the lease{until}"
    else:
        reason = _describe(error)
    return RunReport(
        run_id=run_id,
        pipeline=pipeline,
        tenant=tenant,
        outcome="skipped" if isinstance(error, LeaseHeld) else "failed",
        records_moved=0,
        batches=0,
        rejected=0,
        attempts=0,
        delivery=delivery,
        started_at=started_at,
        finished_at=_utcnow(),
        error=reason,
    )


def _default_registry() -> Registry:
    from integrations.base.registry import default_registry

    return default_registry


def close_audit(governance: Governance | None) -> None:
    """Close the audit sinks of a governance built for the runs (a JSON Lines file is open):
    whoever builds a governance from settings owns its files."""
    if governance is None:
        return
    pending: list[object] = [governance.audit]
    while pending:
        sink = pending.pop()
        if isinstance(sink, FanOutAuditSink):
            pending.extend(sink.sinks)
        elif isinstance(sink, JsonLinesAuditSink):
            sink.close()


def spec_governance(spec: JobsSpec) -> Governance | None:
    """The governance the spec's settings describe; None leaves it to the registry."""
    settings = spec.governance_settings()
    return None if settings is None else settings.build()
