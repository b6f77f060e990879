"""What a memory is: the record shape every memory store accepts, and how a push is checked.

A memory travels through the contract as a `Record` whose data holds ``text``, ``tags`` and
``metadata``. Stores add ``created_at`` to the data and set `Record.updated_at`. Checking is
written once here so that every backend accepts and rejects exactly the same records, and
rejects them before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from integrations.base import JsonObject, PushPayload, Record, Rejection

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_TEXT_LENGTH",
    "Memory",
    "StoredMemory",
    "WriteBatch",
    "canonical_json",
    "check_push",
    "memory_problem",
]

MAX_TEXT_LENGTH: Final = 100_000
"""Characters a memory's text may hold."""

MAX_TAGS: Final = 64
"""Tags one memory may carry."""

MAX_TAG_LENGTH: Final = 128
"""Characters one tag may hold."""

MEMORY_FIELDS: Final = frozenset({"text", "tags", "metadata"})
"""The keys a pushed record's data may hold."""


def canonical_json(value: object) -> str:
    """The one JSON spelling of `value` that stores persist and compare (sorted keys, compact)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Memory:
    """A memory to store: what a pushed record says, checked."""

    id: str
    text: str
    tags: tuple[str, ...] = ()
    metadata: JsonObject = field(default_factory=dict)

    @property
    def tags_json(self) -> str:
        """The tags as stored: a JSON array in the order pushed."""
        return canonical_json(list(self.tags))

    @property
    def metadata_json(self) -> str:
        """The metadata as stored: canonical JSON, so equal metadata compares equal as text."""
        return canonical_json(self.metadata)


@dataclass(frozen=True, slots=True)
class StoredMemory:
    """A memory as a store holds it: content, times, the change sequence and deletion."""

    id: str
    text: str
    tags: tuple[str, ...]
    metadata: JsonObject
    created_at: datetime
    updated_at: datetime
    seq: int
    """Position of the memory's latest change in its tenant's change sequence."""
    deleted: bool = False

    def to_record(self) -> Record:
        """The memory as the contract returns it; a deleted memory becomes a tombstone."""
        if self.deleted:
            return Record(id=self.id, deleted=True, updated_at=self.updated_at)
        return Record(
            id=self.id,
            data={
                "text": self.text,
                "tags": list(self.tags),
                "metadata": self.metadata,
                "created_at": self.created_at.isoformat(),
            },
            updated_at=self.updated_at,
        )


@dataclass(frozen=True, slots=True)
class WriteBatch:
    """The accepted part of one push: upserts and deletions, written in one transaction."""

    upserts: tuple[Memory, ...] = ()
    deletes: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes)

    def __len__(self) -> int:
        return len(self.upserts) + len(self.deletes)


def check_push(payload: PushPayload) -> tuple[WriteBatch, tuple[str, ...], tuple[Rejection, ...]]:
    """Split `payload` into the batch to write, the accepted ids (in payload order) and rejections.

    A record is rejected, with the reason, when its data is not a memory or when its id
    already appeared earlier in the payload (a batch holds one change per memory, so the
    outcome never depends on the order a store applies them in).
    """
    upserts: list[Memory] = []
    deletes: list[str] = []
    accepted: list[str] = []
    rejected: list[Rejection] = []
    seen: set[str] = set()
    for record in payload.records:
        problem = _duplicate_problem(record.id, seen) or memory_problem(record)
        if problem is not None:
            rejected.append(Rejection(id=record.id, reason=problem))
            continue
        if record.deleted:
            deletes.append(record.id)
        else:
            upserts.append(_memory_of(record))
        accepted.append(record.id)
    return WriteBatch(tuple(upserts), tuple(deletes)), tuple(accepted), tuple(rejected)


def _duplicate_problem(record_id: str, seen: set[str]) -> str | None:
    if record_id in seen:
        return "duplicate id in this payload: a push holds one change per memory"
    seen.add(record_id)
    return None


def memory_problem(record: Record) -> str | None:
    """Why `record` is not a memory a store accepts, or None when it is one.

    A tombstone (``deleted=True``) needs only its id.
    """
    if record.deleted:
        return None
    data = record.data
    unknown = sorted(set(data) - MEMORY_FIELDS)
    if unknown:
        return f"unknown field {unknown[0]!r}: a memory holds text, tags and metadata"
    return _text_problem(data.get("text")) or _tags_problem(data) or _metadata_problem(data)


def _text_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return "text must be a string"
    if not text.strip():
        return "text must not be empty"
    if len(text) > MAX_TEXT_LENGTH:
        return f"text is longer than {MAX_TEXT_LENGTH} characters"
    if "\x00" in text:
        return "text must not contain NUL characters"
    return None


def _tags_problem(data: Mapping[str, Any]) -> str | None:
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return "tags must be a list of strings"
    if len(tags) > MAX_TAGS:
        return f"a memory carries at most {MAX_TAGS} tags"
    if len(set(tags)) != len(tags):
        return "tags must not repeat"
    for tag in tags:
        if not tag.strip() or len(tag) > MAX_TAG_LENGTH or not tag.isprintable():
            return (
                f"tag {tag[:40]!r} must be 1 to {MAX_TAG_LENGTH} printable characters, "
                "not only spaces"
            )
    return None


def _metadata_problem(data: Mapping[str, Any]) -> str | None:
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        return "metadata must be a JSON object"
    if "\x00" in canonical_json(metadata):
        return "metadata must not contain NUL characters"
    return None


def _memory_of(record: Record) -> Memory:
    data = record.data
    tags: Sequence[str] = data.get("tags", [])  # type: ignore[assignment]  # checked above
    metadata: JsonObject = data.get("metadata", {})  # type: ignore[assignment]  # checked above
    return Memory(id=record.id, text=str(data["text"]), tags=tuple(tags), metadata=metadata)
