"""Soak run: a broadcast with viewers, chat, questions, votes, pins and applications for a long
time, sampling every minute what would show a leak or a slow decline: server RSS, open file
descriptors, p50/p99 delivery latency, events delivered, errors. Ends by checking that every
acknowledged application is stored once.

    python bench/soak.py --viewers 1000 --minutes 30 --plot docs/soak.png --json docs/soak.json

Everything runs on 127.0.0.1: a redis-server (AOF everysec) in a temp dir, `jobcast serve
--workers 2` as a real subprocess, viewers in a child process (raw-socket clients), and the
chatters, the host and the applicants in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import wsclient  # noqa: E402
from bench.fanout import RedisServer, Server, load, rss_bytes  # noqa: E402

SECRET = "bench-secret"  # bench.fanout.Server signs cookies with this
BUCKET_MS = 1


# -- viewers (child process) -------------------------------------------------------------------


class SoakViewer(wsclient.Viewer):
    """Counts every event with a seq, its latency from the event's `ts`, and duplicates."""

    __slots__ = ("last_seq",)

    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.last_seq = (0, 0)

    def _message(self, payload: bytes, now: int) -> None:
        st = self.stats
        st.frames += 1
        st.bytes += len(payload)
        now_ms = now // 1_000_000
        for ev in orjson.loads(payload):
            seq = ev.get("seq")
            kind = ev.get("type")
            if kind == "synced" and not self.ready.done():
                self.ready.set_result(None)
            if seq is None or kind == "snapshot":
                if kind == "snapshot":
                    ms, _, n = seq.partition("-")
                    self.last_seq = (int(ms), int(n))
                continue
            ms, _, n = seq.partition("-")
            s = (int(ms), int(n))
            if s <= self.last_seq:
                st.dups += 1
                continue
            self.last_seq = s
            st.received += 1
            lat = max(0, now_ms - ev["ts"]) // BUCKET_MS
            st.hist[min(lat, wsclient.MAX_BUCKET)] += 1


def viewers_main(conn: Connection, port: int, path: str, n: int, interval: float) -> None:
    wsclient.raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_viewers(conn, port, path, n, interval))


async def _viewers(conn: Connection, port: int, path: str, n: int, interval: float) -> None:
    loop = asyncio.get_running_loop()
    stats = wsclient.Stats()
    viewers: list[SoakViewer] = []
    sem = asyncio.Semaphore(100)

    async def one() -> None:
        async with sem:
            req, accept = wsclient.handshake(
                "127.0.0.1", port, path, wsclient.viewer_cookie(SECRET)
            )
            ready: asyncio.Future = loop.create_future()
            try:
                async with asyncio.timeout(30):
                    _, v = await loop.create_connection(
                        lambda: SoakViewer(req, accept, stats, ready), "127.0.0.1", port
                    )
                    await ready
                viewers.append(v)
            except (OSError, TimeoutError, ConnectionError) as e:
                stats.errors[type(e).__name__] += 1

    await asyncio.gather(*(one() for _ in range(n)))
    conn.send(("ready", len(viewers)))
    stop = False
    while not stop:
        await asyncio.sleep(interval)
        if conn.poll():
            stop = conn.recv() == "stop"
        snap = {
            "hist": {i: c for i, c in enumerate(stats.hist) if c},
            "received": stats.received,
            "dups": stats.dups,
            "closed": dict(stats.closed),
            "open": sum(1 for v in viewers if v.close_code is None),
        }
        conn.send(("sample", snap))
        stats.hist = [0] * (wsclient.MAX_BUCKET + 1)
        stats.received = 0
        stats.dups = 0
    for v in viewers:
        v.close()


# -- activity (this process) -----------------------------------------------------------------


