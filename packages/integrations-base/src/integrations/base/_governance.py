"""Governance: the policies, audit sink and secret resolver a session runs under.

Configured in code with `Governance(...)`, or by operators through `GovernanceSettings`
loaded from the environment (``INTEGRATIONS_*``) or a TOML file.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._audit import (
    AuditSink,
    FanOutAuditSink,
    JsonLinesAuditSink,
    LoggingAuditSink,
    load_audit_sink,
)
from ._egress import EgressPolicy, EgressRule
from ._exceptions import ConfigError
from ._manifest import QUORUM_POLICY_PATTERN
from ._models import describe_validation_error
from ._policy import CapabilityAllowlist, Policy, PolicySet, QuorumRequired, TenantAndActorRequired
from ._resilience import BreakerPolicy, RetryPolicy
from ._secrets import SecretResolver
from ._telemetry import Telemetry
from ._trust import TrustPolicy, TrustSettings
from ._untrusted import SecretReferencePolicy, UntrustedPolicy

__all__ = ["EgressRuleSettings", "Governance", "GovernanceSettings", "UntrustedSettings"]

ENV_PREFIX = "INTEGRATIONS_"


def _default_policies() -> PolicySet:
    return PolicySet([TenantAndActorRequired(), QuorumRequired()])


_DEFAULT_RETRY: Final = RetryPolicy()
_DEFAULT_BREAKER: Final = BreakerPolicy()


@dataclass(frozen=True, slots=True)
class Governance:
    """What every session enforces: policies, audit, secrets, retries and the circuit breaker.

    Policies are asked in order; `audit` is where events go; `secrets` resolves references
    in configs. `audit_required=True` makes every connector fail closed on audit; a connector whose
    manifest says ``audit.required`` fails closed whatever this flag says. `retry` and
    `breaker` apply to every connector but those named in `retry_overrides` and
    `breaker_overrides` (by registry name); a `breaker` of None disables the breaker.
    `untrusted` is what configs from tenants (`UntrustedConfig`) may reference and reach.
    """

    policies: PolicySet = field(default_factory=_default_policies)
    audit: AuditSink = field(default_factory=LoggingAuditSink)
    audit_required: bool = False
    secrets: SecretResolver = field(default_factory=SecretResolver)
    retry: RetryPolicy = _DEFAULT_RETRY
    retry_overrides: Mapping[str, RetryPolicy] = field(default_factory=dict)
    breaker: BreakerPolicy | None = _DEFAULT_BREAKER
    breaker_overrides: Mapping[str, BreakerPolicy | None] = field(default_factory=dict)
    telemetry: Telemetry | Literal["global"] | None = "global"
    """OpenTelemetry reporting: "global" follows the global providers once an SDK sets them."""
    untrusted: UntrustedPolicy = field(default_factory=UntrustedPolicy)
    trust: TrustPolicy = field(default_factory=TrustPolicy)
    """Publisher keys a `Registry` built with this governance accepts (signed manifests)."""

    def __post_init__(self) -> None:
        # Read-only copies: a governance shared by sessions must not change under them.
        for name in ("retry_overrides", "breaker_overrides"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def retry_for(self, connector: str) -> RetryPolicy:
        """The retry policy of connector `connector`: its override, else `retry`."""
        return self.retry_overrides.get(connector, self.retry)

    def breaker_for(self, connector: str) -> BreakerPolicy | None:
        """The breaker policy of connector `connector`: its override, else `breaker`."""
        if connector in self.breaker_overrides:
            return self.breaker_overrides[connector]
        return self.breaker


class EgressRuleSettings(BaseModel):
    """One egress rule as operators write it (see `EgressRule` for the meaning)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    connectors: tuple[str, ...] = ("*",)
    tenants: tuple[str, ...] = ("*",)
    hosts: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()

    def build(self) -> EgressRule:
        """The rule these settings describe."""
        return EgressRule(
            connectors=self.connectors,
            tenants=self.tenants,
            hosts=self.hosts,
            networks=self.networks,
            ports=self.ports,
        )


