"""The event log: every event is appended to the broadcast's Redis Stream and published on its
channel in one atomic script, so subscribers and the replay history always agree.

Wire form of an event (also what viewers receive, byte for byte):

    {"seq":"1700000000000-0","type":"card.pinned","data":{...},"ts":1700000000000}

`seq` is the stream entry id. Redis assigns it from its clock and never reuses or lowers one,
even after a restart that lost the last second of the append-only file, so a client that keeps
the highest seq it has seen can always ask for "everything after".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from core import keys

Audience = Literal["p", "h"]
PUBLIC: Audience = "p"
HOST: Audience = "h"

# XADD then PUBLISH the same bytes with the new id spliced in. ARGV[2] is the JSON body
# without its opening brace, so the script only concatenates.
_PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'a', ARGV[3], 'b', ARGV[2])
redis.call('PUBLISH', KEYS[2], '{"seq":"' .. id .. '",' .. ARGV[2])
return id
"""


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


class EventLog:
    """Append-and-publish for one Redis; replay for reconnecting viewers."""

    def __init__(self, redis: Redis, *, maxlen: int = 2000) -> None:
        self.redis = redis
        self.maxlen = maxlen
        self._script = redis.register_script(_PUBLISH_LUA)
        self.published = 0

    async def publish(
        self, bid: str, type_: str, data: dict[str, Any], *, audience: Audience = PUBLIC
    ) -> str:
        """Append and publish one event; returns its seq."""
        seq = await self._script(
            keys=[keys.events(bid), keys.channel(bid, audience)],
            args=[self.maxlen, encode_body(type_, data), audience],
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
        """Queue the publish inside a MULTI pipeline so it commits with the state write.

        The script must already be loaded (`await log.ensure_loaded()` at start-up, and the
        pipeline falls back to EVAL when Redis forgot it after a restart).
        """
        pipe.eval(
            _PUBLISH_LUA,
            2,
            keys.events(bid),
            keys.channel(bid, audience),
            self.maxlen,
            encode_body(type_, data),
            audience,
        )
        self.published += 1

    async def last_seq(self, bid: str) -> tuple[int, int] | None:
        entries = await self.redis.xrevrange(keys.events(bid), count=1)
        if not entries:
            return None
        return parse_seq(entries[0][0])

    async def replay(
        self, bid: str, since: tuple[int, int], *, include_host: bool
    ) -> list[bytes] | None:
        """Events after `since`, or None when the history no longer covers the gap.

        None means: the oldest kept entry is newer than `since` (trimmed), or `since` is ahead
        of the newest entry (Redis lost its tail, or the seq belongs to a wiped stream).
        """
        key = keys.events(bid)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xinfo_stream(key)
            pipe.xrange(key, min="(" + format_seq(since), max="+")
            info, entries = await pipe.execute(raise_on_error=False)
        if isinstance(info, Exception):  # no such key: the stream is gone
            return None
        last = parse_seq(info["last-generated-id"])
        if since > last:
            return None
        trimmed = info.get("entries-added", 0) != info["length"]
        if trimmed:
            first = info.get("first-entry")
            first_seq = parse_seq(first[0]) if first else last
            # Conservative: the entry just before `first` may or may not be `since`.
            if since < first_seq:
                return None
        if isinstance(entries, Exception):
            raise entries
        out = []
        for entry_id, fields in entries:
            if not include_host and fields.get(b"a") == b"h":
                continue
            out.append(wire(entry_id, fields[b"b"]))
        return out
