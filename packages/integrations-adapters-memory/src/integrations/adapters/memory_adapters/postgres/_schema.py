"""The PostgreSQL memory store's schema and its migrations.

Everything lives in one schema (the config's `schema`, ``integrations_memory`` by default):

- ``schema_versions``: the migrations applied, one row each;
- ``tenants``: one row per tenant holding the last change sequence number handed out. Every
  write transaction locks its tenant's row first, so writers of one tenant take turns until
  they commit and their numbers commit in order;
- ``memories``: one row per (tenant, id), tombstones included. ``metadata_json`` is the
  canonical JSON every store persists and compares (so ``1`` and ``1.0`` stay distinct, as
  they are in the other stores); ``metadata`` is its JSONB form for filters. ``document`` is
  the text's ``tsvector``; ``created_seq`` the change number that created the memory, its
  immutable place in newest-first order;
- ``memory_postings``: the text index. One row per tenant, word (a lexeme of a live
  memory's ``document``), rank and *run*: ``seqs`` holds, in descending order, the creation
  numbers of the live memories whose text has that word with that rank (the memory's rank
  for a query of that word alone, ``ts_rank(document, word_query(word))``, exactly the rank
  such a query computes), all within the run's range ``first_seq`` to ``last_seq``; the
  ranges of one word and rank never overlap. The primary key (tenant, word, rank,
  ``first_seq``) is what text queries read: under row security PostgreSQL applies a query's
  conditions to an index before the policy only when they are leakproof, which equality and
  order on text and numbers are and the text match (``@@``) is not, so a GIN index of
  ``document`` could serve no query under the policy. A one-word query reads its runs best
  first; a longer one intersects its words' entries (see `_backend`). ``word_query`` makes
  the one-lexeme ``tsquery`` of a word, quoting it. The view ``memory_words`` gives the runs
  back as one row per word of each live memory (tenant, word, rank, creation number, id),
  the table schema version 3 kept, for reading; it reads the tables with the reader's
  rights (``security_invoker`` from PostgreSQL 15; before, its owner's, whom forced row
  security binds too), so their policies apply;
- ``tenants.horizon``: the tenant's compaction horizon, the highest change number compaction
  removed (0: none). A sync from before it must start again.

Row-level security is enabled and forced on the tenant tables: a row is visible only to a
transaction whose ``integrations.tenant`` setting names its tenant, so a query that forgot its
``WHERE tenant = ...`` still sees one tenant. It does not hold against roles that bypass row
security (superusers and ``BYPASSRLS`` roles): connect as a plain role for it to apply. One
exception, for compaction across tenants: a transaction whose ``integrations.all_tenants``
setting is ``list`` may read every row of ``tenants`` (names and counters, never memories).

Migrations run in one transaction under a transaction-scoped advisory lock, so connectors
starting together apply each migration once.
"""

from __future__ import annotations

import hashlib
from typing import Final

import psycopg
from psycopg import sql

from integrations.base import ConnectorError

__all__ = ["SCHEMA_VERSION", "migrate", "qualified"]

_MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: memories, tenants' change counters, text search, row-level security.
    """
    CREATE TABLE {s}.tenants (
        tenant text PRIMARY KEY,
        last_seq bigint NOT NULL
    );
    CREATE TABLE {s}.memories (
        tenant text NOT NULL,
        id text NOT NULL,
        text text NOT NULL,
        tags jsonb NOT NULL,
        metadata_json text NOT NULL,
        metadata jsonb GENERATED ALWAYS AS (metadata_json::jsonb) STORED,
        document tsvector GENERATED ALWAYS AS (to_tsvector('english'::regconfig, text)) STORED,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        created_seq bigint NOT NULL,
        seq bigint NOT NULL,
        deleted boolean NOT NULL,
        PRIMARY KEY (tenant, id)
    );
    CREATE INDEX memories_changes ON {s}.memories (tenant, seq);
    CREATE INDEX memories_recent ON {s}.memories (tenant, created_seq) WHERE NOT deleted;
    CREATE INDEX memories_document ON {s}.memories USING gin (document)
        WITH (gin_pending_list_limit = 256);
    ALTER TABLE {s}.tenants ENABLE ROW LEVEL SECURITY;
    ALTER TABLE {s}.tenants FORCE ROW LEVEL SECURITY;
    ALTER TABLE {s}.memories ENABLE ROW LEVEL SECURITY;
    ALTER TABLE {s}.memories FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_rows ON {s}.tenants
        USING (tenant = current_setting('integrations.tenant', true))
        WITH CHECK (tenant = current_setting('integrations.tenant', true));
    CREATE POLICY tenant_rows ON {s}.memories
        USING (tenant = current_setting('integrations.tenant', true))
        WITH CHECK (tenant = current_setting('integrations.tenant', true));
    """,
    # 2: the words of live memories, for text queries under row security, in place of the
    # GIN index. Filling it reads every tenant's memories, so the owner lifts FORCE on
    # `memories` for this transaction (the ALTER locks the table until commit); the new
    # table gets the row security the memories have.
    """
    CREATE FUNCTION {s}.word_query(word text) RETURNS tsquery
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$
        SELECT ('''' || replace(replace(word, '\\', '\\\\'), '''', '''''') || '''')::tsquery $$;
    CREATE TABLE {s}.memory_words (
        tenant text NOT NULL,
        word text NOT NULL,
        rank float8 NOT NULL,
        created_seq bigint NOT NULL,
        id text NOT NULL,
        PRIMARY KEY (tenant, word, rank, created_seq) INCLUDE (id)
    );
    CREATE POLICY tenant_rows ON {s}.memory_words
        USING (tenant = current_setting('integrations.tenant', true))
        WITH CHECK (tenant = current_setting('integrations.tenant', true));
    DO $$
    DECLARE
        secured boolean;
        forced boolean;
    BEGIN
        SELECT relrowsecurity, relforcerowsecurity INTO secured, forced
        FROM pg_class WHERE oid = '{s}.memories'::regclass;
        ALTER TABLE {s}.memories NO FORCE ROW LEVEL SECURITY;
        INSERT INTO {s}.memory_words (tenant, word, rank, created_seq, id)
            SELECT m.tenant, w.word, ts_rank(m.document, {s}.word_query(w.word)), m.created_seq,
                m.id
            FROM {s}.memories AS m, unnest(tsvector_to_array(m.document)) AS w(word)
            WHERE NOT m.deleted;
        IF forced THEN
            ALTER TABLE {s}.memories FORCE ROW LEVEL SECURITY;
            ALTER TABLE {s}.memory_words FORCE ROW LEVEL SECURITY;
        END IF;
        IF secured THEN
            ALTER TABLE {s}.memory_words ENABLE ROW LEVEL SECURITY;
        END IF;
    END $$;
    DROP INDEX {s}.memories_document;
    """,
    # 3: compaction: each tenant's horizon, tombstones by deletion time, and the list of
    # tenants compaction of every tenant reads.
    """
    ALTER TABLE {s}.tenants ADD COLUMN horizon bigint NOT NULL DEFAULT 0;
    CREATE INDEX memories_tombstones ON {s}.memories (tenant, updated_at) WHERE deleted;
    CREATE POLICY list_tenants ON {s}.tenants FOR SELECT
        USING (current_setting('integrations.all_tenants', true) = 'list');
    """,
    # 4: the words in runs: one row per tenant, word, rank and run of at most 64 creation
    # numbers in place of one row per word of each memory, so a write inserts a few rows per
    # word of its batch rather than one per word of each memory. The old rows become runs
    # (the owner lifts FORCE on `memory_words` to read every tenant's, as migration 2 did on
    # `memories`); `memory_words` becomes a view giving the old rows back, for reading.
    """
    CREATE TABLE {s}.memory_postings (
        tenant text NOT NULL,
        word text NOT NULL,
        rank float8 NOT NULL,
        first_seq bigint NOT NULL,
        last_seq bigint NOT NULL,
        seqs bigint[] NOT NULL,
        PRIMARY KEY (tenant, word, rank, first_seq)
    );
    CREATE POLICY tenant_rows ON {s}.memory_postings
        USING (tenant = current_setting('integrations.tenant', true))
        WITH CHECK (tenant = current_setting('integrations.tenant', true));
    DO $$
    DECLARE
        secured boolean;
        forced boolean;
    BEGIN
        SELECT relrowsecurity, relforcerowsecurity INTO secured, forced
        FROM pg_class WHERE oid = '{s}.memory_words'::regclass;
        ALTER TABLE {s}.memory_words NO FORCE ROW LEVEL SECURITY;
        INSERT INTO {s}.memory_postings (tenant, word, rank, first_seq, last_seq, seqs)
            SELECT g.tenant, g.word, g.rank, g.seqs[least((k + 1) * 64, cardinality(g.seqs))],
                g.seqs[k * 64 + 1], g.seqs[k * 64 + 1 : (k + 1) * 64]
            FROM (
                SELECT tenant, word, rank, array_agg(created_seq ORDER BY created_seq DESC)
                FROM {s}.memory_words GROUP BY tenant, word, rank
            ) AS g(tenant, word, rank, seqs),
                generate_series(0, (cardinality(g.seqs) - 1) / 64) AS k;
        IF forced THEN
            ALTER TABLE {s}.memory_postings FORCE ROW LEVEL SECURITY;
        END IF;
        IF secured THEN
            ALTER TABLE {s}.memory_postings ENABLE ROW LEVEL SECURITY;
        END IF;
        DROP TABLE {s}.memory_words;
        EXECUTE format(
            'CREATE VIEW %s.memory_words %s AS '
            'SELECT p.tenant, p.word, p.rank, e.seq AS created_seq, m.id '
            'FROM %s.memory_postings AS p CROSS JOIN LATERAL unnest(p.seqs) AS e(seq) '
            'JOIN %s.memories AS m '
            'ON m.tenant = p.tenant AND m.created_seq = e.seq AND NOT m.deleted',
            '{s}',
            CASE WHEN current_setting('server_version_num')::int >= 150000
                THEN 'WITH (security_invoker = true)' ELSE '' END,
            '{s}', '{s}');
    END $$;
    """,
)