class UntrustedSettings(BaseModel):
    """What configs from tenants may use: secret reference patterns and egress rules.

    The defaults allow no secret reference at all, and only public addresses on default
    ports (`egress_public`), nothing the operator has not opened with `egress_allow`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    secret_references: tuple[str, ...] = ()
    egress_public: bool = True
    egress_allow: tuple[EgressRuleSettings, ...] = Field(default=())

    @field_validator("secret_references")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        SecretReferencePolicy(value)  # raises ValueError naming a bad pattern
        return value

    @field_validator("egress_allow")
    @classmethod
    def _rules(cls, value: tuple[EgressRuleSettings, ...]) -> tuple[EgressRuleSettings, ...]:
        for rule in value:
            rule.build()  # raises ValueError naming a bad network or port
        return value

    def build(self) -> UntrustedPolicy:
        """The policy these settings describe."""
        return UntrustedPolicy(
            secret_references=SecretReferencePolicy(self.secret_references),
            egress=EgressPolicy(
                rules=tuple(rule.build() for rule in self.egress_allow),
                public=self.egress_public,
            ),
        )


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
    quorum_policies: dict[str, int] = {}
    """Named quorums (``AI_SENSITIVE = 2``) that manifests' actions may name; an unknown name
    denies the action (QUORUM_POLICY_UNKNOWN)."""
    retry: RetryPolicy = _DEFAULT_RETRY
    retry_overrides: dict[str, RetryPolicy] = {}
    breaker: BreakerPolicy | None = _DEFAULT_BREAKER
    breaker_overrides: dict[str, BreakerPolicy | None] = {}
    untrusted: UntrustedSettings = UntrustedSettings()
    trust: TrustSettings = TrustSettings()

    @field_validator("quorum_policies")
    @classmethod
    def _quorum_policies(cls, value: dict[str, int]) -> dict[str, int]:
        for name, count in value.items():
            if not re.match(QUORUM_POLICY_PATTERN, name):
                raise ValueError(f"{name!r} is not a quorum policy name")
            if count < 0:
                raise ValueError(f"quorum policy {name} needs a count of 0 or more")
        return value

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
        """Read ``INTEGRATIONS_<FIELD>`` variables.

        Lists are comma-separated; the allowlist, the quorum policies, the retry and breaker
        policies and their overrides, and the untrusted-config settings are JSON.
        """
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
            chain.append(QuorumRequired(self.quorum_policies))
        chain.extend(policies)
        return Governance(
            policies=PolicySet(chain),
            audit=self._sink(),
            audit_required=self.audit_required,
            secrets=secrets or SecretResolver(),
            retry=self.retry,
            retry_overrides=self.retry_overrides,
            breaker=self.breaker,
            breaker_overrides=self.breaker_overrides,
            untrusted=self.untrusted.build(),
            trust=self.trust.build(),
        )

    def _sink(self) -> AuditSink:
        sinks: list[AuditSink] = []
        if self.audit_log:
            sinks.append(LoggingAuditSink())
        if self.audit_jsonl is not None:
            sinks.append(JsonLinesAuditSink(self.audit_jsonl, fsync=self.audit_fsync))
        sinks.extend(load_audit_sink(name) for name in self.audit_sinks)
        return sinks[0] if len(sinks) == 1 else FanOutAuditSink(sinks)


_JSON_SETTINGS: Final = frozenset(
    {
        "capability_allowlist",
        "quorum_policies",
        "retry",
        "retry_overrides",
        "breaker",
        "breaker_overrides",
        "untrusted",
        "trust",
    }
)


def _parse_env_value(name: str, raw: str) -> Any:
    if name in _JSON_SETTINGS:
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()}: not valid JSON ({error.msg})") from None
    if name == "audit_sinks":
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw
