"""Simulated HLS viewers for bench/hls.py, at playback pace. Run as a process of its own:

    python bench/hlsclient.py CONFIG.json OUT.json

Each viewer holds one keep-alive HTTP/1.1 connection (as a player does) and behaves like
hls.js with its defaults on a live stream: it loads `live.m3u8`, starts at the segment
`sync` target durations before the live edge (liveSyncDurationCount = 3), loads the init
segment and every segment from there on, reading each body to its end, and reloads the
playlist one target duration after the last reload that brought something new (half of one
after a reload that did not). Nothing is decoded.

The playback buffer: playback starts once the `sync` segments it joined with are loaded,
then drains at real time; a segment that arrives after the buffer ran dry is a stall
(playback resumes with that segment). Stalls are counted from the start of playback until
the end of the window.

The HTTP client is a small asyncio protocol (Content-Length and chunked bodies, one request
at a time per connection) rather than aiohttp, so that a few processes on a 2-core box can
keep thousands of viewers at pace; a loop-lag probe says whether they did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jobcast.stream.playlist import Playlist, parse  # noqa: E402

LIVE = "live.m3u8"
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0


# -- HTTP ------------------------------------------------------------------------------------


class HttpError(Exception):
    pass


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; `get()` one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._done: asyncio.Future[tuple[int, bytes]] | None = None
        self._head = bytearray()
        self._status = 0
        self._in_body = False
        self._keep = False
        self._body = bytearray()
        self._left = 0  # Content-Length bytes still to come
        self._chunked = False
        self._chunk_buf = bytearray()
        self._chunk_left = 0  # bytes of the current chunk still to come (+2 for its CRLF)
        self._close_after = False
        self.nbytes = 0  # body bytes of the last answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            self._done.set_exception(HttpError("connection closed"))

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            return
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._head[:end])
            data = bytes(self._head[end + 4 :])
            self._head.clear()
            self._start_body(head)
            if not self._in_body:
                return
        if self._chunked:
            self._feed_chunked(data)
        else:
            self._feed_length(data)

    def _start_body(self, head: bytes) -> None:
        lines = head.lstrip(b"\r\n").split(b"\r\n")
        try:
            self._status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            self._fail("bad status line")
            return
        length = -1
        self._chunked = False
        self._close_after = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = True
            elif name == b"connection" and b"close" in value.lower():
                self._close_after = True
        self._body = bytearray()
        self.nbytes = 0
        self._in_body = True
        if self._chunked:
            self._chunk_buf = bytearray()
            self._chunk_left = 0
        elif length < 0:
            self._fail("no Content-Length")
        else:
            self._left = length
            if length == 0:
                self._finish()

    def _feed_length(self, data: bytes) -> None:
        take = data if len(data) <= self._left else data[: self._left]
        self._left -= len(take)
        self.nbytes += len(take)
        if self._keep:
            self._body += take
        if self._left == 0:
            self._finish()

    def _feed_chunked(self, data: bytes) -> None:
        buf = self._chunk_buf
        buf += data
        pos = 0
        while True:
            if self._chunk_left > 0:
                take = min(self._chunk_left, len(buf) - pos)
                if take <= 0:
                    break
                piece = buf[pos : pos + take]
                payload = piece[: max(0, min(take, self._chunk_left - 2))]
                self.nbytes += len(payload)
                if self._keep:
                    self._body += payload
                self._chunk_left -= take
                pos += take
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                self._finish()  # trailers are not used by the servers measured here
                break
            self._chunk_left = size + 2
        del buf[:pos]

    def _finish(self) -> None:
        self._in_body = False
        assert self._done is not None
        if not self._done.done():
            self._done.set_result((self._status, bytes(self._body) if self._keep else b""))
        if self._close_after and self.transport is not None:
            self.transport.close()

    def _fail(self, why: str) -> None:
        self._in_body = False
        if self._done is not None and not self._done.done():
            self._done.set_exception(HttpError(why))
        if self.transport is not None:
            self.transport.close()

    async def get(self, host: str, path: str, keep_body: bool) -> tuple[int, bytes]:
        """(status, body if keep_body else b""); the body is read to its end either way."""
        if self.closed or self.transport is None:
            raise HttpError("connection closed")
        self._done = asyncio.get_running_loop().create_future()
        self._keep = keep_body
        self._in_body = False
        self._head.clear()
        self.transport.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await self._done
        except TimeoutError:
            self.transport.close()
            raise HttpError("timeout") from None


async def connect(host: str, port: int) -> HttpConnection:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(CONNECT_TIMEOUT):
        _t, conn = await loop.create_connection(HttpConnection, host, port)
    return conn


# -- viewers ---------------------------------------------------------------------------------


@dataclass
class Window:
    """What the viewers of this process did inside [t0, t1)."""

    t0: float
    t1: float
    requests: dict[str, int] = field(default_factory=dict)  # file name -> requests
    requests_all: dict[str, int] = field(default_factory=dict)  # the same over the whole run
    playlist_requests: int = 0
    bytes: int = 0
    # segment's end (program date-time + duration) -> its body fully read by the viewer, ms
    at_viewer_ms: list[int] = field(default_factory=list)

    def inside(self, t: float) -> bool:
        return self.t0 <= t < self.t1


class Parser:
    """Every viewer of a process gets the same few playlist bodies: parse each once."""

    def __init__(self) -> None:
        self._cache: dict[bytes, Playlist] = {}

    def __call__(self, body: bytes) -> Playlist:
        got = self._cache.get(body)
        if got is None:
            got = parse(body.decode())
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[body] = got
        return got


class Viewer:
    def __init__(self, cfg: dict[str, Any], window: Window, parser: Parser) -> None:
        self.host = f"{cfg['host']}:{cfg['port']}"
        self.addr = (cfg["host"], cfg["port"])
        self.prefix = cfg["prefix"]
        self.sync = int(cfg["sync"])
        self.w = window
        self.parse = parser
        self.conn: HttpConnection | None = None
        self.last_seq = -1
        self.inits: set[str] = set()
        self.joined: float | None = None
        self.started: float | None = None  # playback start
        self.empty_at = 0.0  # wall time the buffer runs dry
        self.loaded_before_start = 0
        self.stalls = 0
        self.stalled_s = 0.0
        self.errors = 0
        self.reconnects = 0
        self.skipped = 0  # segments that left the playlist before this viewer loaded them
        self.segments = 0

    async def _get(self, name: str, keep: bool) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.conn is None or self.conn.closed:
                if self.conn is not None:
                    self.reconnects += 1
                self.conn = await connect(*self.addr)
            try:
                status, body = await self.conn.get(self.host, self.prefix + name, keep)
            except HttpError:
                self.errors += 1
                if attempt:
                    raise
                continue
            now = time.time()
            self.w.requests_all[name] = self.w.requests_all.get(name, 0) + 1
            if self.w.inside(now):
                self.w.requests[name] = self.w.requests.get(name, 0) + 1
                self.w.bytes += self.conn.nbytes
                if name == LIVE:
                    self.w.playlist_requests += 1
            return status, body
        raise HttpError("unreachable")

    def _segment_loaded(self, seconds: float, now: float) -> None:
        if self.started is None:
            self.loaded_before_start += 1
            self.empty_at += seconds
            if self.loaded_before_start >= self.sync:
                self.started = now
                self.empty_at = now + self.empty_at
            return
        if now > self.empty_at:
            if now < self.w.t1:
                self.stalls += 1
                self.stalled_s += now - self.empty_at
            self.empty_at = now + seconds
        else:
            self.empty_at += seconds

    async def run(self, join_at: float, end: float) -> None:
        await asyncio.sleep(max(0.0, join_at - time.time()))
        self.joined = time.time()
        while time.time() < end:
            t_req = time.time()
            target = 1.0
            got_new = False
            try:
                status, body = await self._get(LIVE, True)
                if status != 200:
                    self.errors += 1
                else:
                    pl = self.parse(body)
                    target = float(pl.target)
                    segs = pl.segments
                    if self.last_seq < 0 and segs:
                        self.last_seq = segs[max(0, len(segs) - self.sync)].seq - 1
                    elif segs and segs[0].seq > self.last_seq + 1:
                        self.skipped += segs[0].seq - self.last_seq - 1
                        self.last_seq = segs[0].seq - 1
                    for s in segs:
                        if s.seq <= self.last_seq:
                            continue
                        if s.init not in self.inits:
                            st, _ = await self._get(s.init, False)
                            if st != 200:
                                self.errors += 1
                                break
                            self.inits.add(s.init)
                        st, _ = await self._get(s.name, False)
                        now = time.time()
                        if st != 200:
                            self.errors += 1
                            break
                        self.last_seq = s.seq
                        self.segments += 1
                        got_new = True
                        self._segment_loaded(s.duration, now)
                        if self.w.inside(now):
                            lag = now * 1000 - (s.pdt_ms + s.duration * 1000)
                            self.w.at_viewer_ms.append(round(lag))
            except (HttpError, OSError, TimeoutError):
                self.errors += 1
                self.conn = None
            wait = target if got_new else target / 2
            await asyncio.sleep(max(0.0, t_req + wait - time.time()))
        if self.started is not None and end > self.empty_at:
            # dry at the end of the window: a stall still going on
            self.stalls += 1
            self.stalled_s += end - self.empty_at

    def report(self) -> dict[str, Any]:
        return {
            "started": self.started is not None,
            "startup_s": (self.started - self.joined) if self.started and self.joined else None,
            "stalls": self.stalls,
            "stalled_s": round(self.stalled_s, 3),
            "errors": self.errors,
            "reconnects": self.reconnects,
            "skipped": self.skipped,
            "segments": self.segments,
        }

    def close(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()


async def loop_lag(until: float, out: list[float]) -> None:
    """How late a 50 ms timer fires: a client process that cannot keep pace shows here."""
    while time.time() < until:
        t = time.perf_counter()
        await asyncio.sleep(0.05)
        out.append(time.perf_counter() - t - 0.05)


async def run(cfg: dict[str, Any], out: Path) -> None:
    n = int(cfg["n"])
    start = float(cfg["start_at"])
    t0 = start + float(cfg["spread"]) + float(cfg["warmup"])
    t1 = t0 + float(cfg["window"])
    window = Window(t0, t1)
    parser = Parser()
    rng = random.Random(cfg.get("seed", 0))
    viewers = [Viewer(cfg, window, parser) for _ in range(n)]
    lags: list[float] = []
    lag_task = asyncio.create_task(loop_lag(t1, lags))
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    tasks = [
        asyncio.create_task(v.run(start + rng.uniform(0, float(cfg["spread"])), t1))
        for v in viewers
    ]
    try:
        async with asyncio.timeout(t1 - time.time() + 30):
            await asyncio.gather(*tasks, return_exceptions=True)
    except TimeoutError:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await lag_task
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    for v in viewers:
        v.close()
    lags.sort()
    result = {
        "t0": t0,
        "t1": t1,
        "requests": window.requests,
        "requests_all": window.requests_all,
        "playlist_requests": window.playlist_requests,
        "bytes": window.bytes,
        "at_viewer_ms": window.at_viewer_ms,
        "viewers": [v.report() for v in viewers],
        "cpu_s": (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "loop_lag_ms_p99": 1000 * lags[int(0.99 * (len(lags) - 1))] if lags else None,
        "loop_lag_ms_max": 1000 * lags[-1] if lags else None,
    }
    await asyncio.to_thread(out.write_text, json.dumps(result))


def main() -> None:
    cfg = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(cfg, out))


if __name__ == "__main__":
    main()
