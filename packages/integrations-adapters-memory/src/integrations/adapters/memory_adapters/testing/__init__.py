"""Testing support for memory stores: certification with memories, and throwaway servers.

`MemoryStoreCertification` needs the certification kit (``integrations-base[testing]``);
`SqliteCertification`, `RedisCertification`, `PostgresCertification` and
`KnowledgeVaultCertification` are what `integrations certify` runs for each store (the
manifest names them), each building its store's config. The
servers start real programs from the installed binaries: `redis_server` a ``redis-server``
(with the RediSearch module when it is installed), `postgres_server` a PostgreSQL cluster,
and `KnowledgeVaultServer` serves the Knowledge Vault HTTP API on 127.0.0.1.
"""

from ._certification import (
    KnowledgeVaultCertification,
    MemoryStoreCertification,
    PostgresCertification,
    RedisCertification,
    SqliteCertification,
)
from ._knowledge_vault_server import KnowledgeVaultServer
from ._postgres_server import postgres_server
from ._redis_server import redis_server

__all__ = [
    "KnowledgeVaultCertification",
    "KnowledgeVaultServer",
    "MemoryStoreCertification",
    "PostgresCertification",
    "RedisCertification",
    "SqliteCertification",
    "postgres_server",
    "redis_server",
]
