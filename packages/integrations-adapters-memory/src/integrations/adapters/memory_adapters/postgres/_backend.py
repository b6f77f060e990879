"""`PostgresBackend`: memories in PostgreSQL tables, reached through a connection pool.

Every operation is one transaction sent as one pipeline (one round trip): it first sets
``integrations.tenant`` (what the row-level security policies compare with), then runs its
statements. A write locks the tenant's counter row before anything else, so the tenant's
writers take turns until each commits: change numbers are handed out, and committed, in
order, and a sync that has read up to number N never meets a later commit numbered at or
below N. The write itself is one statement for the whole batch (arrays unnested server-side):
it compares incoming memories with the stored ones, numbers only those that change (upserts
first, then deletions), upserts them or turns them into tombstones (content cleared) and
moves the counter on.

Fetches page with keysets: newest first on the immutable creation number; with words, on
(``ts_rank``, creation number). ``ts_rank`` depends only on the memory and the query, so a
memory keeps its place while others are written; the rank travels in the cursor as the
float8 PostgreSQL computed, so the comparison is exact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import psycopg
import psycopg_pool

from integrations.adapters.memory_adapters._backend import MemoryPage
from integrations.adapters.memory_adapters._cursor import decode_cursor, encode_cursor
from integrations.adapters.memory_adapters._memory import StoredMemory, WriteBatch, canonical_json
from integrations.adapters.memory_adapters._query import MemoryFilter, MemoryQuery
from integrations.base import ConfigError, InvalidRequest, JsonObject

from ._errors import postgres_errors
from ._schema import SCHEMA_VERSION, migrate, qualified

__all__ = ["PostgresBackend", "PostgresSettings", "open_postgres"]

Row = tuple[Any, ...]

_RECENT: Final = "recent"
_RANKED: Final = "ranked"
_COLUMNS: Final = "id, text, tags, metadata_json, created_at, updated_at, seq, deleted"

APPLICATION_NAME: Final = "integrations-memory"

SET_TENANT: Final = "SELECT set_config('integrations.tenant', %s, true)"
SET_SESSION_TENANT: Final = "SELECT set_config('integrations.tenant', %s, false)"

LOCK_TENANT: Final = """
INSERT INTO {s}.tenants AS t (tenant, last_seq) VALUES (%s, 0)
ON CONFLICT (tenant) DO UPDATE SET last_seq = t.last_seq
"""

# Stored memories are looked up with scalar subqueries, which PostgreSQL runs per incoming row
# through the primary key: a join would let the planner scan all of the tenant's memories.
WRITE: Final = """
WITH base AS (
    SELECT last_seq FROM {s}.tenants WHERE tenant = %(tenant)s
), incoming AS (
    SELECT i.id, i.text, i.tags::jsonb AS tags, i.metadata_json, false AS deleted, i.ord
    FROM unnest(%(ids)s::text[], %(texts)s::text[], %(tags)s::text[], %(metadata)s::text[])
        WITH ORDINALITY AS i(id, text, tags, metadata_json, ord)
    WHERE NOT coalesce((
        SELECT NOT m.deleted AND m.text = i.text AND m.tags = i.tags::jsonb
            AND m.metadata_json = i.metadata_json
        FROM {s}.memories AS m WHERE m.tenant = %(tenant)s AND m.id = i.id
    ), false)
    UNION ALL
    SELECT d.id, '', '[]'::jsonb, '{}', true, d.ord
    FROM unnest(%(deletes)s::text[]) WITH ORDINALITY AS d(id, ord)
    WHERE (SELECT NOT m.deleted FROM {s}.memories AS m WHERE m.tenant = %(tenant)s AND m.id = d.id)
), numbered AS (
    SELECT incoming.*, row_number() OVER (ORDER BY incoming.deleted, incoming.ord) AS n
    FROM incoming
), written AS (
    INSERT INTO {s}.memories AS m (
        tenant, id, text, tags, metadata_json, created_at, updated_at, created_seq, seq, deleted
    )
    SELECT %(tenant)s, c.id, c.text, c.tags, c.metadata_json, %(now)s, %(now)s,
        b.last_seq + c.n, b.last_seq + c.n, c.deleted
    FROM numbered AS c CROSS JOIN base AS b
    ON CONFLICT (tenant, id) DO UPDATE SET
        text = EXCLUDED.text,
        tags = EXCLUDED.tags,
        metadata_json = EXCLUDED.metadata_json,
        created_at = CASE WHEN m.deleted THEN EXCLUDED.created_at ELSE m.created_at END,
        created_seq = CASE WHEN m.deleted THEN EXCLUDED.created_seq ELSE m.created_seq END,
        updated_at = EXCLUDED.updated_at,
        seq = EXCLUDED.seq,
        deleted = EXCLUDED.deleted
    RETURNING 1
)
UPDATE {s}.tenants SET last_seq = last_seq + (SELECT count(*) FROM written)
WHERE tenant = %(tenant)s AND EXISTS (SELECT 1 FROM written)
"""

CHANGES: Final = f"""
SELECT {_COLUMNS} FROM {{s}}.memories
WHERE tenant = %s AND seq > %s ORDER BY seq LIMIT %s
"""

RECENT: Final = f"""
SELECT {_COLUMNS}, created_seq FROM {{s}}.memories
WHERE tenant = %s AND NOT deleted {{where}}
ORDER BY created_seq DESC LIMIT %s
"""


# The words reach websearch_to_tsquery quoted (see `search_text`), so every word is required
# and none is read as an operator: "or" and a leading "-" would be, unquoted.
def search_text(words: Sequence[str]) -> str:
    """The websearch query requiring every word: each quoted, so none is an operator.

    The words are those `text_words` finds (letters, digits and underscores), so none holds
    a quote.
    """
    return " ".join(f'"{word}"' for word in words)


RANKED: Final = f"""
SELECT {_COLUMNS}, created_seq, ts_rank(document, q)::float8 AS rank
FROM {{s}}.memories, websearch_to_tsquery('english', %s) AS q
WHERE tenant = %s AND NOT deleted AND document @@ q {{where}}
ORDER BY rank DESC, created_seq DESC LIMIT %s
"""

_ROLE: Final = """
SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user
"""


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """What `open_postgres` needs: the DSN, the schema and the pool's bounds."""

    dsn: str = field(repr=False)
    schema: str
    min_size: int
    max_size: int
    connect_timeout: float
    row_level_security: bool = True

    @property
    def password(self) -> str | None:
        """The DSN's password, which error messages must never show."""
        password = psycopg.conninfo.conninfo_to_dict(self.dsn).get("password")
        return str(password) if password else None

    def connection_options(self) -> dict[str, Any]:
        """Options of every connection: autocommit (transactions are explicit), the timeout,
        and a name in ``pg_stat_activity`` unless the DSN gives one."""
        options: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(self.connect_timeout)),
        }
        if "application_name" not in psycopg.conninfo.conninfo_to_dict(self.dsn):
            options["application_name"] = APPLICATION_NAME
        return options


