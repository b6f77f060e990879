"""The certification kit on a connector with named actions: its action checks pass and fail.

The connector is a small in-process action connector written into an inner pytest run's
directory with its manifest and draft 7 schema files, as a distribution would ship them.
"""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest

from integrations.base.testing._runner import CheckResult, _Collector

pytest_plugins = ["pytester"]

ACTION_CHECKS = {
    "actions_have_schemas_and_samples",
    "invalid_action_input_is_refused_before_any_io",
    "actions_answer_valid_input",
    "action_quorum_is_enforced",
    "action_retries_follow_the_idempotency_flag",
}

CONNECTOR = """
from integrations.base import (
    ActionChunk, ActionResult, AuthToken, BaseConnector, Connection, ConnectorConfig,
    RevokeResult, Secret,
)


class Answering(BaseConnector[ConnectorConfig]):
    actions = frozenset({"model_invoke", "tool_call"})

    def auth(self, context):
        return AuthToken(value=Secret("token"))

    def connect(self, config):
        return Connection(connection_id="answering")

    def revoke(self, token):
        return RevokeResult(revoked=True)

    def invoke(self, request):
        usage = {"total_tokens": 3}
        return ActionResult(action=request.action, output={"echo": request.input}, usage=usage)

    def stream(self, request):
        yield ActionChunk(delta={"content": "a"})
        yield ActionChunk(delta={"content": "b"}, usage={"total_tokens": 2})
"""

SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["model", "messages"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
            },
        },
    },
}

KIT = """
from {module} import Answering
from integrations.base import Capability
from integrations.base.testing import ConnectorCertification

VALID = {{"model": "m", "messages": [{{"role": "user", "content": "hi"}}]}}


class TestAnsweringCertification(ConnectorCertification):
    connector_class = Answering
    registry_name = "cert.answering"
    manifests = ("app.json",)
    unsupported = frozenset(Capability)
    quorum_policies = {{"AI_SENSITIVE": 2}}
    action_samples = {samples}
"""


def _install(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> str:
    module = f"answering_{uuid.uuid4().hex[:8]}"
    pytester.makepyfile(**{module: CONNECTOR})
    schemas = pytester.mkdir("schemas")
    (schemas / "model_invoke.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    tools = {**SCHEMA, "required": ["model", "messages", "tools"]}
    tools["properties"] = {**SCHEMA["properties"], "tools": {"type": "array"}}
    (schemas / "tool_call.json").write_text(json.dumps(tools), encoding="utf-8")
    entry = {
        "name": "cert.answering",
        "module": module,
        "class": "Answering",
        "capabilities": [
            {
                "action": "model_invoke",
                "schema": "schemas/model_invoke.json",
                "quorum_policy": "AI_SENSITIVE",
                "idempotency": True,
                "streaming": True,
            },
            {"action": "tool_call", "schema": "schemas/tool_call.json", "quorum_policy": 1},
        ],
    }
    pytester.makefile(".json", app=json.dumps({"connectors": [entry]}))
    pytester.syspathinsert()
    monkeypatch.setenv("INTEGRATIONS_ALLOWED_MODULES", module)
    return module


def _run(pytester: pytest.Pytester, module: str, samples: str) -> dict[str, CheckResult]:
    source = KIT.format(module=module, samples=samples)
    pytester.makepyfile(test_connector=textwrap.dedent(source))
    collector = _Collector()
    pytester.inline_run("-p", "no:cacheprovider", "-k", "action", plugins=[collector])
    assert collector.problems == []
    return {result.check: result for result in collector.results()}


def test_a_connector_with_actions_passes_the_action_checks(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _install(pytester, monkeypatch)
    samples = """{
        "model_invoke": (VALID, {"messages": "not a list"}),
        "tool_call": ({**VALID, "tools": []}, VALID),
    }"""

    results = _run(pytester, module, samples)

    assert {
        name: r.outcome for name, r in results.items() if name in ACTION_CHECKS
    } == dict.fromkeys(ACTION_CHECKS, "passed")


def test_missing_or_wrong_samples_fail_the_action_checks_with_readable_reasons(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _install(pytester, monkeypatch)
    samples = """{"model_invoke": (VALID, {**VALID, "messages": []})}"""

    results = _run(pytester, module, samples)

    assert results["actions_have_schemas_and_samples"].outcome == "failed"
    assert results["actions_have_schemas_and_samples"].reason == (
        "the invalid sample of action model_invoke is accepted by its schema"
    )
    assert results["invalid_action_input_is_refused_before_any_io"].reason == (
        "action model_invoke accepted its invalid sample"
    )
    missing = (
        "action_samples has no (valid, invalid) inputs for action tool_call: "
        "the kit needs them to call it"
    )
    assert results["actions_answer_valid_input"].reason == missing
    assert results["action_quorum_is_enforced"].reason == missing
