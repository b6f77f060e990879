"""`PostgresBackend`: memories in PostgreSQL tables, reached through a connection pool.

Every operation is one transaction sent as one pipeline (one round trip): it first sets
``integrations.tenant`` (what the row-level security policies compare with), then runs its
statements. A write locks the tenant's counter row before anything else, so the tenant's
writers take turns until each commits: change numbers are handed out, and committed, in
order, and a sync that has read up to number N never meets a later commit numbered at or
below N. The write itself is one statement for the whole batch (arrays unnested server-side):
it compares incoming memories with the stored ones, numbers only those that change (upserts
first, then deletions), inserts or updates them (deletions become tombstones, content
cleared), moves the entries of the memories whose words change in ``memory_postings`` and
moves the counter on.

The text index is ``memory_postings``: one row per tenant, word, rank and *run*, the run
holding the creation numbers of live memories whose text has that word with that rank
(``ts_rank`` of a query of that word alone), in descending order, between the row's
``first_seq`` and ``last_seq``. The runs of one word and rank never overlap, so reading them
by descending ``first_seq`` and each one's numbers in order lists the word's memories in
(rank, creation number) order. A batch's new memories take numbers above every stored one,
so their entries go into new runs (at most `RUN` numbers each); an entry of an older memory
goes into the run whose range holds its number, or into a run of its own when none does; an
entry leaves its run, and a run left empty goes. Text queries start from this table, whose
primary key row security lets them use before its policy (equality and order on text and
numbers are leakproof; the text match is not). A query of one lexeme reads that word's runs
best first and stops at the end of the page. A longer query intersects its words' entries,
then reads those memories, matches them exactly (``@@``) and ranks them.

Compaction deletes a tenant's old tombstones and raises its horizon in one transaction that
holds the tenant's counter row, as writes do; `changes` reads the horizon and the changes in
one statement, so one snapshot: it sees a compaction whole or not at all.

Fetches page with keysets: newest first on the immutable creation number; with words, on
(``ts_rank``, creation number). ``ts_rank`` depends only on the memory and the query, so a
memory keeps its place while others are written; the rank travels in the cursor as the
float8 PostgreSQL computed, so the comparison is exact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import psycopg
import psycopg_pool

from integrations.adapters.memory_adapters._backend import MemoryPage, check_horizon
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
LIST_TENANTS: Final = "SELECT set_config('integrations.all_tenants', 'list', true)"
TENANTS: Final = "SELECT tenant FROM {s}.tenants ORDER BY tenant"

LOCK_TENANT: Final = """
INSERT INTO {s}.tenants AS t (tenant, last_seq) VALUES (%s, 0)
ON CONFLICT (tenant) DO UPDATE SET last_seq = t.last_seq
"""

RUN: Final = 64
"""Creation numbers a new run of `memory_postings` holds at most. 64 numbers (about 0.5 kB)
keep a row well below the 2 kB past which PostgreSQL compresses values or moves them out of
line, so moving one entry rewrites little. A run grows past 64 only when text edits bring
entries into its range, and never past the numbers its range spans. (Migration 4 cuts the
old rows into runs of the same size.)"""

# Each incoming memory's stored row is looked up once, in a lateral subquery with LIMIT 1 (so
# PostgreSQL runs it per incoming row through the primary key: a plain join would let the
# planner scan all of the tenant's memories). Memories not stored yet are inserted, stored ones
# updated through the row's address found by that lookup: the tenant's counter row, locked
# before this statement, keeps every other writer of the tenant (compaction included) out
# until commit, so the lookup stays true for the whole statement and no insert can conflict.
#
# Only memories whose words change move entries: new or revived ones, new text, deletions.
# An edit of a live memory's tags or metadata keeps its entries, which hold nothing else (the
# ranks come from its text alone, and its creation number stays). Entries are (word, rank of
# that word alone, creation number). Those of this batch's new numbers (above `base`) go into
# new runs of at most `RUN` numbers. Those of older numbers (text edits, deletions) find the
# run whose range holds their number (the run with the greatest first number at or below it,
# if its range reaches the number); each such run is rewritten once with its numbers less the
# leaving ones plus the arriving ones (a statement may change a row only once), or deleted
# when none remain; an arriving entry no run holds gets a run of its own. New runs go in in
# key order, which keeps the index's pages at hand. The arrays travel in binary: psycopg dumps
# a text array in Python, escaping each element, several times slower than the rest of the
# write.
WRITE: Final = f"""
WITH base AS (
    SELECT last_seq FROM {{s}}.tenants WHERE tenant = %(tenant)s
), incoming AS (
    SELECT i.id, i.text, i.tags::jsonb AS tags, i.metadata_json, false AS deleted, i.ord,
        o.ctid AS old_ctid, o.document AS old_document, o.created_seq AS old_created_seq,
        o.deleted IS NOT FALSE OR o.text <> i.text AS reworded
    FROM unnest(%(ids)b::text[], %(texts)b::text[], %(tags)b::text[], %(metadata)b::text[])
        WITH ORDINALITY AS i(id, text, tags, metadata_json, ord)
    LEFT JOIN LATERAL (
        SELECT m.ctid, m.document, m.created_seq, m.deleted, m.text, m.tags, m.metadata_json
        FROM {{s}}.memories AS m WHERE m.tenant = %(tenant)s AND m.id = i.id LIMIT 1
    ) AS o ON true
    WHERE NOT coalesce(
        NOT o.deleted AND o.text = i.text AND o.tags = i.tags::jsonb
            AND o.metadata_json = i.metadata_json,
        false
    )
    UNION ALL
    SELECT d.id, '', '[]'::jsonb, '{{}}', true, d.ord, o.ctid, o.document, o.created_seq, true
    FROM unnest(%(deletes)b::text[]) WITH ORDINALITY AS d(id, ord)
    JOIN LATERAL (
        SELECT m.ctid, m.document, m.created_seq, m.deleted
        FROM {{s}}.memories AS m WHERE m.tenant = %(tenant)s AND m.id = d.id LIMIT 1
    ) AS o ON NOT o.deleted
), numbered AS (
    SELECT incoming.*,
        (SELECT last_seq FROM base)
            + row_number() OVER (ORDER BY incoming.deleted, incoming.ord) AS seq
    FROM incoming
), inserted AS (
    INSERT INTO {{s}}.memories AS m (
        tenant, id, text, tags, metadata_json, created_at, updated_at, created_seq, seq, deleted
    )
    SELECT %(tenant)s, c.id, c.text, c.tags, c.metadata_json, %(now)s, %(now)s, c.seq, c.seq,
        false
    FROM numbered AS c WHERE c.old_ctid IS NULL
    RETURNING m.document, m.created_seq
), updated AS (
    UPDATE {{s}}.memories AS m SET
        text = c.text,
        tags = c.tags,
        metadata_json = c.metadata_json,
        created_at = CASE WHEN m.deleted THEN %(now)s ELSE m.created_at END,
        created_seq = CASE WHEN m.deleted THEN c.seq ELSE m.created_seq END,
        updated_at = %(now)s,
        seq = c.seq,
        deleted = c.deleted
    FROM numbered AS c
    WHERE m.ctid = ANY (ARRAY(SELECT old_ctid FROM numbered WHERE old_ctid IS NOT NULL))
        AND m.ctid = c.old_ctid AND m.tenant = %(tenant)s
    RETURNING m.document, m.created_seq, m.deleted, c.reworded
), arriving AS (
    SELECT n.word, ts_rank(x.document, {{s}}.word_query(n.word))::float8 AS rank,
        x.created_seq AS seq
    FROM (
        SELECT document, created_seq FROM inserted
        UNION ALL
        SELECT document, created_seq FROM updated WHERE reworded AND NOT deleted
    ) AS x, unnest(tsvector_to_array(x.document)) AS n(word)
), moving AS (
    SELECT e.word, e.rank, e.seq, e.leaving, r.ctid AS run
    FROM (
        SELECT word, rank, seq, false AS leaving FROM arriving
        WHERE seq <= (SELECT last_seq FROM base)
        UNION ALL
        SELECT o.word, ts_rank(c.old_document, {{s}}.word_query(o.word))::float8,
            c.old_created_seq, true
        FROM numbered AS c, unnest(tsvector_to_array(c.old_document)) AS o(word)
        WHERE c.reworded
    ) AS e
    LEFT JOIN LATERAL (
        SELECT p.ctid, p.last_seq FROM {{s}}.memory_postings AS p
        WHERE p.tenant = %(tenant)s AND p.word = e.word AND p.rank = e.rank
            AND p.first_seq <= e.seq
        ORDER BY p.first_seq DESC LIMIT 1
    ) AS r ON r.last_seq >= e.seq
), revised AS (
    SELECT g.run, ARRAY(
        SELECT kept FROM unnest(p.seqs) AS kept WHERE kept <> ALL (g.leaving)
        UNION
        SELECT unnest(g.arriving)
        ORDER BY 1 DESC
    ) AS seqs
    FROM (
        SELECT run,
            coalesce(array_agg(seq) FILTER (WHERE leaving), '{{}}') AS leaving,
            coalesce(array_agg(seq) FILTER (WHERE NOT leaving), '{{}}') AS arriving
        FROM moving WHERE run IS NOT NULL GROUP BY run
    ) AS g
    JOIN {{s}}.memory_postings AS p ON p.ctid = g.run
    WHERE p.ctid = ANY (ARRAY(SELECT run FROM moving WHERE run IS NOT NULL))
), emptied AS (
    DELETE FROM {{s}}.memory_postings AS p
    WHERE p.ctid = ANY (ARRAY(SELECT run FROM revised WHERE cardinality(seqs) = 0))
), rewritten AS (
    UPDATE {{s}}.memory_postings AS p SET seqs = r.seqs
    FROM revised AS r
    WHERE p.ctid = ANY (ARRAY(SELECT run FROM revised WHERE cardinality(seqs) > 0))
        AND p.ctid = r.run
), created AS (
    INSERT INTO {{s}}.memory_postings (tenant, word, rank, first_seq, last_seq, seqs)
    SELECT %(tenant)s, g.word, g.rank, g.seqs[least((k + 1) * {RUN}, cardinality(g.seqs))],
        g.seqs[k * {RUN} + 1], g.seqs[k * {RUN} + 1 : (k + 1) * {RUN}]
    FROM (
        SELECT word, rank, array_agg(seq ORDER BY seq DESC) AS seqs FROM arriving
        WHERE seq > (SELECT last_seq FROM base)
        GROUP BY word, rank
        UNION ALL
        SELECT word, rank, ARRAY[seq] FROM moving WHERE run IS NULL AND NOT leaving
    ) AS g, generate_series(0, (cardinality(g.seqs) - 1) / {RUN}) AS k
    ORDER BY g.word
)
UPDATE {{s}}.tenants
SET last_seq = last_seq + (SELECT count(*) FROM inserted) + (SELECT count(*) FROM updated)
WHERE tenant = %(tenant)s AND EXISTS (SELECT 1 FROM numbered)
"""

# The horizon and the changes in one statement (one snapshot); the horizon's row comes back
# alone (columns null) when there is no change.
CHANGES: Final = f"""
SELECT h.horizon, c.* FROM (
    SELECT coalesce(max(horizon), 0) AS horizon FROM {{s}}.tenants WHERE tenant = %(tenant)s
) AS h LEFT JOIN LATERAL (
    SELECT {_COLUMNS} FROM {{s}}.memories
    WHERE tenant = %(tenant)s AND seq > %(after)s ORDER BY seq LIMIT %(limit)s
) AS c ON true
ORDER BY c.seq
"""

# Tombstones older than the given time go, and the tenant's horizon rises to the highest
# change number among them; the count removed comes back.
COMPACT: Final = """
WITH removed AS (
    DELETE FROM {s}.memories
    WHERE tenant = %(tenant)s AND deleted AND updated_at < %(older_than)s
    RETURNING seq
), raised AS (
    UPDATE {s}.tenants SET horizon = greatest(horizon, (SELECT max(seq) FROM removed))
    WHERE tenant = %(tenant)s AND EXISTS (SELECT 1 FROM removed)
)
SELECT count(*) FROM removed
"""

HORIZON: Final = "SELECT coalesce(max(horizon), 0) FROM {s}.tenants WHERE tenant = %s"

LOCK_COUNTER: Final = "SELECT 1 FROM {s}.tenants WHERE tenant = %s FOR UPDATE"

RECENT: Final = f"""
SELECT {_COLUMNS}, created_seq FROM {{s}}.memories
WHERE tenant = %(tenant)s AND NOT deleted {{where}}
ORDER BY created_seq DESC LIMIT %(limit)s
"""


# The words reach websearch_to_tsquery quoted (see `search_text`), so every word is required
# and none is read as an operator: "or" and a leading "-" would be, unquoted.
def search_text(words: Sequence[str]) -> str:
    """The websearch query requiring every word: each quoted, so none is an operator.

    The words are those `text_words` finds (letters, digits and underscores), so none holds
    a quote.
    """
    return " ".join(f'"{word}"' for word in words)


# A query of one lexeme (one word, as `websearch_to_tsquery` and `to_tsvector` both find it)
# reads that word's runs best first, each run's numbers in order, and stops at the page's end:
# the stored rank is the one `ts_rank` gives such a query, and as the runs of a word and rank
# never overlap, (rank, first number of the run, number) is (rank, number) order. The runs are
# ordered in a subquery of their own, which PostgreSQL plans apart (an index scan, then a sort
# of each run's numbers alone), so the memories are read only for the entries the page takes.
# A longer query reads up to `_RARE` entries of each lexeme, intersects those of its rare
# lexemes (fewer than `_RARE` entries; all entries of the first lexeme when none is rare),
# then matches the memories found exactly, so the common lexemes it skipped still count, and
# ranks them. With no lexeme (only stop words) nothing is found,
# as the text match finds nothing. Each branch runs only when its condition on the query
# holds (PostgreSQL tests it once). Memories are read by creation number, through the index
# of live memories in creation order.
_RARE: Final = 1000
_ONE_LEXEME: Final = """(
    numnode(websearch_to_tsquery('english', %(search)s)) = 1
    AND cardinality(tsvector_to_array(to_tsvector('english', %(search)s))) = 1
)"""
_M_COLUMNS: Final = ", ".join(f"m.{column}" for column in _COLUMNS.split(", "))

RANKED: Final = f"""
(
    SELECT {_M_COLUMNS}, m.created_seq, hit.rank
    FROM (
        SELECT p.rank, p.first_seq, e.seq
        FROM {{s}}.memory_postings AS p CROSS JOIN LATERAL unnest(p.seqs) AS e(seq)
        WHERE p.tenant = %(tenant)s
            AND p.word = (tsvector_to_array(to_tsvector('english', %(search)s)))[1]
            AND {_ONE_LEXEME} {{runs}}
        ORDER BY p.rank DESC, p.first_seq DESC, e.seq DESC
    ) AS hit
    JOIN {{s}}.memories AS m
        ON m.tenant = %(tenant)s AND m.created_seq = hit.seq AND NOT m.deleted
    WHERE true {{one_word}}
    ORDER BY hit.rank DESC, hit.first_seq DESC, hit.seq DESC LIMIT %(limit)s
) UNION ALL (
    WITH lexemes AS (
        SELECT l.word, ARRAY(
            SELECT e.seq
            FROM {{s}}.memory_postings AS c CROSS JOIN LATERAL unnest(c.seqs) AS e(seq)
            WHERE c.tenant = %(tenant)s AND c.word = l.word LIMIT {_RARE}
        ) AS found
        FROM unnest(tsvector_to_array(to_tsvector('english', %(search)s))) AS l(word)
        WHERE NOT {_ONE_LEXEME}
    ), rare AS (
        SELECT word, found FROM lexemes WHERE cardinality(found) < {_RARE}
    ), chosen AS (
        SELECT found FROM rare
        UNION ALL
        SELECT ARRAY(
            SELECT e.seq
            FROM {{s}}.memory_postings AS c CROSS JOIN LATERAL unnest(c.seqs) AS e(seq)
            WHERE c.tenant = %(tenant)s AND c.word = first.word
        )
        FROM (SELECT word FROM lexemes ORDER BY word LIMIT 1) AS first
        WHERE NOT EXISTS (SELECT FROM rare)
    ), hits AS (
        SELECT e.seq FROM chosen CROSS JOIN LATERAL unnest(chosen.found) AS e(seq)
        GROUP BY e.seq HAVING count(*) = (SELECT count(*) FROM chosen)
    )
    SELECT {_M_COLUMNS}, m.created_seq, ts_rank(m.document, q)::float8 AS rank
    FROM hits
    JOIN {{s}}.memories AS m
        ON m.tenant = %(tenant)s AND m.created_seq = hits.seq AND NOT m.deleted
    CROSS JOIN websearch_to_tsquery('english', %(search)s) AS q
    WHERE m.document @@ q {{several}}
    ORDER BY rank DESC, m.created_seq DESC LIMIT %(limit)s
)
ORDER BY rank DESC, created_seq DESC LIMIT %(limit)s
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


