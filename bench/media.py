"""Media relay benchmark: how many WHEP viewers one box serves at 720p, 30 fps, ~1.5 Mbps.

    python bench/media.py --viewers 50,100,150,200 --egress 0,2 --baseline 1,2,4,8
    python bench/media.py --viewers 150,300,400 --egress 2 --send-path aiortc,direct --baseline ""

Jobcast runs once per (egress processes, send path): `aiortc` is the earlier per-viewer
sender path, `direct` the one-loop-per-frame path (stream/sendpath.py), so both print in one
table from one invocation.

Per server under test (Jobcast's pass-through relay, then aiortc's `MediaRelay` baseline that
decodes once and encodes per viewer, bench/media_baseline.py):
  1. starts the server as a subprocess (Jobcast: `jobcast serve` on a redis-server this
     script starts; ICE on 127.0.0.1 only) and publishes to it over WHIP from this process:
     a 10 s 1280x720 clip pre-encoded once with libx264 (constrained baseline, ~1.5 Mbps CBR,
     a keyframe every second, each frame's number drawn into it) plus Opus audio, looped at
     30 fps; the publisher's sender only packetises (`pack()`), so it costs little;
  2. for each viewer count, starts client processes (bench/mediaclient.py) that open the
     viewers over WHEP, let them warm up, and record every video frame's arrival for WINDOW
     seconds, without decoding (only the first keyframe, to read its frame number);
  3. reads the CPU time of the server's whole process tree over the window.

Reported per step: viewers that got a picture, median and worst per-viewer frame rate over
the window, p50/p95/max added latency (frame sent by the publisher -> its last packet at the
viewer, all on one clock), packet loss, and server CPU per viewer.

Media only goes to 127.0.0.1. Every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from jobcast.stream.aiortc_internals import IcePolicy, restrict_gathering  # noqa: E402
from jobcast.stream.negotiation import rtc_configuration  # noqa: E402

from tests.redisproc import RedisProcess  # noqa: E402

LOOPBACK = IcePolicy(addresses=("127.0.0.1",))
CLK = os.sysconf("SC_CLK_TCK")
W, H, FPS = 1280, 720, 30
CLIP_FRAMES = 300
STAMP_BITS = 16
CACHE = Path(tempfile.gettempdir()) / "jobcast-bench-clip-720p-v1.bin"


# -- the clip ----------------------------------------------------------------------------


def _frame_y(i: int, base: list[bytes]) -> bytes:
    shift = (i * 6) % W
    y = bytearray(b"".join(row[shift : shift + W] for row in base))
    # a moving patch of detail, like a speaker moving in front of a poster
    px, py = (i * 9) % (W - 320), 200 + (i * 3) % (H - 400)
    seed = i.to_bytes(4, "little") * 80
    for r in range(180):
        off = (py + r) * W + px
        y[off : off + 320] = bytes((b ^ (r * 7)) & 0xFF for b in seed)
    block = W // STAMP_BITS
    for bit in range(STAMP_BITS):
        v = b"\xeb" if (i >> (STAMP_BITS - 1 - bit)) & 1 else b"\x10"
        for r in range(block // 2):
            off = r * W + bit * block
            y[off : off + block] = v * block
    return bytes(y)


def make_clip() -> tuple[list[tuple[bytes, bool]], list[bytes]]:
    """(video frames as (Annex B, keyframe), opus packets), cached across runs."""
    if CACHE.exists():
        data = json.loads(CACHE.read_text())
        return (
            [(bytes.fromhex(d), k) for d, k in data["video"]],
            [bytes.fromhex(a) for a in data["audio"]],
        )
    t = time.time()
    base = [bytes(((x // 4 + r // 3) % 200) + 20 for x in range(2 * W)) for r in range(H)]
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = W, H, "yuv420p"
    enc.time_base = fractions.Fraction(1, FPS)
    enc.framerate = FPS
    enc.bit_rate = 1_500_000
    enc.gop_size = FPS
    enc.profile = "Baseline"
    enc.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "x264-params": "keyint=30:min-keyint=30:scenecut=0:vbv-maxrate=1500:vbv-bufsize=1000",
    }
    video: list[tuple[bytes, bool]] = []
    for i in range(CLIP_FRAMES):
        f = av.VideoFrame(W, H, "yuv420p")
        f.planes[0].update(_frame_y(i, base))
        f.planes[1].update(b"\x80" * f.planes[1].buffer_size)
        f.planes[2].update(b"\x6a" * f.planes[2].buffer_size)
        f.pts = i
        f.time_base = enc.time_base
        video += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(f)]
    video += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(None)]
    aenc = av.CodecContext.create("libopus", "w")
    aenc.sample_rate, aenc.layout, aenc.format = 48000, "stereo", "s16"
    aenc.time_base = fractions.Fraction(1, 48000)
    aenc.bit_rate = 64000
    audio: list[bytes] = []
    for i in range(500):
        af = av.AudioFrame(format="s16", layout="stereo", samples=960)
        af.sample_rate = 48000
        tone = bytes((((n * 440 * 256) // 48000) & 0xFF) // 8 for n in range(960)) * 4
        af.planes[0].update(tone[: af.planes[0].buffer_size])
        af.pts = i * 960
        af.time_base = aenc.time_base
        audio += [bytes(p) for p in aenc.encode(af)]
    CACHE.write_text(
        json.dumps({"video": [(d.hex(), k) for d, k in video], "audio": [a.hex() for a in audio]})
    )
    print(f"clip encoded in {time.time() - t:.1f}s", file=sys.stderr)
    return video, audio


# -- the publisher -----------------------------------------------------------------------


class PacketTrack(MediaStreamTrack):
    """Yields pre-encoded packets at the clip's rate; aiortc's sender only packetises them."""

    def __init__(self, kind: str, packets: list[Any], rate: float, clock: int, step: int):
        super().__init__()
        self.kind = kind
        self.packets = packets
        self.rate = rate
        self.clock = clock
        self.step = step
        self.i = 0
        self.start: float | None = None
        self.sent_at: list[float] = []  # wall time each frame went to the sender, by index

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time()
        wait = self.start + self.i / self.rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        item = self.packets[self.i % len(self.packets)]
        data = item[0] if isinstance(item, tuple) else item
        p = av.Packet(data)
        p.pts = self.i * self.step
        p.time_base = fractions.Fraction(1, self.clock)
        self.sent_at.append(time.time())
        self.i += 1
        return p


async def publish(base: str, bid: str, key: str | None, clip: Any) -> tuple[Any, PacketTrack]:
    video, audio = clip
    pc = RTCPeerConnection(rtc_configuration())
    vtrack = PacketTrack("video", video, FPS, 90000, 90000 // FPS)
    atrack = PacketTrack("audio", audio, 50, 48000, 960)
    t = pc.addTransceiver(vtrack, direction="sendonly")
    t.setCodecPreferences(
        [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType == "video/H264" and c.parameters.get("profile-level-id") == "42e01f"
        ]
    )
    pc.addTransceiver(atrack, direction="sendonly")
    restrict_gathering(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/whip/{bid}", data=pc.localDescription.sdp, headers=headers) as r:
            body = await r.text()
            if r.status != 201:
                raise SystemExit(f"WHIP failed: {r.status} {body}")
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return pc, vtrack


# -- processes and CPU -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu(pid: int) -> float:
    """CPU seconds (user+system) of `pid` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK
        todo.extend(children.get(p, []))
    return total


