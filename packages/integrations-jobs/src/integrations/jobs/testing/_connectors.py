"""Connectors for testing and measuring pipelines across processes.

A Celery worker is another process, so the in-memory mock cannot serve as a source or
destination there: its data lives in the process that wrote it. These connectors keep their
data in files (``memory.sqlite``) or generate it, and take every test behaviour from their
config, which the spec carries to every worker:

- ``jobs-testing.sqlite``: ``memory.sqlite`` plus a delay per read (a slow, I/O-bound
  source), reads that always fail (a source that keeps failing), ids the push refuses (dead
  letters), and a gate: the chosen push of the first session to reach it while the gate is
  armed writes its batch, says so in a file, and waits until the gate is lifted, so a test
  can kill the worker at a known point (the destination holds the batch, the checkpoint
  does not yet).
- ``jobs-testing.generated``: a sync source that makes up ``records`` records per tenant and
  sleeps ``page_delay_seconds`` per page, as a remote API would; nothing to seed.

They are declared by `write_testing_manifest` (pass the file to ``integrations --manifest``), not
by the distribution's entry points, so they never appear in a production registry.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

from pydantic import Field

from integrations.adapters.memory_adapters.sqlite import SqliteMemoryConfig, SqliteMemoryConnector
from integrations.base import (
    AuthContext,
    AuthToken,
    BaseConnector,
    Capability,
    Connection,
    ConnectionFailed,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    PushPayload,
    PushResult,
    Record,
    Rejection,
    RevokeResult,
    Secret,
    SyncResult,
    SyncState,
    TransientError,
)

__all__ = [
    "GATE_HOLD",
    "REFUSED_REASON",
    "GeneratedConfig",
    "GeneratedSource",
    "TestingSqliteConfig",
    "TestingSqliteConnector",
    "paused_pids",
    "write_testing_manifest",
]

GATE_HOLD: Final = "hold"
"""The file in ``gate_dir`` that arms the gate; removing it lets the paused push return."""

_GATE_CLAIM: Final = "claimed"
_PAUSED_PREFIX: Final = "paused-"
REFUSED_REASON: Final = "refused by the test destination (reject_ids)"
"""The rejection reason `TestingSqliteConnector` gives the ids in its ``reject_ids``."""


class TestingSqliteConfig(SqliteMemoryConfig):
    """``memory.sqlite``'s config plus the behaviours a test asks for."""

    __test__: ClassVar[bool] = False  # not a pytest test class despite its name

    page_delay_seconds: float = Field(default=0.0, ge=0, le=60, allow_inf_nan=False)
    """Sleep before every read (sync or fetch): a source that answers slowly."""

    fail_reads: Literal["connection", "transient"] | None = None
    """Every read fails with `ConnectionFailed` or `TransientError` (a source that is down)."""

    reject_ids: tuple[str, ...] = ()
    """Record ids a push rejects, with `REFUSED_REASON`; the others are written."""

    gate_dir: str | None = None
    """A directory: while it holds `GATE_HOLD`, the first push to claim the gate writes its
    batch, creates ``paused-<pid>`` there and waits until `GATE_HOLD` is removed."""

    gate_on_push: int = Field(default=1, ge=1)
    """Which push of a session may claim the gate (1: the first), so that earlier batches are
    committed before the pause."""

    gate_timeout_seconds: float = Field(default=60.0, gt=0, le=600, allow_inf_nan=False)
    """The longest a paused push waits (a test that forgot to lift the gate still ends)."""


class TestingSqliteConnector(SqliteMemoryConnector):
    """``memory.sqlite`` with the slow, failing, refusing and gated behaviours of its config."""

    __test__: ClassVar[bool] = False
    config_model: ClassVar[type[ConnectorConfig]] = TestingSqliteConfig

    _testing: TestingSqliteConfig | None = None
    _pushes: int = 0

    def connect(self, config: SqliteMemoryConfig) -> Connection:
        """Open the file, remembering the testing settings."""
        connection = super().connect(config)
        self._testing = config if isinstance(config, TestingSqliteConfig) else None
        self._pushes = 0
        return connection

    def sync(self, state: SyncState) -> SyncResult:
        """`memory.sqlite`'s sync, after the configured delay or failure."""
        self._before_read()
        return super().sync(state)

    def fetch(self, query: FetchQuery) -> FetchResult:
        """`memory.sqlite`'s fetch, after the configured delay or failure."""
        self._before_read()
        return super().fetch(query)

    def push(self, payload: PushPayload) -> PushResult:
        """Write what is not refused, then stop at the gate if it is armed for this push."""
        testing = self._testing
        refused = set(testing.reject_ids) if testing is not None else set()
        kept = tuple(record for record in payload.records if record.id not in refused)
        result = super().push(payload.model_copy(update={"records": kept}))
        rejections = tuple(
            Rejection(id=record.id, reason=REFUSED_REASON)
            for record in payload.records
            if record.id in refused
        )
        self._pushes += 1
        if (
            testing is not None
            and testing.gate_dir is not None
            and self._pushes == testing.gate_on_push
        ):
            _pause_at_gate(Path(testing.gate_dir), testing.gate_timeout_seconds)
        return PushResult(accepted=result.accepted, rejected=result.rejected + rejections)

    def _before_read(self) -> None:
        testing = self._testing
        if testing is None:
            return
        if testing.page_delay_seconds:
            time.sleep(testing.page_delay_seconds)
        if testing.fail_reads == "connection":
            raise ConnectionFailed("jobs-testing.sqlite: the source is down (fail_reads)")
        if testing.fail_reads == "transient":
            raise TransientError("jobs-testing.sqlite: the source is busy (fail_reads)")


