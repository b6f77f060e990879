"""Running the kit against an installed connector: the engine of `integrations certify`.

`certification_class` builds the subclass a test module would write by hand, from a registry
name, a config and a context. `certify` runs it in this process with `pytest.main` and turns
pytest's reports into a `CertificationReport`, one row per check.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, cast

import pytest

from integrations.base._connector import Capability
from integrations.base._exceptions import ConfigError, ContractError
from integrations.base._models import AuthContext
from integrations.base._registry import Registry

from ._kit import ConnectorCertification
from ._spec import BOOLEAN_FLAGS, KIT_VERSION, NOT_APPLICABLE

__all__ = [
    "CertificationReport",
    "CheckResult",
    "NotConfigured",
    "Outcome",
    "certification_class",
    "certify",
]

Outcome = Literal["passed", "failed", "expected-failure", "not-applicable"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """How one check ended, and why when it did not pass."""

    check: str
    outcome: Outcome
    reason: str | None = None
    duration_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The JSON form of `integrations certify --json`."""
        return {
            "check": self.check,
            "outcome": self.outcome,
            "reason": self.reason,
            "duration_seconds": round(self.duration_seconds, 6),
        }


@dataclass(frozen=True, slots=True)
class CertificationReport:
    """Every check of one certification run, with the versions that ran it."""

    connector: str
    kit_version: str
    base_version: str | None
    checks: tuple[CheckResult, ...]
    pytest_exit_code: int = 0
    problems: tuple[str, ...] = ()
    """What kept checks from running at all (collection errors)."""
    output: str = field(default="", repr=False)
    """pytest's own terminal output, for diagnosing a run that went wrong."""

    @property
    def ok(self) -> bool:
        """Whether checks ran and none failed."""
        return (
            bool(self.checks)
            and not self.problems
            and all(check.outcome != "failed" for check in self.checks)
        )

    def counts(self) -> dict[str, int]:
        """How many checks ended in each outcome."""
        outcomes: tuple[Outcome, ...] = ("passed", "failed", "expected-failure", "not-applicable")
        return {name: sum(c.outcome == name for c in self.checks) for name in outcomes}

    def to_json(self) -> dict[str, Any]:
        """The document `integrations certify --json` prints."""
        return {
            "connector": self.connector,
            "kit_version": self.kit_version,
            "base_version": self.base_version,
            "ok": self.ok,
            "counts": self.counts(),
            "problems": list(self.problems),
            "checks": [check.to_json() for check in self.checks],
        }


class NotConfigured(ConfigError):
    """The connector's certification needs a config that the kit cannot build on its own.

    `reason` says what would configure it (an environment variable, ``--config``).
    """

    def __init__(self, connector: str, reason: str) -> None:
        super().__init__(f"connector {connector!r} is not configured for certification: {reason}")
        self.connector = connector
        self.reason = reason


def certification_class(
    name: str,
    *,
    config: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    actor: str | None = None,
    manifests: Sequence[str] = (),
    flags: Mapping[str, bool] | None = None,
) -> type[ConnectorCertification]:
    """A certification subclass for installed connector `name`, as a test module would write it.

    The base is the certification class the connector's manifest entry names
    (``certification``), which knows its connector (flags, samples, how to build a config),
    or else the plain kit, for which unsupported operations are those the class does not
    declare and push idempotence is what the manifest says. `config` replaces the class's own
    config when given; `flags` override the class's flags. Raises the library's errors when
    `name` cannot be loaded, and `NotConfigured` when no config is given and the class cannot
    build one here.
    """
    unknown = sorted(set(flags or {}) - set(BOOLEAN_FLAGS))
    if unknown:
        raise ValueError(f"unknown certification flag(s): {', '.join(unknown)}")
    registry = Registry()
    for path in manifests:
        registry.load_manifest(path)
    connector = registry.get(name)
    base = _base_class(registry, name)
    attributes: dict[str, Any] = {
        "__doc__": f"The certification kit against installed connector {name!r}.",
        "registry_name": name,
        "manifests": tuple(str(path) for path in manifests),
    }
    if base is ConnectorCertification:
        entry = registry.info(name).entry
        push = entry.capability(Capability.PUSH) if entry is not None else None
        attributes["unsupported"] = frozenset(Capability) - frozenset(connector.capabilities)
        attributes["push_is_idempotent"] = bool(push is not None and push.idempotent)
    attributes.update(flags or {})
    if config is not None:
        chosen = dict(config)

        def config_factory(self: ConnectorCertification) -> Mapping[str, Any]:
            return dict(chosen)

        attributes["config"] = config_factory
    elif (reason := base.configuration_problem()) is not None:
        raise NotConfigured(name, reason)
    if tenant is not None or actor is not None:

        def context_factory(self: ConnectorCertification) -> AuthContext:
            default = base.context(self)
            return default.model_copy(
                update={"tenant": tenant or default.tenant, "actor": actor or default.actor}
            )

        attributes["context"] = context_factory
    return cast(type[ConnectorCertification], type("TestCertification", (base,), attributes))


