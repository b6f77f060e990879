"""Deprecated: the legacy OpenAI connector, kept working on ``vault.openai``.

Use the ``vault.openai`` connector through a governed session instead (see the migration
guide)::

    from integrations.base import AuthContext, registry

    context = AuthContext(tenant="acme", actor="alice", attributes={"approvals": ["bob", "carol"]})
    with registry.open("vault.openai", context=context) as session:
        result = session.invoke("model_invoke", {"model": "gpt-4o-mini", "messages": [...]})

What still works, unchanged for its callers:

- ``ConnectorConfig(base_url, timeout_seconds, max_retries, model)``, a dataclass whose
  defaults are read from ``config/openai.defaults.json`` (package data beside this module,
  next to ``schemas/``, the actions' input schemas, the same files ``vault.openai`` uses);
- ``VaultAuthProvider(env_key="PV_OPENAI_API_KEY").get_credentials()``: ``{"api_key": ...}``
  from the environment, or ``RuntimeError("OPENAI_API_KEY_MISSING")``;
- ``OpenAIConnector(config=None, auth_provider=None, audit_hook=None)``: ``id``
  ``"pv.ai.openai"``, ``domain`` ``"ai"``, ``version``, ``capabilities()``, ``health()``,
  ``validate(context, action)`` (``ValueError`` ``TENANT_REQUIRED``, ``ACTOR_REQUIRED`` or
  ``ACTION_NOT_SUPPORTED``; context keys ``tenant_id`` and ``actor_id``) and
  ``execute(context, action, payload)``: ``RuntimeError("QUORUM_REQUIRED")`` when the
  context has no ``quorum``; else the default model filled in and the provider's JSON body
  returned, with ``audit_hook(event, payload)`` called for ``request``, ``execution`` and
  ``error``.

Underneath, `execute` opens a governed session on ``vault.openai`` from the default registry
(tenant and actor from the context, the quorum's approvers as the context's ``approvals``),
calls ``session.invoke(action, payload)`` with ``max_retries`` as the retry policy's
attempts (the legacy default 3 meant three attempts; 0 means one), and closes the session:
the input is checked against the action's schema, the policies and quorum run, every
attempt is audited. The API key travels as a secret
reference (``env:<env_key>``) and is resolved by the session; a custom provider's key is
passed as a ``literal:`` reference, never logged. The registry's governance decides the
quorum each action needs (``[governance.quorum_policies]``); when it defines no policy for
an action, the shim asks for what the legacy connector checked, one quorum record.

Each use (building a config, a provider or a connector, and each ``execute``) emits a
`DeprecationWarning` that names the replacement.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata, resources
from typing import Any, Final

from integrations.adapters.vault_connectors.openai import MODEL_INVOKE, TOOL_CALL
from integrations.base import (
    AuthContext,
    EnvSecretProvider,
    Governance,
    IntegrationsError,
    Policy,
    PolicySet,
    QuorumRequired,
    RetryPolicy,
    SecretError,
)
from integrations.base.registry import default_registry

__all__ = ["ConnectorConfig", "OpenAIConnector", "VaultAuthProvider", "load_defaults"]

CONNECTOR: Final = "vault.openai"
"""The registry name of the connector the shim runs on."""

LEGACY_QUORUM: Final = 1
"""Approvers an action needs when the governance defines no quorum policy for it: the legacy
connector only checked that the context carried a quorum."""

QUORUM_POLICIES: Final = ("AI_SENSITIVE", "AI_TOOL")
"""The quorum policies the manifest names for ``model_invoke`` and ``tool_call``."""

_DEFAULTS_FILE: Final = "openai.defaults.json"
_WARNING: Final = (
    "vault_connectors.ai.openai.connector.{name} is deprecated: open the 'vault.openai' "
    "connector with registry.open(...) and call session.invoke(action, input) ({hint})"
)


def _deprecated(name: str, hint: str) -> None:
    warnings.warn(_WARNING.format(name=name, hint=hint), DeprecationWarning, stacklevel=3)


def load_defaults() -> dict[str, Any]:
    """The legacy defaults, from ``config/openai.defaults.json`` beside this module."""
    text = resources.files(__package__).joinpath("config", _DEFAULTS_FILE).read_text("utf-8")
    defaults: dict[str, Any] = json.loads(text)
    return defaults


_DEFAULTS: Final = load_defaults()


@dataclass
class ConnectorConfig:
    """Deprecated: the API's base URL, timeout, attempts and default model."""

    base_url: str = field(default=str(_DEFAULTS["base_url"]))
    timeout_seconds: float = field(default=float(_DEFAULTS["timeout_seconds"]))
    max_retries: int = field(default=int(_DEFAULTS["max_retries"]))
    model: str = field(default=str(_DEFAULTS["model"]))

    def __post_init__(self) -> None:
        _deprecated("ConnectorConfig", "OpenAIConfig(url=..., timeout_seconds=..., model=...)")

    def to_config(self, api_key: str) -> dict[str, Any]:
        """The ``vault.openai`` config: `api_key` is a secret reference."""
        return {
            "url": self.base_url,
            "timeout_seconds": self.timeout_seconds,
            "model": self.model,
            "api_key": api_key,
        }


