"""Manifest discovery and the registry: laziness, statuses with reasons, allowlists, conflicts.

Every test builds its own fake distributions (see `conftest.py`) and its own `Registry`, and
asserts only on the connector names it created: the environment may hold other installed
distributions (integrations-mocks, say).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterable
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import integrations.base._registry as registry_internals
from integrations.base import (
    BaseConnector,
    ConnectorConflict,
    ConnectorNotFound,
    ConnectorUnavailable,
    ContractError,
    IntegrationsError,
    ManifestError,
)
from integrations.base import registry as registry_module
from integrations.base.connector import (
    AuthToken,
    Capability,
    Connection,
    ConnectorConfig,
    FetchResult,
    RevokeResult,
    Secret,
)
from integrations.base.registry import (
    ConnectorInfo,
    Registry,
    Status,
    manifest_json_schema,
    parse_manifest,
)

if TYPE_CHECKING:
    from conftest import FakeDistribution, FakeSite


def by_name(infos: Iterable[ConnectorInfo]) -> dict[str, ConnectorInfo]:
    return {info.name: info for info in infos}


def local_registry(**options: Any) -> Registry:
    """A registry that ignores `INTEGRATIONS_MANIFEST`, as most tests want."""
    return Registry(environment=False, **options)


def install_one(
    site: FakeSite,
    stem: str = "one",
    *,
    source: str | None = None,
    **fields: Any,
) -> tuple[FakeDistribution, str, str]:
    """A distribution with one connector module ``<package>.conn``: (dist, name, module)."""
    package = site.unique(stem)
    module = f"{package}.conn"
    name = site.connector_name(stem)
    dist = site.add_distribution(
        stem,
        package=package,
        modules={"conn": site.connector_source() if source is None else source},
        manifest={"connectors": [site.entry(name, module, **fields)]},
    )
    return dist, name, module


class AppConnector(BaseConnector[ConnectorConfig]):
    """A connector defined in the test module, for `register`."""

    capabilities = frozenset({Capability.FETCH})

    def auth(self, context: object) -> AuthToken:
        return AuthToken(value=Secret("t"))

    def connect(self, config: ConnectorConfig) -> Connection:
        return Connection(connection_id="app")

    def fetch(self, query: object) -> FetchResult:
        return FetchResult()

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)


class OtherConnector(AppConnector):
    """A second valid class, to tell replacements apart."""


class NoRevoke:
    """Not a connector: `revoke` is missing."""

    capabilities = frozenset({Capability.FETCH})
    config_model = ConnectorConfig

    def auth(self, context: object) -> AuthToken:
        return AuthToken(value=Secret("t"))

    def connect(self, config: ConnectorConfig) -> Connection:
        return Connection(connection_id="x")

    def fetch(self, query: object) -> FetchResult:
        return FetchResult()


# -- the seed's usage ------------------------------------------------------------------------


def test_seed_usage_discovers_lazily_and_loads_on_get(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist, name, module = install_one(fake_site, "seed")
    monkeypatch.setattr(registry_module, "default_registry", Registry())

    infos = by_name(registry_module.discover())

    assert infos[name].status is Status.OK
    assert infos[name].problem is None
    assert module not in sys.modules
    assert dist.package not in sys.modules
    assert fake_site.imported() == []

    connector_cls = registry_module.get(name)

    assert connector_cls is not None
    assert connector_cls.__name__ == "FakeConnector"
    assert connector_cls.__module__ == module
    assert module in sys.modules
    assert registry_module.get(name) is connector_cls
    assert fake_site.imported() == [dist.package, module]  # imported once, then cached


def test_connectors_reports_distribution_version_location_and_capabilities(
    fake_site: FakeSite,
) -> None:
    dist, name, _ = install_one(fake_site, "meta", capabilities=["fetch"], version="2.1")
    registry = local_registry()

    info = by_name(registry.connectors())[name]

    assert info.status is Status.OK
    assert info.problem is None
    assert info.distribution == dist.name
    assert info.distribution_version == dist.version
    assert info.capabilities == ("fetch",)
    assert info.location == f"{dist.manifest_path}#/connectors/0"
    assert info.entry is not None
    assert info.entry.version == "2.1"
    assert info.loaded is False
    assert fake_site.imported() == []
    row = info.to_json()
    assert row["name"] == name
    assert row["version"] == dist.version
    assert row["problem"] is None


def test_get_without_discover_discovers_first(fake_site: FakeSite) -> None:
    _, name, module = install_one(fake_site, "implicit")
    registry = local_registry()

    assert registry.get(name).__module__ == module
    assert registry.info(name).loaded is True


def test_unknown_name_raises_connector_not_found(fake_site: FakeSite) -> None:
    registry = local_registry()
    registry.discover()
    missing = fake_site.connector_name("missing")

    with pytest.raises(ConnectorNotFound, match=f"no connector named '{missing}'"):
        registry.get(missing)
    with pytest.raises(ConnectorNotFound, match=f"no connector named '{missing}'"):
        registry.info(missing)


# -- broken manifests ------------------------------------------------------------------------


def test_unreadable_distribution_manifest_is_reported_and_others_still_work(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, good, _ = install_one(fake_site, "good")
    bad, bad_name, _ = install_one(fake_site, "unreadable")
    real_open = open

    def guarded_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path) == bad.manifest_path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    # Root may read any file, so the permission failure is simulated where the registry reads.
    monkeypatch.setattr(registry_internals, "open", guarded_open, raising=False)
    registry = local_registry()
    registry.discover()

    problems = [p for p in registry.problems() if p.distribution == bad.name]
    assert len(problems) == 1
    assert problems[0].source == str(bad.manifest_path)
    assert problems[0].reason == "cannot read manifest: Permission denied"
    assert problems[0].to_json()["status"] == "broken"
    infos = by_name(registry.connectors())
    assert bad_name not in infos
    assert infos[good].status is Status.OK


def test_distribution_without_manifest_file_is_reported(fake_site: FakeSite) -> None:
    dist = fake_site.add_distribution("nomanifest", manifest=None)
    registry = local_registry()
    registry.discover()

    problems = [p for p in registry.problems() if p.distribution == dist.name]
    assert [p.reason for p in problems] == [f"package '{dist.package}' has no manifest.json"]


def test_entry_point_naming_an_object_instead_of_a_package_is_reported(
    fake_site: FakeSite,
) -> None:
    package = fake_site.unique("colon")
    dist = fake_site.add_distribution(
        "colon", package=package, manifest={"connectors": []}, entry_point=f"{package}:thing"
    )
    registry = local_registry()
    registry.discover()

    problems = [p for p in registry.problems() if p.distribution == dist.name]
    assert [p.reason for p in problems] == [
        f"entry point '{dist.name}' must name a package, not '{package}:thing'"
    ]


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_application_manifest_is_reported(fake_site: FakeSite, kind: str) -> None:
    path = fake_site.manifests / "absent.json"
    if kind == "directory":
        path.mkdir()
    registry = local_registry(distributions=False)

    assert registry.discover(path) == ()

    [problem] = registry.problems()
    expected = "No such file or directory" if kind == "missing" else "Is a directory"
    assert problem.reason == f"cannot read manifest: {expected}"
    assert problem.source == str(path.resolve())
    assert problem.distribution is None


def test_invalid_json_manifest_is_broken_and_siblings_survive(fake_site: FakeSite) -> None:
    _, good, _ = install_one(fake_site, "good")
    bad = fake_site.add_distribution("badjson", manifest=b'{"connectors": [')
    registry = local_registry()
    registry.discover()

    problems = [p for p in registry.problems() if p.distribution == bad.name]
    assert len(problems) == 1
    assert problems[0].reason.startswith(f"{bad.manifest_path}: not valid JSON: ")
    assert problems[0].source == str(bad.manifest_path)
    assert by_name(registry.connectors())[good].status is Status.OK


@pytest.mark.parametrize(
    ("document", "pointer", "reason"),
    [
        (b"[]", "", "a manifest is a JSON object"),
        (b'{"connectors": {}}', "/connectors", "/connectors: must be a list"),
        (b'{"schema_version": 2, "connectors": []}', "/schema_version", "Input should be 1"),
        (
            b'{"allowed_modules": ["anything"], "connectors": []}',
            "/allowed_modules",
            "Extra inputs are not permitted",
        ),
    ],
)
def test_manifest_with_wrong_shape_is_one_problem(
    fake_site: FakeSite, document: bytes, pointer: str, reason: str
) -> None:
    dist = fake_site.add_distribution("shape", manifest=document)
    registry = local_registry()
    registry.discover()

    [problem] = [p for p in registry.problems() if p.distribution == dist.name]
    assert problem.pointer == pointer
    assert problem.reason.endswith(reason)
    assert problem.to_json()["source"] == f"{dist.manifest_path}#{pointer}".rstrip("#")


def test_schema_violation_of_one_entry_keeps_its_sibling(fake_site: FakeSite) -> None:
    package = fake_site.unique("mixed")
    good = fake_site.connector_name("good")
    bad = fake_site.connector_name("bad")
    dist = fake_site.add_distribution(
        "mixed",
        package=package,
        modules={"conn": fake_site.connector_source()},
        manifest={
            "connectors": [
                fake_site.entry(good, f"{package}.conn"),
                fake_site.entry(bad, f"{package}.conn", "not a class!"),
                {"module": f"{package}.conn", "class": "FakeConnector"},
            ]
        },
    )
    registry = local_registry()
    registry.discover()
    infos = by_name(registry.connectors())

    assert infos[good].status is Status.OK
    assert infos[bad].status is Status.BROKEN
    assert infos[bad].pointer == "/connectors/1/class"
    assert infos[bad].location == f"{dist.manifest_path}#/connectors/1/class"
    assert infos[bad].problem == (
        "invalid entry at /connectors/1/class: "
        "String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'"
    )
    nameless = infos["<manifest.json#/connectors/2>"]
    assert nameless.status is Status.BROKEN
    assert nameless.problem == "invalid entry at /connectors/2/name: Field required"
    assert registry.get(good).__name__ == "FakeConnector"
    with pytest.raises(ConnectorUnavailable, match="invalid entry at /connectors/1/class"):
        registry.get(bad)


# -- broken entries, found when loading ------------------------------------------------------


def test_module_missing_is_broken(fake_site: FakeSite) -> None:
    package = fake_site.unique("nomodule")
    name = fake_site.connector_name("nomodule")
    fake_site.add_distribution(
        "nomodule",
        package=package,
        manifest={"connectors": [fake_site.entry(name, f"{package}.absent")]},
    )
    registry = local_registry()
    registry.discover()

    info = by_name(registry.connectors())[name]
    assert info.status is Status.BROKEN
    assert info.problem == f"module {package}.absent not found"
    with pytest.raises(ConnectorUnavailable, match=f"module {package}.absent not found"):
        registry.get(name)


def test_application_manifest_module_missing_is_broken_before_any_import(
    fake_site: FakeSite,
) -> None:
    package = fake_site.unique("appmissing")
    name = fake_site.connector_name("appmissing")
    path = fake_site.write_manifest({"connectors": [fake_site.entry(name, f"{package}.absent")]})
    registry = local_registry(distributions=False, allowed_modules=[package])
    registry.discover(path)

    info = registry.info(name)
    assert (info.status, info.problem) == (Status.BROKEN, f"module {package}.absent not found")
    with pytest.raises(ConnectorUnavailable) as raised:
        registry.get(name)
    assert str(raised.value) == f"connector '{name}' is broken: module {package}.absent not found"


def test_module_importing_a_missing_dependency_is_broken(fake_site: FakeSite) -> None:
    missing = fake_site.unique("dependency")
    source = f"import {missing}\n" + fake_site.connector_source()
    _, name, module = install_one(fake_site, "needsdep", source=source)
    registry = local_registry()

    with pytest.raises(ConnectorUnavailable) as raised:
        registry.get(name)

    expected = f"importing {module} raised ModuleNotFoundError: No module named '{missing}'"
    assert str(raised.value) == f"connector '{name}' is broken: {expected}"
    assert registry.info(name).problem == expected


def test_import_raising_is_broken_and_does_not_stop_others(fake_site: FakeSite) -> None:
    _, bad, module = install_one(fake_site, "raising", source="raise RuntimeError('boom')\n")
    _, good, _ = install_one(fake_site, "fine")
    registry = local_registry()
    registry.discover()

    with pytest.raises(ConnectorUnavailable) as raised:
        registry.get(bad)

    expected = f"importing {module} raised RuntimeError: boom"
    assert str(raised.value) == f"connector '{bad}' is broken: {expected}"
    info = registry.info(bad)
    assert (info.status, info.problem) == (Status.BROKEN, expected)
    assert registry.get(good).__name__ == "FakeConnector"
    # The failure is remembered: the module is not executed a second time.
    with pytest.raises(ConnectorUnavailable, match="boom"):
        registry.get(bad)
    assert fake_site.imported().count(module) == 1


def test_class_missing_is_broken(fake_site: FakeSite) -> None:
    _, name, module = install_one(fake_site, "noclass", source="VALUE = 1\n")
    registry = local_registry()

    with pytest.raises(ConnectorUnavailable, match=f"module {module} has no class FakeConnector"):
        registry.get(name)
    assert registry.info(name).status is Status.BROKEN
    assert registry.info(name).problem == f"module {module} has no class FakeConnector"


_NOT_A_CONNECTOR = {
    "missing method": (
        """
