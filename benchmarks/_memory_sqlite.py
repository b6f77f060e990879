"""The raw sqlite3 baseline the ``memory.sqlite`` connector is measured against.

`RawClient` runs the connector's own write statements (imported, so the two cannot drift)
on a file whose schema the connector created: per push one ``BEGIN IMMEDIATE`` transaction
that reads the tenant's last change number, one ``executemany`` of the upsert (the FTS index
is kept in step by the schema's triggers, for both sides alike) and the counter update. It
skips everything else the connector does: checking records, governance, audit. Its text
query is the plain FTS5 bm25 SQL with ``LIMIT``, reading the columns the connector returns
and decoding their JSON. `connector_config` is the connector's config for the same file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from integrations.adapters.memory_adapters import canonical_json, text_words
from integrations.adapters.memory_adapters.sqlite._backend import (
    ADVANCE,
    LAST_SEQ,
    UPSERT,
    match_expression,
)
from integrations.base import Record

__all__ = ["RawClient", "connector_config"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SEARCH = """
SELECT m.id, m.text, m.tags, m.metadata, m.created_at, m.updated_at
FROM memories_fts JOIN memories m ON m.ref = memories_fts.rowid
WHERE memories_fts MATCH ? AND m.tenant = ? AND m.deleted = 0
ORDER BY bm25(memories_fts), m.created_order DESC LIMIT ?
"""


def connector_config(path: str) -> dict[str, object]:
    """The ``memory.sqlite`` config of the file at `path`."""
    return {"path": path}


class RawClient:
    """Direct sqlite3 writes and text queries on the connector's tables."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")

    def push(self, tenant: str, records: Sequence[Record]) -> None:
        """Upsert `records` in one transaction, numbering them like the connector."""
        stamp = (datetime.now(UTC) - _EPOCH) // timedelta(microseconds=1)
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(LAST_SEQ, (tenant,)).fetchone()
            last = row[0] if row is not None else 0
            db.executemany(
                UPSERT,
                [
                    (
                        tenant,
                        record.id,
                        record.data["text"],
                        canonical_json(record.data.get("tags", [])),
                        canonical_json(record.data.get("metadata", {})),
                        stamp,
                        seq,
                    )
                    for seq, record in enumerate(records, last + 1)
                ],
            )
            db.execute(ADVANCE, (tenant, last + len(records)))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def text_query(self, tenant: str, text: str, limit: int) -> list[str]:
        """The best `limit` live memories of `tenant` holding every word of `text`: their ids,
        read with the content the connector returns (text, tags, metadata, times)."""
        match = match_expression(text_words(text))
        rows = self._db.execute(_SEARCH, (match, tenant, limit)).fetchall()
        found = [(row[0], row[1], json.loads(row[2]), json.loads(row[3]), *row[4:]) for row in rows]
        return [memory[0] for memory in found]

    def close(self) -> None:
        """Close the connection."""
        self._db.close()
