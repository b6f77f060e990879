"""A throwaway `redis-server` for tests and benchmarks.

The server is the installed ``redis-server`` binary, started on a free loopback port in a
temporary directory with persistence off, so nothing it stores outlives it; a watchdog stops
it and removes the directory if the process that started it dies without doing so. RediSearch is
loaded from the Debian module directory when it is installed and asked for; a missing
``redis-server`` is an error, never a silently skipped test.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from ._watchdog import Watchdog

__all__ = ["redis_server"]

SEARCH_MODULE: Final = Path("/usr/lib/redis/modules/redisearch.so")
"""Where the Debian package ``redis-redisearch`` installs the module."""

START_TIMEOUT: Final = 10.0
"""Seconds the server gets to answer PING before the start counts as failed."""

STOP_TIMEOUT: Final = 10.0
"""Seconds the server gets to exit after SHUTDOWN before it is killed."""


@contextmanager
def redis_server(*, search: bool = True) -> Iterator[str]:
    """Start a redis-server on a free loopback port in a temporary directory; yield its URL.

    With `search`, the RediSearch module is loaded when its file is installed (callers that
    need it check the server, as the Redis memory store does). On exit the server is shut
    down and its directory removed.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed (not found on PATH); install it, for example "
            "with: apt-get install redis-server"
        )
    directory = Path(tempfile.mkdtemp(prefix="integrations-redis-"))
    watchdog = Watchdog(directory, signal.SIGTERM, grace=STOP_TIMEOUT)
    try:
        port = _free_port()
        command = [binary, *_arguments(port, directory, search)]
        with open(directory / "redis.log", "wb") as log:
            process = subprocess.Popen(
                command, cwd=directory, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        watchdog.watch(process.pid)
        try:
            _wait_until_ready(process, port, directory / "redis.log")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop(process, port)
            watchdog.forget()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        watchdog.release()


def _arguments(port: int, directory: Path, search: bool) -> list[str]:
    arguments = [
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
    ]  # fmt: skip
    if search and SEARCH_MODULE.is_file():
        arguments += ["--loadmodule", str(SEARCH_MODULE)]
    return arguments


def _free_port() -> int:
    """A loopback port free now; the server binds it right after (a race only with strangers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_until_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with status {process.returncode} at start: "
                + log.read_text(errors="replace")[-2000:]
            )
        if _answers(port, b"PING", b"+PONG"):
            return
        time.sleep(0.02)
    process.kill()
    process.wait()
    raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT:.0f} seconds")


def _answers(port: int, command: bytes, expected: bytes) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            connection.sendall(command + b"\r\n")
            return connection.recv(64).startswith(expected)
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes], port: int) -> None:
    if process.poll() is None:
        _answers(port, b"SHUTDOWN NOSAVE", b"")
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
