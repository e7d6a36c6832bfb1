"""A cheap WebSocket viewer for load tests: an asyncio Protocol with a hand-written handshake
and frame parser (RFC 6455), so that thousands of viewers fit in one client process.

Each viewer checks that it receives every `bench.tick` event exactly once and in order
(`data.i` counts up from 0) and records publish-to-receive latency (`data.t`, wall-clock ns)
into a histogram shared by its process. Run `client_main` in a child process per share of the
viewers; the parent talks to it over a multiprocessing pipe.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import resource
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import orjson

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BUCKET_NS = 100_000  # latency histogram buckets of 0.1 ms
MAX_BUCKET = 600_000  # 60 s; anything later lands in the last bucket
TICK = "bench.tick"


class Stats:
    """What one process's viewers saw."""

    def __init__(self) -> None:
        self.hist: list[int] = [0] * (MAX_BUCKET + 1)
        self.steady: list[int] = [0] * (MAX_BUCKET + 1)  # the same, from event `from_i` on
        self.from_i = 0
        self.received = 0
        self.frames = 0
        self.bytes = 0
        self.gaps = 0  # events skipped over (a later i arrived first)
        self.dups = 0  # an i at or below one already seen
        self.last_recv_ns = 0
        self.worst: dict[int, int] = {}  # event i -> its slowest delivery (bucket)
        self.closed: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()

    def summary(self, viewers: list[Viewer], total: int) -> dict[str, Any]:
        tail = sum(max(0, total - v.next_i) for v in viewers)
        return {
            "hist": {i: n for i, n in enumerate(self.hist) if n},
            "steady": {i: n for i, n in enumerate(self.steady) if n},
            "received": self.received,
            "frames": self.frames,
            "bytes": self.bytes,
            "lost": self.gaps + tail,
            "dups": self.dups,
            "complete": sum(1 for v in viewers if v.next_i >= total),
            "last_recv_ns": self.last_recv_ns,
            "worst": self.worst,
            "closed": dict(self.closed),
            "errors": dict(self.errors),
        }


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return key + body


def client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A masked client frame (control frames and short texts only: < 126 bytes)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + _mask(payload)


class Viewer(asyncio.Protocol):
    __slots__ = (
        "accept",
        "buf",
        "close_code",
        "frag",
        "is_open",
        "next_i",
        "ready",
        "request",
        "stats",
        "transport",
    )

    def __init__(self, request: bytes, accept: bytes, stats: Stats, ready: asyncio.Future) -> None:
        self.request = request
        self.accept = accept
        self.stats = stats
        self.ready = ready
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.frag: list[bytes] = []
        self.is_open = False
        self.next_i = 0
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
            self.stats.closed[1006] += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before synced"))

    def data_received(self, data: bytes) -> None:
        # Fast path: one whole short text frame, the usual case for a live event.
        if not self.buf and self.is_open and data[0] == 0x81 and data[1] + 2 == len(data):
            self._message(data[2:], time.time_ns())
            return
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.is_open:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            head = data[:end]
            if not head.startswith(b"HTTP/1.1 101") or self.accept not in head:
                self.stats.errors[head.split(b"\r\n", 1)[0].decode(errors="replace")] += 1
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError("handshake refused"))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.is_open = True
            data = data[end + 4 :]
        now = time.time_ns()
        pos = 0
        n = len(data)
        while n - pos >= 2:
            b0 = data[pos]
            ln = data[pos + 1] & 0x7F
            hl = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = int.from_bytes(data[pos + 2 : pos + 4], "big")
                hl = 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = int.from_bytes(data[pos + 2 : pos + 10], "big")
                hl = 10
            end = pos + hl + ln
            if end > n:
                break
            payload = data[pos + hl : end]
            pos = end
            op = b0 & 0x0F
            if op <= 2:  # continuation, text, binary
                if not b0 & 0x80:
                    self.frag.append(payload)
                    continue
                if self.frag:
                    self.frag.append(payload)
                    payload = b"".join(self.frag)
                    self.frag = []
                self._message(payload, now)
            elif op == 9:
                self.transport.write(client_frame(10, payload))  # type: ignore[union-attr]
            elif op == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close_code = code
                self.stats.closed[code] += 1
                self.transport.write(client_frame(8, payload[:2]))  # type: ignore[union-attr]
                self.transport.close()  # type: ignore[union-attr]
                return
        if pos < n:
            self.buf = data[pos:]

    def _message(self, payload: bytes, now: int) -> None:
        stats = self.stats
        stats.frames += 1
        stats.bytes += len(payload)
        for ev in orjson.loads(payload):
            kind = ev.get("type")
            if kind == TICK:
                d = ev["data"]
                i = d["i"]
                if i == self.next_i:
                    self.next_i = i + 1
                elif i > self.next_i:
                    stats.gaps += i - self.next_i
                    self.next_i = i + 1
                else:
                    stats.dups += 1
                    continue
                stats.received += 1
                b = (now - d["t"]) // BUCKET_NS
                if b >= MAX_BUCKET:
                    b = MAX_BUCKET
                stats.hist[b] += 1
                if i >= stats.from_i:
                    stats.steady[b] += 1
                if b > stats.worst.get(i, -1):
                    stats.worst[i] = b
                stats.last_recv_ns = now
            elif kind == "synced" and not self.ready.done():
                self.ready.set_result(None)

    def close(self) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            if self.close_code is None:
                self.close_code = 1000
                t.write(client_frame(8, (1000).to_bytes(2, "big")))
            t.close()


