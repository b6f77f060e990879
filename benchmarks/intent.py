"""Intent adapters: the collector, intent.local and intent.engine against their baselines.

In one run:
  collector  50 signal sources, each a real HTTP server on 127.0.0.1 answering after 100 ms
             (all 50 in one process apart from the collector's, as sources are other
             services), collected by `collect` (every source in its own governed session) vs
             the slowest single source collected alone. Target: wall time <= 1.5x the slowest.
             The legacy collector (one source after another) is timed too, for reference.
  push       10,000 signals pushed into intent.local through a governed `Session` (batches of
             1,000) vs raw sqlite3 writes (executemany of plain INSERTs, the derived columns
             computed in Python) into a file with the same schema. Target: >= 0.8x.
  fetch      the first ranked page (limit 100) of 10,000 stored intents through the session vs
             the raw SQL that reads the same page and scores it, building the same data dicts
             the session's records hold (the signal and its score) and reading one row more,
             as the session does, to know whether a next page exists. Target: >= 0.8x.
  align      the alignment check of one topic (`intent_aligned`) through the session vs raw
             SQL reading the topic's best intent and scoring it, over 200 topics, 5 times per
             round (a check takes microseconds). Target: >= 0.8x.
  engine     2,000 signals pushed to an Intent Engine through a governed session (bounded
             concurrency over one connection pool) vs the legacy way: one blocking request
             after another, each on a new connection. Target: >= 3x. The engine runs in a
             process of its own (the test server, as a deployment runs the engine apart from
             the platform); the run reports the ratio with the engine answering at once and
             with the engine taking ENGINE_LATENCY per request (its own processing and the
             network), since only that waiting can be overlapped on a 2-core machine.

Each session-vs-raw pair is measured in interleaved rounds and the median is reported; a ratio
is throughput through the library divided by the baseline's (higher is better) except for the
collector line, which is a wall time over the slowest source (lower is better).

Run: python benchmarks/intent.py [--repeats R] [--engine-latency SECONDS] [--only PART ...]
(PART: collector, push, reads (fetch and align), engine; all of them by default)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from integrations.adapters.intent_adapters import (
    DEFAULT_THRESHOLD,
    MOMENTUM_WEIGHTS,
    collect,
    intent_aligned,
)
from integrations.adapters.intent_adapters.local._schema import migrate
from integrations.adapters.intent_adapters.testing._signal_sources import HttpSignalSource
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
CONTEXT = AuthContext(tenant=TENANT, actor="benchmark")
TOPICS = [f"topic {n}" for n in range(200)]
MOMENTUMS = ("surging", "rising", "steady", "emerging")


def signals(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """`count` valid signals over 200 topics, dated within the last two days."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    return [
        {
            "source": rng.choice(("social", "enterprise", "search")),
            "topic": rng.choice(TOPICS),
            "momentum": rng.choice(MOMENTUMS),
            "confidence": round(rng.uniform(0.3, 1.0), 3),
            "authenticity": {"human_source_pct": round(rng.uniform(40, 100), 1)},
            "streak_days": rng.randrange(0, 30),
            "created_at": (now - timedelta(minutes=rng.randrange(0, 2880)))
            .isoformat()
            .replace("+00:00", "Z"),
        }
        for _ in range(count)
    ]


def governance() -> Governance:
    return Governance(audit=MemoryAuditSink())


def median_rounds(rounds: int, *sides: Callable[[], float]) -> list[float]:
    """Run each side `rounds` times, interleaved; the median time of each."""
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(rounds):
        for index, side in enumerate(sides):
            times[index].append(side())
    return [statistics.median(found) for found in times]


# -- collector ----------------------------------------------------------------------------


SOURCES_SCRIPT = """
import contextlib, json, sys
from integrations.adapters.intent_adapters.testing import SignalSourceServer
batches = json.loads(sys.stdin.readline())
with contextlib.ExitStack() as stack:
    for batch in batches:
        print(stack.enter_context(SignalSourceServer(batch, delay=0.1)).signals_url, flush=True)
    sys.stdin.read()
"""


def collector(args: argparse.Namespace) -> list[str]:
    batch = signals(20 * 50, seed=3)
    batches = [batch[i * 20 : (i + 1) * 20] for i in range(50)]
    with server_process(SOURCES_SCRIPT, json.dumps(batches), len(batches)) as urls:
        sources = [HttpSignalSource(url) for url in urls]

        def together() -> float:
            started = time.perf_counter()
            report = collect(sources, context=CONTEXT, governance=governance())
            assert not report.failed, report.lines()
            assert len(report.signals) == 1000, report.lines()
            return time.perf_counter() - started

        def slowest_alone() -> float:
            slowest = 0.0
            for source in sources:
                started = time.perf_counter()
                report = collect([source], context=CONTEXT, governance=governance())
                assert not report.failed
                slowest = max(slowest, time.perf_counter() - started)
            return slowest

        def sequential() -> float:
            started = time.perf_counter()
            for url in urls:
                parts = urlsplit(url)
                connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
                connection.request("GET", parts.path)
                json.loads(connection.getresponse().read())
                connection.close()
            return time.perf_counter() - started

        wall, slowest = median_rounds(args.repeats, together, slowest_alone)
        legacy = median_rounds(1, sequential)[0]
    return [
        row("collector, 50 sources of 100 ms", slowest, wall, "<= 1.5x", lower=True),
        f"  (legacy sequential collection: {legacy:.2f} s; collect: {wall:.2f} s)",
    ]


# -- intent.local ---------------------------------------------------------------------------


def strength(signal: dict[str, Any]) -> float:
    weight = MOMENTUM_WEIGHTS.get(signal["momentum"], 1.0)
    human = float(signal["authenticity"]["human_source_pct"]) / 100
    streak = 1 + min(int(signal["streak_days"]) / 14, 0.3)
    return weight * float(signal["confidence"]) * human * streak


def micros(stamp: str) -> int:
    moment = datetime.fromisoformat(stamp)
    return int(moment.timestamp() * 1_000_000)


def raw_rows(batch: list[dict[str, Any]], ids: list[str]) -> Iterator[tuple[Any, ...]]:
    now = int(time.time() * 1_000_000)
    for seq, (intent_id, signal) in enumerate(zip(ids, batch, strict=True), start=1):
        base = strength(signal)
        created = micros(signal["created_at"])
        key = math.log(base) + created / 1_000_000 / 3600 / 24 if base > 0 else -math.inf
        text = json.dumps(signal, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        yield (
            TENANT,
            intent_id,
            text,
            signal["topic"].casefold(),
            signal["source"],
            base,
            key,
            created,
            now,
            seq,
        )


RAW_INSERT = """
INSERT INTO intents (
    tenant, id, signal, topic_key, source, strength, rank_key, created_at, updated_at, seq
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def raw_file(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    migrate(connection)
    return connection


def local_push(scratch: Path, batch: list[dict[str, Any]], args: argparse.Namespace) -> str:
    ids = [f"s{index:06d}" for index in range(len(batch))]
    records = [Record(id=i, data=s) for i, s in zip(ids, batch, strict=True)]
    chunks = [records[i : i + 1000] for i in range(0, len(records), 1000)]
    counter = iter(range(10_000))

    def governed() -> float:
        path = scratch / f"session-{next(counter)}.sqlite3"
        session = registry.open(
            "intent.local", config={"path": str(path)}, context=CONTEXT, governance=governance()
        )
        with session:
            started = time.perf_counter()
            for chunk in chunks:
                session.push(PushPayload(records=tuple(chunk)))
            return time.perf_counter() - started

    def raw() -> float:
        connection = raw_file(scratch / f"raw-{next(counter)}.sqlite3")
        started = time.perf_counter()
        rows = list(raw_rows(batch, ids))
        for start in range(0, len(rows), 1000):
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(RAW_INSERT, rows[start : start + 1000])
            connection.execute("COMMIT")
        elapsed = time.perf_counter() - started
        connection.close()
        return elapsed

    session_time, raw_time = median_rounds(args.repeats, governed, raw)
    return row("intent.local push, 10,000 signals", raw_time, session_time, ">= 0.8x")


RAW_PAGE = """
SELECT id, signal, strength, created_at FROM intents
WHERE tenant = ? AND deleted = 0 ORDER BY rank_key DESC, id LIMIT 101
"""
RAW_BEST = """
SELECT strength, created_at FROM intents WHERE tenant = ? AND topic_key = ? AND deleted = 0
ORDER BY rank_key DESC, id LIMIT 1
"""


ALIGN_PASSES: Final = 5


def decayed(base: float, created_micros: int, now: float) -> float:
    age_hours = (now - created_micros / 1_000_000) / 3600
    return round(base * math.exp(-age_hours / 24), 3)


def local_reads(scratch: Path, batch: list[dict[str, Any]], args: argparse.Namespace) -> list[str]:
    path = scratch / "reads.sqlite3"
    records = tuple(Record(id=f"s{n:06d}", data=s) for n, s in enumerate(batch))
    session = registry.open(
        "intent.local", config={"path": str(path)}, context=CONTEXT, governance=governance()
    )
    raw = sqlite3.connect(path, isolation_level=None)
    topics = [random.Random(n).choice(TOPICS) for n in range(200)]
    with session:
        for start in range(0, len(records), 1000):
            session.push(PushPayload(records=records[start : start + 1000]))
        raw.execute("ANALYZE")
        query = FetchQuery(limit=100)

        def page_session() -> float:
            started = time.perf_counter()
            for _ in range(200):
                assert len(session.fetch(query).records) == 100
            return time.perf_counter() - started

        def page_raw() -> float:
            started = time.perf_counter()
            for _ in range(200):
                now = time.time()
                rows = raw.execute(RAW_PAGE, (TENANT,)).fetchall()
                page = []
                for intent_id, text, base, created in rows[:100]:
                    data = json.loads(text)
                    data["intent_score"] = decayed(base, created, now)
                    page.append((intent_id, data))
                more = len(rows) > 100
                assert len(page) == 100
                assert more
            return time.perf_counter() - started

        def align_session() -> float:
            started = time.perf_counter()
            for _ in range(ALIGN_PASSES):
                for topic in topics:
                    intent_aligned(session, topic)
            return time.perf_counter() - started

        def align_raw() -> float:
            started = time.perf_counter()
            for _ in range(ALIGN_PASSES):
                for topic in topics:
                    found = raw.execute(RAW_BEST, (TENANT, topic.casefold())).fetchone()
                    _ = found is not None and decayed(found[0], found[1], time.time()) >= (
                        DEFAULT_THRESHOLD
                    )
            return time.perf_counter() - started

        same = [intent_aligned(session, topic) for topic in topics[:20]]
        expected = []
        for topic in topics[:20]:
            found = raw.execute(RAW_BEST, (TENANT, topic.casefold())).fetchone()
            expected.append(
                found is not None and decayed(found[0], found[1], time.time()) >= DEFAULT_THRESHOLD
            )
        assert same == expected, "the session and the raw SQL disagree on alignment"
        fetch_session, fetch_raw = median_rounds(args.repeats, page_session, page_raw)
        align_s, align_r = median_rounds(args.repeats, align_session, align_raw)
    raw.close()
    return [
        row("intent.local ranked fetch (100 of 10,000)", fetch_raw, fetch_session, ">= 0.8x"),
        row("intent.local alignment check", align_r, align_s, ">= 0.8x"),
    ]


# -- intent.engine ----------------------------------------------------------------------------

ENGINE_SCRIPT = """
import sys
from integrations.adapters.intent_adapters.testing import IntentEngineServer
with IntentEngineServer(latency=float(sys.stdin.readline())) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def server_process(script: str, argument: str, count: int) -> Iterator[list[str]]:
    """Test servers started by `script` in a process of their own; their `count` URLs.

    The script reads `argument` as its first line of input, prints one URL per server, and
    serves until its input closes, as a deployment's services run apart from the platform.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(argument + "\n")
        process.stdin.flush()
        urls = [process.stdout.readline().strip() for _ in range(count)]
        if not all(url.startswith("http://127.0.0.1:") for url in urls):
            raise RuntimeError("the server process did not start")
        yield urls
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def engine_push(latency: float, batch: list[dict[str, Any]], args: argparse.Namespace) -> str:
    records = tuple(Record(id=f"e{n:05d}", data=s) for n, s in enumerate(batch))
    with server_process(ENGINE_SCRIPT, str(latency), 1) as (url,):
        parts = urlsplit(url)

        def governed() -> float:
            session = registry.open(
                "intent.engine", config={"url": url}, context=CONTEXT, governance=governance()
            )
            with session:
                started = time.perf_counter()
                result = session.push(PushPayload(records=records))
                elapsed = time.perf_counter() - started
            assert len(result.accepted) == len(records), result.rejected[:3]
            return elapsed

        def legacy() -> float:
            started = time.perf_counter()
            for signal in batch:
                connection = http.client.HTTPConnection(parts.hostname or "", parts.port)
                body = json.dumps(signal)
                headers = {"Content-Type": "application/json"}
                connection.request("POST", "/inject-intent", body=body, headers=headers)
                answer = connection.getresponse()
                assert answer.status == 200
                json.loads(answer.read())
                connection.close()
            return time.perf_counter() - started

        session_time, legacy_time = median_rounds(args.repeats, governed, legacy)
    label = f"intent.engine push, 2,000 signals, engine +{latency * 1000:.0f} ms"
    return row(label, legacy_time, session_time, ">= 3x")


# -- report ---------------------------------------------------------------------------------


def row(label: str, baseline: float, ours: float, target: str, *, lower: bool = False) -> str:
    """One table row: the ratio is the baseline's time over ours (throughput, higher is better),
    or ours over the baseline's when `lower` (a wall time, lower is better)."""
    ratio = ours / baseline if lower else baseline / ours
    return f"{label:<48} {ours:>9.3f} s {baseline:>9.3f} s {ratio:>7.2f}x  {target}"


PARTS: Final = ("collector", "push", "reads", "engine")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--engine-latency", type=float, default=0.005)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="run these parts only (default: all)",
    )
    args = parser.parse_args()
    if not 1 <= args.repeats <= 20:
        parser.error("--repeats is between 1 and 20")
    parts = set(args.only)
    batch = signals(10_000)
    print(f"{'measurement':<48} {'ours':>11} {'baseline':>11} {'ratio':>8}  target")
    with tempfile.TemporaryDirectory(prefix="intent-bench-") as directory:
        scratch = Path(directory)
        if "collector" in parts:
            for line in collector(args):
                print(line, flush=True)
        if "push" in parts:
            print(local_push(scratch, batch, args), flush=True)
        if "reads" in parts:
            for line in local_reads(scratch, batch, args):
                print(line, flush=True)
    if "engine" in parts:
        for latency in (0.0, args.engine_latency):
            print(engine_push(latency, batch[:2000], args), flush=True)


if __name__ == "__main__":
    main()
