"""One owner per data directory.

Whoever runs Jobcast against a data directory (`jobcast serve`, or a command such as `add-host`
when no server runs) holds an exclusive `flock` on DATA_DIR/jobcast.lock for as long as it
works there, and writes DATA_DIR/jobcast.pid naming itself and the Redis it uses. Its children
(workers, the embedded redis-server) inherit the locked file, so the lock stays held until the
last of them is gone: a server killed with SIGKILL cannot be replaced while its workers or its
Redis still run. Those children die with their parent (`die_with_parent`), so the lock frees
itself within seconds.

A command run beside a live server does not start a Redis of its own: it reads the owner file
and uses the server's Redis.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

LOCK_NAME = "jobcast.lock"
OWNER_NAME = "jobcast.pid"
_PR_SET_PDEATHSIG = 1


class DataDirBusy(RuntimeError):
    """Another live process owns the data directory."""


@dataclass(frozen=True)
class Owner:
    pid: int
    started: int  # the process's start time in clock ticks (tells a reused pid apart)
    command: str
    redis_url: str

    def alive(self) -> bool:
        return _start_time(self.pid) == self.started


def _start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


class DataDirLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path / LOCK_NAME
        self.owner_path = path / OWNER_NAME
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.mkdir(parents=True, exist_ok=True)
        if self.fd is None:
            self.fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def record(self, command: str, redis_url: str) -> None:
        """Name this process as the owner, and the Redis it uses, for commands run beside it."""
        me = os.getpid()
        owner = Owner(me, _start_time(me) or 0, command, redis_url)
        tmp = self.owner_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(owner), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.owner_path)

    def owner(self) -> Owner | None:
        try:
            raw = json.loads(self.owner_path.read_text())
            return Owner(
                int(raw["pid"]), int(raw["started"]), str(raw["command"]), raw["redis_url"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def holders(self) -> list[tuple[int, str]]:
        """Processes that have the lock file open (pid, command line): who keeps it locked."""
        target = os.stat(self.lock_path)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                for fd in (entry / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        st = fd.stat()
                        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                            found.append((int(entry.name), cmd.decode(errors="replace")))
                            break
        return found

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            owner = self.owner()
            if owner is not None and owner.pid == os.getpid():
                self.owner_path.unlink()
        os.close(self.fd)  # closing our descriptor; children that inherited it hold it on
        self.fd = None

    def acquire(
        self,
        command: str,
        *,
        clear_leftovers: Callable[[], None],
        allow_server: bool,
        wait_commands: float = 30.0,
        wait_leftovers: float = 20.0,
    ) -> Owner | None:
        """Take the lock, or (with `allow_server`) find the live server that holds it.

        Returns None once the lock is ours, or the live `serve` owner whose Redis to use.
        Waits for a command that holds it (they are short), and for the leftovers of a killed
        server (its workers and Redis die with it; `clear_leftovers` asks its Redis to shut
        down cleanly). Raises DataDirBusy when a live server holds it and `allow_server` is
        false, or when the wait runs out.
        """
        deadline: float | None = None
        cleared = False
        while True:
            if self.try_acquire():
                return None
            owner = self.owner()
            now = time.monotonic()
            if owner is not None and owner.alive():
                if owner.command == "serve":
                    if allow_server:
                        return owner
                    raise DataDirBusy(
                        f"{self.path} is in use by jobcast serve (PID {owner.pid}); stop it"
                        " first, or give this server its own --data-dir"
                    )
                what = f"jobcast {owner.command} (PID {owner.pid})"
                limit = wait_commands
            else:
                what = "processes left by a stopped server"
                limit = wait_leftovers
                if not cleared:
                    clear_leftovers()
                    cleared = True
            if deadline is None:
                deadline = now + limit
                print(f"jobcast: waiting for {what} to release {self.path}", file=sys.stderr)
            if now >= deadline:
                held = ", ".join(f"PID {pid} ({cmd[:60]})" for pid, cmd in self.holders())
                raise DataDirBusy(f"{self.path} is still held by {held or what}")
            time.sleep(0.1)


def die_with_parent(
    sig: int = signal.SIGTERM, *, umask: int | None = None
) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child get `sig` when its parent dies (Linux), and
    optionally sets its umask (the embedded Redis writes applicants' data).

    The parent is the thread that forks, so children must be started from the main thread.
    When the parent died between the fork and the prctl, the child exits at once.
    """
    linux = sys.platform.startswith("linux")
    if not linux and umask is None:
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl if linux else None
    parent = os.getpid()

    def preexec() -> None:
        if umask is not None:
            os.umask(umask)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
            if os.getppid() != parent:
                os._exit(1)

    return preexec


PRIVATE_UMASK = 0o077


def make_private(path: Path) -> None:
    """Data directory 0700, and every file and folder under it for its owner only.

    Applies to directories made before this rule (an older install, or a umask of 022): the
    append-only files hold applicants' names and phones, and the accounts' password hashes.
    """
    path.mkdir(parents=True, exist_ok=True)
    for root, _dirs, files in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(root, 0o700)
        for name in files:
            full = os.path.join(root, name)
            with contextlib.suppress(OSError):
                if not os.path.islink(full):
                    os.chmod(full, 0o600 if not _is_socket(full) else 0o700)


def _is_socket(path: str) -> bool:
    import stat

    with contextlib.suppress(OSError):
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    return False
