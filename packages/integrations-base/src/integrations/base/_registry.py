"""The registry: which connectors exist, where they were declared, and whether they are usable.

Discovery builds a new snapshot from every source and swaps it in under a lock, so a failed
strict discovery leaves the registry as it was. Loading a connector (importing its module) is
deferred to `get`, checked against the allowlist first and against the contract after.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from ._actions import resolve_action_schemas
from ._audit import ConnectorMeta
from ._connector import AsyncConnector, Capability, Connector, contract_problems, is_async_connector
from ._discovery import (
    ManifestSource,
    clear_entry_point_cache,
    distribution_extras,
    distribution_identity,
    distribution_manifests,
    distribution_owns,
    extra_providing,
    find_module_file,
    missing_extra_requirements,
    normalize_name,
)
from ._exceptions import (
    ConnectorConflict,
    ConnectorNotFound,
    ConnectorUnavailable,
    ContractError,
    LifecycleError,
    ManifestError,
    SigningError,
)
from ._governance import Governance
from ._manifest import MANIFEST_FILENAME, ConnectorEntry, contract_admits, parse_manifest
from ._models import AuthContext, ConnectorConfig
from ._session import AsyncSession, Session, StepListener
from ._trust import TrustPolicy
from ._untrusted import UntrustedConfig
from ._version import CONTRACT_VERSION

if TYPE_CHECKING:
    from ._manifest import ParsedManifest
    from ._signing import ManifestVerdict, SignedModule

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "MANIFEST_ENV",
    "ConnectorClass",
    "ConnectorInfo",
    "ManifestProblem",
    "Registry",
    "Status",
]

MANIFEST_ENV = "INTEGRATIONS_MANIFEST"
"""Environment variable: application manifest files, separated by `os.pathsep`."""

ALLOWED_MODULES_ENV = "INTEGRATIONS_ALLOWED_MODULES"
"""Environment variable: module prefixes application manifests may point at (`os.pathsep`)."""

DEFAULT_ALLOWED_MODULES = ("integrations.",)

REGISTERED_SOURCE = "<register>"

ConnectorClass = type[Connector[Any]] | type[AsyncConnector[Any]]
"""What the registry hands out: a sync or an async connector class (`Registry.get`)."""


class Status(StrEnum):
    """Whether a declared connector can be used.

    `UNAVAILABLE` is not a defect: the connector's optional extra (its driver) is not
    installed, and `ConnectorInfo.install` says how to install it.
    """

    OK = "ok"
    UNAVAILABLE = "unavailable"
    BROKEN = "broken"
    INCOMPATIBLE = "incompatible"
    REFUSED = "refused"


class ConnectorInfo(NamedTuple):
    """What the registry knows about one connector name (an immutable record)."""

    name: str
    status: Status
    problem: str | None
    source: str
    pointer: str
    distribution: str | None = None
    distribution_version: str | None = None
    entry: ConnectorEntry | None = None
    capabilities: tuple[str, ...] = ()
    loaded: bool = False
    install: str | None = None
    """For an unavailable connector: the command that installs its missing extra."""
    signature: str | None = None
    """When the entry had to verify: ``verified``, ``unsigned`` or ``invalid``; else None."""
    signed_by: str | None = None
    """The key id of the manifest's signature, when it was checked."""

    @property
    def location(self) -> str:
        """Manifest file and JSON pointer, e.g. ``.../manifest.json#/connectors/0``."""
        return f"{self.source}#{self.pointer}" if self.pointer else self.source

    def to_json(self) -> dict[str, Any]:
        """The JSON form shown by `integrations list --json`."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.distribution_version,
            "capabilities": list(self.capabilities),
            "status": self.status.value,
            "problem": self.problem,
            "source": self.location,
            "loaded": self.loaded,
            "install": self.install,
            "signature": self.signature,
            "signed_by": self.signed_by,
        }


class ManifestProblem(NamedTuple):
    """A manifest that could not be used at all (unreadable, not JSON, wrong shape)."""

    source: str
    pointer: str
    reason: str
    distribution: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form shown next to connector rows: a row without a name."""
        return {
            "name": None,
            "distribution": self.distribution,
            "version": None,
            "capabilities": [],
            "status": Status.BROKEN.value,
            "problem": self.reason,
            "source": f"{self.source}#{self.pointer}" if self.pointer else self.source,
            "loaded": False,
            "install": None,
            "signature": None,
            "signed_by": None,
        }


