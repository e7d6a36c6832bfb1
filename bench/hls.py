"""HLS benchmark: N viewers of one live stream through a caching reverse proxy (nginx).

    python bench/hls.py --steps 100,1000,5000 --baseline 100 --runs 3

For each clip bit rate (the full one, and a lower one for the steps from `--low-from` on when
the client processes cannot read the full one for that many viewers on this box):
  1. starts `jobcast serve` (HLS on, 1 s segments, DATA_DIR in a temp dir) on a redis-server
     this script starts, and publishes the clip of bench/media.py over WHIP from this process
     (1280x720 at 30 fps pre-encoded with libx264, a keyframe every second, plus Opus);
  2. starts nginx with docs/nginx-hls.conf (its listen address, upstream port and paths
     replaced: 127.0.0.1 only, everything in the temp dir): `proxy_cache` with
     `proxy_cache_lock on`, the origin's Cache-Control obeyed, an access log with
     `$upstream_cache_status` and `$upstream_addr` (origin requests are the lines with an
     upstream address);
  3. measures the origin and nginx with no viewer (the cost of writing HLS), then, per step
     and run, starts client processes (bench/hlsclient.py) whose viewers join within
     `--spread` seconds, warm up, and play for `--window` seconds at playback pace (reload
     live.m3u8 about once a target duration, load every new segment's whole body, count
     stalls with a playback-buffer model).

The baseline: `--baseline` viewers straight to the origin, no nginx in their path (nginx
keeps running for the probe, which costs the origin under two requests a second).

Two probes in this process time the segments: one reads live.m3u8's mtime on the origin's
disk (when the origin lists a segment), one polls live.m3u8 through nginx every
`--probe-interval` seconds and fetches each new segment (when a viewer of nginx can have it).
A segment's EXT-X-PROGRAM-DATE-TIME is the server's arrival clock of its first frame on this
box; the bench maps it to the frame the publisher sent (same clock), so "frame -> fetchable"
is, for every frame of every segment, the segment fully fetchable through nginx minus the
moment the publisher handed that frame to its sender.

Reported per step (the median and the range over `--runs` runs): origin requests per
segment (for the segments listed inside the window: nginx's log lines with an upstream
address, or the viewers' own requests straight to the origin), origin requests per playlist
reload round (origin requests for live.m3u8 / (viewer reloads / N)), origin and nginx CPU as
a share of a core (/proc, whole process trees), viewers that stalled, frame -> fetchable
p50/p95 and an estimate of glass-to-glass for hls.js's defaults (the formula is printed).
`--json` keeps every run's row, with more fields (client CPU and loop lag, requests/s, bytes,
startup time, segment age at the viewers).

Traffic only to 127.0.0.1; every loop is bounded in count and time; every process started
here (redis-server, `jobcast serve`, nginx, the clients) is stopped in `finally`, also on
Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import fractions
import json
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import media  # noqa: E402  (bench/media.py: the clip, the publisher, CPU of a process tree)
from jobcast.stream.playlist import parse  # noqa: E402

from tests.redisproc import RedisProcess  # noqa: E402

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CONF = ROOT / "docs" / "nginx-hls.conf"
FPS = media.FPS
SYNC = 3  # hls.js liveSyncDurationCount


# -- the clip --------------------------------------------------------------------------------


def make_clip(kbps: int) -> tuple[list[tuple[bytes, bool]], list[bytes]]:
    """bench/media.py's clip; below its 1.5 Mbps the same pictures encoded at `kbps`."""
    full = media.make_clip()
    if kbps >= 1500:
        return full
    cache = Path(tempfile.gettempdir()) / f"jobcast-bench-clip-720p-{kbps}k-v1.bin"
    if cache.exists():
        data = json.loads(cache.read_text())
        return [(bytes.fromhex(d), k) for d, k in data["video"]], full[1]
    t = time.time()
    w, h = media.W, media.H
    base = [bytes(((x // 4 + r // 3) % 200) + 20 for x in range(2 * w)) for r in range(h)]
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = fractions.Fraction(1, FPS)
    enc.framerate = FPS
    enc.bit_rate = kbps * 1000
    enc.gop_size = FPS
    enc.profile = "Baseline"
    enc.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "x264-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0:vbv-maxrate={kbps}"
        f":vbv-bufsize={max(100, kbps * 2 // 3)}",
    }
    video: list[tuple[bytes, bool]] = []
    for i in range(media.CLIP_FRAMES):
        f = av.VideoFrame(w, h, "yuv420p")
        f.planes[0].update(media._frame_y(i, base))
        f.planes[1].update(b"\x80" * f.planes[1].buffer_size)
        f.planes[2].update(b"\x6a" * f.planes[2].buffer_size)
        f.pts = i
        f.time_base = enc.time_base
        video += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(f)]
    video += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(None)]
    cache.write_text(json.dumps({"video": [(d.hex(), k) for d, k in video]}))
    print(f"clip at {kbps} kbps encoded in {time.time() - t:.1f}s", file=sys.stderr)
    return video, full[1]


def clip_mbps(clip: Any) -> float:
    video = clip[0]
    return sum(len(d) for d, _ in video) * 8 / (len(video) / FPS) / 1e6


# -- processes ---------------------------------------------------------------------------------


async def stop_group(proc: asyncio.subprocess.Process, name: str) -> None:
    """SIGTERM to the process group, SIGKILL after 15 s."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        async with asyncio.timeout(15):
            await proc.wait()
    except TimeoutError:
        print(f"{name} did not stop on SIGTERM: SIGKILL", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def nginx_conf(port: int, origin_port: int, tmp: Path) -> str:
    """docs/nginx-hls.conf with the bench's address, upstream and paths."""
    text = CONF.read_text()
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {d}_temp_path {tmp / ('nginx-' + d)};"
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    swaps = [
        ("user www-data;", user),
        ("pid /run/nginx-jobcast-hls.pid;", f"pid {tmp / 'nginx.pid'};"),
        ("/var/log/nginx/jobcast-hls-error.log", str(tmp / "nginx-error.log")),
        ("/var/log/nginx/jobcast-hls-access.log", str(tmp / "nginx-access.log")),
        ("/var/cache/nginx/jobcast-hls", str(tmp / "nginx-cache")),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{origin_port};"),
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("http {\n", "http {\n" + temp + "\n"),
    ]
    for old, new in swaps:
        if text.count(old) != 1:
            raise SystemExit(f"{CONF}: expected {old!r} once")
        text = text.replace(old, new)
    return text


async def start_nginx(port: int, origin_port: int, tmp: Path) -> asyncio.subprocess.Process:
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(port, origin_port, tmp))
    base = [NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "nginx-error.log")]
    check = await asyncio.to_thread(
        subprocess.run, [*base, "-t"], capture_output=True, text=True, timeout=20
    )
    if check.returncode != 0:
        raise SystemExit(f"nginx -t failed:\n{check.stderr}")
    log = (tmp / "nginx-stdout.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *base, "-g", "daemon off;", stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    return proc


# -- probes ----------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    """A playlist of a few hundred bytes on a local disk: read on the loop, like the log."""
    return path.read_text()


@dataclass
class Probe:
    """When each segment was listed by the origin and fetchable through nginx (wall s)."""

    listed: dict[str, float] = field(default_factory=dict)  # live.m3u8 written on disk
    fetchable: dict[str, float] = field(default_factory=dict)  # fully fetched through nginx
    pdt: dict[str, float] = field(default_factory=dict)  # program date-time (s)
    duration: dict[str, float] = field(default_factory=dict)
    target: float = 1.0
    errors: int = 0


async def probe_disk(path: Path, probe: Probe, every: float, stop: asyncio.Event) -> None:
    """The origin serves its files as they are: the playlist's mtime is when it listed them."""
    last = 0
    while not stop.is_set():
        try:
            st = os.stat(path)
            if st.st_mtime_ns != last:
                last = st.st_mtime_ns
                pl = parse(_read_text(path))
                for s in pl.segments:
                    probe.listed.setdefault(s.name, st.st_mtime_ns / 1e9)
                    probe.pdt.setdefault(s.name, s.pdt_ms / 1000)
                    probe.duration.setdefault(s.name, s.duration)
                probe.target = float(pl.target)
        except (OSError, ValueError):
            pass
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def probe_http(base: str, probe: Probe, every: float, stop: asyncio.Event) -> None:
    """Polls live.m3u8 through nginx; each new segment, fetched whole, is then fetchable."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        while not stop.is_set():
            try:
                async with s.get(f"{base}/live.m3u8") as r:
                    body = await r.text() if r.status == 200 else ""
                if body:
                    for seg in parse(body).segments:
                        if seg.name in probe.fetchable:
                            continue
                        async with s.get(f"{base}/{seg.name}") as r:
                            await r.read()
                            if r.status != 200:
                                probe.errors += 1
                                continue
                        probe.fetchable[seg.name] = time.time()
            except (aiohttp.ClientError, TimeoutError, ValueError):
                probe.errors += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


def frame_latencies(
    probe: Probe, times: dict[str, float], sent: list[float], keys: list[int], t0: float, t1: float
) -> tuple[list[float], list[float]]:
    """(per frame: segment in `times` minus the frame's send time, s; per segment: its
    program date-time minus its first frame's send time, s) for segments timed in [t0, t1)."""
    lat: list[float] = []
    offsets: list[float] = []
    key_sent = [sent[i] for i in keys]
    for name, at in times.items():
        if not t0 <= at < t1 or name not in probe.pdt:
            continue
        pdt = probe.pdt[name]
        j = bisect.bisect_left(key_sent, pdt)
        near = [k for k in (j - 1, j) if 0 <= k < len(keys)]
        if not near:
            continue
        k = min(near, key=lambda k: abs(key_sent[k] - pdt))
        if abs(key_sent[k] - pdt) > 0.4:
            continue
        first = keys[k]
        offsets.append(pdt - sent[first])
        frames = round(probe.duration[name] * FPS)
        lat += [at - sent[i] for i in range(first, min(first + frames, len(sent)))]
    return lat, offsets


# -- nginx's access log ----------------------------------------------------------------------


@dataclass
class AccessLog:
    """Reads nginx's access log as it grows; remembers what went to the origin."""

    path: Path
    offset: int = 0
    origin_by_name: dict[str, int] = field(default_factory=dict)
    origin_playlist_at: list[float] = field(default_factory=list)
    requests_at: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def read(self) -> None:
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
            end = data.rfind(b"\n") + 1
            self.offset += end
            for line in data[:end].decode(errors="replace").splitlines():
                parts = line.split()
                if len(parts) < 6:
                    continue
                at, status, _method, uri, _cache, upstream = parts[:6]
                t = float(at)
                name = uri.rsplit("/", 1)[-1]
                self.requests_at.append(t)
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if upstream != "-":
                    self.origin_by_name[name] = self.origin_by_name.get(name, 0) + 1
                    if name == "live.m3u8":
                        self.origin_playlist_at.append(t)


# -- one run ---------------------------------------------------------------------------------


@dataclass
class Servers:
    origin: asyncio.subprocess.Process
    nginx: asyncio.subprocess.Process
    origin_base: str
    nginx_base: str
    bid: str
    vtrack: Any
    clip_keys: set[int]  # indices of the clip's keyframes
    clip_len: int
    probe: Probe
    log: AccessLog
    clip_mbps: float

    def keyframes(self) -> list[int]:
        """Indices of the keyframes the publisher has sent (frame i is clip frame i % len)."""
        n = len(self.vtrack.sent_at)
        return [i for i in range(n) if i % self.clip_len in self.clip_keys]


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p * len(s)))]