def open_postgres(settings: PostgresSettings) -> PostgresBackend:
    """Connect, bring the schema up to date, then open the pool the operations use.

    The first connection is made directly rather than by the pool, so that an unreachable
    server or a refused role raises its own error instead of a pool's timeout.
    """
    password = settings.password
    with postgres_errors(password, connecting=True):
        with psycopg.connect(settings.dsn, **settings.connection_options()) as connection:
            migrate(connection, settings.schema)
            enforce_row_security(connection, settings.schema, settings.row_level_security)
            info = _describe(connection, settings.schema)
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[Row]] = psycopg_pool.ConnectionPool(
            settings.dsn,
            min_size=settings.min_size,
            max_size=settings.max_size,
            kwargs=settings.connection_options(),
            configure=_configure,
            timeout=settings.connect_timeout,
            open=False,
            name="integrations-memory-postgres",
        )
        try:
            pool.open(wait=True, timeout=settings.connect_timeout)
        except BaseException:
            pool.close()
            raise
    return PostgresBackend(pool, settings.schema, password, info)


def _configure(connection: psycopg.Connection[Row]) -> None:
    """Times in UTC; transactions read committed, whatever the server's defaults."""
    connection.execute("SET TIME ZONE 'UTC'")
    connection.isolation_level = psycopg.IsolationLevel.READ_COMMITTED


_ROW_SECURITY_TABLES: Final = ("tenants", "memories")

_ROW_SECURITY: Final = """
SELECT bool_and(c.relrowsecurity AND c.relforcerowsecurity) FROM pg_class c
WHERE c.oid IN (to_regclass(%s), to_regclass(%s))
"""


