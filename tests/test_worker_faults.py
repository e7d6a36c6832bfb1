"""A worker process SIGKILLed while viewers are connected to it: they reconnect (to the other
worker), recover every event from the stream, and the broadcast goes on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
from redis.asyncio import Redis

from core.broadcasts import BroadcastService
from core.events import EventLog, parse_seq
from tests.redisproc import free_port


class ReconnectingViewer:
    """Behaves like the browser client: applies events above its seq, reconnects with since."""

    def __init__(self, base: str, bid: str) -> None:
        self.base = base
        self.bid = bid
        self.seq: tuple[int, int] | None = None
        self.applied: list[int] = []
        self.raw_seqs: list[str] = []
        self.connections = 0
        self.stop = False
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        attempt = 0
        while not self.stop:
            url = f"{self.base}/ws/b/{self.bid}"
            if self.seq:
                url += f"?since={self.seq[0]}-{self.seq[1]}"
            try:
                async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
                    self.connections += 1
                    attempt = 0
                    async for msg in ws:
                        for ev in orjson.loads(msg.data):
                            self.apply(ev)
            except (aiohttp.ClientError, OSError):
                pass
            attempt += 1
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + os.urandom(1)[0] / 512))

    def apply(self, ev: dict) -> None:
        if ev["type"] == "snapshot":
            self.seq = parse_seq(ev["seq"])
            return
        if "seq" not in ev:
            return
        self.raw_seqs.append(ev["seq"])
        s = parse_seq(ev["seq"])
        if self.seq is not None and s <= self.seq:
            return
        self.seq = s
        if ev["type"] == "test.tick":
            self.applied.append(ev["data"]["i"])


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out.append(int(entry.name))
    return out


async def test_worker_killed_viewers_recover_on_the_other(own_redis, tmp_path):
    redis = Redis.from_url(own_redis.url)
    log = EventLog(redis)
    b = await BroadcastService(redis, log).create({"title": "fault drill"})
    port = free_port()
    env = dict(os.environ, JOBCAST_LOG_JSON="0")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "web.cli",
            "serve",
            "--workers",
            "2",
            "--redis-url",
            own_redis.url,
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    viewers: list[ReconnectingViewer] = []
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as s:
            deadline = time.monotonic() + 20
            while True:
                try:
                    async with s.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        async with asyncio.timeout(10):
            while len(_children(proc.pid)) < 2:
                await asyncio.sleep(0.1)
        workers = _children(proc.pid)
        viewers = [ReconnectingViewer(base, b.id) for _ in range(30)]
        async with asyncio.timeout(10):
            while any(v.connections == 0 or v.seq is None for v in viewers):
                await asyncio.sleep(0.05)
        acked = []
        for i in range(300):
            await log.publish(b.id, "test.tick", {"i": i})
            acked.append(i)
            if i == 100:
                os.kill(workers[0], signal.SIGKILL)
            await asyncio.sleep(0.005)
        async with asyncio.timeout(20):
            while any(len(v.applied) < len(acked) for v in viewers):
                await asyncio.sleep(0.1)
        reconnected = sum(1 for v in viewers if v.connections > 1)
        assert reconnected > 0, "no viewer was on the killed worker"
        for v in viewers:
            assert v.applied == acked
            assert len(v.raw_seqs) == len(set(v.raw_seqs)), "the server sent an event twice"
        async with asyncio.timeout(10):  # the supervisor replaced the dead worker
            while len(_children(proc.pid)) < 2 or workers[0] in _children(proc.pid):
                await asyncio.sleep(0.1)
    finally:
        for v in viewers:
            v.stop = True
            v.task.cancel()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        await redis.aclose()
    assert proc.returncode == 0
