"""The shipped manifest.json: present in the package and true to the class it names."""

from __future__ import annotations

import importlib
import json
from importlib import resources
from typing import Any

import pytest

import integrations
from integrations.base import CONTRACT_VERSION, Capability, check_connector_class
from integrations.base.registry import ConnectorEntry
from integrations.mocks import MockConnector


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    text = (resources.files("integrations.mocks") / "manifest.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@pytest.fixture(scope="module")
def entry(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["connectors"]
    result: dict[str, Any] = only
    return result


def test_manifest_shape(manifest: dict[str, Any], entry: dict[str, Any]) -> None:
    assert manifest["schema_version"] == 1
    assert entry["name"] == "mock"
    assert entry["version"] == "0.1.0"
    assert entry["tags"] == ["testing", "in-memory"]
    assert entry["description"]
    assert set(entry) == {
        "name",
        "module",
        "class",
        "description",
        "version",
        "capabilities",
        "contract",
        "tags",
    }


def test_entry_resolves_to_the_connector_class(entry: dict[str, Any]) -> None:
    module = importlib.import_module(entry["module"])
    connector_class = getattr(module, entry["class"])

    assert connector_class is MockConnector
    check_connector_class(connector_class)


def test_declared_capabilities_match_the_class(entry: dict[str, Any]) -> None:
    parsed = ConnectorEntry.model_validate(entry)

    assert parsed.declared_capabilities == MockConnector.capabilities
    assert len(entry["capabilities"]) == len(parsed.declared_capabilities)


def test_push_is_declared_idempotent_because_it_upserts_by_id(entry: dict[str, Any]) -> None:
    push = ConnectorEntry.model_validate(entry).capability(Capability.PUSH)

    assert push is not None
    assert push.idempotent


def test_contract_range_admits_the_current_contract(entry: dict[str, Any]) -> None:
    # The range is ">=1.0,<2": the mock is written for contract major version 1.
    assert entry["contract"] == ">=1.0,<2"
    major, minor, _patch = (int(part) for part in CONTRACT_VERSION.split("."))
    assert (major, minor) >= (1, 0)
    assert major < 2


def test_integrations_stays_a_namespace_package() -> None:
    # PEP 420: no distribution may own `integrations` itself.
    assert getattr(integrations, "__file__", None) is None
    assert not hasattr(integrations, "__all__")


def test_distribution_has_the_shape_every_distribution_shares() -> None:
    from integrations.base.testing import distribution_layout_problems

    assert distribution_layout_problems("integrations-mocks", "integrations.mocks") == []
