"""A throwaway PostgreSQL cluster for tests and benchmarks (to be implemented)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["postgres_server"]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL cluster on a free loopback port in a temporary directory; yield a DSN."""
    raise NotImplementedError
    yield ""
