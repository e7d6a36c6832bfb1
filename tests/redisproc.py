"""A real redis-server child process for tests: start, SIGKILL, restart on the same port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import redis

from tests.waiting import poll_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisProcess:
    def __init__(self, workdir: Path, *, fsync: str = "always") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.exe = exe

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.fsync,
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(self.dir / "redis.log"),
                "--maxclients",
                "20000",
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        poll_until(self._answers, timeout, "redis-server to answer PING")

    def _answers(self) -> bool:
        """It answers PING (its AOF loaded, so it takes writes); it exited: RuntimeError."""
        assert self.proc is not None
        try:
            c = redis.Redis(port=self.port, socket_connect_timeout=0.2)
            if c.ping():
                c.close()
                return True
        except redis.exceptions.RedisError:
            pass
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(self.dir / 'redis.log').read_text()}")
        return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final AOF flush beyond what fsync policy already wrote."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def flush(self) -> None:
        c = redis.Redis(port=self.port)
        c.flushall()
        c.close()
