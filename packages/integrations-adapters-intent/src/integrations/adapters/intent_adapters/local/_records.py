"""The records the intent store returns, built without validation.

A page holds up to thousands of records, and pydantic's `Record.model_construct` costs three
times what decoding a signal does, so a page built with it would spend most of its time on
bookkeeping. The store builds records the way ``model_construct`` does in its last step (the
field values, the set of fields given, no extra and no private values) without its generic
per-field loop. Whether that still builds exactly what ``model_construct`` builds is checked
once, on import, against the installed pydantic: if a release builds models differently, the
store uses ``model_construct`` itself and is only slower.

Nothing here validates: the store returns only signals `check_push` accepted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from integrations.base import JsonObject, Record

__all__ = ["intent_record", "tombstone_record"]

_FIELDS: Final = frozenset({"id", "data", "deleted", "updated_at"})
_new: Final = object.__new__
_set: Final = object.__setattr__


def _direct(record_id: str, data: JsonObject, updated_at: datetime) -> Record:
    record = _new(Record)
    values = {"id": record_id, "data": data, "deleted": False, "updated_at": updated_at}
    _set(record, "__dict__", values)
    _set(record, "__pydantic_fields_set__", set(_FIELDS))
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
    return record


def _constructed(record_id: str, data: JsonObject, updated_at: datetime) -> Record:
    return Record.model_construct(id=record_id, data=data, deleted=False, updated_at=updated_at)


def _state(record: Record) -> tuple[Any, ...]:
    return (
        type(record),
        vars(record),
        record.model_fields_set,
        record.model_extra,
        getattr(record, "__pydantic_private__", "absent"),
        record.model_dump(mode="json"),
    )


def _builder() -> Callable[[str, JsonObject, datetime], Record]:
    """`_direct` when it builds what ``model_construct`` builds here, else ``model_construct``."""
    if set(Record.model_fields) != _FIELDS or Record.__private_attributes__:
        return _constructed
    data: JsonObject = {"topic": "probe", "intent_score": 0.5}
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    try:
        same = _state(_direct("probe", data, moment)) == _state(_constructed("probe", data, moment))
    except Exception:  # any difference in how models are built means: do not take the shortcut
        return _constructed
    return _direct if same else _constructed


intent_record: Final = _builder()
"""``intent_record(id, data, created_at)``: a live intent, its signal's JSON with its score;
`updated_at` is the signal's date (what `Intent.to_record` makes)."""


def tombstone_record(record_id: str, deleted_at: datetime) -> Record:
    """A deleted or expired intent, as sync reports it (one per deletion: no shortcut)."""
    return Record.model_construct(id=record_id, data={}, deleted=True, updated_at=deleted_at)
