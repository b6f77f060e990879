"""The Redis memory store's data layout and the Lua scripts that write and read it.

Every key of a tenant starts with ``<key_prefix>:{<tenant in hex>}:``. The tenant is
hex-encoded, so no tenant name can spell another tenant's keys (or a key separator), and the
braces make it the cluster hash tag: all of a tenant's keys live in one slot, as a script
touching them needs. Per tenant:

- ``…:seq``: the last change number handed out (a string holding an integer);
- ``…:changes``: a sorted set of memory ids scored by the number of their latest change;
- ``…:created``: a sorted set of the live memories' ids scored by their creation order (the
  change number that created them), read newest first;
- ``…:m:<id>``: one hash per memory: ``t`` text, ``g`` tags (JSON), ``x`` metadata
  (canonical JSON), ``a`` created at, ``u`` updated at (RFC 3339 in UTC as `format_utc`
  spells it; earlier versions wrote ``+00:00`` for ``Z``), ``s`` latest change number, ``c``
  creation order; a tombstone keeps only ``u``, ``s`` and ``d`` (= ``1``);
- ``…:tombstones``: a sorted set of the deleted memories' ids scored by their deletion's
  change number, what compaction walks instead of every memory;
- ``…:horizon``: the highest change number a compaction removed (an integer string). It
  exists once the tenant was first compacted, and from then on ``…:tombstones`` holds every
  tombstone: the first compaction adds those written before the set existed.

With RediSearch, each live memory is also a document of the index ``<key_prefix>:idx``
(document id = its hash key), indexed without storing a copy (``NOSAVE``): ``w`` holds the
memory's words as `index_words` spells them, ``tn`` the tenant (hex), ``th`` the tags (each a
short hash, so any tag is a plain token of the tag field); a search returns the hash fields
of its matches.

Writes are one script per batch, so a batch is atomic and its change numbers are handed out
in commit order; reads that hydrate memories run as scripts too, so what they return is one
consistent state.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "CHANGES_SCRIPT",
    "COMPACT_SCRIPT",
    "RECENT_SCRIPT",
    "WRITE_SCRIPT",
    "TenantKeys",
    "compact_instant",
    "index_name",
    "index_words",
    "tag_hashes",
]

_WORD: Final = re.compile(r"\w+")


def index_name(key_prefix: str) -> str:
    """The RediSearch index of the stores under `key_prefix`."""
    return f"{key_prefix}:idx"


@dataclass(frozen=True, slots=True)
class TenantKeys:
    """The keys of one tenant's memories under a key prefix (see the module's documentation)."""

    tag: str
    """The tenant as every key and the index spell it: its UTF-8 bytes in hex."""
    base: str

    @classmethod
    def of(cls, key_prefix: str, tenant: str) -> TenantKeys:
        return cls.of_tag(key_prefix, tenant.encode().hex())

    @classmethod
    def of_tag(cls, key_prefix: str, tag: str) -> TenantKeys:
        """The keys of the tenant whose hex-encoded name is `tag`."""
        return cls(tag=tag, base=f"{key_prefix}:{{{tag}}}:")

    @property
    def counter(self) -> str:
        return self.base + "seq"

    @property
    def changes(self) -> str:
        return self.base + "changes"

    @property
    def created(self) -> str:
        return self.base + "created"

    @property
    def tombstones(self) -> str:
        return self.base + "tombstones"

    @property
    def horizon(self) -> str:
        return self.base + "horizon"

    @property
    def memory_prefix(self) -> str:
        return self.base + "m:"

    def memory(self, memory_id: str) -> str:
        return self.base + "m:" + memory_id


def index_words(text: str) -> str:
    """The words of `text` as the index holds them: lower-cased, space-separated, repeats kept.

    These are the words `text_words` finds in a query, so RediSearch's tokeniser (which
    splits on fewer characters, and lower-cases ASCII only) sees the same words on both sides.
    """
    return " ".join(_WORD.findall(text)).lower()


def tag_hashes(tags: Iterable[str]) -> str:
    """The tags as the index's tag field holds them: a comma-separated list of short hashes."""
    return ",".join(hashlib.blake2b(tag.encode(), digest_size=8).hexdigest() for tag in tags)


WRITE_SCRIPT: Final = """#!lua
-- One batch of one tenant, atomically. KEYS: 1 change counter, 2 changes zset, 3 created
-- zset, 4 tombstones zset, then the hash of each upserted memory, then the hash of each
-- deleted one.
-- ARGV: 1 now, 2 index ('' without RediSearch), 3 tenant tag, 4 number of upserts, then six
-- values per upsert (id, text, tags, metadata, words, tag hashes), then one id per deletion.
-- Returns how many change numbers the batch took.
local now, index, tenant = ARGV[1], ARGV[2], ARGV[3]
local upserts = tonumber(ARGV[4])
local first = tonumber(redis.call('GET', KEYS[1]) or '0')
local seq = first
local arg = 5
for i = 1, upserts do
  local key = KEYS[4 + i]
  local id, text, tags, meta = ARGV[arg], ARGV[arg + 1], ARGV[arg + 2], ARGV[arg + 3]
  local old = redis.call('HMGET', key, 't', 'g', 'x', 'd', 'c', 'a')
  if old[4] or old[1] ~= text or old[2] ~= tags or old[3] ~= meta then
    seq = seq + 1
    local number = string.format('%d', seq)
    local created, created_at = old[5], old[6]
    if old[4] or not old[1] then
      created, created_at = number, now
      if old[4] then
        redis.call('HDEL', key, 'd')
        redis.call('ZREM', KEYS[4], id)
      end
      redis.call('ZADD', KEYS[3], created, id)
    end
    redis.call('HSET', key, 't', text, 'g', tags, 'x', meta, 'a', created_at, 'u', now,
      's', number, 'c', created)
    redis.call('ZADD', KEYS[2], number, id)
    if index ~= '' then
      redis.call('FT.ADD', index, key, 1, 'NOSAVE', 'REPLACE', 'PAYLOAD', created, 'FIELDS',
        'w', ARGV[arg + 4], 'tn', tenant, 'th', ARGV[arg + 5])
    end
  end
  arg = arg + 6
end
for i = 4 + upserts + 1, #KEYS do
  local key, id = KEYS[i], ARGV[arg]
  arg = arg + 1
  if redis.call('HEXISTS', key, 't') == 1 then
    seq = seq + 1
    local number = string.format('%d', seq)
    if index ~= '' then redis.call('FT.DEL', index, key) end
    redis.call('DEL', key)
    redis.call('HSET', key, 'u', now, 's', number, 'd', '1')
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZADD', KEYS[2], number, id)
    redis.call('ZADD', KEYS[4], number, id)
  end
end
if seq ~= first then redis.call('SET', KEYS[1], string.format('%d', seq)) end
return seq - first
"""

_HYDRATE: Final = """
-- Each memory as its id and its fields joined by NUL (no field holds one; absent is empty).
local function hydrate(prefix, ids)
  local out = {}
  for i, id in ipairs(ids) do
    local fields = redis.call('HMGET', prefix .. id, 't', 'g', 'x', 'a', 'u', 's', 'd', 'c')
    for j = 1, 8 do fields[j] = fields[j] or '' end
    out[2 * i - 1] = id
    out[2 * i] = table.concat(fields, '\\0')
  end
  return out
end
"""

CHANGES_SCRIPT: Final = (
    "#!lua flags=no-writes\n"
    "-- KEYS: 1 changes zset, 2 horizon. ARGV: 1 memory key prefix, 2 after this number,\n"
    "-- 3 count, 4 refused below this number (0: never). Returns the horizon, then the\n"
    "-- memories, none when the horizon is above both the start and the refusal bound.\n"
    + _HYDRATE
    + "local horizon, bound = tonumber(redis.call('GET', KEYS[2]) or '0'), tonumber(ARGV[4])\n"
    "if bound > 0 and bound < horizon then return {horizon} end\n"
    "local out = hydrate(ARGV[1], redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '+inf',"
    " 'LIMIT', 0, ARGV[3]))\n"
    "table.insert(out, 1, horizon)\n"
    "return out\n"
)
"""The memories changed after a number, in number order, and the compaction horizon they
were read under, as one consistent read (a compaction cannot run between the two)."""

RECENT_SCRIPT: Final = (
    "#!lua flags=no-writes\n"
    "-- KEYS: 1 created zset. ARGV: 1 memory key prefix, 2 upper bound, 3 count.\n"
    + _HYDRATE
    + "return hydrate(ARGV[1], redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '-inf',"
    " 'LIMIT', 0, ARGV[3]))\n"
)
"""The live memories created before a bound, newest first, as one consistent read."""

COMPACT_SCRIPT: Final = """#!lua
-- Removes one tenant's tombstones deleted before a time, atomically. KEYS: 1 changes zset,
-- 2 tombstones zset, 3 horizon. ARGV: 1 memory key prefix, 2 the time, as `compact_instant`
-- spells it. Returns how many tombstones it removed.
local prefix, before = ARGV[1], ARGV[2]
-- A time as stored (RFC 3339 in UTC, ending in Z or +00:00, with or without a fraction), in
-- the spelling whose string order is time order: seconds, then six digits of fraction.
local function instant(text)
  local fraction = string.match(text, '^[^.Z+]*%.(%d+)') or ''
  return string.sub(text, 1, 19) .. '.' .. string.sub(fraction .. '000000', 1, 6)
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  -- The first compaction: index the tombstones written before the set existed.
  local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  for i = 1, #all, 2 do
    if redis.call('HEXISTS', prefix .. all[i], 'd') == 1 then
      redis.call('ZADD', KEYS[2], all[i + 1], all[i])
    end
  end
end
local horizon = tonumber(redis.call('GET', KEYS[3]) or '0')
local removed = 0
local tombstones = redis.call('ZRANGE', KEYS[2], 0, -1)
for _, id in ipairs(tombstones) do
  local key = prefix .. id
  local fields = redis.call('HMGET', key, 'd', 'u', 's')
  if not fields[1] then
    redis.call('ZREM', KEYS[2], id)  -- not a tombstone any more (written by an older version)
  elseif fields[2] and instant(fields[2]) < before then
    redis.call('DEL', key)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    horizon = math.max(horizon, tonumber(fields[3]))
    removed = removed + 1
  end
end
redis.call('SET', KEYS[3], string.format('%d', horizon))
return removed
"""


def compact_instant(moment: datetime) -> str:
    """`moment` as the compaction script compares times: UTC, seconds and six fraction digits."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
