"""`integrations jobs` through the `integrations` command, as the plug-in group loads it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from integrations.base import AuthContext, PushPayload, Record, Registry
from integrations.base._cli import cli
from integrations.jobs import RunReport, jobs_json_schema
from integrations.jobs._cli import _BarProgress, _bars

pytestmark = pytest.mark.timeout(60)

SPEC = """\
store = "jobs.db"

[[pipelines]]
name = "memories"
batch_size = 2
retry_delay = 0
schedule = {{ every = "1h" }}
transform = {{ exclude = ["created_at"] }}
source = {{ connector = "memory.sqlite", config = {{ path = "{source}" }} }}
destination = {{ connector = "memory.sqlite", config = {{ path = "{destination}" }} }}
tenants = [
    {{ tenant = "acme", actor = "sync-bot" }},
    {{ tenant = "globex", actor = "sync-bot" }},
]
"""


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    source = tmp_path / "source.db"
    registry = Registry()
    registry.discover()
    for tenant, count in (("acme", 3), ("globex", 1)):
        context = AuthContext(tenant=tenant, actor="seeder")
        with registry.open("memory.sqlite", config={"path": str(source)}, context=context) as s:
            records = tuple(
                Record(id=f"{tenant}{i}", data={"text": f"t {i}"}) for i in range(count)
            )
            s.push(PushPayload(records=records))
    path = tmp_path / "jobs.toml"
    path.write_text(SPEC.format(source=source, destination=tmp_path / "destination.db"))
    return path


def invoke(*arguments: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["jobs", *arguments])
    return result.exit_code, result.output


def test_run_prints_one_plain_line_per_event_and_a_summary_per_run(spec_path: Path) -> None:
    code, output = invoke("run", str(spec_path))
    assert code == 0, output
    lines = output.splitlines()
    assert any(line.startswith("memories acme: started run ") for line in lines)
    assert "memories acme: committed 3 records, 0 rejected" in lines
    summaries = [line for line in lines if ": succeeded (" in line]
    assert len(summaries) == 2
    assert any(
        line.startswith(
            "memories acme: succeeded (3 records in 2 batches, 0 rejected, "
            "1 attempts, delivery exactly-once; run "
        )
        for line in summaries
    )
    assert (spec_path.parent / "jobs.db").exists()  # the spec's store, relative to the spec


def test_run_json_then_a_second_run_moves_nothing(spec_path: Path) -> None:
    code, output = invoke("run", str(spec_path), "--json", "--tenant", "acme")
    assert code == 0, output
    [report] = json.loads(output)
    assert (report["tenant"], report["outcome"], report["records_moved"]) == (
        "acme",
        "succeeded",
        3,
    )
    code, output = invoke("run", str(spec_path), "--json")
    moved = {report["tenant"]: report["records_moved"] for report in json.loads(output)}
    assert moved == {"acme": 0, "globex": 1}
    code, output = invoke("run", str(spec_path), "--due")
    assert (code, output) == (0, "nothing to run (nothing is due)\n")


def test_status_plain_and_json(spec_path: Path, tmp_path: Path) -> None:
    code, output = invoke("status", str(spec_path))
    assert code == 0, output
    assert output.splitlines()[0].startswith("pipeline=memories tenant=acme outcome=never run")
    invoke("run", str(spec_path), "--tenant", "acme")
    code, output = invoke("status", str(spec_path), "--json")
    assert code == 0, output
    acme, globex = json.loads(output)
    assert (acme["outcome"], acme["records_moved"], acme["records_total"]) == ("succeeded", 3, 3)
    assert acme["due"] is False
    assert acme["lag_seconds"] == 0.0
    assert acme["checkpoint_age_seconds"] >= 0
    assert (globex["outcome"], globex["due"], globex["last_error"]) == (None, True, None)
    code, output = invoke("status", str(spec_path))
    assert "pipeline=memories tenant=acme outcome=succeeded moved=3 total=3 lag=0s" in output
    other = tmp_path / "elsewhere.db"
    code, output = invoke("status", str(spec_path), "--store", str(other))
    assert "outcome=never run" in output


def test_a_failing_run_exits_1_with_its_error(spec_path: Path) -> None:
    # The destination becomes a mock that refuses every push: not retryable, so one attempt.
    spec_path.write_text(
        spec_path.read_text().replace(
            'destination = { connector = "memory.sqlite", config = { path',
            'destination = { connector = "mock", config = { faults = [{ operation = "push", '
            'error = "invalid_request", times = 100 }], store',
        )
    )
    code, output = invoke("run", str(spec_path), "--tenant", "acme")
    assert code == 1
    assert "memories acme: failed (0 records in 0 batches" in output
    assert "InvalidRequest: injected fault (push call #1) (attempt 1)" in output


def test_spec_errors_name_the_field_and_exit_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[pipelines]]\nname = "x"\nbatch_size = 0\n')
    code, output = invoke("run", str(path))
    assert code == 1
    assert "Error: SpecError: invalid jobs spec: pipelines.0.source: Field required" in output
    assert "pipelines.0.batch_size: Input should be greater than or equal to 1" in output
    code, output = invoke("status", str(tmp_path / "missing.toml"))
    assert code == 1
    assert "SpecError: cannot read" in output


def test_an_unknown_pipeline_or_tenant_is_refused(spec_path: Path) -> None:
    code, output = invoke("run", str(spec_path), "--pipeline", "nope")
    assert code == 1
    assert "no pipeline 'nope' in the spec (it has: memories)" in output
    code, output = invoke("run", str(spec_path), "--tenant", "initech")
    assert code == 1
    assert "no tenant 'initech'" in output


def test_schema_prints_the_published_schema() -> None:
    code, output = invoke("schema")
    assert code == 0
    assert json.loads(output) == jobs_json_schema()


def test_progress_bars_follow_the_runs() -> None:
    from datetime import UTC, datetime

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    now = datetime.now(UTC)
    with _bars(console) as progress:
        bars = _BarProgress(progress)
        bars.run_started("memories", "acme", "r1")
        bars.batch_committed("memories", "acme", 2, 0)
        bars.batch_committed("memories", "acme", 1, 1)
        bars.run_finished(
            RunReport("r1", "memories", "acme", "succeeded", 3, 2, 1, 1, "exactly-once", now, now)
        )
        [task] = progress.tasks
        assert task.fields["moved"] == 3
        assert "succeeded" in task.fields["state"]
    assert "memories acme" in buffer.getvalue()


def test_on_a_terminal_run_draws_progress_and_status_is_a_table(
    spec_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from integrations.jobs import _cli

    monkeypatch.setattr(_cli, "_is_terminal", lambda: True)
    code, output = invoke("run", str(spec_path), "--tenant", "acme")
    assert code == 0, output
    assert "memories acme" in output
    assert "memories acme: succeeded (3 records in 2 batches" in output
    spec_path.write_text(
        spec_path.read_text().replace(
            'destination = { connector = "memory.sqlite", config = { path',
            'destination = { connector = "mock", config = { faults = [{ operation = "push", '
            'error = "invalid_request", times = 100 }], store',
        )
    )
    assert invoke("run", str(spec_path), "--tenant", "globex")[0] == 1
    code, output = invoke("status", str(spec_path))
    assert code == 0, output
    header = next(line for line in output.splitlines() if "pipeline" in line)
    for column in ("tenant", "outcome", "moved", "total", "lag", "checkpoint", "dead", "last run"):
        assert column in header
    assert "memories globex: InvalidRequest: injected fault" in output


def test_dead_letters_lists_the_rejected_records_with_their_reasons(spec_path: Path) -> None:
    spec_path.write_text(spec_path.read_text().replace('exclude = ["created_at"]', "exclude = []"))
    code, output = invoke("run", str(spec_path), "--tenant", "acme")
    assert code == 0, output
    assert "3 rejected" in output
    code, output = invoke(
        "dead-letters", str(spec_path), "--pipeline", "memories", "--tenant", "acme"
    )
    assert code == 0, output
    lines = output.splitlines()
    assert len(lines) == 3
    assert all("unknown field 'created_at'" in line for line in lines)
    code, output = invoke(
        "dead-letters", str(spec_path), "--pipeline", "memories", "--tenant", "acme", "--json"
    )
    letters = json.loads(output)
    assert sorted(letter["record"]["id"] for letter in letters) == ["acme0", "acme1", "acme2"]
    code, output = invoke("dead-letters", str(spec_path), "--pipeline", "memories", "--tenant", "x")
    assert code == 1
    assert "no tenant 'x'" in output


def test_serve_runs_what_is_due_until_sigterm(spec_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    command = Path(sys.executable).with_name("integrations")
    process = subprocess.Popen(
        [str(command), "jobs", "serve", str(spec_path), "--poll", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while sum(": succeeded (" in line for line in lines) < 2 and time.monotonic() < deadline:
        lines.append(process.stdout.readline())
    time.sleep(0.5)  # a few more rounds: nothing is due again for an hour
    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=30)
    output = "".join(lines) + rest
    assert process.returncode == 0, output
    assert output.startswith("serving 2 pipeline and tenant pairs of jobs.toml\n")
    assert output.count(": succeeded (") == 2  # each ran once: the schedule is an hour
    assert output.endswith("stopped\n")
