"""Fixtures shared by the memory stores' tests: real servers, started once per test session.

A Redis and a PostgreSQL server are started from the installed binaries on free loopback
ports in temporary directories, unless ``REDIS_URL`` / ``DATABASE_URL`` name one to use. The
Knowledge Vault API is served on 127.0.0.1 by a real HTTP server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from integrations.adapters.memory_adapters.testing import (
    KnowledgeVaultServer,
    postgres_server,
    redis_server,
)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server's URL: ``REDIS_URL`` when set, else a throwaway server with RediSearch."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL DSN: ``DATABASE_URL`` when set, else a throwaway cluster."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    with postgres_server() as dsn:
        yield dsn


@pytest.fixture
def knowledge_vault() -> Iterator[KnowledgeVaultServer]:
    """A Knowledge Vault API on 127.0.0.1 with no documents."""
    with KnowledgeVaultServer() as server:
        yield server
