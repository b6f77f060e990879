"""`RedisBackend`: memories in Redis, written by Lua scripts, searched with RediSearch 1.x.

The data layout and the scripts are in `_scripts`. A push is one script call: Redis
runs a script alone, so the batch is atomic, its change numbers are handed out in commit
order, and readers (scripts as well) see all of a batch or none of it. Memories come back
from reads done as scripts, so a page is one consistent state too.

Newest-first pages walk the tenant's creation-ordered set with a keyset cursor on the
creation order; filters are evaluated by `MemoryFilter.matches` itself on the memories read,
a chunk at a time, and one page examines at most ``max_scan`` memories (a page may then hold
fewer memories than asked for, with a cursor to go on). Text queries are one ``FT.SEARCH``
with the tenant and the tags in the query, returning the memories' fields. RediSearch's
scores weigh words by their rarity in the whole index, so every write shifts them: a ranked
cursor therefore carries the memories the pagination returned (their creation order), and
each page is the best of the rest, which neither repeats nor skips a memory that stays.

Compaction is one script per tenant that removes old tombstones and raises the tenant's
horizon together; the changes script reads the horizon with the changes, so a sync sees a
compaction wholly or not at all (see `_scripts`).

Every redis-py exception is mapped in `redis_errors` alone.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

try:
    import redis
except ImportError as missing:  # pragma: no cover - the extra is installed in development
    raise ImportError(
        "the Redis memory store needs redis-py: pip install 'integrations-adapters-memory[redis]'"
    ) from missing
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from integrations.adapters.memory_adapters._backend import MemoryPage, check_horizon
from integrations.adapters.memory_adapters._cursor import (
    decode_cursor,
    encode_cursor,
    pack_numbers,
    unpack_numbers,
)
from integrations.adapters.memory_adapters._memory import StoredMemory, WriteBatch, memory_record
from integrations.adapters.memory_adapters._query import NO_FILTER, MemoryFilter, MemoryQuery
from integrations.base import (
    AuthError,
    ConfigError,
    ConnectionFailed,
    ConnectorError,
    InvalidRequest,
    JsonObject,
    NotSupported,
    Record,
    TransientError,
    format_utc,
)

from ._egress import pinned_connection_class
from ._scripts import (
    CHANGES_SCRIPT,
    COMPACT_SCRIPT,
    RECENT_SCRIPT,
    WRITE_SCRIPT,
    TenantKeys,
    compact_instant,
    index_name,
    index_words,
    tag_hashes,
)

__all__ = ["RedisBackend", "RedisSettings", "open_redis", "redis_errors", "search_expression"]

_RECENT: Final = "recent"
_RANKED: Final = "ranked"
_RECENT_KINDS: Final = frozenset({_RECENT})
_RANKED_KINDS: Final = frozenset({_RANKED})

_SEARCH_MODULES: Final = frozenset({"ft", "search"})
_SUPPORTED_SEARCH: Final = range(10000, 20000)
"""RediSearch versions whose ``FT.ADD`` the store indexes with: 1.x."""

_SCAN_CHUNK: Final = 500
"""Memories one read of a filtered newest-first page fetches at a time."""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """What the store needs of its config besides the URL."""

    key_prefix: str
    max_connections: int
    socket_timeout: float
    connect_timeout: float
    max_search_results: int
    max_scan: int


# -- error mapping --------------------------------------------------------------------------


@contextlib.contextmanager
def redis_errors(command: str = "a command", *, connecting: bool = False) -> Iterator[None]:
    """Map redis-py's exceptions into the library's errors, naming `command`, never its data.

    Refused credentials or permissions are `AuthError`. A server that cannot be reached is
    `ConnectionFailed` while connecting and `TransientError` afterwards (the session retries),
    as are a server still loading its data, a replica refusing writes during a failover and
    a busy cluster. A command the server refuses is a `ConnectorError` with the server's
    error code only, since its message may quote the command's arguments.
    """
    try:
        yield
    except RedisError as error:
        raise _mapped(error, command, connecting) from None


def _mapped(error: RedisError, command: str, connecting: bool) -> ConnectorError:
    if isinstance(error, (AuthenticationError, AuthorizationError, NoPermissionError)):
        return AuthError(f"Redis refused the credentials or permissions for {command}")
    if isinstance(error, (BusyLoadingError, ReadOnlyError, TryAgainError)):
        return TransientError(f"Redis cannot serve {command} now ({type(error).__name__})")
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
        reason = _reason(error)
        if connecting:
            return ConnectionFailed(f"cannot connect to Redis: {reason}")
        return TransientError(f"the connection to Redis failed during {command}: {reason}")
    if isinstance(error, OutOfMemoryError):
        return ConnectorError(f"Redis refused {command}: it is out of memory (maxmemory)")
    if isinstance(error, ResponseError):
        return ConnectorError(f"Redis refused {command}: {_error_code(error)}")
    return ConnectorError(f"Redis client error during {command}: {type(error).__name__}")


def _reason(error: RedisError) -> str:
    """The connection error's text: redis-py names the host and port, never the password."""
    return str(error) or type(error).__name__


def _error_code(error: ResponseError) -> str:
    """The error code a server reply starts with (ERR, WRONGTYPE ...), without the rest."""
    first = str(error).split(" ", 1)[0]
    return first if first.isupper() and first.isalpha() else "ERR"


# -- opening --------------------------------------------------------------------------------


def open_redis(
    url: str, settings: RedisSettings, addresses: Sequence[str] | None = None
) -> RedisBackend:
    """Connect to the server at `url`, find RediSearch and create the store's index in it.

    With `addresses` (the ones the egress guard checked for the URL's host), every
    connection of the pool goes to them instead of a lookup of the host name; TLS still
    verifies the host name.
    """
    pool = _pool(url, settings, addresses)
    client = redis.Redis(connection_pool=pool)
    try:
        with redis_errors("the connection checks", connecting=True):
            server = client.info("server")
            search = _search_version(client)
            if search in _SUPPORTED_SEARCH:
                _ensure_index(client, index_name(settings.key_prefix))
    except BaseException:
        pool.disconnect()
        raise
    return RedisBackend(client, pool, settings, str(server.get("redis_version", "")), search)


def _pool(
    url: str, settings: RedisSettings, addresses: Sequence[str] | None
) -> redis.ConnectionPool:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            "the Redis url must start with redis://, rediss:// or unix://",
            (("url", "not a redis://, rediss:// or unix:// URL"),),
        )
    pinned: dict[str, Any] = {}
    if addresses is not None:
        pinned = {
            "connection_class": pinned_connection_class(url),
            "pinned_addresses": tuple(addresses),
        }
    try:
        return redis.ConnectionPool.from_url(
            url,
            max_connections=settings.max_connections,
            socket_timeout=settings.socket_timeout,
            socket_connect_timeout=settings.connect_timeout,
            health_check_interval=30,
            decode_responses=True,
            **pinned,
        )
    except ValueError:  # its message may quote the URL, password included
        raise ConfigError(
            "the Redis url could not be parsed", (("url", "not a valid Redis URL"),)
        ) from None


def _search_version(client: redis.Redis) -> int | None:
    """The version of the RediSearch module the server runs, or None without it."""
    for module in _execute(client, "MODULE", "LIST"):
        if module.get("name") in _SEARCH_MODULES:
            return int(module.get("ver", 0))
    return None


def _ensure_index(client: redis.Redis, index: str) -> None:
    """Create the store's index unless it exists (two connectors may race: both succeed)."""
    try:
        _execute(client, "FT.INFO", index)
        return
    except ResponseError as error:
        if "unknown index" not in str(error).lower():
            raise
    schema = ("w", "TEXT", "tn", "TAG", "th", "TAG", "SEPARATOR", ",")
    try:
        _execute(
            client, "FT.CREATE", index, "NOFIELDS", "NOOFFSETS", "STOPWORDS", 0, "SCHEMA", *schema
        )
    except ResponseError as error:
        if "already exists" not in str(error).lower():
            raise


