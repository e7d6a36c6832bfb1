"""Applications per second with durable acknowledgement, and latency, over real HTTP.

    python bench/apply.py [--seconds 10] [--concurrency 16] [--rate 1000]

Starts a redis-server (AOF on, `appendfsync always`, like the embedded one) in a temp dir,
runs the Jobcast app as a separate process on 127.0.0.1, and drives it with many keep-alive
HTTP/1.1 connections from this process (a small hand-written client, so the load generator
costs little CPU next to the server on a 2-core box). Each request is a full application
with a fresh Idempotency-Key and a unique phone; 5% are sent twice at once (a double tap)
and 5% are re-sent after their answer (a retry), both with the same key.

Afterwards it checks Redis: every acknowledged application is stored (lost = 0) and each
phone has exactly one application, matching what every answer for it said (duplicated = 0).

Runs, in the same invocation, each --repeat times (interleaved), reported as the median and
the range over the repeats:
  atomic/always     the product: one Lua script per application, fsync before every answer
  atomic/everysec   the same code with `appendfsync everysec` (fsync once a second)
  naive/always      baseline: the same checks and writes as separate round trips, no atomicity
and, for atomic/always, an open-loop run at a fixed arrival rate (--rate) for its p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from jobcast.core import keys  # noqa: E402
from jobcast.core.broadcasts import BroadcastService  # noqa: E402
from jobcast.core.events import EventLog  # noqa: E402
from jobcast.openings.applicant import CONSENT_VERSION  # noqa: E402
from jobcast.openings.models import validate_opening  # noqa: E402
from jobcast.openings.service import OpeningService  # noqa: E402
from jobcast.web.access.auth import Signer, viewer_csrf  # noqa: E402

SECRET = "bench-secret-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- processes ---------------------------------------------------------------------------------


class RedisServer:
    def __init__(self, fsync: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="jc-bench-redis-"))
        self.port = free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server is not installed")
        self.proc = subprocess.Popen(
            [
                exe,
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
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
        )
        _wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise SystemExit(f"nothing listening on port {port}")


def start_app(redis_url: str, variant: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [sys.executable, __file__, "serve", "--redis-url", redis_url, "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--variant", variant],
        stdin=subprocess.DEVNULL,
    )
    _wait_port(port, 30)
    return proc, port


def serve(args: argparse.Namespace) -> None:
    """The app process: create_app as `jobcast serve` builds it, on uvloop."""
    from aiohttp import web
    from jobcast.web.api.openings import APPLICATIONS
    from jobcast.web.app import create_app
    from jobcast.web.runtime.settings import Settings

    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    settings = Settings(
        redis_url=args.redis_url,
        port=args.port,
        secret_key=SECRET,
        data_dir=tempfile.mkdtemp(prefix="jc-bench-app-"),
        apply_per_viewer=10**6,
        apply_per_ip=10**7,
        log_json=False,
        log_level="warning",
    )

    async def naive(app: web.Application) -> None:
        svc = app[APPLICATIONS]
        svc._store = _naive_store.__get__(svc)  # type: ignore[method-assign]

    async def main() -> None:
        app = create_app(settings)
        if args.variant == "naive":
            app.on_startup.append(naive)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


async def _naive_store(
    self: Any, bid: str, oid: str, vid: str, ip: str, key: str, fp: str, fields: dict[str, Any]
) -> Any:
    """Baseline: the same checks and writes as the Lua script, one round trip each, no
    transaction. Correct one request at a time; races when two arrive together."""
    from jobcast.core.errors import Conflict, Invalid, RateLimited
    from jobcast.core.ids import new_id
    from jobcast.openings.applications import ApplyResult

    r, lim = self.redis, self.limits
    ikey = keys.idempotency(bid, vid, key)
    prev = await r.get(ikey)
    if prev:
        pfp, aid, dup = prev.decode().split()
        if pfp != fp:
            raise Invalid("key reused", fields={"Idempotency-Key": "reused"})
        return ApplyResult(aid, oid, duplicate=dup == "1", replayed=True, new=False)
    op = orjson.loads(await r.hget(keys.openings(bid), oid))
    if op["status"] != "published":
        raise Conflict("closed")
    for who, limit in (("v:" + vid, lim.per_viewer), ("ip:" + ip, lim.per_ip)):
        rk = keys.apply_rate(bid, who, lim.window)
        n = await r.incr(rk)
        if n == 1:
            await r.expire(rk, lim.window)
        if n > limit:
            raise RateLimited("slow down", retry_after=1)
    existing = await r.hget(keys.opening_phones(bid, oid), fields["phone"])
    if existing:
        await r.set(ikey, f"{fp} {existing.decode()} 1", ex=lim.idempotency_ttl)
        return ApplyResult(existing.decode(), oid, duplicate=True, replayed=False, new=False)
    now = int(time.time() * 1000)
    aid = new_id(10)
    record = {
        "id": aid,
        "opening_id": oid,
        "broadcast_id": bid,
        "viewer_id": vid,
        "status": "new",
        "created_at": now,
        "updated_at": now,
        "consented_at": now,
        "opening_title": op["title"],
        "employer": op["employer"]["name"],
        **fields,
    }
    await r.hset(keys.application(bid, aid), mapping=record)
    await r.hset(keys.opening_phones(bid, oid), fields["phone"], aid)
    await r.zadd(keys.applications(bid), {aid: now})
    await r.zadd(keys.opening_applications(bid, oid), {aid: now})
    await r.hset(keys.viewer_applied(bid, vid), oid, aid)
    await r.set(ikey, f"{fp} {aid} 0", ex=lim.idempotency_ttl)
    count = await r.zcard(keys.opening_applications(bid, oid))
    total = await r.zcard(keys.applications(bid))
    data = {"opening_id": oid, "application_id": aid, "count": count, "total": total}
    await self.log.publish(bid, "application.received", data, audience="h")
    return ApplyResult(aid, oid, duplicate=False, replayed=False, new=True)


# -- load ------------------------------------------------------------------------------------


async def seed(redis_url: str) -> tuple[str, list[str]]:
    r = aioredis.Redis.from_url(redis_url)
    log = EventLog(r)
    b = await BroadcastService(r, log).create({"title": "压测 · bench", "description": ""})
    svc = OpeningService(r, log)
    rows = [
        validate_opening(
            {
                "title": f"岗位 {i}",
                "employer": {"name": "鸡西市某单位"},
                "city": "鸡西市",
                "salary_min": 4000,
                "salary_max": 6000,
                "status": "published",
            }
        )
        for i in range(5)
    ]
    made = await svc.create_many(b.id, rows)
    await r.aclose()
    return b.id, [o.id for o in made]


class Conn:
    """One keep-alive HTTP/1.1 connection; requests on it go one at a time."""

    def __init__(self, port: int, vid: str) -> None:
        self.port = port
        signer = Signer(SECRET.encode())
        self.cookie = "jc_vid=" + signer.sign("viewer", vid)
        self.csrf = viewer_csrf(signer, vid)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, key: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Cookie: {self.cookie}\r\nX-CSRF-Token: {self.csrf}\r\n"
            f"Idempotency-Key: {key}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        assert self.reader is not None
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        data = await self.reader.readexactly(length)
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()


@dataclass
class Results:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    answers: dict[str, set[str]] = field(default_factory=dict)  # phone -> ids answered
    acked: int = 0  # applications attempted (each with its own phone and key)
    elapsed: float = 0.0

    def record(self, status: int, data: bytes, phone: str, lat: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(lat)
        if status in (200, 201):
            aid = orjson.loads(data)["application_id"]
            self.answers.setdefault(phone, set()).add(aid)


class Load:
    def __init__(self, port: int, oids: list[str]) -> None:
        self.port = port
        self.oids = oids
        self.seq = 0
        self.res = Results()
        self.tag = uuid.uuid4().hex[:4]

    def next_request(self) -> tuple[str, bytes, str, str]:
        self.seq += 1
        phone = f"13{self.seq:09d}"
        body = {
            "name": "测试用户",
            "phone": phone,
            "email": f"u{self.seq}@example.com",
            "school": "黑龙江工业学院",
            "major": "机电一体化",
            "degree": "associate",
            "graduation_year": 2026,
            "note": "压测申请",
            "consent": True,
            "consent_version": CONSENT_VERSION,
        }
        oid = self.oids[self.seq % len(self.oids)]
        return f"/api/openings/{oid}/applications", orjson.dumps(body), phone, uuid.uuid4().hex

    async def one(self, conns: list[Conn], spare: Conn) -> None:
        """One application; sometimes a double tap (two at once) or a retry afterwards."""
        path, body, phone, key = self.next_request()
        roll = random.random()
        t0 = time.perf_counter()
        if roll < 0.05:
            first, second = await asyncio.gather(
                conns[0].post(path, body, key), spare.post(path, body, key)
            )
            lat = time.perf_counter() - t0
            self.res.record(*first, phone, lat)
            self.res.record(*second, phone, lat)
        else:
            status, data = await conns[0].post(path, body, key)
            self.res.record(status, data, phone, time.perf_counter() - t0)
            if roll > 0.95:
                t1 = time.perf_counter()
                status, data = await conns[0].post(path, body, key)
                self.res.record(status, data, phone, time.perf_counter() - t1)
        self.res.acked += 1

    async def closed_loop(self, concurrency: int, seconds: float) -> Results:
        deadline = time.perf_counter() + seconds

        async def worker(i: int) -> None:
            vid = f"vbench{self.tag}{i}"
            c, spare = Conn(self.port, vid), Conn(self.port, vid)
            try:
                while time.perf_counter() < deadline:
                    await self.one([c], spare)
            finally:
                await c.close()
                await spare.close()

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        self.res.elapsed = time.perf_counter() - t0
        return self.res

    async def open_loop(self, rate: float, seconds: float, pool: int) -> Results:
        """Start `rate` applications per second on schedule, whatever the answers do."""
        idle: asyncio.Queue[tuple[Conn, Conn]] = asyncio.Queue()
        for i in range(pool):
            vid = f"vopen{self.tag}{i}"
            pair = (Conn(self.port, vid), Conn(self.port, vid))
            for c in pair:  # connect up front: no burst of handshakes at the start
                c.reader, c.writer = await asyncio.open_connection("127.0.0.1", self.port)
            idle.put_nowait(pair)
        late = 0
        tasks: set[asyncio.Task[None]] = set()

        async def run(pair: tuple[Conn, Conn]) -> None:
            try:
                await self.one([pair[0]], pair[1])
            finally:
                idle.put_nowait(pair)

        t0 = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if idle.empty():
                late += 1
            pair = await idle.get()
            t = asyncio.create_task(run(pair))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        self.res.elapsed = time.perf_counter() - t0
        while not idle.empty():
            a, b = idle.get_nowait()
            await a.close()
            await b.close()
        if late:
            print(f"    ({late} requests waited for a free connection)")
        return self.res


async def verify(redis_url: str, bid: str, res: Results) -> tuple[int, int, int]:
    """(stored, lost, duplicated) from what Redis holds and what the answers said.

    `duplicated` is the number of applicants (phones) stored or answered more than once."""
    r = aioredis.Redis.from_url(redis_url)
    ids = [x.decode() for x in await r.zrange(keys.applications(bid), 0, -1)]
    phones: dict[str, list[str]] = {}
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        async with r.pipeline(transaction=False) as p:
            for aid in chunk:
                p.hget(keys.application(bid, aid), "phone")
            got = await p.execute()
        for aid, ph in zip(chunk, got, strict=True):
            phones.setdefault(ph.decode().removeprefix("+86"), []).append(aid)
    await r.aclose()
    stored_ids = set(ids)
    lost = sum(1 for answered in res.answers.values() for a in answered if a not in stored_ids)
    # Phones that got more than one application, stored or answered, and stored applications
    # whose phone no answer mentions: each counted once.
    doubled = {p for p, v in phones.items() if len(v) > 1}
    doubled |= {p for p, v in res.answers.items() if len(v) > 1}
    duplicated = len(doubled) + len(set(phones) - set(res.answers))
    return len(ids), lost, duplicated


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report cost per application."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))] * 1000 if s else 0.0


async def run_variant(
    variant: str, fsync: str, args: argparse.Namespace, rate: float | None = None
) -> dict[str, Any]:
    redis = RedisServer(fsync)
    redis.start()
    app, port = start_app(redis.url, variant)
    try:
        bid, oids = await seed(redis.url)
        warm = Load(port, oids)
        await warm.closed_loop(8, 1.0)  # connections, script cache, JIT-free warm-up
        load = Load(port, oids)
        load.seq = 10**7  # phones apart from the warm-up's
        assert redis.proc is not None
        cpu0 = cpu_seconds(app.pid), cpu_seconds(redis.proc.pid), time.process_time()
        if rate is None:
            res = await load.closed_loop(args.concurrency, args.seconds)
        else:
            res = await load.open_loop(rate, args.seconds, pool=args.pool)
        cpu1 = cpu_seconds(app.pid), cpu_seconds(redis.proc.pid), time.process_time()
        n_req = max(1, len(res.latencies))
        per = [round((b - a) * 1000 / n_req, 3) for a, b in zip(cpu0, cpu1, strict=True)]
        await asyncio.sleep(0.2)
        r = aioredis.Redis.from_url(redis.url)
        delayed = (await r.info("persistence")).get("aof_delayed_fsync", 0)
        await r.aclose()
        everything = Results(answers={**warm.res.answers, **res.answers})
        stored, lost, dup = await verify(redis.url, bid, everything)
        ok_answers = sum(v for k, v in res.statuses.items() if k in (200, 201))
        return {
            "run": f"{variant}/{fsync}" + (f" @{rate:.0f}/s" if rate else ""),
            "applications_per_s": round(len(res.answers) / res.elapsed, 1),
            "requests_per_s": round(len(res.latencies) / res.elapsed, 1),
            "p50_ms": round(pct(res.latencies, 0.50), 2),
            "p99_ms": round(pct(res.latencies, 0.99), 2),
            "max_ms": round(max(res.latencies) * 1000, 2),
            "applications": res.acked,
            "answers_ok": ok_answers,
            "errors": {k: v for k, v in res.statuses.items() if k not in (200, 201)},
            "stored": stored,
            "lost": lost,
            "duplicated": dup,
            "cpu_ms_per_request": {"app": per[0], "redis": per[1], "client": per[2]},
            "aof_delayed_fsync": delayed,  # writes Redis held back behind a slow fsync
        }
    finally:
        app.send_signal(signal.SIGTERM)
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()
        redis.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--redis-url", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--variant", choices=["atomic", "naive"], default="atomic")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rate", type=float, default=1000.0, help="open-loop arrival rate")
    p.add_argument("--pool", type=int, default=64, help="connections for the open-loop run")
    p.add_argument("--only", default="", help="run only these runs (comma-separated indexes)")
    p.add_argument("--json", action="store_true", help="print one JSON line per run")
    p.add_argument("--repeat", type=int, default=3, help="runs of each kind (median, range)")
    args = p.parse_args()
    if args.cmd == "serve":
        serve(args)
        return
    load_before = os.getloadavg()
    runs = [
        ("atomic", "always", None),
        ("atomic", "always", args.rate),
        ("atomic", "everysec", None),
        ("naive", "always", None),
    ]
    if args.only:
        runs = [runs[int(i)] for i in args.only.split(",")]
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    results: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeat):
        for variant, fsync, rate in runs:
            out = asyncio.run(run_variant(variant, fsync, args, rate))
            results.setdefault(out["run"], []).append(out)
            print(json.dumps(out, ensure_ascii=False) if args.json else _line(out), flush=True)
    print(f"\nmedian [min-max] of {args.repeat} runs each:")
    for name, outs in results.items():
        print(_summary(name, outs))
    print(
        f"load average before: {load_before[0]:.2f}, after: {os.getloadavg()[0]:.2f} "
        f"({os.cpu_count()} cores); {args.seconds:.0f} s per run, "
        f"{args.concurrency} closed-loop clients"
    )


def _summary(name: str, outs: list[dict[str, Any]]) -> str:
    def fig(key: str, fmt: str) -> str:
        vals = sorted(o[key] for o in outs)
        med = vals[len(vals) // 2]
        return f"{med:{fmt}} [{vals[0]:{fmt}}-{vals[-1]:{fmt}}]"

    lost = sum(o["lost"] for o in outs)
    dup = sum(o["duplicated"] for o in outs)
    n = sum(o["applications"] for o in outs)
    return (
        f"{name:<26} {fig('applications_per_s', '.0f')} appl/s  p50 {fig('p50_ms', '.2f')} ms"
        f"  p99 {fig('p99_ms', '.2f')} ms  applications={n} lost={lost} duplicated={dup}"
    )


def _line(o: dict[str, Any]) -> str:
    return (
        f"{o['run']:<28} {o['applications_per_s']:>8.1f} appl/s  p50 {o['p50_ms']:>6.2f} ms  "
        f"p99 {o['p99_ms']:>6.2f} ms  max {o['max_ms']:>7.2f} ms  n={o['applications']}  "
        f"stored={o['stored']}  lost={o['lost']}  duplicated={o['duplicated']}  "
        f"errors={o['errors']}  cpu ms/request {o['cpu_ms_per_request']}  "
        f"aof_delayed_fsync={o['aof_delayed_fsync']}"
    )


if __name__ == "__main__":
    main()
