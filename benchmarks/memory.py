"""Memory stores: a governed session against the raw client, for writes and text queries.

For each backend (SQLite, Redis, PostgreSQL with and without row-level security), in one run:
  push   100,000 memories in batches of 1,000 through a governed `Session` (default policies,
         in-memory audit, retries and breaker in place) vs the raw client doing the same writes
         into the same schema (sqlite3 executemany, a redis-py pipeline, psycopg executemany);
  query  1,000 text queries (limit 10) through the session vs the raw SQL / command that
         reads the same memories (ids with text, tags, metadata and times) and decodes them.
Each measurement is repeated (a fresh store each time for writes), the two sides interleaved
(whole runs for writes, slices of 50 for queries), and the median is reported. Target: the
session reaches >= 0.8x the raw client's throughput for each.

Redis and PostgreSQL are throwaway servers started from the installed binaries unless
REDIS_URL / DATABASE_URL are set. Before the queries, the PostgreSQL table gets the VACUUM
ANALYZE that autovacuum would give it after a bulk load. The raw client's text queries read
the session's own store, except for PostgreSQL, where they read a copy of it with row
security off and a GIN index of the text (the fastest plain SQL search): the target is the
store's default settings (row security on) against that raw client.

Run: python benchmarks/memory.py [--backends sqlite,redis,postgres] [--records N]
                                 [--batch B] [--queries Q] [--repeats R] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from integrations.adapters.memory_adapters.testing import postgres_server, redis_server
from integrations.base import (
    AuthContext,
    FetchQuery,
    Governance,
    MemoryAuditSink,
    PushPayload,
    Record,
    registry,
)

TENANT = "bench"
SLICE = 50
"""Text queries one side runs before the other takes its turn."""
CONTEXT = AuthContext(tenant=TENANT, actor="benchmark")
TOPICS = [f"topic{n}" for n in range(400)]
"""Words each memory draws two of: a text query for one matches about 0.5% of memories."""
FILLER = [
    "note",
    "about",
    "the",
    "meeting",
    "with",
    "the",
    "team",
    "and",
    "the",
    "plan",
    "for",
    "next",
    "week",
]


class RawClient(Protocol):
    """What each backend's raw client offers (see `_memory_<backend>.py`)."""

    def push(self, tenant: str, records: Sequence[Record]) -> None: ...
    def text_query(self, tenant: str, text: str, limit: int) -> list[str]: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Backend:
    """One store: its registry name, how to make a fresh location, config and raw client."""

    name: str
    label: str
    fresh: Callable[[], str]
    config: Callable[[str], dict[str, object]]
    raw: Callable[[str], RawClient]
    settle: Callable[[str], None] = lambda location: None
    """What the server's own maintenance would have done before queries (autovacuum)."""
    baseline: Callable[[str], str] = lambda location: location
    """The location the raw client's text queries read, made from the filled one."""


def memories(count: int, seed: int = 7) -> list[Record]:
    """`count` memories with realistic text, two topic words each, tags and metadata."""
    rng = random.Random(seed)
    records = []
    for n in range(count):
        words = rng.sample(FILLER, 6) + rng.sample(TOPICS, 2)
        rng.shuffle(words)
        records.append(
            Record(
                id=f"m{n:06d}",
                data={
                    "text": " ".join(words).capitalize(),
                    "tags": [rng.choice(["work", "home", "travel"])],
                    "metadata": {"source": "benchmark", "n": n},
                },
            )
        )
    return records


def batches(records: list[Record], size: int) -> list[list[Record]]:
    """`records` cut into batches of `size`."""
    return [records[i : i + size] for i in range(0, len(records), size)]


def governed_push(backend: Backend, location: str, chunks: list[list[Record]]) -> float:
    """Seconds to push every batch through one governed session."""
    payloads = [PushPayload(records=tuple(chunk)) for chunk in chunks]
    governance = Governance(audit=MemoryAuditSink())
    config = backend.config(location)
    with registry.open(backend.name, config=config, context=CONTEXT, governance=governance) as s:
        started = time.perf_counter()
        for payload in payloads:
            result = s.push(payload)
            assert not result.rejected, result.rejected[:3]
        return time.perf_counter() - started


