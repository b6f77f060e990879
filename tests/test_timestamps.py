"""A fetched memory spells every timestamp one way: RFC 3339 in UTC with a ``Z``.

End to end through the `integrations` command: a memory is pushed to a real SQLite file and
fetched back as JSON, whose ``data.created_at`` (written by the store) and ``updated_at``
(serialised by the model) must read alike, as the audit events' ``time`` does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from integrations.base import AuthContext, Governance, MemoryAuditSink, Session, format_utc
from integrations.base._cli import cli
from integrations.mocks import MockConnector

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def call(*arguments: str) -> str:
    result = CliRunner().invoke(cli, ["call", *arguments], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_fetched_memory_has_one_spelling_in_created_at_and_updated_at(tmp_path: Path) -> None:
    config = tmp_path / "sqlite.json"
    config.write_text(json.dumps({"path": str(tmp_path / "memories.sqlite3")}), "utf-8")
    context = json.dumps({"tenant": "acme", "actor": "alice"})
    memory = {"records": [{"id": "m1", "data": {"text": "a memory with two timestamps"}}]}

    call(
        "memory.sqlite",
        "push",
        "--config",
        str(config),
        "--context",
        context,
        "--payload",
        json.dumps(memory),
    )
    fetched = json.loads(
        call("memory.sqlite", "fetch", "--config", str(config), "--context", context)
    )

    [record] = fetched["records"]
    assert RFC3339_UTC.match(record["data"]["created_at"]), record["data"]["created_at"]
    assert RFC3339_UTC.match(record["updated_at"]), record["updated_at"]
    assert "+00:00" not in json.dumps(fetched)


def test_audit_events_spell_their_time_the_same_way() -> None:
    sink = MemoryAuditSink()
    context = AuthContext(tenant="acme", actor="alice")
    with Session(MockConnector(), config={}, context=context, governance=Governance(audit=sink)):
        pass

    times = [event.to_dict()["time"] for event in sink.events]
    assert times
    assert all(RFC3339_UTC.match(time) for time in times), times
    assert times[0] == format_utc(sink.events[0].time)
