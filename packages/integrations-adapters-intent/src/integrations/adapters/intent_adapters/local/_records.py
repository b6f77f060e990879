"""The records the intent store returns, built without validation.

A page holds up to thousands of records, and building each with pydantic (validated, or with
``model_construct``) costs more than decoding its signal, so a page would spend most of its
time on bookkeeping. Records are built by a `builder` (see `.._construct`), which sets what
``model_construct`` sets, checked against the installed pydantic on import.

Nothing here validates: the store returns only signals `check_push` accepted, and ids and
dates it stored itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from integrations.adapters.intent_adapters._construct import Builder, builder
from integrations.base import JsonObject, Record

__all__ = ["intent_record", "record_of", "tombstone_record"]

record_of: Final[Builder[Record]] = builder(
    Record,
    ("id", "data", "deleted", "updated_at"),
    {
        "id": "probe",
        "data": {"topic": "probe", "intent_score": 0.5},
        "deleted": False,
        "updated_at": datetime(2024, 1, 1, tzinfo=UTC),
    },
)
"""``record_of({"id": ..., "data": ..., "deleted": ..., "updated_at": ...})``: a record from
values the store made (every field given)."""


def intent_record(record_id: str, data: JsonObject, updated_at: datetime) -> Record:
    """A live intent: its signal's JSON with its score; `updated_at` is the signal's date
    (what `Intent.to_record` makes)."""
    return record_of({"id": record_id, "data": data, "deleted": False, "updated_at": updated_at})


def tombstone_record(record_id: str, deleted_at: datetime) -> Record:
    """A deleted or expired intent, as sync reports it (one per deletion: no shortcut)."""
    return Record.model_construct(id=record_id, data={}, deleted=True, updated_at=deleted_at)