def raw_push(backend: Backend, location: str, chunks: list[list[Record]]) -> float:
    """Seconds for the raw client to write every batch into a schema the connector created."""
    with registry.open(backend.name, config=backend.config(location), context=CONTEXT):
        pass  # creates the schema (and nothing else) in the fresh location
    client = backend.raw(location)
    try:
        started = time.perf_counter()
        for chunk in chunks:
            client.push(TENANT, chunk)
        return time.perf_counter() - started
    finally:
        client.close()


def interleaved_queries(
    backend: Backend, location: str, raw_location: str, texts: list[str]
) -> dict[str, float]:
    """Seconds per side for the text queries, session and raw client taking turns.

    The queries run in slices of `SLICE`, alternating which side goes first, so a slow
    spell of the machine lands on both sides alike.
    """
    governance = Governance(audit=MemoryAuditSink())
    config = backend.config(location)
    spent = {"governed": 0.0, "raw": 0.0}
    client = backend.raw(raw_location)
    try:
        with registry.open(
            backend.name, config=config, context=CONTEXT, governance=governance
        ) as session:
            sides: dict[str, Callable[[str], object]] = {
                "governed": lambda text: session.fetch(FetchQuery(text=text, limit=10)),
                "raw": lambda text: client.text_query(TENANT, text, 10),
            }
            for number, start in enumerate(range(0, len(texts), SLICE)):
                order = ["governed", "raw"] if number % 2 == 0 else ["raw", "governed"]
                for side in order:
                    run = sides[side]
                    started = time.perf_counter()
                    for text in texts[start : start + SLICE]:
                        run(text)
                    spent[side] += time.perf_counter() - started
    finally:
        client.close()
    return spent


def check_same_answers(
    backend: Backend, location: str, raw_location: str, texts: list[str]
) -> None:
    """The session and the raw client must find the same memories, or the race is unfair."""
    client = backend.raw(raw_location)
    try:
        config = backend.config(location)
        with registry.open(backend.name, config=config, context=CONTEXT) as session:
            for text in texts[:20]:
                ours = {r.id for r in session.fetch(FetchQuery(text=text, limit=10)).records}
                theirs = set(client.text_query(TENANT, text, 10))
                assert ours == theirs, f"{backend.name} {text!r}: {ours ^ theirs}"
    finally:
        client.close()


QUERY_WORDS = {
    "topic": "one topic word (about 0.5% of memories match)",
    "two-topics": "two topic words (both rare: about one memory matches)",
    "topic-and-filler": "a topic word and a filler word (one rare, one common)",
}
"""The kinds of text query the benchmark can ask, by what their words match."""


def query_text(rng: random.Random, kind: str) -> str:
    """One text query of `kind` (a key of `QUERY_WORDS`)."""
    if kind == "topic":
        return rng.choice(TOPICS)
    if kind == "two-topics":
        return " ".join(rng.sample(TOPICS, 2))
    return f"{rng.choice(TOPICS)} {rng.choice(['meeting', 'note', 'team', 'plan', 'week'])}"


@dataclass
class Result:
    """Medians of one backend's measurements."""

    backend: str
    push_governed: float
    push_raw: float
    query_governed: float
    query_raw: float
    repeats: int


def measure(backend: Backend, args: argparse.Namespace, deadline: float) -> Result:
    """Interleave governed and raw runs until `repeats` are done or the budget is spent."""
    records = memories(args.records)
    chunks = batches(records, args.batch)
    texts = [query_text(random.Random(n), args.query_words) for n in range(args.queries)]
    pushes: dict[str, list[float]] = {"governed": [], "raw": []}
    queries: dict[str, list[float]] = {"governed": [], "raw": []}
    filled = backend.fresh()
    raw_location = filled
    for repeat in range(args.repeats):
        order = ["governed", "raw"] if repeat % 2 == 0 else ["raw", "governed"]
        for side in order:
            location = filled if (side == "governed" and repeat == 0) else backend.fresh()
            run = governed_push if side == "governed" else raw_push
            pushes[side].append(run(backend, location, chunks))
        if repeat == 0:
            backend.settle(filled)
            raw_location = backend.baseline(filled)
            check_same_answers(backend, filled, raw_location, texts)
        for side, seconds in interleaved_queries(backend, filled, raw_location, texts).items():
            queries[side].append(seconds)
        if time.monotonic() > deadline:
            break
    count = len(pushes["raw"])
    return Result(
        backend=backend.label,
        push_governed=args.records / statistics.median(pushes["governed"]),
        push_raw=args.records / statistics.median(pushes["raw"]),
        query_governed=args.queries / statistics.median(queries["governed"]),
        query_raw=args.queries / statistics.median(queries["raw"]),
        repeats=count,
    )