_ROW_SECURITY_TABLES: Final = ("tenants", "memories", "memory_postings")

_ROW_SECURITY: Final = """
SELECT c.relrowsecurity AND c.relforcerowsecurity FROM pg_class c
WHERE c.oid = ANY(ARRAY[%s, %s, %s]::regclass[])
"""


def enforce_row_security(connection: psycopg.Connection[Row], schema: str, wanted: bool) -> None:
    """Give the schema's tables the row-level security the config asks for.

    The policies always exist (the first migration creates them); this switches whether
    they apply. Only the tables' owner may switch it: another role asking for the other
    setting gets a `ConfigError` saying so.
    """
    if _row_security(connection, schema) == {wanted}:
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


def _row_security(connection: psycopg.Connection[Row], schema: str) -> set[bool]:
    """Whether row security is enabled and forced, for each of the tables (one value when
    all agree)."""
    names = [qualified(f"{{s}}.{table}", schema) for table in _ROW_SECURITY_TABLES]
    return {bool(row[0]) for row in connection.execute(_ROW_SECURITY, names).fetchall()}


def _describe(connection: psycopg.Connection[Row], schema: str) -> JsonObject:
    row = connection.execute(_ROLE).fetchone()
    bypasses = bool(row[0]) if row is not None else False
    enforced = _row_security(connection, schema) == {True}
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
        self._compact = qualified(COMPACT, schema)
        self._horizon = qualified(HORIZON, schema)
        self._lock_counter = qualified(LOCK_COUNTER, schema)
        self._tenants = qualified(TENANTS, schema)
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
        records = tuple(_stored(row).to_record() for row in page)
        if len(rows) <= query.limit:
            return MemoryPage(records)
        last = page[-1]
        if query.words:
            cursor = encode_cursor(_RANKED, query.fingerprint, rank=last[9], before=last[8])
        else:
            cursor = encode_cursor(_RECENT, query.fingerprint, before=last[8])
        return MemoryPage(records, cursor)

    def changes(
        self, tenant: str, after: int, limit: int, floor: int = 0
    ) -> tuple[StoredMemory, ...]:
        """Changes numbered after `after`, in number order, tombstones included.

        `ResyncRequired` when deletions the caller has not seen were compacted away: `after`
        and `floor` (the horizon when the caller's full sync began) both below the horizon.
        """
        rows = self._read(tenant, self._changes, {"tenant": tenant, "after": after, "limit": limit})
        horizon = rows[0][0] if rows else 0
        check_horizon(after, floor, horizon)
        return tuple(_stored(row[1:]) for row in rows if row[1] is not None)

    def horizon(self, tenant: str) -> int:
        """The highest change number a compaction removed for `tenant` (0: none yet)."""
        rows = self._read(tenant, self._horizon, (tenant,))
        return int(rows[0][0]) if rows else 0

    def compact(self, older_than: datetime, tenant: str | None = None) -> int:
        """Remove tombstones deleted before `older_than`, one transaction per tenant."""
        tenants = [tenant] if tenant is not None else self._all_tenants()
        return sum(self._compact_tenant(name, older_than) for name in tenants)

    def close(self) -> None:
        """Close the pool: its connections and its worker threads."""
        self._pool.close()

    # -- helpers -----------------------------------------------------------------------------

    def _compact_tenant(self, tenant: str, older_than: datetime) -> int:
        """One tenant's compaction, holding its counter row as a write does."""
        with self._pool.connection() as connection, connection.transaction():
            connection.execute(SET_TENANT, (tenant,))
            if connection.execute(self._lock_counter, (tenant,)).fetchone() is None:
                return 0  # the tenant never wrote: nothing to compact
            row = connection.execute(
                self._compact, {"tenant": tenant, "older_than": older_than}
            ).fetchone()
        return int(row[0]) if row is not None else 0

    def _all_tenants(self) -> list[str]:
        """Every tenant with a counter row: the one read row security lets span tenants."""
        with self._pool.connection() as connection, connection.transaction():
            connection.execute(LIST_TENANTS)
            return [row[0] for row in connection.execute(self._tenants).fetchall()]

    def _read(
        self, tenant: str, statement: str, values: Sequence[object] | Mapping[str, object]
    ) -> list[Row]:
        """Rows of `statement` for `tenant`: one statement, so one transaction of its own.

        The tenant is set for the connection's session first (every use of a pooled
        connection sets it again before its statement): two round trips, each of a statement
        psycopg prepares once per connection, where a transaction would take four.
        """
        with self._pool.connection() as connection:
            connection.execute(SET_SESSION_TENANT, (tenant,))
            return connection.execute(statement, values).fetchall()

    def _recent_page(
        self, tenant: str, query: MemoryQuery, where: list[str], parameters: dict[str, object]
    ) -> tuple[str, dict[str, object]]:
        if query.cursor is not None:
            position = _position(query.cursor, query.fingerprint, _RECENT)
            where.append("AND created_seq < %(before)s")
            parameters["before"] = _before(position)
        statement = self._recent.replace("{where}", " ".join(where))
        return statement, {**parameters, "tenant": tenant, "limit": query.limit + 1}

    def _ranked_page(
        self, tenant: str, query: MemoryQuery, where: list[str], parameters: dict[str, object]
    ) -> tuple[str, dict[str, object]]:
        runs: list[str] = []
        several = list(where)
        if query.cursor is not None:
            position = _position(query.cursor, query.fingerprint, _RANKED)
            # A run whose first number is at or past the position holds no entry after it.
            after = "< (%(rank)s::float8, %(before)s)"
            runs.append(f"AND (p.rank, p.first_seq) {after} AND (p.rank, e.seq) {after}")
            several.append(f"AND (ts_rank(m.document, q)::float8, m.created_seq) {after}")
            parameters.update(rank=_rank(position), before=_before(position))
        statement = (
            self._ranked.replace("{runs}", " ".join(runs))
            .replace("{one_word}", " ".join(where))
            .replace("{several}", " ".join(several))
        )
        return statement, {
            **parameters,
            "tenant": tenant,
            "search": search_text(query.words),
            "limit": query.limit + 1,
        }


def _filter_sql(memory_filter: MemoryFilter) -> tuple[list[str], dict[str, object]]:
    """SQL conditions agreeing with `MemoryFilter.matches`, and their named parameters.

    JSONB equality compares numbers by value and never equates a number, a string and a
    boolean, which is exactly `json_equal`.
    """
    where: list[str] = []
    parameters: dict[str, object] = {}
    if memory_filter.tags:
        where.append("AND tags @> %(tags)s::jsonb")
        parameters["tags"] = canonical_json(list(memory_filter.tags))
    for number, (key, value) in enumerate(memory_filter.metadata):
        where.append(f"AND metadata -> %(key{number})s = %(value{number})s::jsonb")
        parameters[f"key{number}"] = key
        parameters[f"value{number}"] = canonical_json(value)
    for column, operator, moment in (
        ("created_at", ">", memory_filter.created_after),
        ("created_at", "<", memory_filter.created_before),
        ("updated_at", ">", memory_filter.updated_after),
        ("updated_at", "<", memory_filter.updated_before),
    ):
        if moment is not None:
            name = f"{column}_{'after' if operator == '>' else 'before'}"
            where.append(f"AND {column} {operator} %({name})s")
            parameters[name] = moment
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