class Activity:
    def __init__(self, base: str, bid: str, openings: list[str]) -> None:
        self.base = base
        self.bid = bid
        self.openings = openings
        self.acked: set[str] = set()
        self.apply_errors: dict[str, int] = {}
        self.chat_sent = 0
        self.chat_errors: dict[str, int] = {}
        self.pins = 0
        self.questions: list[str] = []
        self.stop = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()

    def _err(self, d: dict[str, int], key: str) -> None:
        d[key] = d.get(key, 0) + 1

    async def chatter(self, i: int) -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as s:
            ws = await s.ws_connect(f"{self.base}/ws/b/{self.bid}?name=chatter{i}")
            reader = asyncio.create_task(self._drain(ws))
            n = 0
            try:
                while not self.stop.is_set():
                    n += 1
                    await ws.send_str(
                        orjson.dumps(
                            {"type": "chat.send", "id": n, "data": {"text": f"问题 {i}-{n}"}}
                        ).decode()
                    )
                    self.chat_sent += 1
                    if n % 10 == i % 10:
                        await ws.send_str(
                            orjson.dumps(
                                {"type": "question.ask", "data": {"text": f"请问 {i}-{n}?"}}
                            ).decode()
                        )
                    if self.questions and n % 2 == 0:
                        qid = random.choice(self.questions[-20:])
                        up = random.random() < 0.7
                        await ws.send_str(
                            orjson.dumps(
                                {"type": "question.vote", "data": {"id": qid, "up": up}}
                            ).decode()
                        )
                    await asyncio.sleep(1.0)
            finally:
                reader.cancel()
                await ws.close()

    async def _drain(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            for ev in orjson.loads(msg.data):
                if ev["type"] == "error":
                    self._err(self.chat_errors, ev["data"]["code"])
                elif ev["type"] == "question.updated" and ev["data"]["id"] not in self.questions:
                    self.questions.append(ev["data"]["id"])
                elif ev["type"] == "ack" and "question" in ev.get("data", {}):
                    q = ev["data"]["question"]
                    if isinstance(q, dict) and q.get("id") not in self.questions:
                        self.questions.append(q["id"])

    async def host(self, session: aiohttp.ClientSession, csrf: str, every: float) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(every)
            async with session.post(
                f"{self.base}/api/broadcasts/{self.bid}/pin/next",
                headers={"X-CSRF-Token": csrf},
            ) as r:
                if r.status == 200:
                    self.pins += 1

    async def applicants(self, rate: float) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            task = asyncio.create_task(self._apply(n))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            await asyncio.sleep(1.0 / rate)

    async def _apply(self, n: int) -> None:
        jar = aiohttp.CookieJar(unsafe=True)
        try:
            async with aiohttp.ClientSession(cookie_jar=jar) as s:
                async with s.get(f"{self.base}/api/me") as r:
                    csrf = (await r.json())["csrf"]
                oid = self.openings[n % len(self.openings)]
                body = {
                    "name": f"申请人{n}",
                    "phone": f"139{n:08d}",
                    "school": "黑龙江工业学院",
                    "major": "机电一体化",
                    "degree": "bachelor",
                    "graduation_year": 2026,
                    "consent": True,
                    "consent_version": "2026-01",
                }
                key = str(uuid.uuid4())
                for _attempt in range(3):  # retry with the same key, as the page does
                    async with s.post(
                        f"{self.base}/api/openings/{oid}/applications",
                        json=body,
                        headers={"X-CSRF-Token": csrf, "Idempotency-Key": key},
                    ) as r:
                        if r.status in (200, 201):
                            self.acked.add((await r.json())["application_id"])
                            return
                        if r.status < 500:
                            self._err(self.apply_errors, str(r.status))
                            return
                    await asyncio.sleep(0.5)
                self._err(self.apply_errors, "5xx")
        except (aiohttp.ClientError, OSError, KeyError) as e:
            self._err(self.apply_errors, type(e).__name__)


# -- sampling --------------------------------------------------------------------------------


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def percentile(hist: dict[int, int], q: float) -> float:
    total = sum(hist.values())
    if not total:
        return float("nan")
    want = total * q
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= want:
            return float(b * BUCKET_MS)
    return float(max(hist) * BUCKET_MS)


async def soak(args: argparse.Namespace) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="jobcast-soak-"))
    os.environ.update(
        JOBCAST_APPLY_PER_IP="1000000",
        JOBCAST_CHAT_IP_RATE="100000",
        JOBCAST_CHAT_IP_BURST="100000",
        JOBCAST_CHAT_REVIEW_QUESTIONS="0",
    )
    redis_srv = RedisServer(tmp)
    server = Server("jobcast", redis_srv.url, args.workers, tmp)
    base = f"http://127.0.0.1:{server.port}"
    samples: list[dict[str, Any]] = []
    try:
        from jobcast.core.broadcasts import BroadcastService
        from jobcast.core.events import EventLog
        from jobcast.openings.demo import seed_openings
        from jobcast.web.access.auth import add_user

        redis = Redis.from_url(redis_srv.url)
        log = EventLog(redis)
        b = await BroadcastService(redis, log).create({"title": "soak"})
        await seed_openings(redis, log, b.id)
        await BroadcastService(redis, log).start(b.id)
        await add_user(redis, "soakhost", "soak-password", "host")
        host = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with host.post(
            f"{base}/api/login", json={"username": "soakhost", "password": "soak-password"}
        ) as r:
            csrf = (await r.json())["csrf"]
        async with host.get(f"{base}/api/broadcasts/{b.id}/openings") as r:
            body = await r.json()
        openings = [o["id"] for o in body["openings"]]

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=viewers_main,
            args=(child, server.port, f"/ws/b/{b.id}", args.viewers, args.sample_seconds),
        )
        proc.start()
        _kind, opened = await asyncio.to_thread(parent.recv)
        print(f"{opened} viewers connected; load {load()}", flush=True)

        act = Activity(base, b.id, openings)
        tasks = [asyncio.create_task(act.chatter(i)) for i in range(args.chatters)]
        tasks.append(asyncio.create_task(act.host(host, csrf, args.pin_every)))
        tasks.append(asyncio.create_task(act.applicants(args.apply_rate)))
        start = time.monotonic()
        end = start + args.minutes * 60
        print(
            "minute  rss_MB  fds  viewers  events  p50_ms  p99_ms  dups  apps  chat  load",
            flush=True,
        )
        while time.monotonic() < end:
            _kind, snap = await asyncio.to_thread(parent.recv)
            pids = server.serving_pids()
            row = {
                "minute": round((time.monotonic() - start) / 60, 2),
                "rss_mb": round(sum(rss_bytes(p) for p in pids) / 2**20, 1),
                "redis_rss_mb": round(rss_bytes(redis_srv.proc.pid) / 2**20, 1),
                "fds": sum(fds(p) for p in pids),
                "viewers_open": snap["open"],
                "events": snap["received"],
                "p50_ms": percentile(snap["hist"], 0.5),
                "p99_ms": percentile(snap["hist"], 0.99),
                "dups": snap["dups"],
                "closed": snap["closed"],
                "applications": len(act.acked),
                "chat_sent": act.chat_sent,
                "load": load(),
            }
            samples.append(row)
            print(
                f"{row['minute']:6.1f} {row['rss_mb']:7.1f} {row['fds']:4d} "
                f"{row['viewers_open']:8d} "
                f"{row['events']:7d} {row['p50_ms']:7.0f} {row['p99_ms']:7.0f} {row['dups']:5d} "
                f"{row['applications']:5d} {row['chat_sent']:5d}  {row['load']}",
                flush=True,
            )
        act.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.sleep(2)  # let in-flight applications finish
        parent.send("stop")
        proc.join(30)

        # Every acknowledged application is stored, once.
        stored_ids: list[str] = []
        while True:  # page through the host's list
            url = f"{base}/api/broadcasts/{b.id}/applications?limit=1000&offset={len(stored_ids)}"
            async with host.get(url) as r:
                page = (await r.json())["applications"]
            stored_ids += [a["id"] for a in page]
            if len(page) < 1000:
                break
        missing = act.acked - set(stored_ids)
        summary = {
            "acked": len(act.acked),
            "stored": len(stored_ids),
            "missing": len(missing),
            "duplicated_ids": len(stored_ids) - len(set(stored_ids)),
            "apply_errors": act.apply_errors,
            "chat_errors": act.chat_errors,
            "pins": act.pins,
        }
        print("summary:", orjson.dumps(summary).decode(), flush=True)
        samples.append({"summary": summary})
        await host.close()
        await redis.aclose()
    finally:
        server.stop()
        redis_srv.stop()
    return samples