def _base_class(registry: Registry, name: str) -> type[ConnectorCertification]:
    """The certification class the manifest names for `name`, checked, or the plain kit."""
    named = registry.load_certification(name)
    if named is None:
        return ConnectorCertification
    if not issubclass(named, ConnectorCertification):
        entry = registry.info(name).entry
        target = entry.certification if entry is not None else named.__qualname__
        raise ContractError(
            f"certification {target} of connector {name!r} is not a subclass of "
            "ConnectorCertification"
        )
    return named


_PENDING: dict[str, type[ConnectorCertification]] = {}
"""Classes handed to the generated test modules of running certifications, by token."""

_MODULE = '''"""Generated by `integrations certify`: the certification kit against one connector."""

from integrations.base.testing._runner import pending_class

TestCertification = pending_class({token!r})
'''


def pending_class(token: str) -> type[ConnectorCertification]:
    """The class a running `certify` generated (the generated module's one import)."""
    return _PENDING[token]


def certify(
    name: str,
    *,
    config: Mapping[str, Any] | None = None,
    tenant: str | None = None,
    actor: str | None = None,
    manifests: Sequence[str] = (),
    flags: Mapping[str, bool] | None = None,
) -> CertificationReport:
    """Run every check against installed connector `name` in this process; report each.

    The class is handed to a generated module through this process's memory, so the config
    (which may hold secrets) is never written to disk.
    """
    cls = certification_class(
        name, config=config, tenant=tenant, actor=actor, manifests=manifests, flags=flags
    )
    token = uuid.uuid4().hex
    module_name = f"test_certify_{token[:16]}"
    collector = _Collector()
    output = io.StringIO()
    _PENDING[token] = cls
    try:
        with tempfile.TemporaryDirectory(prefix="integrations-certify-") as directory:
            root = Path(directory)
            (root / f"{module_name}.py").write_text(_MODULE.format(token=token), "utf-8")
            (root / "pytest.ini").write_text("[pytest]\nxfail_strict = true\n", "utf-8")
            arguments = [
                str(root / f"{module_name}.py"),
                *("-c", str(root / "pytest.ini"), "--rootdir", str(root)),
                *("-p", "no:cacheprovider", "--import-mode=importlib", "-q"),
            ]
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                code = pytest.main(arguments, plugins=[collector])
    finally:
        _PENDING.pop(token, None)
        sys.modules.pop(module_name, None)
    return CertificationReport(
        connector=name,
        kit_version=KIT_VERSION,
        base_version=_base_version(),
        checks=collector.results(),
        pytest_exit_code=int(code),
        problems=tuple(collector.problems),
        output=output.getvalue(),
    )


def _base_version() -> str | None:
    try:
        return metadata.version("integrations-base")
    except metadata.PackageNotFoundError:
        return None


class _Collector:
    """A pytest plugin that keeps one `CheckResult` per check from pytest's reports."""

    def __init__(self) -> None:
        self._results: dict[str, CheckResult] = {}
        self.problems: list[str] = []

    def results(self) -> tuple[CheckResult, ...]:
        return tuple(self._results.values())

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """A module or class that does not collect is a problem of the whole run."""
        if report.failed:
            self.problems.append(f"{report.nodeid or 'collection'}: {_reason(report)}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold the setup, call and teardown reports of a check into one result."""
        check = report.nodeid.rsplit("::", 1)[-1].removeprefix("test_")
        previous = self._results.get(check)
        duration = report.duration + (previous.duration_seconds if previous else 0.0)
        result = _phase_result(check, report, duration)
        if result is None:
            if previous is not None:
                self._results[check] = CheckResult(
                    check, previous.outcome, previous.reason, duration
                )
            return
        if previous is None or previous.outcome == "passed":
            self._results[check] = result


def _phase_result(check: str, report: pytest.TestReport, duration: float) -> CheckResult | None:
    """The result one phase's report decides, or None when the phase decides nothing."""
    reason = _reason(report)
    if report.failed:
        where = "" if report.when == "call" else f"error in {report.when}: "
        return CheckResult(check, "failed", where + reason, duration)
    if report.skipped and hasattr(report, "wasxfail"):
        return CheckResult(check, "expected-failure", str(report.wasxfail) or None, duration)
    if report.skipped:
        if reason.startswith(NOT_APPLICABLE):
            return CheckResult(
                check, "not-applicable", reason.removeprefix(NOT_APPLICABLE), duration
            )
        return CheckResult(
            check, "failed", f"skipped without a declared reason: {reason}", duration
        )
    if report.when == "call":
        return CheckResult(check, "passed", None, duration)
    return None


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The message of a report: the skip reason, the failure message, or pytest's text."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).removeprefix("Failed: ")
    return str(longrepr or "").strip()