@dataclass(slots=True)
class _Slot:
    """Mutable per-name state inside a snapshot: the info plus the loaded class."""

    info: ConnectorInfo
    distribution: metadata.Distribution | None = None
    connector_class: ConnectorClass | None = None
    verified: bool = False
    conflict: bool = False
    signed: SignedModule | None = None
    """The module file the signature covers, hashed again right before the import."""


@dataclass(slots=True)
class _Snapshot:
    slots: dict[str, _Slot] = field(default_factory=dict)
    problems: list[ManifestProblem] = field(default_factory=list)


def _allowed_from_environment() -> tuple[str, ...]:
    raw = os.environ.get(ALLOWED_MODULES_ENV, "")
    extra = tuple(part.strip() for part in raw.split(os.pathsep) if part.strip())
    return DEFAULT_ALLOWED_MODULES + extra


def _module_allowed(module: str, prefixes: Iterable[str]) -> bool:
    return any(
        module.startswith(prefix)
        if prefix.endswith(".")
        else module == prefix or module.startswith(prefix + ".")
        for prefix in prefixes
    )


@lru_cache(maxsize=256)
def _contract_compatible(contract: str) -> bool:
    """Whether the installed contract is in `contract`; entries share the same few ranges."""
    return contract_admits(contract, CONTRACT_VERSION)


