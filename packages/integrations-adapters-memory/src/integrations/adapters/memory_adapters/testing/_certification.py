"""The certification kit with memories, and one subclass per store that builds its config.

The kit's own sample records carry arbitrary data; a memory store accepts only memories
(text, tags, metadata). `MemoryStoreCertification` supplies memories and the queries that find
them, so a memory connector's certification module only names the connector and its config.
Third-party memory stores certify with it the same way.

The per-store subclasses are what the manifest names (``certification``), so that
`integrations certify memory.sqlite` runs the right checks with a working config: SQLite in a
temporary file, Redis and PostgreSQL on the servers ``REDIS_URL`` and ``DATABASE_URL`` name,
the Knowledge Vault at the ``url`` of ``--config``. Configs are plain mappings: building one
imports no driver.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from integrations.base import Capability, FetchQuery, PushPayload, Record
from integrations.base.testing import ConnectorCertification, GovernedSession

__all__ = [
    "KnowledgeVaultCertification",
    "MemoryStoreCertification",
    "PostgresCertification",
    "RedisCertification",
    "SqliteCertification",
]


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


class SqliteCertification(MemoryStoreCertification):
    """``memory.sqlite`` in a new SQLite file per check, in pytest's temporary directory."""

    registry_name = "memory.sqlite"

    @pytest.fixture(autouse=True)
    def _sqlite_file(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.sqlite_path = tmp_path_factory.mktemp("sqlite-certification") / "memories.sqlite3"

    def config(self) -> Mapping[str, Any]:
        return {"path": str(self.sqlite_path)}


class _ServerCertification(MemoryStoreCertification):
    """A store on a server named by an environment variable; each check gets its own space."""

    url_variable: ClassVar[str]
    """The environment variable naming the server."""

    @classmethod
    def configuration_problem(cls) -> str | None:
        if os.environ.get(cls.url_variable):
            return None
        return f"set {cls.url_variable} to the server's URL, or pass --config"

    @property
    def server_url(self) -> str:
        return os.environ[self.url_variable]


class RedisCertification(_ServerCertification):
    """``memory.redis`` on the server ``REDIS_URL`` names, under a key prefix per check."""

    registry_name = "memory.redis"
    url_variable = "REDIS_URL"

    def config(self) -> Mapping[str, Any]:
        return {"url": self.server_url, "key_prefix": f"cert:{uuid.uuid4().hex[:10]}"}


class PostgresCertification(_ServerCertification):
    """``memory.postgres`` on the database ``DATABASE_URL`` names, in a schema per check."""

    registry_name = "memory.postgres"
    url_variable = "DATABASE_URL"

    def config(self) -> Mapping[str, Any]:
        return {"dsn": self.server_url, "schema_name": f"certification_{uuid.uuid4().hex[:12]}"}


class KnowledgeVaultCertification(MemoryStoreCertification):
    """``memory.knowledge_vault``: text search only, ingestion not idempotent, no deletion.

    The API answers text queries, so the sample queries search the batch's word (with the
    tag and metadata filters on top). Its ``url`` comes from ``--config``.

    A vault may answer an ingest without saying whether it stored the document (the deployed
    service answers 500 after storing): the connector rejects such a memory as an unknown
    outcome, and `write_records` reconciles it the way callers are told to, by fetching the
    memory's text and looking for its id, before calling the write a failure.
    """

    registry_name = "memory.knowledge_vault"
    unsupported = frozenset({Capability.SYNC})
    push_is_idempotent = False
    supports_tombstones = False

    @classmethod
    def configuration_problem(cls) -> str | None:
        return "pass --config with the Knowledge Vault API's url"

    def sample_records(self, count: int) -> list[Record]:
        """Memories whose text holds their batch's word, so that a text query finds the batch."""
        batch = uuid.uuid4().hex[:10]
        return [
            Record(
                id=f"cert-{batch}-{index:03d}",
                data={
                    "text": f"Certification memory {index} of batch{batch} "
                    f"labelled cert{batch}x{index:03d}",
                    "tags": ["certification", f"batch-{batch}"],
                    "metadata": {"batch": batch, "n": index},
                },
            )
            for index in range(count)
        ]

    def sample_queries(self, records: Sequence[Record]) -> list[FetchQuery]:
        """The batch's word, alone and with the tag and metadata filters."""
        batch = records[0].id.split("-")[1]
        text = f"batch{batch}"
        return [
            FetchQuery(text=text),
            FetchQuery(text=text, filters={"tags": [f"batch-{batch}"]}),
            FetchQuery(text=f"certification {text}", filters={"metadata": {"batch": batch}}),
        ]

    def probe_query(self) -> FetchQuery:
        """The API answers text queries only."""
        return FetchQuery(text="certification", limit=1)

    def write_records(self, session: GovernedSession, records: Sequence[Record]) -> None:
        """Push `records`; a memory whose outcome is unknown counts as written once a fetch
        of its word returns it with an `updated_at` from this push, and only then."""
        # Imported here: the connector's module needs httpx, which this module must not.
        from integrations.adapters.memory_adapters.knowledge_vault import outcome_unknown

        pushed_at = datetime.now(UTC)
        result = session.push(PushPayload(records=tuple(records)))
        by_id = {record.id: record for record in records}
        problems = []
        for rejection in result.rejected:
            if not outcome_unknown(rejection):
                problems.append(f"{rejection.id}: {rejection.reason}")
                continue
            query = FetchQuery(text=self.search_text(by_id[rejection.id]))
            found = self.fetch_all(session, query, limit=10)
            if not any(
                record.id == rejection.id
                and record.updated_at is not None
                and record.updated_at >= pushed_at
                for record in found
            ):
                problems.append(f"{rejection.id}: {rejection.reason}, and a fetch did not find it")
        if problems:
            pytest.fail(
                "push did not store sample records (" + "; ".join(problems) + ")", pytrace=False
            )
