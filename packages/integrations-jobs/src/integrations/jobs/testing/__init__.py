"""Testing support for pipelines on real workers: connectors that work across processes, and
throwaway Celery worker processes.

- `write_testing_manifest` declares ``jobs-testing.sqlite`` (``memory.sqlite`` that can be slow,
  fail, refuse ids, or pause at a gate) and ``jobs-testing.generated`` (made-up records with
  a delay per page); pass it to ``integrations --manifest`` and `Registry.load_manifest`.
  They need ``integrations-adapters-memory``.
- `celery_workers` / `start_worker` run ``integrations jobs worker`` processes (they need the
  ``celery`` extra), tied to the life of the process that started them. The broker for tests
  is a throwaway ``redis-server``:
  ``integrations.adapters.memory_adapters.testing.redis_server``.
"""

from ._connectors import (
    GATE_HOLD,
    REFUSED_REASON,
    GeneratedConfig,
    GeneratedSource,
    TestingSqliteConfig,
    TestingSqliteConnector,
    paused_pids,
    write_testing_manifest,
)
from ._workers import READY_MARKER, CeleryWorker, celery_workers, start_worker

__all__ = [
    "GATE_HOLD",
    "READY_MARKER",
    "REFUSED_REASON",
    "CeleryWorker",
    "GeneratedConfig",
    "GeneratedSource",
    "TestingSqliteConfig",
    "TestingSqliteConnector",
    "celery_workers",
    "paused_pids",
    "start_worker",
    "write_testing_manifest",
]
