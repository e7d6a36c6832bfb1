"""HLS from the publisher's own frames: CMAF (fMP4) segments cut at keyframes, the video never
re-encoded, the audio transcoded once per broadcast from Opus to AAC-LC.

`HlsWriter` is one publisher session's output, like the recorder: `write()` is called on the
event loop for every frame and only queues it; a writer thread muxes (libavformat's mp4 muxer
through PyAV, fragmenting at each keyframe), cuts the fragments into segments of about
`segment_seconds`, writes each segment file and then both playlists (stream/playlist.py), each
by rename so that a reader never sees half a file. A disk stall holds up the thread, never the
relay; a full queue drops frames and counts them.

Why a new *period* (its own init segment, EXT-X-DISCONTINUITY before its first segment): a
change of resolution (the init segment carries the parameter sets), a timestamp that jumps
back or far forward, and a new session (a publisher that reconnected); see `playlist.py`.

Segments are never rewritten: their names go on counting from what is on disk, so a CDN may
cache them for a year.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
from jobcast.stream.bitstream import H264_PPS, H264_SPS, START, dimensions, h264_nal_units
from jobcast.stream.fmp4 import BoxSplitter, Fragment, Track, fragment, tracks
from jobcast.stream.playlist import Playlist, Segment, parse

log = logging.getLogger("jobcast.hls")

LIVE = "live.m3u8"
INDEX = "index.m3u8"
_QUEUE_FRAMES = 900
_AUDIO_RATE = 48000
_VIDEO_RATE = 90000
# A timestamp step this far ahead of the last frame (or any step back) is a jump: new period.
_JUMP_SECONDS = 5.0
_INIT = re.compile(r"^i([0-9]{1,6})\.mp4$")
_SEG = re.compile(r"^s([0-9]{1,9})\.m4s$")

StatusHook = Callable[[str], None]


@dataclass(frozen=True)
class HlsConfig:
    directory: Path
    segment_seconds: float = 1.0
    window: int = 6  # segments in live.m3u8
    audio_bitrate: int = 64000


def hls_capable(codecs: dict[str, str]) -> str | None:
    """None when a session with these codecs (kind -> name) can be written as HLS, else why
    not: HLS players everywhere take H264 in fMP4; VP8 they do not."""
    video = codecs.get("video", "").upper()
    if not video:
        return "audio_only"
    if video != "H264":
        return "video_codec"
    return None


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _next_numbers(folder: Path) -> tuple[int, int]:
    """(next period, next segment) number after every file on disk: a crash between writing a
    segment and listing it must not let a later segment take its name."""
    period = seg = -1
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if m := _INIT.match(entry.name):
                period = max(period, int(m.group(1)))
            elif m := _SEG.match(entry.name):
                seg = max(seg, int(m.group(1)))
    return period + 1, seg + 1


class _Output:
    """Fragments in, segment files and playlists out (on the writer thread)."""

    def __init__(self, config: HlsConfig, folder: Path, status: StatusHook) -> None:
        self.config = config
        self.folder = folder
        self._status = status
        folder.mkdir(parents=True, exist_ok=True)
        self.playlist = Playlist(target=max(1, round(config.segment_seconds)))
        index = folder / INDEX
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.playlist = parse(index.read_text())
            self.playlist.ended = False
        self.next_period, disk_seq = _next_numbers(folder)
        self.next_seq = max(disk_seq, self.playlist.next_seq)
        self.gap = bool(self.playlist.segments)  # this session continues an earlier one
        self.init_name = ""
        self._init_data: bytes | None = None
        self._pieces: list[Fragment] = []
        self._piece_bytes = 0
        self._period_wall = 0.0
        self._period_start = 0
        self.disk_full = False
        self.segments = 0
        self.lost = 0  # segments not written (disk)

    # -- periods ----------------------------------------------------------------------------

    def new_period(self, init: bytes, wall: float, first_start: int) -> None:
        self.flush()
        self.init_name = f"i{self.next_period}.mp4"
        self.next_period += 1
        self._init_data = init
        self._period_wall = wall
        self._period_start = first_start
        self.gap = self.gap or bool(self.playlist.segments)

    def set_period_start(self, start: int) -> None:
        self._period_start = start

    # -- fragments --------------------------------------------------------------------------

    def add(self, f: Fragment) -> None:
        """Group fragments into segments of about `segment_seconds`. A segment is written as
        soon as it is long enough, not when the next fragment shows up: that would list each
        segment one fragment (about a second) later than it could be."""
        seg = self.config.segment_seconds
        have = sum(p.duration for p in self._pieces) / f.timescale if self._pieces else 0.0
        if self._pieces and have + f.seconds > 1.45 * max(seg, 1.0):
            self.flush()
        self._pieces.append(f)
        if sum(p.duration for p in self._pieces) / f.timescale >= 0.95 * seg:
            self.flush()

    def flush(self) -> None:
        if not self._pieces:
            return
        pieces, self._pieces = self._pieces, []
        first = pieces[0]
        duration = sum(p.duration for p in pieces) / first.timescale
        pdt = self._period_wall + (first.start - self._period_start) / first.timescale
        name = f"s{self.next_seq}.m4s"
        self.next_seq += 1
        try:
            if self._init_data is not None:
                write_atomic(self.folder / self.init_name, self._init_data)
                self._init_data = None
            write_atomic(self.folder / name, b"".join(p.data for p in pieces))
        except OSError as e:
            self.lost += 1
            self.gap = True
            if not self.disk_full:
                self.disk_full = True
                log.warning("HLS segment not written", extra={"error": str(e)})
                self._status("disk_full")
            return
        segment = Segment(
            self.playlist.next_seq,
            name,
            duration,
            round(pdt * 1000),
            self.init_name,
            self.gap,
        )
        self.playlist.segments.append(segment)
        self.gap = False
        self.segments += 1
        if self._write_playlists() and self.disk_full:
            self.disk_full = False
            self._status("ok")

    def _write_playlists(self) -> bool:
        try:
            write_atomic(self.folder / INDEX, self.playlist.index().encode())
            write_atomic(self.folder / LIVE, self.playlist.live(self.config.window).encode())
        except OSError as e:
            if not self.disk_full:
                self.disk_full = True
                log.warning("HLS playlist not written", extra={"error": str(e)})
                self._status("disk_full")
            return False
        return True

    def end(self) -> None:
        self.flush()
        if self.playlist.segments:
            self.playlist.ended = True
            self._write_playlists()


class _Sink:
    """The file object PyAV writes the fMP4 stream into."""

    def __init__(self, on_box: Callable[[bytes, bytes], None]) -> None:
        self._split = BoxSplitter()
        self._on_box = on_box

    def write(self, data: bytes) -> int:
        for kind, box in self._split.feed(bytes(data)):
            self._on_box(kind, box)
        return len(data)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


class _Period:
    """One muxer: one init segment, continuous timestamps, fixed resolution."""

    def __init__(
        self,
        out: _Output,
        config: HlsConfig,
        dims: tuple[int, int],
        keyframe: bytes,
        ts: int,
        wall: float,
        audio: bool,
    ) -> None:
        self.out = out
        self.dims = dims
        self.wall0 = wall
        self.ts0 = ts
        self.last_pts = -1
        self._ftyp = b""
        self._moof = b""
        self._tracks: dict[int, Track] = {}
        self._first = True
        self._sink = _Sink(self._box)
        seg_us = int(config.segment_seconds * 1.3 * 1_000_000)
        self.container: Any = av.open(
            self._sink,
            "w",
            format="mp4",
            options={
                "movflags": "frag_keyframe+empty_moov+default_base_moof+skip_trailer",
                "frag_duration": str(seg_us),
                "flush_packets": "1",
                "max_interleave_delta": "500000",
            },
        )
        v = self.container.add_stream("h264")
        v.width, v.height = dims
        v.time_base = fractions.Fraction(1, _VIDEO_RATE)
        sets = [n for n in h264_nal_units(keyframe) if n[0] & 0x1F in (H264_SPS, H264_PPS)]
        if sets:
            v.codec_context.extradata = b"".join(START + n for n in sets)
        self.video = v
        self.audio: Any = None
        if audio:
            a = self.container.add_stream("aac", rate=_AUDIO_RATE, layout="stereo")
            a.bit_rate = config.audio_bitrate
            a.time_base = fractions.Fraction(1, _AUDIO_RATE)
            self.audio = a
            self._decoder: Any = av.CodecContext.create("opus", "r")
            self._decoder.sample_rate = _AUDIO_RATE
            self._decoder.layout = "stereo"
            self._resampler = av.AudioResampler(
                format="fltp", layout="stereo", rate=_AUDIO_RATE, frame_size=1024
            )
            self._a0: tuple[int, float] | None = None
            self._apts = 0

    def _box(self, kind: bytes, box: bytes) -> None:
        if kind == b"ftyp":
            self._ftyp = box
        elif kind == b"moov":
            self._tracks = tracks(box)
            self.out.new_period(self._ftyp + box, self.wall0, 0)
        elif kind == b"moof":
            self._moof = box
        elif kind == b"mdat" and self._moof:
            f = fragment(self._moof, box, self._tracks)
            self._moof = b""
            if self._first:
                self.out.set_period_start(f.start)
                self._first = False
            self.out.add(f)

    def video_pts(self, ts: int) -> int | None:
        """The frame's pts, or None when its timestamp jumped (the period must end)."""
        pts = (ts - self.ts0) & 0xFFFFFFFF
        if self.last_pts >= 0 and not 0 < pts - self.last_pts <= _JUMP_SECONDS * _VIDEO_RATE:
            return None
        self.last_pts = pts
        return pts

    def mux_video(self, data: bytes, pts: int, key: bool) -> None:
        p = av.Packet(data)
        p.stream = self.video
        p.time_base = self.video.time_base
        p.pts = p.dts = pts
        p.is_keyframe = key
        self.container.mux(p)

    def mux_audio(self, data: bytes, ts: int, wall: float) -> None:
        if self.audio is None:
            return
        if self._a0 is None:
            if wall < self.wall0:
                return  # from before the period's first picture
            # the wall clock places the first audio frame against the video; the rest
            # follow their own timestamps (a clock that jumps later moves nothing)
            self._a0 = (ts, wall)
            self._apts = max(0, int((wall - self.wall0) * _AUDIO_RATE))
        ts0, wall0 = self._a0
        at = ((ts - ts0) & 0xFFFFFFFF) + int((wall0 - self.wall0) * _AUDIO_RATE)
        if abs(at - self._apts) > _AUDIO_RATE // 5:
            # a gap or a jump in the audio: start counting from where this frame belongs
            self._apts = max(self._apts, at)
        packet = av.Packet(data)
        packet.pts = at
        packet.time_base = fractions.Fraction(1, _AUDIO_RATE)
        for frame in self._decoder.decode(packet):
            frame.pts = None
            for chunk in self._resampler.resample(frame):
                chunk.pts = self._apts
                chunk.time_base = fractions.Fraction(1, _AUDIO_RATE)
                self._apts += chunk.samples
                for out in self.audio.encode(chunk):
                    self.container.mux(out)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.audio is not None:
                for out in self.audio.encode(None):
                    self.container.mux(out)
        with contextlib.suppress(Exception):
            self.container.close()


