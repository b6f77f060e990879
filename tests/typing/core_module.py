"""A sample core module: platform code using the public API exactly as the platform would.

mypy --strict checks this file in the `type` tox env. It proves that the names platform code
relies on are exported by `integrations.base` and `integrations.mocks`, carry real types, and
compose without casts: a function typed against `Connector[Any]` accepts the mock connector,
and every model goes in and comes out typed. Extend it with each adapter package as its
connectors land.

Run as a script, it drives the mock connector through the whole lifecycle.
"""

from __future__ import annotations

from typing import Any

from integrations.base import (
    CONTRACT_VERSION,
    AuthContext,
    AuthToken,
    Capability,
    ConfigError,
    Connection,
    Connector,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    IntegrationsError,
    NotSupported,
    PushPayload,
    PushResult,
    Record,
    RevokeResult,
    SyncResult,
    SyncState,
)
from integrations.mocks import MockConfig, MockConnector


def fetch_all(connector: Connector[Any], query: FetchQuery) -> list[Record]:
    """Every record matching `query`, following cursors page by page."""
    if Capability.FETCH not in connector.capabilities:
        raise NotSupported(f"{type(connector).__name__} cannot fetch")
    records: list[Record] = []
    cursor: str | None = None
    while True:
        page: FetchResult = connector.fetch(query.model_copy(update={"cursor": cursor}))
        records.extend(page.records)
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor


def run_session(
    connector: Connector[Any],
    config: ConnectorConfig,
    context: AuthContext,
    records: tuple[Record, ...],
) -> tuple[PushResult, list[Record], SyncResult, RevokeResult]:
    """Authenticate, connect, push, fetch, sync and revoke: one governed session."""
    token: AuthToken = connector.auth(context)
    connection: Connection = connector.connect(config)
    assert connection.connection_id
    pushed = connector.push(PushPayload(records=records, idempotency_key="core-module-1"))
    fetched = fetch_all(connector, FetchQuery(limit=2))
    synced = connector.sync(SyncState())
    revoked = connector.revoke(token)
    return pushed, fetched, synced, revoked


def mock_config(data: dict[str, Any]) -> MockConfig:
    """The mock's config from untrusted input: bad input raises the typed `ConfigError`."""
    try:
        return MockConfig.from_mapping(data)
    except ConfigError as error:
        raise IntegrationsError(f"cannot configure the mock connector: {error}") from error


def main() -> None:
    """Drive the mock connector through a full session and print what each step returned."""
    connector = MockConnector()
    config = mock_config({"store": "core-module"})
    context = AuthContext(tenant="acme", actor="core-module", scopes=frozenset({"read"}))
    records = tuple(Record(id=f"r{n}", data={"n": n}) for n in range(3))
    pushed, fetched, synced, revoked = run_session(connector, config, context, records)
    print(f"contract {CONTRACT_VERSION}")
    print(f"pushed {len(pushed.accepted)}, fetched {len(fetched)}, synced {synced.upserted}")
    print(f"revoked: {revoked.revoked}")


if __name__ == "__main__":
    main()
