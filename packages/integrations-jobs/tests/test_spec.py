"""Spec validation: typed errors naming the field, TOML files, the published JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from integrations.base import ConfigError, IntegrationsError, Registry
from integrations.jobs import JobsSpec, SpecError, jobs_json_schema, load_spec, parse_duration

MINIMAL: dict[str, Any] = {
    "name": "memories",
    "source": {"connector": "memory.sqlite"},
    "destination": {"connector": "mock"},
    "tenants": [{"tenant": "acme", "actor": "bot"}],
}


def pipeline(**changes: Any) -> dict[str, Any]:
    return {"pipelines": [{**MINIMAL, **changes}]}


def problems(document: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        JobsSpec.from_mapping(document)
    assert isinstance(caught.value, ConfigError)
    assert isinstance(caught.value, IntegrationsError)
    return dict(caught.value.problems)


def test_a_minimal_spec_gets_the_defaults() -> None:
    spec = JobsSpec.from_mapping(pipeline())
    [only] = spec.pipelines
    assert (only.batch_size, only.attempts, only.schedule, only.source.operation) == (
        100,
        3,
        None,
        "sync",
    )
    assert spec.concurrency.workers == 4
    assert spec.pipeline("memories").tenant("acme").actor == "bot"


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"batch_size": 0}, "pipelines.0.batch_size", "greater than or equal to 1"),
        ({"tenants": []}, "pipelines.0.tenants", "at least 1 item"),
        ({"tenants": [{"tenant": "acme"}]}, "pipelines.0.tenants.0.actor", "Field required"),
        ({"name": "has space"}, "pipelines.0.name", "should match pattern"),
        ({"schedule": {"every": "soon"}}, "pipelines.0.schedule.every", "not a duration"),
        ({"batch": 10}, "pipelines.0.batch", "Extra inputs are not permitted"),
        (
            {"source": {"connector": "mock", "operation": "push"}},
            "pipelines.0.source.operation",
            "'sync' or 'fetch'",
        ),
        (
            {"source": {"connector": "mock", "query": {"text": "x"}}},
            "pipelines.0.source",
            "only read with operation = 'fetch'",
        ),
        (
            {"tenants": [{"tenant": "a", "actor": "x"}, {"tenant": "a", "actor": "y"}]},
            "pipelines.0.tenants",
            "tenant 'a' is listed twice",
        ),
    ],
)
def test_errors_name_the_field(changes: dict[str, Any], field: str, reason: str) -> None:
    found = problems(pipeline(**changes))
    assert field in found, found
    assert reason in found[field]


def test_pipeline_names_are_unique_and_governance_settings_are_checked() -> None:
    twice = {"pipelines": [MINIMAL, MINIMAL]}
    assert "defined twice" in problems(twice)["pipelines"]
    bad = {**pipeline(), "governance": {"audit_required": "sometimes"}}
    assert "invalid governance settings" in problems(bad)["governance"]


def test_unknown_pipelines_and_tenants_are_spec_errors() -> None:
    spec = JobsSpec.from_mapping(pipeline())
    with pytest.raises(SpecError, match="no pipeline 'other'"):
        spec.pipeline("other")
    with pytest.raises(SpecError, match="no tenant 'globex'"):
        spec.pipeline("memories").tenant("globex")


def test_durations() -> None:
    assert [parse_duration(v) for v in (30, "90s", "15m", "1.5h", "1d", "250ms")] == [
        30.0,
        90.0,
        900.0,
        5400.0,
        86400.0,
        0.25,
    ]
    for bad in ("0s", -1, True, "15 minutes"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_a_toml_file_loads_with_its_store_relative_to_it(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(
        """
store = "state/jobs.db"

[[pipelines]]
name = "memories"
batch_size = 50
schedule = { every = "15m" }
source = { connector = "memory.sqlite", config = { path = "a.db" } }
destination = { connector = "memory.sqlite", config = { path = "b.db" } }
tenants = [{ tenant = "acme", actor = "sync-bot" }]
""",
        encoding="utf-8",
    )
    spec = load_spec(path)
    assert spec.store == str(tmp_path / "state" / "jobs.db")
    [only] = spec.pipelines
    assert only.schedule is not None
    assert only.schedule.every == 900.0


def test_a_file_that_is_not_toml_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text("[[pipelines]\n", encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.problems[0][0] == "<file>"
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.toml")


def test_the_json_schema_describes_every_field_and_matches_the_docs() -> None:
    schema = jobs_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    pipeline_schema = schema["$defs"]["PipelineSpec"]
    assert set(pipeline_schema["required"]) == {"name", "source", "destination", "tenants"}
    for name, prop in pipeline_schema["properties"].items():
        assert "description" in prop or "$ref" in prop, name
    published = Path(__file__).parents[3] / "docs" / "jobs-spec.schema.json"
    if published.exists():  # the docs ship the same schema (regenerate: integrations jobs schema)
        assert json.loads(published.read_text(encoding="utf-8")) == schema


def test_an_invalid_list_item_is_reported_once_where_it_is() -> None:
    found = problems(pipeline(tenants=[{"tenant": "acme"}]))
    assert list(found) == ["pipelines.0.tenants.0.actor"]
    assert "pipelines.0.tenants" in problems(pipeline(tenants=[]))  # empty: the list itself


def test_the_toml_of_the_docs_validates_against_the_json_schema() -> None:
    import tomllib

    import jsonschema

    page = (Path(__file__).parents[3] / "docs" / "jobs.md").read_text(encoding="utf-8")
    toml = page.split("```toml\n", 1)[1].split("```", 1)[0]
    document = tomllib.loads(toml)
    jsonschema.Draft202012Validator(jobs_json_schema()).validate(document)
    spec = JobsSpec.from_mapping(document)
    registry = Registry()
    registry.discover()
    for pipeline_spec in spec.pipelines:  # the configs are what the connectors accept
        for tenant in pipeline_spec.tenants:
            for side, overrides in (
                (pipeline_spec.source, tenant.source),
                (pipeline_spec.destination, tenant.destination),
            ):
                model = registry.get(side.connector).config_model
                model.from_mapping({**side.config, **overrides})
    document["pipelines"][0]["schedule"]["every"] = "soon"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(jobs_json_schema()).validate(document)


def test_a_retry_delay_may_be_zero_and_an_interval_may_not() -> None:
    spec = JobsSpec.from_mapping(pipeline(retry_delay="0s", lease_ttl="2m"))
    assert (spec.pipelines[0].retry_delay, spec.pipelines[0].lease_ttl) == (0.0, 120.0)
    assert "positive" in problems(pipeline(schedule={"every": 0}))["pipelines.0.schedule.every"]