def enforce_row_security(connection: psycopg.Connection[Row], schema: str, wanted: bool) -> None:
    """Give the schema's tables the row-level security the config asks for.

    The policies always exist (the first migration creates them); this switches whether
    they apply. Only the tables' owner may switch it: another role asking for the other
    setting gets a `ConfigError` saying so.
    """
    if _row_security_on(connection, schema) == wanted:
        return
    switch = "ENABLE" if wanted else "DISABLE"
    force = "FORCE" if wanted else "NO FORCE"
    try:
        with connection.transaction():
            for table in _ROW_SECURITY_TABLES:
                connection.execute(
                    qualified(
                        f"ALTER TABLE {{s}}.{table} {switch} ROW LEVEL SECURITY, "
                        f"{force} ROW LEVEL SECURITY",
                        schema,
                    )
                )
    except psycopg.errors.InsufficientPrivilege:
        state = "on" if not wanted else "off"
        raise ConfigError(
            f"row_level_security={wanted} but schema {schema!r} has it {state}, and only the "
            "owner of its tables may change that: use the schema's setting or its owner's role",
            (("row_level_security", f"differs from schema {schema!r}"),),
        ) from None


def _row_security_on(connection: psycopg.Connection[Row], schema: str) -> bool:
    names = [qualified(f"{{s}}.{table}", schema) for table in _ROW_SECURITY_TABLES]
    row = connection.execute(_ROW_SECURITY, names).fetchone()
    return bool(row[0]) if row is not None else False


def _describe(connection: psycopg.Connection[Row], schema: str) -> JsonObject:
    row = connection.execute(_ROLE).fetchone()
    bypasses = bool(row[0]) if row is not None else False
    enforced = _row_security_on(connection, schema)
    info = connection.info
    return {
        "backend": "postgres",
        "host": info.host,
        "port": info.port,
        "database": info.dbname,
        "user": info.user,
        "schema": schema,
        "schema_version": SCHEMA_VERSION,
        "server_version": info.server_version,
        "row_level_security": (
            "off"
            if not enforced
            else "bypassed: the role is a superuser or has BYPASSRLS"
            if bypasses
            else "enforced"
        ),
    }


