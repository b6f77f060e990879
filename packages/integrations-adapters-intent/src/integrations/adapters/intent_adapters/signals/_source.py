"""What a signal source is, and how the class a config names becomes one without surprises.

A signal source answers `fetch_signals()` with a list of signals (mappings as the legacy
adapters returned them, or `Signal` models), synchronously or as a coroutine. Any legacy
``intent_adapters.base.SignalAdapter`` subclass is one as it is.

A config names a source class as ``"package.module:Class"``. Its module must be admitted by
the registry's module allowlist (`integrations.base.registry.allows_module`) before anything
is imported: a configuration never imports code the deployment did not admit. A config a
tenant wrote (`UntrustedConfig`) may name only classes that say they are safe for tenants
(``tenant_safe = True``): a source reading files or local addresses given as options is a
platform's tool, not a tenant's.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol, cast, runtime_checkable

from integrations.adapters.intent_adapters._signal import Signal
from integrations.base import ConfigError, IntegrationsError, JsonObject, PolicyError, registry

__all__ = [
    "AnySignalSource",
    "AsyncSignalSource",
    "SignalSource",
    "is_async_source",
    "load_source",
    "refusal",
    "split_source_path",
]

_PATH: Final = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)


@runtime_checkable
class SignalSource(Protocol):
    """A source of intent signals, asked synchronously (a legacy `SignalAdapter` is one)."""

    def fetch_signals(self) -> Sequence[Mapping[str, Any] | Signal]:
        """The source's current signals, in the source's order."""
        ...


@runtime_checkable
class AsyncSignalSource(Protocol):
    """A source of intent signals whose `fetch_signals` is a coroutine."""

    async def fetch_signals(self) -> Sequence[Mapping[str, Any] | Signal]:
        """The source's current signals, in the source's order."""
        ...


AnySignalSource = SignalSource | AsyncSignalSource
"""A sync or an async signal source."""


def is_async_source(source: object) -> bool:
    """Whether `source.fetch_signals` is a coroutine function (the async twin)."""
    return inspect.iscoroutinefunction(getattr(source, "fetch_signals", None))


def split_source_path(path: str) -> tuple[str, str]:
    """``"package.module:Class"`` as (module, class name); `ValueError` when malformed."""
    if not _PATH.fullmatch(path):
        raise ValueError(f"must be 'package.module:Class', not {path!r}")
    module, _, name = path.partition(":")
    return module, name


def refusal(module: str) -> str | None:
    """Why a config may not name a class of `module`, or None when the allowlist admits it."""
    if registry.allows_module(module):
        return None
    return (
        f"module {module} is outside the registry's module allowlist: a config may only name "
        "source classes the deployment admitted (add the module's prefix to "
        "INTEGRATIONS_ALLOWED_MODULES)"
    )


TENANT_SAFE: Final = "tenant_safe"
"""The class attribute by which a source class says a tenant's config may name it."""


def load_source(path: str, options: JsonObject, *, for_tenant: bool = False) -> AnySignalSource:
    """The source `path` names, built with `options` as keyword arguments.

    The allowlist is checked before the module is imported. With `for_tenant` (the config
    came from a tenant), a class not marked ``tenant_safe = True`` is refused with
    `PolicyError` before it is built. Every way the class cannot be
    had or built raises `ConfigError` naming the ``source`` or ``options`` field (option
    values are never shown); errors of the library's tree raised by the constructor are
    passed on as they are.
    """
    cls = _class_at(path)
    if for_tenant:
        _refuse_unless_tenant_safe(cls, path)
    try:
        source = cls(**options)
    except IntegrationsError:
        raise
    except Exception as error:  # the constructor may refuse its options in any way
        keys = ", ".join(sorted(options)) or "no options"
        raise _problem(
            "options",
            f"building {path} with {keys} raised {type(error).__name__}: {error}",
        ) from None
    if not callable(getattr(source, "fetch_signals", None)):
        raise _problem("source", f"{path} has no fetch_signals() method: it is not a signal source")
    return cast(AnySignalSource, source)


def check_tenant_safe(path: str) -> None:
    """Raise `PolicyError` unless the class `path` names is marked ``tenant_safe = True``.

    The allowlist is checked before the module is imported; the class is not built.
    """
    _refuse_unless_tenant_safe(_class_at(path), path)


def _refuse_unless_tenant_safe(cls: type[Any], path: str) -> None:
    if getattr(cls, TENANT_SAFE, False) is not True:
        raise PolicyError(
            f"source class {path} is not marked safe for configs from tenants "
            f"({TENANT_SAFE} = True): only the platform may configure it",
            "source class not safe for tenants",
        )


def _class_at(path: str) -> type[Any]:
    module_name, class_name = _checked(path)
    return _class_of(path, module_name, class_name)


def _checked(path: str) -> tuple[str, str]:
    try:
        module_name, class_name = split_source_path(path)
    except ValueError as error:
        raise _problem("source", str(error)) from None
    refused = refusal(module_name)
    if refused is not None:
        raise _problem("source", refused)
    return module_name, class_name


def _class_of(path: str, module_name: str, class_name: str) -> type[Any]:
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # an import may fail in any way; the config is what is wrong
        raise _problem(
            "source", f"importing {module_name} raised {type(error).__name__}: {error}"
        ) from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise _problem("source", f"module {module_name} has no class {class_name} ({path})")
    return cls


def _problem(field: str, reason: str) -> ConfigError:
    return ConfigError(f"invalid SignalSourceConfig: {field}: {reason}", ((field, reason),))
