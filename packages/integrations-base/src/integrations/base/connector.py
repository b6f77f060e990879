"""The connector contract: protocol, base class, capabilities and the models they exchange.

Platform code imports from here (or from `integrations.base`) and never from an adapter.
"""

from ._connector import (
    LIFECYCLE_METHODS,
    OPERATION_METHODS,
    BaseConnector,
    Capability,
    Connector,
    check_connector_class,
    contract_problems,
)
from ._models import (
    AuthContext,
    AuthToken,
    Connection,
    ConnectorConfig,
    FetchQuery,
    FetchResult,
    JsonObject,
    PushPayload,
    PushResult,
    Record,
    Rejection,
    RevokeResult,
    SyncResult,
    SyncState,
)
from ._secret import Secret

__all__ = [
    "LIFECYCLE_METHODS",
    "OPERATION_METHODS",
    "AuthContext",
    "AuthToken",
    "BaseConnector",
    "Capability",
    "Connection",
    "Connector",
    "ConnectorConfig",
    "FetchQuery",
    "FetchResult",
    "JsonObject",
    "PushPayload",
    "PushResult",
    "Record",
    "Rejection",
    "RevokeResult",
    "Secret",
    "SyncResult",
    "SyncState",
    "check_connector_class",
    "contract_problems",
]
