"""The event log: every event is appended to a stream of its broadcast and published on its
channel in one atomic script, so subscribers and the replay history always agree.

Wire form of an event (also what viewers receive, byte for byte):

    {"seq":"1700000000000-0","type":"card.pinned","data":{...},"ts":1700000000000}

A broadcast has two capped streams: public events (`keys.events`, `event_history` entries) and
host-only events (`keys.host_events`, `host_event_history` entries), so that a burst of
host-only events (applications) never shortens the viewers' history. `seq` is the entry id.
Host consoles see both streams, so both draw their ids from one sequence per broadcast
(`keys.event_last`, see `APPEND_LUA`): no two events of a broadcast share a seq, and seqs
increase in publish order across both audiences. Ids come from the Redis clock and never
repeat or go down, even after a restart that lost the last second of the append-only file,
so a client that keeps the highest seq it has seen can always ask for "everything after".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from jobcast.core import keys
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

Audience = Literal["p", "h"]
PUBLIC: Audience = "p"
HOST: Audience = "h"

# The one definition of how an event is appended and published. Every script that publishes
# starts with this text and calls `jc_publish`; its KEYS come from `publish_keys`.
#
# The id is the broadcast's last id moved forward: `now-0` when the clock (ms) has passed it,
# else the same ms with N + 1, the rule Redis uses for `*` ids but over both streams. When the
# last-id key is missing (data written before it existed) it starts from the streams' own
# last ids. The stream of a broadcast written by an older version may hold an id above the
# key; then the XADD is refused and the id is drawn again above that stream's last id.
# `body` is the event JSON without `seq` and without its opening brace.
APPEND_LUA = """
local function jc_parse_id(s)
  local ms, n = string.match(s or '', '^(%d+)-(%d+)$')
  if not ms then return -1, 0 end
  return tonumber(ms), tonumber(n)
end
local function jc_stream_last(stream)
  local info = redis.pcall('XINFO', 'STREAM', stream)
  if type(info) ~= 'table' or info['err'] then return -1, 0 end
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then return jc_parse_id(info[i + 1]) end
  end
  return -1, 0
end
local function jc_next_id(ms, n)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if now > ms then return now, 0 end
  return ms, n + 1
end
local function jc_publish(stream, other, last_key, channel, maxlen, audience, body)
  local ms, n = -1, 0
  local last = redis.call('GET', last_key)
  if last then
    ms, n = jc_parse_id(last)
  else
    ms, n = jc_stream_last(stream)
    local oms, on = jc_stream_last(other)
    if oms > ms or (oms == ms and on > n) then ms, n = oms, on end
  end
  ms, n = jc_next_id(ms, n)
  local id = string.format('%d-%d', ms, n)
  local added = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, id, 'a', audience, 'b', body)
  if type(added) == 'table' and added['err'] then
    local sms, sn = jc_stream_last(stream)
    if sms > ms or (sms == ms and sn >= n) then ms, n = sms, sn end
    ms, n = jc_next_id(ms, n)
    id = string.format('%d-%d', ms, n)
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, id, 'a', audience, 'b', body)
  end
  redis.call('SET', last_key, id)
  redis.call('PUBLISH', channel, '{"seq":"' .. id .. '",' .. body)
  return id
