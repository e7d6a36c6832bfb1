"""The Redis bus: one pub/sub connection per process, subscribed to a broadcast's channels only
while this process has local viewers of it (reference-counted, as Centrifuge's node does).

On connection loss it reconnects with jittered exponential backoff, re-subscribes everything
still referenced, and then asks the hub to resync every local viewer from the stream, since
pub/sub is at-most-once and anything published meanwhile was not delivered.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from jobcast.core.errors import Unavailable
from jobcast.web.realtime.pubsub import PubSubConnection
from jobcast.web.runtime.metrics import Metrics

log = logging.getLogger("jobcast.bus")

Deliver = Callable[[str, bytes], None]


class Bus:
    def __init__(
        self,
        url: str,
        deliver: Deliver,
        metrics: Metrics,
        *,
        on_resubscribed: Callable[[], Awaitable[None]] | None = None,
        subscribe_timeout: float = 5.0,
        ping_interval: float = 5.0,
    ) -> None:
        self.url = url
        self._deliver = deliver
        self._metrics = metrics
        self.on_resubscribed = on_resubscribed
        self._subscribe_timeout = subscribe_timeout
        self._ping_interval = ping_interval
        self._refs: dict[str, int] = {}
        self._confirmed: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._conn: PubSubConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self._closing = False

    # -- subscriptions ----------------------------------------------------------------------

    async def acquire(self, *channels: str) -> None:
        """Hold a reference on each channel; returns once Redis has confirmed every one."""
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        to_send: list[str] = []
        for ch in channels:
            self._refs[ch] = self._refs.get(ch, 0) + 1
            if ch in self._confirmed:
                continue
            fut: asyncio.Future[None] = loop.create_future()
            waiters = self._waiters.setdefault(ch, [])
            if not waiters:
                to_send.append(ch)
            waiters.append(fut)
            waits.append(fut)
        if to_send and self._conn is not None and self.connected.is_set():
            self._conn.subscribe(*to_send)
        if not waits:
            return
        try:
            async with asyncio.timeout(self._subscribe_timeout):
                await asyncio.gather(*waits)
        except TimeoutError:
            await self.release(*channels)
            raise Unavailable("event bus unavailable", code="bus_unavailable") from None

    async def release(self, *channels: str) -> None:
        gone = []
        for ch in channels:
            n = self._refs.get(ch, 0) - 1
            if n > 0:
                self._refs[ch] = n
                continue
            self._refs.pop(ch, None)
            self._confirmed.discard(ch)
            for fut in self._waiters.pop(ch, []):
                if not fut.done():
                    fut.cancel()
            gone.append(ch)
        if gone and self._conn is not None and self.connected.is_set():
            self._conn.unsubscribe(*gone)

    def subscribed(self) -> list[str]:
        return sorted(self._confirmed)

    # -- connection loop --------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jobcast-bus")

    async def close(self) -> None:
        self._closing = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._conn:
            await self._conn.close()

    async def _run(self) -> None:
        delay = 0.05
        first = True
        while not self._closing:
            try:
                self._conn = await PubSubConnection.open(self.url)
            except (OSError, ConnectionError, TimeoutError) as e:
                log.warning("bus connect failed", extra={"error": str(e), "retry_in": delay})
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.05
            self._confirmed.clear()
            channels = list(self._refs)
            for ch in channels:
                self._waiters.setdefault(ch, [])
            self._conn.subscribe(*channels)
            self.connected.set()
            if not first:
                self._metrics.redis_reconnects.inc()
                log.info("bus reconnected", extra={"channels": len(channels)})
                self._resync_task = asyncio.create_task(self._after_reconnect(channels))
            first = False
            try:
                await self._read_loop(self._conn)
            except (ConnectionError, TimeoutError) as e:
                if self._closing:
                    return
                log.warning("bus connection lost", extra={"error": str(e)})
            finally:
                self.connected.clear()
                self._confirmed.clear()
                await self._conn.close()

    async def _after_reconnect(self, channels: list[str]) -> None:
        """Once the re-subscriptions are confirmed, have the hub fill every viewer's gap."""
        waits = [self._wait_confirmed(ch) for ch in channels if ch in self._refs]
        try:
            async with asyncio.timeout(self._subscribe_timeout):
                await asyncio.gather(*waits)
        except (TimeoutError, asyncio.CancelledError):
            return  # the connection dropped again; the next reconnect retries
        if self.on_resubscribed is not None:
            await self.on_resubscribed()

    async def _wait_confirmed(self, ch: str) -> None:
        if ch in self._confirmed:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(ch, []).append(fut)
        await fut

    async def _read_loop(self, conn: PubSubConnection) -> None:
        deliver = self._deliver
        delivered = self._metrics.bus_messages
        while True:
            try:
                async with asyncio.timeout(self._ping_interval):
                    kind, channel, payload = await conn.read()
            except TimeoutError:
                # Quiet line: ping, and give Redis one more interval to answer anything.
                conn.ping()
                async with asyncio.timeout(self._ping_interval * 2):
                    kind, channel, payload = await conn.read()
            if kind == b"message":
                delivered.inc()
                deliver(channel.decode(), payload)
            elif kind == b"subscribe":
                ch = channel.decode()
                if ch in self._refs:
                    self._confirmed.add(ch)
                for fut in self._waiters.pop(ch, []):
                    if not fut.done():
                        fut.set_result(None)
