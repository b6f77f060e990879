"""The README's main job: discover connectors, then govern sessions on the SQLite memory store.

Run with `make demo`. It shows what platform code sees. The registry lists every installed
connector without importing any. Two tenants then keep memories in one embedded SQLite file
through governed sessions: each session authenticates for its tenant, connects, runs its
operations and revokes, under the default policies, and every step leaves an audit event. A
tenant never sees the other's memories; a text query is ranked by relevance; a sync from a
saved state returns only what changed since; a forgotten memory comes back as a tombstone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from integrations.base import (
    AuditEvent,
    AuthContext,
    FetchQuery,
    Governance,
    MemoryAuditSink,
    PolicyError,
    PushPayload,
    Record,
    SyncState,
    registry,
)
from integrations.base.lifecycle import Session

STORE = "memory.sqlite"
ACME = AuthContext(tenant="acme", actor="alice")
GLOBEX = AuthContext(tenant="globex", actor="bob")


def heading(text: str) -> None:
    """Print a section heading."""
    print(f"\n== {text} ==")


def memory(record_id: str, text: str, *tags: str) -> Record:
    """A memory as the contract carries it: text, tags and metadata in a record."""
    return Record(id=record_id, data={"text": text, "tags": list(tags), "metadata": {}})


def list_connectors() -> None:
    """Discovery reads manifests only: nothing below is imported yet."""
    heading("Discovered connectors (read from manifests, nothing imported)")
    registry.discover()
    for info in registry.connectors():
        capabilities = ", ".join(info.capabilities) or "-"
        print(
            f"  {info.name:<24} {info.status.value:<4} {info.distribution or '-'} "
            f"{info.distribution_version or ''}  [{capabilities}]"
            + (f"  problem: {info.problem}" if info.problem else "")
        )
    for problem in registry.problems():
        print(f"  (manifest) {problem.source}: {problem.reason}")


def show(records: tuple[Record, ...]) -> None:
    """One line per record: id, then its text or that it was deleted."""
    for record in records:
        what = "(forgotten)" if record.deleted else repr(record.data.get("text"))
        print(f"    {record.id:<10} {what}")


def pushes(session: Session, tenant: str, records: list[Record]) -> None:
    """Push `records` and say what the store accepted."""
    result = session.push(PushPayload(records=tuple(records)))
    print(f"  {tenant}: pushed {list(result.accepted)}")


def print_audit(events: list[AuditEvent]) -> None:
    """The audit trail: one line per finished step; the first column is the session."""
    heading("Audit trail (one correlation id per session)")
    for event in events:
        if event.phase == "started":
            continue
        took = f"{(event.duration_seconds or 0) * 1000:6.2f} ms"
        print(
            f"  {event.correlation_id[:8]} {event.operation:<7} {event.outcome or '-':<7} {took}"
            f" tenant={event.tenant or '-':<7} actor={event.actor or '-':<6}"
            f" connector={event.connector.name}"
        )


def main() -> None:
    """Run the demo."""
    list_connectors()
    audit = MemoryAuditSink()
    governance = Governance(audit=audit)
    with tempfile.TemporaryDirectory() as directory:
        config = {"path": str(Path(directory) / "memories.sqlite3")}
        heading(f"Two tenants push memories into {STORE} ({config['path']})")
        with registry.open(STORE, config=config, context=ACME, governance=governance) as acme:
            pushes(
                acme,
                "acme",
                [
                    memory("inv-1", "Invoice 1042 from Hetzner is due on the 30th", "billing"),
                    memory(
                        "inv-2", "Invoice reminder: the invoice for the venue is overdue", "billing"
                    ),
                    memory("trip", "Flight to Lisbon on Tuesday, hotel near the venue", "travel"),
                ],
            )
            with registry.open(
                STORE, config=config, context=GLOBEX, governance=governance
            ) as globex:
                pushes(
                    globex, "globex", [memory("inv-1", "Globex invoice: paid in full", "billing")]
                )

            heading("Text query 'invoice' for acme: ranked by relevance, acme's memories only")
            show(acme.fetch(FetchQuery(text="invoice", limit=10)).records)

            heading("Two syncs: the second returns only what changed in between")
            first = acme.sync(SyncState())
            print(f"  first sync: {first.upserted} upserted, {first.deleted} deleted")
            saved = first.state.to_json()
            print(f"  saved state: {saved}")
            pushes(
                acme,
                "acme",
                [
                    memory(
                        "trip",
                        "Flight to Lisbon moved to Wednesday, hotel near the venue",
                        "travel",
                    ),
                    memory("inv-1", "Invoice 1042 from Hetzner is due on the 30th", "billing"),
                ],
            )
            second = acme.sync(SyncState.from_json(saved))
            print("  second sync (inv-1 was pushed unchanged, so it is not a change):")
            show(second.changes)

            heading("Forget one memory")
            pushes(acme, "acme", [Record(id="inv-2", deleted=True)])
            print("  sync from the second state reports the tombstone:")
            show(acme.sync(second.state).changes)
            print("  what acme can still fetch, newest first:")
            show(acme.fetch(FetchQuery()).records)

        heading("Policies: a session without an actor is refused before any call")
        try:
            no_actor = AuthContext(tenant="acme")
            with registry.open(STORE, config=config, context=no_actor, governance=governance):
                pass
        except PolicyError as error:
            print(f"  {type(error).__name__}: {error}")
    print_audit(audit.events)


if __name__ == "__main__":
    main()
