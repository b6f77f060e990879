"""The README's main job: discover connectors, then govern sessions on the SQLite memory store.

Run with `make demo`. It shows what platform code sees. The registry lists every installed
connector without importing any. Two tenants then keep memories in one embedded SQLite file
through governed sessions: each session authenticates for its tenant, connects, runs its
operations and revokes, under the default policies, and every step leaves an audit event. A
tenant never sees the other's memories; a text query is ranked by relevance; a sync from a
saved state returns only what changed since; a forgotten memory comes back as a tombstone.
Then three intent signal sources on 127.0.0.1 (one healthy, one failing, one slower than its
deadline) are collected at once into the embedded intent store: the collector's report, the
ranked intents, why the best one scores what it does, an alignment check, and the audit
trail of those sessions.
Finally, the vault connector ``vault.openai`` talks to a local OpenAI-compatible server the demo
starts: the API key is resolved from its reference (and shown masked), a ``model_invoke`` is
refused for lack of quorum and answered with two approvers, an answer is streamed as it is
produced, an invalid input is refused before any request, and the audit lines show who
approved and what each call used.
Last, a sync pipeline (integrations-jobs) copies two tenants' memories from one SQLite store
into another: ``integrations jobs run`` shows its progress (bars on a terminal, lines when
piped), a second run after a few changes moves only those and returns its run reports, the
audit events of a run share its run id, and ``integrations jobs status`` says where each
tenant stands.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from integrations.adapters.intent_adapters import CollectReport, collect, verify_intent
from integrations.adapters.intent_adapters.testing import SignalSourceServer
from integrations.adapters.vault_connectors.openai import OpenAIConfig
from integrations.adapters.vault_connectors.testing import OpenAIServer
from integrations.base import (
    AuditEvent,
    AuthContext,
    FetchQuery,
    Governance,
    GovernanceSettings,
    InvalidRequest,
    MemoryAuditSink,
    PolicyError,
    PushPayload,
    Record,
    SyncState,
    format_utc,
    registry,
)
from integrations.base.lifecycle import Session
from integrations.jobs import InProcessExecutor, RunReport, load_spec, open_store

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
        actions = sorted(info.entry.action_names) if info.entry is not None else []
        capabilities = ", ".join([*info.capabilities, *actions]) or "-"
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


# -- intent: signal sources collected into the embedded intent store ---------------------------

INTENT_STORE = "intent.local"
COLLECTOR = AuthContext(tenant="acme", actor="collector")
SOURCE_DEADLINE_SECONDS = 1.5
TOPIC = "AI governance"


def intent_signal(
    source: str,
    topic: str,
    momentum: str,
    confidence: float,
    human_source_pct: float,
    streak_days: int,
    hours_ago: float,
) -> dict[str, Any]:
    """A signal as a source answers it, observed `hours_ago` hours ago."""
    return {
        "source": source,
        "topic": topic,
        "momentum": momentum,
        "confidence": confidence,
        "authenticity": {"human_source_pct": human_source_pct},
        "streak_days": streak_days,
        "created_at": format_utc(datetime.now(UTC) - timedelta(hours=hours_ago)),
    }


class _PrintWarnings(logging.Handler):
    """Shows the library's warnings among the demo's lines, where they happen."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"  log: {record.getMessage()}")


