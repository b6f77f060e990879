"""Cost of governance per call: direct fetch vs a governed session vs a pluggy hook call.

Measures, in one run and one process, the median cost per call of
  (a) `connector.fetch(query)` on the mock connector, called directly;
  (b) the same fetch through an open governed `Session` with the default policies and an
      in-memory audit sink;
  (c) the same fetch made by the one implementation of a pluggy hook.
Target: (b) - (a) <= (c) - (a): governance costs no more than one pluggy hook call.

Run: python benchmarks/call_overhead.py [--calls N] [--repeats R] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import time
from collections.abc import Callable

import pluggy

from integrations.base import AuthContext, FetchQuery, Governance, MemoryAuditSink, Session
from integrations.mocks import MockConnector, reset_stores

HOOK = "integrations_benchmark"


class _Spec:
    @pluggy.HookspecMarker(HOOK)
    def fetch(self, query: FetchQuery) -> object:
        """Fetch through the connector."""


class _Impl:
    def __init__(self, connector: MockConnector) -> None:
        self.connector = connector

    @pluggy.HookimplMarker(HOOK)
    def fetch(self, query: FetchQuery) -> object:
        return self.connector.fetch(query)


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
    """Run the three measurements, interleaved loop by loop so noise hits them alike.

    Recorded calls and audit events are cleared before every loop, so each loop starts from
    the same state.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per timed loop")
    parser.add_argument("--repeats", type=int, default=240, help="timed loops per measurement")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds for the whole run")
    args = parser.parse_args()

    reset_stores()
    context = AuthContext(tenant="acme", actor="alice")
    query = FetchQuery(limit=10)

    direct = MockConnector()
    direct.auth(context)
    direct.connect(direct.config_model.from_mapping({"store": "bench"}))

    governed = MockConnector()
    sink = MemoryAuditSink()
    session = Session(
        governed, config={"store": "bench"}, context=context, governance=Governance(audit=sink)
    )
    session.open()

    hooked = MockConnector()
    hooked.auth(context)
    hooked.connect(hooked.config_model.from_mapping({"store": "bench"}))
    manager = pluggy.PluginManager(HOOK)
    manager.add_hookspecs(_Spec)
    manager.register(_Impl(hooked))
    hook = manager.hook.fetch

    def clear() -> None:
        sink.events.clear()
        for connector in (direct, governed, hooked):
            connector.clear_calls()

    calls: dict[str, Callable[[], object]] = {
        "a": lambda: direct.fetch(query),
        "b": lambda: session.fetch(query),
        "c": lambda: hook(query=query),
    }
    measurements: dict[str, list[float]] = {key: [] for key in calls}
    deadline = time.monotonic() + args.budget
    orders = list(itertools.permutations(calls))
    for repeat in range(args.repeats):
        for key in orders[repeat % len(orders)]:  # every order equally often: no order bias
            clear()
            measurements[key].append(_per_call_ns(calls[key], args.calls))
        if time.monotonic() > deadline:
            break
    session.close()

    a, b, c = (statistics.median(measurements[key]) for key in "abc")
    # Adjacent loops see the same machine state: compare them pairwise, then take medians.
    governance_cost = statistics.median(
        b_i - a_i for a_i, b_i in zip(measurements["a"], measurements["b"], strict=True)
    )
    hook_cost = statistics.median(
        c_i - a_i for a_i, c_i in zip(measurements["a"], measurements["c"], strict=True)
    )
    loops = len(measurements["a"])
    print(f"{loops} loops of {args.calls} calls per measurement, interleaved in rotating order;")
    print("medians in ns per call; the costs are medians of differences between adjacent loops")
    print(f"{'measurement':<62}{'ns/call':>10}")
    print(f"{'(a) direct connector.fetch':<62}{a:>10.0f}")
    print(f"{'(b) governed Session.fetch (default policies, memory audit)':<62}{b:>10.0f}")
    print(f"{'(c) pluggy hook call, one implementation':<62}{c:>10.0f}")
    print(f"{'governance cost (b - a), paired':<62}{governance_cost:>10.0f}")
    print(f"{'pluggy hook cost (c - a), paired':<62}{hook_cost:>10.0f}")
    ratio = governance_cost / hook_cost if hook_cost > 0 else float("inf")
    verdict = "meets" if governance_cost <= hook_cost else "MISSES"
    print(f"ratio (b - a) / (c - a) = {ratio:.2f}  -> {verdict} the target (<= 1.00)")


if __name__ == "__main__":
    main()
