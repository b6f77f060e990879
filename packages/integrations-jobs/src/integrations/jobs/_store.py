"""The job store's contract (`JobStore`), `open_store`, and what both stores share.

A store keeps what must survive a worker: checkpoints, leases, run history and dead letters.
Both implementations check a lease's fencing token and expiry in the same transaction as the
write it guards, so a worker that lost its lease writes nothing. Checking values (JSON, ttl,
limits) happens here, once, before any transaction starts, so a refused call leaves the store
exactly as it was, and SQLite and PostgreSQL refuse the same values.

Time comes from the store's `clock` (tests pass a settable one). Lease expiry is judged by the
caller's clock: machines sharing a PostgreSQL store should keep their clocks in step and use
ttls far above the skew. Skew never breaks fencing (the token check is exact); it only decides
how early a successor may take over.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, Self
from urllib.parse import unquote, urlsplit

from ._exceptions import InvalidStoreValue, StoreError
from ._records import FINAL_OUTCOMES, Checkpoint, DeadLetter, Lease, PipelineStatus, RunRecord

__all__ = [
    "Clock",
    "ClosesOnExit",
    "JobStore",
    "RowDecoder",
    "assemble_status",
    "check_count",
    "check_error",
    "check_limit",
    "check_name",
    "check_outcome",
    "check_reason",
    "check_ttl",
    "current_time",
    "dump_record",
    "dump_state",
    "load_json",
    "open_store",
    "utc_now",
]

Clock = Callable[[], datetime]
"""Where a store reads the time: an aware datetime (any zone; stored as UTC)."""

_MAX_TTL: Final = timedelta(days=7)
"""Longer leases are almost certainly a unit mistake (milliseconds for seconds)."""

_MAX_COUNT: Final = 2**63 - 1
"""Counters are stored as 64-bit integers in both stores."""

_ESCAPED_NUL: Final = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")
"""A NUL character in JSON text: an escape ``\\u0000`` not itself escaped by a backslash."""


class JobStore(Protocol):
    """Durable checkpoints, leases, run history and dead letters; safe to share across threads.

    Every method is one transaction. `commit_checkpoint`, `add_dead_letters` and
    `commit_batch` are fenced:
    they write only when the lease's token is the current one and the lease is unexpired,
    otherwise they raise `LeaseLost` and write nothing.
    """

    def acquire_lease(self, pipeline: str, tenant: str, holder: str, ttl_seconds: float) -> Lease:
        """A new lease with a token above every earlier one; `LeaseHeld` when another holder
        has an unexpired lease. The same holder re-acquiring gets a new token."""
        ...

    def renew_lease(self, lease: Lease, ttl_seconds: float) -> Lease:
        """The lease extended to now + ttl, same token; `LeaseLost` when it is not current."""
        ...

    def release_lease(self, lease: Lease) -> None:
        """Let another holder acquire at once; does nothing when the lease is already lost."""
        ...

    def checkpoint(self, pipeline: str, tenant: str) -> Checkpoint | None:
        """The last committed checkpoint, or None when nothing was ever committed."""
        ...

    def commit_checkpoint(
        self, lease: Lease, state: Mapping[str, Any] | None, records_added: int
    ) -> Checkpoint:
        """Store `state` and add `records_added` to the total, fenced by `lease`."""
        ...

    def add_dead_letters(
        self, lease: Lease, run_id: str, letters: Sequence[tuple[Mapping[str, Any], str]]
    ) -> None:
        """Keep rejected (record, reason) pairs, all or none, fenced by `lease`."""
        ...

    def commit_batch(
        self,
        lease: Lease,
        state: Mapping[str, Any] | None,
        records_added: int,
        *,
        run_id: str,
        letters: Sequence[tuple[Mapping[str, Any], str]] = (),
        ttl_seconds: float,
    ) -> Lease:
        """A batch's bookkeeping in one fenced transaction: keep its dead letters, commit the
        checkpoint, and renew the lease to now + ttl; the renewed lease, or `LeaseLost` and
        nothing written. One transaction instead of three keeps a batch's store cost to one
        synced write, and a crash can no longer keep a batch's dead letters without its
        checkpoint."""
        ...

    def dead_letters(self, pipeline: str, tenant: str, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters of a (pipeline, tenant), newest first."""
        ...

    def start_run(self, run_id: str, pipeline: str, tenant: str, executor: str) -> RunRecord:
        """Record a run as ``running``; a run id already recorded is a `StoreError`."""
        ...

    def finish_run(
        self,
        run_id: str,
        outcome: str,
        records_moved: int,
        batches: int,
        rejected: int,
        error: str | None,
    ) -> RunRecord:
        """Record how a run ended (`FINAL_OUTCOMES`); an unknown run id is a `StoreError`."""
        ...

    def runs(
        self, pipeline: str | None = None, tenant: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Run records, newest first, optionally of one pipeline and/or tenant."""
        ...

    def status(self) -> list[PipelineStatus]:
        """Every (pipeline, tenant) with a run or a checkpoint, sorted by pipeline and tenant."""
        ...

    def close(self) -> None:
        """Release the store's connections; later calls raise `StoreError`."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


def open_store(url: str | Path, *, clock: Clock | None = None) -> JobStore:
    """Open (creating or migrating) the store `url` names.

    ``sqlite:///abs/path.db`` or a plain path is a SQLite file (the one-machine default);
    ``postgresql://...`` (or ``postgres://``) a PostgreSQL database shared by a fleet, which
    needs the ``postgres`` extra. Stores are imported here, on use, so that SQLite users never
    import psycopg.
    """
    chosen = clock or utc_now
    if isinstance(url, Path):
        return _open_sqlite(str(url), chosen)
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in {"postgresql", "postgres"}:
        return _open_postgres(url, chosen)
    if scheme == "sqlite":
        return _open_sqlite(_sqlite_path(url), chosen)
    if scheme:
        raise StoreError(
            f"the job store URL scheme {scheme!r} is not supported: use sqlite:///path, a "
            "file path, or postgresql://..."
        )
    return _open_sqlite(url, chosen)


def _sqlite_path(url: str) -> str:
    """The file of ``sqlite:///abs/path.db`` (also ``sqlite:////abs/path.db``)."""
    parts = urlsplit(url)
    if parts.netloc or parts.query or parts.fragment:
        raise StoreError(
            f"the SQLite job store URL {url!r} must be sqlite:///absolute/path.db (no host, no "
            "query)"
        )
    path = unquote(parts.path)
    if path.startswith("//"):
        path = path[1:]
    if not path or path == "/":
        raise StoreError(f"the SQLite job store URL {url!r} names no file")
    return path


def _open_sqlite(path: str, clock: Clock) -> JobStore:
    from ._sqlite_store import SqliteJobStore

    return SqliteJobStore(path, clock=clock)


def _open_postgres(url: str, clock: Clock) -> JobStore:
    try:
        from ._postgres_store import PostgresJobStore
    except ImportError as error:
        raise StoreError(
            "a PostgreSQL job store needs psycopg: install integrations-jobs[postgres] "
            f"({error.msg})"
        ) from None
    return PostgresJobStore(url, clock=clock)


# -- what both stores check before they write ------------------------------------------------


def utc_now() -> datetime:
    """The default clock: the current time in UTC."""
    return datetime.now(UTC)


def current_time(clock: Clock) -> datetime:
    """`clock`'s time in UTC; a naive time is refused, since its zone would be a guess."""
    now = clock()
    if now.tzinfo is None or now.utcoffset() is None:
        raise StoreError(f"the job store's clock returned a naive datetime ({now!r})")
    return now.astimezone(UTC)


def check_ttl(ttl_seconds: float) -> timedelta:
    """A lease's lifetime: a finite number of seconds above 0, at most a week."""
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int | float):
        raise InvalidStoreValue(f"ttl_seconds must be a number, not {type(ttl_seconds).__name__}")
    if not math.isfinite(ttl_seconds) or ttl_seconds <= 0:
        raise InvalidStoreValue(f"ttl_seconds must be above 0, got {ttl_seconds!r}")
    ttl = timedelta(seconds=ttl_seconds)
    if ttl > _MAX_TTL:
        raise InvalidStoreValue(f"ttl_seconds must be at most a week, got {ttl_seconds!r}")
    return ttl


