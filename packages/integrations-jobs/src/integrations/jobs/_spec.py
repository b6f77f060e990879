"""Pipeline specs: what moves from which source into which destination, for whom, how often.

A spec is data (a TOML file, or the same structure built in Python) validated by pydantic
models, so that one JSON Schema (`jobs_json_schema`) documents every field and a spec written
for one executor runs unchanged on another: the unit of work receives the spec, never live
objects. Validation errors are `SpecError`, naming each bad field by its dotted path.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from integrations.base import ConfigError, GovernanceSettings

from ._exceptions import SpecError

__all__ = [
    "ConcurrencySpec",
    "DestinationSpec",
    "JobsSpec",
    "PipelineSpec",
    "ScheduleSpec",
    "SourceSpec",
    "TenantSpec",
    "TransformSpec",
    "jobs_json_schema",
    "load_spec",
    "parse_duration",
]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
"""Pipeline and tenant names: they appear in store keys, idempotency keys and CLI options."""

Name = Annotated[str, Field(pattern=NAME_PATTERN)]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object, *, allow_zero: bool = False) -> float:
    """Seconds from a number or a string such as ``"90s"``, ``"15m"``, ``"1.5h"``, ``"1d"``.

    Intervals are written by people in TOML files; a bare number means seconds. Zero is
    refused unless `allow_zero` (a retry delay may be zero, an interval may not).
    """
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '15m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: write seconds or '90s', '15m', '2h', '1d'")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError("a duration must be positive")
    return seconds


def _duration_schema(description: str) -> WithJsonSchema:
    """What a duration field accepts, as JSON Schema: seconds, or a string with a unit."""
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": _DURATION.pattern},
            ],
            "description": description,
        }
    )


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSpec(_Spec):
    """Where records come from: a connector read with `sync` (incremental) or `fetch` (paged)."""

    connector: str = Field(min_length=1, description="The registry name of the connector.")
    config: dict[str, JsonValue] = Field(
        default_factory=dict,
        description=(
            "The connector's config; secret fields take references (env:NAME, file:/path), "
            "resolved by the session's governance when it opens."
        ),
    )
    operation: Literal["sync", "fetch"] = Field(
        default="sync",
        description=(
            "sync: the changes since the checkpointed sync state, tombstones included; "
            "fetch: the query's pages, resumed at the checkpointed cursor."
        ),
    )
    query: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="fetch only: the FetchQuery's text and filters (cursor and limit are set).",
    )

    @field_validator("query")
    @classmethod
    def _query_fields(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        unknown = sorted(set(value) - {"text", "filters"})
        if unknown:
            raise ValueError(f"a query holds text and filters, not {unknown[0]!r}")
        return value

    @model_validator(mode="after")
    def _query_needs_fetch(self) -> Self:
        if self.query and self.operation != "fetch":
            raise ValueError("query is only read with operation = 'fetch'")
        return self


class DestinationSpec(_Spec):
    """Where records go: a connector that pushes them."""

    connector: str = Field(min_length=1, description="The registry name of the connector.")
    config: dict[str, JsonValue] = Field(
        default_factory=dict, description="The connector's config (secrets by reference)."
    )
    operation: Literal["push"] = Field(default="push", description="Always push.")


class TenantSpec(_Spec):
    """One tenant a pipeline runs for, and the actor its sessions run as."""

    tenant: Name = Field(description="The tenant: every session of its runs is scoped to it.")
    actor: str = Field(min_length=1, description="Who the sessions act as (audit, policies).")
    scopes: tuple[str, ...] = Field(default=(), description="Scopes of the sessions' context.")
    attributes: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Attributes of the sessions' context (approvals, ...); run_id is set.",
    )
    source: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Keys merged over the source's config for this tenant (its own secrets).",
    )
    destination: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Keys merged over the destination's config for this tenant.",
    )


class TransformSpec(_Spec):
    """Which fields of each record's data reach the destination, and under which names.

    Applied in order: `include` (when given), then `exclude`, then `rename`. Stores answer
    with fields of their own (a memory's ``created_at``) that another store does not accept.
    """

    include: tuple[str, ...] | None = Field(
        default=None, description="Keep only these data fields (all when absent)."
    )
    exclude: tuple[str, ...] = Field(default=(), description="Drop these data fields.")
    rename: dict[str, str] = Field(default_factory=dict, description="Old name -> new name.")


class ScheduleSpec(_Spec):
    """How often a pipeline is due: `every` seconds (or ``"15m"``) after its last success."""

    every: Annotated[
        float,
        Field(gt=0),
        _duration_schema("The interval: seconds, or a string such as '90s', '15m', '2h', '1d'."),
    ]

    @field_validator("every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)


class PipelineSpec(_Spec):
    """One pipeline: a source, a destination, the tenants it runs for, and how."""

    name: Name = Field(description="Unique in the spec; keys checkpoints, leases and runs.")
    source: SourceSpec
    destination: DestinationSpec
    tenants: tuple[TenantSpec, ...] = Field(min_length=1, description="Who it runs for.")
    batch_size: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Records per push (and per fetch page); a sync page is pushed in batches.",
    )
    schedule: ScheduleSpec | None = Field(
        default=None, description="When it is due again; without it, only when asked."
    )
    attempts: int = Field(
        default=3,
        ge=1,
        le=100,
        description=(
            "Tries of a run that fails with a retryable error, each resuming at the last "
            "checkpoint (the sessions retry single calls themselves, under governance)."
        ),
    )
    retry_delay: Annotated[
        float,
        Field(ge=0, le=3600),
        _duration_schema("Wait before the second try, doubling for each further one (1 s)."),
    ] = 1.0
    lease_ttl: Annotated[
        float,
        Field(gt=0, le=86_400),
        _duration_schema("How long a run's lease lasts without renewal (300 s)."),
    ] = 300.0
    transform: TransformSpec = Field(default_factory=TransformSpec)

    @field_validator("retry_delay", "lease_ttl", mode="before")
    @classmethod
    def _durations(cls, value: object) -> object:
        return parse_duration(value, allow_zero=True) if isinstance(value, str) else value

    @field_validator("tenants")
    @classmethod
    def _unique_tenants(cls, value: tuple[TenantSpec, ...]) -> tuple[TenantSpec, ...]:
        names = [tenant.tenant for tenant in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"tenant {repeated[0]!r} is listed twice")
        return value

    def tenant(self, name: str) -> TenantSpec:
        """The tenant called `name`; `SpecError` when the pipeline has none."""
        for tenant in self.tenants:
            if tenant.tenant == name:
                return tenant
        known = ", ".join(t.tenant for t in self.tenants)
        raise SpecError(
            f"pipeline {self.name!r} has no tenant {name!r} (it has: {known})",
            (("tenant", f"unknown tenant {name!r}"),),
        )


class ConcurrencySpec(_Spec):
    """How much runs at once in one executor."""

    workers: int = Field(default=4, ge=1, le=256, description="Runs in flight at once.")
    connectors: dict[str, int] = Field(
        default_factory=dict,
        description="Connector name -> calls to it in flight at once, across all runs.",
    )

    @field_validator("connectors")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for name, limit in value.items():
            if limit < 1:
                raise ValueError(f"the limit of {name!r} must be at least 1")
        return value


class JobsSpec(_Spec):
    """A spec file: its pipelines, the job store, concurrency and governance settings."""

    pipelines: tuple[PipelineSpec, ...] = Field(min_length=1)
    store: str | None = Field(
        default=None,
        description=(
            "The job store: sqlite:///abs/path.db, a file path (relative to the spec file), "
            "or postgresql://...; a CLI --store wins."
        ),
    )
    concurrency: ConcurrencySpec = Field(default_factory=ConcurrencySpec)
    governance: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Governance settings for every session (the keys of GovernanceSettings: "
            "audit_jsonl, capability_allowlist, retry ...); absent: INTEGRATIONS_* variables."
        ),
    )

    @field_validator("pipelines")
    @classmethod
    def _unique_names(cls, value: tuple[PipelineSpec, ...]) -> tuple[PipelineSpec, ...]:
        names = [pipeline.name for pipeline in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"pipeline {repeated[0]!r} is defined twice")
        return value

    @field_validator("governance")
    @classmethod
    def _governance(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                GovernanceSettings.from_mapping(value)
            except ConfigError as error:
                raise ValueError(str(error)) from None
        return value

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JobsSpec:
        """Validate `data`; `SpecError` names every bad field by its dotted path."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise _spec_error(error) from None

    def pipeline(self, name: str) -> PipelineSpec:
        """The pipeline called `name`; `SpecError` when there is none."""
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        known = ", ".join(p.name for p in self.pipelines)
        raise SpecError(
            f"no pipeline {name!r} in the spec (it has: {known})",
            (("pipeline", f"unknown pipeline {name!r}"),),
        )

    def governance_settings(self) -> GovernanceSettings | None:
        """The spec's governance settings, or None when it leaves them to the environment."""
        return None if self.governance is None else GovernanceSettings.from_mapping(self.governance)


def _spec_error(error: ValidationError) -> SpecError:
    """The problems, minus the echoes: pydantic drops an invalid item from a list and then
    also reports the list as too short, which would send the reader to the wrong field."""
    items = error.errors(include_url=False, include_input=False)
    locations = [tuple(item["loc"]) for item in items]
    problems = tuple(
        (".".join(str(part) for part in item["loc"]) or "<root>", item["msg"])
        for item in items
        if not (item["type"] == "too_short" and _encloses(tuple(item["loc"]), locations))
    )
    detail = "; ".join(f"{field}: {reason}" for field, reason in problems)
    return SpecError(f"invalid jobs spec: {detail}", problems)


def _encloses(location: tuple[object, ...], locations: Sequence[tuple[object, ...]]) -> bool:
    """Whether another problem lies inside `location` (an item of the list it names)."""
    return any(
        len(other) > len(location) and other[: len(location)] == location for other in locations
    )


def load_spec(path: str | Path) -> JobsSpec:
    """Read and validate a TOML spec file; a relative ``store`` path is made relative to it.

    A file that cannot be read or is not TOML is a `SpecError` too (field ``<file>``), so a
    caller handles one error for everything wrong with a spec.
    """
    location = Path(path)
    try:
        data = tomllib.loads(location.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise SpecError(f"cannot read {location}: {error}", (("<file>", str(error)),)) from None
    spec = JobsSpec.from_mapping(data)
    if spec.store is not None and _is_relative_path(spec.store):
        store = str((location.parent / spec.store).resolve())
        spec = spec.model_copy(update={"store": store})
    return spec


def _is_relative_path(store: str) -> bool:
    return "://" not in store and not Path(store).is_absolute()


def jobs_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of spec documents, as `integrations jobs schema` prints."""
    schema = JobsSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "integrations jobs spec"
    return schema