async def sample_cpu(
    srv: Servers, children: list[asyncio.subprocess.Process], until: float
) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {
        "origin": [],
        "nginx": [],
        "clients": [],
        "bench": [],
        "load": [],
    }
    while time.time() < until and not (
        children and all(c.returncode is not None for c in children)
    ):
        now = time.time()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["origin"].append((now, media.tree_cpu(srv.origin.pid)))
        out["nginx"].append((now, media.tree_cpu(srv.nginx.pid)))
        out["clients"].append((now, sum(media.tree_cpu(c.pid) for c in children)))
        out["bench"].append((now, ru.ru_utime + ru.ru_stime))
        out["load"].append((now, os.getloadavg()[0]))
        await asyncio.sleep(0.5)
    return out


async def run_once(
    srv: Servers, n: int, direct: bool, args: argparse.Namespace, tmp: Path, tag: str
) -> dict[str, Any]:
    host_base = srv.origin_base if direct else srv.nginx_base
    port = int(host_base.rsplit(":", 1)[1])
    procs = max(1, min(args.client_procs, math.ceil(n / 100)))
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    start_at = time.time() + 2.0
    children = []
    outs = []
    for i, k in enumerate(per):
        cfg = {
            "host": "127.0.0.1",
            "port": port,
            "prefix": f"/hls/{srv.bid}/",
            "n": k,
            "start_at": start_at,
            "spread": args.spread,
            "warmup": args.warmup,
            "window": args.window,
            "sync": SYNC,
            "seed": f"{tag}-{i}",
        }
        cpath, opath = tmp / f"{tag}-{i}.cfg.json", tmp / f"{tag}-{i}.json"
        cpath.write_text(json.dumps(cfg))
        outs.append(opath)
        children.append(
            await asyncio.create_subprocess_exec(
                sys.executable, str(HERE / "hlsclient.py"), str(cpath), str(opath)
            )
        )
    t0 = start_at + args.spread + args.warmup
    t1 = t0 + args.window
    try:
        samples = await sample_cpu(srv, children, t1 + 60)
    finally:
        for c in children:
            if c.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    c.kill()
            await c.wait()
    await asyncio.sleep(1.5)  # nginx flushes its log buffer every second
    srv.log.read()
    results = [json.loads(o.read_text()) for o in outs if o.exists()]
    return summarise(srv, n, direct, results, samples, t0, t1)