def _execute(client: redis.Redis, *args: str | int) -> Any:
    """Run a command redis-py has no typed method for (the module's, MODULE LIST)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]  # redis-py leaves it untyped


def search_expression(tenant_tag: str, tags: Sequence[str], words: Sequence[str]) -> str:
    """The RediSearch query for `words` among the tenant's memories carrying `tags`."""
    parts = [f"@tn:{{{tenant_tag}}}"]
    if tags:
        parts += [f"@th:{{{hashed}}}" for hashed in tag_hashes(tags).split(",")]
    parts += [_escaped(word) for word in words]
    return " ".join(parts)


def _escaped(word: str) -> str:
    """`word` with the query syntax's punctuation escaped (words hold only ``_`` of it)."""
    return "".join("\\" + ch if ch.isascii() and not ch.isalnum() else ch for ch in word)


# -- the backend ----------------------------------------------------------------------------


_FIELDS: Final = ("t", "g", "x", "a", "u", "c")
"""The hash fields a text search returns for each match (see `_scripts`): text, tags,
metadata, creation and update times, creation order."""
_FIELD_NAMES: Final = list(_FIELDS)
"""`_FIELDS` as a reply lists them (a list compares equal to a list only)."""

_Hit = tuple[float, int, str, Sequence[str]]
"""A match of a text search: its score and its creation order, both negated (sorting then
ranks best score first and, among equal scores, the newest memory first), its key and the
values of its `_FIELDS`, left undecoded until the match makes the page."""


class RedisBackend:
    """One connection pool to the Redis server of a memory store (see the module's docs)."""

    def __init__(
        self,
        client: redis.Redis,
        pool: redis.ConnectionPool,
        settings: RedisSettings,
        server_version: str,
        search_version: int | None,
    ) -> None:
        self._client = client
        self._pool = pool
        self._settings = settings
        self._server_version = server_version
        self._search_version = search_version
        searchable = search_version in _SUPPORTED_SEARCH
        self._index = index_name(settings.key_prefix) if searchable else None
        self._write = client.register_script(WRITE_SCRIPT)
        self._changes = client.register_script(CHANGES_SCRIPT)
        self._recent_script = client.register_script(RECENT_SCRIPT)
        self._compact = client.register_script(COMPACT_SCRIPT)

    def errors(self) -> contextlib.AbstractContextManager[None]:
        """Map what the client raises outside the named steps (see `redis_errors`)."""
        return redis_errors()

    def describe(self) -> JsonObject:
        """Where the store is and whether it can search text (never the credentials)."""
        kwargs = self._pool.connection_kwargs
        where: JsonObject = (
            {"path": str(kwargs["path"])}
            if "path" in kwargs
            else {"host": str(kwargs.get("host", "")), "port": int(kwargs.get("port", 6379))}
        )
        return {
            "backend": "redis",
            **where,
            "db": int(kwargs.get("db", 0)),
            "key_prefix": self._settings.key_prefix,
            "server_version": self._server_version,
            "text_search": _search_label(self._search_version),
        }

    def close(self) -> None:
        """Close every connection of the pool."""
        self._client.close()
        self._pool.disconnect()

    # -- writing -----------------------------------------------------------------------------

    def write(self, tenant: str, batch: WriteBatch, now: datetime) -> None:
        """Apply `batch` with one call of the write script (see `_scripts`)."""
        keys = TenantKeys.of(self._settings.key_prefix, tenant)
        indexed = self._index is not None
        script_keys = [keys.counter, keys.changes, keys.created, keys.tombstones]
        args: list[str | int] = [format_utc(now), self._index or "", keys.tag, len(batch.upserts)]
        for memory in batch.upserts:
            script_keys.append(keys.memory(memory.id))
            args += (
                memory.id,
                memory.text,
                memory.tags_json,
                memory.metadata_json,
                index_words(memory.text) if indexed else "",
                tag_hashes(memory.tags) if indexed else "",
            )
        for memory_id in batch.deletes:
            script_keys.append(keys.memory(memory_id))
            args.append(memory_id)
        with redis_errors("the write script"):
            self._write(keys=script_keys, args=args)

    # -- reading -----------------------------------------------------------------------------

    def changes(
        self, tenant: str, after: int, limit: int, floor: int = 0
    ) -> tuple[StoredMemory, ...]:
        """The tenant's changes numbered after `after`, read in one script call.

        The script reads the compaction horizon with the changes, so no compaction runs
        between the check and the read: `ResyncRequired` when a state that is not a full
        sync's start (`after` > 0) lies below the horizon, and so does the `floor` of the
        full sync it descends from.
        """
        keys = TenantKeys.of(self._settings.key_prefix, tenant)
        bound = max(after, floor) if after > 0 else 0
        with redis_errors("the changes script"):
            rows = self._changes(
                keys=[keys.changes, keys.horizon], args=[keys.memory_prefix, after, limit, bound]
            )
        check_horizon(after, floor, int(rows[0]))
        return tuple(memory for memory, _ in _hydrated(rows[1:]))

    def horizon(self, tenant: str) -> int:
        """The highest change number a compaction removed for `tenant` (0: none yet)."""
        keys = TenantKeys.of(self._settings.key_prefix, tenant)
        with redis_errors("reading the compaction horizon"):
            return int(self._client.get(keys.horizon) or 0)

    # -- compaction --------------------------------------------------------------------------

    def compact(self, older_than: datetime, tenant: str | None = None) -> int:
        """Remove tombstones deleted before `older_than`: one script call per tenant, which
        also raises the tenant's horizon (see `_scripts`); the number removed."""
        before = compact_instant(older_than)
        tenants = (
            [TenantKeys.of(self._settings.key_prefix, tenant)]
            if tenant is not None
            else self._tenants()
        )
        removed = 0
        for keys in tenants:
            with redis_errors("the compaction script"):
                removed += int(
                    self._compact(
                        keys=[keys.changes, keys.tombstones, keys.horizon],
                        args=[keys.memory_prefix, before],
                    )
                )
        return removed

    def _tenants(self) -> list[TenantKeys]:
        """Every tenant with memories under the key prefix (found by their change counters).

        SCAN walks the keyspace in steps without blocking the server; a tenant whose first
        memory is written during the walk has no tombstone old enough to compact anyway.
        """
        prefix = self._settings.key_prefix
        counter = re.compile(re.escape(prefix) + r":\{((?:[0-9a-f]{2})*)\}:seq")
        found: dict[str, TenantKeys] = {}
        with redis_errors("listing the tenants"):
            for key in self._client.scan_iter(match=f"{prefix}:{{*}}:seq", count=1000):
                matched = counter.fullmatch(key)
                if matched is not None:
                    found[matched[1]] = TenantKeys.of_tag(prefix, matched[1])
        return list(found.values())

    def query(self, tenant: str, query: MemoryQuery) -> MemoryPage:
        """One page: ranked by RediSearch with words, newest first without."""
        keys = TenantKeys.of(self._settings.key_prefix, tenant)
        if not query.words:
            return self._recent(keys, query)
        if self._index is None:
            raise NotSupported(_no_search_reason(self._search_version))
        return self._ranked(keys, query, self._index)

    def _recent(self, keys: TenantKeys, query: MemoryQuery) -> MemoryPage:
        """Newest first from the cursor's creation order on; a filtered page reads a chunk at
        a time and stops after ``max_scan`` memories, its cursor going on from there."""
        before: int | None = None
        if query.cursor is not None:
            position = decode_cursor(
                query.cursor, fingerprint=query.fingerprint, kinds=_RECENT_KINDS
            )
            before = _int_position(position[1], "before")
        if query.filter == NO_FILTER:
            chunk, budget = query.limit + 1, query.limit + 1
        else:
            chunk, budget = min(_SCAN_CHUNK, self._settings.max_scan), self._settings.max_scan
        found: list[tuple[StoredMemory, int]] = []
        scanned = 0
        while scanned < budget:
            count = min(chunk, budget - scanned)
            rows = self._newest(keys, before, count)
            read = _hydrated(rows)
            for memory, order in read:
                if query.filter.matches(memory):
                    found.append((memory, order))
                    if len(found) > query.limit:
                        return self._recent_page(found[:-1], query, found[-2][1])
            if len(rows) < 2 * count or not read:
                return self._recent_page(found, query, None)
            scanned += count
            before = read[-1][1]
        return self._recent_page(found, query, before)

    def _newest(self, keys: TenantKeys, before: int | None, count: int) -> list[str]:
        """The read script's reply for the `count` newest memories created before `before`."""
        bound = "+inf" if before is None else f"({before}"
        with redis_errors("the newest-first script"):
            rows: list[str] = self._recent_script(
                keys=[keys.created], args=[keys.memory_prefix, bound, count]
            )
        return rows

    @staticmethod
    def _recent_page(
        found: list[tuple[StoredMemory, int]], query: MemoryQuery, before: int | None
    ) -> MemoryPage:
        cursor = (
            None if before is None else encode_cursor(_RECENT, query.fingerprint, before=before)
        )
        return MemoryPage(tuple(memory.to_record() for memory, _ in found), cursor)

    def _ranked(self, keys: TenantKeys, query: MemoryQuery, index: str) -> MemoryPage:
        """The best matches the pagination has not returned yet (see the module's docs).

        Without metadata or time filters the search reads just the window that fills the
        page past those already returned, and the reply's match count says whether more
        follow (a match count above the window leaves more than a page unreturned, since at
        most ``len(returned)`` of the matches were returned before). With them, every match
        (up to ``max_search_results``) is read and filtered here.
        """
        returned: set[int] = set()
        if query.cursor is not None:
            position = decode_cursor(
                query.cursor, fingerprint=query.fingerprint, kinds=_RANKED_KINDS
            )[1]
            returned = set(unpack_numbers(position.get("returned")))
        limit, most = query.limit, self._settings.max_search_results
        unfiltered = query.filter == NO_FILTER
        filtered_here = not unfiltered and (bool(query.filter.metadata) or _times(query.filter))
        window = most if filtered_here else min(most, len(returned) + limit)
        expression = search_expression(keys.tag, query.filter.tags, query.words)
        with redis_errors("FT.SEARCH"):
            reply = _execute(
                self._client, "FT.SEARCH", index, expression, "WITHSCORES",
                "RETURN", len(_FIELDS), *_FIELDS, "LIMIT", 0, window,
            )  # fmt: skip
        hits = _hits(reply, returned)
        if not unfiltered:  # tags too: the index holds hashes of them, which may collide
            hits = [hit for hit in hits if _admitted(query.filter, hit[3])]
        hits.sort(key=_rank)
        page = hits[:limit]
        unread = not filtered_here and window < most and int(reply[0]) > window
        cursor = None
        if len(hits) > limit or unread:
            returned.update(-order for _, order, _, _ in page)
            cursor = encode_cursor(_RANKED, query.fingerprint, returned=pack_numbers(returned))
        start = len(keys.memory_prefix)
        return MemoryPage(tuple(_record(key[start:], values) for _, _, key, values in page), cursor)