end
"""

# KEYS: publish_keys(bid, audience). ARGV: 1 maxlen, 2 audience, 3 body.
PUBLISH_LUA = APPEND_LUA + "return jc_publish(KEYS[1], KEYS[2], KEYS[3], KEYS[4], unpack(ARGV))\n"


def stream_of(bid: str, audience: Audience | str) -> str:
    """The stream an event of `audience` is appended to."""
    return keys.host_events(bid) if audience == HOST else keys.events(bid)


def publish_keys(bid: str, audience: Audience | str) -> list[str]:
    """The keys `jc_publish` takes, in its order: the audience's stream, the other stream, the
    broadcast's last-id key, the audience's channel."""
    other = PUBLIC if audience == HOST else HOST
    return [
        stream_of(bid, audience),
        stream_of(bid, other),
        keys.event_last(bid),
        keys.channel(bid, audience),
    ]


def encode_body(type_: str, data: dict[str, Any]) -> bytes:
    """The event JSON without `seq` and without its opening brace."""
    return orjson.dumps({"type": type_, "data": data, "ts": int(time.time() * 1000)})[1:]


def wire(seq: bytes | str, body: bytes) -> bytes:
    if isinstance(seq, str):
        seq = seq.encode()
    return b'{"seq":"' + seq + b'",' + body


def parse_seq(seq: str | bytes) -> tuple[int, int]:
    """'1700000000000-3' -> (1700000000000, 3). Raises ValueError on anything else."""
    if isinstance(seq, bytes):
        seq = seq.decode("ascii")
    ms, _, n = seq.partition("-")
    if not ms.isdigit() or not n.isdigit() or len(seq) > 41:
        raise ValueError(f"bad seq {seq!r}")
    return int(ms), int(n)


def seq_of(raw: bytes) -> tuple[int, int] | None:
    """The seq of a wire event, read without decoding the JSON (None for seq-less frames)."""
    if not raw.startswith(b'{"seq":"'):
        return None
    end = raw.find(b'"', 8)
    ms, _, n = raw[8:end].partition(b"-")
    return int(ms), int(n)


def format_seq(seq: tuple[int, int]) -> str:
    return f"{seq[0]}-{seq[1]}"


@dataclass(frozen=True)
class Replay:
    """Result of asking for the events after a seq."""

    events: list[bytes]  # wire events, oldest first
    last_seq: tuple[int, int] | None  # newest seq in the stream (None: empty stream)


def _covers(info: Any, since: tuple[int, int]) -> bool:
    """Whether a stream (its XINFO STREAM reply) still holds every entry after `since`.

    A missing stream (an error reply) holds none and lost none. A trimmed stream covers the
    gap only when its first kept entry is at or before `since` (conservative: the entry just
    before the first may or may not be `since`)."""
    if isinstance(info, Exception):
        if "no such key" in str(info).lower():
            return True
        raise info
    if info.get("entries-added", 0) == info["length"]:
        return True
    first = info.get("first-entry")
    first_seq = parse_seq(first[0]) if first else parse_seq(info["last-generated-id"])
    return since >= first_seq


class EventLog:
    """Append-and-publish for one Redis; replay for reconnecting sockets."""

    def __init__(self, redis: Redis, *, maxlen: int = 2000, host_maxlen: int = 2000) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self.host_maxlen = host_maxlen
        self._script = redis.register_script(PUBLISH_LUA)
        self.published = 0

    def maxlen_of(self, audience: Audience | str) -> int:
        """The cap of the stream that events of `audience` go to."""
        return self.host_maxlen if audience == HOST else self.maxlen

    async def publish(
        self, bid: str, type_: str, data: dict[str, Any], *, audience: Audience = PUBLIC
    ) -> str:
        """Append and publish one event; returns its seq."""
        seq = await self._script(
            keys=publish_keys(bid, audience),
            args=[self.maxlen_of(audience), audience, encode_body(type_, data)],
        )
        self.published += 1
        return seq.decode() if isinstance(seq, bytes) else seq

    def add_to(
        self,
        pipe: Pipeline,
        bid: str,
        type_: str,
        data: dict[str, Any],
        *,
        audience: Audience = PUBLIC,
    ) -> None:
        """Queue the publish inside a MULTI pipeline so it commits with the state write."""
        pipe.eval(
            PUBLISH_LUA,
            4,
            *publish_keys(bid, audience),
            self.maxlen_of(audience),
            audience,
            encode_body(type_, data),
        )
        self.published += 1

    async def last_seq(self, bid: str) -> tuple[int, int] | None:
        """The broadcast's last seq across both streams (None: nothing published).

        Any seq of the shared sequence is a valid position for either audience, so this is
        the position a snapshot of either kind is taken at."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.event_last(bid))
            pipe.xrevrange(keys.events(bid), count=1)
            pipe.xrevrange(keys.host_events(bid), count=1)
            last, pub, host = await pipe.execute()
        seqs = [parse_seq(last)] if last else []
        seqs += [parse_seq(entries[0][0]) for entries in (pub, host) if entries]
        return max(seqs) if seqs else None

    async def replay(
        self, bid: str, since: tuple[int, int], *, include_host: bool
    ) -> list[bytes] | None:
        """Events after `since` (public ones, and host-only ones too for hosts, merged in seq
        order), or None when the history no longer covers the gap.

        None means: `since` is ahead of the broadcast's last seq (Redis lost its tail, or the
        seq belongs to a wiped broadcast), or a stream read was trimmed past `since`.

        No MULTI (Redis refuses to queue commands in one once maxmemory is reached), so the
        order of the reads is what keeps it right. The last id is read first: every event at
        or below it was already in its stream, so the XRANGEs after it return all of them, and
        the result stops there (what comes later is published after the socket subscribed and
        reaches it live; without the bound, a host event newer than a public event that the
        first XRANGE missed would hide that one from the socket). XINFO comes after the
        XRANGEs: a stream's first entry only moves forward, so a first entry at or before
        `since` then was also at or before it when the XRANGE ran.
        """
        after = "(" + format_seq(since)
        streams = [keys.events(bid)]
        if include_host:
            streams.append(keys.host_events(bid))
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.event_last(bid))
            for key in streams:
                pipe.xrange(key, min=after, max="+")
            for key in streams:
                pipe.xinfo_stream(key)
            replies = await pipe.execute(raise_on_error=False)
        n = len(streams)
        last_raw, ranges, infos = replies[0], replies[1 : 1 + n], replies[1 + n :]
        for r in (last_raw, *ranges):
            if isinstance(r, Exception):
                raise r
        if last_raw is not None:
            last = bound = parse_seq(last_raw)
        else:
            # Written before the last-id key existed: the streams' own last ids. Nothing
            # without the key reached the host stream, so the public read is the bound.
            known = [parse_seq(i["last-generated-id"]) for i in infos if isinstance(i, dict)]
            if not known:
                return None  # no stream at all: the broadcast's history is gone
            last = max(known)
            bound = parse_seq(ranges[0][-1][0]) if ranges[0] else since
        if since > last:
            return None
        if not all(_covers(info, since) for info in infos):
            return None
        merged: list[tuple[tuple[int, int], bytes]] = []
        for entries in ranges:
            for entry_id, fields in entries:
                if not include_host and fields.get(b"a") == b"h":
                    continue  # a host-only event in a stream written before the host stream
                seq = parse_seq(entry_id)
                if seq > bound:
                    continue
                merged.append((seq, wire(entry_id, fields[b"b"])))
        if len(ranges) > 1:
            merged.sort(key=lambda e: e[0])
        return [raw for _, raw in merged]
