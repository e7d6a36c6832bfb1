"""Fan-out benchmark: N viewers on `/ws/b/{bid}`, a publisher at R events/s, against a real
`jobcast serve` subprocess and, in the same run, the naive baseline (bench/naive_server.py).

    python bench/fanout.py --viewers 5000 --rate 10 --duration 20 --workers 1

What it does, per server under test:
  1. starts the server (a real subprocess) against a redis-server this script started in a
     temp dir (AOF everysec), waits until every worker listens, warms it up with a few viewers;
  2. reads the server's RSS, opens N viewers from client processes (bench/wsclient.py: raw
     asyncio sockets, hand-written handshake and frame parser), waits until every one got
     `synced`, reads the RSS again: (RSS with N idle viewers - RSS with none) / N;
  3. publishes R*duration events through EventLog.publish (data {"t": ns, "i": i}), reading
     the CPU time of the server, client, Redis and publisher processes over that window;
  4. lets the clients drain, and each reports what it received: latency histogram, and per
     viewer whether it got every i exactly once, in order.

Everything listens and connects on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import wsclient  # noqa: E402
from jobcast.core.broadcasts import BroadcastService  # noqa: E402
from jobcast.core.event_types import register  # noqa: E402
from jobcast.core.events import EventLog  # noqa: E402

register(wsclient.TICK, "public", "the fan-out benchmark's timed event")
CLK = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret"
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0, 0.0
    return int(parts[11]) / CLK, int(parts[12]) / CLK


def cpu_of(pids: list[int]) -> tuple[float, float]:
    times = [cpu_seconds(p) for p in pids]
    return sum(t[0] for t in times), sum(t[1] for t in times)


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError):
        return 0


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


def listeners(port: int) -> int:
    """How many sockets LISTEN on 127.0.0.1:port (one per SO_REUSEPORT worker)."""
    want = f"0100007F:{port:04X}"
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == want and cols[3] == "0A":
                n += 1
    return n


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
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
                str(workdir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxclients",
                "10000",
                "--logfile",
                str(workdir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Server:
    """The server under test: `jobcast serve` or the naive baseline, as real subprocesses."""

    def __init__(self, kind: str, redis_url: str, workers: int, workdir: Path) -> None:
        self.kind = kind
        self.workers = workers
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = open(workdir / f"{kind}-{self.port}.log", "wb")
        env = dict(os.environ)
        if kind == "jobcast":
            exe = shutil.which("jobcast") or str(Path(sys.executable).parent / "jobcast")
            env.update(
                JOBCAST_SECRET_KEY=SECRET,
                JOBCAST_DATA_DIR=str(workdir / "data"),
                JOBCAST_LOG_LEVEL="warning",
                # Every bench viewer comes from 127.0.0.1, like a hall behind one NAT.
                JOBCAST_WS_CONNECTIONS_PER_IP="100000",
            )
            cmd = [exe, "serve", "--redis-url", redis_url, "--port", str(self.port)]
            cmd += ["--host", "127.0.0.1", "--workers", str(workers)]
            self.command = " ".join(cmd[1:])
            self.procs.append(self._spawn(cmd, env))
        else:
            cmd = [sys.executable, str(HERE / "naive_server.py"), "--port", str(self.port)]
            cmd += ["--redis-url", redis_url]
            self.command = f"{workers} x naive_server.py"
            for _ in range(workers):
                self.procs.append(self._spawn(cmd, env))
        deadline = time.monotonic() + 30
        while listeners(self.port) < workers:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                tail = Path(self.log.name).read_text(errors="replace")[-2000:]
                raise SystemExit(f"{kind} server did not start:\n{tail}")
            time.sleep(0.1)

    def _spawn(self, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=HERE.parent,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def serving_pids(self) -> list[int]:
        """The processes that hold viewers (with --workers > 1: the supervisor's children)."""
        if self.kind == "jobcast" and self.workers > 1:
            return children(self.procs[0].pid)
        return [p.pid for p in self.procs]

    def all_pids(self) -> list[int]:
        return sorted({p.pid for p in self.procs} | set(self.serving_pids()))

    def rss(self) -> int:
        return sum(rss_bytes(p) for p in self.serving_pids())

    def errors(self) -> list[str]:
        """The first lines of the server's log that mention an error."""
        text = Path(self.log.name).read_text(errors="replace")
        return [ln[:300] for ln in text.splitlines() if "error" in ln.lower()][:5]

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.log.close()


# -- one measured run ------------------------------------------------------------------------


class Clients:
    def __init__(
        self, n: int, procs: int, port: int, path: str, cookie_secret: str, from_i: int
    ) -> None:
        ctx = mp.get_context("spawn")
        self.pipes = []
        self.procs = []
        shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        for share in shares:
            if not share:
                continue
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=wsclient.client_main,
                args=(child, "127.0.0.1", port, path, share, cookie_secret, from_i),
                daemon=True,
            )
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)

    async def ask(self, msg: tuple | None, timeout: float) -> list[tuple]:
        loop = asyncio.get_running_loop()
        if msg is not None:
            for c in self.pipes:
                c.send(msg)
        out = []
        for c in self.pipes:
            ok = await loop.run_in_executor(None, c.poll, timeout)
            if not ok:
                raise SystemExit(f"client did not answer {msg!r} within {timeout:.0f}s")
            out.append(c.recv())
        return out

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def errors(self) -> list[str]:
        """The first lines of the server's log that mention an error."""
        text = Path(self.log.name).read_text(errors="replace")
        return [ln[:300] for ln in text.splitlines() if "error" in ln.lower()][:5]

    def stop(self) -> None:
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()


