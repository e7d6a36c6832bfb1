"""The data directory's disk fills while applications arrive, then Redis is killed before
space is freed: not one acknowledged application is lost (the embedded Redis fsyncs each
write before it answers, and stops when it cannot write), and the service recovers by itself
once there is space again. The disk is a small tmpfs the test mounts (root only)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
import redis
from jobcast.core import keys

from tests.servekit import Client, Server, healthy, redis_servers
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def _fill(mnt: Path, leave: int) -> Path:
    """Take all but `leave` bytes of the disk."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        chunk = b"\0" * (1 << 20)
        todo = max(0, free - leave)
        while todo > 0:
            n = min(todo, len(chunk))
            f.write(chunk[:n])
            todo -= n
    return filler


async def test_disk_full_then_redis_killed_loses_no_acknowledged_application(
    small_disk: Path,
):
    server = Server(small_disk, JOBCAST_LOG_LEVEL="error").start()
    try:
        async with Client(server.base) as c:
            oids = await c.openings(server.bid)
            filler = _fill(small_disk, leave=256 * 1024)
            acked: list[str] = []
            refused: list[int] = []
            counter = iter(range(1_000_000))

            async def applicant() -> None:
                # Until the disk is full and Redis has refused for a while.
                while len(refused) < 40 and len(acked) + len(refused) < 6000:
                    n = next(counter)
                    status, body = await c.apply(oids[n % len(oids)], n)
                    if status == 201:
                        acked.append(body["application_id"])
                    else:
                        assert status == 503, (status, body)  # never a 500
                        refused.append(status)

            await asyncio.gather(*(applicant() for _ in range(8)))
            assert len(acked) > 50, "the disk filled before anything was acknowledged"
            assert len(refused) >= 40, "the disk never filled"
            for pid in redis_servers(small_disk):
                os.kill(pid, signal.SIGKILL)  # before any space is freed
            filler.unlink()

            async def back() -> bool:
                status, _ = await c.apply(oids[0], 9_999_999)
                return status == 201

            await wait_until(back, 60, "the service to accept applications again", 0.2)
            assert await healthy(server.base)
        r = redis.Redis(unix_socket_path=str(small_disk / "redis" / "redis.sock"))
        stored = {x.decode() for x in r.zrange(keys.applications(server.bid), 0, -1)}
        lost = [aid for aid in acked if aid not in stored]
        assert lost == [], f"{len(lost)} of {len(acked)} acknowledged applications lost"
        for aid in acked[-20:]:
            assert r.exists(keys.application(server.bid, aid))
        r.close()
    finally:
        server.stop()
