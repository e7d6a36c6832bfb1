"""Stream health for the host: what the publisher sends (frame rate, bit rates, keyframe
spacing, how fresh) and how viewers watch (WebRTC on every process, the rest over HLS or not
playing), with a verdict the console shows as a traffic light.

The publisher's process measures its own ingest (`IngestMeter`, fed by every encoded frame)
and writes the report into the ingest hash on each heartbeat; every process writes its count
of WebRTC viewers per broadcast beside it, like presence. Any process can then answer the
host (`read_health`), whichever one holds the publisher.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import orjson
from jobcast.core import keys
from redis.asyncio import Redis

WINDOW = 5.0  # seconds the rates are averaged over
LOW_FPS = 20.0
STALE_S = 2.0  # no frame for this long: stalled
KEYFRAME_MAX_S = 10.0  # viewers joining wait up to this long for a picture


class IngestMeter:
    """Frames and bytes per kind over the last WINDOW seconds, and the keyframe spacing."""

    def __init__(self) -> None:
        self._frames: dict[str, deque[tuple[float, int]]] = {"video": deque(), "audio": deque()}
        self._keyframes: deque[float] = deque(maxlen=4)
        self.last: float | None = None

    def add(self, kind: str, nbytes: int, keyframe: bool, now: float) -> None:
        q = self._frames.setdefault(kind, deque())
        q.append((now, nbytes))
        while q and q[0][0] < now - WINDOW:
            q.popleft()
        if keyframe and kind == "video":
            self._keyframes.append(now)
        self.last = now

    def report(self, now: float) -> dict[str, Any]:
        out: dict[str, Any] = {"age_s": None if self.last is None else round(now - self.last, 2)}
        for kind, q in self._frames.items():
            recent = [(t, n) for t, n in q if t >= now - WINDOW]
            if not recent:
                continue
            span = max(now - recent[0][0], 1.0) if len(recent) > 1 else WINDOW
            part: dict[str, Any] = {"kbps": round(sum(n for _, n in recent) * 8 / span / 1000)}
            if kind == "video":
                part["fps"] = round(len(recent) / span, 1)
                k = list(self._keyframes)
                part["keyframe_s"] = round((k[-1] - k[0]) / (len(k) - 1), 1) if len(k) > 1 else None
                part["since_keyframe_s"] = round(now - k[-1], 1) if k else None
            out[kind] = part
        return out


def verdict(report: dict[str, Any]) -> tuple[str, list[str]]:
    """`good`, `warn` or `bad`, with the reasons (codes the pages put in words)."""
    reasons: list[str] = []
    age = report.get("age_s")
    if age is None or age > STALE_S:
        return "bad", ["stalled"]
    video = report.get("video")
    if video is None:
        reasons.append("no_video")
    else:
        if video.get("fps", 0) < LOW_FPS:
            reasons.append("low_fps")
        since = video.get("since_keyframe_s")
        spacing = video.get("keyframe_s")
        if since is None or since > KEYFRAME_MAX_S or (spacing or 0) > KEYFRAME_MAX_S:
            reasons.append("rare_keyframes")
    return ("warn" if reasons else "good"), reasons


async def write_ingest(redis: Redis, bid: str, meter: IngestMeter, now: float) -> None:
    report = {**meter.report(now), "at": int(time.time() * 1000)}
    await redis.hset(keys.ingest(bid), "health", orjson.dumps(report))


async def write_viewer_counts(redis: Redis, process: str, counts: dict[str, int]) -> None:
    """This process's WebRTC viewers per broadcast ("count:unix_ms", aged out like presence)."""
    if not counts:
        return
    now = int(time.time() * 1000)
    async with redis.pipeline(transaction=False) as pipe:
        for bid, n in counts.items():
            if n:
                pipe.hset(keys.media_viewers(bid), process, f"{n}:{now}")
                pipe.pexpire(keys.media_viewers(bid), 60_000)
            else:
                pipe.hdel(keys.media_viewers(bid), process)
        await pipe.execute()


async def read_health(redis: Redis, bid: str, total_viewers: int, fresh_s: float) -> dict[str, Any]:
    """The host's view of the stream: state, the ingest report with its verdict, viewers."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(keys.ingest(bid), "state", "health")
        pipe.hgetall(keys.media_viewers(bid))
        (state, raw), counts = await pipe.execute()
    cutoff = int((time.time() - fresh_s) * 1000)
    webrtc = 0
    for value in counts.values():
        n, _, ts = value.partition(b":")
        if ts.isdigit() and int(ts) >= cutoff:
            webrtc += int(n)
    out: dict[str, Any] = {
        "state": "offline" if state is None else ("live" if state == b"live" else "starting"),
        "viewers": {
            "total": max(total_viewers, webrtc),
            "webrtc": webrtc,
            "other": max(0, total_viewers - webrtc),
        },
    }
    if state is not None and raw is not None:
        report = orjson.loads(raw)
        written = report.pop("at", None)
        if report.get("age_s") is not None and isinstance(written, int):  # as of now
            late = max(0.0, time.time() * 1000 - written) / 1000
            report["age_s"] = round(report["age_s"] + late, 2)
        out["ingest"] = report
        out["verdict"], out["reasons"] = verdict(report)
    return out
