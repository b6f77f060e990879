"""Typed, immutable models for every argument and result of the connector contract.

The models are shared by the sync `Connector` and the async twin, so validation is written
once. They are frozen pydantic models: instances are hashable where their fields are, and
sequences are tuples so that a result cannot be altered after it was produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    ValidationError,
    computed_field,
)

from ._egress import UNRESTRICTED, Destination, EgressGuard
from ._exceptions import ConfigError, InvalidRequest
from ._secret import RESOLVER_CONTEXT_KEY, Secret

if TYPE_CHECKING:
    from ._secrets import ReferenceResolver

__all__ = [
    "ActionChunk",
    "ActionRequest",
    "ActionResult",
    "AuthContext",
    "AuthToken",
    "Connection",
    "ConnectorConfig",
    "FetchQuery",
    "FetchResult",
    "JsonObject",
    "PushPayload",
    "PushResult",
    "Record",
    "Rejection",
    "RevokeResult",
    "SyncResult",
    "SyncState",
    "describe_validation_error",
]

JsonObject = dict[str, JsonValue]
"""A JSON object: what records, filters and bookmarks carry."""

NonEmptyStr = Annotated[str, Field(min_length=1, max_length=1024)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def format_utc(moment: datetime) -> str:
    """The one spelling of a moment the library emits: RFC 3339 in UTC with a ``Z`` suffix.

    The same spelling pydantic uses when it serialises a UTC datetime, so a record's
    ``updated_at`` and the timestamps stores, audit events and the CLI write all read alike.
    A naive datetime is refused rather than guessed.
    """
    if moment.tzinfo is None:
        raise ValueError("format_utc needs a timezone-aware datetime")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def describe_validation_error(error: ValidationError) -> tuple[tuple[str, str], ...]:
    """Return (field, reason) pairs from pydantic's error locations, never the input values."""
    return tuple(
        (".".join(str(part) for part in item["loc"]) or "<root>", item["msg"])
        for item in error.errors(include_url=False, include_input=False)
    )


class AuthContext(_Model):
    """Who is calling: the tenant and actor an operation runs for, with scopes and attributes."""

    tenant: str | None = None
    actor: str | None = None
    scopes: frozenset[str] = frozenset()
    attributes: JsonObject = Field(default_factory=dict)


class AuthToken(_Model):
    """The credential `auth` returns; its value is a `Secret` and never shown."""

    value: Secret
    token_type: str = "bearer"
    expires_at: AwareDatetime | None = None
    scopes: frozenset[str] = frozenset()

    def is_expired(self, at: datetime | None = None) -> bool:
        """Whether the token has expired at `at` (now, in UTC, by default)."""
        if self.expires_at is None:
            return False
        return (at or _utcnow()) >= self.expires_at


class ConnectorConfig(_Model):
    """Base class of every connector's configuration model (one pydantic model per connector).

    Fields typed `Secret` are masked everywhere. `from_mapping` is the validating constructor
    that turns pydantic's errors into the library's `ConfigError`.

    A connector that opens network connections lists where in `destinations()` and connects
    through `egress` (the HTTP transport of `integrations.base.http`, or
    `EgressGuard.addresses` for other drivers): a session then refuses the destinations of a
    config from a tenant before the connector is called, and pins the addresses it checked.
    """

    _egress: EgressGuard | None = PrivateAttr(default=None)

    def destinations(self) -> tuple[Destination, ...]:
        """The network destinations this config makes the connector reach (none by default)."""
        return ()

    def admit_untrusted(self) -> None:
        """Raise `PolicyError` when this config, written by a tenant, may not be used as it is.

        Called by a session for an `UntrustedConfig` after its references and destinations
        passed, before the connector is called, so that a refusal is audited as a denial.
        For what a config names beyond secrets and addresses: a class to load, a file, an
        option only the platform may set. Accepts everything by default.
        """

    @property
    def egress(self) -> EgressGuard:
        """The guard every connection of the connector goes through.

        Unrestricted for configs the platform wrote; for a config from a tenant, the guard
        the session checked `destinations()` with, holding the addresses it pinned.
        """
        return self._egress or UNRESTRICTED

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, secrets: ReferenceResolver | None = None
    ) -> Self:
        """Validate `data` into this config model, raising `ConfigError` naming each bad field.

        With `secrets`, references in `Secret` fields (``env:NAME``, ``file:/path`` ...) are
        resolved; a missing secret raises `SecretError` naming the reference.
        """
        context = {RESOLVER_CONTEXT_KEY: secrets} if secrets is not None else None
        try:
            return cls.model_validate(data, context=context)
        except ValidationError as error:
            problems = describe_validation_error(error)
            detail = "; ".join(f"{field}: {reason}" for field, reason in problems)
            raise ConfigError(f"invalid {cls.__name__}: {detail}", problems) from None

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """The JSON Schema of this configuration model."""
        return cls.model_json_schema()


