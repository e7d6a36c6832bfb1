"""The Redis bus: the process's one pub/sub connection, for every feature.

It carries two kinds of channel, each delivered to a handler `(channel, payload)`:

- a broadcast's channels, subscribed only while this process has local sockets of it
  (`acquire`/`release`, reference-counted as Centrifuge's node does), handed to the hub;
- process-wide channels a feature holds for the life of the app (`listen`): bans, time-outs
  and ended sessions (web/realtime/kicks.py), the media control inbox (stream/control.py).
  Such a channel may have a hook run each time Redis confirms its subscription, the first time
  and after every reconnect, to catch up on what was published while it was away.

On connection loss it reconnects with jittered exponential backoff, re-subscribes everything
still held, and once Redis has confirmed all of it runs the reconnect hooks (the hub resyncs
every local viewer from the stream), since pub/sub is at-most-once and anything published
meanwhile was not delivered.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from jobcast.core import tasks as background
from jobcast.core.errors import Unavailable
from jobcast.web.realtime.pubsub import PubSubConnection
from jobcast.web.runtime.metrics import Metrics

log = logging.getLogger("jobcast.bus")

# Takes one message: (channel, payload as Redis sent it). Runs in the read loop: must not block.
Handler = Callable[[str, bytes], object]
Hook = Callable[[], Awaitable[None]]
Unlisten = Callable[[], Awaitable[None]]


class Bus:
    def __init__(
        self,
        url: str,
        metrics: Metrics,
        *,
        subscribe_timeout: float = 5.0,
        ping_interval: float = 5.0,
    ) -> None:
        self.url = url
        self._metrics = metrics
        self._subscribe_timeout = subscribe_timeout
        self._ping_interval = ping_interval
        self._refs: dict[str, int] = {}
        self._handlers: dict[str, Handler] = {}
        self._on_confirmed: dict[str, Hook] = {}
        self._reconnect_hooks: list[Hook] = []
        self._confirmed: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._conn: PubSubConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self._closing = False

    # -- subscriptions ----------------------------------------------------------------------

    def _hold(self, channels: tuple[str, ...], handler: Handler) -> list[asyncio.Future[None]]:
        """Take a reference on each channel (subscribing the first one); the futures resolve
        when Redis confirms the channels not confirmed yet."""
        loop = asyncio.get_running_loop()
        waits: list[asyncio.Future[None]] = []
        to_send: list[str] = []
        for ch in channels:
            self._refs[ch] = self._refs.get(ch, 0) + 1
            self._handlers.setdefault(ch, handler)
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
        return waits

    async def acquire(self, *channels: str, handler: Handler) -> None:
        """Hold a reference on each channel, its messages going to `handler`; returns once
        Redis has confirmed every one (raises Unavailable, holding nothing, if it doesn't)."""
        waits = self._hold(channels, handler)
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
            self._handlers.pop(ch, None)
            self._on_confirmed.pop(ch, None)
            self._confirmed.discard(ch)
            for fut in self._waiters.pop(ch, []):
                if not fut.done():
                    fut.cancel()
            gone.append(ch)
        if gone and self._conn is not None and self.connected.is_set():
            self._conn.unsubscribe(*gone)

    async def listen(
        self, channel: str, handler: Handler, *, on_subscribed: Hook | None = None
    ) -> Unlisten:
        """Hold a process-wide `channel` until the returned function is awaited.

        `on_subscribed` runs (as a task) each time Redis confirms the subscription. Returns
        once the first confirmation came, or after the subscribe timeout while Redis is away:
        the channel stays held either way and is subscribed when the bus reconnects.
        """
        if channel in self._refs:
            raise ValueError(f"{channel} is already held on the bus")
        if on_subscribed is not None:
            self._on_confirmed[channel] = on_subscribed
        waits = self._hold((channel,), handler)
        if waits:
            try:
                async with asyncio.timeout(self._subscribe_timeout):
                    await asyncio.shield(waits[0])
            except TimeoutError:
                log.warning("bus subscription not confirmed yet", extra={"channel": channel})

        async def unlisten() -> None:
            if channel in self._refs:
                await self.release(channel)

        return unlisten

    def on_reconnected(self, hook: Hook) -> None:
        """Run `hook` after every reconnect, once Redis has confirmed each channel held."""
        self._reconnect_hooks.append(hook)

    def subscribed(self) -> list[str]:
        return sorted(self._confirmed)

    # -- connection loop --------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="jobcast-bus")

    async def close(self) -> None:
        self._closing = True
        tasks = [t for t in (self._task, self._resync_task) if t is not None]
        tasks.extend(self._hook_tasks)
        await background.stop_all(tasks)
        if self._conn:
            await self._conn.close()

    @property
    def hooks_running(self) -> int:
        """How many subscribe/reconnect hooks are still running (tests wait for 0)."""
        return len(self._hook_tasks)

    def _spawn(self, coro: Awaitable[None], what: str) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                log.exception("bus hook failed", extra={"hook": what})

        task = asyncio.create_task(run(), name=f"jobcast-bus-{what}")
        self._hook_tasks.add(task)
        task.add_done_callback(self._hook_tasks.discard)

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
        """Once the re-subscriptions are confirmed, run the reconnect hooks (the hub fills
        every viewer's gap)."""
        waits = [self._wait_confirmed(ch) for ch in channels if ch in self._refs]
        try:
            async with asyncio.timeout(self._subscribe_timeout):
                await asyncio.gather(*waits)
        except (TimeoutError, asyncio.CancelledError):
            return  # the connection dropped again; the next reconnect retries
        for hook in self._reconnect_hooks:
            await hook()

    async def _wait_confirmed(self, ch: str) -> None:
        if ch in self._confirmed:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(ch, []).append(fut)
        await fut

    async def _read_loop(self, conn: PubSubConnection) -> None:
        handlers = self._handlers
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
                ch = channel.decode()
                handler = handlers.get(ch)
                if handler is not None:
                    try:
                        handler(ch, payload)
                    except Exception:
                        log.exception("bus handler failed", extra={"channel": ch})
            elif kind == b"subscribe":
                ch = channel.decode()
                if ch in self._refs:
                    self._confirmed.add(ch)
                    hook = self._on_confirmed.get(ch)
                    if hook is not None:
                        self._spawn(hook(), ch)
                for fut in self._waiters.pop(ch, []):
                    if not fut.done():
                        fut.set_result(None)
