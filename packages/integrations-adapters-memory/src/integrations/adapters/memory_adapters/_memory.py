"""What a memory is: the record shape every memory store accepts, and how a push is checked.

A memory travels through the contract as a `Record` whose data holds ``text``, ``tags`` and
``metadata``. Stores add ``created_at`` to the data and set `Record.updated_at`. Checking is
written once here so that every backend accepts and rejects exactly the same records, and
rejects them before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, cast

from pydantic import BaseModel

from integrations.base import JsonObject, PushPayload, Record, Rejection, format_utc

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
    "memory_record",
]

MAX_TEXT_LENGTH: Final = 100_000
"""Characters a memory's text may hold."""

MAX_TAGS: Final = 64
"""Tags one memory may carry."""

MAX_TAG_LENGTH: Final = 128
"""Characters one tag may hold."""

MEMORY_FIELDS: Final = frozenset({"text", "tags", "metadata"})
"""The keys a pushed record's data may hold."""


_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: object) -> str:
    """The one JSON spelling of `value` that stores persist and compare (sorted keys, compact).

    NaN and infinities are refused (`ValueError`): JSON has no spelling for them, and every
    backend's JSON parser would reject what Python writes for them.
    """
    return _ENCODER.encode(value)


@dataclass(frozen=True, slots=True)
class Memory:
    """A memory to store: what a pushed record says, checked, with its stored JSON spellings.

    The JSON is computed once, while the record is checked, because every backend writes and
    compares exactly these strings.
    """

    id: str
    text: str
    tags: tuple[str, ...]
    metadata: JsonObject
    tags_json: str
    """The tags as stored: a JSON array in the order pushed."""
    metadata_json: str
    """The metadata as stored: canonical JSON, so equal metadata compares equal as text."""

    @classmethod
    def of(
        cls, id: str, text: str, tags: Sequence[str] = (), metadata: JsonObject | None = None
    ) -> Memory:
        """A memory from its parts (assumed valid: `check_push` is what checks records)."""
        metadata = {} if metadata is None else metadata
        return cls(
            id, text, tuple(tags), metadata, _ENCODER.encode(list(tags)), canonical_json(metadata)
        )


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
            return Record.model_construct(
                id=self.id, data={}, deleted=True, updated_at=self.updated_at
            )
        return memory_record(
            self.id,
            self.text,
            self.tags,
            self.metadata,
            format_utc(self.created_at),
            self.updated_at,
        )


def memory_record(
    id: str,
    text: str,
    tags: Sequence[str],
    metadata: JsonObject,
    created_at: str,
    updated_at: datetime,
) -> Record:
    """A live memory as the contract returns it, from its parts as a store read them.

    Built without validation: a store returns only what `check_push` accepted, and fetches
    return many records. `created_at` is already in `format_utc`'s spelling, so a store
    that keeps that string hands it over as it is.
    """
    data: JsonObject = {
        "text": text,
        "tags": list(tags),
        "metadata": metadata,
        "created_at": created_at,
    }
    if not _RECORD_LAYOUT_KNOWN:
        return Record.model_construct(id=id, data=data, deleted=False, updated_at=updated_at)
    record = _new_record(Record)
    _set_slot(
        record, "__dict__", {"id": id, "data": data, "deleted": False, "updated_at": updated_at}
    )
    _set_slot(record, "__pydantic_fields_set__", set(_RECORD_FIELDS))
    _set_slot(record, "__pydantic_extra__", None)
    _set_slot(record, "__pydantic_private__", None)
    return record


_RECORD_FIELDS: Final = frozenset({"id", "data", "deleted", "updated_at"})
_new_record: Final = Record.__new__
_set_slot: Final = object.__setattr__


