"""The certification kit with intent signals, shared by every intent connector's subclass.

The kit's own sample records carry arbitrary data; intent connectors accept only signals.
`IntentCertification` supplies signals (one topic per batch, so a topic filter finds exactly
the batch) and the queries that find them; a connector's subclass names the connector and
builds its config. Third-party intent connectors certify with it the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from integrations.base import FetchQuery, Record
from integrations.base.testing import ConnectorCertification

__all__ = ["IntentCertification"]


class IntentCertification(ConnectorCertification):
    """The standard checks, fed with intent signals; subclasses set the connector and config."""

    def sample_records(self, count: int) -> list[Record]:
        """`count` signals of one batch, on a topic no other batch uses."""
        batch = uuid.uuid4().hex[:10]
        return [
            Record(
                id=f"cert-{batch}-{index:03d}",
                data={
                    "source": "certification",
                    "topic": f"certification topic {batch}",
                    "momentum": ("surging", "rising", "steady")[index % 3],
                    "confidence": round(0.5 + (index % 5) / 10, 2),
                    "authenticity": {"human_source_pct": float(60 + index % 40)},  # as returned
                    "streak_days": index % 20,
                    "batch": batch,
                },
            )
            for index in range(count)
        ]

    def updated_record(self, record: Record) -> Record:
        """`record` with a higher confidence: a change every intent store keeps."""
        return record.model_copy(update={"data": {**record.data, "confidence": 0.99}})

    def sample_queries(self, records: Sequence[Record]) -> list[FetchQuery]:
        """The batch by topic (in another case), and by topic and source."""
        topic = str(records[0].data["topic"])
        return [
            FetchQuery(filters={"topic": topic}),
            FetchQuery(filters={"topic": topic.upper()}),
            FetchQuery(filters={"topic": topic, "source": "certification"}),
        ]

    def probe_query(self) -> FetchQuery:
        """A ranked fetch of one intent."""
        return FetchQuery(limit=1)
