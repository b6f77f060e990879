"""Cost of named actions per call: schema validation, and a governed invoke vs a direct call.

Measures, in one run and one process, the median cost per call of
  (v1) checking a valid legacy `model_invoke` input with jsonschema's Draft7Validator
       (what sessions use, compiled once);
  (v2) the same check with fastjsonschema (compiled to Python code), for comparison, when it
       is installed (sessions do not use it: it generates and runs code and fetches remote
       ``$ref`` URLs unless told otherwise);
  (a)  `connector.invoke(request)` on an in-process connector that answers at once;
  (b)  `session.invoke("model_invoke", input)` on the same connector through an open governed
       `Session`: schema check, default policies with a quorum of 2, memory audit.
(b) - (a) is what governance and validation add to each call; against a provider answering in
milliseconds it is the share of the call that matters, so it is also printed as a fraction
of 2 ms.

Run: python benchmarks/actions.py [--calls N] [--repeats R] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import jsonschema  # type: ignore[import-untyped, unused-ignore]  # no stubs are installed

from integrations.base import (
    ActionRequest,
    ActionResult,
    AuthContext,
    AuthToken,
    BaseConnector,
    Connection,
    ConnectorConfig,
    Governance,
    MemoryAuditSink,
    RevokeResult,
    Secret,
    Session,
)
from integrations.base.registry import ConnectorEntry

MODEL_INVOKE_SCHEMA: dict[str, Any] = {
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
        "temperature": {"type": "number"},
        "max_tokens": {"type": "integer"},
    },
}
INPUT: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "What is a connector?"},
    ],
    "temperature": 0.2,
    "max_tokens": 64,
}
ANSWER = ActionResult(action="model_invoke", output={"id": "x"}, usage={"total_tokens": 9})


class Answering(BaseConnector[ConnectorConfig]):
    """Answers `model_invoke` at once: the connector's own cost is as small as it gets."""

    actions: ClassVar[frozenset[str]] = frozenset({"model_invoke"})

    def auth(self, context: AuthContext) -> AuthToken:
        return AuthToken(value=Secret("t"))

    def connect(self, config: ConnectorConfig) -> Connection:
        return Connection(connection_id="bench")

    def revoke(self, token: AuthToken) -> RevokeResult:
        return RevokeResult(revoked=True)

    def invoke(self, request: ActionRequest) -> ActionResult:
        return ANSWER


def _per_call_ns(call: Callable[[], object], calls: int) -> float:
    """Nanoseconds per call over one timed loop of `calls` calls, with the GC paused."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter_ns()
        for _ in range(calls):
            call()
        return (time.perf_counter_ns() - started) / calls
    finally:
        gc.enable()


def main() -> None:
    """Run the measurements, interleaved loop by loop so noise hits them alike."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per timed loop")
    parser.add_argument("--repeats", type=int, default=120, help="timed loops per measurement")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for the whole run")
    args = parser.parse_args()

    draft7 = jsonschema.Draft7Validator(MODEL_INVOKE_SCHEMA)
    assert draft7.is_valid(INPUT)
    compiled = _fastjsonschema()

    with tempfile.TemporaryDirectory() as directory:
        schema_path = Path(directory) / "model_invoke.json"
        schema_path.write_text(jsonschema_json(), encoding="utf-8")
        entry = ConnectorEntry.model_validate(
            {
                "name": "bench",
                "module": "integrations.bench",
                "class": "Answering",
                "actions": [{"action": "model_invoke", "schema": str(schema_path), "quorum": 2}],
            }
        )
        context = AuthContext(
            tenant="acme", actor="alice", attributes={"approvals": ["bob", "carol"]}
        )
        direct = Answering()
        request = ActionRequest(action="model_invoke", input=INPUT)
        sink = MemoryAuditSink()
        session = Session(
            Answering(), config={}, context=context, governance=Governance(audit=sink), entry=entry
        )
        session.open()
        session.invoke("model_invoke", INPUT)  # compiles the schema once, outside the loops

        calls: dict[str, Callable[[], object]] = {
            "v1": lambda: draft7.is_valid(INPUT),
            "a": lambda: direct.invoke(request),
            "b": lambda: session.invoke("model_invoke", INPUT),
        }
        if compiled is not None:
            calls["v2"] = lambda: compiled(INPUT)
        measurements: dict[str, list[float]] = {key: [] for key in calls}
        deadline = time.monotonic() + args.budget
        orders = list(itertools.permutations(calls))
        for repeat in range(args.repeats):
            for key in orders[repeat % len(orders)]:  # every order equally often
                sink.events.clear()
                measurements[key].append(_per_call_ns(calls[key], args.calls))
            if time.monotonic() > deadline:
                break
        session.close()

    median = {key: statistics.median(values) for key, values in measurements.items()}
    governed_cost = statistics.median(
        b - a for a, b in zip(measurements["a"], measurements["b"], strict=True)
    )
    loops = len(measurements["a"])
    print(f"{loops} loops of {args.calls} calls per measurement, interleaved in rotating order;")
    print("medians in ns per call; the cost is the median of differences between adjacent loops")
    print(f"{'measurement':<66}{'ns/call':>10}")
    rows = {
        "v1": "(v1) jsonschema Draft7Validator.is_valid, legacy model_invoke",
        "b": "(b) governed Session.invoke (schema, policies, quorum 2, audit)",
    }
    print(f"{rows['v1']:<66}{median['v1']:>10.0f}")
    if "v2" in median:
        print(f"{'(v2) fastjsonschema compiled validator, same input':<66}{median['v2']:>10.0f}")
    else:
        print(f"{'(v2) fastjsonschema compiled validator, same input':<66}{'absent':>10}")
    print(f"{'(a) direct connector.invoke':<66}{median['a']:>10.0f}")
    print(f"{rows['b']:<66}{median['b']:>10.0f}")
    print(f"{'governed cost (b - a), paired':<66}{governed_cost:>10.0f}")
    print(f"validation share of the governed cost: {median['v1'] / governed_cost:.2f}")
    if "v2" in median:
        print(f"jsonschema / fastjsonschema per check: {median['v1'] / median['v2']:.1f}x")
    print(f"governed cost as a share of a 2 ms provider call: {governed_cost / 2e6:.4f}")


def _fastjsonschema() -> Callable[[Any], object] | None:
    """fastjsonschema's compiled validator of the schema (remote references refused)."""
    try:
        import fastjsonschema  # type: ignore[import-not-found, unused-ignore]  # optional
    except ImportError:
        return None

    def refuse(uri: str) -> Any:
        raise ValueError(f"remote reference refused: {uri}")

    validator: Callable[[Any], object] = fastjsonschema.compile(
        MODEL_INVOKE_SCHEMA, handlers={"http": refuse, "https": refuse}
    )
    validator(INPUT)
    return validator


def jsonschema_json() -> str:
    """The schema as the file a manifest ships beside it."""
    import json

    return json.dumps(MODEL_INVOKE_SCHEMA)


if __name__ == "__main__":
    main()
