"""The Celery executor around the workers: its settings, the task body without Celery, the
commands, beat, the optional extra, and workers that die with the process that started them.

The runs on worker processes under failure are in ``test_celery_workers.py``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from integrations.adapters.memory_adapters.testing import redis_server
from integrations.base import AuthContext, PushPayload, Record, Registry
from integrations.base._cli import cli
from integrations.jobs import JobsSpec, JobStore, StoreError, open_store
from integrations.jobs._celery_cli import select_pairs
from integrations.jobs.celery import (
    RUN_TASK,
    BrokerUnavailable,
    JobsCelery,
    RetryLater,
    WorkerRuntime,
    beat_schedule,
    celery_settings,
    visibility_timeout,
)
from integrations.jobs.testing import start_worker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    with redis_server(search=False) as url:
        yield url


def spec_for(tmp_path: Path, **pipeline: Any) -> JobsSpec:
    document: dict[str, Any] = {
        "name": "memories",
        "source": {"connector": "memory.sqlite", "config": {"path": str(tmp_path / "s.db")}},
        "destination": {"connector": "memory.sqlite", "config": {"path": str(tmp_path / "d.db")}},
        "tenants": [{"tenant": "acme", "actor": "bot"}, {"tenant": "globex", "actor": "bot"}],
        "transform": {"exclude": ["created_at"]},
        "retry_delay": 0.25,
    }
    document.update(pipeline)
    return JobsSpec.from_mapping({"pipelines": [document]})


def seed(tmp_path: Path, tenant: str, count: int) -> None:
    registry = Registry()
    registry.discover()
    context = AuthContext(tenant=tenant, actor="seeder")
    records = tuple(Record(id=f"m{i}", data={"text": f"memory {i}"}) for i in range(count))
    config = {"path": str(tmp_path / "s.db")}
    with registry.open("memory.sqlite", config=config, context=context) as session:
        session.push(PushPayload(records=records))


def python(code: str, *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter of this environment."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- settings --------------------------------------------------------------------------------


def test_runs_are_acknowledged_late_and_the_visibility_timeout_outlasts_the_lease(
    tmp_path: Path,
) -> None:
    spec = JobsSpec.from_mapping(
        {
            "pipelines": [
                spec_for(tmp_path, lease_ttl=40).pipelines[0].model_dump(mode="json"),
                spec_for(tmp_path, name="other", lease_ttl=120)
                .pipelines[0]
                .model_dump(mode="json"),
            ]
        }
    )
    settings = celery_settings(spec, "redis://127.0.0.1:6379/0")
    assert settings["task_acks_late"] is True
    assert settings["task_reject_on_worker_lost"] is True
    assert settings["worker_prefetch_multiplier"] == 1
    assert settings["accept_content"] == ["json"]
    options = settings["broker_transport_options"]
    assert options["visibility_timeout"] == visibility_timeout(spec) == math.ceil(120 * 1.25)
    assert 1 <= options["unacked_restore_interval"] <= 10
    amqp = celery_settings(spec, "amqp://guest@127.0.0.1:5672//")
    assert "broker_transport_options" not in amqp  # RabbitMQ redelivers when a consumer drops


def test_beat_sends_each_scheduled_pipeline_and_tenant_only_when_due(tmp_path: Path) -> None:
    scheduled = spec_for(tmp_path, schedule={"every": "15m"})
    assert beat_schedule(scheduled) == {
        "memories/acme": {
            "task": RUN_TASK,
            "schedule": 900.0,
            "args": ("memories", "acme"),
            "kwargs": {"only_if_due": True},
        },
        "memories/globex": {
            "task": RUN_TASK,
            "schedule": 900.0,
            "args": ("memories", "globex"),
            "kwargs": {"only_if_due": True},
        },
    }
    assert beat_schedule(spec_for(tmp_path)) == {}


def test_submit_selects_pairs_as_run_does(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    assert select_pairs(spec) == [("memories", "acme"), ("memories", "globex")]
    assert select_pairs(spec, tenants=["globex"]) == [("memories", "globex")]
    with pytest.raises(Exception, match="no tenant 'initech'"):
        select_pairs(spec, tenants=["initech"])


# -- the task body, without Celery -----------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    opened = open_store(tmp_path / "jobs.db")
    try:
        yield opened
    finally:
        opened.close()


def test_the_task_runs_the_pipeline_with_a_holder_of_its_own_process(
    tmp_path: Path, store: JobStore
) -> None:
    seed(tmp_path, "acme", 3)
    runtime = WorkerRuntime(spec_for(tmp_path), str(tmp_path / "jobs.db"))
    try:
        report = runtime.execute("memories", "acme")
        holder = runtime.process_state().holder
    finally:
        runtime.close()
    assert not isinstance(report, RetryLater)
    assert report is not None
    assert (report.outcome, report.records_moved) == ("succeeded", 3)
    host, pid, suffix = holder.rsplit(":", 2)
    assert (pid, len(suffix)) == (str(os.getpid()), 8)
    assert host
    [record] = store.runs("memories", "acme")
    assert record.executor == "celery"


def test_a_run_not_due_does_nothing_and_a_held_lease_is_waited_out(
    tmp_path: Path, store: JobStore
) -> None:
    seed(tmp_path, "acme", 1)
    spec = spec_for(tmp_path, schedule={"every": "1h"}, lease_ttl=30)
    runtime = WorkerRuntime(spec, str(tmp_path / "jobs.db"))
    try:
        first = runtime.execute("memories", "acme", only_if_due=True)
        assert first is not None
        assert not isinstance(first, RetryLater)
        assert first.outcome == "succeeded"
        assert runtime.execute("memories", "acme", only_if_due=True) is None
        store.acquire_lease("memories", "globex", "another-worker", 30)
        again = runtime.execute("memories", "globex", lease_waits=2)
        assert isinstance(again, RetryLater)
        assert (again.countdown, again.lease_waits, again.store_tries) == (31.0, 3, 0)
        assert "another-worker holds the lease" in again.reason
        last = runtime.execute("memories", "globex", lease_waits=runtime.lease_waits)
        assert last is not None
        assert not isinstance(last, RetryLater)
        assert last.outcome == "skipped"  # after its waits, the run is reported skipped
    finally:
        runtime.close()


def test_a_transient_store_failure_before_the_run_is_tried_again_with_backoff(
    tmp_path: Path,
) -> None:
    spec = spec_for(tmp_path, attempts=3, retry_delay=2)
    runtime = WorkerRuntime(spec, str(tmp_path / "jobs.db"))
    state = runtime.process_state()
    calls: list[str] = []

    def busy(*args: Any) -> Any:
        calls.append("acquire")
        raise StoreError("database is locked", transient=True)

    state.store.acquire_lease = busy  # type: ignore[method-assign,assignment]  # a store that is busy
    try:
        assert runtime.execute("memories", "acme") == RetryLater(2.0, "database is locked", 0, 1)
        assert runtime.execute("memories", "acme", store_tries=1) == RetryLater(
            4.0, "database is locked", 0, 2
        )
        with pytest.raises(StoreError):
            runtime.execute("memories", "acme", store_tries=2)  # the last attempt
    finally:
        runtime.close()
    assert len(calls) == 3


# -- the optional extra ----------------------------------------------------------------------


def test_the_in_process_path_never_imports_celery(tmp_path: Path) -> None:
    seed(tmp_path, "acme", 2)
    spec = write_spec(tmp_path)
    done = python(
        f"""
        import sys
        from click.testing import CliRunner
        from integrations.base._cli import cli
        import integrations.jobs
        result = CliRunner().invoke(cli, ["jobs", "run", {str(spec)!r}, "--json"])
        assert result.exit_code == 0, result.output
        assert '"records_moved": 2' in result.output, result.output
        assert '"records_moved": 0' in result.output, result.output
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("celery", "kombu"))
        print(loaded)
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_celery_the_commands_say_which_extra_to_install(tmp_path: Path) -> None:
    spec = tmp_path / "jobs.toml"
    spec.write_text(
        '[[pipelines]]\nname = "p"\nsource = { connector = "mock" }\n'
        'destination = { connector = "mock" }\ntenants = [{ tenant = "acme", actor = "bot" }]\n'
    )
    done = python(
        f"""
        import sys
        sys.modules["celery"] = None  # as if the extra were not installed
        from click.testing import CliRunner
        from integrations.base._cli import cli
        from integrations.jobs import JobsError
        try:
            import integrations.jobs.celery
        except ImportError as error:
            assert isinstance(error, JobsError), type(error)
            print("import:", error)
        result = CliRunner().invoke(cli, ["jobs", "submit", {str(spec)!r}])
        print("exit", result.exit_code, result.output.strip())
        """
    )
    assert done.returncode == 0, done.stderr
    assert "import: the Celery executor needs Celery: install integrations-jobs[celery]" in (
        done.stdout
    )
    assert "exit 1 Error: CeleryUnavailable: the Celery executor needs Celery" in done.stdout


