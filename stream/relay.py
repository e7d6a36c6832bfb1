"""The pass-through relay: encoded frames in from the publisher, the same frames out to every
viewer, never decoded or encoded.

- `Packetizer` turns each depacketised publisher frame into RTP payloads once (aiortc's own
  `pack()`), marks keyframes, repairs missing H264 parameter sets and keeps timestamps
  continuous when a publisher reconnects.
- `FanOut` hands each frame to every viewer's `RelayTrack` without awaiting any of them.
- `RelayTrack` is a viewer's bounded queue; a video viewer that falls behind drops what it has
  queued and waits for the next keyframe (asking the publisher for one).
- `KeyframeRequests` spaces keyframe requests to the publisher and defers, never drops, them.
"""

from __future__ import annotations

import asyncio
import fractions
from collections import deque
from collections.abc import Callable
from typing import Any

import av
from aiortc.codecs import get_encoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from jobcast.stream.aiortc_internals import Packetized
from jobcast.stream.bitstream import H264ParameterSets, is_keyframe

# Added to the last timestamp when a new publisher session continues the same output stream.
_STEP = {"video": 3000, "audio": 960}


class Packetizer:
    """Cuts one kind's frames into RTP payloads, once for all viewers."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.codec: RTCRtpCodecParameters | None = None
        self._encoder: Any = None
        self._time_base = fractions.Fraction(1, 90000)
        self._sets = H264ParameterSets()
        self._offset = 0
        self._last_out: int | None = None
        self._last_in: int | None = None
        self._rebase = False

    def new_source(self) -> None:
        """The next frame comes from a new publisher session: continue the timestamps."""
        self._rebase = True

    def set_codec(self, codec: RTCRtpCodecParameters) -> None:
        if self.codec is not None and self.codec.mimeType.lower() == codec.mimeType.lower():
            return
        self.codec = codec
        self._encoder = get_encoder(codec)
        self._time_base = fractions.Fraction(1, codec.clockRate)
        self._sets = H264ParameterSets()

    def packetize(self, data: bytes, timestamp: int) -> tuple[Packetized, bytes]:
        """(RTP payloads for viewers, the frame as recorded) for one depacketised frame."""
        assert self.codec is not None
        name = self.codec.name.upper()
        if name == "H264":
            data, key = self._sets.fix(data)
        else:
            key = is_keyframe(name, data)
        if self._rebase or self._last_in is None:
            if self._last_out is not None:
                self._offset = self._last_out + _STEP.get(self.kind, 0) - timestamp
            self._rebase = False
        out_ts = (timestamp + self._offset) & 0xFFFFFFFF
        self._last_in = timestamp
        self._last_out = out_ts
        packet = av.Packet(data)
        packet.pts = out_ts
        packet.time_base = self._time_base
        payloads, ts = self._encoder.pack(packet)
        return Packetized(payloads, ts, key), data


class KeyframeRequests:
    """Keyframe requests to the publisher, spaced by `interval` seconds, never dropped.

    A request within `interval` of the last one sent is deferred to the end of the interval.
    Until a keyframe arrives, the request is repeated every interval (PLI, then FIR from the
    third attempt for encoders that ignore PLI). Any keyframe that arrives satisfies every
    request made before it, since every waiting viewer is already registered to receive it.
    """

    def __init__(
        self,
        send: Callable[[bool], bool],
        interval: float,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._send = send
        self.interval = interval
        self._loop = loop or asyncio.get_event_loop()
        self._last_sent = -1e9
        self._pending = False
        self._attempts = 0
        self._timer: asyncio.TimerHandle | None = None
        self.sent = 0
        self.deferred = 0

    @property
    def pending(self) -> bool:
        return self._pending

    def request(self) -> None:
        if self._pending:
            return  # already wanted: the scheduled send (or retry) covers this one
        self._pending = True
        self._attempts = 0
        wait = self._last_sent + self.interval - self._loop.time()
        if wait <= 0:
            self._fire()
        else:
            self.deferred += 1
            self._schedule(wait)

    def keyframe(self) -> None:
        self._pending = False
        self._attempts = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.keyframe()

    def _schedule(self, delay: float) -> None:
        if self._timer is None:
            self._timer = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._pending:
            return
        self._attempts += 1
        if self._send(self._attempts >= 3):
            self._last_sent = self._loop.time()
            self.sent += 1
        self._schedule(self.interval)


class RelayTrack(MediaStreamTrack):
    """One viewer's track: a bounded queue of `Packetized` frames its sender sends as they are.

    `push` never blocks. When more than `max_frames` are queued the viewer is lagging: video
    drops its queue and skips to the next keyframe (calling `on_lag`, which asks the
    publisher for one); audio drops its oldest frame.
    """

    def __init__(self, kind: str, max_frames: int, on_lag: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self.max_frames = max(2, max_frames)
        self._on_lag = on_lag
        self._queue: deque[Packetized] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.need_keyframe = kind == "video"
        self.pushed = 0
        self.sent = 0
        self.skipped = 0
        self.lagged = 0

    def push(self, frame: Packetized) -> None:
        if self.readyState != "live":
            return
        self.pushed += 1
        if self.need_keyframe:
            if not frame.keyframe:
                self.skipped += 1
                return
            self.need_keyframe = False
        if len(self._queue) >= self.max_frames:
            self.lagged += 1
            if self.kind == "video":
                self.skipped += len(self._queue)
                self._queue.clear()
                if not frame.keyframe:
                    self.need_keyframe = True
                    self.skipped += 1
                    self._on_lag()
                    return
            else:
                self._queue.popleft()
                self.skipped += 1
        self._queue.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> Packetized:  # type: ignore[override]
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.sent += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def queued(self) -> int:
        return len(self._queue)


class FanOut:
    """The viewers of one broadcast in this process, and the frames they get."""

    def __init__(self, on_keyframe_wanted: Callable[[], None], max_frames: int) -> None:
        self._want_keyframe = on_keyframe_wanted
        self.max_frames = max_frames
        self.tracks: dict[str, list[RelayTrack]] = {"video": [], "audio": []}

    def make_track(self, kind: str) -> RelayTrack:
        """A track for a new viewer; it gets frames once `add`ed."""
        return RelayTrack(kind, self.max_frames, self._want_keyframe)

    def add(self, track: RelayTrack) -> None:
        self.tracks.setdefault(track.kind, []).append(track)
        if track.kind == "video":
            self._want_keyframe()

    def remove(self, track: RelayTrack) -> None:
        tracks = self.tracks.get(track.kind, [])
        if track in tracks:
            tracks.remove(track)
        track.stop()

    def push(self, kind: str, frame: Packetized) -> None:
        for track in self.tracks.get(kind, ()):
            track.push(frame)

    def stop_all(self) -> None:
        for tracks in self.tracks.values():
            for t in tracks:
                t.stop()
            tracks.clear()
