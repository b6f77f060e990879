"""vault.openai: governed model calls against the same httpx calls made directly.

In one run, against an OpenAI-compatible test server (`OpenAIServer`) in a process of its own,
answering every request after LATENCY (2 ms by default), as a provider runs apart from the
platform:
  invoke     CALLS ``model_invoke`` calls, one after another, through an open governed
             `Session` (input checked against the action's schema, default policies with the
             AI_SENSITIVE quorum of 2 met by two approvers, memory audit with usage) vs the
             same request sent with one `httpx.Client` (same URL, headers, body) and its JSON
             read. Throughput ratio, target >= 0.9x.
  schema     the session's check of a valid ``model_invoke`` input against the shipped draft 7
             schema (jsonschema's Draft7Validator, compiled once): microseconds per call, and
             that as a share of one LATENCY.
  first      time to the first streamed content token: ``session.stream`` (admission, the
             connector's request, its SSE parser) vs an httpx stream read line by line up to
             the first ``data:`` event carrying content. Ratio of the medians (raw over
             governed: higher is better, 1.0 means no added wait).

Each pair is measured in interleaved rounds and the median is reported.

Run: python benchmarks/vault.py [--calls N] [--repeats R] [--latency SECONDS]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import httpx

from integrations.base import (
    AuthContext,
    Governance,
    GovernanceSettings,
    MemoryAuditSink,
    Registry,
)
from integrations.base._actions import ActionSchema

KEY: Final = "sk-benchmark-0f3c"
CONNECTOR: Final = "vault.openai"
CONTEXT: Final = AuthContext(
    tenant="bench", actor="benchmark", attributes={"approvals": ["approver-1", "approver-2"]}
)
INPUT: Final = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You answer in one line."},
        {"role": "user", "content": "Summarise invoice 1042 for the finance team"},
    ],
    "temperature": 0.2,
    "max_tokens": 64,
}
SCHEMA: Final = (
    Path(__file__).resolve().parents[1]
    / "packages/integrations-adapters-vault/src/integrations/adapters/vault_connectors"
    / "schemas/model_invoke.json"
)
SERVER_SCRIPT: Final = """
import sys
from integrations.adapters.vault_connectors.testing import OpenAIServer
with OpenAIServer(api_key=sys.argv[1], latency=float(sys.stdin.readline())) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""
MAX_SECONDS: Final = 120.0
"""No measured loop runs longer than this, whatever --calls asks."""


@contextlib.contextmanager
def server_process(latency: float) -> Iterator[str]:
    """An `OpenAIServer` answering after `latency`, in a process of its own; its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(f"{latency}\n")
        process.stdin.flush()
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError("the server process did not start")
        yield url
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def governance() -> Governance:
    """The default policies with the manifest's quorum policies defined; audit in memory."""
    settings = GovernanceSettings.from_mapping(
        {"quorum_policies": {"AI_SENSITIVE": 2, "AI_TOOL": 1}, "audit_log": False}
    )
    return dataclasses.replace(settings.build(), audit=MemoryAuditSink())


def median_rounds(rounds: int, *sides: Callable[[], float]) -> list[float]:
    """Run each side `rounds` times, interleaved; the median time of each."""
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(rounds):
        for index, side in enumerate(sides):
            times[index].append(side())
    return [statistics.median(found) for found in times]


def timed_calls(calls: int, call: Callable[[], object]) -> float:
    """Seconds per call over `calls` calls (fewer if MAX_SECONDS runs out)."""
    deadline = time.perf_counter() + MAX_SECONDS
    started = time.perf_counter()
    done = 0
    while done < calls and time.perf_counter() < deadline:
        call()
        done += 1
    return (time.perf_counter() - started) / done


def row(label: str, ours: float, baseline: float, ratio: float, target: str) -> str:
    return f"{label:<46} {ours * 1000:>9.3f} ms {baseline * 1000:>9.3f} ms {ratio:>7.2f}x  {target}"


