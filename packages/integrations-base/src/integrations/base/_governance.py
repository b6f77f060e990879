"""Governance: the policies, audit sink and secret resolver a session runs under.

Configured in code with `Governance(...)`, or by operators through `GovernanceSettings`
loaded from the environment (``INTEGRATIONS_*``) or a TOML file.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ._audit import (
    AuditSink,
    FanOutAuditSink,
    JsonLinesAuditSink,
    LoggingAuditSink,
    load_audit_sink,
)
from ._exceptions import ConfigError
from ._models import describe_validation_error
from ._policy import CapabilityAllowlist, Policy, PolicySet, QuorumRequired, TenantAndActorRequired
from ._secrets import SecretResolver

__all__ = ["Governance", "GovernanceSettings"]

ENV_PREFIX = "INTEGRATIONS_"


def _default_policies() -> PolicySet:
    return PolicySet([TenantAndActorRequired(), QuorumRequired()])


@dataclass(frozen=True, slots=True)
class Governance:
    """What every session enforces: policies in order, where audit goes, how secrets resolve.

    `audit_required=True` makes every connector fail closed on audit; a connector whose
    manifest says ``audit.required`` fails closed whatever this flag says.
    """

    policies: PolicySet = field(default_factory=_default_policies)
    audit: AuditSink = field(default_factory=LoggingAuditSink)
    audit_required: bool = False
    secrets: SecretResolver = field(default_factory=SecretResolver)


class GovernanceSettings(BaseModel):
    """Operator settings for governance, loadable from the environment or TOML.

    Policy order when built: tenant/actor required, capability allowlist, quorum, then any
    policies passed to `build` in code.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    audit_required: bool = False
    audit_log: bool = True
    audit_jsonl: Path | None = None
    audit_fsync: Literal["event", "batch"] = "event"
    audit_sinks: tuple[str, ...] = ()
    require_tenant: bool = True
    require_actor: bool = True
    capability_allowlist: dict[str, tuple[str, ...]] | None = None
    enforce_quorum: bool = True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> GovernanceSettings:
        """Validate settings, raising `ConfigError` naming each bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = describe_validation_error(error)
            detail = "; ".join(f"{name}: {reason}" for name, reason in problems)
            raise ConfigError(f"invalid governance settings: {detail}", problems) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GovernanceSettings:
        """Read ``INTEGRATIONS_<FIELD>`` variables (lists comma-separated, the allowlist JSON)."""
        environ = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            data[name] = _parse_env_value(name, raw)
        return cls.from_mapping(data)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> GovernanceSettings:
        """Read the ``[tool.integrations.governance]`` or ``[governance]`` table of a TOML file."""
        try:
            document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"cannot read governance settings from {path}: {error}") from None
        table = document.get("tool", {}).get("integrations", {}).get("governance")
        if table is None:
            table = document.get("governance", {})
        return cls.from_mapping(table)

    def build(
        self, *, policies: Iterable[Policy] = (), secrets: SecretResolver | None = None
    ) -> Governance:
        """The `Governance` these settings describe, with extra code-level `policies` last."""
        chain: list[Policy] = []
        if self.require_tenant or self.require_actor:
            chain.append(
                TenantAndActorRequired(tenant=self.require_tenant, actor=self.require_actor)
            )
        if self.capability_allowlist is not None:
            chain.append(CapabilityAllowlist(self.capability_allowlist))
        if self.enforce_quorum:
            chain.append(QuorumRequired())
        chain.extend(policies)
        return Governance(
            policies=PolicySet(chain),
            audit=self._sink(),
            audit_required=self.audit_required,
            secrets=secrets or SecretResolver(),
        )

    def _sink(self) -> AuditSink:
        sinks: list[AuditSink] = []
        if self.audit_log:
            sinks.append(LoggingAuditSink())
        if self.audit_jsonl is not None:
            sinks.append(JsonLinesAuditSink(self.audit_jsonl, fsync=self.audit_fsync))
        sinks.extend(load_audit_sink(name) for name in self.audit_sinks)
        return sinks[0] if len(sinks) == 1 else FanOutAuditSink(sinks)


def _parse_env_value(name: str, raw: str) -> Any:
    if name == "capability_allowlist":
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}: not valid JSON ({error.msg})") from None
    if name == "audit_sinks":
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw
