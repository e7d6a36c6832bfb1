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

One publish path. Every event is appended and published by one Lua function, `jc_publish`
in `APPEND_LUA`; every script that publishes starts with that text: the plain publish
(`PUBLISH_LUA`, what `publish` and `add_to` run) and the scripts that write and publish in one
go (applying, deleting an application, flushing vote counts), which `EventLog.script` makes
and which name their events with `jc_event`. Event JSON is made in one place, `encode_body`;
a value only a script knows (an application count) is a `Hole` there, which `jc_event` fills
with the cjson encoding of the value, as it splices in the seq. Only registered types
(core/event_types.py) are encoded, and `EventLog` refuses an audience the type does not
allow. `EventLog.published` counts what this process appended (or queued for appending in a
MULTI, where a retried transaction counts again); every path counts through `_count`.

Loaded once, run by SHA. Each script is a redis-py `Script`: EVALSHA, and on NOSCRIPT (Redis
restarted, or `SCRIPT FLUSH`) it loads the source and runs again. In a MULTI (`add_to`)
redis-py asks `SCRIPT EXISTS` before sending MULTI and loads what is missing, so an EXEC never
meets NOSCRIPT halfway, which would commit the writes without their events; that costs one
small round trip per transaction (about 0.1 ms on loopback: a MULTI with one event went from
0.21 to 0.33 ms), where EVAL shipped 2 KB of source with every event and could not fail so.
Scripts run on their own (applying, publishing, vote flushes) only gain.

Not a Redis Function library (`FUNCTION LOAD`): functions are data, persisted and replicated
under a name, so two versions of Jobcast on one Redis (a rolling restart) would run each
other's code unless every name carried a version, and a library lost with the data needs the
same load-on-miss anyway; a script's SHA names its exact source, so versions coexist and
nothing has to be loaded at startup.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from jobcast.core import keys
from jobcast.core.event_types import lookup
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

Audience = Literal["p", "h"]
PUBLIC: Audience = "p"
HOST: Audience = "h"

# The one definition of how an event is appended and published. Every script that publishes
# starts with this text and publishes with `jc_event` (or `jc_publish`).
#
# The id is the broadcast's last id moved forward: `now-0` when the clock (ms) has passed it,
# else the same ms with N + 1, the rule Redis uses for `*` ids but over both streams. When the
# last-id key is missing (data written before it existed) it starts from the streams' own
# last ids. The stream of a broadcast written by an older version may hold an id above the
# key; then the XADD is refused and the id is drawn again above that stream's last id.
# `body` is the event JSON without `seq` and without its opening brace.
APPEND_LUA = """
local jc_published = 0
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
  jc_published = jc_published + 1
  return id
end
-- The event whose four keys start at KEYS[k] and whose three arguments (stream cap,
-- audience, body) start at ARGV[a], as EventLog.event lays them out. The body's holes
-- (NUL, name, NUL: see core.events.Hole) take the cjson encoding of values[name].
local function jc_event(k, a, values)
  local body = ARGV[a + 2]
  if values then
    body = (string.gsub(body, '%z([%w_]+)%z', function(name)
      local v = values[name]
      if v == nil then error('jc_event: no value for the hole ' .. name) end
      return cjson.encode(v)
    end))
  end
  return jc_publish(KEYS[k], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a], ARGV[a + 1], body)
end
"""

# KEYS: publish_keys(bid, audience). ARGV: 1 maxlen, 2 audience, 3 body. Returns the seq.
PUBLISH_LUA = APPEND_LUA + "return jc_event(1, 1)\n"

# What EventLog.script wraps a script's own text in: its result and how many events it
# published, so that the count is kept where every other publish is counted.
_SCRIPT_OPEN = "local function jc_main()\n"
_SCRIPT_CLOSE = "\nend\nlocal result = jc_main()\nreturn {jc_published, result}\n"


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


class Hole:
    """A value of an event's data that the script publishing it fills in (a count read in
    the same script); `jc_event` gets the value under `name`. (Not a dataclass: orjson would
    encode that as an object.)"""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise ValueError(f"bad hole name {name!r}")
        self.name = name


# What a Hole is encoded as before it becomes NUL name NUL: a string no data can hold by
# chance (orjson escapes a NUL, so the encoded form starts with a backslash-u escape).
_HOLE = "\x00jc-hole-" + secrets.token_hex(8) + ":"
_HOLE_JSON = orjson.dumps(_HOLE)[:-1]  # the opening quote and the escaped marker
_HOLE_RE = re.compile(re.escape(_HOLE_JSON) + rb'([A-Za-z0-9_]+)"')


def _default(o: Any) -> Any:
    if isinstance(o, Hole):
        return _HOLE + o.name
    raise TypeError(f"cannot encode {type(o).__name__}")


def encode_body(type_: str, data: dict[str, Any], *, ts: int | None = None) -> bytes:
    """The event JSON without `seq` and without its opening brace; the one place an event is
    encoded. `type_` must be registered; `ts` (Unix ms) defaults to now."""
    if not lookup(type_).logged:
        raise ValueError(f"{type_} is sent to sockets directly, not through the event log")
    stamp = int(time.time() * 1000) if ts is None else ts
    raw = orjson.dumps({"type": type_, "data": data, "ts": stamp}, default=_default)[1:]
    if _HOLE_JSON in raw:
        raw = _HOLE_RE.sub(b"\x00\\1\x00", raw)
    return raw


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


@dataclass(frozen=True, slots=True)
class Event:
    """One event as a script takes it: `keys` (4) and `args` (3) to splice into the script's
    KEYS and ARGV; the script publishes it with `jc_event(k, a, values)`, k and a being where
    they start."""

    keys: list[str]
    args: list[Any]


class EventScript:
    """A Lua script that writes and publishes in one go: APPEND_LUA, then its own text, which
    publishes with `jc_event` and returns its result. Registered once, run by SHA."""

    def __init__(self, log: EventLog, lua: str) -> None:
        self._log = log
        self.script = log.redis.register_script(APPEND_LUA + _SCRIPT_OPEN + lua + _SCRIPT_CLOSE)

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script; returns what its text returned (None for nothing or false)."""
        reply = await self.script(keys=keys, args=args)
        self._log._count(int(reply[0]))
        return reply[1] if len(reply) > 1 else None


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


def pipeline_script(lua: str) -> AsyncScript:
    """A script to queue in pipelines (`queue_script`), made once at import: its sha is that of
    the source, and no client is needed until a pipeline runs it."""
    return AsyncScript(None, lua.encode())  # type: ignore[arg-type]  # bytes need no encoder


def queue_script(
    pipe: Pipeline, script: AsyncScript, keys_: Sequence[Any], args: Sequence[Any]
) -> None:
    """What `AsyncScript.__call__` does for a pipeline, without awaiting: the pipeline learns
    the script, so that its `execute` checks SCRIPT EXISTS (loading what is missing, also after
    a Redis restart or SCRIPT FLUSH) before MULTI, and the command queued is EVALSHA: the
    source crosses the network once per Redis, not with every write."""
    pipe.scripts.add(script)  # type: ignore[arg-type]  # typed for the sync Script
    pipe.evalsha(script.sha, len(keys_), *keys_, *args)


class EventLog:
    """Append-and-publish for one Redis; replay for reconnecting sockets."""

    def __init__(self, redis: Redis, *, maxlen: int = 2000, host_maxlen: int = 2000) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self.host_maxlen = host_maxlen
        self._publish = redis.register_script(PUBLISH_LUA)
        self.published = 0

    def _count(self, n: int) -> None:
        """The one place events are counted (`jobcast_events_published`)."""
        self.published += n

    def maxlen_of(self, audience: Audience | str) -> int:
        """The cap of the stream that events of `audience` go to."""
        return self.host_maxlen if audience == HOST else self.maxlen

    def event(
        self,
        bid: str,
        type_: str,
        data: dict[str, Any],
        *,
        audience: Audience = PUBLIC,
        ts: int | None = None,
    ) -> Event:
        """One event for a script (`EventLog.script`): its keys and arguments. `data` may hold
        `Hole`s, which the script fills in. Refuses an unregistered type (UnregisteredEvent)
        and an audience the type does not allow (ValueError)."""
        allowed = lookup(type_).audience
        if audience not in (PUBLIC, HOST) or (
            allowed != "either" and allowed != ("host" if audience == HOST else "public")
        ):
            raise ValueError(f"{type_} ({allowed}) is not published to audience {audience!r}")
        return Event(
            publish_keys(bid, audience),
            [self.maxlen_of(audience), audience, encode_body(type_, data, ts=ts)],
        )

    def _plain(self, bid: str, type_: str, data: dict[str, Any], audience: Audience) -> Event:
        ev = self.event(bid, type_, data, audience=audience)
        if b"\x00" in ev.args[2]:
            raise ValueError("a Hole needs a script to fill it (EventLog.script)")
        return ev

    async def publish(
        self, bid: str, type_: str, data: dict[str, Any], *, audience: Audience = PUBLIC
    ) -> str:
        """Append and publish one event; returns its seq."""
        ev = self._plain(bid, type_, data, audience)
        seq = await self._publish(keys=ev.keys, args=ev.args)
        self._count(1)
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
        """Queue the publish inside a MULTI pipeline so it commits with the state write; its
        reply in the pipeline's results is the event's seq.

        The command queued is EVALSHA (see `queue_script`)."""
        ev = self._plain(bid, type_, data, audience)
        queue_script(pipe, self._publish, ev.keys, ev.args)
        self._count(1)

    def script(self, lua: str) -> EventScript:
        """A script that writes and publishes in one go (see EventScript); make it once, at
        start-up, and call it for each write."""
        return EventScript(self, lua)

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
