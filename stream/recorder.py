"""Recording without re-encoding: the publisher's encoded frames muxed into Matroska by PyAV.

Matroska rather than MP4: a file cut short by a crash or a full disk still plays, since MP4
only becomes readable once its index is written at the end. Muxing runs on a writer thread so
disk stalls never hold up the relay; if the thread falls far behind, frames are dropped and
counted rather than queued without bound.
"""

from __future__ import annotations

import contextlib
import fractions
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from jobcast.stream.bitstream import dimensions

log = logging.getLogger("jobcast.media")

EXTENSION = ".mkv"
_NAME = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9_-]{1,32}\.mkv$")
_QUEUE_FRAMES = 600
_MUX_NAMES = {"H264": "h264", "VP8": "vp8", "OPUS": "opus"}


@dataclass(frozen=True)
class RecordingInfo:
    name: str
    bytes: int
    modified_at: int  # unix ms
    in_progress: bool

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "bytes": self.bytes,
            "modified_at": self.modified_at,
            "in_progress": self.in_progress,
        }


class Recorder:
    """One recording file for one publisher session.

    `write(kind, codec_name, clock_rate, data, rtp_timestamp, keyframe)` is called on the event
    loop for every frame. The file starts at the first video keyframe (or the first audio
    frame of an audio-only stream); audio before that is dropped, since a file must declare
    all its streams before its first packet.
    """

    def __init__(self, path: Path, codecs: dict[str, str]) -> None:
        """`codecs`: kind -> codec name (H264, VP8, opus) of every stream the file will hold."""
        self.path = path
        self._codecs = dict(codecs)
        self.kinds = set(codecs)
        self.dropped = 0
        self.written = 0
        self._q: queue.Queue[tuple[Any, ...] | None] = queue.Queue(_QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._started = False
        self._closed = False
        self._thread.start()

    def write(
        self,
        kind: str,
        codec: str,
        clock_rate: int,
        data: bytes,
        timestamp: int,
        keyframe: bool,
    ) -> None:
        if self._closed:
            return
        try:
            self._q.put_nowait((kind, codec, clock_rate, data, timestamp, keyframe, time.time()))
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Finish the file (blocks until the writer thread is done; call via to_thread)."""
        if self._closed:
            return
        self._closed = True
        self._q.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        container: Any = None
        streams: dict[str, Any] = {}
        origin: dict[str, tuple[int, float]] = {}
        start_wall = 0.0
        last_pts: dict[str, int] = {}
        try:
            while True:
                item = self._q.get()
                if item is None:
                    break
                kind, codec, rate, data, ts, key, wall = item
                if container is None:
                    dims = dimensions(codec, data) if kind == "video" else None
                    if "video" in self.kinds and (kind != "video" or not key or not dims):
                        continue
                    container, streams = self._open(dims)
                    start_wall = wall
                if kind not in streams:
                    continue
                if kind not in origin:
                    origin[kind] = (ts, wall)
                ts0, wall0 = origin[kind]
                pts = ((ts - ts0) & 0xFFFFFFFF) + int((wall0 - start_wall) * rate)
                if pts <= last_pts.get(kind, -1):
                    pts = last_pts[kind] + 1
                last_pts[kind] = pts
                packet = av.Packet(data)
                packet.stream = streams[kind]
                packet.time_base = fractions.Fraction(1, rate)
                packet.pts = packet.dts = pts
                packet.is_keyframe = key
                container.mux(packet)
                self.written += 1
        except Exception:
            log.exception("recording failed", extra={"path": str(self.path)})
            # Keep draining so the relay's puts never block on a dead writer.
            while self._q.get() is not None:
                pass
        finally:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()

    def _open(self, dims: tuple[int, int] | None) -> tuple[Any, dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.path), "w", format="matroska")
        streams: dict[str, Any] = {}
        for kind in sorted(self.kinds, key=lambda k: k != "video"):
            name = self._codecs[kind]
            if kind == "video":
                s = container.add_stream(_MUX_NAMES[name.upper()])
                if dims:
                    s.width, s.height = dims
                s.time_base = fractions.Fraction(1, 90000)
            else:
                s = container.add_stream(_MUX_NAMES[name.upper()], rate=48000)
                s.time_base = fractions.Fraction(1, 48000)
            streams[kind] = s
        return container, streams


def recording_path(directory: Path, bid: str, sid: str, started: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    return directory / bid / f"{stamp}-{sid[:12]}{EXTENSION}"


def list_recordings(directory: Path, bid: str, active: set[Path]) -> list[RecordingInfo]:
    """The broadcast's recordings, newest first; those being written are `in_progress` (and
    listed even before their first keyframe created the file)."""
    folder = directory / bid
    found: dict[str, RecordingInfo] = {}
    if folder.is_dir():
        for entry in os.scandir(folder):
            if not entry.is_file() or not _NAME.match(entry.name):
                continue
            st = entry.stat()
            found[entry.name] = RecordingInfo(
                name=entry.name,
                bytes=st.st_size,
                modified_at=int(st.st_mtime * 1000),
                in_progress=Path(entry.path) in active,
            )
    for path in active:
        if path.parent == folder and path.name not in found:
            found[path.name] = RecordingInfo(path.name, 0, int(time.time() * 1000), True)
    return sorted(found.values(), key=lambda r: r.name, reverse=True)


def recording_file(directory: Path, bid: str, name: str) -> Path | None:
    """The file for a listed recording name, or None (names never reach the filesystem raw)."""
    if not _NAME.match(name):
        return None
    path = directory / bid / name
    return path if path.is_file() else None
