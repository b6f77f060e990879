"""The throwaway servers the tests start never outlive the run that started them.

A child process starts a redis-server and a PostgreSQL cluster the way the test fixtures do,
reports their process ids and directories, and is then killed with SIGKILL: no ``finally``
block of it runs. Within a generous time bound, both servers must be gone and both
directories removed. A run that ends normally must leave no watchdog behind either. Process
states are read from /proc: the servers' platform is Linux.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import redis

from integrations.adapters.memory_adapters.testing import postgres_server, redis_server

CLEANUP_SECONDS = 60.0
"""How long the servers get to disappear after their starter died: only a hang exceeds it."""

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from urllib.parse import urlsplit

    import psycopg, redis

    from integrations.adapters.memory_adapters.testing import postgres_server, redis_server

    with redis_server() as redis_url, postgres_server() as dsn:
        client = redis.Redis.from_url(redis_url)
        redis_pid = int(client.info("server")["process_id"])
        redis_dir = client.config_get("dir")["dir"]
        client.close()
        superuser = f"postgresql://postgres@127.0.0.1:{urlsplit(dsn).port}/postgres"
        with psycopg.connect(superuser) as connection:
            row = connection.execute("SHOW data_directory").fetchone()
        data = Path(row[0])
        postgres_pid = int((data / "postmaster.pid").read_text().split()[0])
        print(json.dumps({
            "redis": {"pid": redis_pid, "directory": redis_dir},
            "postgres": {"pid": postgres_pid, "directory": str(data.parent)},
        }), flush=True)
        time.sleep(600)
    """
)


def running(pid: int) -> bool:
    """Whether `pid` runs; a zombie waiting for its new parent to reap it has stopped."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


def servers_of_a_killed_run() -> dict[str, Any]:
    """Start the child, read what it started, SIGKILL it; what it had started."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # the child prints one line once both servers run
        assert line, f"the child started no servers: {child.stderr.read() if child.stderr else ''}"
        started: dict[str, Any] = json.loads(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    return started


def left_behind(started: dict[str, Any]) -> list[str]:
    """What of the started servers still runs or still has its directory."""
    found = []
    for name, server in started.items():
        if running(server["pid"]):
            found.append(f"{name} server (pid {server['pid']})")
        if os.path.exists(server["directory"]):
            found.append(f"{name} directory {server['directory']}")
    return found


def test_servers_of_a_sigkilled_run_stop_and_their_directories_go() -> None:
    started = servers_of_a_killed_run()
    deadline = time.monotonic() + CLEANUP_SECONDS
    while left_behind(started) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left_behind(started) == [], f"still there {CLEANUP_SECONDS:.0f} s after SIGKILL"


def watchdogs() -> list[int]:
    """Pids of running server watchdogs (their command line names the watchdog script)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"memory_adapters/testing/_watchdog.py" in command and running(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_a_run_that_ends_normally_leaves_nothing_behind() -> None:
    before = set(watchdogs())
    with redis_server() as url:
        client = redis.Redis.from_url(url)
        redis_directory = str(client.config_get("dir")["dir"])
        client.close()
        assert set(watchdogs()) - before, "redis_server started no watchdog"
    with postgres_server():
        assert set(watchdogs()) - before, "postgres_server started no watchdog"
    assert set(watchdogs()) - before == set()
    assert not os.path.exists(redis_directory)
