"""`jobcast serve` stopped with SIGTERM while hundreds of viewers watch and events flow: every
viewer gets close code 1001 and the process exits, also with viewers that stopped reading and
whose connections will never drain.

docs/protocol.md promises the process is gone within 3 s: one second of grace for the sockets
(the hub's SHUTDOWN_GRACE), then aborts, then aiohttp's one-second shutdown timeout. The test
holds the server to the mechanism rather than to a stopwatch: no socket outlives the grace
(the server would log "sockets still open after the shutdown grace"), every viewer that reads
gets 1001, the mute ones get their close frame, and the process exits with 0."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
from jobcast.core.broadcasts import BroadcastService
from jobcast.core.events import EventLog
from redis.asyncio import Redis

from tests.clients import wait_healthy
from tests.rawws import OP_CLOSE, close_code, open_raw_viewer, parse_frames, read_to_eof
from tests.redisproc import free_port
from tests.waiting import wait_until

VIEWERS = 300


class Watcher:
    """A viewer that reads everything and notes the close code the server sent."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.url = url
        self.session = session
        self.synced = asyncio.Event()
        self.ticks = 0
        self.close_code: int | None = None
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        async with self.session.ws_connect(self.url, autoclose=True) as ws:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    for ev in orjson.loads(msg.data):
                        if ev["type"] == "synced":
                            self.synced.set()
                        elif ev["type"] == "test.tick":
                            self.ticks += 1
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    self.close_code = msg.data
                    return
                else:  # CLOSED, ERROR: the connection went without a close frame
                    return


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


async def test_sigterm_closes_every_viewer_with_1001_within_3_s(own_redis, tmp_path: Path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    redis = Redis.from_url(own_redis.url)
    log = EventLog(redis)
    svc = BroadcastService(redis, log)
    room = await svc.create({"title": "shutdown drill"})
    stuck_room = await svc.create({"title": "viewers that stopped reading"})
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve_log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobcast",
            "serve",
            "--redis-url",
            own_redis.url,
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env={
            **os.environ,
            "JOBCAST_LOG_JSON": "0",
            "JOBCAST_LOG_LEVEL": "warning",
            "JOBCAST_WS_CONNECTIONS_PER_IP": str(VIEWERS + 50),  # every viewer is 127.0.0.1
        },
        stdout=serve_log,
        stderr=subprocess.STDOUT,
    )
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
    stuck = []
    publishing = True
    try:
        await wait_healthy(base)
        # Viewers that stopped reading: two dropped as too slow (their connections draining
        # when the signal comes), two whose transports are merely paused.
        for _ in range(2):
            stuck.append(open_raw_viewer(port, f"/ws/b/{stuck_room.id}", rcvbuf=4096))
        big = {"pad": "s" * 16000}
        async with asyncio.timeout(60):
            async with session.get(base + "/metrics") as r:
                assert _metric(await r.text(), "jobcast_slow_viewers_dropped_total") == 0
            while True:
                for _ in range(50):
                    await log.publish(stuck_room.id, "test.big", big)
                async with session.get(base + "/metrics") as r:
                    if _metric(await r.text(), "jobcast_slow_viewers_dropped_total") >= 2:
                        break
        for _ in range(2):
            stuck.append(open_raw_viewer(port, f"/ws/b/{stuck_room.id}", rcvbuf=4096))
        for _ in range(100):  # more than their buffers hold, fewer than gets them dropped
            await log.publish(stuck_room.id, "test.big", big)
        # And two that read everything but never answer a close frame.
        mute = [open_raw_viewer(port, f"/ws/b/{room.id}") for _ in range(2)]
        stuck.extend(mute)
        mute_reads = [asyncio.create_task(read_to_eof(s)) for s in mute]

        url = f"{base.replace('http', 'ws')}/ws/b/{room.id}"
        watchers = []
        for i in range(VIEWERS):
            watchers.append(Watcher(session, url))
            if i % 50 == 49:
                async with asyncio.timeout(30):
                    await asyncio.gather(*(w.synced.wait() for w in watchers))

        async def publish() -> None:
            i = 0
            while publishing:
                await log.publish(room.id, "test.tick", {"i": i})
                i += 1
                await asyncio.sleep(0.02)  # the event rate (50/s), not a wait for anything

        publisher = asyncio.create_task(publish())
        # events are flowing to every viewer
        await wait_until(lambda: all(w.ticks >= 3 for w in watchers), 30)
        assert all(not w.task.done() for w in watchers)

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)  # a bound on a hang, not a timing
        publishing = False
        await publisher

        assert code == 0
        serve_log.flush()
        assert "sockets still open after the shutdown grace" not in (
            tmp_path / "serve.log"
        ).read_text("utf-8", "replace")
        async with asyncio.timeout(10):
            await asyncio.gather(*(w.task for w in watchers), return_exceptions=True)
        codes: dict[int | None, int] = {}
        for w in watchers:
            codes[w.close_code] = codes.get(w.close_code, 0) + 1
        assert codes == {1001: VIEWERS}
        for t in mute_reads:
            frames = parse_frames(await asyncio.wait_for(t, 10))
            assert frames[-1][0] == OP_CLOSE and close_code(frames[-1][1]) == 1001
    finally:
        publishing = False
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for s in stuck:
            s.close()
        await session.close()
        await redis.aclose()
        serve_log.close()
