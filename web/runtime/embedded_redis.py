"""A private redis-server child process for `jobcast serve` without `--redis-url`.

AOF on, with `appendfsync always` by default: Redis fsyncs each write before it answers, so an
acknowledged application is on disk, and when the disk is full Redis stops rather than answer
writes it could not keep. Data in DATA_DIR/redis, listening on a unix socket only (no TCP
port, so nothing else on the machine can reach it), stopped when Jobcast stops.

Only the data directory's owner (web/runtime/datadir.py) starts one. It dies with its parent, and
the owner restarts it when it dies (`tick`). Before starting, a Redis still answering on the socket
(left by a server killed before it could stop it) is shut down cleanly (SHUTDOWN flushes its
AOF); a socket that answers is never removed from under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import redis
from jobcast.web.runtime.datadir import PRIVATE_UMASK, die_with_parent
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger("jobcast.redis")


class EmbeddedRedisError(RuntimeError):
    pass


class EmbeddedRedis:
    def __init__(
        self,
        data_dir: Path,
        binary: str = "redis-server",
        *,
        appendfsync: str = "always",
        keep_fds: Sequence[int] = (),
    ) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.binary = binary
        self.appendfsync = appendfsync
        self.keep_fds = tuple(keep_fds)
        self.socket = self.dir / "redis.sock"
        self.pidfile = self.dir / "redis.pid"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._restart_at: float | None = None
        self._backoff = 0.5
        self._started_at = 0.0
        self._stopping = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _args(self) -> list[str]:
        exe = shutil.which(self.binary)
        if exe is None:
            raise EmbeddedRedisError(
                f"{self.binary!r} not found on PATH: install Redis (apt-get install redis-server)"
                " or pass --redis-url"
            )
        if self.appendfsync not in ("always", "everysec", "no"):
            raise EmbeddedRedisError("redis_appendfsync must be always, everysec or no")
        return [
            exe,
            "--port",
            "0",
            "--unixsocket",
            str(self.socket),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.dir),
            "--pidfile",
            str(self.pidfile),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
            "--maxclients",
            "10000",
        ]

    def answers(self, timeout: float = 0.5) -> bool:
        """Whether a Redis answers on the socket (ours or one left behind)."""
        if not self.socket.exists():
            return False
        client = _client(self.socket, timeout)
        try:
            return bool(client.ping())
        except redis.exceptions.BusyLoadingError:
            return True
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()

    def shutdown_stale(self, timeout: float = 15.0) -> None:
        """Shut down a Redis that answers on our socket but is not our child.

        SHUTDOWN makes it fsync its AOF and exit (and remove its socket itself).
        """
        if (self.proc is not None and self.proc.poll() is None) or not self.answers():
            return
        pid = self._pid_from_file()
        log.warning(
            "stopping a redis-server left running on the data directory", extra={"pid": pid}
        )
        client = _client(self.socket, timeout)
        try:
            client.shutdown()
        except redis.exceptions.RedisError as e:
            log.warning("SHUTDOWN failed", extra={"error": str(e)})
        finally:
            client.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            gone = pid is None or not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
            if gone and not self.answers(0.2):
                return
            time.sleep(0.05)
        raise EmbeddedRedisError(f"the redis-server on {self.socket} (PID {pid}) did not stop")

    def _pid_from_file(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def spawn(self) -> None:
        """Start redis-server without waiting for it to answer."""
        args = self._args()
        self.dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket)) > 100:  # AF_UNIX path limit
            raise EmbeddedRedisError(f"data dir path too long for a unix socket: {self.socket}")
        if self.answers():
            # Redis unlinks the socket path before binding it: never let it take the path of
            # a Redis that still answers there.
            self.shutdown_stale()
            if self.answers():
                raise EmbeddedRedisError(f"another redis-server answers on {self.socket}")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches Jobcast, which stops Redis in order
            pass_fds=self.keep_fds,  # it holds the data directory's lock while it lives
            preexec_fn=die_with_parent(umask=PRIVATE_UMASK),  # its files: owner only
        )
        self._started_at = time.monotonic()

    def start(self, timeout: float = 30.0) -> str:
        """Start and wait until it answers (loading a large AOF takes a while)."""
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self.proc.returncode}; see {self.dir / 'redis.log'}"
                )
            if self.answers(0.5):
                return self.url
            time.sleep(0.05)
        self.stop()
        raise EmbeddedRedisError("redis-server did not start in time")

    def tick(self) -> None:
        """Called a few times a second by the owner: restart Redis when it died.

        Never blocks for long: the restart is spawned, and clients reconnect by themselves
        once it answers. The delay doubles (to 10 s) while it keeps dying.
        """
        if self._stopping or self.proc is None or self.proc.poll() is None:
            return
        now = time.monotonic()
        if self._restart_at is None:
            if now - self._started_at > 30:
                self._backoff = 0.5
            log.warning(
                "embedded redis-server exited; restarting",
                extra={"code": self.proc.returncode, "retry_in": self._backoff},
            )
            self._restart_at = now + self._backoff
            self._backoff = min(self._backoff * 2, 10.0)
            return
        if now < self._restart_at:
            return
        self._restart_at = None
        try:
            self.spawn()
        except (EmbeddedRedisError, OSError) as e:
            log.error("embedded redis-server did not start", extra={"error": str(e)})
            self._started_at = now
            return
        self.restarts += 1

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping = True
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # Redis fsyncs its AOF and exits on SIGTERM
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)


def _client(socket: Path, timeout: float) -> redis.Redis:
    """One try, no retries: redis-py's default retries with backoff would stall the caller
    (the supervisor's loop) for seconds on a socket nobody listens on."""
    return redis.Redis(
        unix_socket_path=str(socket),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _is_zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True