class PostgresBackend:
    """A `MemoryBackend` over a psycopg connection pool (see the module's documentation)."""

    def __init__(
        self,
        pool: psycopg_pool.ConnectionPool[psycopg.Connection[Row]],
        schema: str,
        password: str | None,
        info: JsonObject,
    ) -> None:
        self._pool = pool
        self._password = password
        self._info = info
        self._lock_tenant = qualified(LOCK_TENANT, schema)
        self._write = qualified(WRITE, schema)
        self._changes = qualified(CHANGES, schema)
        self._recent = qualified(RECENT, schema)
        self._ranked = qualified(RANKED, schema)

    def __repr__(self) -> str:
        return f"PostgresBackend(schema={self._info.get('schema')!r})"

    def errors(self) -> AbstractContextManager[None]:
        """psycopg's and the pool's exceptions become the library's (never with the password)."""
        return postgres_errors(self._password)

    def describe(self) -> JsonObject:
        """Server, database, role, schema and whether row-level security applies to the role."""
        return dict(self._info)

    def write(self, tenant: str, batch: WriteBatch, now: datetime) -> None:
        """Apply `batch` in one transaction: lock the tenant's counter, then one statement."""
        upserts = batch.upserts
        parameters = {
            "tenant": tenant,
            "now": now,
            "ids": [memory.id for memory in upserts],
            "texts": [memory.text for memory in upserts],
            "tags": [memory.tags_json for memory in upserts],
            "metadata": [memory.metadata_json for memory in upserts],
            "deletes": list(batch.deletes),
        }
        with (
            self._pool.connection() as connection,
            connection.pipeline(),
            connection.transaction(),
        ):
            connection.execute(SET_TENANT, (tenant,))
            connection.execute(self._lock_tenant, (tenant,))
            connection.execute(self._write, parameters)

    def query(self, tenant: str, query: MemoryQuery) -> MemoryPage:
        """One page of live memories: ranked by ts_rank with words, newest first without."""
        where, parameters = _filter_sql(query.filter)
        if query.words:
            statement, values = self._ranked_page(tenant, query, where, parameters)
        else:
            statement, values = self._recent_page(tenant, query, where, parameters)
        rows = self._read(tenant, statement, values)
        page = rows[: query.limit]
        memories = tuple(_stored(row) for row in page)
        if len(rows) <= query.limit:
            return MemoryPage(memories)
        last = page[-1]
        if query.words:
            cursor = encode_cursor(_RANKED, query.fingerprint, rank=last[9], before=last[8])
        else:
            cursor = encode_cursor(_RECENT, query.fingerprint, before=last[8])
        return MemoryPage(memories, cursor)

    def changes(self, tenant: str, after: int, limit: int) -> tuple[StoredMemory, ...]:
        """Changes numbered after `after`, in number order, tombstones included."""
        rows = self._read(tenant, self._changes, [tenant, after, limit])
        return tuple(_stored(row) for row in rows)

    def close(self) -> None:
        """Close the pool: its connections and its worker threads."""
        self._pool.close()

    # -- helpers -----------------------------------------------------------------------------

    def _read(self, tenant: str, statement: str, values: Sequence[object]) -> list[Row]:
        """Rows of `statement` for `tenant`: one statement, so one transaction of its own.

        The tenant is set for the connection's session first (every use of a pooled
        connection sets it again before its statement): two round trips, each of a statement
        psycopg prepares once per connection, where a transaction would take four.
        """
        with self._pool.connection() as connection:
            connection.execute(SET_SESSION_TENANT, (tenant,))
            return connection.execute(statement, values).fetchall()

    def _recent_page(
        self, tenant: str, query: MemoryQuery, where: list[str], parameters: list[object]
    ) -> tuple[str, list[object]]:
        if query.cursor is not None:
            position = _position(query.cursor, query.fingerprint, _RECENT)
            where.append("AND created_seq < %s")
            parameters.append(_before(position))
        statement = self._recent.replace("{where}", " ".join(where))
        return statement, [tenant, *parameters, query.limit + 1]

    def _ranked_page(
        self, tenant: str, query: MemoryQuery, where: list[str], parameters: list[object]
    ) -> tuple[str, list[object]]:
        if query.cursor is not None:
            position = _position(query.cursor, query.fingerprint, _RANKED)
            where.append("AND (ts_rank(document, q)::float8, created_seq) < (%s::float8, %s)")
            parameters.extend((_rank(position), _before(position)))
        statement = self._ranked.replace("{where}", " ".join(where))
        return statement, [search_text(query.words), tenant, *parameters, query.limit + 1]


def _filter_sql(memory_filter: MemoryFilter) -> tuple[list[str], list[object]]:
    """SQL conditions agreeing with `MemoryFilter.matches`, and their parameters.

    JSONB equality compares numbers by value and never equates a number, a string and a
    boolean, which is exactly `json_equal`.
    """
    where: list[str] = []
    parameters: list[object] = []
    if memory_filter.tags:
        where.append("AND tags @> %s::jsonb")
        parameters.append(canonical_json(list(memory_filter.tags)))
    for key, value in memory_filter.metadata:
        where.append("AND metadata -> %s = %s::jsonb")
        parameters.extend((key, canonical_json(value)))
    for column, operator, moment in (
        ("created_at", ">", memory_filter.created_after),
        ("created_at", "<", memory_filter.created_before),
        ("updated_at", ">", memory_filter.updated_after),
        ("updated_at", "<", memory_filter.updated_before),
    ):
        if moment is not None:
            where.append(f"AND {column} {operator} %s")
            parameters.append(moment)
    return where, parameters


def _position(cursor: str, fingerprint: str, kind: str) -> dict[str, Any]:
    return decode_cursor(cursor, fingerprint=fingerprint, kinds=frozenset({kind}))[1]


def _before(position: dict[str, Any]) -> int:
    before = position.get("before")
    if not isinstance(before, int) or isinstance(before, bool) or before < 0:
        raise InvalidRequest("the cursor is damaged: it names no position")
    return before


def _rank(position: dict[str, Any]) -> float:
    rank = position.get("rank")
    if not isinstance(rank, (int, float)) or isinstance(rank, bool) or not math.isfinite(rank):
        raise InvalidRequest("the cursor is damaged: it names no rank")
    return float(rank)


def _stored(row: Row) -> StoredMemory:
    return StoredMemory(
        id=row[0],
        text=row[1],
        tags=tuple(row[2]),
        metadata=json.loads(row[3]),
        created_at=row[4],
        updated_at=row[5],
        seq=row[6],
        deleted=row[7],
    )
