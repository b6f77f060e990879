"""A throwaway PostgreSQL cluster for tests and benchmarks.

`postgres_server` creates a cluster in a temporary directory with the installed binaries,
starts ``postgres`` on a free loopback port (its socket directory inside the temporary
directory, durability off: the data is thrown away), creates a plain login role owning a
database, and yields a DSN for that role. The role is neither a superuser nor allowed to
bypass row-level security, so code connecting with the DSN meets the policies a production
application role meets. On exit the server gets a fast shutdown and the directory is removed;
a watchdog does both (immediate shutdown) if the process that started it dies first.

PostgreSQL refuses to run as root: under root the cluster belongs to, and the server runs as,
the ``postgres`` system account.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._watchdog import Watchdog

__all__ = ["postgres_server"]

APP_ROLE: Final = "integrations"
"""The role and database the yielded DSN names."""

SUPERUSER: Final = "postgres"
SYSTEM_ACCOUNT: Final = "postgres"
"""The account the cluster runs as when this process is root."""

START_SECONDS: Final = 30.0
STOP_SECONDS: Final = 15.0
START_ATTEMPTS: Final = 3
"""Starts tried on fresh ports: another process may take a free port before the server binds."""

SETTINGS: Final = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "max_connections=200",
    "shared_buffers=128MB",
)


@dataclass(frozen=True, slots=True)
class _Account:
    """Who runs the cluster: this process (`user` None), or the system account under root."""

    user: str | None
    uid: int
    gid: int

    @property
    def switch_uid(self) -> int | None:
        """The uid subprocesses switch to (None: they keep this process's)."""
        return None if self.user is None else self.uid

    @property
    def switch_gid(self) -> int | None:
        return None if self.user is None else self.gid

    @property
    def switch_groups(self) -> list[int] | None:
        return None if self.user is None else []


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL cluster on a free loopback port in a temporary directory; yield a DSN.

    The DSN is ``postgresql://integrations@127.0.0.1:PORT/integrations`` (trust
    authentication on loopback: the cluster holds nothing worth protecting).
    """
    bindir = _binaries()
    account = _account()
    root = Path(tempfile.mkdtemp(prefix="integrations-postgres-"))
    watchdog = Watchdog(root, signal.SIGQUIT, grace=STOP_SECONDS)
    try:
        os.chmod(root, 0o700)
        if account.user is not None:
            os.chown(root, account.uid, account.gid)
        data = root / "data"
        _run([str(bindir / "initdb"), *_initdb_arguments(data)], account, root)
        process, port = _start(bindir, data, root, account, watchdog)
        try:
            _create_application_role(port)
            yield f"postgresql://{APP_ROLE}@127.0.0.1:{port}/{APP_ROLE}"
        finally:
            _stop(process)
            watchdog.forget()
    finally:
        shutil.rmtree(root, ignore_errors=True)
        watchdog.release()


def _binaries() -> Path:
    """The directory holding initdb and postgres: pg_config's, the newest Debian one, or PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major, reverse=True))
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates.append(Path(on_path).parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    raise RuntimeError(
        "PostgreSQL server binaries (initdb and postgres) were not found: looked in "
        "`pg_config --bindir`, /usr/lib/postgresql/*/bin and PATH. Install the server "
        "(for example the Debian package postgresql) or set DATABASE_URL to a running server."
    )


def _major(path: Path) -> int:
    version = path.parent.name
    return int(version) if version.isdigit() else -1


def _account() -> _Account:
    if os.geteuid() != 0:
        return _Account(user=None, uid=os.geteuid(), gid=os.getegid())
    try:
        entry = pwd.getpwnam(SYSTEM_ACCOUNT)
    except KeyError:
        raise RuntimeError(
            f"PostgreSQL refuses to run as root and there is no {SYSTEM_ACCOUNT!r} system "
            "account to run it as: create one or run the tests as an ordinary user"
        ) from None
    return _Account(user=SYSTEM_ACCOUNT, uid=entry.pw_uid, gid=entry.pw_gid)


def _initdb_arguments(data: Path) -> list[str]:
    return [
        "-D",
        str(data),
        "-A",
        "trust",
        "-U",
        SUPERUSER,
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
        "--no-instructions",
    ]


def _run(command: list[str], account: _Account, root: Path) -> None:
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        check=False,
        env=_environment(account),
        user=account.switch_uid,
        group=account.switch_gid,
        extra_groups=account.switch_groups,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(command[0]).name} failed with exit status {result.returncode}: "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )


def _environment(account: _Account) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    environment["LC_ALL"] = "C"
    if account.user is not None:
        environment["HOME"] = pwd.getpwnam(account.user).pw_dir
        environment["USER"] = environment["LOGNAME"] = account.user
    return environment


def _start(
    bindir: Path, data: Path, root: Path, account: _Account, watchdog: Watchdog
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the server on a free port, retrying on a fresh port when the port was taken."""
    failure = ""
    for attempt in range(START_ATTEMPTS):
        port = _free_port()
        log = root / f"postgres-{attempt}.log"
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root)]
                + [part for setting in SETTINGS for part in ("-c", setting)],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=root,
                env=_environment(account),
                user=account.switch_uid,
                group=account.switch_gid,
                extra_groups=account.switch_groups,
            )
        watchdog.watch(process.pid)
        if _ready(process, port):
            return process, port
        _stop(process)
        watchdog.forget()
        failure = log.read_text(errors="replace").strip()
    raise RuntimeError(f"PostgreSQL did not start after {START_ATTEMPTS} attempts: {failure}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ready(process: subprocess.Popen[bytes], port: int) -> bool:
    """Whether the server accepts connections within `START_SECONDS` (False when it exited)."""
    import psycopg  # the postgres extra: imported only when a server is started

    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with psycopg.connect(_superuser_dsn(port), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    return False


def _superuser_dsn(port: int) -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres"


def _create_application_role(port: int) -> None:
    """A plain login role owning its database: what an application connects as."""
    import psycopg

    with psycopg.connect(_superuser_dsn(port), autocommit=True, connect_timeout=5) as connection:
        connection.execute(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS")
        connection.execute(f"CREATE DATABASE {APP_ROLE} OWNER {APP_ROLE}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Fast shutdown (SIGINT), then immediate shutdown (SIGQUIT), then SIGKILL."""
    for stop_signal in (signal.SIGINT, signal.SIGQUIT, signal.SIGKILL):
        if process.poll() is not None:
            return
        process.send_signal(stop_signal)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            continue
        return
