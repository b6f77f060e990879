"""Throwaway servers never outlive the process that started them.

A test run that is killed (SIGKILL, an OOM kill, a CI timeout) runs no ``finally`` block, so
a server it started would go on running and its temporary directory would stay. Each server
started by `redis_server` or `postgres_server` therefore gets a watchdog: a small separate
process that holds the read end of a pipe whose write end only the starting process has.
The starter tells it, line by line, which process to stop (``pid N``; ``none`` once it has
stopped and reaped that process itself) and finally ``stopped``, after which the watchdog
exits. When the pipe reaches end-of-file without ``stopped``, the starter has died: the
watchdog stops the server (its stop signal, then SIGKILL after a grace period) and removes
the server's directory.

The watchdog is started before the directory is filled, runs in a session of its own (the
signals a terminal sends to the test run's process group do not reach it), and runs this file
as a script with the standard library alone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Final

__all__ = ["Watchdog"]

STOPPED: Final = b"stopped\n"
"""What the starter writes when it has stopped the server itself."""

READY_TIMEOUT: Final = 30.0
"""Seconds the watchdog gets to start and say it is watching."""


class Watchdog:
    """Stops the watched server and removes `directory` if this process dies first."""

    def __init__(self, directory: Path, stop_signal: signal.Signals, grace: float = 10.0) -> None:
        read_end, write_end = os.pipe()  # both ends close on exec: no other child inherits them
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", __file__, stop_signal.name, str(directory), str(grace)],
                stdin=read_end,
                stdout=subprocess.PIPE,
                start_new_session=True,
            )
        finally:
            os.close(read_end)
        self._pipe: IO[bytes] = os.fdopen(write_end, "wb", buffering=0)
        self._await_watching()

    def watch(self, pid: int) -> None:
        """From now on, `pid` is the server to stop if this process dies."""
        self._pipe.write(f"pid {pid}\n".encode())

    def forget(self) -> None:
        """The watched process was stopped and reaped here: its pid may be reused, leave it."""
        self._pipe.write(b"none\n")

    def release(self) -> None:
        """Everything was cleaned up by the starter: let the watchdog exit without acting."""
        try:
            self._pipe.write(STOPPED)
        except BrokenPipeError:
            pass  # the watchdog is gone already; nothing is left to release
        finally:
            self._pipe.close()
        try:
            self._process.wait(timeout=READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def _await_watching(self) -> None:
        """Return once the watchdog reads its pipe; before that a death would go unseen."""
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if line != b"watching\n":
            self._process.kill()
            self._process.wait()
            self._pipe.close()
            raise RuntimeError(f"the server watchdog did not start (it said {line!r})")


def _watch(stop_signal: signal.Signals, directory: Path, grace: float) -> None:
    sys.stdout.write("watching\n")
    sys.stdout.flush()
    pid: int | None = None
    for line in sys.stdin.buffer:
        if line == STOPPED:
            return
        word, _, value = line.decode().partition(" ")
        pid = int(value) if word == "pid" else None
    if pid is not None:
        _stop(pid, stop_signal, grace)
    shutil.rmtree(directory, ignore_errors=True)


def _stop(pid: int, stop_signal: signal.Signals, grace: float) -> None:
    """`stop_signal`, then SIGKILL once `grace` seconds pass with the server still alive."""
    for current in (stop_signal, signal.SIGKILL):
        try:
            os.kill(pid, current)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie awaiting its new parent's wait counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to a null signal
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


def main(arguments: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("signal", choices=[member.name for member in signal.Signals])
    parser.add_argument("directory", type=Path)
    parser.add_argument("grace", type=float)
    options = parser.parse_args(arguments)
    _watch(signal.Signals[options.signal], options.directory, options.grace)


if __name__ == "__main__":
    main()