# -- decoding -------------------------------------------------------------------------------


def _hydrated(rows: Sequence[str]) -> list[tuple[StoredMemory, int]]:
    """Memories and their creation order from a read script's reply (absent ones left out)."""
    memories: list[tuple[StoredMemory, int]] = []
    for index in range(0, len(rows) - 1, 2):
        fields = rows[index + 1].split("\x00")
        text, tags, metadata, created, updated, seq, deleted, order = fields
        if not updated or not seq:
            continue
        updated_at = datetime.fromisoformat(updated)
        if deleted:
            tombstone = StoredMemory(
                rows[index], "", (), {}, updated_at, updated_at, int(seq), deleted=True
            )
            memories.append((tombstone, 0))
            continue
        memory = StoredMemory(
            id=rows[index],
            text=text,
            tags=tuple(json.loads(tags)),
            metadata=json.loads(metadata),
            created_at=datetime.fromisoformat(created),
            updated_at=updated_at,
            seq=int(seq),
        )
        memories.append((memory, int(order)))
    return memories


def _hits(reply: Sequence[Any], returned: set[int]) -> list[_Hit]:
    """The live matches of an ``FT.SEARCH ... WITHSCORES RETURN <_FIELDS>`` reply, but for
    those created at the orders in `returned`."""
    hits: list[_Hit] = []
    for start in range(1, len(reply) - 2, 3):
        fields = reply[start + 2]
        in_order = fields and fields[0::2] == _FIELD_NAMES  # every field, as asked for
        values = fields[1::2] if in_order else _by_name(fields)
        if not values[5] or not values[3]:
            continue  # a hash deleted or emptied behind the store: the index outlives it
        order = int(values[5])
        if order not in returned:
            hits.append((-float(reply[start + 1]), -order, reply[start], values))
    return hits