@contextmanager
def warnings_shown() -> Iterator[None]:
    """Print what the `integrations` loggers warn about while the block runs."""
    logger = logging.getLogger("integrations")
    handler = _PrintWarnings(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def collect_sources(config: dict[str, str], governance: Governance) -> CollectReport:
    """Three loopback HTTP sources (healthy, failing, too slow), collected into the store."""
    social = [
        intent_signal("social", TOPIC, "surging", 0.95, 90, 7, hours_ago=2),
        intent_signal("social", "Data residency", "rising", 0.8, 85, 3, hours_ago=5),
        intent_signal("social", "Pricing", "steady", 0.6, 70, 0, hours_ago=1),
        intent_signal("social", TOPIC, "rising", 1.7, 90, 1, hours_ago=1),  # confidence > 1
    ]
    crm = [intent_signal("crm", TOPIC, "steady", 0.9, 95, 12, hours_ago=3)]
    tickets = [intent_signal("tickets", "Pricing", "surging", 0.9, 100, 4, hours_ago=1)]
    with (
        SignalSourceServer(social, name="social") as healthy,
        SignalSourceServer(crm, name="crm") as failing,
        SignalSourceServer(tickets, delay=5, name="tickets") as slow,
        warnings_shown(),
    ):
        failing.fail_next(count=10, status=503)
        print(
            "  social answers at once; crm answers HTTP 503 every time; tickets takes 5 s"
            f" (deadline {SOURCE_DEADLINE_SECONDS:g} s)"
        )
        return collect(
            {"social": healthy.source(), "crm": failing.source(), "tickets": slow.source()},
            context=COLLECTOR,
            deadline_seconds=SOURCE_DEADLINE_SECONDS,
            governance=governance,
            push_to=INTENT_STORE,
            push_config=config,
        )


def show_collection(report: CollectReport) -> None:
    """The collector's report: every source, the rejected signals, what the store accepted."""
    heading(f"Collector report ({report.elapsed_seconds:.2f} s for the three sources)")
    for line in report.lines():
        print(f"  {line}")
    for rejection in report.rejections:
        print(f"  rejected {rejection.source}[{rejection.index}]: {rejection.reason}")
    if report.push is not None:
        push = report.push
        print(
            f"  pushed to {push.target}: {len(push.accepted)} accepted, "
            f"{len(push.rejected)} rejected, in {push.batches} batch(es)"
        )


def show_intents(session: Session) -> None:
    """The ranked intents, the explanation of the best one, and one alignment check."""
    heading(f"Ranked intents in {INTENT_STORE} for acme (scores now, best first)")
    ranked = session.fetch(FetchQuery(limit=10)).records
    for record in ranked:
        data = record.data
        print(
            f"  {data['intent_score']:6.3f}  {data['topic']:<15} {data['source']:<8}"
            f" {data['momentum']:<8} {record.id[:16]}..."
        )
    best = ranked[0]
    heading(f"Why {best.data['topic']!r} scores {best.data['intent_score']} (its explanation)")
    explained = session.fetch(FetchQuery(filters={"id": best.id})).records[0]
    factor = factors_of(explained)
    print(
        f"  {factor['momentum']} ({best.data['momentum']}) x {factor['confidence']} (confidence)"
        f" x {factor['human_source_pct']}/100 (human sources)"
    )
    print(
        f"    x {factor['streak_bonus']} ({best.data['streak_days']}-day streak; the bonus stops"
        f" at 1.3) x {factor['decay']} (decay: {factor['age_hours']} h old)"
        f" = {explained.data['intent_score']}"
    )
    heading(f"Alignment: may acme act on {TOPIC!r}?")
    verification = verify_intent(session, TOPIC)
    print(f"  allowed={verification.allowed}: {verification.reason}")


def factors_of(intent: Record) -> dict[str, Any]:
    """The factors of an explained intent's score, by name (``explanation`` in its data)."""
    explanation = intent.data.get("explanation")
    if not isinstance(explanation, list):
        raise TypeError(f"intent {intent.id} carries no explanation")
    return {
        str(factor["signal"]): factor["value"] for factor in explanation if isinstance(factor, dict)
    }


def print_intent_audit(events: list[AuditEvent]) -> None:
    """The intent sessions' audit trail, each session's steps together, retries and errors shown."""
    heading("Audit trail of the intent sessions (tenant acme; each session's steps together)")
    order: dict[str, int] = {}
    for event in events:
        order.setdefault(event.correlation_id, len(order))
    finished = [event for event in events if event.phase != "started"]
    for event in sorted(finished, key=lambda item: order[item.correlation_id]):
        took = f"{(event.duration_seconds or 0) * 1000:7.2f} ms"
        attempt = f" attempt {event.attempt}" if event.attempt > 1 else ""
        error = f" {event.error_type}" if event.error_type else ""
        print(
            f"  {event.correlation_id[:8]} {event.operation:<7} {event.outcome or '-':<7} {took}"
            f" actor={event.actor or '-':<9} connector={event.connector.name}{attempt}{error}"
        )


def intent_demo() -> None:
    """Collect intent signals from three sources, rank them, explain one, check alignment."""
    audit = MemoryAuditSink()
    governance = Governance(audit=audit)
    with tempfile.TemporaryDirectory() as directory:
        config = {"path": str(Path(directory) / "intents.sqlite3")}
        heading(f"Intent: three signal sources collected into {INTENT_STORE} ({config['path']})")
        show_collection(collect_sources(config, governance))
        with registry.open(
            INTENT_STORE, config=config, context=ACME, governance=governance
        ) as session:
            show_intents(session)
    print_intent_audit(audit.events)


# -- vault: governed model calls against a local OpenAI-compatible server -----------------------

AI = "vault.openai"
KEY_VARIABLE = "PV_OPENAI_API_KEY"
DEMO_KEY = "sk-demo-3f9a1c7e5b20"
ALICE = AuthContext(tenant="acme", actor="alice")
ALICE_APPROVED = AuthContext(
    tenant="acme", actor="alice", attributes={"approvals": ["bob", "carol"]}
)
QUESTION = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Summarise invoice 1042 in one line"}],
    "max_tokens": 64,
}


