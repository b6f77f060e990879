"""A tenant can neither read nor write another tenant's memories, on every memory store.

Hypothesis draws random interleavings of two tenants' operations (upserts, deletions,
fetches and syncs, with ids the tenants share and tenant names full of the characters key
schemes trip over) and runs them through two governed sessions on one real store. After
every step each tenant must see exactly what a model of its own operations predicts, so a
write that leaked across tenants, or a read that did, fails the property.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.base import AuthContext, FetchQuery, PushPayload, Record, SyncState, registry
from integrations.base.lifecycle import Session

StoreConfig = Callable[[], dict[str, Any]]

IDS = ["m1", "m2", "m3", "shared"]
TENANT_CHARACTERS = st.characters(
    codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x00"
)


@dataclass(frozen=True)
class Upsert:
    tenant: int
    id: str
    text: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Delete:
    tenant: int
    id: str


@dataclass(frozen=True)
class Check:
    tenant: int


Operation = Upsert | Delete | Check

OPERATIONS = st.one_of(
    st.builds(
        Upsert,
        tenant=st.integers(0, 1),
        id=st.sampled_from(IDS),
        text=st.sampled_from(["alpha note", "beta note", "gamma reminder"]),
        tags=st.sampled_from([(), ("work",), ("home", "work")]),
    ),
    st.builds(Delete, tenant=st.integers(0, 1), id=st.sampled_from(IDS)),
    st.builds(Check, tenant=st.integers(0, 1)),
)


@dataclass
class TenantModel:
    """What one tenant's own operations predict: live memories and every id ever changed."""

    live: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)


@pytest.fixture(params=["memory.sqlite", "memory.redis", "memory.postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, StoreConfig]:
    """A registry name and a factory of configs for one fresh store of that backend."""
    name: str = request.param
    suffix = uuid.uuid4().hex[:12]
    if name == "memory.sqlite":
        path = str(tmp_path / "isolation.sqlite3")
        return name, lambda: {"path": path}
    if name == "memory.redis":
        url = request.getfixturevalue("redis_url")
        return name, lambda: {"url": url, "key_prefix": f"isolation:{suffix}"}
    dsn = request.getfixturevalue("postgres_dsn")
    return name, lambda: {"dsn": dsn, "schema_name": f"isolation_{suffix}"}


@contextmanager
def _sessions(name: str, config: dict[str, Any], tenants: list[str]) -> Iterator[list[Session]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                registry.open(
                    name, config=config, context=AuthContext(tenant=tenant, actor="property")
                )
            )
            for tenant in tenants
        ]


def _fetch_everything(session: Session) -> dict[str, Record]:
    found: dict[str, Record] = {}
    cursor: str | None = None
    for _ in range(100):
        page = session.fetch(FetchQuery(limit=2, cursor=cursor))
        for record in page.records:
            assert record.id not in found, f"{record.id} returned twice while paging"
            found[record.id] = record
        cursor = page.next_cursor
        if cursor is None:
            return found
    raise AssertionError("paging did not end after 100 pages")


def _sync_everything(session: Session) -> dict[str, Record]:
    latest: dict[str, Record] = {}
    state = SyncState()
    for _ in range(100):
        result = session.sync(state)
        latest.update((change.id, change) for change in result.changes)
        state = result.state
        if not result.has_more:
            return latest
    raise AssertionError("sync still had more after 100 calls")


def _strings(value: object) -> list[str]:
    assert isinstance(value, list)
    return [str(item) for item in value]


def _check(session: Session, model: TenantModel, tenant: str) -> None:
    fetched = _fetch_everything(session)
    assert {
        record_id: (record.data["text"], tuple(_strings(record.data["tags"])))
        for record_id, record in fetched.items()
    } == model.live, f"tenant {tenant!r} sees memories it did not write, or misses its own"
    synced = _sync_everything(session)
    assert {i for i, r in synced.items() if not r.deleted} == set(model.live)
    assert {i for i, r in synced.items() if r.deleted} == model.deleted - set(model.live)
    found = session.fetch(FetchQuery(text="note", limit=50)).records
    expected = {i for i, (text, _) in model.live.items() if "note" in text}
    assert {record.id for record in found} == expected, "text search crossed tenants"


def _apply(session: Session, model: TenantModel, operation: Operation) -> None:
    if isinstance(operation, Upsert):
        record = Record(
            id=operation.id,
            data={"text": operation.text, "tags": list(operation.tags), "metadata": {}},
        )
        assert session.push(PushPayload(records=(record,))).accepted == (operation.id,)
        model.live[operation.id] = (operation.text, operation.tags)
    elif isinstance(operation, Delete):
        tombstone = Record(id=operation.id, deleted=True)
        assert session.push(PushPayload(records=(tombstone,))).accepted == (operation.id,)
        if model.live.pop(operation.id, None) is not None:
            model.deleted.add(operation.id)


@given(
    operations=st.lists(OPERATIONS, min_size=1, max_size=14),
    names=st.lists(st.text(TENANT_CHARACTERS, min_size=1, max_size=6), min_size=2, max_size=2),
)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_tenants_never_see_or_change_each_others_memories(
    store: tuple[str, StoreConfig], operations: list[Operation], names: list[str]
) -> None:
    name, config = store
    # Fresh tenants per example; the second name extends the first so prefix schemes collide.
    run = uuid.uuid4().hex[:8]
    tenants = [f"{names[0]}:{run}", f"{names[0]}:{run}:{names[1]}"]
    models = [TenantModel(), TenantModel()]
    with _sessions(name, config(), tenants) as sessions:
        for operation in operations:
            session, model = sessions[operation.tenant], models[operation.tenant]
            _apply(session, model, operation)
            if isinstance(operation, Check):
                _check(session, model, tenants[operation.tenant])
        for index in (0, 1):
            _check(sessions[index], models[index], tenants[index])