class FakeConnector:
    capabilities = frozenset()
    config_model = ConnectorConfig

    def auth(self, context):
        return None

    def connect(self, config):
        return None
""",
        "missing method revoke()",
    ),
    "wrong signature": (
        """
class FakeConnector(Base):
    def fetch(self):
        return FetchResult()
""",
        "fetch() must take exactly one argument besides self",
    ),
    "extra required argument": (
        """
class FakeConnector(Base):
    def fetch(self, query, page):
        return FetchResult()
""",
        "fetch() must take exactly one argument besides self",
    ),
    "async where sync expected": (
        """
class FakeConnector(Base):
    async def fetch(self, query):
        return FetchResult()
""",
        "fetch() must be a plain (non-async) method",
    ),
    "declared capability not implemented": (
        """
class FakeConnector(Base):
    capabilities = frozenset({Capability.FETCH, Capability.PUSH})
""",
        "declares push but does not implement push()",
    ),
    "abstract method": (
        """
class FakeConnector(BaseConnector):
    def auth(self, context):
        return None
""",
        "abstract methods not implemented: connect, revoke",
    ),
    "capabilities of the wrong type": (
        """
class FakeConnector(Base):
    capabilities = {"fetch"}
""",
        "capabilities must be a frozenset of Capability",
    ),
}


@pytest.mark.parametrize("case", sorted(_NOT_A_CONNECTOR))
def test_class_not_implementing_the_contract_is_broken(fake_site: FakeSite, case: str) -> None:
    body, reason = _NOT_A_CONNECTOR[case]
    source = fake_site.connector_source("Base") + body
    _, name, _ = install_one(fake_site, "contract", source=source)
    registry = local_registry()

    with pytest.raises(ConnectorUnavailable) as raised:
        registry.get(name)

    info = registry.info(name)
    assert info.status is Status.BROKEN
    assert info.problem is not None
    assert info.problem.startswith("FakeConnector does not fit the contract: ")
    assert reason in info.problem
    assert str(raised.value) == f"connector '{name}' is broken: {info.problem}"


def test_manifest_capabilities_must_match_the_class(fake_site: FakeSite) -> None:
    _, name, _ = install_one(fake_site, "caps", capabilities=["fetch", "push"])
    registry = local_registry()

    assert registry.info(name).capabilities == ("fetch", "push")  # from the manifest, unloaded
    with pytest.raises(ConnectorUnavailable):
        registry.get(name)

    assert registry.info(name).status is Status.BROKEN
    assert registry.info(name).problem == (
        "FakeConnector does not fit the contract: manifest declares capabilities "
        "[fetch, push] but the class declares [fetch]"
    )


def test_capabilities_come_from_the_class_when_the_manifest_names_none(
    fake_site: FakeSite,
) -> None:
    source = fake_site.connector_source(capabilities=("push", "sync"))
    _, name, _ = install_one(fake_site, "classcaps", source=source)
    registry = local_registry()

    assert registry.info(name).capabilities == ()
    registry.get(name)
    info = registry.info(name)
    assert (info.status, info.loaded, info.capabilities) == (Status.OK, True, ("push", "sync"))


# -- incompatible and refused entries are never imported ------------------------------------


def test_incompatible_contract_range_is_never_imported(fake_site: FakeSite) -> None:
    _, name, module = install_one(fake_site, "future", contract=">=2,<3")
    registry = local_registry()
    registry.discover()

    info = by_name(registry.connectors())[name]
    assert info.status is Status.INCOMPATIBLE
    assert info.problem == "supports contract >=2,<3, installed contract is 1.1.0"
    with pytest.raises(ConnectorUnavailable, match="is incompatible: supports contract >=2,<3"):
        registry.get(name)
    assert registry.load_all()
    assert module not in sys.modules
    assert fake_site.imported() == []


def test_compatible_contract_range_is_ok(fake_site: FakeSite) -> None:
    _, name, _ = install_one(fake_site, "current", contract="~=1.0")
    registry = local_registry()

    assert registry.get(name).__name__ == "FakeConnector"
    assert registry.info(name).status is Status.OK


def test_distribution_pointing_at_a_module_it_does_not_install_is_refused(
    fake_site: FakeSite,
) -> None:
    stranger = fake_site.unique("stranger")
    fake_site.write_module(f"{stranger}.evil", fake_site.connector_source())
    owner, owned_name, owned_module = install_one(fake_site, "owner")
    name = fake_site.connector_name("thief")
    other = fake_site.connector_name("borrower")
    dist = fake_site.add_distribution(
        "thief",
        manifest={
            "connectors": [
                fake_site.entry(name, f"{stranger}.evil"),
                fake_site.entry(other, owned_module),  # installed by another distribution
            ]
        },
    )
    registry = local_registry()
    registry.discover()

    infos = by_name(registry.connectors())
    assert infos[name].status is Status.REFUSED
    assert infos[name].problem == f"module {stranger}.evil is not installed by {dist.name}"
    assert infos[other].status is Status.REFUSED
    assert infos[other].problem == f"module {owned_module} is not installed by {dist.name}"
    for refused in (name, other):
        with pytest.raises(ConnectorUnavailable, match="is refused: module"):
            registry.get(refused)
    assert fake_site.imported() == []  # neither the stranger's nor the owner's module ran
    registry.load_all()  # loads the owner's own entry only
    assert fake_site.imported() == [owner.package, owned_module]
    assert f"{stranger}.evil" not in sys.modules
    assert by_name(registry.connectors())[owned_name].status is Status.OK


def test_application_manifest_outside_the_allowed_prefixes_is_refused(
    fake_site: FakeSite,
) -> None:
    package = fake_site.unique("app")
    fake_site.write_module(f"{package}.conn", fake_site.connector_source())
    fake_site.write_module(f"{package}x.conn", fake_site.connector_source())
    allowed = fake_site.connector_name("allowed")
    outside = fake_site.connector_name("outside")
    lookalike = fake_site.connector_name("lookalike")
    path = fake_site.write_manifest(
        {
            "connectors": [
                fake_site.entry(allowed, f"{package}.conn"),
                fake_site.entry(outside, f"{package}.conn"),
                fake_site.entry(lookalike, f"{package}x.conn"),
            ]
        }
    )
    default = local_registry(distributions=False)
    default.discover(path)

    info = default.info(outside)
    assert info.status is Status.REFUSED
    assert info.problem == (
        f"module {package}.conn is outside the allowed prefixes (integrations.)"
    )
    with pytest.raises(ConnectorUnavailable, match="outside the allowed prefixes"):
        default.get(outside)
    default.load_all()
    assert fake_site.imported() == []

    widened = local_registry(distributions=False, allowed_modules=[package])
    widened.discover(path)
    assert widened.get(allowed).__module__ == f"{package}.conn"
    assert widened.info(lookalike).status is Status.REFUSED  # a prefix is a package, not text
    assert widened.info(lookalike).problem == (
        f"module {package}x.conn is outside the allowed prefixes ({package})"
    )
    assert f"{package}x.conn" not in fake_site.imported()


def test_allowed_prefixes_from_the_environment(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = fake_site.unique("envallowed")
    fake_site.write_module(f"{package}.conn", fake_site.connector_source())
    name = fake_site.connector_name("envallowed")
    path = fake_site.write_manifest({"connectors": [fake_site.entry(name, f"{package}.conn")]})
    monkeypatch.setenv("INTEGRATIONS_ALLOWED_MODULES", os.pathsep.join(["unrelated.", package]))
    registry = local_registry(distributions=False)
    registry.discover(path)

    assert registry.get(name).__module__ == f"{package}.conn"


def test_distribution_manifest_cannot_override(fake_site: FakeSite) -> None:
    _, name, module = install_one(fake_site, "overrider", override=True)
    registry = local_registry()
    registry.discover()

    info = registry.info(name)
    assert info.status is Status.REFUSED
    assert info.problem == "only application manifests may override a connector"
    with pytest.raises(ConnectorUnavailable, match="only application manifests may override"):
        registry.get(name)
    assert module not in sys.modules


# -- conflicts -------------------------------------------------------------------------------


def test_two_distributions_declaring_one_name_conflict(fake_site: FakeSite) -> None:
    name = fake_site.connector_name("twice")
    dists = []
    for stem in ("first", "second"):
        package = fake_site.unique(stem)
        dists.append(
            fake_site.add_distribution(
                stem,
                package=package,
                modules={"conn": fake_site.connector_source()},
                manifest={"connectors": [fake_site.entry(name, f"{package}.conn")]},
            )
        )
    first, second = sorted(dists, key=lambda dist: dist.name)
    registry = local_registry()
    registry.discover()

    info = registry.info(name)
    reason = (
        f"declared twice: at {first.manifest_path}#/connectors/0 "
        f"and at {second.manifest_path}#/connectors/0"
    )
    assert (info.status, info.problem) == (Status.BROKEN, reason)
    with pytest.raises(ConnectorConflict) as raised:
        registry.get(name)
    assert str(raised.value) == f"connector '{name}' is broken: {reason}"
    assert fake_site.imported() == []


@pytest.mark.parametrize("override", [False, True])
def test_application_manifest_overrides_only_when_it_says_so(
    fake_site: FakeSite, override: bool
) -> None:
    dist, name, _ = install_one(fake_site, "base")
    app = fake_site.unique("app")
    fake_site.write_module(f"{app}.conn", fake_site.connector_source("AppConnector"))
    fields = {"override": True} if override else {}
    path = fake_site.write_manifest(
        {"connectors": [fake_site.entry(name, f"{app}.conn", "AppConnector", **fields)]}
    )
    registry = local_registry(allowed_modules=[app])
    registry.discover(path)

    info = registry.info(name)
    if override:
        assert (info.status, info.problem) == (Status.OK, None)
        assert info.source == str(path.resolve())
        assert registry.get(name).__name__ == "AppConnector"
        assert fake_site.imported() == [app, f"{app}.conn"]
    else:
        assert info.status is Status.BROKEN
        assert info.problem == (
            f"declared twice: at {dist.manifest_path}#/connectors/0 "
            f"and at {path.resolve()}#/connectors/0"
        )
        with pytest.raises(ConnectorConflict, match="declared twice"):
            registry.get(name)
        assert fake_site.imported() == []


# -- strict mode -----------------------------------------------------------------------------


def _state(registry: Registry) -> tuple[object, ...]:
    return registry.connectors(), registry.problems()


@pytest.mark.parametrize(
    ("document", "error", "message"),
    [
        (b"{oops", ManifestError, "not valid JSON"),
        ({"connectors": [{"name": "x"}]}, ConnectorUnavailable, "invalid entry at"),
        (
            {"connectors": [{"name": "late", "module": "m.n", "class": "C", "contract": ">=9"}]},
            ConnectorUnavailable,
            "connector 'late' is incompatible: supports contract >=9",
        ),
        (
            {"connectors": [{"name": "far", "module": "elsewhere.mod", "class": "C"}]},
            ConnectorUnavailable,
            "connector 'far' is refused: module elsewhere.mod is outside the allowed prefixes",
        ),
    ],
)
def test_strict_discover_raises_and_leaves_the_registry_as_it_was(
    only_fake_distributions: FakeSite,
    document: dict[str, Any] | bytes,
    error: type[Exception],
    message: str,
) -> None:
    site = only_fake_distributions
    _, name, _ = install_one(site, "kept")
    registry = local_registry()
    registry.discover(strict=True)
    registry.get(name)
    before = _state(registry)
    path = site.write_manifest(document)

    with pytest.raises(error, match=message):
        registry.discover(path, strict=True)

    assert _state(registry) == before
    assert registry.info(name).loaded is True
    # The failed path is not remembered as a source either.
    assert by_name(registry.discover()).keys() == by_name(before[0]).keys()  # type: ignore[arg-type]


def test_strict_raises_on_a_conflict(only_fake_distributions: FakeSite) -> None:
    site = only_fake_distributions
    _, name, _ = install_one(site, "strictconflict")
    app = site.unique("app")
    path = site.write_manifest({"connectors": [site.entry(name, f"{app}.conn")]})
    registry = local_registry(allowed_modules=[app])
    before = _state(registry)

    with pytest.raises(ConnectorConflict, match=f"connector '{name}' declared twice"):
        registry.discover(path, strict=True)
    assert _state(registry) == before


def test_strict_checks_ownership_before_any_import(only_fake_distributions: FakeSite) -> None:
    site = only_fake_distributions
    stranger = site.unique("stranger")
    site.write_module(f"{stranger}.evil", site.connector_source())
    name = site.connector_name("strictthief")
    dist = site.add_distribution(
        "strictthief", manifest={"connectors": [site.entry(name, f"{stranger}.evil")]}
    )
    registry = local_registry()

    with pytest.raises(ConnectorUnavailable) as raised:
        registry.discover(strict=True)

    assert str(raised.value) == (
        f"connector '{name}' is refused: module {stranger}.evil is not installed by {dist.name}"
    )
    assert registry.problems() == ()
    assert site.imported() == []


def test_strict_raises_on_the_first_problem_only(fake_site: FakeSite) -> None:
    first = fake_site.connector_name("first")
    second = fake_site.connector_name("second")
    path = fake_site.write_manifest(
        {
            "connectors": [
                fake_site.entry(first, "integrations.nowhere", contract=">=5"),
                fake_site.entry(second, "elsewhere.mod"),
            ]
        }
    )
    registry = local_registry(distributions=False)

    with pytest.raises(ConnectorUnavailable) as raised:
        registry.discover(path, strict=True)

    assert str(raised.value) == (
        f"connector '{first}' is incompatible: supports contract >=5, installed contract is 1.1.0"
    )


def test_strict_load_manifest_failure_is_not_remembered(fake_site: FakeSite) -> None:
    name = fake_site.connector_name("refusedlater")
    path = fake_site.write_manifest({"connectors": [fake_site.entry(name, "elsewhere.mod")]})
    registry = local_registry(distributions=False)
    registry.discover()
    before = _state(registry)

    with pytest.raises(ConnectorUnavailable, match="outside the allowed prefixes"):
        registry.load_manifest(path, strict=True)

    assert _state(registry) == before
    registry.discover()
    assert _state(registry) == before


# -- application manifests -------------------------------------------------------------------


def _app_manifest(site: FakeSite, stem: str) -> tuple[Path, str, str]:
    package = site.unique(stem)
    site.write_module(f"{package}.conn", site.connector_source())
    name = site.connector_name(stem)
    path = site.write_manifest({"connectors": [site.entry(name, f"{package}.conn")]}, stem)
    return path, name, package


def test_manifests_from_the_environment_variable(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, first_name, first_package = _app_manifest(fake_site, "envone")
    second, second_name, second_package = _app_manifest(fake_site, "envtwo")
    monkeypatch.setenv("INTEGRATIONS_MANIFEST", os.pathsep.join([str(first), "", str(second)]))
    registry = Registry(distributions=False, allowed_modules=[first_package, second_package])

    infos = by_name(registry.discover())

    assert infos[first_name].source == str(first.resolve())
    assert infos[second_name].source == str(second.resolve())
    assert {infos[first_name].status, infos[second_name].status} == {Status.OK}
    assert registry.get(second_name).__module__ == f"{second_package}.conn"
    assert registry.problems() == ()


def test_discover_with_a_path_adds_that_manifest(fake_site: FakeSite) -> None:
    path, name, package = _app_manifest(fake_site, "pathed")
    registry = local_registry(distributions=False, allowed_modules=[package])

    assert [info.name for info in registry.discover(path)] == [name]
    assert registry.get(name).__module__ == f"{package}.conn"
    assert [info.name for info in registry.discover()] == [name]  # the path stays a source
    assert fake_site.imported() == [package, f"{package}.conn"]


def test_environment_manifest_given_again_is_not_a_conflict(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, name, package = _app_manifest(fake_site, "again")
    monkeypatch.setenv("INTEGRATIONS_MANIFEST", str(path))
    registry = Registry(distributions=False, allowed_modules=[package])

    registry.load_manifest()
    registry.discover(path)

    assert registry.info(name).status is Status.OK
    assert registry.info(name).problem is None
    assert registry.get(name).__module__ == f"{package}.conn"


def test_load_manifest_returns_the_entries_of_that_file(fake_site: FakeSite) -> None:
    path, name, package = _app_manifest(fake_site, "loaded")
    registry = local_registry(distributions=False, allowed_modules=[package])

    assert [info.name for info in registry.load_manifest(path)] == [name]
    assert registry.get(name).__module__ == f"{package}.conn"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read manifest: No such file or directory"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b'{"connectors": [', "not valid JSON"),
        (b'"just a string"', "a manifest is a JSON object"),
        (b'{"connectors": 3}', "/connectors: must be a list"),
    ],
)
def test_load_manifest_raises_manifest_error_for_an_unusable_file(
    fake_site: FakeSite, content: bytes | None, message: str
) -> None:
    path = fake_site.manifests / "unusable.json"
    if content is not None:
        path.write_bytes(content)
    registry = local_registry(distributions=False)
    registry.discover()

    with pytest.raises(ManifestError, match=message) as raised:
        registry.load_manifest(path)

    assert raised.value.source == str(path.resolve())
    assert registry.connectors() == ()
    assert registry.problems() == ()
    registry.discover()
    assert registry.problems() == ()  # the file did not become a source


# -- register() ------------------------------------------------------------------------------


def test_register_validates_the_class_at_registration() -> None:
    registry = local_registry(distributions=False)

    with pytest.raises(ContractError, match=r"cannot register 'bad': missing method revoke\(\)"):
        registry.register("bad", NoRevoke)  # type: ignore[arg-type]

    with pytest.raises(ConnectorNotFound):
        registry.get("bad")


def test_register_conflict_and_replace() -> None:
    registry = local_registry(distributions=False)
    registry.register("app", AppConnector)

    with pytest.raises(ConnectorConflict, match="connector 'app' is already registered"):
        registry.register("app", OtherConnector)
    assert registry.get("app") is AppConnector

    registry.register("app", OtherConnector, replace=True)
    assert registry.get("app") is OtherConnector
    registry.discover()
    assert registry.get("app") is OtherConnector
    info = registry.info("app")
    assert (info.status, info.source, info.loaded) == (Status.OK, "<register>", True)


def test_register_conflicts_with_a_discovered_connector(fake_site: FakeSite) -> None:
    _, name, _ = install_one(fake_site, "taken")
    registry = local_registry()
    registry.discover()

    with pytest.raises(ConnectorConflict, match=f"connector '{name}' is already registered"):
        registry.register(name, AppConnector)

    registry.register(name, AppConnector, replace=True)
    assert registry.get(name) is AppConnector
    registry.discover()  # the registration still wins over the manifest
    assert registry.get(name) is AppConnector
    assert fake_site.imported() == []


def test_module_level_register_and_get(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "default_registry", local_registry(distributions=False))
    registry_module.register("module-level", AppConnector)

    assert registry_module.get("module-level") is AppConnector
    assert [info.name for info in registry_module.connectors()] == ["module-level"]
    assert registry_module.problems() == ()


# -- the entry-point scan ----------------------------------------------------------------------


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record every walk over the installed distributions (what one scan consists of)."""
    calls: list[dict[str, Any]] = []
    real: Callable[..., Iterable[metadata.Distribution]] = metadata.distributions

    def counting(**params: Any) -> Iterable[metadata.Distribution]:
        calls.append(params)
        return real(**params)

    monkeypatch.setattr(metadata, "distributions", counting)
    return calls


