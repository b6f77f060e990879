"""The README's main job: discover connectors, then run a governed lifecycle of the mock.

Run with `make demo`. It shows what platform code sees: the registry lists every installed
connector without importing any, a session runs auth → connect → push → fetch → sync →
revoke under the default policies, secrets are passed by reference and never printed, and
every step leaves an audit event sharing one correlation id.
"""

from __future__ import annotations

import os

from integrations.base import (
    AuthContext,
    FetchQuery,
    Governance,
    MemoryAuditSink,
    PolicyError,
    PushPayload,
    Record,
    SecretResolver,
    SyncState,
    registry,
)
from integrations.base.lifecycle import LifecycleReport, run_lifecycle

MOCK_CONFIG = {"store": "demo", "api_key": "env:DEMO_MOCK_API_KEY"}
"""The API key is passed by reference; the session resolves it when it opens."""


def heading(text: str) -> None:
    """Print a section heading."""
    print(f"\n== {text} ==")


def list_connectors() -> None:
    """Discovery reads manifests only: nothing below is imported yet."""
    heading("Discovered connectors")
    registry.discover()
    for info in registry.connectors():
        capabilities = ", ".join(info.capabilities) or "-"
        print(
            f"  {info.name:<22} {info.status.value:<12} {info.distribution or '-'} "
            f"{info.distribution_version or ''}  [{capabilities}]"
            + (f"  problem: {info.problem}" if info.problem else "")
        )
    for problem in registry.problems():
        print(f"  (manifest) {problem.source}: {problem.reason}")


def describe(result: object) -> str:
    """One line about a step's result."""
    for attribute in ("accepted", "records", "changes"):
        value = getattr(result, attribute, None)
        if isinstance(value, tuple):
            ids = [getattr(item, "id", item) for item in value]
            return f"{attribute}={ids}"
    return type(result).__name__ if result is not None else ""


def print_report(report: LifecycleReport) -> None:
    """Each step with outcome and timing, then the audit trail."""
    heading(f"Governed lifecycle of {report.connector!r}")
    for step in report.steps:
        error = f" {step.error_type}" if step.error_type else ""
        print(
            f"  {step.step:<8} attempt {step.attempt}  {step.outcome:<6}"
            f" {step.duration_seconds * 1000:7.3f} ms{error}  {describe(step.result)}"
        )
    if report.error:
        print(f"  stopped: {report.error}")
    heading(f"Audit trail (correlation id {report.correlation_id})")
    for event in report.audit:
        fields = event.to_dict()
        print(
            f"  #{event.sequence:<2} {fields['time'][11:23]} {event.operation:<8}"
            f" {event.phase:<9} outcome={event.outcome or '-':<6}"
            f" tenant={event.tenant} actor={event.actor}"
        )


def main() -> None:
    """Run the demo."""
    list_connectors()
    os.environ.setdefault("DEMO_MOCK_API_KEY", "demo-key-never-printed")
    context = AuthContext(tenant="acme", actor="alice")
    records = tuple(
        Record(id=f"note-{n}", data={"text": text, "tags": ["demo"]})
        for n, text in enumerate(["call the bank", "renew the domain", "book the venue"], 1)
    )
    report = run_lifecycle(
        "mock",
        config=MOCK_CONFIG,
        context=context,
        plan=[
            PushPayload(records=records, idempotency_key="demo-batch-1"),
            FetchQuery(text="the", limit=2),
            SyncState(),
        ],
        governance=Governance(audit=MemoryAuditSink()),
    )
    print_report(report)

    heading("Incremental sync: only what changed since the saved state")
    with registry.open("mock", config=MOCK_CONFIG, context=context) as session:
        saved = session.sync(SyncState()).state.to_json()
        session.push(PushPayload(records=(Record(id="note-2", deleted=True),)))
        changes = session.sync(SyncState.from_json(saved)).changes
        print(f"  saved state {saved}")
        print(
            f"  changes since: {[(r.id, 'deleted' if r.deleted else 'upserted') for r in changes]}"
        )
    config_model = registry.get("mock").config_model
    resolved = config_model.from_mapping(MOCK_CONFIG, secrets=SecretResolver())
    print(f"  the resolved config as any log shows it: {resolved!r}")

    heading("Policies: a session without an actor")
    try:
        with registry.open(
            "mock", config={"store": "demo"}, context=AuthContext(tenant="acme")
        ) as session:
            session.fetch(FetchQuery())
    except PolicyError as error:
        print(f"  refused before any call: {error}")


if __name__ == "__main__":
    main()
