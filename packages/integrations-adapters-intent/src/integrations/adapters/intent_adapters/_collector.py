"""The collector: every signal source read at once, each in a governed session with a deadline.

``collect(sources, context=...)`` (and ``await collect_async(...)``) reads all sources
concurrently and returns a `CollectReport`. The rules, and why:

- **Every source is a governed session.** A source object (a `SignalSource`, an
  `AsyncSignalSource`, a legacy ``SignalAdapter``) or a config naming one (a
  `SignalSourceConfig`, a mapping, or a tenant's `UntrustedConfig`) is read through an
  ``intent.signals`` session, with that connector's manifest entry, under the governance
  given (else the registry's): policies decide, every step is audited, transient failures
  are retried. A session handed over (on any fetch connector whose records are signals,
  such as ``intent.local``) is read as it is: its pages are followed, and the stored
  intents' derived fields (``id``, ``intent_score``, ``explanation``) are not part of the
  signals.
- **Each source has its own deadline**, counted from the start of its session. A source
  that has not answered by then is reported as timed out and the collection goes on
  without it: an async source is cancelled, and a sync one (which no one can stop) is
  left to finish in its daemon thread, its late answer dropped. A source that fails, or
  answers something that is not a list of signals, is reported likewise, with its error and
  time; none of them costs the other sources anything.
- **Every signal is validated**: a bad one is reported with its source, position and reason,
  and never stops the good ones. Exact duplicates (the same `signal_id`) are dropped,
  wherever they came from. The order is stable: the sources' order, then each source's own.
- **Pushing** (``push_to=``): the collected signals go to an intent connector in batches of
  ``batch_size``, through at most ``push_concurrency`` sessions at once for a registry name
  (one session, one batch at a time, for a session or connector handed over). The report
  holds what the target accepted and rejected.

The sync `collect` runs the same collection on an event loop of its own, in a thread of its
own, so it works from any thread, one running a loop included; its sources and push target
must therefore not be async sessions bound to the caller's loop (use `collect_async`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeVar, cast

from integrations.base import (
    AsyncSession,
    AuthContext,
    ConfigError,
    ConnectorMeta,
    ConnectorNotFound,
    ConnectorUnavailable,
    DiscoveryError,
    FetchQuery,
    FetchResult,
    Governance,
    InvalidRequest,
    PolicyError,
    Record,
    Registry,
    Session,
    UntrustedConfig,
)
from integrations.base.registry import ConnectorEntry, Status, default_registry

from ._collect_push import PushConfig, PushTarget, push_signals
from ._collect_report import (
    CollectedSignal,
    CollectReport,
    RejectedSignal,
    SourceReport,
    SourceStatus,
)
from ._construct import Builder, builder
from ._intent import Intent
from ._signal import Signal, parse_signal
from .signals import (
    AsyncSignalSource,
    AsyncSignalSourceConnector,
    InvalidSourceAnswer,
    SignalSource,
    SignalSourceConfig,
    SignalSourceConnector,
    SourceAnswer,
    signal_id,
)
from .signals._threads import in_daemon_thread

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_DEADLINE_SECONDS",
    "DEFAULT_PUSH_CONCURRENCY",
    "SourceLike",
    "Sources",
    "collect",
    "collect_async",
]

logger = logging.getLogger("integrations.intent.collector")

DEFAULT_DEADLINE_SECONDS: Final = 10.0
DEFAULT_BATCH_SIZE: Final = 500
DEFAULT_PUSH_CONCURRENCY: Final = 4
SIGNALS_CONNECTOR: Final = "intent.signals"

PAGE_SIZE: Final = 10_000
MAX_PAGES: Final = 100
"""Pages read from one source at most (a million signals): a source that never ends stops."""
CANCEL_GRACE_SECONDS: Final = 1.0
"""How long a source cancelled at its deadline may take to end before it is left behind."""
_FIRST_PAGE: Final = FetchQuery(limit=PAGE_SIZE)
_OBJECT_CONFIG: Final[Mapping[str, Any]] = MappingProxyType(
    {"max_signals": PAGE_SIZE * MAX_PAGES, "max_page_size": PAGE_SIZE}
)
"""The config of a session on a source object (the session validates it as it opens)."""

SourceLike = (
    SignalSource
    | AsyncSignalSource
    | SignalSourceConfig
    | Mapping[str, Any]
    | UntrustedConfig
    | Session
    | AsyncSession
)
"""One source: an object with ``fetch_signals``, a config naming one, or an open session."""

Sources = Sequence[SourceLike] | Mapping[str, SourceLike]
"""The sources of a collection; a mapping names them (the names appear in the report)."""

T = TypeVar("T")


def collect(
    sources: Sources,
    *,
    context: AuthContext,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    governance: Governance | None = None,
    registry: Registry | None = None,
    push_to: PushTarget | None = None,
    push_config: PushConfig | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    push_concurrency: int = DEFAULT_PUSH_CONCURRENCY,
) -> CollectReport:
    """Read every source concurrently and report (see the module); `collect_async`'s twin.

    `context` is who collects (the sessions' tenant and actor). `governance` and `registry`
    default to the default registry and its governance; `push_config` is the push target's
    config when it is a registry name or a connector to open.
    """
    bound = [item for item in _items(sources) if isinstance(item, AsyncSession)]
    if bound or isinstance(push_to, AsyncSession):
        raise InvalidRequest(
            "an AsyncSession belongs to its event loop: collect through it with collect_async"
        )
    return _on_own_loop(
        lambda: collect_async(
            sources,
            context=context,
            deadline_seconds=deadline_seconds,
            governance=governance,
            registry=registry,
            push_to=push_to,
            push_config=push_config,
            batch_size=batch_size,
            push_concurrency=push_concurrency,
        )
    )


async def collect_async(
    sources: Sources,
    *,
    context: AuthContext,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
    governance: Governance | None = None,
    registry: Registry | None = None,
    push_to: PushTarget | None = None,
    push_config: PushConfig | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    push_concurrency: int = DEFAULT_PUSH_CONCURRENCY,
) -> CollectReport:
    """Read every source concurrently on the running loop and report (see the module)."""
    _check_limits(deadline_seconds, batch_size, push_concurrency)
    started = time.perf_counter()
    entries = _entries(sources)
    chosen = registry or default_registry
    setup = _Setup(context, governance or chosen.governance, chosen, deadline_seconds)
    outcomes = await _attempt_all(entries, setup)
    merged = _merge(outcomes)
    push = None
    if push_to is not None:
        push = await push_signals(
            merged.signals,
            push_to,
            config=push_config,
            context=context,
            governance=setup.governance,
            registry=chosen,
            batch_size=batch_size,
            concurrency=push_concurrency,
        )
    report = CollectReport(
        signals=tuple(merged.signals),
        sources=tuple(merged.reports),
        rejections=tuple(merged.rejections),
        duplicates=sum(item.duplicates for item in merged.reports),
        push=push,
        elapsed_seconds=time.perf_counter() - started,
    )
    _log(report)
    return report


# -- the sources ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    label: str
    item: SourceLike


def _items(sources: Sources) -> list[SourceLike]:
    if isinstance(sources, Mapping):
        return list(sources.values())
    return list(sources)


def _entries(sources: Sources) -> list[_Entry]:
    """Each source with its name in the report: the key given, else one made unique."""
    if isinstance(sources, Mapping):
        named = [(_named(name, item), item) for name, item in sources.items()]
    else:
        named = [(_label_of(item, f"sources[{i}]"), item) for i, item in enumerate(sources)]
    used: dict[str, int] = {}
    entries = []
    for label, item in named:
        used[label] = used.get(label, 0) + 1
        entries.append(_Entry(label if used[label] == 1 else f"{label}#{used[label]}", item))
    return entries


def _named(name: object, item: object) -> str:
    _label_of(item, f"sources[{name!r}]")  # refuses what is not a source
    return str(name)


def _label_of(item: object, where: str) -> str:
    if isinstance(item, SignalSourceConfig):
        return item.source or SIGNALS_CONNECTOR
    if isinstance(item, UntrustedConfig | Mapping):
        data = item.data if isinstance(item, UntrustedConfig) else item
        named = data.get("source")
        return named if isinstance(named, str) and named else SIGNALS_CONNECTOR
    if isinstance(item, Session | AsyncSession):
        return type(item.connector).__name__
    if callable(getattr(item, "fetch_signals", None)):
        return type(item).__name__
    raise InvalidRequest(
        f"{where} is a {type(item).__name__}: expected an object with fetch_signals(), "
        "a SignalSourceConfig (or a mapping, or an UntrustedConfig), or an open session"
    )


@dataclass(slots=True)
class _Setup:
    """What every source's session shares."""

    context: AuthContext
    governance: Governance
    registry: Registry
    deadline: float
    _identity: tuple[ConnectorMeta, ConnectorEntry | None] | None = field(default=None)

    def identity(self) -> tuple[ConnectorMeta, ConnectorEntry | None]:
        """``intent.signals`` as the registry knows it: audit identity and manifest entry."""
        if self._identity is None:
            self._identity = _signals_identity(self.registry)
        return self._identity

    def session(self, item: SourceLike) -> tuple[AsyncSession, AsyncSignalSourceConnector]:
        """A governed ``intent.signals`` session on a source object or a config."""
        meta, entry = self.identity()
        config: SignalSourceConfig | UntrustedConfig | Mapping[str, Any]
        if isinstance(item, SignalSourceConfig | UntrustedConfig | Mapping):
            connector, config = AsyncSignalSourceConnector(), item
        else:
            source = cast(SignalSource | AsyncSignalSource, item)
            connector, config = AsyncSignalSourceConnector(source), _OBJECT_CONFIG
        session = AsyncSession(
            connector,
            config=config,
            context=self.context,
            governance=self.governance,
            meta=meta,
            entry=entry,
        )
        return session, connector


def _signals_identity(registry: Registry) -> tuple[ConnectorMeta, ConnectorEntry | None]:
    try:
        info = registry.info(SIGNALS_CONNECTOR)
    except ConnectorNotFound:  # a registry without this distribution: sessions still govern
        return ConnectorMeta(SIGNALS_CONNECTOR), None
    if info.status is not Status.OK:
        problem = f"connector {SIGNALS_CONNECTOR!r} is {info.status}: {info.problem}"
        raise ConnectorUnavailable(problem)
    entry = info.entry
    version = entry.version if entry is not None else None
    meta = ConnectorMeta(SIGNALS_CONNECTOR, version, info.distribution, info.distribution_version)
    return meta, entry


# -- reading one source -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Read:
    """What a source's session returned."""

    records: list[Record]
    answer: SourceAnswer | None
    stored: bool
    """The records are stored intents (of another intent connector), not a source's signals."""


@dataclass(frozen=True, slots=True)
class _Harvest:
    """A source's answer as signals, read as soon as the source answered.

    The records and the connector's answer are dropped then, so a collection holds each
    source's records only while it reads them, and the merge at the end (after the last
    source) only drops duplicates.
    """

    signals: list[CollectedSignal]
    """Its valid signals in its order, each with its id (duplicates still in)."""
    rejected: list[tuple[int, str]]
    """Its items that are not valid signals: position and reason."""
    received: int
    duplicates: int
    """Duplicates its connector already dropped."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    label: str
    elapsed: float
    harvest: _Harvest | None = None
    status: SourceStatus = SourceStatus.OK
    error_type: str | None = None
    error: str | None = None


async def _attempt_all(entries: Sequence[_Entry], setup: _Setup) -> list[_Outcome]:
    """Every source's outcome, in order; each source is started once the one before it had a
    turn of the loop to get its request out.

    Started all at once, every source's session would open before any of them reaches its
    source: the first request would wait for the last session's setup. Started one after
    the other (one turn of the loop each, not waiting for the answers), the first sources'
    requests are out while the later ones are set up, and their answers come back that much
    earlier. Each source's deadline counts from its own start.
    """
    tasks: list[asyncio.Future[_Outcome]] = []
    try:
        for entry in entries:
            tasks.append(asyncio.ensure_future(_attempt(entry, setup)))
            await asyncio.sleep(0)
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def _attempt(entry: _Entry, setup: _Setup) -> _Outcome:
    """Read one source within its deadline; every way it ends becomes an outcome."""
    started = time.perf_counter()
    task = asyncio.ensure_future(_read(entry, setup))
    try:
        done, _ = await asyncio.wait({task}, timeout=setup.deadline)
    finally:
        if not task.done():
            task.cancel()
    elapsed = time.perf_counter() - started
    if not done:
        task.add_done_callback(_consume)
        await asyncio.wait({task}, timeout=CANCEL_GRACE_SECONDS)
        message = f"no answer within the deadline of {setup.deadline:g} s"
        return _Outcome(entry.label, elapsed, None, SourceStatus.TIMED_OUT, "TimeoutError", message)
    if task.cancelled():  # the source cancelled itself: a failure like any other
        return _Outcome(
            entry.label, elapsed, None, SourceStatus.FAILED, "CancelledError", "cancelled"
        )
    error = task.exception()
    if error is None:
        return _Outcome(entry.label, elapsed, _harvest(entry.label, task.result()))
    if not isinstance(error, Exception):
        raise error
    return _Outcome(entry.label, elapsed, None, _status_of(error), type(error).__name__, str(error))


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a left-behind task's end, so that asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _status_of(error: Exception) -> SourceStatus:
    if isinstance(error, InvalidSourceAnswer):
        return SourceStatus.INVALID_ANSWER
    if isinstance(error, PolicyError | ConfigError | DiscoveryError):
        return SourceStatus.REFUSED
    return SourceStatus.FAILED


async def _read(entry: _Entry, setup: _Setup) -> _Read:
    item = entry.item
    if isinstance(item, AsyncSession):
        return _Read(await _pages(item.fetch), _answer_of(item.connector), _stored(item.connector))
    if isinstance(item, Session):
        given = item

        def fetch(query: FetchQuery) -> Awaitable[FetchResult]:
            return in_daemon_thread(lambda: given.fetch(query), name=f"signals:{entry.label}")

        return _Read(await _pages(fetch), _answer_of(given.connector), _stored(given.connector))
    session, connector = setup.session(item)
    async with session:
        records = await _pages(session.fetch)
    return _Read(records, connector.answer, stored=False)


async def _pages(fetch: Callable[[FetchQuery], Awaitable[FetchResult]]) -> list[Record]:
    """Every page of a fetch without filters, following cursors (at most `MAX_PAGES`)."""
    records: list[Record] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        query = _FIRST_PAGE if cursor is None else FetchQuery(limit=PAGE_SIZE, cursor=cursor)
        page = await fetch(query)
        records.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            return records
    raise InvalidSourceAnswer(f"the source still had more after {MAX_PAGES} pages")


def _answer_of(connector: object) -> SourceAnswer | None:
    if isinstance(connector, SignalSourceConnector | AsyncSignalSourceConnector):
        return connector.answer
    return None


def _stored(connector: object) -> bool:
    return not isinstance(connector, SignalSourceConnector | AsyncSignalSourceConnector)


# -- merging ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Merged:
    signals: list[CollectedSignal] = field(default_factory=list)
    reports: list[SourceReport] = field(default_factory=list)
    rejections: list[RejectedSignal] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)


def _merge(outcomes: Sequence[_Outcome]) -> _Merged:
    """The signals in order, each once; the rejections; one report per source."""
    merged = _Merged()
    for outcome in outcomes:
        merged.reports.append(_merge_one(merged, outcome))
    return merged


def _merge_one(merged: _Merged, outcome: _Outcome) -> SourceReport:
    label, harvest = outcome.label, outcome.harvest
    if harvest is None:
        return SourceReport(
            source=label,
            status=outcome.status,
            elapsed_seconds=outcome.elapsed,
            error_type=outcome.error_type,
            error=outcome.error,
        )
    seen = merged.seen
    duplicates = harvest.duplicates
    collected = 0
    for item in harvest.signals:
        if item.id in seen:
            duplicates += 1
            continue
        seen.add(item.id)
        merged.signals.append(item)
        collected += 1
    merged.rejections.extend(
        RejectedSignal(source=label, index=index, reason=reason)
        for index, reason in harvest.rejected
    )
    return SourceReport(
        source=label,
        status=SourceStatus.OK,
        elapsed_seconds=outcome.elapsed,
        received=harvest.received,
        collected=collected,
        rejected=len(harvest.rejected),
        duplicates=duplicates,
    )


def _harvest(label: str, read: _Read) -> _Harvest:
    """Each record's signal and id, or why it is none: validated once.

    A record of a signal source's connector whose signal the connector kept (settled, see
    `SourceAnswer.signals`) is taken with that signal and its id; any other record (stored
    intents, a session handed over, a signal the JSON changes) is parsed here.
    """
    answer = read.answer
    rejected = [] if answer is None else [(r.index, r.reason) for r in answer.rejections]
    settled = {} if answer is None or read.stored else answer.settled()
    signals: list[CollectedSignal] = []
    for index, record in enumerate(read.records):
        known = settled.get(id(record))
        if known is not None and known[0] is record:  # validated by the source's connector
            signal, identifier = known[1], record.id
        else:
            try:
                signal = _signal_of(record, read.stored)
            except InvalidRequest as error:
                rejected.append((index, str(error)))
                continue
            identifier = signal_id(signal)
        signals.append(_collected({"id": identifier, "source": label, "signal": signal}))
    return _Harvest(
        signals,
        rejected,
        received=len(read.records) if answer is None else answer.received,
        duplicates=0 if answer is None else answer.duplicates,
    )


_collected: Final[Builder[CollectedSignal]] = builder(
    CollectedSignal,
    ("id", "source", "signal"),
    {
        "id": "sig-probe",
        "source": "probe",
        "signal": parse_signal(
            {
                "source": "probe",
                "topic": "probe",
                "momentum": "steady",
                "confidence": 0.5,
                "authenticity": {"human_source_pct": 50.0},
                "streak_days": 1,
                "created_at": "2024-01-01T00:00:00Z",
            }
        ),
    },
)
"""A collected signal built from its id, source name and validated signal (no validation again:
the id is a string, the name the report's, the signal a `Signal`)."""


def _signal_of(record: Record, stored: bool) -> Signal:
    if stored:
        return Intent.from_json(record.id, record.data).signal
    return parse_signal(record.data)


# -- running ----------------------------------------------------------------------------------


def _check_limits(deadline_seconds: float, batch_size: int, push_concurrency: int) -> None:
    if not (math.isfinite(deadline_seconds) and 0 < deadline_seconds <= 3600):
        raise InvalidRequest(f"deadline_seconds must be in (0, 3600], not {deadline_seconds}")
    if not 1 <= batch_size <= 10_000:
        raise InvalidRequest(f"batch_size must be in [1, 10000], not {batch_size}")
    if not 1 <= push_concurrency <= 64:
        raise InvalidRequest(f"push_concurrency must be in [1, 64], not {push_concurrency}")


def _on_own_loop(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `make` builds on a new event loop in a thread of its own.

    The calling thread may itself run a loop (``asyncio.run`` would refuse). The caller's
    context variables are carried over.
    """
    context = contextvars.copy_context()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def main() -> None:
        try:
            outcome.append(context.run(asyncio.run, make()))
        except BaseException as error:  # handed back to the calling thread
            failure.append(error)

    thread = threading.Thread(target=main, name="intent-collector", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def _log(report: CollectReport) -> None:
    for source in report.failed:
        logger.warning(
            "signal source %s %s after %.3f s: %s",
            source.source,
            source.status.value,
            source.elapsed_seconds,
            source.error,
            extra={"source": source.source, "status": source.status.value},
        )
    logger.info(
        "collected %d signals from %d sources (%d failed, %d rejected, %d duplicates) in %.3f s",
        len(report.signals),
        len(report.sources),
        len(report.failed),
        len(report.rejections),
        report.duplicates,
        report.elapsed_seconds,
    )
