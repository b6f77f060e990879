"""A process killed with SIGKILL while pushing leaves a sound file and whole batches only."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from integrations.base import AuthContext, FetchQuery, SyncState, registry

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

BATCHES, SIZE = 200, 500
KILL_AFTER = 10
"""Batches the child must report committed before it is killed."""

PUSHER = """
import sys
from integrations.base import AuthContext, PushPayload, Record, registry

path, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
context = AuthContext(tenant="crash", actor="pusher")
with registry.open("memory.sqlite", config={"path": path}, context=context) as session:
    for batch in range(batches):
        records = tuple(
            Record(
                id=f"b{batch:03d}-{index:03d}",
                data={"text": f"batch {batch} memory {index} of the crash test",
                      "metadata": {"batch": batch}},
            )
            for index in range(size)
        )
        result = session.push(PushPayload(records=records))
        assert not result.rejected, result.rejected
        print(f"committed {batch}", flush=True)
"""


def run_until_killed(path: Path) -> set[int]:
    """Start the pusher, SIGKILL it once it reported `KILL_AFTER` batches; the batches seen."""
    child = subprocess.Popen(
        [sys.executable, "-c", PUSHER, str(path), str(BATCHES), str(SIZE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    committed: set[int] = set()
    buffer = b""
    deadline = time.monotonic() + 120
    try:
        while len(committed) < KILL_AFTER and time.monotonic() < deadline:
            ready, _, _ = select.select([child.stdout], [], [], 1.0)
            if not ready:
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            committed.update(
                int(line.split()[1]) for line in lines if line.startswith(b"committed")
            )
    finally:
        child.send_signal(signal.SIGKILL)
        _, errors = child.communicate(timeout=60)
    assert len(committed) >= KILL_AFTER, errors.decode()
    assert child.returncode == -signal.SIGKILL, "the pusher ended before it was killed"
    return committed


def test_a_killed_writer_leaves_whole_batches_and_a_sound_file(tmp_path: Path) -> None:
    path = tmp_path / "crash.sqlite3"
    reported = run_until_killed(path)

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        raw.execute("INSERT INTO memories_fts (memories_fts) VALUES ('integrity-check')")
        counts = dict(
            raw.execute(
                "SELECT json_extract(metadata, '$.batch'), count(*) FROM memories "
                "WHERE tenant = 'crash' GROUP BY 1"
            ).fetchall()
        )
    raw.close()
    assert set(counts.values()) == {SIZE}, "a batch was written in part"
    assert reported <= set(counts), "a batch reported committed is missing"
    assert len(counts) < BATCHES

    context = AuthContext(tenant="crash", actor="inspector")
    with registry.open("memory.sqlite", config={"path": str(path)}, context=context) as session:
        changes = 0
        state = SyncState()
        for _ in range(BATCHES * SIZE // 1000 + 2):
            result = session.sync(state)
            changes, state = changes + len(result.changes), result.state
            if not result.has_more:
                break
        assert changes == len(counts) * SIZE
        last = max(counts)
        found = session.fetch(FetchQuery(filters={"metadata": {"batch": last}}, limit=1000))
        assert len(found.records) == SIZE
        assert len(session.fetch(FetchQuery(text=f"batch {last} memory 7 crash")).records) >= 1
