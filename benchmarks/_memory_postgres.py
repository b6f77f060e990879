"""The raw psycopg baseline the ``memory.postgres`` connector is measured against.

`RawClient` writes the same rows into the same schema the connector uses (the schema must
exist: open a connector session on it first) with none of the connector's work: no
comparison with stored memories (it assumes it is the only writer and that every record is
new), no words for the connector's text index, one ``executemany`` per push (pipelined by
psycopg; ``COPY`` is refused on tables under row-level security). It keeps the text index a
hand-written PostgreSQL store would keep instead: a GIN index of ``document``, which it adds
to the schema it writes to, so both sides of the push comparison keep their memories
searchable. Its text search is the plain one: ``document @@ query`` ranked by ``ts_rank``,
which needs that GIN index and row security off to be fast (see `unsecured_copy`).
`connector_config` is the connector's config for the same database and schema.
`unsecured_copy` copies a store into a schema without row security, for the raw client's
fastest text queries.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from integrations.adapters.memory_adapters import canonical_json, text_words
from integrations.adapters.memory_adapters.postgres._backend import search_text
from integrations.base import AuthContext, Record, registry

__all__ = ["RawClient", "connector_config", "unsecured_copy", "vacuum_analyze"]

_GIN_INDEX = (
    "CREATE INDEX IF NOT EXISTS memories_document_gin ON {schema}.memories USING gin (document)"
)
"""The raw client's text index (one name, so the unsecured copy's index is not doubled)."""


def connector_config(dsn: str, schema: str) -> dict[str, object]:
    """The ``memory.postgres`` config writing to `schema` of the database at `dsn`."""
    return {"dsn": dsn, "schema_name": schema}


class RawClient:
    """Direct psycopg writes and text queries on the connector's tables."""

    def __init__(self, dsn: str, schema: str) -> None:
        self._connection = psycopg.connect(dsn, autocommit=True)
        name = sql.Identifier(schema).as_string()
        self._set_tenant = "SELECT set_config('integrations.tenant', %s, true)"
        self._lock = (
            f"INSERT INTO {name}.tenants AS t (tenant, last_seq) VALUES (%s, 0) "
            "ON CONFLICT (tenant) DO UPDATE SET last_seq = t.last_seq RETURNING last_seq"
        )
        self._advance = f"UPDATE {name}.tenants SET last_seq = %s WHERE tenant = %s"
        self._insert = (
            f"INSERT INTO {name}.memories (tenant, id, text, tags, metadata_json, created_at, "
            "updated_at, created_seq, seq, deleted) "
            "VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, false)"
        )
        self._search = (
            "SELECT id, text, tags, metadata_json, created_at, updated_at "
            f"FROM {name}.memories, websearch_to_tsquery('english', %s) AS q "
            "WHERE tenant = %s AND NOT deleted AND document @@ q "
            "ORDER BY ts_rank(document, q) DESC, created_seq DESC LIMIT %s"
        )

        self._connection.execute(_GIN_INDEX.format(schema=name))

    def push(self, tenant: str, records: Sequence[Record]) -> None:
        """Insert `records` (all new) in one transaction, numbering them like the connector."""
        now = datetime.now(UTC)
        with self._connection.transaction():
            self._connection.execute(self._set_tenant, (tenant,))
            row = self._connection.execute(self._lock, (tenant,)).fetchone()
            last: int = row[0] if row is not None else 0
            rows = [
                (
                    tenant,
                    record.id,
                    _data(record)["text"],
                    canonical_json(_data(record).get("tags", [])),
                    canonical_json(_data(record).get("metadata", {})),
                    now,
                    now,
                    number,
                    number,
                )
                for number, record in enumerate(records, start=last + 1)
            ]
            self._connection.cursor().executemany(self._insert, rows)
            self._connection.execute(self._advance, (last + len(records), tenant))

    def text_query(self, tenant: str, text: str, limit: int) -> list[str]:
        """The best `limit` live memories of `tenant` holding every word of `text`: their ids,
        read with the content the connector returns (text, tags, metadata, times)."""
        with self._connection.transaction():
            self._connection.execute(self._set_tenant, (tenant,))
            words = search_text(text_words(text))
            rows = self._connection.execute(self._search, (words, tenant, limit)).fetchall()
        found = [(row[0], row[1], row[2], json.loads(row[3]), *row[4:]) for row in rows]
        return [memory[0] for memory in found]

    def close(self) -> None:
        """Close the connection."""
        self._connection.close()


def _data(record: Record) -> dict[str, Any]:
    return record.data


def vacuum_analyze(dsn: str, schema: str) -> None:
    """What autovacuum does after a bulk load: planner statistics, GIN pending list flushed."""
    with psycopg.connect(dsn, autocommit=True) as connection:
        for table in ("memories", "memory_postings"):
            connection.execute(
                sql.SQL("VACUUM ANALYZE {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )


def unsecured_copy(dsn: str, schema: str, tenant: str) -> str:
    """A new schema holding `tenant`'s store in `schema`, with row security off; its name.

    The connector creates the copy's tables (with the setting off), the rows are copied, the
    memories get the GIN index of their text the raw client's search uses (the fastest
    plain query), and the copy gets its VACUUM ANALYZE.
    """
    copy = f"{schema}_unsecured"
    config = {**connector_config(dsn, copy), "row_level_security": False}
    with registry.open(
        "memory.postgres", config=config, context=AuthContext(tenant=tenant, actor="benchmark")
    ):
        pass
    source, target = sql.Identifier(schema), sql.Identifier(copy)
    with psycopg.connect(dsn) as connection, connection.transaction():
        connection.execute("SELECT set_config('integrations.tenant', %s, true)", (tenant,))
        for table, columns in _COPIED:
            names = sql.SQL(", ").join(map(sql.Identifier, columns))
            connection.execute(
                sql.SQL("INSERT INTO {}.{} ({}) SELECT {} FROM {}.{}").format(
                    target, sql.Identifier(table), names, names, source, sql.Identifier(table)
                )
            )
        connection.execute(
            sql.SQL(
                "CREATE INDEX memories_document_gin ON {}.memories USING gin (document)"
            ).format(target)
        )
    vacuum_analyze(dsn, copy)
    return copy


_COPIED = (
    ("tenants", ("tenant", "last_seq", "horizon")),
    (
        "memories",
        (
            "tenant",
            "id",
            "text",
            "tags",
            "metadata_json",
            "created_at",
            "updated_at",
            "created_seq",
            "seq",
            "deleted",
        ),
    ),
    ("memory_postings", ("tenant", "word", "rank", "first_seq", "last_seq", "seqs")),
)