class Registry:
    """A thread-safe set of connectors from manifests and from explicit registration.

    Several independent registries may live in one process (one per test, say). The
    module-level functions of `integrations.base.registry` act on a default instance.
    """

    def __init__(
        self,
        *,
        allowed_modules: Sequence[str] | None = None,
        distributions: bool = True,
        environment: bool = True,
        governance: Governance | None = None,
        trust: TrustPolicy | None = None,
    ) -> None:
        """Create an empty registry.

        `allowed_modules` are the module prefixes application manifests may point at
        (default: the `integrations.` namespace plus `INTEGRATIONS_ALLOWED_MODULES`); a
        manifest can never widen them. `distributions` and `environment` choose whether
        `discover()` reads installed distributions' manifests and `INTEGRATIONS_MANIFEST`.
        `governance` is what sessions opened from this registry enforce by default.
        `trust` says which publisher keys signed manifests may be signed with and whether
        every manifest must be; without it, `governance.trust` when `governance` is given,
        else ``INTEGRATIONS_TRUST`` read at the first discovery.
        """
        self.governance = governance or Governance()
        self._trust = trust if trust is not None or governance is None else governance.trust
        self._lock = threading.RLock()
        self._allowed = (
            tuple(allowed_modules) if allowed_modules is not None else _allowed_from_environment()
        )
        self._use_distributions = distributions
        self._use_environment = environment
        self._snapshot = _Snapshot()
        self._registered: dict[str, tuple[ConnectorClass, bool]] = {}
        self._application_paths: list[Path] = []
        self._discovered = False

    def allows_module(self, module: str) -> bool:
        """Whether `module` is under the prefixes application manifests may point at.

        The same check a manifest's module passes; connectors that import code named in a
        config (a signal source class, say) ask it first, so a config never imports
        arbitrary code.
        """
        return _module_allowed(module, self._allowed)

    # -- discovery -------------------------------------------------------------------------

    def discover(
        self, path: str | os.PathLike[str] | None = None, *, strict: bool = False
    ) -> tuple[ConnectorInfo, ...]:
        """Read every manifest and rebuild the registry; import no connector.

        Sources, in order: installed distributions (entry-point group
        `integrations.manifests`, sorted by name), files named by `INTEGRATIONS_MANIFEST`,
        files given to `load_manifest`, then `path` (which stays a source of later
        discoveries). The statuses returned are those the manifests decide (schema, contract,
        allowlist prefixes, conflicts); `connectors()` and `get()` add the checks that look
        at module files. With `strict=True` every check runs now, the first problem raises,
        and the registry keeps its previous state.
        """
        with self._lock:
            paths = list(self._application_paths)
            if path is not None and Path(path).resolve() not in paths:
                paths.append(Path(path).resolve())
            snapshot = self._build(paths, strict=strict)
            self._snapshot = snapshot
            self._application_paths = paths
            self._discovered = True
            return tuple(slot.info for slot in snapshot.slots.values())

    def refresh(self, *, strict: bool = False) -> tuple[ConnectorInfo, ...]:
        """Scan installed distributions again (after installs) and rediscover."""
        clear_entry_point_cache()
        return self.discover(strict=strict)

    def load_manifest(
        self, path: str | os.PathLike[str] | None = None, *, strict: bool = False
    ) -> tuple[ConnectorInfo, ...]:
        """Add an application manifest file (or the `INTEGRATIONS_MANIFEST` files when None).

        The file is read now, so a file that cannot be used raises `ManifestError` at once;
        it stays part of the registry's sources for later discoveries.
        """
        paths = [Path(path).resolve()] if path is not None else self._environment_paths()
        for item in paths:
            _read_or_raise(item)
        with self._lock:
            application_paths = [*self._application_paths]
            application_paths.extend(p for p in paths if p not in application_paths)
            self._snapshot = self._build(application_paths, strict=strict)
            self._application_paths = application_paths
            self._discovered = True
            loaded = {str(item) for item in paths}
            return tuple(
                slot.info for slot in self._snapshot.slots.values() if slot.info.source in loaded
            )

    def _environment_paths(self) -> list[Path]:
        raw = os.environ.get(MANIFEST_ENV, "")
        return [Path(part).resolve() for part in raw.split(os.pathsep) if part.strip()]

    def _build(self, application_paths: Sequence[Path], *, strict: bool) -> _Snapshot:
        snapshot = _Snapshot()
        if self._use_distributions:
            for source in distribution_manifests(MANIFEST_FILENAME):
                self._read_distribution_manifest(source, snapshot, strict=strict)
        environment = self._environment_paths() if self._use_environment else []
        for item in dict.fromkeys([*environment, *application_paths]):  # each file once
            self._read_application_manifest(item, snapshot, strict=strict)
        for name, (connector_class, replace_existing) in self._registered.items():
            self._add_registered(snapshot, name, connector_class, replace_existing, strict=strict)
        snapshot.slots = dict(sorted(snapshot.slots.items()))
        if strict:
            self._verify_all(snapshot)
        return snapshot

    def _read_distribution_manifest(
        self, source: ManifestSource, snapshot: _Snapshot, *, strict: bool
    ) -> None:
        if source.path is None:
            self._manifest_problem(
                snapshot,
                ManifestProblem(source.label, "", source.problem or "", source.label),
                strict,
            )
            return
        self._read_manifest(source.path, snapshot, strict=strict, origin=source)

    def _read_application_manifest(self, path: Path, snapshot: _Snapshot, *, strict: bool) -> None:
        self._read_manifest(path, snapshot, strict=strict, origin=None)

    def _read_manifest(
        self, path: Path, snapshot: _Snapshot, *, strict: bool, origin: ManifestSource | None
    ) -> None:
        label = origin.label if origin else None
        try:
            with open(path, "rb") as manifest:
                data = manifest.read()
            parsed = parse_manifest(data, str(path))
            verdict = self._signature_verdict(path, data, parsed)
        except OSError as error:
            reason = f"cannot read manifest: {error.strerror or error}"
            self._manifest_problem(snapshot, ManifestProblem(str(path), "", reason, label), strict)
            return
        except ManifestError as error:
            problem = ManifestProblem(str(path), error.pointer, str(error), label)
            self._manifest_problem(snapshot, problem, strict)
            return
        for bad in parsed.problems:
            name = bad.name or f"<{path.name}#/connectors/{bad.index}>"
            info = ConnectorInfo(
                name,
                Status.BROKEN,
                f"invalid entry at {bad.pointer}: {bad.reason}",
                str(path),
                bad.pointer,
                label,
            )
            self._add(snapshot, _Slot(info), strict=strict, override=False)
        source = str(path)
        for index, entry in parsed.entries:
            slot = self._slot_for_entry(entry, source, index, origin)
            if verdict is not None:
                self._apply_signature(slot, entry, verdict)
            self._add(snapshot, slot, strict=strict, override=entry.override and origin is None)

    def _slot_for_entry(
        self, entry: ConnectorEntry, source: str, index: int, origin: ManifestSource | None
    ) -> _Slot:
        status, problem = Status.OK, None
        if not _contract_compatible(entry.contract):
            status = Status.INCOMPATIBLE
            problem = (
                f"supports contract {entry.contract}, installed contract is {CONTRACT_VERSION}"
            )
        elif origin is None and not _module_allowed(entry.module, self._allowed):
            status = Status.REFUSED
            allowed = ", ".join(self._allowed)
            problem = f"module {entry.module} is outside the allowed prefixes ({allowed})"
        elif origin is not None and entry.override:
            status = Status.REFUSED
            problem = "only application manifests may override a connector"
        elif entry.actions:
            entry, problem = resolve_action_schemas(entry, Path(source))
            status = Status.OK if problem is None else Status.REFUSED
        info = ConnectorInfo(
            entry.name,
            status,
            problem,
            source,
            f"/connectors/{index}",
            origin.label if origin else None,
            None,
            entry,
            entry.capability_names,
        )
        return _Slot(info, origin.distribution if origin else None)

    def _trust_policy(self) -> TrustPolicy:
        if self._trust is None:
            self._trust = TrustPolicy.from_environment()
        return self._trust

    def _signature_verdict(
        self, path: Path, data: bytes, parsed: ParsedManifest
    ) -> ManifestVerdict | None:
        """The manifest's signature checked once, when one of its entries requires it."""
        trust = self._trust_policy()
        if not any(trust.requires(entry.signing.required) for _, entry in parsed.entries):
            return None
        from ._signing import verify_manifest

        modules = dict.fromkeys(entry.module for _, entry in parsed.entries)
        return verify_manifest(path, data, modules, trust)

    def _apply_signature(
        self, slot: _Slot, entry: ConnectorEntry, verdict: ManifestVerdict
    ) -> None:
        """Refuse an entry that must verify and does not; remember the file that does."""
        signing = entry.signing
        if not (signing.required or self._trust_policy().require_signed_manifests):
            return
        problem = verdict.problem_for(entry.module, signing.publisher_key_id)
        info = slot.info
        if problem is None:
            slot.info = info._replace(signature="verified", signed_by=verdict.key_id)
            slot.signed = verdict.modules[entry.module]
            return
        state = "unsigned" if verdict.unsigned else "invalid"
        if info.status is Status.OK:
            info = info._replace(status=Status.REFUSED, problem=problem)
        slot.info = info._replace(signature=state, signed_by=verdict.key_id)

    def _manifest_problem(
        self, snapshot: _Snapshot, problem: ManifestProblem, strict: bool
    ) -> None:
        if strict:
            raise ManifestError(problem.reason, problem.source, problem.pointer)
        snapshot.problems.append(problem)

    def _add(self, snapshot: _Snapshot, slot: _Slot, *, strict: bool, override: bool) -> None:
        name = slot.info.name
        existing = snapshot.slots.get(name)
        if strict and slot.info.status is not Status.OK:
            raise ConnectorUnavailable(
                f"connector {name!r} is {slot.info.status}: {slot.info.problem}"
            )
        if existing is None or override:
            snapshot.slots[name] = slot
            return
        reason = f"declared twice: at {existing.info.location} and at {slot.info.location}"
        if strict:
            raise ConnectorConflict(f"connector {name!r} {reason}")
        info = existing.info._replace(status=Status.BROKEN, problem=reason)
        snapshot.slots[name] = _Slot(
            info, distribution=existing.distribution, verified=True, conflict=True
        )

    def _add_registered(
        self, snapshot: _Snapshot, name: str, cls: ConnectorClass, override: bool, *, strict: bool
    ) -> None:
        info = ConnectorInfo(
            name,
            Status.OK,
            None,
            REGISTERED_SOURCE,
            "",
            capabilities=tuple(sorted(c.value for c in cls.capabilities)),
            loaded=True,
        )
        self._add(
            snapshot,
            _Slot(info, connector_class=cls, verified=True),
            strict=strict,
            override=override,
        )

    # -- registration ----------------------------------------------------------------------

    def register(self, name: str, connector_cls: ConnectorClass, *, replace: bool = False) -> None:
        """Register a connector class under `name`, validating it against the contract now.

        Raises `ContractError` when the class does not fit, and `ConnectorConflict` when the
        name is taken, unless `replace=True`.
        """
        problems = contract_problems(connector_cls)
        if problems:
            raise ContractError(f"cannot register {name!r}: " + "; ".join(problems))
        with self._lock:
            if not replace and (name in self._registered or name in self._snapshot.slots):
                raise ConnectorConflict(f"connector {name!r} is already registered")
            self._registered[name] = (connector_cls, replace)
            self._add_registered(self._snapshot, name, connector_cls, True, strict=False)

    # -- lookup and loading ----------------------------------------------------------------

    def get(self, name: str) -> ConnectorClass:
        """The connector class registered under `name`, imported on first use.

        Raises `ConnectorNotFound` for an unknown name and `ConnectorUnavailable` (with the
        reason) for a connector that is broken, incompatible or refused.
        """
        with self._lock:
            if not self._discovered:
                self.discover()
            slot = self._snapshot.slots.get(name)
            if slot is None:
                raise ConnectorNotFound(f"no connector named {name!r}")
            return self._load(slot)

    def load_certification(self, name: str) -> type[Any] | None:
        """The certification class connector `name`'s manifest entry names, or None.

        The entry's ``certification`` (``module:Class``) is checked like its module before
        anything is imported: a distribution's entry may only name a module that the
        distribution installs, an application manifest's a module under the allowed prefixes.
        Raises `ConnectorNotFound` for an unknown name and `ConnectorUnavailable` when the
        module is refused, missing, fails to import or lacks the class.
        """
        with self._lock:
            if not self._discovered:
                self.discover()
            slot = self._snapshot.slots.get(name)
            if slot is None:
                raise ConnectorNotFound(f"no connector named {name!r}")
            entry = slot.info.entry
            target = entry.certification_target if entry is not None else None
            if target is None:
                return None
            module_name, class_name = target
            where = f"certification {module_name}:{class_name} of connector {name!r}"
            found = self._module_problem(slot, module_name)
            if found is not None:
                raise ConnectorUnavailable(f"{where} is {found[0]}: {found[1]}")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise ConnectorUnavailable(
                f"{where}: importing {module_name} raised {type(error).__name__}: {error}"
            ) from None
        cls = getattr(module, class_name, None)
        if not isinstance(cls, type):
            raise ConnectorUnavailable(f"{where}: module {module_name} has no class {class_name}")
        return cls

    def _load(self, slot: _Slot) -> ConnectorClass:
        if slot.connector_class is not None:
            return slot.connector_class
        self._verify(slot)
        loaded = self._import(slot) if slot.info.status is Status.OK else None
        if loaded is None:
            info = slot.info
            error = ConnectorConflict if slot.conflict else ConnectorUnavailable
            raise error(f"connector {info.name!r} is {info.status}: {info.problem}")
        return loaded

    def _verify(self, slot: _Slot) -> None:
        """Check, without importing, that the entry's module exists and may be imported.

        A missing module is broken; a distribution's entry pointing at a module that the
        distribution does not install is refused; an entry whose `extra` is not installed is
        unavailable.
        """
        if slot.verified or slot.info.status is not Status.OK or slot.info.entry is None:
            slot.verified = True
            return
        slot.verified = True
        entry = slot.info.entry
        found = self._module_problem(slot, entry.module) or self._extra_problem(slot, entry)
        if found is not None:
            status, problem, install = found
            slot.info = slot.info._replace(status=status, problem=problem, install=install)

    def _module_problem(self, slot: _Slot, module: str) -> tuple[Status, str, None] | None:
        """Why `module` may not be imported for `slot`'s entry, found without importing it.

        The entry's distribution must install the module; an application manifest's module
        must be under the allowed prefixes (checked when the entry was read).
        """
        if slot.distribution is None and not _module_allowed(module, self._allowed):
            allowed = ", ".join(self._allowed)
            return (
                Status.REFUSED,
                f"module {module} is outside the allowed prefixes ({allowed})",
                None,
            )
        module_file = find_module_file(module)
        if module_file is None:
            return Status.BROKEN, f"module {module} not found", None
        if slot.distribution is not None and not distribution_owns(slot.distribution, module_file):
            reason = f"module {module} is not installed by {slot.info.distribution}"
            return Status.REFUSED, reason, None
        return None

    def _extra_problem(
        self, slot: _Slot, entry: ConnectorEntry
    ) -> tuple[Status, str, str | None] | None:
        """Whether the extra the entry names exists and is installed (read from metadata)."""
        distribution = slot.distribution
        if entry.extra is None or distribution is None:
            return None
        extra = normalize_name(entry.extra)
        provided = distribution_extras(distribution)
        if extra not in provided:
            names = ", ".join(sorted(provided)) or "none"
            reason = (
                f"needs extra {entry.extra!r}, which {slot.info.distribution} does not provide "
                f"(it provides: {names})"
            )
            return Status.BROKEN, reason, None
        missing = missing_extra_requirements(distribution, extra)
        if not missing:
            return None
        return self._unavailable(slot, extra, f"not installed: {', '.join(missing)}")

    def _unavailable(self, slot: _Slot, extra: str, detail: str) -> tuple[Status, str, str | None]:
        distribution = slot.distribution
        name = distribution_identity(distribution)[0] if distribution is not None else None
        name = name or slot.info.distribution or "<distribution>"
        install = f"pip install '{name}[{extra}]'"
        return (
            Status.UNAVAILABLE,
            f"needs the optional extra {extra!r} ({detail}): {install}",
            install,
        )

    def _verify_all(self, snapshot: _Snapshot) -> None:
        for slot in snapshot.slots.values():
            self._verify(slot)
            if slot.info.status not in (
                Status.OK,
                Status.UNAVAILABLE,
            ):  # a missing extra is no defect
                raise ConnectorUnavailable(
                    f"connector {slot.info.name!r} is {slot.info.status}: {slot.info.problem}"
                )

    def _import(self, slot: _Slot) -> ConnectorClass | None:
        entry = slot.info.entry
        assert entry is not None  # only manifest slots are imported
        try:
            module = self._import_module(slot, entry.module)
        except SigningError as error:
            slot.info = slot.info._replace(
                status=Status.REFUSED, problem=str(error), signature="invalid"
            )
            return None
        except Exception as error:
            extra = self._extra_for(slot, error)
            if extra is not None:
                status, problem, install = self._unavailable(slot, extra, str(error))
                slot.info = slot.info._replace(status=status, problem=problem, install=install)
                return None
            self._mark_broken(
                slot, f"importing {entry.module} raised {type(error).__name__}: {error}"
            )
            return None
        cls = getattr(module, entry.class_name, None)
        if cls is None:
            self._mark_broken(slot, f"module {entry.module} has no class {entry.class_name}")
            return None
        problems = contract_problems(cls)
        actions = frozenset(getattr(cls, "actions", frozenset()))
        if entry.actions and entry.action_names != actions:
            problems.append(
                f"manifest declares actions {sorted(entry.action_names)} "
                f"but the class declares {sorted(actions)}"
            )
        declared = entry.declared_capabilities
        implemented = frozenset(getattr(cls, "capabilities", frozenset()))
        if declared and declared != implemented:
            problems.append(
                "manifest declares capabilities "
                f"{_names(declared)} but the class declares {_names(implemented)}"
            )
        if problems:
            self._mark_broken(
                slot, f"{entry.class_name} does not fit the contract: " + "; ".join(problems)
            )
            return None
        slot.connector_class = cls
        slot.info = slot.info._replace(
            loaded=True, capabilities=tuple(sorted(c.value for c in implemented))
        )
        return slot.connector_class

    def _import_module(self, slot: _Slot, module: str) -> ModuleType:
        """Import the entry's module; a signed one from the bytes hashed again just now."""
        if slot.signed is None:
            return importlib.import_module(module)
        from ._signing import load_signed_module

        return load_signed_module(module, slot.signed)

    def _extra_for(self, slot: _Slot, error: Exception) -> str | None:
        """The distribution's extra that provides the module whose import failed, if any.

        For entries that name no `extra`: a missing module (the `ImportError`, or the one it
        was raised from) whose top-level name is a requirement of one of the distribution's
        extras means the extra is not installed, not that the connector is defective.
        """
        if slot.distribution is None:
            return None
        cause: BaseException | None = error
        for _ in range(8):  # the chain of re-raised import errors, bounded
            if cause is None:
                return None
            if isinstance(cause, ImportError) and cause.name:
                return extra_providing(slot.distribution, cause.name)
            cause = cause.__cause__ or cause.__context__
        return None

    def _mark_broken(self, slot: _Slot, reason: str) -> None:
        slot.info = slot.info._replace(status=Status.BROKEN, problem=reason)

    # -- sessions --------------------------------------------------------------------------

    def open(
        self,
        name: str,
        *,
        config: ConnectorConfig | Mapping[str, Any] | UntrustedConfig,
        context: AuthContext,
        governance: Governance | None = None,
        listener: StepListener | None = None,
    ) -> Session:
        """A governed session on connector `name`; use it with ``with``.

        The config is validated (secret references resolved) when the session opens.
        `listener` is called with every "finished" audit event of the session.
        """
        cls = self.get(name)
        if is_async_connector(cls):
            raise LifecycleError(f"connector {name!r} is async: use open_async()")
        connector = cast(type[Connector[Any]], cls)()
        options = self._session_options(name, config, context, governance)
        return Session(connector, listener=listener, **options)

    def open_async(
        self,
        name: str,
        *,
        config: ConnectorConfig | Mapping[str, Any] | UntrustedConfig,
        context: AuthContext,
        governance: Governance | None = None,
        listener: StepListener | None = None,
    ) -> AsyncSession:
        """A governed async session on connector `name` (sync connectors run in a thread)."""
        connector = self.get(name)()
        options = self._session_options(name, config, context, governance)
        return AsyncSession(connector, listener=listener, **options)

    def _session_options(
        self,
        name: str,
        config: ConnectorConfig | Mapping[str, Any] | UntrustedConfig,
        context: AuthContext,
        governance: Governance | None,
    ) -> dict[str, Any]:
        with self._lock:
            slot = self._snapshot.slots[name]
            self._fill_distribution(slot)
            info = slot.info
        meta = ConnectorMeta(
            name,
            info.entry.version if info.entry else None,
            info.distribution,
            info.distribution_version,
        )
        return {
            "config": config,
            "context": context,
            "governance": governance or self.governance,
            "meta": meta,
            "entry": info.entry,
        }

    # -- reporting -------------------------------------------------------------------------

    def connectors(self) -> tuple[ConnectorInfo, ...]:
        """Every declared connector with its status, ownership checked, nothing imported."""
        with self._lock:
            if not self._discovered:
                self.discover()
            for slot in self._snapshot.slots.values():
                self._verify(slot)
                self._fill_distribution(slot)
            return tuple(slot.info for slot in self._snapshot.slots.values())

    def problems(self) -> tuple[ManifestProblem, ...]:
        """Manifests that could not be used at all."""
        with self._lock:
            return tuple(self._snapshot.problems)

    def info(self, name: str) -> ConnectorInfo:
        """The status of one connector; raises `ConnectorNotFound` for an unknown name."""
        infos = {info.name: info for info in self.connectors()}
        if name not in infos:
            raise ConnectorNotFound(f"no connector named {name!r}")
        return infos[name]

    def load_all(self) -> tuple[ConnectorInfo, ...]:
        """Import and check every connector (what `integrations doctor` does); never raises."""
        with self._lock:
            if not self._discovered:
                self.discover()
            for slot in self._snapshot.slots.values():
                with contextlib.suppress(ConnectorUnavailable, ConnectorConflict):
                    self._load(slot)
            return self.connectors()

    def _fill_distribution(self, slot: _Slot) -> None:
        distribution = slot.distribution
        if distribution is None or slot.info.distribution_version is not None:
            return
        name, version = distribution_identity(distribution)
        slot.info = slot.info._replace(
            distribution=name or slot.info.distribution, distribution_version=version
        )


def _read_or_raise(path: Path) -> None:
    """Parse an application manifest now, so that `load_manifest` reports a bad file at once."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ManifestError(
            f"{path}: cannot read manifest: {error.strerror or error}", str(path)
        ) from None
    parse_manifest(data, str(path))


def _names(capabilities: Iterable[Capability]) -> str:
    return "[" + ", ".join(sorted(c.value for c in capabilities)) + "]"
