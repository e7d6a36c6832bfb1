"""`jobcast serve` as an operator runs it: a real process on a data directory, with the
embedded redis-server, and the probes an operator would use (processes, sockets, HTTP)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import aiohttp

from tests.redisproc import free_port

# the consent text that names every detail the API takes (the page's names fewer)
FULL_CONSENT = "2026-01"

JOBCAST = [sys.executable, "-m", "jobcast"]


def env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "JOBCAST_LOG_JSON": "0",
        "JOBCAST_LOG_LEVEL": "warning",
        # every test client comes from 127.0.0.1
        "JOBCAST_APPLY_PER_VIEWER": "100000",
        "JOBCAST_APPLY_PER_IP": "100000",
        **extra,
    }


class Server:
    """`jobcast serve --demo` on `data_dir`; `start()` returns once the demo is printed."""

    def __init__(self, data_dir: Path, *args: str, port: int | None = None, **extra_env: str):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.args = args
        self.env = env(**extra_env)
        self.proc: subprocess.Popen[str] | None = None
        self.bid = ""
        self.user = ""
        self.password = ""
        self.stderr: list[str] = []
        self._ready = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Server:
        cmd = [*JOBCAST, "serve", "--demo", "--data-dir", str(self.data_dir)]
        cmd += ["--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=self.env, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout):
            self.stop()
            raise AssertionError("serve did not start:\n" + "".join(self.stderr))
        if not self.bid:
            raise AssertionError("serve exited:\n" + "".join(self.stderr))
        self.wait_listening(timeout)
        return self

    def wait_listening(self, timeout: float) -> None:
        """The demo is printed before the port opens: wait for /healthz to answer 200."""
        import time
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError("serve exited:\n" + "".join(self.stderr))
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            self._ready.wait(0.05)  # paces the poll; the process is the one thing awaited
        raise AssertionError("serve did not listen:\n" + "".join(self.stderr))

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if m := re.search(r"viewer page:\s+\S+/b/(\w+)", line):
                self.bid = m.group(1)
            if m := re.search(r"host login:\s+(\S+) / (\S+)", line):
                self.user, self.password = m.group(1), m.group(2)
                self._ready.set()
        self._ready.set()

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()


def run_command(data_dir: Path, *args: str, stdin: str = "", timeout: float = 60) -> Any:
    return subprocess.run(
        [*JOBCAST, *args, "--data-dir", str(data_dir)],
        input=stdin,
        text=True,
        capture_output=True,
        env=env(),
        timeout=timeout,
    )


def redis_servers(data_dir: Path) -> list[int]:
    """PIDs of the redis-server processes serving this data directory's socket."""
    sock = str((data_dir / "redis" / "redis.sock").resolve())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        # Redis rewrites its title to "redis-server unixsocket:PATH"; before that, PATH is
        # one of its arguments.
        joined = b" ".join(cmd)
        if b"redis-server" in cmd[0] and sock.encode() in joined and state != "Z":
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """Live child processes of `pid`."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def application(n: int) -> dict[str, Any]:
    return {
        "name": "张伟",
        "phone": f"138{n:08d}",
        "degree": "associate",
        "consent": True,
        "consent_version": FULL_CONSENT,
    }


class Client:
    """One viewer's HTTP session (cookie and CSRF token), or a host's after `login`."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=15),
            headers={"Origin": base},
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # keep cookies from 127.0.0.1
        )
        self.csrf = ""

    async def __aenter__(self) -> Client:
        r = await self.session.get(f"{self.base}/api/me")
        self.csrf = (await r.json())["csrf"]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()

    async def login(self, user: str, password: str) -> int:
        r = await self.session.post(
            f"{self.base}/api/login", json={"username": user, "password": password}
        )
        if r.status == 200:
            self.csrf = (await r.json())["csrf"]
        return r.status

    async def openings(self, bid: str) -> list[str]:
        r = await self.session.get(f"{self.base}/api/broadcasts/{bid}/openings")
        assert r.status == 200, await r.text()
        return [o["id"] for o in (await r.json())["openings"]]

    async def apply(self, oid: str, n: int) -> tuple[int, dict[str, Any]]:
        """Submit application `n`; (status, body). Retries keep the same Idempotency-Key."""
        r = await self.session.post(
            f"{self.base}/api/openings/{oid}/applications",
            json=application(n),
            headers={"X-CSRF-Token": self.csrf, "Idempotency-Key": f"app-{n}"},
        )
        try:
            body = await r.json()
        except (aiohttp.ContentTypeError, ValueError):
            body = {}
        return r.status, body


async def healthy(base: str) -> bool:
    try:
        async with aiohttp.ClientSession() as s:
            r = await s.get(f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=2))
            return r.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False