def handshake(host: str, port: int, path: str, cookie: str = "") -> tuple[bytes, bytes]:
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    extra = b"Cookie: %s\r\n" % cookie.encode() if cookie else b""
    req = (
        b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
    ) % (path.encode(), host.encode(), port, key, extra)
    return req, accept


def viewer_cookie(secret: str) -> str:
    """A signed viewer-id cookie, as the viewer page hands out before the socket connects."""
    import hmac
    import secrets

    vid = "v" + secrets.token_urlsafe(12)
    mac = hmac.new(secret.encode(), f"viewer:{vid}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"jc_vid={vid}.{mac}"


async def open_viewers(
    host: str,
    port: int,
    path: str,
    n: int,
    stats: Stats,
    *,
    concurrency: int = 100,
    cookie_secret: str = "",
) -> list[Viewer]:
    """Open `n` viewers, each waited on until `synced`; failures are counted in stats.errors."""
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)

    async def one() -> Viewer | None:
        async with sem:
            cookie = viewer_cookie(cookie_secret) if cookie_secret else ""
            req, accept = handshake(host, port, path, cookie)
            ready: asyncio.Future = loop.create_future()
            try:
                async with asyncio.timeout(30):
                    _, v = await loop.create_connection(
                        lambda: Viewer(req, accept, stats, ready), host, port
                    )
                    await ready
            except (OSError, TimeoutError, ConnectionError) as e:
                stats.errors[type(e).__name__ + ": " + str(e)[:60]] += 1
                return None
            return v

    got = await asyncio.gather(*(one() for _ in range(n)))
    return [v for v in got if v is not None]


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def client_main(
    conn: Connection,
    host: str,
    port: int,
    path: str,
    n: int,
    cookie_secret: str = "",
    from_i: int = 0,
) -> None:
    """Child process: open `n` viewers, report, then wait for 'finish' and 'quit'."""
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_client(conn, host, port, path, n, cookie_secret, from_i))


async def _client(
    conn: Connection, host: str, port: int, path: str, n: int, cookie_secret: str, from_i: int
) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    stats.from_i = from_i
    commands: asyncio.Queue = asyncio.Queue()

    def pipe_reader() -> None:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                msg = ("quit",)
            loop.call_soon_threadsafe(commands.put_nowait, msg)
            if msg[0] == "quit":
                return

    threading.Thread(target=pipe_reader, daemon=True).start()
    viewers = await open_viewers(host, port, path, n, stats, cookie_secret=cookie_secret)
    conn.send(("ready", len(viewers), dict(stats.errors)))
    while True:
        msg = await commands.get()
        if msg[0] == "finish":
            total, drain = msg[1], msg[2]
            deadline = time.monotonic() + drain
            while time.monotonic() < deadline:
                if all(v.next_i >= total or v.close_code is not None for v in viewers):
                    break
                await asyncio.sleep(0.05)
            conn.send(("stats", stats.summary(viewers, total)))
        elif msg[0] == "quit":
            for v in viewers:
                v.close()
            await asyncio.sleep(0.5)
            conn.send(("bye",))
            return