def _pause_at_gate(gate: Path, timeout: float) -> None:
    """Hold the calling push while the gate is armed, if this is the push that claimed it.

    Only one push ever claims a gate (an exclusive create), so the worker that takes over
    after a kill passes through.
    """
    if not (gate / GATE_HOLD).exists():
        return
    try:
        os.close(os.open(gate / _GATE_CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    (gate / f"{_PAUSED_PREFIX}{os.getpid()}").touch()
    deadline = time.monotonic() + timeout
    while (gate / GATE_HOLD).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def paused_pids(gate_dir: str | Path) -> list[int]:
    """The processes paused at (or once paused at) the gate in `gate_dir`."""
    return sorted(
        int(path.name.removeprefix(_PAUSED_PREFIX))
        for path in Path(gate_dir).glob(f"{_PAUSED_PREFIX}*")
    )


class GeneratedConfig(ConnectorConfig):
    """How many records each tenant has, how they are paged, how slow a page is."""

    records: int = Field(default=1000, ge=0, le=10_000_000)
    page_size: int = Field(default=100, ge=1, le=10_000)
    page_delay_seconds: float = Field(default=0.02, ge=0, le=60, allow_inf_nan=False)
    text_bytes: int = Field(default=64, ge=1, le=100_000)


class GeneratedSource(BaseConnector[GeneratedConfig]):
    """A sync source whose records are made up: ``<tenant>-<n>`` for n below ``records``.

    The state is the offset reached, so a second run finds nothing new. Every page costs
    ``page_delay_seconds`` of sleep, standing for the round trip to a remote API.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.SYNC})
    config_model: ClassVar[type[ConnectorConfig]] = GeneratedConfig

    def __init__(self) -> None:
        self._tenant = ""
        self._config = GeneratedConfig()

    def auth(self, context: AuthContext) -> AuthToken:
        """Remember the tenant: it names the records."""
        self._tenant = context.tenant or "-"
        return AuthToken(value=Secret(secrets.token_urlsafe(12)))

    def connect(self, config: GeneratedConfig) -> Connection:
        """Nothing to open; keep the config."""
        self._config = config
        return Connection(connection_id=f"generated-{secrets.token_hex(4)}")

    def sync(self, state: SyncState) -> SyncResult:
        """The next page after the state's offset, after the page's delay."""
        config = self._config
        offset = state.bookmarks.get("offset", 0)
        start = offset if isinstance(offset, int) else 0
        end = min(start + config.page_size, config.records)
        if config.page_delay_seconds:
            time.sleep(config.page_delay_seconds)
        filler = "x" * config.text_bytes
        changes = tuple(
            Record(id=f"{self._tenant}-{n}", data={"text": f"{n} {filler}"})
            for n in range(start, end)
        )
        return SyncResult(
            state=SyncState(bookmarks={"offset": end}),
            changes=changes,
            has_more=end < config.records,
        )

    def revoke(self, token: AuthToken) -> RevokeResult:
        """Nothing to release."""
        return RevokeResult(revoked=True)


def write_testing_manifest(path: str | Path) -> Path:
    """Write the manifest declaring the testing connectors to `path`; return it.

    Give it to ``integrations --manifest PATH`` (workers too) or `Registry.load_manifest`.
    """
    module = __name__
    document: dict[str, Any] = {
        "schema_version": 1,
        "connectors": [
            {
                "name": "jobs-testing.sqlite",
                "module": module,
                "class": "TestingSqliteConnector",
                "description": "memory.sqlite with delays, failures, refusals and a gate.",
                "version": "0.1.0",
                "capabilities": ["fetch", {"action": "push", "idempotent": True}, "sync"],
                "contract": ">=1.0,<2",
                "tags": ["testing"],
            },
            {
                "name": "jobs-testing.generated",
                "module": module,
                "class": "GeneratedSource",
                "description": "Made-up records per tenant, with a delay per page.",
                "version": "0.1.0",
                "capabilities": ["sync"],
                "contract": ">=1.0,<2",
                "tags": ["testing"],
            },
        ],
    }
    target = Path(path)
    target.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return target
