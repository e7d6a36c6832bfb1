"""Chat benchmark: N viewers on `/ws/b/{bid}`, C of them chatting at one message per second and
voting, against a real `jobcast serve` subprocess; run twice in one invocation, with vote
counts coalesced (`qa_votes_interval` 0.5 s) and with the baseline of one event per vote.

    python bench/chat.py --viewers 2000 --chatters 100 --duration 20

What it does, per mode:
  1. starts redis-server and `jobcast serve` (bench/fanout.py's helpers), creates a broadcast
     and Q questions; every viewer comes from 127.0.0.1, so the per-IP chat bucket is raised
     (a hall behind one NAT) while the per-viewer bucket stays at its default;
  2. opens N viewers from client processes (raw asyncio sockets, frame parsing from
     bench/wsclient.py), each with its own viewer id, waits until every one got `synced`;
  3. for `duration` seconds each chatter sends `chat.send` once a second (its send time, in
     letters, inside the text) and toggles an upvote on a random question once a second;
     reads the CPU time of the server and Redis over that window;
  4. lets the clients drain: every viewer must receive every acknowledged message exactly once
     (counted by seq), and reports the send-to-receive latency of each.

Everything listens and connects on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

HERE = Path(__file__).resolve().parent
# This file is bench/chat.py: the `chat` package must win over it, so the repository root goes
# first and bench/ last.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from jobcast.chat.actor import Actor  # noqa: E402
from jobcast.chat.config import ChatConfig  # noqa: E402
from jobcast.chat.service import ChatRoom  # noqa: E402
from jobcast.core.broadcasts import BroadcastService  # noqa: E402
from jobcast.core.events import EventLog  # noqa: E402

sys.path.append(str(HERE))
import wsclient  # noqa: E402
from fanout import RedisServer, Server, cpu_of, load, percentile  # noqa: E402

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def to_letters(n: int) -> str:
    """Numbers in the text as letters: a digit run would be held as a phone number."""
    out = []
    while n:
        n, r = divmod(n, 26)
        out.append(LETTERS[r])
    return "".join(reversed(out)) or "a"


def from_letters(s: str) -> int:
    n = 0
    for c in s:
        n = n * 26 + LETTERS.index(c)
    return n


def text_frame(payload: bytes) -> bytes:
    """A masked client text frame of any length."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Stats(wsclient.Stats):
    def __init__(self) -> None:
        super().__init__()
        self.vote_events = 0
        self.vote_bytes = 0
        self.acked = 0
        self.votes_sent = 0
        self.refused: Counter[str] = Counter()


MSG = b'"text":"bench '
VOTES = b'"type":"question.votes"'
ACK_MSG = b'"id":"m'  # acks of chat.send carry the frame id "m..."
ERROR = b'"type":"error"'
OVERLAP = max(len(MSG), len(VOTES), len(ACK_MSG), len(ERROR)) - 1
BATCH_S = 0.25  # how often counting viewers read