def test_submit_to_a_broker_that_is_not_there_fails_in_one_line(tmp_path: Path) -> None:
    spec = spec_for(tmp_path)
    app = JobsCelery(spec, "redis://127.0.0.1:9/0")  # the discard port: nothing listens
    started = time.monotonic()
    try:
        with pytest.raises(
            BrokerUnavailable, match=r"cannot enqueue runs on redis://127\.0\.0\.1:9"
        ):
            app.submit([("memories", "acme")])
    finally:
        app.close()
    assert time.monotonic() - started < 20


# -- the commands and beat, on a real worker -------------------------------------------------


def write_spec(tmp_path: Path, **pipeline: str) -> Path:
    """A spec file: memory.sqlite into memory.sqlite for acme and globex, plus `pipeline`."""
    extra = "".join(f"{key} = {value}\n" for key, value in pipeline.items())
    source, destination = tmp_path / "s.db", tmp_path / "d.db"
    path = tmp_path / "jobs.toml"
    path.write_text(
        "[[pipelines]]\n"
        'name = "memories"\n'
        f'source = {{ connector = "memory.sqlite", config = {{ path = "{source}" }} }}\n'
        f'destination = {{ connector = "memory.sqlite", config = {{ path = "{destination}" }} }}\n'
        'transform = { exclude = ["created_at"] }\n'
        'tenants = [{ tenant = "acme", actor = "bot" }, { tenant = "globex", actor = "bot" }]\n'
        + extra
    )
    return path