def test_one_entry_point_scan_per_process_and_refresh_rescans(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_scans(monkeypatch)
    _, first, _ = install_one(fake_site, "early")
    registries = [local_registry(), local_registry()]

    for registry in registries * 3:
        registry.discover()
    registries[0].connectors()

    assert len(calls) == 1
    _, late, _ = install_one(fake_site, "late")
    assert late not in by_name(registries[0].discover())

    infos = by_name(registries[0].refresh())

    assert len(calls) == 2
    assert {first, late} <= infos.keys()
    assert registries[0].get(late).__name__ == "FakeConnector"
    registries[1].discover()  # the rescan is shared by every registry of the process
    assert len(calls) == 2
    assert late in by_name(registries[1].connectors())


# -- the schema ------------------------------------------------------------------------------


def test_json_schema_is_the_shipped_file() -> None:
    shipped = resources.files("integrations.base").joinpath("manifest.schema.json")

    assert json.loads(shipped.read_text(encoding="utf-8")) == manifest_json_schema()


def test_seed_minimal_document_is_valid() -> None:
    document = {"connectors": [{"name": "mock", "module": "integrations.mocks", "class": "Mock"}]}

    parsed = parse_manifest(json.dumps(document), "seed.json")

    assert parsed.problems == ()
    [(index, entry)] = parsed.entries
    assert (index, entry.name, entry.module, entry.class_name) == (
        0,
        "mock",
        "integrations.mocks",
        "Mock",
    )
    assert entry.contract == ">=1,<2"
    assert entry.override is False
    schema = manifest_json_schema()
    assert set(schema["$defs"]["ConnectorEntry"]["required"]) == {"name", "module", "class"}
    assert "required" not in schema


# -- concurrency -----------------------------------------------------------------------------


def test_many_threads_discover_register_and_get_at_once(fake_site: FakeSite) -> None:
    distributed = [install_one(fake_site, f"shared{index}") for index in range(3)]
    registry = local_registry()
    threads_count, rounds = 16, 12
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []
    seen: dict[str, set[type[object]]] = {name: set() for _, name, _ in distributed}
    seen_lock = threading.Lock()

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for round_ in range(rounds):
                registry.register(f"thread{worker}.r{round_}", AppConnector)
                _, name, _ = distributed[(worker + round_) % len(distributed)]
                loaded = registry.get(name)
                with seen_lock:
                    seen[name].add(loaded)
                if round_ % 3 == 0:
                    registry.discover()
                if round_ % 4 == 1:
                    registry.register("shared", OtherConnector, replace=True)
                names = {info.name for info in registry.connectors()}
                assert f"thread{worker}.r{round_}" in names
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    infos = by_name(registry.connectors())
    registered = {f"thread{w}.r{r}" for w in range(threads_count) for r in range(rounds)}
    assert registered <= infos.keys()
    assert all(infos[name].status is Status.OK for name in registered)
    assert registry.get("shared") is OtherConnector
    for dist, name, module in distributed:
        assert len(seen[name]) == 1  # every thread got the same class object
        assert infos[name].status is Status.OK
        assert fake_site.imported().count(module) == 1
        assert dist.package in sys.modules


def test_independent_registries_do_not_share_state(fake_site: FakeSite) -> None:
    one, two = local_registry(distributions=False), local_registry(distributions=False)
    one.register("only-one", AppConnector)

    with pytest.raises(ConnectorNotFound):
        two.get("only-one")
    assert one.get("only-one") is AppConnector
    assert isinstance(ConnectorNotFound("x"), IntegrationsError)
    assert fake_site.imported() == []