class ChatViewer(wsclient.Viewer):
    """A viewer that counts bench chat messages (in `chat.messages` events). A probe parses
    every frame (each event once, in seq order; latency from the send time in the text); the
    others only count markers in the byte stream, so that thousands of them fit in one client
    process (a quoted marker cannot occur inside a JSON string, where quotes are escaped)."""

    __slots__ = ("chat_count", "cheap", "last_seq", "probe", "tail", "voted")

    def __init__(self, *a: Any, probe: bool = False) -> None:
        super().__init__(*a)
        self.probe = probe
        self.chat_count = 0
        self.cheap = False  # until synced
        self.tail = b""
        self.last_seq: tuple[int, int] = (0, 0)
        self.voted: set[str] = set()

    def data_received(self, data: bytes) -> None:
        if self.cheap and self.is_open:
            st: Stats = self.stats  # type: ignore[assignment]
            if self.buf:  # the rest of a frame the parser had begun
                data, self.buf = self.buf + data, b""
            st.bytes += len(data)
            t = self.tail
            # Each marker counted over the previous bytes that could hold its first part only.
            acks = (t[-len(ACK_MSG) + 1 :] + data).count(ACK_MSG)
            # The ack of a chatter's own message carries its text too.
            self.chat_count += (t[-len(MSG) + 1 :] + data).count(MSG) - acks
            st.vote_events += (t[-len(VOTES) + 1 :] + data).count(VOTES)
            st.acked += acks
            st.refused["error"] += (t[-len(ERROR) + 1 :] + data).count(ERROR)
            self.tail = (t + data)[-OVERLAP:]
            # Read again on the next batch tick: one read per socket per tick, not per frame.
            self.transport.pause_reading()  # type: ignore[union-attr]
            return
        super().data_received(data)

    def _message(self, payload: bytes, now: int) -> None:
        stats: Stats = self.stats  # type: ignore[assignment]
        stats.frames += 1
        stats.bytes += len(payload)
        for ev in orjson.loads(payload):
            kind = ev.get("type")
            seq = ev.get("seq")
            if seq and kind != "snapshot":
                ms, _, n = seq.partition("-")
                s = (int(ms), int(n))
                if s <= self.last_seq and kind != "synced":
                    stats.dups += 1
                    continue
                self.last_seq = s
            if kind == "chat.messages":
                for m in ev["data"]["messages"]:
                    text = m["text"]
                    if not text.startswith("bench "):
                        continue
                    self.chat_count += 1
                    stats.received += 1
                    sent = from_letters(text.split()[2])
                    b = (now - sent) // wsclient.BUCKET_NS
                    stats.hist[b if b < wsclient.MAX_BUCKET else wsclient.MAX_BUCKET] += 1
                    stats.last_recv_ns = now
            elif kind == "question.votes":
                stats.vote_events += 1
            elif kind == "ack":
                if ev.get("id", "").startswith("m"):
                    stats.acked += 1
            elif kind == "error":
                stats.refused[ev["data"].get("code", "?")] += 1
            elif kind == "snapshot":
                ms, _, n = ev["seq"].partition("-")
                self.last_seq = (int(ms), int(n))
            elif kind == "synced" and not self.ready.done():
                self.ready.set_result(None)
                self.cheap = not self.probe

    def send(self, type_: str, data: dict[str, Any], id_: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            frame = orjson.dumps({"type": type_, "id": id_, "data": data})
            self.transport.write(text_frame(frame))


async def open_viewers(port: int, path: str, n: int, probes: int, stats: Stats) -> list[ChatViewer]:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(100)

    async def one(i: int) -> ChatViewer | None:
        async with sem:
            req, accept = wsclient.handshake("127.0.0.1", port, f"{path}?name=v{i}")
            ready: asyncio.Future = loop.create_future()
            try:
                async with asyncio.timeout(30):
                    _, v = await loop.create_connection(
                        lambda: ChatViewer(req, accept, stats, ready, probe=i < probes),
                        "127.0.0.1",
                        port,
                    )
                    await ready
            except (OSError, TimeoutError, ConnectionError) as e:
                stats.errors[type(e).__name__] += 1
                return None
            return v

    got = await asyncio.gather(*(one(i) for i in range(n)))
    return [v for v in got if v is not None]


async def chat_loop(v: ChatViewer, me: int, duration: float, qids: list[str], st: Stats) -> None:
    """One chatter: a message and a vote toggle per second, at a random phase."""
    await asyncio.sleep(random.random())
    t_end = time.monotonic() + duration
    i = 0
    while time.monotonic() < t_end:
        t = time.monotonic()
        text = f"bench {to_letters(me)} {to_letters(time.time_ns())} 请问这个岗位包吃住吗"
        v.send("chat.send", {"text": text}, f"m{me}-{i}")
        qid = random.choice(qids)
        up = qid not in v.voted
        (v.voted.add if up else v.voted.discard)(qid)
        v.send("question.vote", {"id": qid, "up": up}, f"v{me}-{i}")
        st.votes_sent += 1
        i += 1
        await asyncio.sleep(max(0.0, t + 1.0 - time.monotonic()))


def client_main(
    conn: Connection, port: int, path: str, n: int, chatters: int, probes: int, base: int
) -> None:
    wsclient.raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_client(conn, port, path, n, chatters, probes, base))