def check_name(what: str, value: str) -> str:
    """A pipeline, tenant, holder, run id or executor: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise InvalidStoreValue(f"{what} must be a non-empty string, got {value!r}")
    _check_text(what, value)
    return value


def check_count(what: str, value: int) -> int:
    """A counter: an int from 0 up (bool refused: True records is a bug)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise InvalidStoreValue(f"{what} must be an integer from 0, got {value!r}")
    return value


def check_limit(limit: int) -> int:
    """How many rows a listing returns: an int from 1."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _MAX_COUNT:
        raise InvalidStoreValue(f"limit must be an integer from 1, got {limit!r}")
    return limit


def check_outcome(outcome: str) -> str:
    """How a run ended: one of `FINAL_OUTCOMES`."""
    if outcome not in FINAL_OUTCOMES:
        raise InvalidStoreValue(
            f"a run finishes with one of {sorted(FINAL_OUTCOMES)}, not {outcome!r}"
        )
    return outcome


def check_error(error: str | None) -> str | None:
    """A run's error text, or None."""
    if error is not None:
        if not isinstance(error, str):
            raise InvalidStoreValue(f"error must be a string or None, got {error!r}")
        _check_text("error", error)
    return error


def dump_state(state: Mapping[str, Any] | None) -> str | None:
    """A checkpoint's state as JSON text (None stays None); `InvalidStoreValue` when it is not
    a JSON object both stores can hold."""
    if state is None:
        return None
    return _dump_object("checkpoint state", state)