@contextlib.contextmanager
def backends(names: list[str], scratch: Path) -> Iterator[list[Backend]]:
    """The chosen backends, with their servers running for as long as the block runs."""
    with contextlib.ExitStack() as stack:
        chosen = []
        for name in names:
            chosen.append(stack.enter_context(_backend(name, scratch)))
        yield chosen


@contextlib.contextmanager
def _backend(name: str, scratch: Path) -> Iterator[Backend]:
    if name == "sqlite":
        import _memory_sqlite as sqlite_side

        yield Backend(
            "memory.sqlite",
            "memory.sqlite",
            fresh=lambda: str(scratch / f"{uuid.uuid4().hex}.sqlite3"),
            config=sqlite_side.connector_config,
            raw=sqlite_side.RawClient,
        )
    elif name == "redis":
        import _memory_redis as redis_side

        with _server("REDIS_URL", redis_server) as url:
            yield Backend(
                "memory.redis",
                "memory.redis",
                fresh=lambda: f"bench:{uuid.uuid4().hex[:8]}",
                config=lambda prefix: redis_side.connector_config(url, prefix),
                raw=lambda prefix: redis_side.RawClient(url, prefix),
            )
    elif name in ("postgres", "postgres-no-rls"):
        import _memory_postgres as postgres_side

        secured = name == "postgres"
        with _server("DATABASE_URL", postgres_server) as dsn:
            yield Backend(
                "memory.postgres",
                "memory.postgres" if secured else "memory.postgres (row security off)",
                fresh=lambda: f"bench_{uuid.uuid4().hex[:8]}",
                config=lambda schema: {
                    **postgres_side.connector_config(dsn, schema),
                    "row_level_security": secured,
                },
                raw=lambda schema: postgres_side.RawClient(dsn, schema),
                settle=lambda schema: postgres_side.vacuum_analyze(dsn, schema),
                baseline=lambda schema: postgres_side.unsecured_copy(dsn, schema, TENANT),
            )
    else:
        raise SystemExit(
            f"unknown backend {name!r}; choose from sqlite, redis, postgres, postgres-no-rls"
        )


@contextlib.contextmanager
def _server(variable: str, start: Callable[[], Any]) -> Iterator[str]:
    given = os.environ.get(variable)
    if given:
        yield given
        return
    with start() as location:
        yield str(location)


def main() -> None:
    """Run every chosen backend and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,redis,postgres,postgres-no-rls")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=900.0, help="seconds per backend")
    parser.add_argument(
        "--query-words",
        choices=sorted(QUERY_WORDS),
        default="topic",
        help="what the text queries ask: "
        + "; ".join(f"{k}: {v}" for k, v in QUERY_WORDS.items()).replace("%", "%%"),
    )
    args = parser.parse_args()
    results = []
    with (
        tempfile.TemporaryDirectory() as directory,
        backends(args.backends.split(","), Path(directory)) as chosen,
    ):
        for backend in chosen:
            results.append(measure(backend, args, time.monotonic() + args.budget))
    print(
        f"\n{args.records} memories in batches of {args.batch}; {args.queries} text queries "
        f"(limit 10) of {QUERY_WORDS[args.query_words]}; medians; "
        "ratio = governed / raw (target >= 0.80)\n"
    )
    print(
        "| backend | push governed (rec/s) | push raw (rec/s) | ratio "
        "| query governed (q/s) | query raw (q/s) | ratio | repeats |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r.backend} | {r.push_governed:,.0f} | {r.push_raw:,.0f} | "
            f"{r.push_governed / r.push_raw:.2f} | {r.query_governed:,.0f} | "
            f"{r.query_raw:,.0f} | {r.query_governed / r.query_raw:.2f} | {r.repeats} |"
        )


if __name__ == "__main__":
    main()