class Connection(_Model):
    """A handle on an open connection; the connector keeps the live resources itself."""

    connection_id: NonEmptyStr
    opened_at: AwareDatetime = Field(default_factory=_utcnow)
    info: JsonObject = Field(default_factory=dict)


class Record(_Model):
    """One JSON-serialisable record exchanged with an external system.

    `deleted` marks a tombstone: pushed, it deletes the record; returned by `sync`, it reports
    a deletion.
    """

    id: NonEmptyStr
    data: JsonObject = Field(default_factory=dict)
    deleted: bool = False
    updated_at: AwareDatetime | None = None


class FetchQuery(_Model):
    """What to fetch: free text and/or filters, with cursor pagination."""

    text: str | None = None
    filters: JsonObject = Field(default_factory=dict)
    cursor: str | None = None
    limit: int = Field(default=100, ge=1, le=10_000)


class FetchResult(_Model):
    """One page of records; `next_cursor` is None on the last page."""

    records: tuple[Record, ...] = ()
    next_cursor: str | None = None


class PushPayload(_Model):
    """Records to write; an idempotency key makes a repeated push safe to retry."""

    records: tuple[Record, ...]
    idempotency_key: str | None = None


class Rejection(_Model):
    """A record a push did not accept, with the reason."""

    id: str
    reason: str


class PushResult(_Model):
    """What a push accepted (record ids) and what it rejected (with reasons)."""

    accepted: tuple[str, ...] = ()
    rejected: tuple[Rejection, ...] = ()


class SyncState(_Model):
    """Where a previous sync stopped: an opaque cursor and JSON bookmarks.

    The state is JSON-serialisable so a caller can persist it between runs.
    """

    cursor: str | None = None
    bookmarks: JsonObject = Field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise the state for storage."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> SyncState:
        """Restore a state saved by `to_json`; a damaged state raises `InvalidRequest`."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as error:
            detail = "; ".join(f"{f}: {r}" for f, r in describe_validation_error(error))
            raise InvalidRequest(f"invalid sync state: {detail}") from None


class SyncResult(_Model):
    """The changes since the given state, in a stable order, and the state to resume from."""

    state: SyncState
    changes: tuple[Record, ...] = ()
    has_more: bool = False

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented computed_field use
    @property
    def upserted(self) -> int:
        """Number of created or updated records in `changes`."""
        return sum(1 for record in self.changes if not record.deleted)

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented computed_field use
    @property
    def deleted(self) -> int:
        """Number of deletions (tombstones) in `changes`."""
        return sum(1 for record in self.changes if record.deleted)


class RevokeResult(_Model):
    """Whether the token was revoked, with an optional detail."""

    revoked: bool
    detail: str = ""


class ActionRequest(_Model):
    """A named action to run: its name, its input and an optional idempotency key.

    The input is a JSON object that the session has already checked against the action's
    JSON Schema, so a connector may rely on its shape.
    """

    action: NonEmptyStr
    input: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = None


class ActionResult(_Model):
    """What a named action answered: a JSON object, and the usage it reports (token counts).

    `usage` is recorded in the action's audit event; `output` never is.
    """

    action: NonEmptyStr
    output: dict[str, Any] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)


class ActionChunk(_Model):
    """One piece of a streamed action; the last one may carry the usage of the whole stream."""

    delta: dict[str, Any] = Field(default_factory=dict)
    usage: dict[str, int] = Field(default_factory=dict)
