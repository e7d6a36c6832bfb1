"""Real aiortc peers for media tests: a synthetic publisher and decoding viewers.

Every peer gathers ICE candidates on 127.0.0.1 only (stream.aiortc_internals.restrict_gathering)
so that no test packet leaves loopback, in or out of a network namespace.

The publisher's video frames are 320x240, moving, and carry their frame number as 16 black or
white blocks along the top; a viewer decodes every frame it gets and reads the number back, so
tests know which publisher frame a viewer is showing and when it was sent.
"""

from __future__ import annotations

import asyncio
import fractions
import re
import time
from typing import Any

import av
from aiohttp.test_utils import TestClient
from aiortc import (
    AudioStreamTrack,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from jobcast.stream.aiortc_internals import IcePolicy, restrict_gathering
from jobcast.stream.negotiation import rtc_configuration

LOOPBACK = IcePolicy(addresses=("127.0.0.1",))
WIDTH, HEIGHT = 320, 240
BITS = 16
BLOCK = WIDTH // BITS  # 20 px per bit
_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ", re.M)


def candidate_addresses(sdp: str) -> set[str]:
    """Every address in the SDP's ICE candidates."""
    return set(_CANDIDATE.findall(sdp))


class StampedVideoTrack(VideoStreamTrack):
    """Moving 320x240 frames at 30 fps carrying their frame number; records send times."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.sent_at: dict[int, float] = {}

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        n = self.count & 0xFFFF
        self.count += 1
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        y = bytearray(b"\x50" * (WIDTH * HEIGHT))
        # a bright bar that moves 4 px per frame, below the stamp
        x = (self.count * 4) % (WIDTH - 8)
        for row in range(BLOCK + 10, HEIGHT):
            off = row * WIDTH + x
            y[off : off + 8] = b"\xe0" * 8
        for bit in range(BITS):
            value = b"\xeb" if (n >> (BITS - 1 - bit)) & 1 else b"\x10"
            for row in range(BLOCK):
                off = row * WIDTH + bit * BLOCK
                y[off : off + BLOCK] = value * BLOCK
        frame.planes[0].update(bytes(y))
        frame.planes[1].update(b"\x80" * frame.planes[1].buffer_size)
        frame.planes[2].update(b"\x80" * frame.planes[2].buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        self.sent_at[n] = time.monotonic()
        return frame


def read_stamp(frame: av.VideoFrame) -> int:
    """The frame number a StampedVideoTrack drew (read from the middle of each block)."""
    plane = frame.planes[0]
    stride = plane.line_size
    data = bytes(plane)
    row = BLOCK // 2
    n = 0
    for bit in range(BITS):
        px = data[row * stride + bit * BLOCK + BLOCK // 2]
        n = (n << 1) | (1 if px > 128 else 0)
    return n


def encode_h264(
    frames: int, *, gop: int = 30, size: tuple[int, int] = (WIDTH, HEIGHT), start: int = 0
) -> list[bytes]:
    """`frames` of moving 30 fps H264 (constrained baseline, Annex B, parameter sets before
    every IDR, an IDR every `gop` frames) encoded once, so that a test knows every byte a
    publisher sends."""
    w, h = size
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height = w, h
    enc.pix_fmt = "yuv420p"
    enc.framerate = fractions.Fraction(30, 1)
    enc.time_base = fractions.Fraction(1, 90000)
    enc.options = {
        "profile": "baseline",
        "preset": "ultrafast",
        "tune": "zerolatency",
        "g": str(gop),
        "keyint_min": str(gop),
        "sc_threshold": "0",
        "repeat-headers": "1",
    }
    enc.open()
    out: list[bytes] = []
    for i in range(frames + 10):
        frame = av.VideoFrame(w, h, "yuv420p")
        x = ((start + i) * 4) % (w - 8)
        y = bytearray(b"\x50" * (w * h))
        for row in range(h):
            y[row * w + x : row * w + x + 8] = b"\xe0" * 8
        frame.planes[0].update(bytes(y))
        frame.planes[1].update(b"\x80" * frame.planes[1].buffer_size)
        frame.planes[2].update(b"\x80" * frame.planes[2].buffer_size)
        frame.pts = i * 3000
        frame.time_base = enc.time_base
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out[:frames]


class EncodedVideoTrack(VideoStreamTrack):
    """Sends already encoded H264 frames as they are (aiortc packetizes an `av.Packet`
    without encoding it), at aiortc's own 30 fps pace (`next_timestamp`), like an encoder
    that ignores keyframe requests (OBS). After the last frame it sends nothing more, and
    the connection stays up."""

    def __init__(self, frames: list[bytes]) -> None:
        super().__init__()
        self.frames = frames
        self.sent = 0

    async def recv(self) -> av.Packet:
        if self.sent >= len(self.frames):
            await asyncio.get_running_loop().create_future()  # nothing more, ever
        pts, time_base = await self.next_timestamp()
        packet = av.Packet(self.frames[self.sent])
        packet.pts = pts
        packet.time_base = time_base
        self.sent += 1
        return packet


def loopback_peer() -> RTCPeerConnection:
    return RTCPeerConnection(rtc_configuration())


async def make_offer(pc: RTCPeerConnection) -> str:
    restrict_gathering(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


class Publisher:
    """A WHIP client: aiortc encodes the stamped video (and a tone) and sends it."""

    def __init__(
        self,
        client: TestClient,
        bid: str,
        key: str,
        *,
        video_codec: str = "H264",
        video: MediaStreamTrack | None = None,
    ):
        self.client = client
        self.bid = bid
        self.key = key
        self.pc = loopback_peer()
        self.video: Any = video if video is not None else StampedVideoTrack()
        self.audio = AudioStreamTrack()
        self.video_codec = video_codec
        self.location: str | None = None
        self.session: str | None = None  # the public id (the 201's ETag), not the Location's
        self.answer: str | None = None
        self.offer: str | None = None

    async def publish(self, *, expect: int = 201) -> Any:
        from aiortc import RTCRtpSender

        vt = self.pc.addTransceiver(self.video, direction="sendonly")
        caps = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.upper() == f"VIDEO/{self.video_codec}" or c.mimeType == "video/rtx"
        ]
        vt.setCodecPreferences(caps)
        self.pc.addTransceiver(self.audio, direction="sendonly")
        self.offer = await make_offer(self.pc)
        r = await self.client.post(
            f"/whip/{self.bid}",
            data=self.offer,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {self.key}"},
        )
        if r.status != expect:
            raise AssertionError(f"WHIP POST {r.status}: {await r.text()}")
        if r.status == 201:
            self.location = r.headers["Location"]
            self.session = r.headers["ETag"].strip('"')
            self.answer = await r.text()
            await self.pc.setRemoteDescription(RTCSessionDescription(self.answer, "answer"))
        return r

    async def delete(self) -> int:
        assert self.location
        r = await self.client.delete(self.location)
        return r.status

    def fps(self, window: float = 1.0) -> float:
        """Frames the publisher encoded per second over its last `window` seconds."""
        times = sorted(self.video.sent_at.values())
        recent = [t for t in times if t >= times[-1] - window] if times else []
        span = recent[-1] - recent[0] if len(recent) > 1 else 0
        return (len(recent) - 1) / span if span > 0 else 0.0

    async def close(self) -> None:
        await self.pc.close()


class Viewer:
    """A WHEP client that decodes every video frame it gets and reads the stamp."""

    def __init__(self, client: TestClient, bid: str) -> None:
        self.client = client
        self.bid = bid
        self.pc = loopback_peer()
        self.frames: list[tuple[float, int, int, int]] = []  # (time, stamp, width, height)
        self.audio_frames = 0
        self.location: str | None = None
        self.answer: str | None = None
        self.offer: str | None = None
        self.joined_at: float | None = None
        self.ended = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._new = asyncio.Event()

    async def play(self, *, expect: int = 201, audio: bool = True) -> Any:
        self.pc.addTransceiver("video", direction="recvonly")
        if audio:
            self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: Any) -> None:
            self._tasks.append(asyncio.ensure_future(self._consume(track)))

        self.offer = await make_offer(self.pc)
        self.joined_at = time.monotonic()
        r = await self.client.post(
            f"/whep/{self.bid}", data=self.offer, headers={"Content-Type": "application/sdp"}
        )
        if r.status != expect:
            raise AssertionError(f"WHEP POST {r.status}: {await r.text()}")
        if r.status == 201:
            self.location = r.headers["Location"]
            self.answer = await r.text()
            await self.pc.setRemoteDescription(RTCSessionDescription(self.answer, "answer"))
        return r

    async def _consume(self, track: Any) -> None:
        try:
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    self.frames.append(
                        (time.monotonic(), read_stamp(frame), frame.width, frame.height)
                    )
                else:
                    self.audio_frames += 1
                self._new.set()
        except MediaStreamError:
            self.ended.set()
            self._new.set()

    async def wait_frames(self, n: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.frames) < n:
                self._new.clear()
                await self._new.wait()

    def first_picture_after_join(self) -> float | None:
        if not self.frames or self.joined_at is None:
            return None
        return self.frames[0][0] - self.joined_at

    def fps(self, window: float = 1.0) -> float:
        """Frames decoded per second over the last `window` seconds of frames."""
        if len(self.frames) < 2:
            return 0.0
        end = self.frames[-1][0]
        recent = [f for f in self.frames if f[0] >= end - window]
        span = recent[-1][0] - recent[0][0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    async def delete(self) -> int:
        assert self.location
        r = await self.client.delete(self.location)
        return r.status

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await self.pc.close()
