"""The per-process hub: which local sockets watch which broadcast, and fan-out to them.

Fan-out never awaits a socket. Each socket has a bounded queue and one writer task that sends
whatever has queued up as one frame (a JSON array of events). A socket whose queue overflows
is closed with a reason; its client reconnects with `since` and recovers from the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from core import keys
from core.events import EventLog, format_seq, seq_of
from web.bus import Bus
from web.metrics import Metrics

log = logging.getLogger("jobcast.hub")

Seq = tuple[int, int]
SnapshotFn = Callable[[str, bool], Awaitable[tuple[Seq | None, dict[str, Any]]]]

CLOSE_TOO_SLOW = 4008
CLOSE_SHUTDOWN = 1001


class Socket:
    """One connected viewer or host console."""

    __slots__ = (
        "_pending",
        "_queue",
        "_wake",
        "bid",
        "close_reason",
        "closed",
        "host",
        "last_seq",
        "meta",
        "queue_max",
        "syncing",
        "writer",
        "ws",
    )

    def __init__(self, ws: web.WebSocketResponse, bid: str, *, host: bool, queue_max: int) -> None:
        self.ws = ws
        self.bid = bid
        self.host = host
        self.queue_max = queue_max
        self._queue: list[bytes] = []
        self._pending: list[tuple[Seq | None, bytes]] = []
        self._wake = asyncio.Event()
        self.syncing = True
        self.last_seq: Seq = (0, 0)
        self.closed = False
        self.close_reason = ""
        self.writer: asyncio.Task[None] | None = None
        self.meta: dict[str, Any] = {}

    # Called from the fan-out loop: must not await.
    def push(self, seq: Seq | None, raw: bytes) -> bool:
        if self.closed:
            return False
        if self.syncing:
            self._pending.append((seq, raw))
            if len(self._pending) > self.queue_max:
                self.drop("too_slow")
            return True
        if seq is not None:
            if seq <= self.last_seq:
                return False
            self.last_seq = seq
        self._queue.append(raw)
        if len(self._queue) > self.queue_max:
            self.drop("too_slow")
            return False
        self._wake.set()
        return True

    def send_now(self, raw: bytes) -> None:
        """Queue a frame that carries no seq (errors, acks, presence)."""
        if not self.closed:
            self._queue.append(raw)
            self._wake.set()

    def drop(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self._wake.set()

    def begin_sync(self) -> None:
        self.syncing = True
        self._pending = []

    def finish_sync(self, events: list[bytes], last_seq: Seq | None) -> None:
        """Queue `events` (replay or snapshot), then whatever arrived live meanwhile."""
        if last_seq is not None:
            self.last_seq = last_seq
        self._queue.extend(events)
        self.syncing = False
        pending, self._pending = self._pending, []
        for seq, raw in pending:
            self.push(seq, raw)
        if len(self._queue) > self.queue_max + len(events):
            self.drop("too_slow")
        self._wake.set()

    async def write_loop(self, metrics: Metrics) -> None:
        ws = self.ws
        frames = metrics.frames_sent
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._queue:
                batch, self._queue = self._queue, []
                frame = b"[" + b",".join(batch) + b"]"
                try:
                    await ws.send_frame(frame, WSMsgType.TEXT)
                except (ConnectionError, RuntimeError):
                    self.closed = True
                    return
                frames.inc()
            if self.closed:
                return


class Hub:
    def __init__(self, log_: EventLog, metrics: Metrics, snapshot: SnapshotFn) -> None:
        self.log = log_
        self.metrics = metrics
        self.snapshot = snapshot
        self.bus: Bus | None = None
        self.rooms: dict[str, set[Socket]] = {}  # channel -> sockets
        self.sockets: dict[str, set[Socket]] = {}  # broadcast id -> sockets

    def channels_for(self, sock: Socket) -> list[str]:
        chans = [keys.channel(sock.bid, "p")]
        if sock.host:
            chans.append(keys.channel(sock.bid, "h"))
        return chans

    # -- fan-out (called by the bus for every message) --------------------------------------

    def deliver(self, channel: str, raw: bytes) -> None:
        room = self.rooms.get(channel)
        if not room:
            return
        seq = seq_of(raw)
        n = 0
        for sock in room:
            if sock.push(seq, raw):
                n += 1
        self.metrics.events_delivered.inc(n)

    def local_broadcast(self, bid: str, raw: bytes) -> None:
        """Send a seq-less event to every local socket of a broadcast (presence)."""
        for sock in self.sockets.get(bid, ()):
            sock.send_now(raw)

    def viewer_count(self, bid: str) -> int:
        return sum(1 for s in self.sockets.get(bid, ()) if not s.host)

    # -- joining and leaving ----------------------------------------------------------------

    async def join(self, sock: Socket, since: Seq | None) -> str:
        """Subscribe (first), then fill the socket from replay or snapshot, then go live."""
        assert self.bus is not None
        sock.begin_sync()
        chans = self.channels_for(sock)
        for ch in chans:
            self.rooms.setdefault(ch, set()).add(sock)
        self.sockets.setdefault(sock.bid, set()).add(sock)
        try:
            await self.bus.acquire(*chans)
        except BaseException:
            await self.leave(sock, release=False)
            raise
        try:
            return await self.sync(sock, since)
        except BaseException:
            await self.leave(sock)
            raise

    async def leave(self, sock: Socket, *, release: bool = True) -> None:
        chans = self.channels_for(sock)
        removed = False
        for ch in chans:
            room = self.rooms.get(ch)
            if room is not None and sock in room:
                room.discard(sock)
                removed = True
                if not room:
                    del self.rooms[ch]
        socks = self.sockets.get(sock.bid)
        if socks is not None:
            socks.discard(sock)
            if not socks:
                del self.sockets[sock.bid]
        if release and removed and self.bus is not None:
            await self.bus.release(*chans)

    async def sync(self, sock: Socket, since: Seq | None, cache: dict | None = None) -> str:
        """Bring a (syncing) socket up to date from `since`: 'replay' or 'snapshot'."""
        events: list[bytes] | None = None
        if since is not None:
            key = (sock.bid, since, sock.host)
            if cache is not None and key in cache:
                events = cache[key]
            else:
                events = await self.log.replay(sock.bid, since, include_host=sock.host)
                if cache is not None:
                    cache[key] = events
        if events is not None:
            self.metrics.replays.inc()
            last = seq_of(events[-1]) if events else since
            sock.finish_sync(events, last)
            return "replay"
        skey = ("snap", sock.bid, sock.host)
        if cache is not None and skey in cache:
            seq, frame = cache[skey]
        else:
            seq, state = await self.snapshot(sock.bid, sock.host)
            frame = orjson.dumps(
                {
                    "type": "snapshot",
                    "seq": format_seq(seq) if seq else "0-0",
                    "data": state,
                }
            )
            if cache is not None:
                cache[skey] = (seq, frame)
        self.metrics.snapshots.inc()
        # A snapshot resets the client, so the socket's position is the snapshot's seq even
        # when that is lower than what it had (Redis lost its tail).
        sock.last_seq = (0, 0)
        sock.finish_sync([frame], seq or (0, 0))
        return "snapshot"

    async def resync_all(self) -> None:
        """After the bus reconnected: every socket replays from its own last seq."""
        socks = [s for group in self.sockets.values() for s in group if not s.closed]
        for s in socks:
            s.begin_sync()
        cache: dict = {}
        for s in socks:
            try:
                await self.sync(s, s.last_seq if s.last_seq != (0, 0) else None, cache)
            except Exception:
                log.exception("resync failed; closing socket so the client reconnects")
                s.drop("resync_failed")

    async def close_all(self, reason: str = "server shutting down") -> None:
        socks = [s for group in self.sockets.values() for s in group]
        await asyncio.gather(
            *(s.ws.close(code=CLOSE_SHUTDOWN, message=reason.encode()) for s in socks),
            return_exceptions=True,
        )
