"""The `jobcast` command as a newcomer uses it: real processes, the embedded redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import redis

from tests.redisproc import free_port
from tests.waiting import poll_until, wait_until

JOBCAST = [sys.executable, "-m", "jobcast"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["JOBCAST_LOG_JSON"] = "0"
    return env


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    import urllib.request

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    poll_until(up, timeout, f"{url} to answer 200", interval=0.1)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    # Short path: the embedded Redis listens on a unix socket inside it.
    return tmp_path


def _listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:port: one per SO_REUSEPORT worker."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return sum(
            1 for line in f.readlines()[1:] if line.split()[1] == want and line.split()[3] == "0A"
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _embedded_redis_running(data_dir: Path) -> bool:
    sock = data_dir / "redis" / "redis.sock"
    if not sock.exists():
        return False
    try:
        return redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=0.5).ping()
    except redis.exceptions.RedisError:
        return False


def test_serve_demo_serves_the_demo_page_and_cleans_up(data_dir: Path):
    port = free_port()
    proc = subprocess.Popen(
        [*JOBCAST, "serve", "--demo", "--data-dir", str(data_dir), "--port", str(port)],
        stderr=subprocess.PIPE,
        env=_env(),
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 20
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stderr.readline()
            lines.append(line)
            m = re.search(r"viewer page:\s+(http://\S+/b/(\w+))", line)
            if m:
                url = m.group(1)
        assert url, "".join(lines)
        login = proc.stderr.readline() + proc.stderr.readline()
        m = re.search(r"host login:\s+(\S+) / (\S+)", login)
        assert m, login
        _wait_http(url, proc)
        import urllib.request

        with urllib.request.urlopen(url) as r:
            html = r.read().decode()
        assert "就业服务中心" in html
        assert (data_dir / "redis" / "appendonlydir").exists()  # AOF on
        user, password = m.group(1), m.group(2)

        async def check_login() -> int:
            async with aiohttp.ClientSession() as s:
                r = await s.post(
                    f"http://127.0.0.1:{port}/api/login",
                    json={"username": user, "password": password},
                )
                return r.status

        assert asyncio.run(check_login()) == 200
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert not _embedded_redis_running(data_dir), "embedded redis-server left running"


def test_add_host_then_login(data_dir: Path):
    r = subprocess.run(
        [*JOBCAST, "add-host", "alice", "--password-stdin", "--data-dir", str(data_dir)],
        input="correct horse battery\n",
        text=True,
        capture_output=True,
        env=_env(),
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        [
            *JOBCAST,
            "add-host",
            "bob",
            "--role",
            "moderator",
            "--password-stdin",
            "--data-dir",
            str(data_dir),
        ],
        input="short\n",
        text=True,
        capture_output=True,
        env=_env(),
        timeout=30,
    )
    assert r.returncode == 2 and "password" in r.stderr
    port = free_port()
    proc = subprocess.Popen(
        [*JOBCAST, "serve", "--data-dir", str(data_dir), "--port", str(port)],
        env=_env(),
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc)

        async def check() -> tuple[int, int]:
            async with aiohttp.ClientSession() as s:
                ok = await s.post(
                    f"http://127.0.0.1:{port}/api/login",
                    json={"username": "alice", "password": "correct horse battery"},
                )
                bad = await s.post(
                    f"http://127.0.0.1:{port}/api/login",
                    json={"username": "alice", "password": "nope-nope"},
                )
                return ok.status, bad.status

        assert asyncio.run(check()) == (200, 401)
    finally:
        _stop(proc)


def test_two_workers_share_one_port_and_one_redis(data_dir: Path):
    port = free_port()
    proc = subprocess.Popen(
        [
            *JOBCAST,
            "serve",
            "--demo",
            "--workers",
            "2",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--presence-interval",
            "0.3",
        ],
        env=_env(),
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        # the second worker may still be starting
        poll_until(lambda: _listeners(port) >= 2, 30, "the second worker to listen", 0.1)
        r = redis.Redis(unix_socket_path=str(data_dir / "redis" / "redis.sock"))
        bid = r.get("jc:demo").decode()

        async def run() -> tuple[set[str], int]:
            async with aiohttp.ClientSession() as s:
                sockets = []
                for _ in range(24):  # fresh connections: SO_REUSEPORT spreads them
                    conn = aiohttp.TCPConnector(force_close=True)
                    sess = aiohttp.ClientSession(connector=conn)
                    sockets.append(
                        (sess, await sess.ws_connect(f"http://127.0.0.1:{port}/ws/b/{bid}"))
                    )
                procs: set[str] = set()

                def both_count_all() -> bool:  # each worker's presence entry, 24 in all
                    nonlocal procs
                    fields = r.hgetall(f"jc:{{b:{bid}}}:presence")
                    procs = {k.decode() for k, v in fields.items() if int(v.split(b":")[0]) > 0}
                    total = sum(int(v.split(b":")[0]) for v in fields.values())
                    return len(procs) == 2 and total == 24

                with contextlib.suppress(AssertionError):  # the asserts below say what is off
                    await wait_until(both_count_all, 30, "both workers' presence", interval=0.3)
                r2 = await s.get(f"http://127.0.0.1:{port}/api/broadcasts/{bid}")
                viewers = (await r2.json())["viewers"]
                for sess, ws in sockets:
                    await ws.close()
                    await sess.close()
                return procs, viewers

        procs, viewers = asyncio.run(run())
        assert len(procs) == 2, procs
        assert viewers == 24
    finally:
        _stop(proc)
    assert not _embedded_redis_running(data_dir)