def dump_record(record: Mapping[str, Any]) -> str:
    """A dead letter's record as JSON text; `InvalidStoreValue` when it is not JSON."""
    return _dump_object("dead letter record", record)


def _dump_object(what: str, value: Mapping[str, Any]) -> str:
    """Strict JSON: no NaN or infinities, string keys only, and no text PostgreSQL's jsonb
    refuses (NUL, lone surrogates), so a value stored in SQLite could move to PostgreSQL."""
    if not isinstance(value, Mapping):
        raise InvalidStoreValue(f"the {what} must be a JSON object, not {type(value).__name__}")
    try:
        _check_keys(what, value)
        text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as error:
        if isinstance(error, InvalidStoreValue):
            raise
        raise InvalidStoreValue(f"the {what} is not JSON: {error}") from None
    _check_text(what, text)
    if _ESCAPED_NUL.search(text):
        raise InvalidStoreValue(f"the {what} holds a NUL character, which jsonb cannot store")
    return text


def _check_keys(what: str, value: object) -> None:
    """Refuse keys that are not strings: json.dumps would turn ``{1: x}`` into ``{"1": x}``
    silently, and the state read back would not be the state committed."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidStoreValue(f"the {what} has a key that is not a string: {key!r}")
            _check_keys(what, item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_keys(what, item)


def _check_text(what: str, text: str) -> None:
    """Text both stores can hold: valid UTF-8 (no lone surrogates) without NUL characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidStoreValue(f"the {what} holds characters that are not valid Unicode") from None
    if "\x00" in text:
        raise InvalidStoreValue(f"the {what} holds a NUL character")


def load_json(text: str | None) -> Any:
    """The object `dump_state` or `dump_record` stored (None stays None)."""
    return None if text is None else json.loads(text)


def check_reason(reason: str) -> str:
    """A dead letter's reason: a string (empty is allowed but says nothing)."""
    if not isinstance(reason, str):
        raise InvalidStoreValue(f"a dead letter's reason must be a string, got {reason!r}")
    _check_text("dead letter reason", reason)
    return reason


def assemble_status(
    checkpoints: Sequence[Checkpoint], last_runs: Sequence[RunRecord], counts: Mapping[Any, int]
) -> list[PipelineStatus]:
    """One `PipelineStatus` per (pipeline, tenant) with a checkpoint or a run, sorted."""
    by_key = {(c.pipeline, c.tenant): c for c in checkpoints}
    runs = {(r.pipeline, r.tenant): r for r in last_runs}
    return [
        PipelineStatus(key[0], key[1], runs.get(key), by_key.get(key), counts.get(key, 0))
        for key in sorted(by_key.keys() | runs.keys())
    ]


class RowDecoder:
    """The records of a store's rows, with the store's own reading of a stored time.

    Both stores select the same columns in the same order; they differ only in how a time
    comes back (SQLite: microseconds since the epoch; PostgreSQL: a timestamptz).
    """

    def __init__(self, moment: Callable[[Any], datetime]) -> None:
        self._moment = moment

    def checkpoint(self, row: Sequence[Any]) -> Checkpoint:
        """A ``pipeline, tenant, state_json, token, records, updated_at`` row."""
        pipeline, tenant, state, token, records, updated_at = row
        return Checkpoint(
            pipeline, tenant, load_json(state), token, records, self._moment(updated_at)
        )

    def run(self, row: Sequence[Any]) -> RunRecord:
        """A row of the runs table's columns, in the order both stores select them."""
        run_id, pipeline, tenant, executor, started, finished, outcome, moved, batches = row[:9]
        rejected, error = row[9:]
        return RunRecord(
            run_id=run_id,
            pipeline=pipeline,
            tenant=tenant,
            executor=executor,
            started_at=self._moment(started),
            finished_at=None if finished is None else self._moment(finished),
            outcome=outcome,
            records_moved=moved,
            batches=batches,
            rejected=rejected,
            error=error,
        )

    def dead_letter(self, row: Sequence[Any]) -> DeadLetter:
        """A ``run_id, pipeline, tenant, record_json, reason, created_at`` row."""
        run_id, pipeline, tenant, record, reason, created_at = row
        return DeadLetter(
            run_id, pipeline, tenant, load_json(record), reason, self._moment(created_at)
        )


class ClosesOnExit:
    """``with store:`` closes the store at the end of the block, as `JobStore` promises."""

    def close(self) -> None:
        """Release the store's connections (each store says how)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