def _admitted(memory_filter: MemoryFilter, values: Sequence[str]) -> bool:
    """Whether the match whose `_FIELDS` are `values` passes `memory_filter`."""
    _, tags, metadata, created, updated, _ = values
    return memory_filter.admits(
        _tags(tags or "[]"),
        json.loads(metadata or "{}"),
        datetime.fromisoformat(created),
        datetime.fromisoformat(updated),
    )


def _record(memory_id: str, values: Sequence[str]) -> Record:
    """The record of the match whose `_FIELDS` are `values`, its stored creation time kept
    (already in `format_utc`'s spelling but for times written before it)."""
    text, tags, metadata, created, updated, _ = values
    return memory_record(
        memory_id,
        text,
        _tags(tags or "[]"),
        json.loads(metadata or "{}"),
        created if created.endswith("Z") else _utc_text(created),
        datetime.fromisoformat(updated),
    )


@functools.lru_cache(maxsize=1024)
def _tags(stored: str) -> tuple[str, ...]:
    """Tags from their stored JSON. Memories share few tag lists, and a tuple cannot be
    changed by whoever receives it, so one decoding serves every memory carrying the list."""
    return tuple(json.loads(stored))


def _by_name(fields: Sequence[str] | None) -> list[str]:
    """The values of `_FIELDS` in a reply's name/value list, absent ones empty."""
    values = dict(zip(fields[0::2], fields[1::2], strict=True)) if fields else {}
    return [values.get(name, "") for name in _FIELDS]


def _rank(hit: _Hit) -> tuple[float, int]:
    """Best score first; among equal scores, the newest memory first."""
    return hit[0], hit[1]


def _utc_text(stored: str) -> str:
    """A stored time in the spelling records use (times written before it were ``+00:00``)."""
    return format_utc(datetime.fromisoformat(stored))


def _times(memory_filter: MemoryFilter) -> bool:
    return any(
        moment is not None
        for moment in (
            memory_filter.created_after,
            memory_filter.created_before,
            memory_filter.updated_after,
            memory_filter.updated_before,
        )
    )


def _int_position(position: dict[str, Any], name: str) -> int:
    value = position.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidRequest("the cursor was not issued by this memory store")
    return value


def _search_label(version: int | None) -> str | None:
    if version is None:
        return None
    return f"RediSearch {version // 10000}.{version // 100 % 100}.{version % 100}"


def _no_search_reason(version: int | None) -> str:
    if version is None:
        return (
            "text search in the Redis memory store needs the RediSearch module (1.x) loaded "
            "in the Redis server; fetch without text works without it"
        )
    return (
        f"text search in the Redis memory store needs RediSearch 1.x, and the server runs "
        f"{_search_label(version)}; fetch without text works without it"
    )