SCHEMA_VERSION: Final = len(_MIGRATIONS)
"""The schema version this code reads and writes."""


def qualified(template: str, schema: str) -> str:
    """`template` with ``{s}`` replaced by the quoted schema name (other text kept verbatim)."""
    return template.replace("{s}", sql.Identifier(schema).as_string())


def migrate(
    connection: psycopg.Connection[tuple[object, ...]], schema: str, target: int = SCHEMA_VERSION
) -> int:
    """Bring `schema` to `target` (this code's version unless a test asks for an older one);
    return the version found before (0 for none).

    Reads the version without a lock first, so opening an up-to-date store takes no lock and
    needs no privilege to create anything. `connection` must be in autocommit mode.
    """
    found = _version(connection, schema)
    _refuse_newer(found, schema)
    if found >= target:
        return found
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        connection.execute(qualified("CREATE SCHEMA IF NOT EXISTS {s}", schema))
        connection.execute(
            qualified(
                "CREATE TABLE IF NOT EXISTS {s}.schema_versions ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                schema,
            )
        )
        current = _version(connection, schema)
        _refuse_newer(current, schema)
        for version in range(current + 1, target + 1):
            connection.execute(qualified(_MIGRATIONS[version - 1], schema))
            connection.execute(
                qualified("INSERT INTO {s}.schema_versions (version) VALUES (%s)", schema),
                (version,),
            )
    return found


def _version(connection: psycopg.Connection[tuple[object, ...]], schema: str) -> int:
    table = qualified("{s}.schema_versions", schema)
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    if row is None or not row[0]:
        return 0
    found = connection.execute(f"SELECT coalesce(max(version), 0) FROM {table}").fetchone()
    version = found[0] if found is not None else 0
    return version if isinstance(version, int) else 0


def _refuse_newer(found: int, schema: str) -> None:
    if found > SCHEMA_VERSION:
        raise ConnectorError(
            f"PostgreSQL schema {schema!r} is at version {found}, newer than this memory store "
            f"knows ({SCHEMA_VERSION}): upgrade integrations-adapters-memory to use it"
        )


def _lock_key(schema: str) -> int:
    """The advisory lock of `schema`'s migrations: a signed 64-bit number from its name."""
    digest = hashlib.sha256(f"integrations.memory.schema:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