def summarise(
    srv: Servers,
    n: int,
    direct: bool,
    results: list[dict[str, Any]],
    samples: dict[str, list[tuple[float, float]]],
    t0: float,
    t1: float,
) -> dict[str, Any]:
    viewers = [v for r in results for v in r["viewers"]]
    requests: dict[str, int] = {}
    for r in results:
        for name, c in r["requests_all"].items():
            requests[name] = requests.get(name, 0) + c
    playlist_reqs = sum(r["playlist_requests"] for r in results)
    seg_reqs = sum(c for r in results for k, c in r["requests"].items() if k.endswith(".m4s"))
    # Segments the origin listed well inside the window: every viewer fetched them in the run.
    inner = [k for k, t in srv.probe.listed.items() if t0 + 1 <= t < t1 - 3 and k in requests]
    if direct:
        origin_seg = sum(requests[k] for k in inner)
        origin_pl = playlist_reqs
    else:
        origin_seg = sum(srv.log.origin_by_name.get(k, 0) for k in inner)
        origin_pl = sum(1 for t in srv.log.origin_playlist_at if t0 <= t < t1)
    rounds = playlist_reqs / n if n else float("nan")
    window = t1 - t0
    sent = srv.vtrack.sent_at
    times = srv.probe.listed if direct else srv.probe.fetchable
    lat, offsets = frame_latencies(srv.probe, times, sent, srv.keyframes(), t0, t1)
    at_viewer = [ms / 1000 for r in results for ms in r["at_viewer_ms"]]
    lmean = statistics.fmean(lat) if lat else float("nan")
    lags = [r["loop_lag_ms_max"] for r in results if r["loop_lag_ms_max"] is not None]
    nginx_reqs = sum(1 for t in srv.log.requests_at if t0 <= t < t1)
    return {
        "path": "direct to origin" if direct else "through nginx",
        "viewers": n,
        "clip_mbps": round(srv.clip_mbps, 2),
        "reported": len(viewers),
        "started": sum(1 for v in viewers if v["started"]),
        "stalled": sum(1 for v in viewers if v["stalls"]),
        "stalls": sum(v["stalls"] for v in viewers),
        "errors": sum(v["errors"] for v in viewers),
        "skipped": sum(v["skipped"] for v in viewers),
        "startup_s_median": statistics.median(
            [v["startup_s"] for v in viewers if v["startup_s"] is not None] or [float("nan")]
        ),
        "segments_counted": len(inner),
        "viewer_segment_requests": seg_reqs,
        "viewer_playlist_requests": playlist_reqs,
        "origin_per_segment": origin_seg / len(inner) if inner else float("nan"),
        "origin_per_reload_round": origin_pl / rounds if rounds else float("nan"),
        "origin_playlists_per_s": origin_pl / window,
        "nginx_requests_per_s": nginx_reqs / window,
        "viewer_mbytes_per_s": sum(r["bytes"] for r in results) / window / 1e6,
        "origin_cores": media._cpu_between(samples["origin"], t0, t1),
        "nginx_cores": media._cpu_between(samples["nginx"], t0, t1),
        "client_cores": media._cpu_between(samples["clients"], t0, t1),
        "bench_cores": media._cpu_between(samples["bench"], t0, t1),
        "load_1m": max((v for t, v in samples["load"] if t0 <= t <= t1), default=float("nan")),
        "client_loop_lag_ms_max": max(lags) if lags else float("nan"),
        "fetchable_s_mean": lmean,
        "fetchable_s_p50": _pct(lat, 0.5),
        "fetchable_s_p95": _pct(lat, 0.95),
        "pdt_minus_sent_ms_median": 1000 * statistics.median(offsets) if offsets else None,
        "at_viewer_s_p50": _pct(at_viewer, 0.5),
        "at_viewer_s_p95": _pct(at_viewer, 0.95),
        "target_s": srv.probe.target,
        "glass_s_estimate": lmean + SYNC * srv.probe.target,
    }


