"""The job store's contract, run against both stores (`job_backend` is parametrized).

Leases (acquire, held, expiry, takeover, release, renew), fencing of checkpoint commits and
dead letters, run history, status, values refused before anything is written, and schema
versions. Time is a settable clock: nothing here sleeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

import pytest

from integrations.base import IntegrationsError
from integrations.jobs._exceptions import (
    InvalidStoreValue,
    JobsError,
    LeaseHeld,
    LeaseLost,
    StoreError,
)
from integrations.jobs._records import Checkpoint, Lease
from integrations.jobs._store import JobStore

pytestmark = pytest.mark.timeout(120)

P, T = "orders", "acme"


class Clock(Protocol):
    def __call__(self) -> datetime: ...

    def advance(self, seconds: float) -> datetime: ...


class Backend(Protocol):
    kind: str

    def open(self, clock: Callable[[], datetime]) -> JobStore: ...

    def set_schema_version(self, version: int) -> None: ...


# -- leases ---------------------------------------------------------------------------------


def test_acquire_gives_a_lease_with_a_token_and_an_expiry(store: JobStore, clock: Clock) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)

    assert lease == Lease(P, T, "worker-1", lease.token, clock() + timedelta(seconds=30))
    assert lease.token >= 1
    assert lease.expires_at.tzinfo is UTC


def test_a_live_lease_is_held_against_other_holders(store: JobStore, clock: Clock) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    clock.advance(29.999)

    with pytest.raises(LeaseHeld) as raised:
        store.acquire_lease(P, T, "worker-2", 30)

    assert raised.value.holder == "worker-1"
    assert raised.value.expires_at == lease.expires_at
    assert "worker-1" in str(raised.value)


def test_leases_of_other_pipelines_and_tenants_are_independent(store: JobStore) -> None:
    store.acquire_lease(P, T, "worker-1", 30)

    assert store.acquire_lease(P, "globex", "worker-2", 30).holder == "worker-2"
    assert store.acquire_lease("invoices", T, "worker-3", 30).holder == "worker-3"


def test_the_same_holder_reacquiring_gets_a_new_token(store: JobStore) -> None:
    first = store.acquire_lease(P, T, "worker-1", 30)
    second = store.acquire_lease(P, T, "worker-1", 30)

    assert second.token > first.token
    with pytest.raises(LeaseLost):
        store.commit_checkpoint(first, {"cursor": 1}, 1)


def test_an_expired_lease_is_taken_over_with_a_higher_token(store: JobStore, clock: Clock) -> None:
    old = store.acquire_lease(P, T, "worker-1", 30)
    clock.advance(30)  # expiry is exclusive: at expires_at the lease is gone

    new = store.acquire_lease(P, T, "worker-2", 30)

    assert new.token > old.token
    assert new.holder == "worker-2"


def test_released_lease_is_free_at_once_and_its_token_stays_spent(store: JobStore) -> None:
    old = store.acquire_lease(P, T, "worker-1", 30)
    store.release_lease(old)

    new = store.acquire_lease(P, T, "worker-2", 30)

    assert new.token > old.token
    with pytest.raises(LeaseLost):
        store.commit_checkpoint(old, {"cursor": 1}, 1)


def test_releasing_a_lost_lease_leaves_the_successor_alone(store: JobStore, clock: Clock) -> None:
    old = store.acquire_lease(P, T, "worker-1", 30)
    clock.advance(31)
    new = store.acquire_lease(P, T, "worker-2", 30)

    store.release_lease(old)  # no error

    with pytest.raises(LeaseHeld):
        store.acquire_lease(P, T, "worker-3", 30)
    store.commit_checkpoint(new, {"cursor": 1}, 1)


def test_renewing_extends_the_lease_and_keeps_the_token(store: JobStore, clock: Clock) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    clock.advance(20)

    renewed = store.renew_lease(lease, 30)
    clock.advance(20)  # past the first expiry, within the renewed one

    assert renewed.token == lease.token
    assert renewed.expires_at == clock() + timedelta(seconds=10)
    with pytest.raises(LeaseHeld):
        store.acquire_lease(P, T, "worker-2", 30)
    store.commit_checkpoint(renewed, {"cursor": 1}, 1)


def test_a_lease_cannot_be_renewed_once_expired(store: JobStore, clock: Clock) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    clock.advance(30)

    with pytest.raises(LeaseLost):
        store.renew_lease(lease, 30)


def test_a_lease_cannot_be_renewed_once_taken_over(store: JobStore, clock: Clock) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    clock.advance(31)
    successor = store.acquire_lease(P, T, "worker-2", 30)

    with pytest.raises(LeaseLost):
        store.renew_lease(lease, 30)
    assert store.renew_lease(successor, 60).token == successor.token


def test_tokens_increase_across_every_kind_of_acquisition(store: JobStore, clock: Clock) -> None:
    tokens = [store.acquire_lease(P, T, "a", 10).token]
    tokens.append(store.acquire_lease(P, T, "a", 10).token)  # re-acquired
    clock.advance(10)
    tokens.append(store.acquire_lease(P, T, "b", 10).token)  # after expiry
    store.release_lease(Lease(P, T, "b", tokens[-1], clock()))
    tokens.append(store.acquire_lease(P, T, "c", 10).token)  # after release

    assert tokens == sorted(set(tokens))


@pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, True, "30", 8 * 24 * 3600])
def test_a_bad_ttl_is_refused(store: JobStore, ttl: Any) -> None:
    with pytest.raises(InvalidStoreValue):
        store.acquire_lease(P, T, "worker-1", ttl)


@pytest.mark.parametrize("name", ["", None, 3, "nul\x00"])
def test_names_must_be_non_empty_text(store: JobStore, name: Any) -> None:
    with pytest.raises(InvalidStoreValue):
        store.acquire_lease(name, T, "worker-1", 30)
    with pytest.raises(InvalidStoreValue):
        store.acquire_lease(P, T, name, 30)


# -- checkpoints ----------------------------------------------------------------------------


def test_no_checkpoint_before_the_first_commit(store: JobStore) -> None:
    assert store.checkpoint(P, T) is None


def test_commits_store_the_state_and_add_up_records(store: JobStore, clock: Clock) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    state = {"cursor": "abc", "seen": [1, 2.5, None, True], "nested": {"é": "ünïcode ✓"}}

    first = store.commit_checkpoint(lease, state, 10)
    clock.advance(1)
    second = store.commit_checkpoint(lease, {"cursor": "def"}, 5)

    assert first == Checkpoint(P, T, state, lease.token, 10, first.updated_at)
    assert second == Checkpoint(P, T, {"cursor": "def"}, lease.token, 15, clock())
    assert store.checkpoint(P, T) == second
    assert second.updated_at.tzinfo is UTC


def test_a_checkpoint_may_clear_the_state(store: JobStore) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    store.commit_checkpoint(lease, {"cursor": 1}, 3)

    cleared = store.commit_checkpoint(lease, None, 0)

    assert cleared.state is None
    assert cleared.records == 3


def test_the_checkpoint_records_the_committing_token(store: JobStore, clock: Clock) -> None:
    store.commit_checkpoint(store.acquire_lease(P, T, "worker-1", 30), {"cursor": 1}, 1)
    clock.advance(31)
    successor = store.acquire_lease(P, T, "worker-2", 30)

    committed = store.commit_checkpoint(successor, {"cursor": 2}, 1)

    assert committed.token == successor.token
    assert committed.records == 2


def test_a_stale_token_cannot_commit_and_nothing_changes(store: JobStore, clock: Clock) -> None:
    old = store.acquire_lease(P, T, "worker-1", 30)
    store.commit_checkpoint(old, {"cursor": 1}, 1)
    clock.advance(31)
    new = store.acquire_lease(P, T, "worker-2", 30)
    kept = store.commit_checkpoint(new, {"cursor": 2}, 1)

    with pytest.raises(LeaseLost) as raised:
        store.commit_checkpoint(old, {"cursor": 99}, 100)

    assert "nothing was written" in str(raised.value)
    assert store.checkpoint(P, T) == kept


def test_an_expired_lease_cannot_commit_even_unchallenged(store: JobStore, clock: Clock) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    clock.advance(30)

    with pytest.raises(LeaseLost):
        store.commit_checkpoint(lease, {"cursor": 1}, 1)
    assert store.checkpoint(P, T) is None


def test_a_forged_lease_cannot_commit(store: JobStore, clock: Clock) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)

    for forged in (
        Lease(P, T, "worker-2", lease.token, lease.expires_at),  # the token, another holder
        Lease(P, T, "worker-1", lease.token + 1, lease.expires_at),  # a future token
        Lease(P, "globex", "worker-1", lease.token, lease.expires_at),  # another tenant
    ):
        with pytest.raises(LeaseLost):
            store.commit_checkpoint(forged, {"cursor": 1}, 1)
    assert store.checkpoint(P, T) is None
    assert store.checkpoint(P, "globex") is None


@pytest.mark.parametrize(
    "state",
    [
        {"x": math.nan},
        {"x": math.inf},
        {1: "int key"},
        {"x": {(1, 2): "tuple key"}},
        {"x": object()},
        {"x": b"bytes"},
        {"x": "nul \x00"},
        {"nul \x00": 1},
        {"x": "lone \udc80 surrogate"},
        ["not", "a", "mapping"],
        "text",
    ],
    ids=repr,
)
def test_state_that_is_not_json_is_refused_and_nothing_is_written(
    store: JobStore, state: Any
) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    kept = store.commit_checkpoint(lease, {"cursor": 1}, 1)

    with pytest.raises(InvalidStoreValue):
        store.commit_checkpoint(lease, state, 1)

    assert store.checkpoint(P, T) == kept


def test_text_that_only_looks_like_an_escape_is_kept(store: JobStore) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    state = {"x": "\\u0000 is six characters", "\\": "\\\\u0000"}

    assert store.commit_checkpoint(lease, state, 0).state == state
    assert store.checkpoint(P, T) == store.commit_checkpoint(lease, state, 0)


@pytest.mark.parametrize("count", [-1, True, 1.5, 2**63])
def test_a_bad_record_count_is_refused(store: JobStore, count: Any) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)

    with pytest.raises(InvalidStoreValue):
        store.commit_checkpoint(lease, {"cursor": 1}, count)
    assert store.checkpoint(P, T) is None


# -- dead letters ---------------------------------------------------------------------------


def test_dead_letters_are_kept_with_their_reasons_newest_first(
    store: JobStore, clock: Clock
) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    store.add_dead_letters(lease, "run-1", [({"id": 1}, "too big"), ({"id": 2}, "bad email")])
    clock.advance(1)
    store.add_dead_letters(lease, "run-2", [({"id": 3, "x": [None]}, "duplicate")])

    letters = store.dead_letters(P, T)

    assert [(d.run_id, d.record, d.reason) for d in letters] == [
        ("run-2", {"id": 3, "x": [None]}, "duplicate"),
        ("run-1", {"id": 2}, "bad email"),
        ("run-1", {"id": 1}, "too big"),
    ]
    assert letters[0].created_at == clock()
    assert {(d.pipeline, d.tenant) for d in letters} == {(P, T)}
    assert [d.record for d in store.dead_letters(P, T, limit=1)] == [{"id": 3, "x": [None]}]
    assert store.dead_letters(P, "globex") == []


def test_dead_letters_are_fenced(store: JobStore, clock: Clock) -> None:
    old = store.acquire_lease(P, T, "worker-1", 30)
    store.add_dead_letters(old, "run-1", [])  # nothing to keep, and the lease holds
    clock.advance(31)
    store.acquire_lease(P, T, "worker-2", 30)

    with pytest.raises(LeaseLost):
        store.add_dead_letters(old, "run-1", [({"id": 1}, "too big")])
    with pytest.raises(LeaseLost):
        store.add_dead_letters(old, "run-1", [])
    assert store.dead_letters(P, T) == []


def test_a_batch_commits_its_dead_letters_checkpoint_and_renewal_together(
    store: JobStore, clock: Clock
) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    clock.advance(20)
    renewed = store.commit_batch(
        lease, {"cursor": 1}, 2, run_id="run-1", letters=[({"id": 3}, "too big")], ttl_seconds=30
    )
    assert renewed.token == lease.token
    assert renewed.expires_at == lease.expires_at + timedelta(seconds=20)
    checkpoint = store.checkpoint(P, T)
    assert checkpoint is not None
    assert (checkpoint.state, checkpoint.records) == ({"cursor": 1}, 2)
    assert [(d.record, d.reason, d.run_id) for d in store.dead_letters(P, T)] == [
        ({"id": 3}, "too big", "run-1")
    ]
    clock.advance(25)  # past the first expiry, within the renewal
    again = store.commit_batch(renewed, {"cursor": 2}, 1, run_id="run-1", ttl_seconds=30)
    assert again.expires_at > renewed.expires_at
    with pytest.raises(LeaseHeld):
        store.acquire_lease(P, T, "worker-2", 30)


def test_a_batch_under_a_lost_lease_writes_nothing(store: JobStore, clock: Clock) -> None:
    old = store.acquire_lease(P, T, "worker-1", 30)
    store.commit_batch(old, {"cursor": 1}, 1, run_id="run-1", ttl_seconds=30)
    clock.advance(31)
    new = store.acquire_lease(P, T, "worker-2", 30)
    kept = store.checkpoint(P, T)

    with pytest.raises(LeaseLost):
        store.commit_batch(
            old, {"cursor": 9}, 9, run_id="run-1", letters=[({"id": 1}, "no")], ttl_seconds=30
        )
    assert store.checkpoint(P, T) == kept
    assert store.dead_letters(P, T) == []
    assert store.renew_lease(new, 30).token == new.token  # the successor's lease is untouched


def test_a_batch_with_an_unstorable_state_or_letter_writes_nothing(store: JobStore) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)
    with pytest.raises(InvalidStoreValue):
        store.commit_batch(lease, {"x": math.nan}, 1, run_id="run-1", ttl_seconds=30)
    with pytest.raises(InvalidStoreValue):
        store.commit_batch(
            lease, {"x": 1}, 1, run_id="run-1", letters=[({"id": math.inf}, "r")], ttl_seconds=30
        )
    assert store.checkpoint(P, T) is None
    assert store.dead_letters(P, T) == []


def test_one_unstorable_record_keeps_the_whole_batch_out(store: JobStore) -> None:
    lease = store.acquire_lease(P, T, "worker-1", 30)

    with pytest.raises(InvalidStoreValue):
        store.add_dead_letters(lease, "run-1", [({"id": 1}, "ok"), ({"id": math.nan}, "nan")])
    with pytest.raises(InvalidStoreValue):
        store.add_dead_letters(lease, "run-1", [({"id": 1}, "ok"), ({"id": 2}, None)])  # type: ignore[list-item]  # a reason that is not text, on purpose
    assert store.dead_letters(P, T) == []


@pytest.mark.parametrize("limit", [0, -1, True, 1.0])
def test_a_bad_limit_is_refused(store: JobStore, limit: Any) -> None:
    with pytest.raises(InvalidStoreValue):
        store.dead_letters(P, T, limit=limit)
    with pytest.raises(InvalidStoreValue):
        store.runs(limit=limit)


# -- runs and status ------------------------------------------------------------------------


def test_a_run_is_recorded_running_then_finished(store: JobStore, clock: Clock) -> None:
    started = store.start_run("run-1", P, T, "local")
    clock.advance(5)
    finished = store.finish_run("run-1", "failed", 10, 2, 1, "the destination said no")

    assert (started.outcome, started.finished_at, started.records_moved) == ("running", None, 0)
    assert started.started_at == clock() - timedelta(seconds=5)
    assert finished.finished_at == clock()
    assert finished.started_at == started.started_at
    assert (finished.outcome, finished.records_moved, finished.batches, finished.rejected) == (
        "failed",
        10,
        2,
        1,
    )
    assert finished.error == "the destination said no"
    assert store.runs() == [finished]


def test_run_ids_are_unique(store: JobStore) -> None:
    store.start_run("run-1", P, T, "local")

    with pytest.raises(StoreError, match="already recorded"):
        store.start_run("run-1", "other", T, "local")
    assert [r.pipeline for r in store.runs()] == [P]


def test_a_run_finishes_once_and_only_after_it_started(store: JobStore) -> None:
    with pytest.raises(StoreError, match="no run"):
        store.finish_run("run-1", "succeeded", 0, 0, 0, None)
    store.start_run("run-1", P, T, "local")
    store.finish_run("run-1", "succeeded", 3, 1, 0, None)

    with pytest.raises(StoreError, match="already finished"):
        store.finish_run("run-1", "failed", 0, 0, 0, "again")
    assert store.runs()[0].outcome == "succeeded"


def test_an_abandoned_run_may_still_record_its_own_end(store: JobStore) -> None:
    # The next run marks a run it found still running "abandoned"; a paused worker that wakes
    # up afterwards still records how its run really ended.
    store.start_run("run-1", P, T, "local")
    store.finish_run("run-1", "abandoned", 0, 0, 0, "no end recorded")
    store.finish_run("run-1", "lease_lost", 2, 1, 0, "LeaseLost: taken over")
    [record] = store.runs()
    assert (record.outcome, record.records_moved, record.error) == (
        "lease_lost",
        2,
        "LeaseLost: taken over",
    )
    with pytest.raises(StoreError, match="already finished"):
        store.finish_run("run-1", "abandoned", 0, 0, 0, None)


@pytest.mark.parametrize("outcome", ["running", "ok", ""])
def test_a_run_finishes_with_a_final_outcome(store: JobStore, outcome: str) -> None:
    store.start_run("run-1", P, T, "local")

    with pytest.raises(InvalidStoreValue):
        store.finish_run("run-1", outcome, 0, 0, 0, None)
    assert store.runs()[0].outcome == "running"


def test_runs_are_listed_newest_first_and_filtered(store: JobStore, clock: Clock) -> None:
    store.start_run("r1", P, T, "local")
    store.start_run("r2", P, "globex", "local")  # same instant: start order decides
    clock.advance(1)
    store.start_run("r3", "invoices", T, "celery")

    assert [r.run_id for r in store.runs()] == ["r3", "r2", "r1"]
    assert [r.run_id for r in store.runs(pipeline=P)] == ["r2", "r1"]
    assert [r.run_id for r in store.runs(tenant=T)] == ["r3", "r1"]
    assert [r.run_id for r in store.runs(pipeline=P, tenant="globex")] == ["r2"]
    assert [r.run_id for r in store.runs(limit=2)] == ["r3", "r2"]
    assert store.runs(pipeline="none") == []


def test_status_lists_every_pipeline_with_a_run_or_a_checkpoint(
    store: JobStore, clock: Clock
) -> None:
    store.start_run("r1", P, T, "local")
    store.finish_run("r1", "succeeded", 3, 1, 0, None)
    clock.advance(1)
    latest = store.start_run("r2", P, T, "local")
    lease = store.acquire_lease(P, T, "worker-1", 30)
    checkpoint = store.commit_checkpoint(lease, {"cursor": 3}, 3)
    store.add_dead_letters(lease, "r2", [({"id": 1}, "no"), ({"id": 2}, "no")])
    only_checkpoint = store.commit_checkpoint(
        store.acquire_lease("invoices", T, "worker-1", 30), None, 0
    )
    only_run = store.start_run("r3", P, "globex", "local")
    store.acquire_lease("leased-only", T, "worker-1", 30)  # a lease alone is not a pipeline

    status = store.status()

    assert [(s.pipeline, s.tenant) for s in status] == [
        ("invoices", T),
        (P, T),
        (P, "globex"),
    ]
    invoices, orders, globex = status
    assert (invoices.last_run, invoices.checkpoint, invoices.dead_letters) == (
        None,
        only_checkpoint,
        0,
    )
    assert (orders.last_run, orders.checkpoint, orders.dead_letters) == (latest, checkpoint, 2)
    assert (globex.last_run, globex.checkpoint, globex.dead_letters) == (only_run, None, 0)


def test_an_empty_store_has_no_status(store: JobStore) -> None:
    assert store.status() == []
    assert store.runs() == []


# -- time -----------------------------------------------------------------------------------


def test_times_are_stored_as_utc_whatever_the_clock_zone(
    job_backend: Backend, clock: Clock
) -> None:
    plus_two = timezone(timedelta(hours=2))
    with job_backend.open(lambda: clock().astimezone(plus_two)) as store:
        run = store.start_run("r1", P, T, "local")
        lease = store.acquire_lease(P, T, "worker-1", 30)

    assert run.started_at == clock()
    assert run.started_at.tzinfo is UTC
    assert lease.expires_at.tzinfo is UTC


def test_a_naive_clock_is_refused_and_nothing_is_written(
    job_backend: Backend, clock: Clock
) -> None:
    naive = False

    def sometimes_naive() -> datetime:
        return clock().replace(tzinfo=None) if naive else clock()

    with job_backend.open(sometimes_naive) as store:
        naive = True
        with pytest.raises(StoreError, match="naive"):
            store.start_run("r1", P, T, "local")
        naive = False
        assert store.runs() == []


# -- lifetime and schema --------------------------------------------------------------------


def test_what_is_committed_survives_reopening(job_backend: Backend, clock: Clock) -> None:
    with job_backend.open(clock) as store:
        lease = store.acquire_lease(P, T, "worker-1", 30)
        committed = store.commit_checkpoint(lease, {"cursor": 7}, 7)
        run = store.start_run("r1", P, T, "local")

    with job_backend.open(clock) as store:
        assert store.checkpoint(P, T) == committed
        assert store.runs() == [run]
        with pytest.raises(LeaseHeld):
            store.acquire_lease(P, T, "worker-2", 30)
        assert store.commit_checkpoint(lease, {"cursor": 8}, 1).records == 8


def test_a_closed_store_refuses_calls(job_backend: Backend, clock: Clock) -> None:
    store = job_backend.open(clock)
    store.close()
    store.close()  # twice is fine

    with pytest.raises(StoreError, match="closed"):
        store.runs()


def test_a_newer_schema_is_refused_with_a_clear_error(job_backend: Backend, clock: Clock) -> None:
    with job_backend.open(clock) as store:
        lease = store.acquire_lease(P, T, "worker-1", 30)
        store.commit_checkpoint(lease, {"cursor": 1}, 1)
    job_backend.set_schema_version(999)

    with pytest.raises(StoreError, match=r"schema version 999.*upgrade integrations-jobs"):
        job_backend.open(clock)


def test_the_errors_are_in_the_library_tree() -> None:
    for error in (StoreError, InvalidStoreValue, LeaseLost, LeaseHeld):
        assert issubclass(error, JobsError)
        assert issubclass(error, IntegrationsError)
    assert issubclass(InvalidStoreValue, ValueError)
