"""The mock connector's configuration model, including the faults a config can inject.

Everything a registry-driven session can only express as data (JSON, TOML, a mapping) lives
here, so a test that never touches the connector object can still make it slow or failing.
"""

from __future__ import annotations

import json
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from integrations.base import (
    AuthError,
    AuthExpired,
    ConnectionFailed,
    ConnectorConfig,
    ConnectorError,
    InvalidRequest,
    NotFound,
    NotSupported,
    RateLimited,
    Record,
    Secret,
    TransientError,
)

__all__ = ["ERROR_KINDS", "ErrorKind", "FaultSpec", "MockConfig", "Operation", "record_problem"]

Operation = Literal["auth", "connect", "fetch", "push", "sync", "revoke"]
"""The connector operations a fault can target and a `Call` can record."""

OPERATIONS: Final[tuple[Operation, ...]] = ("auth", "connect", "fetch", "push", "sync", "revoke")

ErrorKind = Literal[
    "auth",
    "auth_expired",
    "connection",
    "not_found",
    "not_supported",
    "invalid_request",
    "transient",
    "rate_limited",
]
"""Names of the library errors a config-driven fault can raise (configs cannot hold classes)."""

ERROR_KINDS: Final[dict[str, type[ConnectorError]]] = {
    "auth": AuthError,
    "auth_expired": AuthExpired,
    "connection": ConnectionFailed,
    "not_found": NotFound,
    "not_supported": NotSupported,
    "invalid_request": InvalidRequest,
    "transient": TransientError,
    "rate_limited": RateLimited,
}


class FaultSpec(BaseModel):
    """One fault written as data: fail and/or slow down calls of one operation.

    `on_call` counts calls of `operation` on the connector from its creation, starting at 1;
    the fault applies to `times` consecutive calls from there (every later call when `times`
    is None). `after=True` raises once the operation took effect, as a response lost on the way
    back, which is how an idempotent retry is exercised.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    operation: Operation
    error: ErrorKind | None = "transient"
    message: str = "injected fault"
    retry_after: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    delay_seconds: float = Field(default=0.0, ge=0, le=60, allow_inf_nan=False)
    on_call: int = Field(default=1, ge=1)
    times: int | None = Field(default=1, ge=1)
    after: bool = False

    def build_error(self, number: int) -> ConnectorError | None:
        """The exception this fault raises on call `number`, or None for a pure delay."""
        if self.error is None:
            return None
        error_class = ERROR_KINDS[self.error]
        message = f"{self.message} ({self.operation} call #{number})"
        if issubclass(error_class, TransientError):
            return error_class(message, retry_after=self.retry_after)
        return error_class(message)


class MockConfig(ConnectorConfig):
    """Configuration of the mock connector.

    `store` names a shared in-process store: every connector configured with the same name,
    in any session of the process, reads and writes the same data (partitioned by tenant).
    """

    store: str = Field(default="default", min_length=1, max_length=200)
    api_key: Secret | None = None
    latency_seconds: float = Field(default=0.0, ge=0, le=60, allow_inf_nan=False)
    page_size_max: int = Field(default=1000, ge=1, le=10_000)
    sync_page_size: int = Field(default=100, ge=1, le=10_000)
    token_ttl_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    fail_auth: bool = False
    required_fields: tuple[str, ...] = ()
    max_record_bytes: int | None = Field(default=None, ge=2)
    faults: tuple[FaultSpec, ...] = ()


def record_problem(config: MockConfig, record: Record) -> str | None:
    """Why `config` makes the store reject `record`, or None when the record is acceptable.

    Tombstones carry no data, so only live records are checked.
    """
    if record.deleted:
        return None
    missing = [name for name in config.required_fields if name not in record.data]
    if missing:
        return "missing required field(s): " + ", ".join(missing)
    if config.max_record_bytes is not None:
        size = len(json.dumps(record.data, separators=(",", ":"), ensure_ascii=False).encode())
        if size > config.max_record_bytes:
            limit = config.max_record_bytes
            return f"record data is {size} bytes, more than max_record_bytes={limit}"
    return None
