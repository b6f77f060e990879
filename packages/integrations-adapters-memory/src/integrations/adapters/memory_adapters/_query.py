"""What a fetch asks of a memory store: text, filters, a page size and a cursor, checked once.

Filters (`FetchQuery.filters`) are a JSON object with these keys, all optional and combined
with AND:

- ``tags``: a list of tags the memory must all carry;
- ``metadata``: an object of top-level keys whose values must equal the memory's metadata
  values (strings, numbers, booleans or null; ``1``, ``"1"`` and ``true`` are all different);
- ``created_after``, ``created_before``, ``updated_after``, ``updated_before``: ISO 8601 times
  with a UTC offset, compared strictly.

Text (`FetchQuery.text`) is split into words; a memory matches when it holds every word
(each backend stems words its own way) and results are ranked by relevance. Without text,
results are the newest memories first. Unknown filter keys and malformed values raise
`InvalidRequest`, never a silently wider or narrower answer.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from integrations.base import FetchQuery, InvalidRequest, JsonObject

from ._memory import StoredMemory, canonical_json

__all__ = [
    "FILTER_KEYS",
    "NO_FILTER",
    "JsonScalar",
    "MemoryFilter",
    "MemoryQuery",
    "json_equal",
    "parse_query",
    "text_words",
]

JsonScalar = str | int | float | bool | None
"""A metadata value a filter can compare for equality."""

TIME_KEYS: Final = ("created_after", "created_before", "updated_after", "updated_before")
FILTER_KEYS: Final = frozenset({"tags", "metadata", *TIME_KEYS})
MAX_WORDS: Final = 32
"""Words a text query may hold."""

_WORD = re.compile(r"\w+")


def text_words(text: str) -> tuple[str, ...]:
    """The words of a text query, lower-cased, in order, without repeats."""
    return tuple(dict.fromkeys(word.lower() for word in _WORD.findall(text)))


def json_equal(left: object, right: object) -> bool:
    """JSON equality: ``true`` is not ``1`` and ``1`` is not ``"1"``, but ``1`` is ``1.0``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    return type(left) is type(right) and left == right


@dataclass(frozen=True, slots=True)
class MemoryFilter:
    """The filters of a fetch, checked; `matches` is the reference every backend must agree with."""

    tags: tuple[str, ...] = ()
    metadata: tuple[tuple[str, JsonScalar], ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None

    def matches(self, memory: StoredMemory) -> bool:
        """Whether `memory` passes every filter (a deleted memory never does)."""
        return not memory.deleted and self.admits(
            memory.tags, memory.metadata, memory.created_at, memory.updated_at
        )

    def admits(
        self,
        tags: Sequence[str],
        metadata: JsonObject,
        created_at: datetime,
        updated_at: datetime,
    ) -> bool:
        """Whether a live memory with these parts passes every filter (what `matches` checks
        of a memory, for a backend that reads the parts without building one)."""
        if not set(self.tags) <= set(tags):
            return False
        for key, value in self.metadata:
            if key not in metadata or not json_equal(metadata[key], value):
                return False
        return _within(created_at, self.created_after, self.created_before) and _within(
            updated_at, self.updated_after, self.updated_before
        )


def _within(moment: datetime, after: datetime | None, before: datetime | None) -> bool:
    return (after is None or moment > after) and (before is None or moment < before)


@dataclass(frozen=True, slots=True)
class MemoryQuery:
    """A fetch, checked: the words to search (none for newest-first), filters, page and cursor."""

    words: tuple[str, ...]
    filter: MemoryFilter
    limit: int
    cursor: str | None
    fingerprint: str
    """Identifies the question (tenant, words and filters, not the page): a cursor is bound
    to it."""

    @property
    def text(self) -> str:
        """The words joined by spaces: what a backend's text search is given."""
        return " ".join(self.words)


def parse_query(query: FetchQuery, *, max_limit: int, scope: str = "") -> MemoryQuery:
    """Check `query` and turn it into a `MemoryQuery`; anything malformed is `InvalidRequest`.

    `scope` (the tenant) is part of the fingerprint: a cursor issued to one tenant is refused
    when another offers it, since its positions mean nothing in another tenant's memories.
    """
    words: tuple[str, ...] = ()
    if query.text is not None and query.text.strip():
        words = text_words(query.text)
        if not words:
            raise InvalidRequest("the text query holds no words to search for")
        if len(words) > MAX_WORDS:
            raise InvalidRequest(f"a text query holds at most {MAX_WORDS} distinct words")
    memory_filter = parse_filters(query.filters) if query.filters else NO_FILTER
    try:
        question = canonical_json([scope, list(words), query.filters]).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        raise InvalidRequest("the query holds a lone surrogate or a non-finite number") from None
    digest = hashlib.sha256(question).hexdigest()
    return MemoryQuery(
        words=words,
        filter=memory_filter,
        limit=min(query.limit, max_limit),
        cursor=query.cursor,
        fingerprint=digest[:16],
    )


NO_FILTER: Final = MemoryFilter()
"""The filter of a fetch without filters (immutable, so every such fetch shares it)."""


def parse_filters(filters: JsonObject) -> MemoryFilter:
    """Check a fetch's filters (see the module's documentation)."""
    unknown = sorted(set(filters) - FILTER_KEYS)
    if unknown:
        raise InvalidRequest(
            f"unknown filter {unknown[0]!r}; memory stores filter on "
            + ", ".join(sorted(FILTER_KEYS))
        )
    times = {key: _time_filter(key, filters[key]) for key in TIME_KEYS if key in filters}
    return MemoryFilter(
        tags=_tags_filter(filters.get("tags", [])),
        metadata=_metadata_filter(filters.get("metadata", {})),
        **times,
    )


def _tags_filter(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(tag, str) and tag for tag in value):
        raise InvalidRequest("filter 'tags' must be a list of non-empty strings")
    return tuple(dict.fromkeys(value))


def _metadata_filter(value: object) -> tuple[tuple[str, JsonScalar], ...]:
    if not isinstance(value, dict):
        raise InvalidRequest("filter 'metadata' must be an object of keys and values")
    pairs: list[tuple[str, JsonScalar]] = []
    for key, wanted in sorted(value.items()):
        if not isinstance(wanted, (str, int, float, bool)) and wanted is not None:
            raise InvalidRequest(
                f"filter 'metadata.{key}' must be a string, number, boolean or null"
            )
        if isinstance(wanted, float) and not math.isfinite(wanted):
            raise InvalidRequest(f"filter 'metadata.{key}' must be a finite number")
        pairs.append((key, wanted))
    return tuple(pairs)


def _time_filter(key: str, value: object) -> datetime:
    if not isinstance(value, str):
        raise InvalidRequest(f"filter {key!r} must be an ISO 8601 time string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"filter {key!r} is not an ISO 8601 time: {value[:40]!r}") from None
    if moment.tzinfo is None:
        raise InvalidRequest(f"filter {key!r} needs a UTC offset (for example +00:00 or Z)")
    return moment