def plot(samples: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s for s in samples if "minute" in s]
    x = [r["minute"] for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    axes[0].plot(x, [r["rss_mb"] for r in rows], label="jobcast RSS (MB)")
    axes[0].plot(x, [r["redis_rss_mb"] for r in rows], label="redis RSS (MB)")
    axes[0].legend()
    axes[0].set_ylim(bottom=0)
    fd = [r["fds"] for r in rows]
    axes[1].plot(x, fd, label="open fds (jobcast)")
    axes[1].legend(loc="lower right")
    axes[1].set_ylim(0, max(fd) * 1.25)
    axes[2].plot(x, [r["p50_ms"] for r in rows], label="p50 delivery (ms)")
    axes[2].plot(x, [r["p99_ms"] for r in rows], label="p99 delivery (ms)")
    axes[2].legend()
    axes[2].set_ylim(bottom=0)
    axes[2].set_xlabel("minutes")
    fig.suptitle("Jobcast soak run")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--viewers", type=int, default=1000)
    p.add_argument("--chatters", type=int, default=20, help="sockets chatting 1 msg/s each")
    p.add_argument("--apply-rate", type=float, default=5.0, help="applications per second")
    p.add_argument("--pin-every", type=float, default=20.0, help="seconds between pin-next")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--sample-seconds", type=float, default=60.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--plot", type=Path, default=None, help="write a PNG plot here")
    p.add_argument("--json", type=Path, default=None, help="write the samples here")
    args = p.parse_args(argv)
    wsclient.raise_nofile()
    samples = asyncio.run(soak(args))
    if args.json:
        args.json.write_bytes(orjson.dumps(samples, option=orjson.OPT_INDENT_2))
    if args.plot:
        plot(samples, args.plot)
    summary = samples[-1].get("summary", {})
    return 0 if summary.get("missing", 1) == 0 and summary.get("duplicated_ids", 1) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