def vault_governance(audit: MemoryAuditSink) -> Governance:
    """Governance as an operator writes it: ``[governance.quorum_policies]`` in TOML."""
    settings = GovernanceSettings.from_mapping(
        {"quorum_policies": {"AI_SENSITIVE": 2, "AI_TOOL": 1}, "audit_log": False}
    )
    return dataclasses.replace(settings.build(), audit=audit)


def print_vault_audit(events: list[AuditEvent]) -> None:
    """The vault sessions' finished steps, with who approved and what each call used."""
    heading("Audit trail of the vault sessions (tenant acme)")
    for event in events:
        if event.phase == "started":
            continue
        took = f"{(event.duration_seconds or 0) * 1000:7.2f} ms"
        error = f" {event.error_type}" if event.error_type else ""
        detail = f"  [{event.detail}]" if event.detail else ""
        print(
            f"  {event.correlation_id[:8]} {event.operation:<12} {event.outcome or '-':<6} {took}"
            f" actor={event.actor or '-'}{error}{detail}"
        )


def vault_demo() -> None:
    """vault.openai: a key from a reference, quorum, an answer, a stream, a refused input."""
    audit = MemoryAuditSink()
    governance = vault_governance(audit)
    os.environ[KEY_VARIABLE] = DEMO_KEY  # where a deployment's secret store would put it
    with OpenAIServer(api_key=DEMO_KEY, stream_interval=0.05) as server:
        config = {"url": server.url, "api_key": f"env:{KEY_VARIABLE}", "timeout_seconds": 10}
        heading(f"Vault: {AI} against a local OpenAI-compatible server ({server.url})")
        resolved = OpenAIConfig.from_mapping(config, secrets=governance.secrets)
        print(f"  api_key reference {config['api_key']} resolved to {resolved.api_key}")
        print("  quorum policies: AI_SENSITIVE = 2 approvers (model_invoke), AI_TOOL = 1")

        heading("model_invoke by alice alone: refused before any request (quorum)")
        with registry.open(AI, config=config, context=ALICE, governance=governance) as session:
            try:
                session.invoke("model_invoke", QUESTION)
            except PolicyError as error:
                print(f"  {type(error).__name__}: {error}")
        print(f"  requests the server received: {server.requests()}")

        heading("The same call approved by bob and carol: answered")
        with registry.open(
            AI, config=config, context=ALICE_APPROVED, governance=governance
        ) as session:
            result = session.invoke("model_invoke", QUESTION)
            answer = result.output["choices"][0]["message"]["content"]
            print(f"  answer: {answer!r}")
            print(f"  usage: {result.usage}")

            heading("A streamed answer, printed chunk by chunk as the server produces it")
            print("  ", end="", flush=True)
            with session.stream("model_invoke", QUESTION) as chunks:
                for chunk in chunks:
                    print(chunk.delta.get("content") or "", end="", flush=True)
                    if chunk.usage:
                        print(f"\n  usage (last chunk): {chunk.usage}")

            heading("An invalid input: refused by the action's schema before any request")
            before = server.requests()
            try:
                session.invoke("model_invoke", {**QUESTION, "temperature": "warm"})
            except InvalidRequest as error:
                print(f"  {type(error).__name__}: {error}")
            print(f"  requests sent for it: {server.requests() - before}")
    print_vault_audit(audit.events)


