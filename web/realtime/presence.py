"""Live viewer counts across processes.

Each process writes its own local count per broadcast into a Redis hash (field = process
name, value = "count:unix_ms") every interval, sums the fresh fields of all processes, and
pushes the total to its local sockets when it changed, at most once per interval. A process
that died stops refreshing its field, which then ages out of the sum.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import orjson
from jobcast.core import keys, tasks
from jobcast.web.realtime.hub import Hub
from redis.asyncio import Redis

log = logging.getLogger("jobcast.presence")


@dataclass(eq=False)
class Presence:
    redis: Redis
    hub: Hub
    process: str
    interval: float
    _last_sent: dict[str, int] = field(init=False, default_factory=dict)
    _written: set[str] = field(init=False, default_factory=set)
    _task: asyncio.Task[None] | None = field(init=False, default=None)

    def _fresh_after(self) -> int:
        return int((time.time() - 3 * self.interval - 1) * 1000)

    async def total(self, bid: str) -> int:
        fields = await self.redis.hgetall(keys.presence(bid))
        cutoff = self._fresh_after()
        total = 0
        for proc, value in fields.items():
            if proc.decode() == self.process:
                continue  # use the live local number instead of the last written one
            count, _, ts = value.partition(b":")
            if ts.isdigit() and int(ts) >= cutoff:
                total += int(count)
        return total + self.hub.viewer_count(bid)

    async def tick(self) -> None:
        now = int(time.time() * 1000)
        bids = set(self.hub.sockets) | self._written
        if not bids:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for bid in bids:
                n = self.hub.viewer_count(bid)
                if n:
                    pipe.hset(keys.presence(bid), self.process, f"{n}:{now}")
                    pipe.pexpire(keys.presence(bid), int(self.interval * 10_000))
                else:
                    pipe.hdel(keys.presence(bid), self.process)
            await pipe.execute()
        self._written = {bid for bid in bids if self.hub.viewer_count(bid)}
        for bid in list(self.hub.sockets):
            total = await self.total(bid)
            if self._last_sent.get(bid) != total:
                self._last_sent[bid] = total
                raw = orjson.dumps({"type": "presence", "data": {"viewers": total}})
                self.hub.local_broadcast(bid, raw)
        for bid in list(self._last_sent):
            if bid not in self.hub.sockets:
                del self._last_sent[bid]

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except Exception as e:  # Redis down: keep trying, counts resume when it's back
                log.warning("presence update failed", extra={"error": str(e)})

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="jobcast-presence")

    async def close(self) -> None:
        await tasks.stop(self._task)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for bid in self._written:
                    pipe.hdel(keys.presence(bid), self.process)
                await pipe.execute()
        except Exception:
            pass
