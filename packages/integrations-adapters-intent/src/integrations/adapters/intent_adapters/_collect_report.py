"""What a collection reports: the signals, how each source did, what was left out and pushed.

Every number a caller needs to trust a collection is here, typed: a source that failed,
timed out, answered garbage or was refused is a `SourceReport` with its status, error and
time, never a missing line; a signal left out is a `RejectedSignal` with its source and the
reason; a push says which records the target accepted and which it rejected, and why.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from integrations.base import Record, Rejection

from ._signal import Signal

__all__ = [
    "CollectReport",
    "CollectedSignal",
    "PushReport",
    "RejectedSignal",
    "SourceReport",
    "SourceStatus",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceStatus(StrEnum):
    """How reading one source ended."""

    OK = "ok"
    """It answered in time; its valid signals were collected."""

    FAILED = "failed"
    """It raised an error (after the session's retries, if the error was transient)."""

    TIMED_OUT = "timed_out"
    """It did not answer before its deadline; the collection did not wait for it."""

    INVALID_ANSWER = "invalid_answer"
    """It answered something that is not a list of signals; none of it was used."""

    REFUSED = "refused"
    """Its session was not allowed to run: a policy, its config, or the module allowlist."""


class SourceReport(_Model):
    """How one source did."""

    source: str
    """The source's name in this collection (a key given, else derived, made unique)."""

    status: SourceStatus
    elapsed_seconds: float = Field(ge=0)
    """From the start of its session to its answer, failure, or deadline."""

    received: int = Field(default=0, ge=0)
    """Items the source answered."""

    collected: int = Field(default=0, ge=0)
    """Its signals in the collection: valid, and not already collected from an earlier source."""

    rejected: int = Field(default=0, ge=0)
    """Its items that are not valid signals (see `CollectReport.rejections`)."""

    duplicates: int = Field(default=0, ge=0)
    """Its valid signals dropped as exact duplicates (of its own or of an earlier source's)."""

    error_type: str | None = None
    """The error's class name, when it did not succeed."""

    error: str | None = None
    """What went wrong, when it did not succeed."""

    @property
    def ok(self) -> bool:
        """Whether the source answered in time."""
        return self.status is SourceStatus.OK


class RejectedSignal(_Model):
    """An item of a source's answer that is not a valid signal."""

    source: str
    index: int = Field(ge=0)
    """Its position in the source's answer."""

    reason: str
    """The fields and the rules they break, never the values."""


class CollectedSignal(_Model):
    """A collected signal, its id, and the source it came from."""

    id: str
    """`signal_id` of the signal: the same signal always has the same id."""

    source: str
    signal: Signal

    def to_record(self) -> Record:
        """The signal as the record pushed to an intent connector (its id, its JSON)."""
        return Record(id=self.id, data=self.signal.to_json(), updated_at=self.signal.created_at)


class PushReport(_Model):
    """What the push target did with the collected signals."""

    target: str
    batches: int = Field(ge=0)
    accepted: tuple[str, ...] = ()
    """The ids the target reported as accepted, in batch order (for a target that assigns its
    own ids, such as the Intent Engine, those are its ids)."""

    rejected: tuple[Rejection, ...] = ()
    """The signals the target refused, and those of batches that failed, each with a reason."""


class CollectReport(_Model):
    """The outcome of one collection."""

    signals: tuple[CollectedSignal, ...]
    """The valid signals, each once, in source order and then in each source's order."""

    sources: tuple[SourceReport, ...]
    """One report per source, in the order the sources were given."""

    rejections: tuple[RejectedSignal, ...] = ()
    duplicates: int = Field(default=0, ge=0)
    """Valid signals dropped as exact duplicates, over all sources."""

    push: PushReport | None = None
    """What the push target did, when the collection pushed."""

    elapsed_seconds: float = Field(ge=0)

    @property
    def failed(self) -> tuple[SourceReport, ...]:
        """The sources that did not answer usable signals in time."""
        return tuple(source for source in self.sources if not source.ok)

    def lines(self) -> list[str]:
        """A plain-text table of the sources, for logs and terminals."""
        rows = [("source", "status", "seconds", "collected", "rejected", "error")]
        for item in self.sources:
            error = "" if item.error_type is None else f"{item.error_type}: {item.error}"
            rows.append(
                (
                    item.source,
                    item.status.value,
                    f"{item.elapsed_seconds:.3f}",
                    str(item.collected),
                    str(item.rejected),
                    error,
                )
            )
        widths = [max(len(row[column]) for row in rows) for column in range(5)]
        return [
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
            + ("  " + row[5] if row[5] else "")
            for row in rows
        ]
