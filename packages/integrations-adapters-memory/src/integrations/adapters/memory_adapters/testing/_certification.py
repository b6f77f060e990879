"""`MemoryStoreCertification`: the certification kit with records every memory store accepts.

The kit's own sample records carry arbitrary data; a memory store accepts only memories
(text, tags, metadata). This subclass of `ConnectorCertification` supplies memories and the
queries that find them, so a memory connector's certification module only names the
connector and its config. Third-party memory stores certify with it the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from integrations.base import FetchQuery, Record
from integrations.base.testing import ConnectorCertification

__all__ = ["MemoryStoreCertification"]


class MemoryStoreCertification(ConnectorCertification):
    """The standard checks, fed with memories; subclasses set the connector and its config."""

    supports_text_search = True
    supports_tombstones = True
    push_is_idempotent = True

    def sample_records(self, count: int) -> list[Record]:
        """`count` new memories of one batch, each holding a word no other memory holds."""
        batch = uuid.uuid4().hex[:10]
        return [
            Record(
                id=f"cert-{batch}-{index:03d}",
                data={
                    "text": f"Certification memory {index} labelled cert{batch}x{index:03d}",
                    "tags": ["certification", f"batch-{batch}"],
                    "metadata": {"batch": batch, "n": index},
                },
            )
            for index in range(count)
        ]

    def updated_record(self, record: Record) -> Record:
        """`record` with more text: an update every memory store stores as a change."""
        return record.model_copy(
            update={"data": {**record.data, "text": f"{record.data['text']} (updated)"}}
        )

    def search_text(self, record: Record) -> str:
        """The word only `record` holds."""
        batch, index = record.id.split("-")[1:]
        return f"cert{batch}x{index}"

    def sample_queries(self, records: Sequence[Record]) -> list[FetchQuery]:
        """The batch by tag and by metadata: each returns exactly the batch's memories."""
        batch = records[0].id.split("-")[1]
        return [
            FetchQuery(filters={"tags": [f"batch-{batch}"]}),
            FetchQuery(filters={"metadata": {"batch": batch}}),
            FetchQuery(filters={"tags": ["certification"], "metadata": {"batch": batch}}),
        ]
