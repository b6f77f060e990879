"""`distribution_layout_problems`: the shared-shape check distributions run in their tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from integrations.base.testing import distribution_layout_problems

if TYPE_CHECKING:
    from conftest import FakeSite


def test_a_distribution_with_the_shared_shape_has_no_problem(fake_site: FakeSite) -> None:
    dist = fake_site.add_distribution("shaped", manifest={"connectors": []})
    (fake_site.root / dist.package / "py.typed").touch()

    assert distribution_layout_problems(dist.name, dist.package) == []


def test_every_departure_from_the_shape_is_named(fake_site: FakeSite) -> None:
    dist = fake_site.add_distribution(
        "misshapen",
        manifest={"connectors": [{"name": "x", "module": "m"}]},
        entry_point="somewhere.else",
    )

    problems = distribution_layout_problems(dist.name, dist.package)

    assert problems == [
        "manifest entry at /connectors/0/class: Field required",
        f"integrations.manifests must hold {dist.name} = {dist.package}; "
        f"found [('{dist.name}', 'somewhere.else')]",
        f"{dist.package} has no py.typed marker",
    ]


def test_a_package_that_does_not_import_is_reported(fake_site: FakeSite) -> None:
    problems = distribution_layout_problems("fake-nothing", "no_such_package_anywhere")

    assert len(problems) == 1
    assert problems[0].startswith("no_such_package_anywhere does not import")