def wait_for_runs(store: JobStore, count: int, timeout: float = 20) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [run for run in store.runs("memories") if run.outcome != "running"]
        if len(runs) >= count:
            return runs
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} runs finished within {timeout:.0f}s")


def test_submit_enqueues_runs_that_a_worker_started_by_the_command_runs(
    tmp_path: Path, broker: str, store: JobStore
) -> None:
    seed(tmp_path, "acme", 4)
    seed(tmp_path, "globex", 2)
    spec = write_spec(tmp_path)
    queue = f"submit-{os.getpid()}-{time.monotonic_ns()}"
    worker = start_worker(
        spec, broker, tmp_path, store=str(tmp_path / "jobs.db"), queue=queue, name="w@localhost"
    )
    try:
        worker.wait_ready()
        result = CliRunner().invoke(
            cli, ["jobs", "submit", str(spec), "--broker", broker, "--queue", queue, "--json"]
        )
        assert result.exit_code == 0, result.output
        submitted = json.loads(result.output)
        assert [(row["pipeline"], row["tenant"]) for row in submitted] == [
            ("memories", "acme"),
            ("memories", "globex"),
        ]
        runs = {run.tenant: run for run in wait_for_runs(store, 2)}
    finally:
        worker.stop()
    assert (runs["acme"].records_moved, runs["globex"].records_moved) == (4, 2)
    assert {run.executor for run in runs.values()} == {"celery"}


def test_beat_follows_the_schedule_without_any_submission(
    tmp_path: Path, broker: str, store: JobStore
) -> None:
    seed(tmp_path, "acme", 3)
    spec = write_spec(tmp_path, schedule='{ every = "1s" }')
    queue = f"beat-{os.getpid()}-{time.monotonic_ns()}"
    worker = start_worker(
        spec,
        broker,
        tmp_path,
        store=str(tmp_path / "jobs.db"),
        queue=queue,
        name="beat@localhost",
        extra=["--beat", "--schedule-file", str(tmp_path / "beat-state")],
    )
    try:
        worker.wait_ready()
        runs = wait_for_runs(store, 4)  # two ticks for each of the two tenants
    finally:
        worker.stop()
    moved = {
        tenant: sum(r.records_moved for r in runs if r.tenant == tenant)
        for tenant in ("acme", "globex")
    }
    assert moved == {"acme": 3, "globex": 0}
    assert {run.executor for run in runs} == {"celery"}


def test_workers_die_with_the_process_that_started_them(tmp_path: Path, broker: str) -> None:
    spec = write_spec(tmp_path)
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from integrations.jobs.testing import start_worker
                worker = start_worker({str(spec)!r}, {broker!r}, {str(tmp_path)!r},
                                      store={str(tmp_path / "jobs.db")!r}, name="orphan@localhost")
                worker.wait_ready()
                print(worker.pid, flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert starter.stdout is not None
        pid = int(starter.stdout.readline())
        os.kill(starter.pid, signal.SIGKILL)  # no finally, no atexit: only the kernel acts
        starter.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
    finally:
        starter.kill()
        starter.wait()
        if starter.stdout is not None:
            starter.stdout.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
