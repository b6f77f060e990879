"""A throwaway `redis-server` for tests and benchmarks (to be implemented)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["redis_server"]


@contextmanager
def redis_server(*, search: bool = True) -> Iterator[str]:
    """Start a redis-server on a free loopback port in a temporary directory; yield its URL."""
    raise NotImplementedError
    yield ""