class HlsWriter:
    """The HLS output of one publisher session of broadcast `folder.name`.

    `write(kind, data, timestamp, keyframe)` on the event loop for every frame (the video must
    be H264: see `hls_capable`); it returns True when a keyframe should be asked of the
    publisher, so that segments can be cut near `segment_seconds`. `close()` (blocking: call
    it via to_thread) finishes the last segment and marks the playlists ended.
    `on_status("disk_full" | "ok")` is called on the writer thread when writing fails or
    works again.
    """

    def __init__(
        self,
        config: HlsConfig,
        bid: str,
        audio: bool,
        on_status: StatusHook | None = None,
        *,
        clock: Callable[[], float] = time.time,
        after: HlsWriter | None = None,
    ) -> None:
        """`clock`: the wall clock a frame's arrival is read from. Only the first frame of a
        period takes its program date-time from it; the rest follow the media timestamps, so
        a wall clock that jumps mid-stream moves no segment. `after`: the broadcast's previous
        writer, which may still be finishing; this one opens the folder once it has (two
        writers must never pick the same next segment name)."""
        self.config = config
        self._clock = clock
        self._after = after
        self.folder = config.directory / bid
        self.audio = audio
        self._status = on_status or (lambda _s: None)
        self.dropped = 0
        self.failed = 0
        self._q: queue.Queue[tuple[str, bytes, int, bool, float] | threading.Event | None] = (
            queue.Queue(_QUEUE_FRAMES)
        )
        self._out: _Output | None = None
        self._last_key_ts: int | None = None
        self._asked_ts: int | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"hls-{bid}", daemon=True)
        self._thread.start()

    @property
    def segments(self) -> int:
        return self._out.segments if self._out is not None else 0

    @property
    def disk_full(self) -> bool:
        return self._out is not None and self._out.disk_full

    def write(self, kind: str, data: bytes, timestamp: int, keyframe: bool) -> bool:
        if self._closed:
            return False
        try:
            self._q.put_nowait((kind, data, timestamp, keyframe, self._clock()))
        except queue.Full:
            self.dropped += 1
        if kind != "video":
            return False
        if keyframe or self._last_key_ts is None:
            self._last_key_ts = timestamp
            self._asked_ts = None
            return False
        due = int(0.8 * self.config.segment_seconds * _VIDEO_RATE)
        since = (timestamp - self._last_key_ts) & 0xFFFFFFFF
        if since >= due and (
            self._asked_ts is None or (timestamp - self._asked_ts) & 0xFFFFFFFF >= due // 2
        ):
            self._asked_ts = timestamp
            return True
        return False

    def sync(self, timeout: float = 30.0) -> bool:
        """Block until every frame written so far has been muxed and every segment it
        completed is on disk (not for the event loop: call it via to_thread)."""
        done = threading.Event()
        self._q.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._q.put(None)
        self._thread.join(30)

    @property
    def finished(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        if self._after is not None:
            self._after._thread.join()
            self._after = None
        try:
            self._out = _Output(self.config, self.folder, self._status)
        except OSError as e:
            log.warning("HLS folder not usable", extra={"error": str(e)})
            self._status("disk_full")
            while (item := self._q.get()) is not None:
                if isinstance(item, threading.Event):
                    item.set()
            return
        period: _Period | None = None
        while True:
            item = self._q.get()
            if item is None:
                break
            if isinstance(item, threading.Event):
                item.set()
                continue
            kind, data, ts, key, wall = item
            try:
                period = self._frame(period, kind, data, ts, key, wall)
            except Exception:
                # a frame the muxer refuses ends the period; the next keyframe opens another
                self.failed += 1
                log.exception("HLS muxing failed", extra={"folder": str(self.folder)})
                if period is not None:
                    period.close()
                    period = None
                self._out.gap = True
        if period is not None:
            period.close()
        try:
            self._out.end()
        except Exception:
            log.exception("HLS end not written", extra={"folder": str(self.folder)})

    def _frame(
        self, period: _Period | None, kind: str, data: bytes, ts: int, key: bool, wall: float
    ) -> _Period | None:
        assert self._out is not None
        if kind == "audio":
            if period is not None:
                period.mux_audio(data, ts, wall)
            return period
        dims = dimensions("H264", data) if key else None
        pts = period.video_pts(ts) if period is not None else None
        if period is not None and (pts is None or (dims is not None and dims != period.dims)):
            period.close()  # resolution changed or timestamps jumped: a new period
            period = None
        if period is None:
            if not key or dims is None:
                return None
            period = _Period(self._out, self.config, dims, data, ts, wall, self.audio)
            pts = period.video_pts(ts)
        assert pts is not None
        period.mux_video(data, pts, key)
        return period