async def _client(
    conn: Connection, port: int, path: str, n: int, chatters: int, probes: int, base: int
) -> None:
    loop = asyncio.get_running_loop()
    stats = Stats()
    commands: asyncio.Queue = asyncio.Queue()

    def pipe_reader() -> None:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                msg = ("quit",)
            loop.call_soon_threadsafe(commands.put_nowait, msg)
            if msg[0] == "quit":
                return

    threading.Thread(target=pipe_reader, daemon=True).start()
    viewers = await open_viewers(port, path, n, probes, stats)

    async def batch_reads() -> None:
        """Counting viewers pause after each read; let them read what queued up every tick
        (the kernel buffers it meanwhile; the probes read as it comes)."""
        while True:
            await asyncio.sleep(BATCH_S)
            for v in viewers:
                t = v.transport
                if v.cheap and t is not None and not t.is_closing():
                    t.resume_reading()  # type: ignore[attr-defined]

    batcher = asyncio.create_task(batch_reads())
    conn.send(("ready", len(viewers), dict(stats.errors)))
    while True:
        msg = await commands.get()
        if msg[0] == "chat":
            duration, qids = msg[1], msg[2]
            await asyncio.gather(
                *(
                    chat_loop(v, base + k, duration, qids, stats)
                    for k, v in enumerate(viewers[:chatters])
                )
            )
            await asyncio.sleep(1.0)  # the last acks
            conn.send(("sent", stats.acked, stats.votes_sent, dict(stats.refused)))
        elif msg[0] == "finish":
            total, drain = msg[1], msg[2]
            deadline = time.monotonic() + drain
            while time.monotonic() < deadline:
                if all(v.chat_count >= total or v.close_code is not None for v in viewers):
                    break
                await asyncio.sleep(0.05)
            conn.send(
                (
                    "stats",
                    {
                        "hist": {i: c for i, c in enumerate(stats.hist) if c},
                        "received": stats.received,
                        "lost": sum(max(0, total - v.chat_count) for v in viewers),
                        "over": sum(max(0, v.chat_count - total) for v in viewers),
                        "dups": stats.dups,
                        "probes": sum(1 for v in viewers if v.probe),
                        "complete": sum(1 for v in viewers if v.chat_count == total),
                        "frames": stats.frames,
                        "bytes": stats.bytes,
                        "vote_events": stats.vote_events,
                        "closed": dict(stats.closed),
                    },
                )
            )
        elif msg[0] == "quit":
            for v in viewers:
                v.close()
            batcher.cancel()
            await asyncio.sleep(0.3)
            conn.send(("bye",))
            return


class Clients:
    """Process 0 holds the chatters (they only count what they receive, so their sending is
    not delayed by parsing); the other viewers are spread over the other processes, the first
    `probes` of them parsing every event for latency."""

    def __init__(
        self, n: int, chatters: int, probes: int, procs: int, port: int, path: str
    ) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        rest, others = n - chatters, max(1, procs - 1)
        plan = [(chatters, chatters, 0)]
        for i in range(others):
            share = rest // others + (1 if i < rest % others else 0)
            probe = probes // others + (1 if i < probes % others else 0)
            plan.append((share, 0, probe))
        for share, talk, probe in plan:
            if not share:
                continue
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=client_main,
                args=(child, port, path, share, talk, probe, 0),
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
            if not await loop.run_in_executor(None, c.poll, timeout):
                raise SystemExit(f"client did not answer {msg!r} within {timeout:.0f}s")
            out.append(c.recv())
        return out

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.pid is not None]

    def stop(self) -> None:
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()