def _record_layout_known() -> bool:
    """Whether a `Record` is what `memory_record` assembles: pydantic's four slots (the
    field values, the set fields, no extra, no private values) and nothing run after
    construction. Then it sets them itself, at a third of `model_construct`'s cost (a
    fetch builds a record per memory); a pydantic that lays models out otherwise gets
    `model_construct`."""
    fields = Record.__pydantic_fields__
    return (
        set(BaseModel.__slots__)
        == {"__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__"}
        and set(fields) == _RECORD_FIELDS
        and all(f.alias is None and f.validation_alias is None for f in fields.values())
        and Record.model_config.get("extra") != "allow"
        and not Record.__private_attributes__
        and not Record.__pydantic_post_init__
        and not Record.__pydantic_root_model__
    )


_RECORD_LAYOUT_KNOWN: Final = _record_layout_known()


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
        outcome = _duplicate_problem(record.id, seen) or _checked(record)
        if isinstance(outcome, str):
            rejected.append(Rejection(id=record.id, reason=outcome))
            continue
        if outcome is None:
            deletes.append(record.id)
        else:
            upserts.append(outcome)
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
    outcome = _checked(record)
    return outcome if isinstance(outcome, str) else None


def _checked(record: Record) -> Memory | str | None:
    """The memory `record` holds, None for a tombstone, or why it is no memory."""
    if record.deleted:
        return None
    data = record.data
    if not data.keys() <= MEMORY_FIELDS:
        unknown = sorted(set(data) - MEMORY_FIELDS)
        return f"unknown field {unknown[0]!r}: a memory holds text, tags and metadata"
    text, tags, metadata = data.get("text"), data.get("tags", []), data.get("metadata", {})
    problem = _text_problem(text) or _tags_problem(tags)
    if problem is not None:
        return problem
    metadata_json = _metadata_json(metadata)
    if not isinstance(metadata, dict) or metadata_json is None:
        return _metadata_problem(metadata)
    tag_list = cast(list[str], tags)  # _tags_problem found a list of strings
    return Memory(
        record.id,
        cast(str, text),  # _text_problem found a string
        tuple(tag_list),
        metadata,
        _ENCODER.encode(tag_list),
        metadata_json,
    )


def _metadata_json(metadata: object) -> str | None:
    """The stored spelling of valid metadata, or None when `_metadata_problem` has a reason."""
    if not isinstance(metadata, dict):
        return None
    try:
        spelled = canonical_json(metadata)
    except ValueError:
        return None
    if ("\\u0000" in spelled and _holds_nul(metadata)) or not _is_utf8(spelled):
        return None
    return spelled


def _text_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return "text must be a string"
    if not text.strip():
        return "text must not be empty"
    if len(text) > MAX_TEXT_LENGTH:
        return f"text is longer than {MAX_TEXT_LENGTH} characters"
    if "\x00" in text:
        return "text must not contain NUL characters"
    if not _is_utf8(text):
        return "text must be valid Unicode (it holds a lone surrogate)"
    return None


def _is_utf8(text: str) -> bool:
    """Whether `text` can be stored as UTF-8 (a lone surrogate cannot)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _tags_problem(tags: object) -> str | None:
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        return "tags must be a list of strings"
    if len(tags) > MAX_TAGS:
        return f"a memory carries at most {MAX_TAGS} tags"
    if len(set(tags)) != len(tags):
        return "tags must not repeat"
    for tag in tags:
        if (
            not tag.strip()
            or len(tag) > MAX_TAG_LENGTH
            or not tag.isprintable()
            or not _is_utf8(tag)
        ):
            return (
                f"tag {tag[:40]!r} must be 1 to {MAX_TAG_LENGTH} printable characters, "
                "not only spaces"
            )
    return None


def _metadata_problem(metadata: object) -> str:
    if not isinstance(metadata, dict):
        return "metadata must be a JSON object"
    try:
        spelled = canonical_json(metadata)
    except ValueError:
        return "metadata numbers must be finite (JSON has no NaN or infinity)"
    if _holds_nul(metadata):
        return "metadata must not contain NUL characters"
    if not _is_utf8(spelled):
        return "metadata must be valid Unicode (it holds a lone surrogate)"
    return "metadata is not valid JSON"


def _holds_nul(value: object) -> bool:
    """Whether a NUL character hides in any key or string of a JSON value."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
