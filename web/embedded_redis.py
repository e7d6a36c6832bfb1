"""A private redis-server child process for `jobcast serve` without `--redis-url`.

AOF on with `appendfsync everysec`, data in DATA_DIR/redis, listening on a unix socket only
(no TCP port, so nothing else on the machine can reach it), stopped when Jobcast stops.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis


class EmbeddedRedisError(RuntimeError):
    pass


class EmbeddedRedis:
    def __init__(self, data_dir: Path, binary: str = "redis-server") -> None:
        self.dir = (data_dir / "redis").resolve()
        self.binary = binary
        self.socket = self.dir / "redis.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        exe = shutil.which(self.binary)
        if exe is None:
            raise EmbeddedRedisError(
                f"{self.binary!r} not found on PATH: install Redis (apt-get install redis-server)"
                " or pass --redis-url"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket)) > 100:  # AF_UNIX path limit
            raise EmbeddedRedisError(f"data dir path too long for a unix socket: {self.socket}")
        if self.socket.exists():
            self.socket.unlink()
        args = [
            exe,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
            "--maxclients",
            "10000",
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self.proc.returncode}; see {self.dir / 'redis.log'}"
                )
            if self.socket.exists():
                try:
                    client = redis.Redis(unix_socket_path=str(self.socket))
                    if client.ping():
                        client.close()
                        return self.url
                except redis.exceptions.RedisError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError("redis-server did not start in time")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # Redis flushes the AOF on SIGTERM
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


def ensure_secret(data_dir: Path) -> str:
    """Read or create the cookie-signing key shared by every worker."""
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = os.urandom(32).hex()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key