async def idle(srv: Servers, seconds: float) -> dict[str, Any]:
    """The origin and nginx with no viewer: the cost of writing HLS (plus the probes)."""
    t0 = time.time()
    samples = await sample_cpu(srv, [], t0 + seconds)
    t1 = time.time()
    lat, _ = frame_latencies(
        srv.probe, srv.probe.listed, srv.vtrack.sent_at, srv.keyframes(), t0, t1
    )
    return {
        "path": "no viewers",
        "clip_mbps": round(srv.clip_mbps, 2),
        "origin_cores": media._cpu_between(samples["origin"], t0, t1),
        "nginx_cores": media._cpu_between(samples["nginx"], t0, t1),
        "bench_cores": media._cpu_between(samples["bench"], t0, t1),
        "listed_s_p50": _pct(lat, 0.5),
        "listed_s_p95": _pct(lat, 0.95),
    }


# -- servers ---------------------------------------------------------------------------------


async def with_servers(
    kbps: int,
    work: list[tuple[int, bool]],
    args: argparse.Namespace,
    redis_url: str,
    tmp: Path,
) -> list[dict[str, Any]]:
    """Starts jobcast, the publisher and nginx; runs `work` ((viewers, direct) steps)."""
    clip = make_clip(kbps)
    mbps = clip_mbps(clip)
    print(f"clip: {media.W}x{media.H}@{FPS}, {mbps:.2f} Mbps video + Opus", file=sys.stderr)
    keys_in_clip = [i for i, (_d, k) in enumerate(clip[0]) if k]
    group = tmp / f"clip-{kbps}"
    group.mkdir()
    origin_port, nginx_port = media.free_port(), media.free_port()
    cmd = [
        sys.executable,
        "-m",
        "jobcast",
        "serve",
        "--port",
        str(origin_port),
        "--redis-url",
        redis_url,
        "--data-dir",
        str(group / "data"),
        "--media-ice-addresses",
        "127.0.0.1",
        "--media-egress-processes",
        "0",
        "--hls",
        "--hls-segment-seconds",
        "1",
        "--log-level",
        "warning",
    ]
    log = (group / "jobcast.log").open("wb")
    origin = await asyncio.create_subprocess_exec(
        *cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    nginx: asyncio.subprocess.Process | None = None
    stop = asyncio.Event()
    probes: list[asyncio.Task[None]] = []
    pc = None
    rows: list[dict[str, Any]] = []
    try:
        origin_base = f"http://127.0.0.1:{origin_port}"
        await media.wait_http(f"{origin_base}/whep/probe")
        bid, key = await media.setup_jobcast(origin_base, redis_url)
        pc, vtrack = await media.publish(origin_base, bid, key, clip)
        nginx = await start_nginx(nginx_port, origin_port, group)
        nginx_base = f"http://127.0.0.1:{nginx_port}"
        await media.wait_http(f"{nginx_base}/hls/{bid}/live.m3u8")
        probe = Probe()
        playlist = group / "data" / "hls" / bid / "live.m3u8"
        probes = [
            asyncio.create_task(probe_disk(playlist, probe, 0.02, stop)),
            asyncio.create_task(
                probe_http(f"{nginx_base}/hls/{bid}", probe, args.probe_interval, stop)
            ),
        ]
        deadline = time.time() + 30
        while len(probe.fetchable) < 4 and time.time() < deadline:
            await asyncio.sleep(0.2)
        if len(probe.fetchable) < 4:
            raise SystemExit(f"no HLS segments through nginx; see {group}/jobcast.log")
        srv = Servers(
            origin,
            nginx,
            origin_base,
            nginx_base,
            bid,
            vtrack,
            set(keys_in_clip),
            len(clip[0]),
            probe,
            AccessLog(group / "nginx-access.log"),
            mbps,
        )
        idle_row = await idle(srv, args.idle)
        idle_row["viewers"] = 0
        rows.append(idle_row)
        print(json.dumps(idle_row), file=sys.stderr, flush=True)
        for n, direct in work:
            for run in range(args.runs):
                tag = f"{kbps}-{n}-{'d' if direct else 'n'}-{run}"
                row = await run_once(srv, n, direct, args, group, tag)
                row["run"] = run + 1
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                await asyncio.sleep(args.pause)
    finally:
        stop.set()
        for t in probes:
            t.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        if pc is not None:
            with contextlib.suppress(Exception):
                await pc.close()
        if nginx is not None:
            await stop_group(nginx, "nginx")
        await stop_group(origin, "jobcast serve")
    return rows


# -- the report ------------------------------------------------------------------------------


def _agg(rows: list[dict[str, Any]], key: str, fmt: str) -> str:
    vals = [r[key] for r in rows if r.get(key) is not None and not _isnan(r[key])]
    if not vals:
        return "–"
    med = statistics.median(vals)
    if len(vals) == 1 or min(vals) == max(vals):
        return format(med, fmt)
    return f"{format(med, fmt)} ({format(min(vals), fmt)}–{format(max(vals), fmt)})"


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def table(rows: list[dict[str, Any]]) -> str:
    steps: dict[tuple[str, int, float], list[dict[str, Any]]] = {}
    for r in rows:
        steps.setdefault((r["path"], r["viewers"], r["clip_mbps"]), []).append(r)
    head = (
        "| path | viewers | clip Mbps | runs | origin req / segment | origin req / playlist"
        " reload round | origin playlists/s | origin cores | nginx cores | viewers stalled"
        " (not started) | frame → fetchable p50 / p95 (s) | glass-to-glass est. (s)"
        " | client cores | load |"
    )
    lines = [head, "|" + "---|" * 14]
    for (path, n, mbps), rs in steps.items():
        if path == "no viewers":
            lines.append(
                f"| {path} | 0 | {mbps:.2f} | 1 | – | – | – "
                f"| {_agg(rs, 'origin_cores', '.2f')} | {_agg(rs, 'nginx_cores', '.2f')} | – "
                f"| listed by origin {_agg(rs, 'listed_s_p50', '.2f')} / "
                f"{_agg(rs, 'listed_s_p95', '.2f')} | – | – | – |"
            )
            continue
        not_started = [r["viewers"] - r["started"] for r in rs]
        lines.append(
            f"| {path} | {n} | {mbps:.2f} | {len(rs)} "
            f"| {_agg(rs, 'origin_per_segment', '.2f')} "
            f"| {_agg(rs, 'origin_per_reload_round', '.2f')} "
            f"| {_agg(rs, 'origin_playlists_per_s', '.2f')} "
            f"| {_agg(rs, 'origin_cores', '.2f')} | {_agg(rs, 'nginx_cores', '.2f')} "
            f"| {_agg(rs, 'stalled', '.0f')} ({max(not_started)}) "
            f"| {_agg(rs, 'fetchable_s_p50', '.2f')} / {_agg(rs, 'fetchable_s_p95', '.2f')} "
            f"| {_agg(rs, 'glass_s_estimate', '.1f')} "
            f"| {_agg(rs, 'client_cores', '.2f')} | {_agg(rs, 'load_1m', '.1f')} |"
        )
    return "\n".join(lines)


LEGEND = (
    "origin req / segment: how often the origin served each segment it listed inside the "
    "window. origin req / playlist reload round: origin requests for live.m3u8 in the window "
    "/ (viewer reloads / N). frame → fetchable: through nginx, segment listed in nginx's "
    "live.m3u8 and fetched whole, minus the frame's send time; straight to the origin, the "
    "origin writing the playlist that lists it. load: highest 1-minute load average."
)

FORMULA = (
    "glass-to-glass (hls.js defaults) ≈ L + liveSyncDurationCount × TARGETDURATION = L + 3 × "
    "{target:g} s, L the mean frame → fetchable latency (through nginx; straight to the origin, "
    "frame → listed by the origin). Why: hls.js starts playing 3 target durations before the "
    "end of the newest segment in the playlist it loads and then plays at real time; at a "
    "random join moment that end is on average L old (each refresh of the playlist brings "
    "the frames made since the last one, so the average age of the edge over a refresh period "
    "equals the average frame's wait). Not counted: the publisher's capture and encode, the "
    "player's fetch of its first segments, decode and display."
)


async def amain(args: argparse.Namespace) -> None:
    # SIGTERM (`timeout`, a CI runner) cancels the run like Ctrl-C: the `finally` blocks stop
    # nginx, jobcast and redis-server, which run in sessions of their own.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    steps = [int(x) for x in args.steps.split(",") if x]
    full_kbps = 1500
    groups: dict[int, list[tuple[int, bool]]] = {}
    if args.baseline:
        groups.setdefault(full_kbps, []).append((args.baseline, True))
    for n in steps:
        kbps = args.low_kbps if args.low_from and n >= args.low_from else full_kbps
        groups.setdefault(kbps, []).append((n, False))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jobcast-bench-hls-") as tmp_s:
        tmp = Path(tmp_s)
        os.chmod(tmp, 0o755)
        redis = RedisProcess(tmp / "redis", fsync="everysec")
        redis.start()
        try:
            for kbps, work in groups.items():
                rows += await with_servers(kbps, work, args, redis.url, tmp)
        finally:
            redis.stop()
    target = next((r["target_s"] for r in rows if "target_s" in r), 1.0)
    print(table(rows))
    print()
    print(LEGEND)
    print()
    print(FORMULA.format(target=target))
    if args.low_from and any(n >= args.low_from for n in steps):
        print(
            f"\nSteps of {args.low_from} viewers and more used the clip at {args.low_kbps} kbps "
            "(the client processes cannot read the full bit rate for that many viewers on this "
            "box)."
        )
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps(rows, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", default="100,1000,5000", help="viewer counts through nginx")
    p.add_argument(
        "--baseline", type=int, default=100, help="viewers straight to the origin (0: none)"
    )
    p.add_argument("--runs", type=int, default=3, help="runs per step")
    p.add_argument("--client-procs", type=int, default=4, help="viewer client processes")
    p.add_argument("--spread", type=float, default=2.0, help="seconds over which viewers join")
    p.add_argument("--warmup", type=float, default=6.0, help="seconds before the window")
    p.add_argument("--window", type=float, default=20.0, help="measured seconds per run")
    p.add_argument("--idle", type=float, default=10.0, help="seconds measured with no viewer")
    p.add_argument("--pause", type=float, default=2.0, help="seconds between runs")
    p.add_argument(
        "--low-kbps", type=int, default=300, help="clip bit rate for steps from --low-from on"
    )
    p.add_argument(
        "--low-from", type=int, default=5000, help="first viewer count using --low-kbps (0: none)"
    )
    p.add_argument("--probe-interval", type=float, default=0.05, help="probe poll, s")
    p.add_argument("--json", default="", help="also write every run's row to this file")
    args = p.parse_args()
    os.chdir(ROOT)
    try:
        asyncio.run(amain(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("interrupted: every process this bench started is stopped")


if __name__ == "__main__":
    main()
