"""Memory store connectors of the integrations framework.

Four connectors store tenant-scoped memories (text, tags, metadata) behind the one contract:

- ``memory.sqlite`` (`integrations.adapters.memory_adapters.sqlite`): the embedded default;
- ``memory.redis`` (`...memory_adapters.redis`, extra ``redis``);
- ``memory.postgres`` (`...memory_adapters.postgres`, extra ``postgres``);
- ``memory.knowledge_vault`` (`...memory_adapters.knowledge_vault`, extra ``knowledge-vault``).

The registry finds them through the `manifest.json` next to this file and imports a backend's
module only when that connector is used, so a backend's driver is needed only by the
deployments that use it. This module exports what all memory stores share.
"""

from ._backend import MemoryBackend, MemoryPage
from ._connector import MemoryStoreConfig, MemoryStoreConnector
from ._cursor import (
    decode_cursor,
    decode_sync_state,
    encode_cursor,
    encode_sync_state,
    sync_floor,
)
from ._memory import (
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MAX_TEXT_LENGTH,
    Memory,
    StoredMemory,
    WriteBatch,
    canonical_json,
    check_push,
    memory_problem,
    memory_record,
)
from ._query import FILTER_KEYS, MemoryFilter, MemoryQuery, json_equal, parse_query, text_words

__all__ = [
    "FILTER_KEYS",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "MAX_TEXT_LENGTH",
    "Memory",
    "MemoryBackend",
    "MemoryFilter",
    "MemoryPage",
    "MemoryQuery",
    "MemoryStoreConfig",
    "MemoryStoreConnector",
    "StoredMemory",
    "WriteBatch",
    "canonical_json",
    "check_push",
    "decode_cursor",
    "decode_sync_state",
    "encode_cursor",
    "encode_sync_state",
    "json_equal",
    "memory_problem",
    "memory_record",
    "parse_query",
    "sync_floor",
    "text_words",
]
