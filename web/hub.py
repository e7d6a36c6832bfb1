"""The per-process hub: which local sockets watch which broadcast, and fan-out to them.

Fan-out never awaits a socket. An event is framed once (a JSON array holding it, or holding
every event of its channel that the bus read in the same burst) and that frame is written to
every socket whose transport is taking data. A socket whose peer isn't reading gets a bounded
queue instead, sent as one frame when the transport drains; when the queue overflows the
socket is closed with a reason, and its client reconnects with `since` and recovers from the
stream. Sockets joining together share one snapshot or replay; one loop pings them all.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from core import keys
from core.events import EventLog, format_seq, seq_of
from web.bus import Bus
from web.metrics import Metrics

log = logging.getLogger("jobcast.hub")

Seq = tuple[int, int]
SnapshotFn = Callable[[str, bool], Awaitable[tuple[Seq | None, dict[str, Any]]]]

CLOSE_TOO_SLOW = 4008
CLOSE_POLICY = 4003
CLOSE_SHUTDOWN = 1001

QUEUED = 1
WRITTEN = 2

PING_FRAME = b"\x89\x00"
_LEN1 = struct.Struct("!BB").pack
_LEN2 = struct.Struct("!BBH").pack
_LEN3 = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """An RFC 6455 text frame as a server sends it: final, unmasked, uncompressed."""
    n = len(payload)
    if n < 126:
        return _LEN1(0x81, n) + payload
    if n < 65536:
        return _LEN2(0x81, 126, n) + payload
    return _LEN3(0x81, 127, n) + payload


class Socket:
    """One connected viewer or host console.

    Frames are written straight to the transport while it accepts them; only when the
    transport has paused writing (the peer isn't reading) do events queue, and a flusher task
    sends the queue as one frame when it resumes.
    """

    __slots__ = (
        "_closer",
        "_flusher",
        "_metrics",
        "_pending",
        "_protocol",
        "_queue",
        "_request",
        "bid",
        "close_reason",
        "closed",
        "host",
        "last_seq",
        "meta",
        "pinged",
        "queue_max",
        "seen",
        "syncing",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        bid: str,
        *,
        host: bool,
        queue_max: int,
        request: web.BaseRequest,
        metrics: Metrics,
    ) -> None:
        self.ws = ws
        self.bid = bid
        self.host = host
        self.queue_max = queue_max
        self._request = request
        self.transport = request.transport
        self._protocol = request.protocol
        self._metrics = metrics
        self._queue: list[bytes] = []
        self._pending: list[tuple[Seq | None, bytes]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self.syncing = True
        self.last_seq: Seq = (0, 0)
        self.closed = False
        self.close_reason = ""
        self.meta: dict[str, Any] = {}
        self.seen = asyncio.get_running_loop().time()  # when the peer last sent a frame
        self.pinged = 0.0  # when the heartbeat last pinged it

    def _writable(self) -> bool:
        t = self.transport
        return (
            t is not None
            and not self._protocol.writing_paused
            and not t.is_closing()
            and not self.ws.closed
        )

    # Called from the fan-out loop: must not await.
    def push(self, seq: Seq | None, raw: bytes, frame: bytes | None = None) -> int:
        """Queue or write one event: 0 not delivered, QUEUED, or WRITTEN (`frame` sent now)."""
        if self.closed:
            return 0
        if self.syncing:
            self._pending.append((seq, raw))
            if len(self._pending) > self.queue_max:
                self.drop("too_slow")
            return QUEUED
        if seq is not None:
            if seq <= self.last_seq:
                return 0
            self.last_seq = seq
        if not self._queue and self._writable():
            self.transport.write(frame or text_frame(b"[" + raw + b"]"))  # type: ignore[union-attr]
            return WRITTEN
        self._queue.append(raw)
        if len(self._queue) > self.queue_max:
            self.drop("too_slow")
            return 0
        self._kick()
        return QUEUED

    def push_run(self, seqs: list[Seq | None], raws: list[bytes], frame: bytes) -> tuple[int, int]:
        """Several events of one channel in publish order, `frame` holding them all.

        Returns (events delivered, frames written now).
        """
        first, last = seqs[0], seqs[-1]
        if (
            not self.closed
            and not self.syncing
            and not self._queue
            and first is not None
            and last is not None
            and first > self.last_seq
            and self._writable()
        ):
            self.last_seq = last
            self.transport.write(frame)  # type: ignore[union-attr]
            return len(raws), 1
        delivered = frames = 0
        for seq, raw in zip(seqs, raws, strict=True):
            r = self.push(seq, raw)
            if r:
                delivered += 1
                if r == WRITTEN:
                    frames += 1
        return delivered, frames

    def send_now(self, raw: bytes) -> None:
        """Send a frame that carries no seq (errors, acks, presence)."""
        if not self.closed:
            self._queue.append(raw)
            self._kick()

    def drop(self, reason: str) -> None:
        """Close with `reason` once what is queued has been sent (or 2 s have passed)."""
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            if reason == "too_slow":
                self._metrics.slow_dropped.inc()
            self._closer = asyncio.get_running_loop().create_task(self._close())

    async def wait_closed(self) -> None:
        """Wait for a close started by `drop` (the handler returns only after it)."""
        if self._closer is not None:
            await self._closer

    def ping(self) -> None:
        if not self.closed and self._writable():
            self.transport.write(PING_FRAME)  # type: ignore[union-attr]

    def abort(self) -> None:
        """Cut the connection without a close handshake (the peer has gone quiet)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def stop(self) -> None:
        """The handler is done: stop flushing."""
        self.closed = True
        if self._flusher is not None:
            self._flusher.cancel()

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
            if self.push(seq, raw) == WRITTEN:
                self._metrics.frames_sent.inc()
        if len(self._queue) > self.queue_max + len(events):
            self.drop("too_slow")
        self._kick()

    def _kick(self) -> None:
        """Send the queue now if the transport takes it, else make sure a flusher waits."""
        if self._flusher is not None or not self._queue:
            return
        if self._writable():
            batch, self._queue = self._queue, []
            self.transport.write(text_frame(b"[" + b",".join(batch) + b"]"))  # type: ignore[union-attr]
            self._metrics.frames_sent.inc()
        elif self.transport is not None and not self.transport.is_closing():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._queue:
                t = self.transport
                if t is None or t.is_closing() or self.ws.closed:
                    return
                if self._protocol.writing_paused:
                    await self._request.writer.drain()
                    continue
                batch, self._queue = self._queue, []
                t.write(text_frame(b"[" + b",".join(batch) + b"]"))
                self._metrics.frames_sent.inc()
        except (ConnectionError, RuntimeError):
            self.closed = True
        finally:
            self._flusher = None

    async def _close(self) -> None:
        code = CLOSE_TOO_SLOW if self.close_reason == "too_slow" else CLOSE_POLICY
        try:
            async with asyncio.timeout(2):
                if self._flusher is not None:
                    await self._flusher
                await self.ws.close(code=code, message=self.close_reason.encode()[:120])
        except (TimeoutError, ConnectionError, RuntimeError):
            if self.transport is not None:
                self.transport.abort()


class Hub:
    def __init__(self, log_: EventLog, metrics: Metrics, snapshot: SnapshotFn) -> None:
        self.log = log_
        self.metrics = metrics
        self.snapshot = snapshot
        self.bus: Bus | None = None
        self.rooms: dict[str, set[Socket]] = {}  # channel -> sockets
        self.sockets: dict[str, set[Socket]] = {}  # broadcast id -> sockets
        self._viewers: dict[str, int] = {}  # broadcast id -> sockets that aren't hosts
        self._next: dict[tuple, asyncio.Future[Any]] = {}  # see _batched
        self._running: dict[tuple, asyncio.Future[Any]] = {}
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._inbox: list[tuple[str, bytes]] = []

    def channels_for(self, sock: Socket) -> list[str]:
        chans = [keys.channel(sock.bid, "p")]
        if sock.host:
            chans.append(keys.channel(sock.bid, "h"))
        return chans

    # -- fan-out (called by the bus for every message) --------------------------------------

    def deliver(self, channel: str, raw: bytes) -> None:
        """Take one message from the bus; the fan-out runs once the bus has read what Redis
        had already sent, so a process that fell behind sends what piled up as one frame."""
        if channel not in self.rooms:
            return
        self._inbox.append((channel, raw))
        if len(self._inbox) == 1:
            asyncio.get_running_loop().call_soon(self._fan_out)

    def _fan_out(self) -> None:
        inbox, self._inbox = self._inbox, []
        start = 0
        for k in range(1, len(inbox) + 1):  # runs of one channel, in arrival order
            if k == len(inbox) or inbox[k][0] != inbox[start][0]:
                self._fan_out_run(inbox[start][0], [raw for _, raw in inbox[start:k]])
                start = k

    def _fan_out_run(self, channel: str, raws: list[bytes]) -> None:
        room = self.rooms.get(channel)
        if not room:
            return
        # One frame for every socket that is keeping up.
        frame = text_frame(b"[" + b",".join(raws) + b"]")
        n = written = 0
        if len(raws) == 1:
            raw = raws[0]
            seq = seq_of(raw)
            for sock in room:
                r = sock.push(seq, raw, frame)
                if r:
                    n += 1
                    if r == WRITTEN:
                        written += 1
        else:
            seqs = [seq_of(raw) for raw in raws]
            for sock in room:
                delivered, frames = sock.push_run(seqs, raws, frame)
                n += delivered
                written += frames
        self.metrics.events_delivered.inc(n)
        if written:
            self.metrics.frames_sent.inc(written)

    def local_broadcast(self, bid: str, raw: bytes) -> None:
        """Send a seq-less event to every local socket of a broadcast (presence)."""
        for sock in self.sockets.get(bid, ()):
            sock.send_now(raw)

    def viewer_count(self, bid: str) -> int:
        return self._viewers.get(bid, 0)

    # -- joining and leaving ----------------------------------------------------------------

    async def join(self, sock: Socket, since: Seq | None) -> str:
        """Subscribe (first), then fill the socket from replay or snapshot, then go live."""
        assert self.bus is not None
        sock.begin_sync()
        chans = self.channels_for(sock)
        for ch in chans:
            self.rooms.setdefault(ch, set()).add(sock)
        socks = self.sockets.setdefault(sock.bid, set())
        if sock not in socks:
            socks.add(sock)
            if not sock.host:
                self._viewers[sock.bid] = self._viewers.get(sock.bid, 0) + 1
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
        if socks is not None and sock in socks:
            socks.discard(sock)
            if not sock.host:
                left = self._viewers[sock.bid] - 1
                if left:
                    self._viewers[sock.bid] = left
                else:
                    del self._viewers[sock.bid]
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
                bid, host = sock.bid, sock.host
                events = await self._batched(
                    ("replay", bid, since, host),
                    lambda: self.log.replay(bid, since, include_host=host),
                )
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
            bid, host = sock.bid, sock.host
            seq, frame = await self._batched(
                ("snap", bid, host), lambda: self._snapshot_frame(bid, host)
            )
            if cache is not None:
                cache[skey] = (seq, frame)
        self.metrics.snapshots.inc()
        # A snapshot resets the client, so the socket's position is the snapshot's seq even
        # when that is lower than what it had (Redis lost its tail).
        sock.last_seq = (0, 0)
        sock.finish_sync([frame], seq or (0, 0))
        return "snapshot"

    async def _snapshot_frame(self, bid: str, host: bool) -> tuple[Seq | None, bytes]:
        seq, state = await self.snapshot(bid, host)
        data = {"type": "snapshot", "seq": format_seq(seq) if seq else "0-0", "data": state}
        return seq, orjson.dumps(data)

    async def _batched(self, key: tuple, compute: Callable[[], Awaitable[Any]]) -> Any:
        """Run `compute` once for every caller that asks with the same `key` before it starts.

        Each caller's socket is already in its room (buffering live events) when it asks, so
        a snapshot or replay read after that is right for all of them; a caller arriving while
        a run is under way waits for the next run. When thousands of viewers reconnect at once
        this turns thousands of snapshots into a few.
        """
        batch = self._next.get(key)
        if batch is None:
            batch = asyncio.get_running_loop().create_future()
            self._next[key] = batch
            task = asyncio.create_task(self._run_batch(key, batch, compute))
            self._batch_tasks.add(task)
            task.add_done_callback(self._batch_tasks.discard)
        return await asyncio.shield(batch)

    async def _run_batch(
        self, key: tuple, batch: asyncio.Future[Any], compute: Callable[[], Awaitable[Any]]
    ) -> None:
        try:
            running = self._running.get(key)
            if running is not None:
                await asyncio.wait([running])
            del self._next[key]  # callers from now on form the next batch
            self._running[key] = batch
            try:
                result = await compute()
            finally:
                del self._running[key]
        except asyncio.CancelledError:
            if self._next.get(key) is batch:
                del self._next[key]
            batch.cancel()
            raise
        except Exception as e:
            batch.set_exception(e)
        else:
            batch.set_result(result)

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

    def start_heartbeat(self, interval: float) -> None:
        """Start the one ping loop for all local sockets (once; later calls do nothing)."""
        if self._heartbeat is None and interval > 0:
            self._heartbeat = asyncio.get_running_loop().create_task(
                self._heartbeat_loop(interval), name="jobcast-heartbeat"
            )

    async def _heartbeat_loop(self, interval: float) -> None:
        """Ping each socket whose peer has been quiet for `interval`; cut off one that sent
        nothing in the `interval / 2` after its ping.

        One sweep every interval/4 for the whole process, rather than a timer per socket.
        """
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval / 4)
            now = loop.time()
            for group in list(self.sockets.values()):
                for sock in list(group):
                    if now - sock.seen < interval:
                        continue
                    if sock.pinged <= sock.seen:  # not pinged since it last spoke
                        sock.ping()
                        sock.pinged = now
                    elif now - sock.pinged >= interval / 2:
                        sock.abort()

    async def close_all(self, reason: str = "server shutting down") -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        socks = [s for group in self.sockets.values() for s in group]
        await asyncio.gather(
            *(s.ws.close(code=CLOSE_SHUTDOWN, message=reason.encode()) for s in socks),
            return_exceptions=True,
        )
