"""Throwaway Celery workers: real worker processes for tests and benchmarks.

Each worker is ``integrations jobs worker`` in a subprocess of its own, started from the
installed command (so it runs exactly what users run), logging to a file. A start waits, by
time, for the worker's "ready" line and fails with the log's tail when the process exits or
the time runs out. Workers never outlive the process that started them: on Linux each one
asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), so a test run killed
with SIGKILL leaves no worker consuming from a broker; the context manager stops them on exit
in every other case.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

__all__ = ["READY_MARKER", "CeleryWorker", "celery_workers", "start_worker"]

READY_MARKER: Final = "integrations jobs worker"
"""The start of the line a worker logs once it consumes (followed by its name and "ready")."""

START_TIMEOUT: Final = 45.0
"""Seconds a worker gets to log that it is ready."""

STOP_GRACE: Final = 3.0
"""Seconds between SIGTERM (warm shutdown) and SIGKILL when workers are stopped."""

_PR_SET_PDEATHSIG: Final = 1
_ENTRY: Final = "from integrations.base._cli_entry import main; main()"


@dataclass
class CeleryWorker:
    """One worker process: its node name, process and log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    _ready: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        """The worker's process id (with ``--pool solo``, the process that runs the tasks)."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process.poll() is None

    def log_text(self) -> str:
        """Everything the worker logged so far."""
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the worker logged that it is ready; `RuntimeError` with the log's
        tail when it exits first or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not self._ready:
            text = self.log_text()
            if f"{READY_MARKER} {self.name} ready" in text:
                self._ready = True
                return
            if not self.alive():
                raise RuntimeError(
                    f"celery worker {self.name} exited with status {self.process.returncode} "
                    f"at start:\n{text[-3000:]}"
                )
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    f"celery worker {self.name} was not ready within {timeout:.0f}s:\n"
                    f"{text[-3000:]}"
                )
            time.sleep(0.05)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send `sig` (SIGKILL by default: the worker gets no chance to clean up) and reap."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
        if sig == signal.SIGKILL:
            self.process.wait(timeout=10)

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM (a warm shutdown), then SIGKILL after `grace` seconds."""
        if not self.alive():
            self.process.wait()
            return
        self.kill(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child before exec: ask for SIGKILL when the parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start_worker(
    spec: str | Path,
    broker: str,
    directory: str | Path,
    *,
    store: str | None = None,
    manifests: Sequence[str | Path] = (),
    pool: str = "solo",
    concurrency: int = 1,
    queue: str | None = None,
    name: str | None = None,
    extra: Sequence[str] = (),
) -> CeleryWorker:
    """Start one ``integrations jobs worker`` process (without waiting for it to be ready)."""
    node = name or f"jobs-{uuid.uuid4().hex[:8]}@localhost"
    log = Path(directory) / f"{node.partition('@')[0]}.log"
    command = [sys.executable, "-c", _ENTRY]
    for manifest in manifests:
        command += ["--manifest", str(manifest)]
    command += ["jobs", "worker", str(spec), "--broker", broker, "--name", node]
    command += ["--pool", pool, "--concurrency", str(concurrency)]
    if store is not None:
        command += ["--store", store]
    if queue is not None:
        command += ["--queue", queue]
    command += list(extra)
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=directory,
            preexec_fn=_die_with_parent,  # only prctl, no locks taken
        )
    return CeleryWorker(node, process, log)


@contextlib.contextmanager
def celery_workers(
    spec: str | Path,
    broker: str,
    directory: str | Path,
    *,
    count: int = 2,
    store: str | None = None,
    manifests: Sequence[str | Path] = (),
    pool: str = "solo",
    concurrency: int = 1,
    queue: str | None = None,
    start_timeout: float = START_TIMEOUT,
    extra: Sequence[str] = (),
) -> Iterator[list[CeleryWorker]]:
    """`count` workers for `spec`, started together and ready; stopped on exit.

    `extra`: more ``jobs worker`` options for each (``--loglevel WARNING`` ...).
    """
    workers: list[CeleryWorker] = []
    try:
        for _ in range(count):
            workers.append(
                start_worker(
                    spec,
                    broker,
                    directory,
                    store=store,
                    manifests=manifests,
                    pool=pool,
                    concurrency=concurrency,
                    queue=queue,
                    extra=extra,
                )
            )
        deadline = time.monotonic() + start_timeout
        for worker in workers:
            worker.wait_ready(max(0.1, deadline - time.monotonic()))
        yield workers
    finally:
        for worker in workers:
            if worker.alive():
                worker.kill(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for worker in workers:
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill(signal.SIGKILL)
