"""One data directory, one Redis: what an operator does beside a running `jobcast serve`, and
the faults an operator meets (kill -9 of the server, of its supervisor, of its Redis; a stale
Redis left on the directory), each with real processes and the embedded redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import aiohttp
import orjson
import redis
from jobcast.core import keys

from tests.redisproc import free_port
from tests.servekit import (
    Client,
    Server,
    alive,
    children,
    env,
    healthy,
    redis_servers,
    run_command,
)
from tests.waiting import wait_until


def _socket(data_dir: Path) -> Path:
    return data_dir / "redis" / "redis.sock"


def _direct(data_dir: Path) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(_socket(data_dir)), socket_timeout=5)


async def _load(base: str, bid: str, stop: asyncio.Event, answers: list[int]) -> None:
    """A viewer's traffic: fresh connections (each needs a new Redis connection in the
    server's pool only when the pool runs short, so also a socket join each round)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
        while not stop.is_set():
            r = await s.get(f"{base}/api/broadcasts/{bid}/openings")
            answers.append(r.status)
            r2 = await s.get(f"{base}/api/broadcasts/{bid}/pin")
            answers.append(r2.status)
            async with s.ws_connect(f"{base}/ws/b/{bid}", headers={"Origin": base}) as ws:
                msg = await ws.receive(timeout=10)
                answers.append(200 if msg.type == aiohttp.WSMsgType.TEXT else 599)


async def test_add_host_and_purge_beside_a_running_server(tmp_path: Path):
    """The README's step 1 and the daily cron job, run while serving: the server keeps
    answering every request, keeps its one Redis, and the new account logs in at once."""
    server = Server(tmp_path).start()
    try:
        assert len(redis_servers(tmp_path)) == 1
        stop = asyncio.Event()
        answers: list[int] = []
        loaders = [
            asyncio.create_task(_load(server.base, server.bid, stop, answers)) for _ in range(4)
        ]
        await wait_until(lambda: len(answers) > 20, 30, "traffic before the commands")
        r = await asyncio.to_thread(
            run_command, tmp_path, "add-host", "alice", "--password-stdin", stdin="alice-pass-1\n"
        )
        assert r.returncode == 0, r.stderr
        r = await asyncio.to_thread(run_command, tmp_path, "purge", "--days", "30")
        assert r.returncode == 0, r.stderr
        assert "deleted" in r.stdout
        async with Client(server.base) as c:
            assert await c.login("alice", "alice-pass-1") == 200
        mark = len(answers)
        await wait_until(lambda: len(answers) > mark + 60, 30, "traffic after the commands")
        stop.set()
        await asyncio.gather(*loaders)
        assert set(answers) == {200}, {s: answers.count(s) for s in set(answers)}
        assert _socket(tmp_path).exists()
        assert len(redis_servers(tmp_path)) == 1
        assert await healthy(server.base)
    finally:
        assert server.stop() == 0
    assert redis_servers(tmp_path) == []


async def test_commands_without_a_server_use_their_own_redis_under_the_lock(tmp_path: Path):
    r = run_command(tmp_path, "add-host", "bob", "--password-stdin", stdin="bob-pass-123\n")
    assert r.returncode == 0, r.stderr
    assert redis_servers(tmp_path) == []  # stopped again
    server = Server(tmp_path).start()
    try:
        async with Client(server.base) as c:
            assert await c.login("bob", "bob-pass-123") == 200
    finally:
        server.stop()