def percentile(hist: dict[int, int], q: float) -> float:
    """The q-quantile of a bucket histogram, in ms (bucket upper bound)."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank = math.ceil(q * total)
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return (b + 1) * wsclient.BUCKET_NS / 1e6
    return float("nan")


async def run_one(kind: str, args: argparse.Namespace, redis: RedisServer, tmp: Path) -> dict:
    r = Redis.from_url(redis.url)
    log = EventLog(r)
    b = await BroadcastService(r, log).create({"title": f"Fan-out bench ({kind})"})
    path = f"/ws/b/{b.id}"
    server = Server(kind, redis.url, args.workers, tmp)
    clients: Clients | None = None
    res: dict[str, Any] = {"kind": kind, "command": server.command, "workers": args.workers}
    try:
        # Warm up (lazy imports, first subscription, allocator arenas) before the base RSS.
        stats = wsclient.Stats()
        warm = await wsclient.open_viewers("127.0.0.1", server.port, path, 20, stats)
        for v in warm:
            v.close()
        await asyncio.sleep(1.5)
        base_rss = server.rss()

        t_conn = time.monotonic()
        secret = SECRET if args.cookies and kind == "jobcast" else ""
        from_i = int(args.warmup * args.rate)
        clients = Clients(args.viewers, args.clients, server.port, path, secret, from_i)
        ready = await clients.ask(None, timeout=60 + args.viewers / 20)
        connected = sum(m[1] for m in ready)
        errors: dict[str, int] = {}
        for m in ready:
            for k, v in m[2].items():
                errors[k] = errors.get(k, 0) + v
        res["connect_s"] = time.monotonic() - t_conn
        res["connected"] = connected
        res["connect_errors"] = errors
        await asyncio.sleep(args.settle)
        idle_rss = server.rss()
        res["rss_base_mb"] = base_rss / 2**20
        res["rss_idle_mb"] = idle_rss / 2**20
        res["rss_per_viewer_kb"] = (idle_rss - base_rss) / max(connected, 1) / 1024
        res["load_before"] = load()

        groups = {
            "server": server.all_pids(),
            "clients": clients.pids(),
            "redis": [redis.proc.pid],
            "publisher": [os.getpid()],
        }
        cpu0 = {g: cpu_of(pids) for g, pids in groups.items()}
        profiler = None
        if args.profile and kind == "jobcast":
            profiler = start_profiler(server, args, tmp)

        total = int(args.rate * args.duration)
        interval = 1.0 / args.rate
        t0 = time.monotonic()
        first_ns = time.time_ns()
        late = 0.0
        for i in range(total):
            wait = t0 + i * interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                late = max(late, -wait)
            await log.publish(b.id, wsclient.TICK, {"t": time.time_ns(), "i": i})
        wall = time.monotonic() - t0
        cpu1 = {g: cpu_of(pids) for g, pids in groups.items()}
        res["publish_s"] = wall
        res["publisher_late_ms"] = late * 1000
        res["cpu_pct"] = {g: 100 * (sum(cpu1[g]) - sum(cpu0[g])) / wall for g in groups}
        res["sys_pct"] = {g: 100 * (cpu1[g][1] - cpu0[g][1]) / wall for g in groups}
        res["load_after"] = load()
        if profiler is not None:
            profiler.wait()

        replies = await clients.ask(("finish", total, args.drain), timeout=args.drain + 60)
        hist: dict[int, int] = {}
        steady: dict[int, int] = {}
        agg = {"received": 0, "frames": 0, "lost": 0, "dups": 0, "complete": 0}
        closed: dict[int, int] = {}
        last_ns = 0
        worst: dict[int, int] = {}
        for _, s in replies:
            for i, b in s["worst"].items():
                worst[i] = max(worst.get(i, 0), b)
            for k in agg:
                agg[k] += s[k]
            for bk, n in s["hist"].items():
                hist[bk] = hist.get(bk, 0) + n
            for bk, n in s["steady"].items():
                steady[bk] = steady.get(bk, 0) + n
            for code, n in s["closed"].items():
                closed[code] = closed.get(code, 0) + n
            last_ns = max(last_ns, s["last_recv_ns"])
        res.update(agg)
        res["published"] = total
        res["expected"] = total * connected
        res["closed_by_server"] = closed
        span = (last_ns - first_ns) / 1e9 if last_ns else float("nan")
        res["delivered_per_s"] = agg["received"] / span if last_ns else 0.0
        res["offered_per_s"] = connected * args.rate
        res["p50_ms"] = percentile(hist, 0.50)
        res["p99_ms"] = percentile(hist, 0.99)
        res["max_ms"] = percentile(hist, 1.0)
        res["steady_p50_ms"] = percentile(steady, 0.50)
        res["steady_p99_ms"] = percentile(steady, 0.99)
        # When the slow deliveries happened: the events whose last viewer waited longest.
        slow = sorted(worst.items(), key=lambda kv: -kv[1])[:5]
        res["slowest"] = [(i / args.rate, b * wsclient.BUCKET_NS / 1e6) for i, b in slow]
        per_s: dict[int, float] = {}
        for i, b in worst.items():
            sec = int(i / args.rate)
            per_s[sec] = max(per_s.get(sec, 0.0), b * wsclient.BUCKET_NS / 1e6)
        res["worst_per_s"] = [round(per_s.get(sec, 0.0)) for sec in range(int(args.duration))]
        await clients.ask(("quit",), timeout=30)
    finally:
        if clients is not None:
            clients.stop()
        server.stop()
        await r.aclose()
    res["server_errors"] = server.errors()
    return res


def start_profiler(server: Server, args: argparse.Namespace, tmp: Path) -> Any:
    """py-spy on the first serving process for the publish window (when py-spy is installed)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("py-spy not found; --profile ignored", file=sys.stderr)
        return None
    pid = server.serving_pids()[0]
    out = args.profile
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(int(args.duration))]
    fmt = {".json": "speedscope", ".svg": "flamegraph"}.get(Path(out).suffix, "raw")
    cmd += ["--rate", "200", "--format", fmt]
    cmd += ["--output", out, "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- report ----------------------------------------------------------------------------------


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"viewers={args.viewers} rate={args.rate}/s duration={args.duration}s "
        f"workers={args.workers} client_procs={args.clients} cores={os.cpu_count()}",
    ]
    head = (
        f"{'server':<8} {'conn':>6} {'deliv/s':>9} {'offered':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'max ms':>8} {'lost':>8} {'dups':>5} {'dropped':>7} {'srv cpu%':>8} {'cli cpu%':>8} "
        f"{'redis%':>6} {'KB/viewer':>9}"
    )
    lines.append(head)
    for r in results:
        dropped = sum(n for c, n in r["closed_by_server"].items() if c != 1000)
        cpu = r["cpu_pct"]
        lines.append(
            f"{r['kind']:<8} {r['connected']:>6} {r['delivered_per_s']:>9.0f} "
            f"{r['offered_per_s']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['max_ms']:>8.1f} {r['lost']:>8} {r['dups']:>5} {dropped:>7} "
            f"{cpu['server']:>8.0f} {cpu['clients']:>8.0f} {cpu['redis']:>6.0f} "
            f"{r['rss_per_viewer_kb']:>9.1f}"
        )
    for r in results:
        lines.append(
            f"{r['kind']}: `{r['command']}`; connect {r['connected']} in {r['connect_s']:.1f}s"
            f" (errors {r['connect_errors'] or 'none'}); RSS {r['rss_base_mb']:.1f} -> "
            f"{r['rss_idle_mb']:.1f} MB; cpu% of which system: server "
            f"{r['sys_pct']['server']:.0f}, clients {r['sys_pct']['clients']:.0f}; "
            f"publisher cpu {r['cpu_pct']['publisher']:.0f}%, "
            f"late max {r['publisher_late_ms']:.1f} ms; frames {r['frames']}; "
            f"complete viewers {r['complete']}/{r['connected']}; closes {r['closed_by_server']}"
            f"; load {r['load_before']} -> {r['load_after']}"
        )
        slow = ", ".join(f"{ms:.0f} ms at {t:.1f} s" for t, ms in r["slowest"])
        lines.append(f"  {r['kind']} slowest events (last viewer, time into publishing): {slow}")
        lines.append(f"  {r['kind']} slowest delivery (ms) in each second: {r['worst_per_s']}")
        if args.warmup:
            lines.append(
                f"  {r['kind']} from {args.warmup:g} s into publishing: p50 "
                f"{r['steady_p50_ms']:.1f} ms, p99 {r['steady_p99_ms']:.1f} ms"
            )
        for line in r["server_errors"]:
            lines.append(f"  {r['kind']} server log: {line}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--viewers", type=int, default=5000, help="viewer connections (N)")
    p.add_argument("--rate", type=float, default=10.0, help="events published per second (R)")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    p.add_argument("--workers", type=int, default=1, help="server worker processes")
    p.add_argument("--clients", type=int, default=2, help="client processes")
    p.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="also report latency from this many seconds into publishing (steady state)",
    )
    p.add_argument("--drain", type=float, default=15.0, help="seconds to wait for stragglers")
    p.add_argument("--settle", type=float, default=3.0, help="idle seconds before RSS is read")
    p.add_argument(
        "--baseline", action=argparse.BooleanOptionalAction, default=True, help="run the naive"
    )
    p.add_argument(
        "--only-baseline", action="store_true", help="skip jobcast, run only the baseline"
    )
    p.add_argument(
        "--cookies",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="viewers send a signed viewer cookie, as after loading the viewer page",
    )
    p.add_argument("--profile", default="", help="py-spy output file for the jobcast server")
    args = p.parse_args(argv)
    if args.viewers < 1 or args.rate <= 0 or args.duration <= 0 or args.clients < 1:
        p.error("viewers, rate, duration and clients must be positive")
    fds = wsclient.raise_nofile()
    if fds < args.viewers // args.clients + 200:
        print(f"warning: open-file limit {fds} may be too low", file=sys.stderr)
    tmp = Path(tempfile.mkdtemp(prefix="jobcast-fanout-"))
    redis = RedisServer(tmp)
    print(f"load before: {load()}", flush=True)
    results = []
    try:
        kinds = [] if args.only_baseline else ["jobcast"]
        if args.baseline or args.only_baseline:
            kinds.append("naive")
        for kind in kinds:
            res = asyncio.run(run_one(kind, args, redis, tmp))
            results.append(res)
            print(report([res], args).splitlines()[2], flush=True)
            time.sleep(2)
    finally:
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
