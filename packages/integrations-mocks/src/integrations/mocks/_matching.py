"""How a fetch query selects and orders records: JSON equality, text search, newest first."""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import JsonValue

from integrations.base import FetchQuery, JsonObject, Record

__all__ = ["data_equal", "json_equal", "matches", "order_key"]


def json_equal(left: JsonValue, right: JsonValue) -> bool:
    """Equality as JSON sees it: `true` is not `1`, but `1` is `1.0`.

    Python's `==` treats `True == 1`, which would let a filter on a boolean match a number
    and make an upsert of `{"n": 1}` over `{"n": true}` look like no change.
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    return type(left) is type(right) and left == right


def data_equal(left: JsonObject, right: JsonObject) -> bool:
    """Whether two records' data are the same JSON object."""
    return json_equal(left, right)


def _searchable_text(data: JsonObject) -> str:
    return json.dumps(data, sort_keys=True, ensure_ascii=False).casefold()


def matches(record: Record, query: FetchQuery) -> bool:
    """Whether `record` satisfies the text and the filters of `query`.

    Text is a case-insensitive substring of the record data's JSON; each filter is an equality
    on a top-level data key (a missing key never matches).
    """
    for key, expected in query.filters.items():
        if key not in record.data or not json_equal(record.data[key], expected):
            return False
    return query.text is None or query.text.casefold() in _searchable_text(record.data)


def order_key(record: Record) -> tuple[datetime, str]:
    """Sort key of the newest-first order (applied in reverse): updated_at, then id."""
    if record.updated_at is None:
        raise ValueError("stored records always carry updated_at")
    return record.updated_at, record.id
