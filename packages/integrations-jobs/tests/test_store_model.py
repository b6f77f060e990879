"""Property tests on both stores.

Leases against a model: hypothesis drives random sequences of acquire, renew, release, commit
and clock moves by a few holders, and every answer must be the one a simple model of the
lease predicts. This finds the orderings a hand-written test does not think of (re-acquiring
after a release, renewing at the exact expiry, ...).

Any JSON state round-trips exactly, or is refused whole, the same way by both stores.

Each example uses a pipeline name of its own on the test's store, so examples do not see
each other's leases without a store being opened per example.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.jobs._exceptions import InvalidStoreValue, LeaseHeld, LeaseLost
from integrations.jobs._records import Lease
from integrations.jobs._store import JobStore

pytestmark = pytest.mark.timeout(300)

HOLDERS = ("a", "b", "c")
T = "acme"


class Clock(Protocol):
    def __call__(self) -> datetime: ...

    def advance(self, seconds: float) -> datetime: ...


@dataclass
class Model:
    """What the store should hold: the current lease (None: free) and the last token."""

    holder: str | None = None
    expires_at: datetime | None = None
    token: int = 0
    leases: dict[str, Lease] = field(default_factory=dict)  # each holder's latest lease
    records: int = 0

    def live(self, lease: Lease, now: datetime) -> bool:
        """Whether `lease` is the current, unexpired lease."""
        return (
            lease.token == self.token
            and self.holder == lease.holder
            and self.expires_at is not None
            and now < self.expires_at
        )


_operations = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.sampled_from(HOLDERS), st.integers(1, 20)),
        st.tuples(st.just("renew"), st.sampled_from(HOLDERS), st.integers(1, 20)),
        st.tuples(st.just("release"), st.sampled_from(HOLDERS), st.just(0)),
        st.tuples(st.just("commit"), st.sampled_from(HOLDERS), st.integers(0, 3)),
        st.tuples(st.just("advance"), st.just(""), st.integers(0, 25)),
    ),
    max_size=25,
)

_examples = itertools.count()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=_operations)
def test_leases_behave_like_the_model(
    store: JobStore, clock: Clock, operations: list[tuple[str, str, int]]
) -> None:
    pipeline = f"model-{next(_examples)}"
    model = Model()
    for action, holder, amount in operations:
        _STEPS[action](store, clock, model, pipeline, holder, amount)


def _acquire(
    store: JobStore, clock: Clock, model: Model, pipeline: str, holder: str, ttl: int
) -> None:
    now = clock()
    free = model.holder in (None, holder) or (
        model.expires_at is not None and now >= model.expires_at
    )
    if not free:
        with pytest.raises(LeaseHeld):
            store.acquire_lease(pipeline, T, holder, ttl)
        return
    lease = store.acquire_lease(pipeline, T, holder, ttl)
    assert lease.token == model.token + 1
    assert lease.expires_at == now + timedelta(seconds=ttl)
    model.holder, model.expires_at, model.token = holder, lease.expires_at, lease.token
    model.leases[holder] = lease


def _renew(
    store: JobStore, clock: Clock, model: Model, pipeline: str, holder: str, ttl: int
) -> None:
    lease = model.leases.get(holder)
    if lease is None:
        return
    if not model.live(lease, clock()):
        with pytest.raises(LeaseLost):
            store.renew_lease(lease, ttl)
        return
    renewed = store.renew_lease(lease, ttl)
    assert renewed.token == lease.token
    model.expires_at = renewed.expires_at
    model.leases[holder] = renewed


def _release(
    store: JobStore, clock: Clock, model: Model, pipeline: str, holder: str, _: int
) -> None:
    lease = model.leases.get(holder)
    if lease is None:
        return
    store.release_lease(lease)
    if lease.token == model.token and model.holder == holder:
        model.holder = model.expires_at = None


def _commit(
    store: JobStore, clock: Clock, model: Model, pipeline: str, holder: str, added: int
) -> None:
    lease = model.leases.get(holder)
    if lease is None:
        return
    before = store.checkpoint(pipeline, T)
    if not model.live(lease, clock()):
        with pytest.raises(LeaseLost):
            store.commit_checkpoint(lease, {"by": holder}, added)
        assert store.checkpoint(pipeline, T) == before
        return
    checkpoint = store.commit_checkpoint(lease, {"by": holder}, added)
    model.records += added
    assert (checkpoint.token, checkpoint.records) == (lease.token, model.records)


def _advance(
    store: JobStore, clock: Clock, model: Model, pipeline: str, holder: str, seconds: int
) -> None:
    clock.advance(seconds)


_STEPS: dict[str, Callable[[JobStore, Clock, Model, str, str, int], None]] = {
    "acquire": _acquire,
    "renew": _renew,
    "release": _release,
    "commit": _commit,
    "advance": _advance,
}


# -- JSON round trips -----------------------------------------------------------------------

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(state=st.dictionaries(st.text(max_size=8), _json, max_size=5))
def test_any_json_state_comes_back_exactly_or_is_refused_whole(
    store: JobStore, state: dict[str, object]
) -> None:
    """Both stores give back exactly the JSON they were given (floats, big integers, any
    text), and refuse the same things (NUL, which jsonb cannot hold) without writing."""
    pipeline = f"json-{next(_examples)}"
    lease = store.acquire_lease(pipeline, T, "w", 30)
    if _has_nul(state):
        with pytest.raises(InvalidStoreValue):
            store.commit_checkpoint(lease, state, 1)
        assert store.checkpoint(pipeline, T) is None
        return
    committed = store.commit_checkpoint(lease, state, 1)
    assert committed.state == state
    assert store.checkpoint(pipeline, T) == committed
    store.add_dead_letters(lease, "run", [(state, "kept")])
    assert [letter.record for letter in store.dead_letters(pipeline, T)] == [state]
