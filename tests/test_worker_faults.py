"""A worker process SIGKILLed while viewers are connected to it: they reconnect (to the other
worker), recover every event from the stream, and the broadcast goes on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from jobcast.core.broadcasts import BroadcastService
from jobcast.core.events import EventLog
from redis.asyncio import Redis

from tests.clients import ReconnectingViewer, children, wait_healthy
from tests.redisproc import free_port
from tests.waiting import wait_until


def listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:port (one per SO_REUSEPORT worker)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for r in rows if r[1] == want and r[3] == "0A")


@contextlib.asynccontextmanager
async def serve_workers(
    redis_url: str, data_dir: Path, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """`jobcast serve --workers 2` as a real process; yields it once both workers are up."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jobcast",
            "serve",
            "--workers",
            "2",
            "--redis-url",
            redis_url,
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        env={**os.environ, "JOBCAST_LOG_JSON": "0", **(env or {})},
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_healthy(base)
        # Both workers listening, not just started: until the second one listens, the kernel
        # hands every connection to the first.
        await wait_until(
            lambda: len(children(proc.pid)) >= 2 and listeners(port) >= 2,
            60,
            "both workers listening",
        )
        yield proc, base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_worker_killed_viewers_recover_on_the_other(own_redis, tmp_path):
    redis = Redis.from_url(own_redis.url)
    log = EventLog(redis)
    b = await BroadcastService(redis, log).create({"title": "fault drill"})
    viewers: list[ReconnectingViewer] = []
    async with serve_workers(own_redis.url, tmp_path) as (proc, base):
        workers = children(proc.pid)
        viewers = [ReconnectingViewer(base, b.id) for _ in range(30)]
        await wait_until(
            lambda: all(v.connections and v.seq is not None for v in viewers), 30, "viewers synced"
        )
        acked = []
        for i in range(300):
            await log.publish(b.id, "test.tick", {"i": i})
            acked.append(i)
            if i == 100:
                os.kill(workers[0], signal.SIGKILL)
            await asyncio.sleep(0.005)  # the publisher's pace; nothing waits on it
        await wait_until(  # generous: CI machines may be busy
            lambda: all(len(v.applied) >= len(acked) for v in viewers), 60, "every event applied"
        )
        reconnected = sum(1 for v in viewers if v.connections > 1)
        assert reconnected > 0, "no viewer was on the killed worker"
        for v in viewers:
            assert v.applied == acked
            assert len(v.raw_seqs) == len(set(v.raw_seqs)), "the server sent an event twice"
        await wait_until(  # the supervisor replaced the dead worker
            lambda: len(children(proc.pid)) >= 2 and workers[0] not in children(proc.pid),
            30,
            "the dead worker replaced",
        )
        for v in viewers:
            v.stop = True
            v.task.cancel()
    await redis.aclose()
    assert proc.returncode == 0


async def test_reconnect_storm_of_2000_viewers(own_redis, tmp_path):
    """Both workers die at once; 2,000 viewers come back (jittered backoff) with every event."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    redis = Redis.from_url(own_redis.url)
    log = EventLog(redis)
    b = await BroadcastService(redis, log).create({"title": "storm"})
    viewers: list[ReconnectingViewer] = []
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
    # every test viewer comes from 127.0.0.1
    env = {"JOBCAST_LOG_LEVEL": "warning", "JOBCAST_WS_CONNECTIONS_PER_IP": "5000"}
    async with serve_workers(own_redis.url, tmp_path, env) as (proc, base):
        for i in range(2000):
            viewers.append(ReconnectingViewer(base, b.id, session))
            if i % 200 == 199:  # ramp up: each two hundred connected before the next
                await wait_until(
                    lambda: all(v.connections for v in viewers), 60, "the batch connected"
                )
        await wait_until(lambda: all(v.seq is not None for v in viewers), 60, "viewers synced")
        acked = [i for i in range(5)]
        for i in acked:
            await log.publish(b.id, "test.tick", {"i": i})
        for pid in children(proc.pid):
            os.kill(pid, signal.SIGKILL)
        for i in range(5, 20):  # published while no worker is up
            await log.publish(b.id, "test.tick", {"i": i})
            acked.append(i)
        await wait_until(
            lambda: all(v.connections >= 2 for v in viewers), 90, "every viewer reconnected"
        )
        for i in range(20, 25):
            await log.publish(b.id, "test.tick", {"i": i})
            acked.append(i)
        await wait_until(
            lambda: all(len(v.applied) >= len(acked) for v in viewers), 60, "every event applied"
        )
        for v in viewers:
            assert v.applied == acked
        for v in viewers:
            v.stop = True
            v.task.cancel()
        await asyncio.gather(*(v.task for v in viewers), return_exceptions=True)
    await session.close()
    await redis.aclose()