async def wait_http(url: str, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    async with aiohttp.ClientSession() as s:
        while time.time() < deadline:
            try:
                async with s.get(url) as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"server at {url} did not come up")


# -- one step ----------------------------------------------------------------------------


async def run_step(
    base: str,
    bid: str,
    n: int,
    procs: int,
    server_pid: int,
    vtrack: PacketTrack,
    warmup: float,
    window: float,
    tmp: Path,
) -> dict[str, Any]:
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    outs = [tmp / f"step-{n}-{i}.json" for i in range(procs)]
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "mediaclient.py"),
            base,
            bid,
            str(k),
            str(warmup),
            str(window),
            str(out),
        )
        for k, out in zip(per, outs, strict=True)
        if k > 0
    ]
    # The clients measure [t0, t1) on their own; sample the server's CPU around the same span.
    cpu_samples: list[tuple[float, float]] = []
    client_samples: list[tuple[float, float]] = []
    loads: list[tuple[float, float]] = []
    done = asyncio.gather(*(c.wait() for c in children))
    spy = asyncio.create_task(profile(server_pid, n, warmup, window)) if PROFILE_DIR else None
    deadline = time.time() + warmup + window + 60 + n * 0.2
    while not done.done() and time.time() < deadline:
        now = time.time()
        cpu_samples.append((now, tree_cpu(server_pid)))
        client_samples.append((now, sum(tree_cpu(c.pid) for c in children)))
        loads.append((now, os.getloadavg()[0]))
        await asyncio.sleep(0.5)
    if not done.done():
        for c in children:
            with contextlib.suppress(ProcessLookupError):
                c.kill()
    await done
    if spy is not None:
        await spy
    results = [json.loads(o.read_text()) for o in outs if o.exists()]
    row = summarise(n, results, cpu_samples, vtrack)
    t0, t1 = row.pop("_span")
    row["client_cores"] = _cpu_between(client_samples, t0, t1)
    inside = [v for t, v in loads if t0 <= t <= t1]
    row["load_avg_1m"] = max(inside) if inside else float("nan")
    return row


