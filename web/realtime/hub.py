"""The per-process hub: which local sockets watch which broadcast, and fan-out to them.

Fan-out never awaits a socket. An event is framed once (a JSON array holding it, or holding
every event of its channel that the bus read in the same burst, up to the frame cap) and that
frame is written to every socket whose transport is taking data. A socket whose peer isn't
reading gets a bounded queue instead, sent in frames of at most the cap as the transport
drains; when the queue overflows the socket is closed with a reason, and its client reconnects
with `since` and recovers from the stream. Sockets joining together share one snapshot or
replay; one loop pings them all.

Closing never waits for the peer: the close frame is written to the transport after what it
already holds, the transport is closed (it sends what it holds, then FIN), and a timer aborts
it if the peer doesn't take that within a bound. On shutdown every socket gets its 1001 at
once and whatever hasn't drained after a short grace is aborted, so the handlers end before
the server's own shutdown wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from jobcast.core import keys
from jobcast.core.events import EventLog, format_seq, seq_of
from jobcast.web.realtime.aiohttp_internals import PING_FRAME, close_frame, text_frame, wire_of
from jobcast.web.realtime.bus import Bus
from jobcast.web.runtime.metrics import Metrics

log = logging.getLogger("jobcast.hub")

Seq = tuple[int, int]
SnapshotFn = Callable[[str, bool], Awaitable[tuple[Seq | None, dict[str, Any]]]]

CLOSE_TOO_SLOW = 4008
CLOSE_POLICY = 4003
CLOSE_SHUTDOWN = 1001

QUEUED = 1
WRITTEN = 2

FRAME_MAX = 256 * 1024  # default cap on one text frame's payload (web.settings)
CLOSE_TIMEOUT = 10.0  # default seconds a dropped socket gets to drain (web.settings)
SHUTDOWN_GRACE = 1.0  # seconds sockets get on shutdown before the rest are aborted

_ENDED = (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR)


def chunk_end(raws: list[bytes], start: int, cap: int) -> int:
    """End of the next frame's events in `raws[start:]`: as many whole events as fit in a
    JSON array of at most `cap` bytes, and always at least one (an event larger than the cap
    goes alone)."""
    size = len(raws[start]) + 2  # "[" event "]"
    end = start + 1
    n = len(raws)
    while end < n:
        size += len(raws[end]) + 1  # "," event
        if size > cap:
            break
        end += 1
    return end


class Socket:
    """One connected viewer or host console.

    Frames are written straight to the transport while it accepts them; only when the
    transport has paused writing (the peer isn't reading) do events queue, and a flusher task
    sends the queue, in frames of at most `frame_max`, as the transport drains. The transport
    and its flow control come from web/realtime/aiohttp_internals.py.
    """

    __slots__ = (
        "_abort_timer",
        "_close_timeout",
        "_credit",
        "_drain",
        "_flow",
        "_flusher",
        "_metrics",
        "_pending",
        "_queue",
        "bid",
        "close_reason",
        "closed",
        "frame_max",
        "host",
        "last_seq",
        "meta",
        "on_close",
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
        frame_max: int = FRAME_MAX,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self.ws = ws
        self.bid = bid
        self.host = host
        self.queue_max = queue_max
        self.frame_max = frame_max
        self._close_timeout = close_timeout
        wire = wire_of(request)  # the transport under the socket, and its flow control
        self.transport = wire.transport
        self._flow = wire.flow
        self._drain = wire.drain
        self._metrics = metrics
        self._queue: list[bytes] = []
        # Catch-up events still at the head of the queue: they don't count against queue_max,
        # which bounds how far a viewer falls behind the live events.
        self._credit = 0
        self._pending: list[tuple[Seq | None, bytes]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._abort_timer: asyncio.TimerHandle | None = None
        self.syncing = True
        self.last_seq: Seq = (0, 0)
        self.closed = False
        self.close_reason = ""
        self.meta: dict[str, Any] = {}
        # Told when this side closes the socket (the hub stops counting it as a viewer).
        self.on_close: Callable[[Socket], None] | None = None
        self.seen = asyncio.get_running_loop().time()  # when the peer last sent a frame
        self.pinged = 0.0  # when the heartbeat last pinged it

    @property
    def queued(self) -> int:
        """Events waiting for the transport to drain."""
        return len(self._queue)

    def _writable(self) -> bool:
        t = self.transport
        return (
            t is not None
            and not self._flow.writing_paused
            and not t.is_closing()
            and not self.ws.closed
        )

    def _overflowing(self) -> bool:
        return len(self._queue) - self._credit > self.queue_max

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
        if self._overflowing():
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
        """Close with `reason` (4008 for `too_slow`, else 4003) without awaiting anything.

        A viewer too slow for its queue loses what is queued (it would never catch up; its
        client recovers with `since`) and gets the close frame right after what the transport
        already holds. Any other reason (a ban, a flood) sends what is queued first, so the
        error event that explains it arrives. The transport then has `close_timeout` seconds
        to drain before it is aborted.
        """
        if self.closed:
            return
        self.close_reason = reason
        if reason == "too_slow":
            self._metrics.slow_dropped.inc()
            self._queue.clear()
            self._credit = 0
            code = CLOSE_TOO_SLOW
        else:
            code = CLOSE_POLICY
        self._close(code, reason, self._close_timeout)

    def shut_down(self, grace: float = SHUTDOWN_GRACE) -> None:
        """The server is stopping: 1001 now, queued events discarded, aborted after `grace`."""
        if self.closed:
            self.hurry(grace)
            return
        self.close_reason = "shutdown"
        self._queue.clear()
        self._credit = 0
        self._close(CLOSE_SHUTDOWN, "server shutting down", grace)

    def hurry(self, grace: float) -> None:
        """Abort within `grace` seconds if the transport hasn't gone by then."""
        t = self.transport
        if t is None:
            return
        if self._abort_timer is not None:
            if self._abort_timer.when() - asyncio.get_running_loop().time() <= grace:
                return
            self._abort_timer.cancel()
        self._abort_timer = asyncio.get_running_loop().call_later(grace, t.abort)

    def _close(self, code: int, reason: str, timeout: float) -> None:
        self.closed = True
        self._pending = []
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self.on_close is not None:
            self.on_close(self)
        t = self.transport
        if t is None or t.is_closing():
            return
        if self._queue:
            self._write_queue(force=True)
        t.write(close_frame(code, reason))
        # The peer's reply isn't awaited: close() stops reading, sends what the transport
        # holds, then FIN; the timer cuts off a peer that doesn't take it.
        t.close()
        self._abort_timer = asyncio.get_running_loop().call_later(timeout, t.abort)

    async def wait_closed(self) -> None:
        """After a close started here: wait until the connection has gone.

        That is bounded by the abort timer; the handler returns only after it, so a closing
        socket keeps counting against its address until it is really gone.
        """
        if self._abort_timer is None:
            return
        try:
            async with asyncio.timeout(self._close_timeout + 1):
                while True:
                    msg = await self.ws.receive()
                    if msg.type in _ENDED:
                        return
        except (TimeoutError, ConnectionError, RuntimeError):
            if self.transport is not None:
                self.transport.abort()

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
        """Queue `events` (replay or snapshot), then whatever arrived live meanwhile.

        They all leave in frames of at most `frame_max`, as fast as the transport takes them.
        """
        if self.closed:
            return
        if last_seq is not None:
            self.last_seq = last_seq
        self._queue.extend(events)
        self._credit += len(events)
        self.syncing = False
        pending, self._pending = self._pending, []
        for seq, raw in pending:
            if self.push(seq, raw) == WRITTEN:
                self._metrics.frames_sent.inc()
        if self.closed:
            return
        if self._overflowing():
            self.drop("too_slow")
            return
        self._kick()

    def _write_queue(self, *, force: bool = False) -> None:
        """Write queued events in frames of at most `frame_max` while the transport takes
        them (all of them when `force`)."""
        q = self._queue
        t = self.transport
        assert t is not None
        cap = self.frame_max
        i = frames = 0
        n = len(q)
        while i < n and (force or not self._flow.writing_paused):
            j = chunk_end(q, i, cap)
            t.write(text_frame(b"[" + b",".join(q[i:j]) + b"]"))
            frames += 1
            i = j
        del q[:i]
        self._credit = max(0, self._credit - i)
        self._metrics.frames_sent.inc(frames)

    def _kick(self) -> None:
        """Send the queue now if the transport takes it, else make sure a flusher waits."""
        if self._flusher is not None or not self._queue:
            return
        if self._writable():
            self._write_queue()
        if self._queue and self.transport is not None and not self.transport.is_closing():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._queue:
                t = self.transport
                if t is None or t.is_closing() or self.ws.closed:
                    return
                if self._flow.writing_paused:
                    await self._drain()
                    continue
                self._write_queue()
        except (ConnectionError, RuntimeError):
            self.closed = True
        finally:
            self._flusher = None


class Hub:
    """The local sockets of every broadcast, fed by `bus` and filled by `snapshot` or replay.

    The hub takes a broadcast's channels on the bus while it has sockets of it, and resyncs
    every socket from the stream each time the bus reconnects.
    """

    def __init__(
        self,
        log_: EventLog,
        metrics: Metrics,
        bus: Bus,
        snapshot: SnapshotFn,
        *,
        frame_max: int = FRAME_MAX,
    ) -> None:
        self.log = log_
        self.metrics = metrics
        self.bus = bus
        self.snapshot = snapshot
        self.frame_max = frame_max
        self.closing = False  # shutting down: no socket joins any more
        self._draining: set[Socket] = set()  # closed from this side, connection not gone yet
        self._idle: asyncio.Event | None = None  # set when the last socket has left
        self.rooms: dict[str, set[Socket]] = {}  # channel -> sockets
        self.sockets: dict[str, set[Socket]] = {}  # broadcast id -> sockets
        self._viewers: dict[str, int] = {}  # broadcast id -> sockets that aren't hosts
        self._next: dict[tuple, asyncio.Future[Any]] = {}  # see _batched
        self._running: dict[tuple, asyncio.Future[Any]] = {}
        self._batch_tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._inbox: list[tuple[str, bytes]] = []
        bus.on_reconnected(self.resync_all)

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
        cap = self.frame_max
        start = 0
        for k in range(1, len(inbox) + 1):  # runs of one channel, in arrival order
            if k == len(inbox) or inbox[k][0] != inbox[start][0]:
                channel = inbox[start][0]
                raws = [raw for _, raw in inbox[start:k]]
                i = 0
                while i < len(raws):  # each frame at most the cap
                    j = chunk_end(raws, i, cap)
                    self._fan_out_run(channel, raws if i == 0 and j == len(raws) else raws[i:j])
                    i = j
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
        if self.closing:
            sock.shut_down()
            return "closed"
        sock.begin_sync()
        sock.on_close = self._closed
        chans = self.channels_for(sock)
        for ch in chans:
            self.rooms.setdefault(ch, set()).add(sock)
        socks = self.sockets.setdefault(sock.bid, set())
        if sock not in socks:
            socks.add(sock)
            if not sock.host:
                self._viewers[sock.bid] = self._viewers.get(sock.bid, 0) + 1
        try:
            await self.bus.acquire(*chans, handler=self.deliver)
        except BaseException:
            await self.leave(sock, release=False)
            raise
        try:
            return await self.sync(sock, since)
        except BaseException:
            await self.leave(sock)
            raise

    def _detach(self, sock: Socket) -> bool:
        """Take `sock` out of its rooms and the viewer count; False if it wasn't in them."""
        removed = False
        for ch in self.channels_for(sock):
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
        return removed

    def _closed(self, sock: Socket) -> None:
        """A socket closed from this side is no longer a viewer: out of the fan-out and the
        count right away, while its connection drains (its handler then calls `leave`).

        Called from inside the fan-out loop, which is iterating the socket's room: the
        detach runs just after it."""
        asyncio.get_running_loop().call_soon(self._detach_closed, sock)

    def _detach_closed(self, sock: Socket) -> None:
        if self._detach(sock):  # else its handler has left already
            self._draining.add(sock)

    async def leave(self, sock: Socket, *, release: bool = True) -> None:
        removed = self._detach(sock)
        if sock in self._draining:
            self._draining.discard(sock)
            removed = True
        if self._idle is not None and not self.sockets and not self._draining:
            self._idle.set()
        if release and removed:
            await self.bus.release(*self.channels_for(sock))

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

    async def shutdown(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Close every socket with 1001 at once, without waiting for any peer's reply.

        Runs before the server waits for its handlers (`app.on_shutdown`): each socket gets
        the close frame after what its transport already holds, its queued events are
        discarded (clients recover with `since`) and its transport is closed; what hasn't
        gone after `grace` seconds is aborted. Returns once every handler has left the hub,
        so the server's wait for them ends at once.
        """
        self.closing = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        socks = [s for group in self.sockets.values() for s in group]
        socks.extend(self._draining)
        for s in socks:
            s.shut_down(grace)
        if not self.sockets and not self._draining:
            return
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(grace + 0.5):
                await self._idle.wait()
        except TimeoutError:
            left = [s for group in self.sockets.values() for s in group]
            left.extend(self._draining)
            log.warning("sockets still open after the shutdown grace", extra={"n": len(left)})
            for s in left:
                if s.transport is not None:
                    s.transport.abort()

    async def close_all(self) -> None:
        """What `shutdown` didn't get to (an app stopped without its on_shutdown signal)."""
        await self.shutdown()
