"""The `jobcast` command: serve, add-host, hosts, and the maintenance commands."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from aiohttp import web
from jobcast.web.runtime import logs
from jobcast.web.runtime.datadir import (
    PRIVATE_UMASK,
    DataDirBusy,
    DataDirLock,
    die_with_parent,
    make_private,
)
from jobcast.web.runtime.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from jobcast.web.runtime.secret import ensure_secret
from jobcast.web.runtime.settings import SettingError, Settings
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("jobcast")
CHILD_ENV = "JOBCAST_WORKER_SETTINGS"


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- serve ---------------------------------------------------------------------------------------


async def _run_worker(
    settings: Settings,
    *,
    reuse_port: bool,
    on_ready: Callable[[web.Application], object] | None = None,
    keeper: EmbeddedRedis | None = None,
) -> None:
    from jobcast.web.app import create_app

    app = create_app(settings)
    # aiohttp arms its keep-alive timer when a connection opens and clears it only once a
    # whole request header has arrived: the same timer closes connections that never finish
    # their headers (slowloris) and idle keep-alive ones.
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        # The hub closes every socket before this wait (app.on_shutdown); an ordinary request
        # still running gets 1 s, then is cancelled, so a stop takes under 3 s. Cancelling
        # loses nothing acknowledged: a write is one Redis call, and clients retry it with
        # their Idempotency-Key.
        shutdown_timeout=1.0,
        keepalive_timeout=settings.http_idle_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if on_ready is not None:
        res = on_ready(app)
        if asyncio.iscoroutine(res):
            await res
    log.info("worker ready", extra={"pid": os.getpid(), "port": settings.port})
    watch = loop.create_task(_keep(keeper)) if keeper is not None else None
    await stop.wait()
    if watch is not None:
        watch.cancel()
    await runner.cleanup()


async def _keep(keeper: EmbeddedRedis) -> None:
    """Restart the embedded Redis when it dies (from the main thread, which it dies with)."""
    while True:
        await asyncio.sleep(0.2)
        keeper.tick()


def _worker_main() -> int:
    settings = Settings(**json.loads(os.environ[CHILD_ENV]))
    logs.setup(settings.log_level, settings.log_json)
    _install_uvloop()
    asyncio.run(_run_worker(settings, reuse_port=True))
    return 0


def _clear_leftovers(data: Path, binary: str) -> Callable[[], None]:
    def clear() -> None:
        try:
            EmbeddedRedis(data, binary).shutdown_stale()
        except EmbeddedRedisError as e:
            log.warning("could not stop the leftover redis-server", extra={"error": str(e)})

    return clear


def serve(settings: Settings) -> int:
    logs.setup(settings.log_level, settings.log_json)
    os.umask(PRIVATE_UMASK)  # everything Jobcast writes (Redis included) is the owner's only
    data = settings.data_path
    make_private(data)
    lock = DataDirLock(data)
    embedded = None
    try:
        lock.acquire(
            "serve",
            clear_leftovers=_clear_leftovers(data, settings.redis_server),
            allow_server=False,
        )
        if not settings.redis_url:
            embedded = EmbeddedRedis(
                data,
                settings.redis_server,
                appendfsync=settings.redis_appendfsync,
                keep_fds=[lock.fd] if lock.fd is not None else [],
            )
            url = embedded.start()
            settings = settings.with_(redis_url=url)
            log.info("embedded redis started", extra={"url": url})
        lock.record("serve", settings.redis_url)
        if not settings.secret_key:
            settings = settings.with_(secret_key=ensure_secret(data))
        if settings.demo:
            asyncio.run(_seed_demo(settings))
        if settings.workers <= 1:
            _install_uvloop()
            asyncio.run(_run_worker(settings, reuse_port=False, keeper=embedded))
        else:
            _supervise(settings, lock, embedded)
    except (DataDirBusy, EmbeddedRedisError) as e:
        print(f"jobcast: {e}", file=sys.stderr)
        return 2
    finally:
        if embedded is not None:
            embedded.stop()
        lock.release()
    return 0


def _supervise(settings: Settings, lock: DataDirLock, embedded: EmbeddedRedis | None) -> None:
    """Run N workers on one port; restart any that dies (and the embedded Redis); stop them
    all on a signal. The workers die with the supervisor and hold the data directory's lock
    while they live, so a new server cannot start beside workers that outlived theirs."""
    env = dict(os.environ)
    procs: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def spawn(i: int) -> None:
        s = settings.with_(process_name=f"{os.uname().nodename}:w{i}:{os.getpid()}")
        env[CHILD_ENV] = json.dumps(asdict(s))
        procs[i] = subprocess.Popen(
            [sys.executable, "-m", "jobcast", "_worker"],
            env=env,
            pass_fds=[lock.fd] if lock.fd is not None else [],
            preexec_fn=die_with_parent(),
        )

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for i in range(settings.workers):
        spawn(i)
    log.info("workers started", extra={"workers": settings.workers, "port": settings.port})
    while not stopping:
        time.sleep(0.2)
        if embedded is not None:
            embedded.tick()
        for i, p in list(procs.items()):
            if p.poll() is not None and not stopping:
                log.warning("worker exited; restarting", extra={"worker": i, "code": p.returncode})
                time.sleep(0.5)
                spawn(i)
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs.values():
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


async def _seed_demo(settings: Settings) -> None:
    from jobcast.web.runtime.demo import seed

    info = await seed(settings)
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    print("", file=sys.stderr)
    print("Jobcast demo is ready:", file=sys.stderr)
    print(f"  viewer page:  {base}/b/{info['broadcast_id']}", file=sys.stderr)
    print(f"  host console: {base}/host/", file=sys.stderr)
    print(f"  host login:   {info['username']} / {info['password']}", file=sys.stderr)
    print("", file=sys.stderr)
    sys.stderr.flush()


# -- add-host ----------------------------------------------------------------------------------


def add_host(
    settings: Settings, username: str, role: str, password_stdin: bool, org: str = "default"
) -> int:
    from jobcast.web.access.auth import add_user
    from jobcast.web.access.orgs import set_user_org

    if password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("jobcast: passwords differ", file=sys.stderr)
            return 2

    async def run(r: object) -> None:
        from jobcast.web.access.orgs import org_exists

        if not await org_exists(r, org):  # type: ignore[arg-type]
            from jobcast.core.errors import Invalid

            raise Invalid(f"no organization {org!r}; create it with: jobcast orgs add {org}")
        await add_user(r, username, password, role)  # type: ignore[arg-type]
        await set_user_org(r, username, org)  # type: ignore[arg-type]

    return _with_redis(settings, "add-host", run, done=f"{role} {username!r} of {org!r} saved")


def orgs_command(settings: Settings, action: str, org: str | None, name: str) -> int:
    """`jobcast orgs list` and `jobcast orgs add ID [--name NAME]`."""
    from jobcast.web.access import orgs

    async def run(r: object) -> str:
        if action == "add":
            if not org:
                from jobcast.core.errors import Invalid

                raise Invalid("orgs add needs an id")
            await orgs.create_org(r, org, name)  # type: ignore[arg-type]
            return org
        rows = await orgs.list_orgs(r)  # type: ignore[arg-type]
        return "\n" + "\n".join(f"{o['id']}\t{o['name']}" for o in rows)

    return _with_redis(
        settings, "orgs", run, done="organization saved" if action == "add" else "organizations"
    )


# -- hosts -------------------------------------------------------------------------------------


def hosts_command(settings: Settings, action: str, username: str | None) -> int:
    """`jobcast hosts list`, and `disable|enable|remove NAME`.

    Disabling or removing an account ends its sessions and closes its open host sockets on
    every process of a running server (the change is made in that server's Redis).
    """
    from jobcast.web.access import auth

    if action != "list" and not username:
        print(f"jobcast: hosts {action} needs a username", file=sys.stderr)
        return 2

    async def run(r: object) -> str | None:
        if action == "disable":
            await auth.set_disabled(r, username or "", True)  # type: ignore[arg-type]
        elif action == "enable":
            await auth.set_disabled(r, username or "", False)  # type: ignore[arg-type]
        elif action == "remove":
            await auth.remove_user(r, username or "")  # type: ignore[arg-type]
        else:
            rows = await auth.list_users(r)  # type: ignore[arg-type]
            lines = ["username\trole\torganization\tdisabled\tlast login"]
            lines += [
                "\t".join(
                    (
                        u["username"],
                        u["role"],
                        u["org"],
                        "yes" if u["disabled"] else "no",
                        _when(u["last_login"]),
                    )
                )
                for u in rows
            ]
            return "\n" + "\n".join(lines)
        return None

    done = {
        "list": "accounts",
        "disable": f"{username!r} disabled: its sessions ended",
        "enable": f"{username!r} enabled",
        "remove": f"{username!r} removed: its sessions ended",
    }[action]
    return _with_redis(settings, "hosts", run, done=done)


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(ms / 1000))


def _with_redis(settings: Settings, command: str, fn: Callable, done: str) -> int:
    """Run `fn(redis)` against the Redis of this data directory.

    With `--redis-url`, that one. Otherwise, when `jobcast serve` runs on the data directory,
    its Redis (named in the owner file), so the server sees the change at once; when none
    runs, an embedded Redis of our own, under the data directory's lock.
    """
    from jobcast.core.errors import JobcastError
    from jobcast.web.app import redis_client

    lock: DataDirLock | None = None
    embedded = None
    url = settings.redis_url
    os.umask(PRIVATE_UMASK)
    try:
        if not url:
            lock = DataDirLock(settings.data_path)
            server = lock.acquire(
                command,
                clear_leftovers=_clear_leftovers(settings.data_path, settings.redis_server),
                allow_server=True,
            )
            if server is not None:
                url = server.redis_url
            else:
                make_private(settings.data_path)
                embedded = EmbeddedRedis(
                    settings.data_path,
                    settings.redis_server,
                    appendfsync=settings.redis_appendfsync,
                    keep_fds=[lock.fd] if lock.fd is not None else [],
                )
                url = embedded.start()
                lock.record(command, url)

        async def run() -> object:
            r = redis_client(url)
            try:
                # The server's Redis may be restarting: give it a moment, not forever.
                async with asyncio.timeout(30):
                    while True:
                        try:
                            await r.ping()
                            break
                        except (RedisConnectionError, RedisTimeoutError, BusyLoadingError):
                            await asyncio.sleep(0.2)
                return await fn(r)
            finally:
                await r.aclose()

        result = asyncio.run(run())
    except (DataDirBusy, EmbeddedRedisError) as e:
        print(f"jobcast: {e}", file=sys.stderr)
        return 2
    except TimeoutError:
        print(f"jobcast: Redis at {url} does not answer", file=sys.stderr)
        return 2
    except JobcastError as e:
        print(f"jobcast: {e.message} {e.fields or ''}".strip(), file=sys.stderr)
        return 2
    finally:
        if embedded is not None:
            embedded.stop()
        if lock is not None:
            lock.release()
    print(done if result is None else f"{done}: {result}")
    return 0


# -- purge -------------------------------------------------------------------------------------


def purge(settings: Settings, days: int | None) -> int:
    """Delete applications older than the retention period (settings or --days)."""
    keep = settings.application_retention_days if days is None else days
    if keep < 0:
        print("jobcast: --days must be 0 or more", file=sys.stderr)
        return 2

    async def run(r: object) -> str:
        from jobcast.core.events import EventLog
        from jobcast.openings.applications import ApplicationService
        from jobcast.openings.service import OpeningService

        log = EventLog(  # type: ignore[arg-type]
            r, maxlen=settings.event_history, host_maxlen=settings.host_event_history
        )
        svc = ApplicationService(r, log, OpeningService(r, log))  # type: ignore[arg-type]
        return f"{await svc.purge(keep)} deleted"

    return _with_redis(settings, "purge", run, done=f"applications older than {keep} days purged")


# -- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jobcast", description="Jobcast livestream recruitment")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the service")
    Settings.add_arguments(s)
    a = sub.add_parser("add-host", help="create or reset a host or moderator account")
    a.add_argument("username")
    a.add_argument("--role", choices=["host", "moderator"], default="host")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.add_argument("--org", default="default", help="the account's organization (default: default)")
    a.add_argument(
        "--operator",
        action="store_true",
        help="an operator: sees and manages every organization (a host of the organization *)",
    )
    a.add_argument("--data-dir", default=None, help="data directory (embedded Redis)")
    a.add_argument("--redis-url", default=None, help="Redis URL")
    pg = sub.add_parser("purge", help="delete applications older than the retention period")
    pg.add_argument(
        "--days", type=int, default=None, help="keep this many days (default: the setting)"
    )
    pg.add_argument("--data-dir", default=None, help="data directory (embedded Redis)")
    pg.add_argument("--redis-url", default=None, help="Redis URL")
    og = sub.add_parser("orgs", help="list or add organizations (employment centers)")
    og.add_argument("action", choices=["list", "add"])
    og.add_argument("org", nargs="?", default=None, help="id: a-z, 0-9 and -")
    og.add_argument("--name", default="", help="display name")
    og.add_argument("--data-dir", default=None, help="data directory (embedded Redis)")
    og.add_argument("--redis-url", default=None, help="Redis URL")
    hs = sub.add_parser("hosts", help="list, disable, enable or remove host and moderator accounts")
    hs.add_argument("action", choices=["list", "disable", "enable", "remove"])
    hs.add_argument("username", nargs="?", default=None)
    hs.add_argument("--data-dir", default=None, help="data directory (embedded Redis)")
    hs.add_argument("--redis-url", default=None, help="Redis URL")
    sub.add_parser("_worker", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "_worker":
        return _worker_main()
    overrides = {
        k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__ and v is not None
    }
    try:
        settings = Settings.from_env(**overrides)
    except SettingError as e:
        print(f"jobcast: {e}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve(settings)
    if args.command == "add-host":
        if args.operator and args.role != "host":
            print("jobcast: an operator is a host account", file=sys.stderr)
            return 2
        org = "*" if args.operator else args.org
        return add_host(settings, args.username, args.role, args.password_stdin, org)
    if args.command == "orgs":
        return orgs_command(settings, args.action, args.org, args.name)
    if args.command == "hosts":
        return hosts_command(settings, args.action, args.username)
    if args.command == "purge":
        return purge(settings, args.days)
    raise SystemExit(f"unknown command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