class VaultAuthProvider:
    """Deprecated: the API key from an environment variable (a secret reference now)."""

    def __init__(self, env_key: str = "PV_OPENAI_API_KEY") -> None:
        _deprecated("VaultAuthProvider", f"config api_key='env:{env_key}'")
        self.env_key = env_key

    def __repr__(self) -> str:
        return f"{type(self).__name__}(env_key={self.env_key!r})"

    @property
    def reference(self) -> str:
        """The secret reference the session resolves: ``env:<env_key>``."""
        return f"env:{self.env_key}"

    def get_credentials(self) -> dict[str, str]:
        """``{"api_key": ...}``; ``RuntimeError("OPENAI_API_KEY_MISSING")`` when unset."""
        try:
            return {"api_key": EnvSecretProvider().resolve(self.env_key)}
        except SecretError:
            raise RuntimeError("OPENAI_API_KEY_MISSING") from None


AuditHook = Callable[[str, dict[str, Any]], None]


class OpenAIConnector:
    """Deprecated: the legacy connector, each ``execute`` a governed ``vault.openai`` session."""

    id: Final = "pv.ai.openai"
    domain: Final = "ai"
    version: Final = metadata.version("integrations-adapters-vault")

    def __init__(
        self,
        config: ConnectorConfig | None = None,
        auth_provider: Any = None,
        audit_hook: AuditHook | None = None,
    ) -> None:
        _deprecated("OpenAIConnector", "registry.open('vault.openai', ...)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # warned once, here
            self.config = config if config is not None else ConnectorConfig()
            self.auth_provider = auth_provider if auth_provider is not None else VaultAuthProvider()
        self.audit_hook = audit_hook

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.config.base_url!r})"

    def capabilities(self) -> list[str]:
        """The actions: ``["model_invoke", "tool_call"]``."""
        return [MODEL_INVOKE, TOOL_CALL]

    def health(self) -> dict[str, Any]:
        """Whether a governed session opens (config valid, key resolved, policies allow)."""
        context = {"tenant_id": "legacy", "actor_id": "health"}
        try:
            with default_registry.open(
                CONNECTOR,
                config=self._config(),
                context=_context(context),
                governance=_governance(),
            ):
                pass
        except IntegrationsError as error:
            return {"id": self.id, "status": "error", "error": type(error).__name__}
        return {"id": self.id, "status": "ok"}

    def validate(self, context: Mapping[str, Any], action: str) -> None:
        """``ValueError`` ``TENANT_REQUIRED``, ``ACTOR_REQUIRED`` or ``ACTION_NOT_SUPPORTED``."""
        if not context.get("tenant_id"):
            raise ValueError("TENANT_REQUIRED")
        if not context.get("actor_id"):
            raise ValueError("ACTOR_REQUIRED")
        if action not in self.capabilities():
            raise ValueError("ACTION_NOT_SUPPORTED")

    def execute(
        self, context: Mapping[str, Any], action: str, payload: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Run `action` on `payload` in a governed session; the provider's JSON body."""
        _deprecated("OpenAIConnector.execute", f"session.invoke({action!r}, input)")
        self.validate(context, action)
        if not context.get("quorum"):
            raise RuntimeError("QUORUM_REQUIRED")
        request = {**payload}
        if not request.get("model"):
            request["model"] = self.config.model
        event = {"connector": self.id, "action": action, "tenant_id": context["tenant_id"]}
        event["actor_id"] = context["actor_id"]
        self._audit("request", event)
        try:
            with default_registry.open(
                CONNECTOR,
                config=self._config(),
                context=_context(context),
                governance=_governance(),
            ) as session:
                result = session.invoke(
                    action, request, retry=RetryPolicy(max_attempts=max(1, self.config.max_retries))
                )
        except Exception as error:
            self._audit("error", {**event, "error": type(error).__name__})
            raise
        self._audit("execution", {**event, "usage": dict(result.usage)})
        return dict(result.output)

    def _config(self) -> dict[str, Any]:
        provider = self.auth_provider
        if isinstance(provider, VaultAuthProvider):
            return self.config.to_config(provider.reference)
        return self.config.to_config("literal:" + provider.get_credentials()["api_key"])

    def _audit(self, event: str, payload: dict[str, Any]) -> None:
        if self.audit_hook is not None:
            self.audit_hook(event, payload)


def _context(context: Mapping[str, Any]) -> AuthContext:
    """The auth context of a legacy context: tenant, actor, and the quorum's approvers."""
    return AuthContext(
        tenant=str(context["tenant_id"]),
        actor=str(context["actor_id"]),
        attributes={"approvals": _approvers(context.get("quorum"))},
    )


def _approvers(quorum: object) -> list[str]:
    """Approver ids from a legacy ``quorum``: a list, ``{"approvers": [...]}``, or an id."""
    if isinstance(quorum, Mapping):
        quorum = quorum.get("approvers", [])
    if isinstance(quorum, str):
        return [quorum]
    if isinstance(quorum, list | tuple):
        return [str(item) for item in quorum]
    return []


def _governance() -> Governance:
    """The default registry's governance, its quorum policies completed with the legacy ones.

    A quorum policy the governance defines is kept; one it does not define for the
    connector's actions asks for `LEGACY_QUORUM` approvers, as the legacy connector did.
    """
    governance = default_registry.governance
    policies: list[Policy] = []
    for policy in governance.policies.policies:
        if isinstance(policy, QuorumRequired):
            missing = {
                name: LEGACY_QUORUM for name in QUORUM_POLICIES if name not in policy.policies
            }
            if missing:
                policy = QuorumRequired({**missing, **policy.policies})
        policies.append(policy)
    return dataclasses.replace(governance, policies=PolicySet(policies))
