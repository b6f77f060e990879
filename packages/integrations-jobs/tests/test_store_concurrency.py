"""Leases and fencing under contention, against both stores: threads with store objects of
their own (separate connections) and shared ones, and for SQLite two processes on one file.

Every wait is bounded: barriers and joins have timeouts, child processes a deadline.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pytest

from integrations.jobs._exceptions import LeaseHeld, LeaseLost
from integrations.jobs._store import JobStore

pytestmark = pytest.mark.timeout(180)

THREADS = 6
ROUNDS = 25
WAIT = 60.0
T = "acme"


class Clock(Protocol):
    def __call__(self) -> datetime: ...

    def advance(self, seconds: float) -> datetime: ...


class Backend(Protocol):
    kind: str

    def open(self, clock: Callable[[], datetime]) -> JobStore: ...


def _stores(backend: Backend, clock: Clock, count: int = 3) -> list[JobStore]:
    """Several store objects on the same storage: threads share some, not all."""
    return [backend.open(clock) for _ in range(count)]


def test_exactly_one_thread_wins_each_round(job_backend: Backend, clock: Clock) -> None:
    """Every round the last lease has expired and all threads race for the same pipeline:
    one wins, with a token one above the last round's."""
    stores = _stores(job_backend, clock)

    def expire_every_lease() -> None:
        clock.advance(61)

    barrier = threading.Barrier(THREADS, action=expire_every_lease, timeout=WAIT)

    def race(worker: int) -> list[tuple[int, int]]:
        store = stores[worker % len(stores)]
        wins = []
        for round_ in range(ROUNDS):
            barrier.wait()
            with contextlib.suppress(LeaseHeld):
                wins.append((round_, store.acquire_lease("race", T, f"w{worker}", 60).token))
        return wins

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            results = [
                f.result(timeout=WAIT) for f in [pool.submit(race, w) for w in range(THREADS)]
            ]
    finally:
        for store in stores:
            store.close()

    wins = sorted(win for result in results for win in result)
    assert wins == [(round_, round_ + 1) for round_ in range(ROUNDS)]


def test_concurrent_commits_with_a_stale_token_all_fail(job_backend: Backend, clock: Clock) -> None:
    stores = _stores(job_backend, clock)
    owner = stores[0]
    stale = owner.acquire_lease("orders", T, "old", 30)
    owner.commit_checkpoint(stale, {"cursor": 0}, 1)
    clock.advance(31)
    current = owner.acquire_lease("orders", T, "new", 30)
    barrier = threading.Barrier(THREADS + 1, timeout=WAIT)

    def stale_writer(worker: int) -> int:
        store = stores[worker % len(stores)]
        barrier.wait()
        lost = 0
        for attempt in range(10):
            try:
                store.commit_checkpoint(stale, {"cursor": -attempt}, 1000)
            except LeaseLost:
                lost += 1
            try:
                store.add_dead_letters(stale, "stale-run", [({"id": attempt}, "stale")])
            except LeaseLost:
                lost += 1
        return lost

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(stale_writer, w) for w in range(THREADS)]
            barrier.wait()
            for cursor in range(1, 11):
                stores[1].commit_checkpoint(current, {"cursor": cursor}, 1)
            lost = [f.result(timeout=WAIT) for f in futures]
        checkpoint = owner.checkpoint("orders", T)
        letters = owner.dead_letters("orders", T)
    finally:
        for store in stores:
            store.close()

    assert lost == [20] * THREADS
    assert checkpoint is not None
    assert (checkpoint.state, checkpoint.token, checkpoint.records) == (
        {"cursor": 10},
        current.token,
        11,
    )
    assert letters == []


def test_no_commit_lands_once_the_lease_was_taken_over(job_backend: Backend, clock: Clock) -> None:
    """Writers keep committing with a lease while the same holder re-acquires it (same holder,
    unexpired: only the token tells the leases apart). No commit that started after the
    re-acquisition returned may succeed, and the last checkpoint is the new lease's."""
    stores = _stores(job_backend, clock)
    first = stores[0].acquire_lease("orders", T, "worker", 600)
    taken_over = threading.Event()
    started = threading.Barrier(THREADS + 1, timeout=WAIT)

    def writer(worker: int) -> list[str]:
        store = stores[worker % len(stores)]
        violations = []
        started.wait()
        for attempt in range(40):
            after = taken_over.is_set()
            try:
                store.commit_checkpoint(first, {"writer": worker, "attempt": attempt}, 1)
            except LeaseLost:
                continue
            if after:
                violations.append(f"writer {worker} committed attempt {attempt} after takeover")
        return violations

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(writer, w) for w in range(THREADS)]
            started.wait()
            second = stores[1].acquire_lease("orders", T, "worker", 600)
            taken_over.set()
            stores[2].commit_checkpoint(second, {"writer": "successor"}, 0)
            violations = [v for f in futures for v in f.result(timeout=WAIT)]
        checkpoint = stores[0].checkpoint("orders", T)
    finally:
        for store in stores:
            store.close()

    assert violations == []
    assert second.token > first.token
    assert checkpoint is not None
    assert (checkpoint.state, checkpoint.token) == ({"writer": "successor"}, second.token)


# -- SQLite: two processes on one file --------------------------------------------------------

_CHILD = """
import json, pathlib, random, sys, time
from integrations.jobs._exceptions import LeaseHeld
from integrations.jobs._sqlite_store import SqliteJobStore

path, name, rounds, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), pathlib.Path(sys.argv[4])
order = list(range(rounds))
random.Random(name).shuffle(order)  # each process its own order: they meet all along the way
wins = []
with SqliteJobStore(path, busy_timeout=30) as store:
    (go.parent / f"ready-{name}").touch()
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("the start signal never came")
        time.sleep(0.001)
    began = time.monotonic()
    for i in order:
        try:
            wins.append([i, store.acquire_lease(f"race-{i}", "acme", name, 3600).token])
        except LeaseHeld:
            pass
    ended = time.monotonic()
print(json.dumps({"wins": wins, "began": began, "ended": ended}))
"""


def _children(path: Path, go: Path, count: int, rounds: int) -> list[subprocess.Popen[str]]:
    """Child processes that open the store, say they are ready, wait for `go`, then race."""
    return [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), f"proc-{n}", str(rounds), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(count)
    ]


def _start(go: Path, count: int) -> None:
    """Let the children go once all of them have opened the store (or after a minute)."""
    deadline = time.monotonic() + 60
    while len(list(go.parent.glob("ready-*"))) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    go.touch()


def test_two_processes_racing_on_one_sqlite_file_win_each_round_once(tmp_path: Path) -> None:
    """Both processes open (and so migrate) a new file at once, then race for 150 leases."""
    path, go, rounds = tmp_path / "jobs.db", tmp_path / "go", 150
    children = _children(path, go, 2, rounds)
    try:
        _start(go, 2)
        outputs = [child.communicate(timeout=120) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)

    assert [child.returncode for child in children] == [0, 0], [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    wins = sorted(tuple(win) for report in reports for win in report["wins"])
    assert wins == [(i, 1) for i in range(rounds)]
    # They raced: their attempts overlapped in time (CLOCK_MONOTONIC is system-wide). Which
    # one wins how many is up to SQLite's busy handler, which is not fair.
    assert max(r["began"] for r in reports) < min(r["ended"] for r in reports)


def test_a_lease_taken_in_another_process_fences_this_one(tmp_path: Path) -> None:
    from integrations.jobs._sqlite_store import SqliteJobStore

    path, go = tmp_path / "jobs.db", tmp_path / "go"
    with SqliteJobStore(path) as store:
        lease = store.acquire_lease("race-0", T, "here", 0.001)  # long gone when the child runs
    go.touch()
    child = _children(path, go, 1, 1)[0]
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert json.loads(out)["wins"] == [[0, 2]]

    with SqliteJobStore(path) as store, pytest.raises(LeaseLost):
        store.commit_checkpoint(lease, {}, 0)