def invoke(url: str, args: argparse.Namespace) -> str:
    registry = Registry()
    config = {"url": url, "api_key": f"literal:{KEY}"}
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "application/json"}
    with (
        registry.open(CONNECTOR, config=config, context=CONTEXT, governance=governance()) as s,
        httpx.Client(base_url=url, headers=headers, follow_redirects=False) as raw,
    ):

        def governed_call() -> object:
            return s.invoke("model_invoke", INPUT).output

        def raw_call() -> object:
            response = raw.post("/chat/completions", json=INPUT)
            response.raise_for_status()
            return response.json()

        for _ in range(20):  # warm both connection pools
            governed_call()
            raw_call()
        governed, direct = median_rounds(
            args.repeats,
            lambda: timed_calls(args.calls, governed_call),
            lambda: timed_calls(args.calls, raw_call),
        )
    label = f"model_invoke, provider +{args.latency * 1000:g} ms (per call)"
    return row(label, governed, direct, direct / governed, ">= 0.9x")


def schema_cost(args: argparse.Namespace) -> str:
    schema = ActionSchema(json.loads(SCHEMA.read_text("utf-8")), "model_invoke.json")
    calls = 20_000

    def check() -> None:
        schema.check("model_invoke", INPUT)

    (per_call,) = median_rounds(args.repeats, lambda: timed_calls(calls, check))
    share = per_call / args.latency if args.latency else 0.0
    return (
        f"{'schema check of model_invoke (per call)':<46} {per_call * 1e6:>9.1f} us"
        f"   = {share:.2%} of a {args.latency * 1000:g} ms call"
    )


def first_token(url: str, args: argparse.Namespace) -> str:
    registry = Registry()
    config = {"url": url, "api_key": f"literal:{KEY}"}
    headers = {"Authorization": f"Bearer {KEY}", "Accept": "text/event-stream"}
    body = {**INPUT, "stream": True, "stream_options": {"include_usage": True}}
    streams = max(20, args.calls // 10)
    with (
        registry.open(CONNECTOR, config=config, context=CONTEXT, governance=governance()) as s,
        httpx.Client(base_url=url, headers=headers, follow_redirects=False) as raw,
    ):

        def governed_stream() -> object:
            started = time.perf_counter()
            with s.stream("model_invoke", INPUT) as chunks:
                for chunk in chunks:
                    if chunk.delta.get("content"):
                        elapsed = time.perf_counter() - started
                        break
            return elapsed

        def raw_stream() -> object:
            started = time.perf_counter()
            with raw.stream("POST", "/chat/completions", json=body) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    choices = json.loads(line[6:]).get("choices") or [{}]
                    if choices[0].get("delta", {}).get("content"):
                        elapsed = time.perf_counter() - started
                        break
            return elapsed

        def median_first(stream: Callable[[], object]) -> float:
            deadline = time.perf_counter() + MAX_SECONDS
            found: list[float] = []
            while len(found) < streams and time.perf_counter() < deadline:
                value = stream()
                assert isinstance(value, float)
                found.append(value)
            return statistics.median(found)

        for _ in range(5):
            governed_stream()
            raw_stream()
        governed, direct = median_rounds(
            args.repeats, lambda: median_first(governed_stream), lambda: median_first(raw_stream)
        )
    return row("time to first streamed token (median)", governed, direct, direct / governed, "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.002)
    args = parser.parse_args()
    if not 1 <= args.repeats <= 20:
        parser.error("--repeats is between 1 and 20")
    if not 10 <= args.calls <= 100_000:
        parser.error("--calls is between 10 and 100000")
    print(f"{'measurement':<46} {'governed':>12} {'raw httpx':>12} {'ratio':>8}  target")
    with server_process(args.latency) as url:
        print(invoke(url, args), flush=True)
        print(first_token(url, args), flush=True)
    print(schema_cost(args), flush=True)


if __name__ == "__main__":
    main()
