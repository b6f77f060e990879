"""The manifest's ``certification`` field: which kit class certifies a connector.

The fake distributions here ship a connector module (the mock, re-exported so that the
distribution owns the module) and a certification module beside it. `integrations certify`
runs the named class, after checking that its module belongs to the distribution that ships
the manifest (or, for an application manifest, lies under the allowed prefixes), exactly as
the connector's own module is checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from integrations.base import ConnectorUnavailable
from integrations.base._cli import cli
from integrations.base._registry import Registry, Status

if TYPE_CHECKING:
    from conftest import FakeDistribution, FakeSite

CONNECTOR = "from integrations.mocks import MockConnector as FakeConnector\n"

CERTIFICATION = '''\
import os
import uuid

from integrations.base.testing import ConnectorCertification


class MockStoreCertification(ConnectorCertification):
    """The mock with its optional behaviour declared, in a store of its own per check."""

    supports_text_search = True
    supports_tombstones = True
    push_is_idempotent = True

    def config(self):
        return {"store": f"certification-entry-{uuid.uuid4().hex}"}


class NeedsAServer(MockStoreCertification):
    @classmethod
    def configuration_problem(cls):
        if os.environ.get("FAKE_SERVER_URL"):
            return None
        return "set FAKE_SERVER_URL, or pass --config"


class NotAKit:
    pass
'''


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", **(env or {})})
    return runner.invoke(cli, list(args), catch_exceptions=False)


def install(site: FakeSite, stem: str, certification: str | None) -> tuple[FakeDistribution, str]:
    """A distribution shipping the mock as `conn` and the certification classes as `cert`."""
    package = site.unique(stem)
    name = site.connector_name(stem)
    fields: dict[str, Any] = {} if certification is None else {"certification": certification}
    dist = site.add_distribution(
        stem,
        package=package,
        modules={"conn": CONNECTOR, "cert": CERTIFICATION},
        manifest={"connectors": [site.entry(name, f"{package}.conn", **fields)]},
    )
    return dist, name


def test_certify_runs_the_class_the_manifest_names(fake_site: FakeSite) -> None:
    _, plain_name = install(fake_site, "plain", None)
    _, named = _certified(fake_site, "named", "{package}.cert:MockStoreCertification")

    plain = invoke("certify", plain_name, "--json")
    chosen = invoke("certify", named, "--json")

    assert plain.exit_code == 0, plain.output
    assert chosen.exit_code == 0, chosen.output
    plain_checks = {row["check"]: row["outcome"] for row in json.loads(plain.stdout)["checks"]}
    checks = {row["check"]: row["outcome"] for row in json.loads(chosen.stdout)["checks"]}
    # The plain kit cannot know the mock searches text; the named class declares it.
    assert plain_checks["text_search_finds_matching_records"] == "not-applicable"
    assert checks["text_search_finds_matching_records"] == "passed"
    assert checks["tombstones_delete_records"] == "passed"


def _certified(site: FakeSite, stem: str, target: str) -> tuple[FakeDistribution, str]:
    """A distribution whose entry names `target` in its own package (``{package}`` filled in)."""
    dist, name = install(site, stem, None)
    manifest = json.loads(dist.manifest_path.read_text("utf-8"))
    manifest["connectors"][0]["certification"] = target.format(package=dist.package)
    dist.manifest_path.write_text(json.dumps(manifest), "utf-8")
    return dist, name


def test_a_certification_outside_the_distribution_is_refused_before_import(
    fake_site: FakeSite,
) -> None:
    other = fake_site.add_distribution("other", modules={"cert": CERTIFICATION})
    dist, name = _certified(fake_site, "foreign", f"{other.package}.cert:MockStoreCertification")
    registry = Registry()

    with pytest.raises(ConnectorUnavailable) as raised:
        registry.load_certification(name)

    assert str(raised.value) == (
        f"certification {other.package}.cert:MockStoreCertification of connector {name!r} "
        f"is refused: module {other.package}.cert is not installed by {dist.name}"
    )
    assert f"{other.package}.cert" not in fake_site.imported()
    result = invoke("certify", name)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {raised.value}\n"


def test_a_certification_in_an_application_manifest_needs_an_allowed_prefix(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = fake_site.unique("app")
    outside = fake_site.unique("outside")
    fake_site.write_module(f"{package}.conn", CONNECTOR)
    fake_site.write_module(f"{outside}.cert", CERTIFICATION)
    name = fake_site.connector_name("app")
    entry = fake_site.entry(
        name, f"{package}.conn", certification=f"{outside}.cert:MockStoreCertification"
    )
    path = fake_site.write_manifest({"connectors": [entry]})
    monkeypatch.setenv("INTEGRATIONS_ALLOWED_MODULES", package)
    registry = Registry()
    registry.load_manifest(path)

    with pytest.raises(ConnectorUnavailable, match="is outside the allowed prefixes"):
        registry.load_certification(name)
    assert f"{outside}.cert" not in fake_site.imported()

    monkeypatch.setenv("INTEGRATIONS_ALLOWED_MODULES", f"{package}:{outside}")
    allowed = Registry()
    allowed.load_manifest(path)
    loaded = allowed.load_certification(name)
    assert loaded is not None
    assert loaded.__name__ == "MockStoreCertification"


def test_a_certification_that_is_not_a_kit_subclass_is_refused(fake_site: FakeSite) -> None:
    dist, name = _certified(fake_site, "notakit", "{package}.cert:NotAKit")

    result = invoke("certify", name)

    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: certification {dist.package}.cert:NotAKit of connector {name!r} "
        "is not a subclass of ConnectorCertification\n"
    )


def test_a_missing_certification_class_is_reported(fake_site: FakeSite) -> None:
    _, name = _certified(fake_site, "noclass", "{package}.cert:Nowhere")

    with pytest.raises(ConnectorUnavailable, match=r"module .*\.cert has no class Nowhere$"):
        Registry().load_certification(name)


def test_the_certification_field_is_validated_with_the_entry(fake_site: FakeSite) -> None:
    _, name = install(fake_site, "malformed", "not a module:Class")

    info = Registry().info(name)

    assert info.status is Status.BROKEN
    assert info.problem is not None
    assert info.problem.startswith("invalid entry at /connectors/0/certification: ")


def test_certify_reports_a_class_that_needs_configuration(fake_site: FakeSite) -> None:
    _, name = _certified(fake_site, "server", "{package}.cert:NeedsAServer")

    missing = invoke("certify", name, env={"FAKE_SERVER_URL": None})
    configured = invoke("certify", name, env={"FAKE_SERVER_URL": "fake://server"})

    assert missing.exit_code == 1
    assert missing.stderr == (
        f"Error: connector {name!r} is not configured for certification: "
        "set FAKE_SERVER_URL, or pass --config\n"
    )
    assert configured.exit_code == 0, configured.output


def test_certify_all_reports_every_connector_and_exits_1_unless_all_pass(
    fake_site: FakeSite,
) -> None:
    # Every installed connector is certified too (the environment's): only these rows are
    # this test's business. (Hiding the environment would hide pytest-timeout from the kit.)
    site = fake_site
    _, good = _certified(site, "good", "{package}.cert:MockStoreCertification")
    _, waiting = _certified(site, "waiting", "{package}.cert:NeedsAServer")
    broken_package = site.unique("broken")
    broken = site.connector_name("broken")
    site.add_distribution(
        "broken",
        package=broken_package,
        manifest={"connectors": [site.entry(broken, f"{broken_package}.missing")]},
    )

    result = invoke("certify", "--all", "--json", env={"FAKE_SERVER_URL": None})
    table = invoke("certify", "--all", env={"FAKE_SERVER_URL": None})

    assert result.exit_code == 1
    rows = {row["connector"]: row for row in json.loads(result.stdout)}
    mine = {good, waiting, broken}
    assert {name: (row["result"], row["ok"]) for name, row in rows.items() if name in mine} == {
        good: ("passed", True),
        waiting: ("not-configured", False),
        broken: ("broken", False),
    }
    assert rows[waiting]["reason"] == f"set FAKE_SERVER_URL, or pass --config {waiting}=FILE"
    assert rows[broken]["reason"] == f"module {broken_package}.missing not found"
    assert rows[good]["report"]["ok"] is True
    assert table.exit_code == 1
    passed = sum(row["result"] == "passed" for row in rows.values())
    assert table.stdout.splitlines()[-1] == f"{passed} of {len(rows)} connectors certified"


def test_certify_usage_errors(tmp_path: Path) -> None:
    neither = invoke("certify")
    both = invoke("certify", "mock", "--all")
    unnamed = invoke("certify", "--all", "--config", "config.json")
    config = tmp_path / "config.json"
    config.write_text("{}", "utf-8")
    unknown = invoke("certify", "--all", "--config", f"nobody={config}")
    twice = invoke("certify", "mock", "--config", str(config), "--config", str(config))

    assert [r.exit_code for r in (neither, both, unnamed, unknown, twice)] == [2] * 5
    assert "name one connector, or pass --all" in neither.stderr
    assert "name one connector, or pass --all" in both.stderr
    assert "with --all, --config takes NAME=FILE, not 'config.json'" in unnamed.stderr
    assert "--config names no installed connector: nobody" in unknown.stderr
    assert "--config is given once for one connector" in twice.stderr
