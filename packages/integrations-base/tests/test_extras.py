"""A connector whose optional extra is not installed is unavailable, not broken.

The fake distributions here declare extras in their metadata (``Provides-Extra``,
``Requires-Dist ...; extra == "x"``) whose requirements are not installed, and connector
modules that import a package that does not exist, as a driver-less environment would.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from integrations.base import ConnectorUnavailable
from integrations.base._cli import cli
from integrations.base._registry import Registry, Status

if TYPE_CHECKING:
    from conftest import FakeDistribution, FakeSite

DRIVER = "integrations_absent_driver_7f3a"
"""A package no environment has: the connector modules below import it."""

IMPORTS_DRIVER = f"import {DRIVER}\n"


def invoke(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "400"}).invoke(cli, list(args), catch_exceptions=False)


def install(
    site: FakeSite, stem: str, *, source: str = IMPORTS_DRIVER, **fields: Any
) -> tuple[FakeDistribution, str]:
    """A distribution whose extra ``fast`` requires the absent driver."""
    package = site.unique(stem)
    name = site.connector_name(stem)
    dist = site.add_distribution(
        stem,
        package=package,
        modules={"conn": source + site.connector_source()},
        manifest={"connectors": [site.entry(name, f"{package}.conn", **fields)]},
        extras={"fast": [f"{DRIVER.replace('_', '-')}>=1"], "docs": []},
    )
    return dist, name


def test_an_entry_whose_extra_is_missing_is_unavailable_without_importing(
    fake_site: FakeSite,
) -> None:
    dist, name = install(fake_site, "driverless", extra="fast")
    registry = Registry()

    info = registry.info(name)

    assert info.status is Status.UNAVAILABLE
    assert info.install == f"pip install '{dist.name}[fast]'"
    assert info.problem == (
        f"needs the optional extra 'fast' (not installed: {DRIVER.replace('_', '-')}): "
        f"pip install '{dist.name}[fast]'"
    )
    assert fake_site.imported() == []  # decided from metadata alone
    with pytest.raises(ConnectorUnavailable, match=r"is unavailable: .*pip install"):
        registry.get(name)
    assert fake_site.imported() == []


def test_an_installed_extra_leaves_the_connector_ok(fake_site: FakeSite) -> None:
    _, name = install(fake_site, "documented", source="", extra="docs")  # requires nothing

    info = Registry().info(name)

    assert (info.status, info.problem, info.install) == (Status.OK, None, None)


def test_an_extra_the_distribution_does_not_provide_is_broken(fake_site: FakeSite) -> None:
    dist, name = install(fake_site, "misnamed", source="", extra="turbo")

    info = Registry().info(name)

    assert info.status is Status.BROKEN
    assert info.problem == (
        f"needs extra 'turbo', which {dist.name} does not provide (it provides: docs, fast)"
    )


def test_an_extra_name_is_validated_with_the_entry(fake_site: FakeSite) -> None:
    _, name = install(fake_site, "badextra", source="", extra="not an extra!")

    info = Registry().info(name)

    assert info.status is Status.BROKEN
    assert info.problem is not None
    assert info.problem.startswith("invalid entry at /connectors/0/extra: String should match")


def test_without_an_extra_field_the_missing_module_is_mapped_to_the_extra(
    fake_site: FakeSite,
) -> None:
    dist, name = install(fake_site, "unmarked")
    registry = Registry()

    assert registry.info(name).status is Status.OK  # nothing says so before the import
    with pytest.raises(ConnectorUnavailable) as raised:
        registry.get(name)

    info = registry.info(name)
    assert info.status is Status.UNAVAILABLE
    assert info.install == f"pip install '{dist.name}[fast]'"
    assert f"No module named '{DRIVER}'" in str(raised.value)


def test_a_missing_module_no_extra_provides_is_broken(fake_site: FakeSite) -> None:
    _, name = install(fake_site, "stray", source="import integrations_nowhere_91c2\n")
    registry = Registry()

    with pytest.raises(ConnectorUnavailable):
        registry.get(name)

    info = registry.info(name)
    assert info.status is Status.BROKEN
    assert info.problem is not None
    assert "raised ModuleNotFoundError: No module named 'integrations_nowhere_91c2'" in info.problem


def test_strict_discovery_accepts_an_unavailable_connector(
    only_fake_distributions: FakeSite,
) -> None:
    _, name = install(only_fake_distributions, "strictly", extra="fast")

    infos = Registry().discover(strict=True)

    assert [info.name for info in infos] == [name]


def test_doctor_reports_unavailable_and_passes_unless_strict(
    only_fake_distributions: FakeSite,
) -> None:
    site = only_fake_distributions
    dist, name = install(site, "optional", extra="fast")
    good_package = site.unique("good")
    good = site.connector_name("good")
    site.add_distribution(
        "good",
        package=good_package,
        modules={"conn": site.connector_source()},
        manifest={"connectors": [site.entry(good, f"{good_package}.conn")]},
    )

    relaxed = invoke("doctor", "--json")
    strict = invoke("doctor", "--strict", "--json")
    table = invoke("doctor")

    assert relaxed.exit_code == 0
    rows = {row["name"]: row for row in json.loads(relaxed.stdout)}
    assert rows[name]["status"] == "unavailable"
    assert rows[name]["install"] == f"pip install '{dist.name}[fast]'"
    assert rows[good]["status"] == "ok"
    assert strict.exit_code == 1
    assert json.loads(strict.stdout) == json.loads(relaxed.stdout)
    assert table.exit_code == 0
    assert f"pip install '{dist.name}[fast]'" in table.stdout


def test_list_json_shows_unavailable_with_the_command(fake_site: FakeSite) -> None:
    dist, name = install(fake_site, "listed", extra="fast")

    result = invoke("list", "--json")

    assert result.exit_code == 0
    row = {row["name"]: row for row in json.loads(result.stdout)}[name]
    assert (row["status"], row["install"], row["loaded"]) == (
        "unavailable",
        f"pip install '{dist.name}[fast]'",
        False,
    )
    assert fake_site.imported() == []