JOBS_SPEC = """\
store = "jobs.sqlite3"

[[pipelines]]
name = "memories-to-archive"
batch_size = 2
schedule = {{ every = "15m" }}
transform = {{ exclude = ["created_at"] }}
source = {{ connector = "memory.sqlite", config = {{ path = "{source}", sync_page_size = 2 }} }}
destination = {{ connector = "memory.sqlite", config = {{ path = "{archive}" }} }}
tenants = [
    {{ tenant = "acme", actor = "sync-bot" }},
    {{ tenant = "globex", actor = "sync-bot" }},
]
"""


def integrations_command(*arguments: str) -> None:
    """Run the `integrations` command of this environment, its output straight to ours."""
    sys.stdout.flush()
    command = Path(sys.executable).with_name("integrations")
    subprocess.run([str(command), *arguments], check=False)


def print_report(report: RunReport) -> None:
    """One line per run report."""
    print(
        f"  {report.tenant:<7} {report.outcome:<10} moved={report.records_moved} "
        f"batches={report.batches} rejected={report.rejected} delivery={report.delivery}"
    )


def jobs_demo() -> None:
    """A pipeline from one memory store into another, run twice, then its status."""
    audit = MemoryAuditSink()
    governance = Governance(audit=audit)
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory) / "memories.sqlite3"
        spec_path = Path(directory) / "jobs.toml"
        archive = Path(directory) / "archive.sqlite3"
        spec_path.write_text(JOBS_SPEC.format(source=source, archive=archive), encoding="utf-8")
        config = {"path": str(source)}
        heading("Sync pipelines: acme's and globex's memories, copied into an archive store")
        with registry.open(STORE, config=config, context=ACME, governance=governance) as acme:
            pushes(
                acme, "acme", [memory(f"note-{i}", f"Meeting note {i}", "notes") for i in range(5)]
            )
        with registry.open(STORE, config=config, context=GLOBEX, governance=governance) as globex:
            pushes(globex, "globex", [memory("memo-1", "Quarterly memo", "memos")])
        print(f"  spec {spec_path.name}: batches of 2, every 15m, into {archive.name}")
        print("  $ integrations jobs run jobs.toml")
        integrations_command("jobs", "run", str(spec_path))

        heading("A second run, in Python, after acme edited one memory and forgot another")
        with registry.open(STORE, config=config, context=ACME, governance=governance) as acme:
            pushes(
                acme,
                "acme",
                [
                    memory("note-1", "Meeting note 1, with the decisions", "notes"),
                    Record(id="note-2", deleted=True),
                ],
            )
        spec = load_spec(spec_path)
        with open_store(spec.store or "jobs.sqlite3") as store:
            audit.events.clear()
            reports = InProcessExecutor(spec, store, governance=governance).run()
            for report in reports:
                print_report(report)
        acme_run = next(report for report in reports if report.tenant == "acme")
        ours = [event for event in audit.events if event.run_id == acme_run.run_id]
        sessions = {event.correlation_id for event in ours}
        print(
            f"  acme's run {acme_run.run_id}: {len(ours)} audit events in {len(sessions)} "
            "sessions, all with its run_id"
        )

        heading("Where each pipeline and tenant stands")
        print("  $ integrations jobs status jobs.toml")
        integrations_command("jobs", "status", str(spec_path))


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
    intent_demo()
    vault_demo()
    jobs_demo()


if __name__ == "__main__":
    main()
