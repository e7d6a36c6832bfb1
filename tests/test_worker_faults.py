"""A worker process SIGKILLed while viewers are connected to it: they reconnect (to the other
worker), recover every event from the stream, and the broadcast goes on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
from redis.asyncio import Redis

from core.broadcasts import BroadcastService
from core.events import EventLog
from tests.clients import ReconnectingViewer, children, wait_healthy
from tests.redisproc import free_port


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
        await wait_healthy(base)
        async with asyncio.timeout(10):
            while len(children(proc.pid)) < 2:
                await asyncio.sleep(0.1)
        workers = children(proc.pid)
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
            while len(children(proc.pid)) < 2 or workers[0] in children(proc.pid):
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


async def test_reconnect_storm_of_2000_viewers(own_redis, tmp_path):
    """Both workers die at once; 2,000 viewers come back (jittered backoff) with every event."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    redis = Redis.from_url(own_redis.url)
    log = EventLog(redis)
    b = await BroadcastService(redis, log).create({"title": "storm"})
    port = free_port()
    env = dict(
        os.environ,
        JOBCAST_LOG_JSON="0",
        JOBCAST_LOG_LEVEL="warning",
        JOBCAST_WS_CONNECTIONS_PER_IP="5000",  # every test viewer comes from 127.0.0.1
    )
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
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True))
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_healthy(base)
        async with asyncio.timeout(10):
            while len(children(proc.pid)) < 2:
                await asyncio.sleep(0.1)
        for i in range(2000):
            viewers.append(ReconnectingViewer(base, b.id, session))
            if i % 200 == 199:
                await asyncio.sleep(0.2)
        async with asyncio.timeout(60):
            while any(v.seq is None for v in viewers):
                await asyncio.sleep(0.2)
        acked = [i for i in range(5)]
        for i in acked:
            await log.publish(b.id, "test.tick", {"i": i})
        for pid in children(proc.pid):
            os.kill(pid, signal.SIGKILL)
        for i in range(5, 20):  # published while no worker is up
            await log.publish(b.id, "test.tick", {"i": i})
            acked.append(i)
        async with asyncio.timeout(90):
            while any(v.connections < 2 for v in viewers):
                await asyncio.sleep(0.2)
        for i in range(20, 25):
            await log.publish(b.id, "test.tick", {"i": i})
            acked.append(i)
        async with asyncio.timeout(60):
            while any(len(v.applied) < len(acked) for v in viewers):
                await asyncio.sleep(0.2)
        for v in viewers:
            assert v.applied == acked
    finally:
        for v in viewers:
            v.stop = True
            v.task.cancel()
        await asyncio.gather(*(v.task for v in viewers), return_exceptions=True)
        await session.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        await redis.aclose()
