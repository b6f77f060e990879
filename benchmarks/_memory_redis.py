"""The raw redis-py baseline the ``memory.redis`` connector is measured against.

`RawClient.push` writes what the connector's write script writes, into the same keys (the
key layout and the index's word and tag encodings are imported, so the two cannot drift),
as one redis-py pipeline per batch (``MULTI``/``EXEC``): per memory an ``HSET`` of its hash,
a ``ZADD`` to the changes and to the creation-ordered sets and an ``FT.ADD`` to the index,
then the counter. Being the only writer, it numbers the changes itself and compares nothing
with what is stored. It skips everything else the connector does: checking records,
governance, audit. Its text query is one ``FT.SEARCH`` returning the first ``limit``
memories' fields, decoded. `connector_config` is the connector's config for the same keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

import redis

from integrations.adapters.memory_adapters import canonical_json, text_words
from integrations.adapters.memory_adapters.redis._backend import search_expression
from integrations.adapters.memory_adapters.redis._scripts import (
    TenantKeys,
    index_name,
    index_words,
    tag_hashes,
)
from integrations.base import Record, format_utc

__all__ = ["RawClient", "connector_config"]


def connector_config(url: str, key_prefix: str) -> dict[str, object]:
    """The ``memory.redis`` config of the server at `url`, under `key_prefix`."""
    return {"url": url, "key_prefix": key_prefix}


class RawClient:
    """Direct redis-py writes and text queries on the connector's keys."""

    def __init__(self, url: str, key_prefix: str) -> None:
        self._client = redis.Redis.from_url(url, decode_responses=True)
        self._prefix = key_prefix
        self._index = index_name(key_prefix)

    def push(self, tenant: str, records: Sequence[Record]) -> None:
        """Write `records` as new memories in one pipeline, numbering them like the connector."""
        keys = TenantKeys.of(self._prefix, tenant)
        now = format_utc(datetime.now(UTC))
        last = int(self._client.get(keys.counter) or 0)
        pipeline = self._client.pipeline()
        for seq, record in enumerate(records, last + 1):
            key = keys.memory(record.id)
            text = str(record.data["text"])
            tags = cast("list[str]", record.data.get("tags", []))
            pipeline.hset(
                key,
                mapping={
                    "t": text,
                    "g": canonical_json(tags),
                    "x": canonical_json(record.data.get("metadata", {})),
                    "a": now,
                    "u": now,
                    "s": seq,
                    "c": seq,
                },
            )
            pipeline.zadd(keys.changes, {record.id: seq})
            pipeline.zadd(keys.created, {record.id: seq})
            pipeline.execute_command(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                "FT.ADD", self._index, key, 1, "NOSAVE", "REPLACE", "PAYLOAD", seq, "FIELDS",
                "w", index_words(text), "tn", keys.tag, "th", tag_hashes(tags),
            )  # fmt: skip
        pipeline.set(keys.counter, last + len(records))
        pipeline.execute()

    def text_query(self, tenant: str, text: str, limit: int) -> list[str]:
        """The best `limit` memories of `tenant` holding every word of `text`: one FT.SEARCH
        returning their text, tags, metadata and times, decoded; their ids."""
        keys = TenantKeys.of(self._prefix, tenant)
        expression = search_expression(keys.tag, (), text_words(text))
        reply = self._client.execute_command(  # type: ignore[no-untyped-call]  # untyped in redis-py
            "FT.SEARCH", self._index, expression, "RETURN", 5, "t", "g", "x", "a", "u",
            "LIMIT", 0, limit,
        )  # fmt: skip
        start = len(keys.memory_prefix)
        found = []
        for at in range(1, len(reply) - 1, 2):
            values = dict(zip(reply[at + 1][0::2], reply[at + 1][1::2], strict=True))
            tags, metadata = json.loads(values["g"]), json.loads(values["x"])
            found.append((str(reply[at])[start:], values["t"], tags, metadata, values["a"]))
        return [memory[0] for memory in found]

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()