async def run_one(mode: str, args: argparse.Namespace, redis: RedisServer, tmp: Path) -> dict:
    interval = 0.5 if mode == "coalesced" else 0.0
    os.environ.update(
        JOBCAST_QA_VOTES_INTERVAL=str(interval),
        JOBCAST_CHAT_IP_RATE="100000",
        JOBCAST_CHAT_IP_BURST="100000",
        # Counting viewers do not parse frames, so they would not answer pings.
        JOBCAST_WS_HEARTBEAT="3600",
    )
    r = Redis.from_url(redis.url)
    log = EventLog(r)
    b = await BroadcastService(r, log).create({"title": f"Chat bench ({mode})"})
    room = ChatRoom(r, log, ChatConfig(review_questions=False, votes_interval=interval))
    staff = Actor(viewer_id="bench-host", ip="127.0.0.1", role="host", username="bench")
    qids = []
    for i in range(args.questions):
        q = await room.questions.ask(b.id, staff, {"text": f"问题 {to_letters(i)}"})
        qids.append(q["id"])
    path = f"/ws/b/{b.id}"
    server = Server("jobcast", redis.url, 1, tmp)
    clients: Clients | None = None
    res: dict[str, Any] = {"mode": mode, "command": server.command}
    try:
        t_conn = time.monotonic()
        clients = Clients(args.viewers, args.chatters, args.probes, args.clients, server.port, path)
        ready = await clients.ask(None, timeout=60 + args.viewers / 20)
        res["connected"] = sum(m[1] for m in ready)
        res["connect_errors"] = sum(sum(m[2].values()) for m in ready)
        res["connect_s"] = time.monotonic() - t_conn
        await asyncio.sleep(args.settle)
        res["load_before"] = load()
        groups = {"server": server.all_pids(), "redis": [redis.proc.pid]}
        groups["clients"] = clients.pids()
        cpu0 = {g: sum(cpu_of(pids)) for g, pids in groups.items()}
        t0 = time.monotonic()
        sent = await clients.ask(("chat", args.duration, qids), timeout=args.duration + 60)
        wall = time.monotonic() - t0
        cpu1 = {g: sum(cpu_of(pids)) for g, pids in groups.items()}
        res["cpu_pct"] = {g: 100 * (cpu1[g] - cpu0[g]) / wall for g in groups}
        res["load_after"] = load()
        total = sum(m[1] for m in sent)
        res["acked"] = total
        res["votes_sent"] = sum(m[2] for m in sent)
        refused: Counter[str] = Counter()
        for m in sent:
            refused.update(m[3])
        res["refused"] = {k: v for k, v in refused.items() if v}
        replies = await clients.ask(("finish", total, args.drain), timeout=args.drain + 60)
        hist: dict[int, int] = {}
        agg = Counter()
        closed: Counter[int] = Counter()
        for _, s in replies:
            for k in ("received", "lost", "over", "dups", "complete", "frames", "bytes", "probes"):
                agg[k] += s[k]
            agg["vote_events"] += s["vote_events"]
            for bk, n in s["hist"].items():
                hist[bk] = hist.get(bk, 0) + n
            closed.update(s["closed"])
        res.update(agg)
        res["closed"] = dict(closed)
        res["expected"] = total * res["connected"]
        res["vote_events_per_viewer_s"] = agg["vote_events"] / max(1, res["connected"]) / wall
        res["kb_per_viewer_s"] = agg["bytes"] / max(1, res["connected"]) / wall / 1024
        res["p50_ms"] = percentile(hist, 0.50)
        res["p99_ms"] = percentile(hist, 0.99)
        res["max_ms"] = percentile(hist, 1.0)
        await clients.ask(("quit",), timeout=30)
    finally:
        if clients is not None:
            clients.stop()
        server.stop()
        await r.aclose()
    return res


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"viewers={args.viewers} chatters={args.chatters} (1 msg/s + 1 vote/s each) "
        f"questions={args.questions} duration={args.duration}s cores={os.cpu_count()}",
        f"{'votes':<10} {'conn':>5} {'msgs':>5} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'lost':>5} {'dups':>4} {'vote ev/viewer/s':>16} {'KB/viewer/s':>11} "
        f"{'srv cpu%':>8} {'redis%':>6} {'cli cpu%':>8}",
    ]
    for r in results:
        c = r["cpu_pct"]
        lines.append(
            f"{r['mode']:<10} {r['connected']:>5} {r['acked']:>5} {r['p50_ms']:>7.1f} "
            f"{r['p99_ms']:>7.1f} {r['max_ms']:>7.1f} {r['lost']:>5} {r['dups']:>4} "
            f"{r['vote_events_per_viewer_s']:>16.2f} {r['kb_per_viewer_s']:>11.1f} "
            f"{c['server']:>8.0f} {c['redis']:>6.0f} {c['clients']:>8.0f}"
        )
    for r in results:
        lines.append(
            f"{r['mode']}: `{r['command']}`; connected {r['connected']} in {r['connect_s']:.1f}s "
            f"(errors {r['connect_errors']}); complete viewers {r['complete']}/{r['connected']}; "
            f"votes sent {r['votes_sent']}; refused {r['refused'] or 'none'}; "
            f"closes {r['closed'] or 'none'}; load {r['load_before']} -> {r['load_after']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--viewers", type=int, default=2000, help="viewer connections")
    p.add_argument("--chatters", type=int, default=100, help="viewers that chat and vote")
    p.add_argument("--probes", type=int, default=100, help="viewers that measure latency")
    p.add_argument("--questions", type=int, default=20, help="questions to vote on")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of chatting")
    p.add_argument("--clients", type=int, default=2, help="client processes")
    p.add_argument("--drain", type=float, default=15.0, help="seconds to wait for stragglers")
    p.add_argument("--settle", type=float, default=2.0, help="idle seconds before measuring")
    p.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run with one event per vote",
    )
    args = p.parse_args(argv)
    if min(args.viewers, args.chatters, args.questions, args.clients) < 1:
        p.error("viewers, chatters, questions and clients must be positive")
    if args.chatters > args.viewers or args.duration <= 0:
        p.error("chatters must be at most viewers; duration positive")
    wsclient.raise_nofile()
    tmp = Path(tempfile.mkdtemp(prefix="jobcast-chatbench-"))
    redis = RedisServer(tmp)
    print(f"load before: {load()}", flush=True)
    results = []
    try:
        for mode in ["coalesced", "per-vote"] if args.baseline else ["coalesced"]:
            res = asyncio.run(run_one(mode, args, redis, tmp))
            results.append(res)
            print(report([res], args).splitlines()[2], flush=True)
    finally:
        redis.stop()
    print(report(results, args))
    ok = all(r["lost"] == 0 and r["dups"] == 0 and r["p99_ms"] <= 200 for r in results[:1])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