async def test_a_second_server_on_the_directory_refuses_naming_the_first(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        second = subprocess.run(
            _serve_cmd(tmp_path),
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert f"PID {server.proc.pid}" in second.stderr, second.stderr
        assert len(redis_servers(tmp_path)) == 1
        assert await healthy(server.base)
    finally:
        server.stop()


def _serve_cmd(data_dir: Path) -> list[str]:
    from tests.servekit import JOBCAST

    return [*JOBCAST, "serve", "--data-dir", str(data_dir), "--port", str(free_port())]


async def test_serve_killed_then_restarted_keeps_one_redis_and_everything_acknowledged(
    tmp_path: Path,
):
    server = Server(tmp_path).start()
    acked: list[str] = []
    try:
        async with Client(server.base) as c:
            oids = await c.openings(server.bid)
            for n in range(60):
                status, body = await c.apply(oids[n % len(oids)], n)
                assert status == 201, body
                acked.append(body["application_id"])
        async with Client(server.base) as h:
            assert await h.login(server.user, server.password) == 200
            for oid in oids:  # acknowledged events: one card.pinned each
                r = await h.session.post(
                    f"{server.base}/api/broadcasts/{server.bid}/pin",
                    json={"opening_id": oid},
                    headers={"X-CSRF-Token": h.csrf},
                )
                assert r.status == 200, await r.text()
        first_redis = redis_servers(tmp_path)
        assert len(first_redis) == 1
    finally:
        server.kill()  # kill -9: no cleanup of any kind
    restarted = Server(tmp_path, port=server.port).start()
    try:
        assert not any(alive(pid) for pid in first_redis), "the old redis-server still runs"
        assert len(redis_servers(tmp_path)) == 1
        r = _direct(tmp_path)
        stored = {x.decode() for x in r.zrange(keys.applications(server.bid), 0, -1)}
        assert set(acked) <= stored
        pinned = [
            orjson.loads(b"{" + f[b"b"])["data"]["opening"]["id"]
            for _, f in r.xrange(keys.events(server.bid))
            if b'"type":"card.pinned"' in f[b"b"]
        ]
        assert pinned[-len(oids) :] == oids
        r.close()
        async with Client(restarted.base) as c:
            status, body = await c.apply(oids[0], 1000)
            assert status == 201, body
    finally:
        assert restarted.stop() == 0
    log = (tmp_path / "redis" / "redis.log").read_text()
    assert "equal or smaller than the target stream top item" not in log


async def test_killed_supervisor_leaves_no_worker_serving(tmp_path: Path):
    server = Server(tmp_path, "--workers", "2").start()
    try:
        await wait_until(lambda: len(children(server.proc.pid)) >= 3, 30, "two workers and Redis")
        old = children(server.proc.pid)
    finally:
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
    # The documented promise: the workers and the Redis stop by themselves within 5 s.
    await wait_until(lambda: not any(alive(p) for p in old), 5, "the old workers to exit")
    restarted = Server(tmp_path, "--workers", "2", port=server.port).start()
    try:
        await wait_until(lambda: len(children(restarted.proc.pid)) >= 3, 30, "new workers")
        assert len(redis_servers(tmp_path)) == 1
        async with Client(restarted.base) as c:
            oids = await c.openings(restarted.bid)
            status, _ = await c.apply(oids[0], 1)
            assert status == 201
    finally:
        assert restarted.stop() == 0


async def test_killed_embedded_redis_is_restarted_and_the_service_recovers(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        async with Client(server.base) as c:
            oids = await c.openings(server.bid)
            status, _ = await c.apply(oids[0], 1)
            assert status == 201
            [pid] = redis_servers(tmp_path)
            os.kill(pid, signal.SIGKILL)
            await wait_until(lambda: not alive(pid), 5, "redis to die")

            async def writes() -> bool:
                status, _ = await c.apply(oids[0], 2)
                return status == 201

            # The documented promise: back by itself within 5 s.
            await wait_until(writes, 5, "a write to succeed again", interval=0.2)
            assert await healthy(server.base)
            assert len(redis_servers(tmp_path)) == 1
    finally:
        assert server.stop() == 0


async def test_a_stale_redis_on_the_directory_is_shut_down_cleanly_not_unlinked(
    tmp_path: Path,
):
    """A redis-server answering on the data directory's socket that no live server owns (as
    an older Jobcast could leave): serve shuts it down with its AOF flushed, then starts its
    own on the same files; the data written to the stale one is there."""
    import shutil

    rdir = tmp_path / "redis"
    rdir.mkdir(parents=True)
    stale = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(_socket(tmp_path).resolve()),
            "--dir",
            str(rdir.resolve()),
            "--pidfile",
            str((rdir / "redis.pid").resolve()),
            "--appendonly",
            "yes",
            "--appendfsync",
            "no",  # only a clean SHUTDOWN gets its last write to disk in time
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        await wait_until(lambda: _socket(tmp_path).exists(), 10, "the stale redis socket")

        def pinged() -> bool:
            try:
                return bool(_direct(tmp_path).ping())
            except redis.RedisError:
                return False

        await wait_until(pinged, 10, "the stale redis")
        _direct(tmp_path).set("left-by-the-stale-one", "kept")
        server = Server(tmp_path).start()
        try:
            assert stale.wait(10) == 0  # it was shut down, not killed
            assert len(redis_servers(tmp_path)) == 1
            assert _direct(tmp_path).get("left-by-the-stale-one") == b"kept"
            assert await healthy(server.base)
        finally:
            server.stop()
    finally:
        if stale.poll() is None:
            stale.kill()
            stale.wait()


def _modes(root: Path) -> dict[str, int]:
    out = {str(root): root.stat().st_mode & 0o777}
    for p in root.rglob("*"):
        if not p.is_symlink():
            out[str(p.relative_to(root))] = p.stat().st_mode & 0o777
    return out


async def test_applicants_data_is_readable_by_its_owner_only(tmp_path: Path):
    """With a umask of 022 and a data directory made world-readable by an older install,
    serve makes the directory 0700 and the AOF, secret key and every other file 0600."""
    data = tmp_path / "data"
    (data / "redis").mkdir(parents=True)
    os.chmod(data, 0o755)
    (data / "old.txt").write_text("from an older install")
    os.chmod(data / "old.txt", 0o644)
    old_umask = os.umask(0o022)
    try:
        server = Server(data).start()
    finally:
        os.umask(old_umask)
    try:
        async with Client(server.base) as c:
            oids = await c.openings(server.bid)
            status, _ = await c.apply(oids[0], 7)
            assert status == 201
        modes = _modes(data)
        aof = [k for k in modes if "appendonlydir/" in k]
        assert aof, modes
        assert modes[str(data)] == 0o700
        for name, mode in modes.items():
            assert mode & 0o077 == 0, f"{name} is {oct(mode)}"
    finally:
        server.stop()