PROFILE_DIR: Path | None = None


async def profile(pid: int, n: int, warmup: float, window: float) -> None:
    """Samples of the server's processes for `window` seconds once the viewers are in, in
    PROFILE_DIR: `perf record -g` of the process tree's threads (kernel and C frames; `perf
    report -i FILE`), then py-spy's Python stacks as collapsed text (flamegraph.pl and
    speedscope read it; native frames too, so py-spy pauses the server briefly per sample:
    profile runs are not for figures)."""
    assert PROFILE_DIR is not None
    await asyncio.sleep(warmup / 2)
    pids = ",".join(str(p) for p in tree_pids(pid))
    perf = await asyncio.create_subprocess_exec(
        "/usr/bin/perf", "record", "-F", "499", "-g", "-p", pids,
        "-o", str(PROFILE_DIR / f"perf-{n}.data"), "--", "sleep", str(window / 2),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    await perf.wait()
    spy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")),
        "record", "--pid", str(pid), "--subprocesses", "--native",
        "--rate", "100", "--duration", str(int(window / 2)), "--format", "raw",
        "--output", str(PROFILE_DIR / f"py-spy-{n}.txt"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    await spy.wait()


def tree_pids(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _cpu_between(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    inside = [s for s in samples if t0 <= s[0] <= t1]
    if len(inside) < 2:
        return float("nan")
    (a_t, a_c), (b_t, b_c) = inside[0], inside[-1]
    return (b_c - a_c) / (b_t - a_t)


def summarise(
    n: int, results: list[dict[str, Any]], cpu: list[tuple[float, float]], vtrack: PacketTrack
) -> dict[str, Any]:
    sent = vtrack.sent_at
    fps: list[float] = []
    lat: list[float] = []
    pictures = errors = 0
    first_error: str | None = None
    packets = lost = 0
    spans = []
    to_picture: list[float] = []
    for res in results:
        t0, t1 = res["t0"], res["t1"]
        spans.append((t0, t1))
        for v in res["viewers"]:
            if v["error"]:
                errors += 1
                first_error = first_error or v["error"]
                continue
            packets += v["packets"]
            lost += v["lost"]
            if v["first_stamp"] is None:
                fps.append(0.0)
                continue
            pictures += 1
            if v.get("to_picture") is not None:
                to_picture.append(v["to_picture"])
            fps.append(len(v["frames"]) / (t1 - t0))
            # The first frame's absolute index: the last index sent with this clip stamp
            # before it arrived.
            first = None
            for idx in range(len(sent) - 1, -1, -1):
                if idx % CLIP_FRAMES == v["first_stamp"] and sent[idx] <= v["first_arrival"]:
                    first = idx
                    break
            if first is None:
                continue
            for ts, arrival in v["frames"]:
                idx = first + ((ts - v["first_ts"]) & 0xFFFFFFFF) // (90000 // FPS)
                if 0 <= idx < len(sent):
                    lat.append((arrival - sent[idx]) * 1000)
    lat.sort()
    t0 = max(s[0] for s in spans) if spans else 0
    t1 = min(s[1] for s in spans) if spans else 0
    cores = _cpu_between(cpu, t0, t1)

    def pct(p: float) -> float:
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {
        "viewers": n,
        "connected": n - errors,
        "with_picture": pictures,
        "fps_median": statistics.median(fps) if fps else 0.0,
        "fps_min": min(fps) if fps else 0.0,
        "viewers_29fps": sum(1 for f in fps if f >= 29),
        "latency_ms_p50": pct(0.50),
        "latency_ms_p95": pct(0.95),
        "latency_ms_max": lat[-1] if lat else float("nan"),
        "to_picture_s_median": statistics.median(to_picture) if to_picture else float("nan"),
        "to_picture_s_max": max(to_picture) if to_picture else float("nan"),
        "loss_pct": 100.0 * lost / (packets + lost) if packets + lost else 0.0,
        "server_cores": cores,
        "server_cores_per_viewer": cores / (n - errors) if n > errors else float("nan"),
        "first_error": first_error,
        "_span": (t0, t1),
    }


# -- servers -----------------------------------------------------------------------------


async def setup_jobcast(base: str, redis_url: str) -> tuple[str, str]:
    from jobcast.web.access.auth import add_user
    from redis.asyncio import Redis

    r = Redis.from_url(redis_url)
    await add_user(r, "bench", "bench-pass-1", "host")
    await r.aclose()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.post(
            f"{base}/api/login", json={"username": "bench", "password": "bench-pass-1"}
        ) as resp:
            csrf = (await resp.json())["csrf"]
        h = {"X-CSRF-Token": csrf}
        async with s.post(f"{base}/api/broadcasts", json={"title": "Bench"}, headers=h) as resp:
            bid = (await resp.json())["id"]
        async with s.post(f"{base}/api/broadcasts/{bid}/stream-key", headers=h) as resp:
            key = (await resp.json())["stream_key"]
    return bid, key


async def bench_server(
    name: str,
    cmd: list[str],
    env: dict[str, str] | None,
    port: int,
    steps: list[int],
    args: argparse.Namespace,
    clip: Any,
    tmp: Path,
    redis_url: str | None,
) -> list[dict[str, Any]]:
    base = f"http://127.0.0.1:{port}"
    log = _open_log(tmp / f"{name}.log")
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env
    )
    rows: list[dict[str, Any]] = []
    try:
        await wait_http(f"{base}/whep/probe")
        if redis_url:
            bid, key = await setup_jobcast(base, redis_url)
        else:
            bid, key = "x", None
        pc, vtrack = await publish(base, bid, key, clip)
        await asyncio.sleep(2.0)
        for n in steps:
            row = await run_step(
                base, bid, n, args.client_procs, proc.pid, vtrack, args.warmup, args.window, tmp
            )
            row["server"] = name
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            await asyncio.sleep(2.0)
        await pc.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        log.close()
    return rows


def _open_log(path: Path) -> Any:
    return path.open("wb")


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| server | viewers | with picture | >=29 fps | fps median / min | latency p50 / p95 / max"
        " (ms) | first picture median / max (s) | loss | server cores | cores per viewer"
        " | client cores | load |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r['server']} | {r['viewers']} | {r['with_picture']} | {r['viewers_29fps']} "
            f"| {r['fps_median']:.1f} / {r['fps_min']:.1f} "
            f"| {r['latency_ms_p50']:.0f} / {r['latency_ms_p95']:.0f} / {r['latency_ms_max']:.0f} "
            f"| {r['to_picture_s_median']:.2f} / {r['to_picture_s_max']:.2f} "
            f"| {r['loss_pct']:.2f}% | {r['server_cores']:.2f} "
            f"| {r['server_cores_per_viewer']:.4f} | {r['client_cores']:.2f} "
            f"| {r['load_avg_1m']:.1f} |"
        )
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> None:
    clip = make_clip()
    vbytes = sum(len(d) for d, _ in clip[0])
    print(
        f"clip: {len(clip[0])} frames {W}x{H}@{FPS}, "
        f"{vbytes * 8 / (len(clip[0]) / FPS) / 1e6:.2f} Mbps video + Opus 64 kbps",
        file=sys.stderr,
    )
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jobcast-bench-media-") as tmp_s:
        tmp = Path(tmp_s)
        if args.viewers:
            redis = RedisProcess(tmp / "redis", fsync="everysec")
            redis.start()
            try:
                runs = [
                    (int(e), path)
                    for path in args.send_path.split(",")
                    for e in str(args.egress).split(",")
                ]
                for egress, path in runs:
                    port = free_port()
                    cmd = [
                        sys.executable,
                        "-m",
                        "jobcast",
                        "serve",
                        "--port",
                        str(port),
                        "--redis-url",
                        redis.url,
                        "--data-dir",
                        str(tmp / "data"),
                        "--media-ice-addresses",
                        "127.0.0.1",
                        "--media-max-viewers",
                        "5000",
                        "--media-pending-per-address",
                        "0",
                        "--media-egress-processes",
                        str(egress),
                        "--log-level",
                        "warning",
                    ]
                    steps = [int(x) for x in args.viewers.split(",")]
                    name = f"Jobcast {path}, {egress} egress"
                    env = {**os.environ, "JOBCAST_MEDIA_SEND_PATH": path}
                    rows += await bench_server(
                        name, cmd, env, port, steps, args, clip, tmp, redis.url
                    )
            finally:
                redis.stop()
        if args.baseline:
            port = free_port()
            cmd = [sys.executable, str(HERE / "media_baseline.py"), str(port)]
            steps = [int(x) for x in args.baseline.split(",")]
            rows += await bench_server(
                "aiortc MediaRelay", cmd, None, port, steps, args, clip, tmp, None
            )
    print(table(rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--viewers", default="50,100,150,200", help="viewer counts for Jobcast")
    p.add_argument("--baseline", default="1,2,4,8", help="viewer counts for MediaRelay")
    p.add_argument(
        "--egress", default="0,2", help="Jobcast media_egress_processes, one run per value"
    )
    p.add_argument(
        "--send-path",
        default="aiortc,direct",
        help="Jobcast media_send_path values, one run per value (with each --egress)",
    )
    p.add_argument("--client-procs", type=int, default=2, help="viewer client processes")
    p.add_argument("--warmup", type=float, default=15.0, help="seconds to wait for pictures")
    p.add_argument("--window", type=float, default=10.0, help="measured seconds per step")
    p.add_argument(
        "--py-spy",
        default="",
        help="directory for perf and py-spy profiles of the server, one per step"
        " (pip install py-spy)",
    )
    args = p.parse_args()
    global PROFILE_DIR
    PROFILE_DIR = Path(args.py_spy).resolve() if args.py_spy else None
    if PROFILE_DIR:
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
