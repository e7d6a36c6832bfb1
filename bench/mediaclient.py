"""Light WHEP viewers for bench/media.py: real WebRTC clients (aiortc ICE, DTLS, SRTP) that do
not decode video. Run as a process of its own:

    python bench/mediaclient.py URL BID N WARMUP WINDOW OUT.json

Each viewer negotiates with a normal aiortc peer connection, then takes the decrypted RTP
packets straight from the UDP socket once connected (skipping aioice's queue, aiortc's jitter
buffer, depacketiser and decoder; audio packets are dropped unread, every video packet is
SRTP-unprotected) and records, for every video frame completed by a marker bit, its RTP
timestamp and arrival wall-clock time. Only the very first frame (a keyframe) is decoded, to
read the frame number the bench publisher drew into it: with it, every later frame maps to the
publisher's frame by RTP timestamp (the relay keeps timestamps; the MediaRelay baseline does
too, since it encodes with the decoded frame's pts), and main turns (frame, arrival) into
latency.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs.h264 import H264PayloadDescriptor

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jobcast.stream.aiortc_internals import IcePolicy, restrict_gathering  # noqa: E402
from jobcast.stream.negotiation import rtc_configuration  # noqa: E402

LOOPBACK = IcePolicy(addresses=("127.0.0.1",))
STAMP_BITS = 16
_PT = re.compile(r"^m=video \d+ \S+ (\d+)", re.M)


def read_stamp(frame: av.VideoFrame) -> int:
    """The frame number drawn by bench/media.py's clip (16 blocks across the top)."""
    plane = frame.planes[0]
    block = frame.width // STAMP_BITS
    row = block // 4
    data = bytes(plane)
    n = 0
    for bit in range(STAMP_BITS):
        px = data[row * plane.line_size + bit * block + block // 2]
        n = (n << 1) | (1 if px > 128 else 0)
    return n


class LightViewer:
    def __init__(self, base: str, bid: str) -> None:
        self.base = base
        self.bid = bid
        self.pc = RTCPeerConnection(rtc_configuration())
        self.video_pt: int | None = None
        self.frames: list[tuple[int, float]] = []  # (rtp ts, arrival wall time)
        self.first_stamp: int | None = None
        self.first_ts: int | None = None
        self.packets = 0
        self.lost = 0
        self._last_seq: int | None = None
        self._cur_ts: int | None = None
        self._first_payloads: list[bytes] = []
        self._decoded = False
        self.location: str | None = None
        self.error: str | None = None
        self.joined: float | None = None

    async def start(self, session: aiohttp.ClientSession) -> None:
        t = self.pc.addTransceiver("video", direction="recvonly")
        t.setCodecPreferences(
            [
                c
                for c in RTCRtpSender.getCapabilities("video").codecs
                if c.mimeType == "video/H264" and c.parameters.get("profile-level-id") == "42e01f"
            ]
        )
        self.pc.addTransceiver("audio", direction="recvonly")
        restrict_gathering(self.pc, LOOPBACK)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.joined = time.time()
        async with session.post(
            f"{self.base}/whep/{self.bid}",
            data=self.pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
        ) as r:
            body = await r.text()
            if r.status != 201:
                self.error = f"{r.status} {body[:200]}"
                return
            self.location = r.headers.get("Location")
        m = _PT.search(body)
        self.video_pt = int(m.group(1)) if m else None
        await self.pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        dtls = self.pc.getTransceivers()[0].receiver.transport
        dtls._handle_rtp_data = self._on_rtp  # the light path: no jitter buffer, no decoder
        self._fast_task = asyncio.ensure_future(self._fast_path(dtls))

    async def _fast_path(self, dtls: Any) -> None:
        """Once connected, take SRTP straight off the UDP socket: unprotect and count, without
        aioice's queue and aiortc's receive loop (RTCP, STUN and DTLS still go that way)."""
        for _ in range(300):
            if dtls._rx_srtp is not None and dtls.transport._connection._nominated.get(1):
                break
            await asyncio.sleep(0.1)
        else:
            return
        protocol = dtls.transport._connection._nominated[1].protocol
        rx = dtls._rx_srtp
        slow = protocol.datagram_received
        on_rtp = self._on_rtp_now
        video_pt = self.video_pt

        def fast(data: bytes, addr: Any) -> None:
            if 127 < data[0] < 192 and len(data) > 12 and not 192 <= data[1] <= 208:
                if data[1] & 0x7F != video_pt:
                    return  # audio: not measured, so not worth unprotecting
                try:
                    plain = rx.unprotect(data)
                except Exception:
                    return
                on_rtp(plain)
                return
            slow(data, addr)

        protocol.datagram_received = fast

    async def _on_rtp(self, data: bytes, arrival_time_ms: int) -> None:
        self._on_rtp_now(data)

    def _on_rtp_now(self, data: bytes) -> None:
        b0, b1, seq, ts = struct.unpack_from("!BBHI", data)
        if b1 & 0x7F != self.video_pt:
            return
        self.packets += 1
        if self._last_seq is not None:
            gap = (seq - self._last_seq) & 0xFFFF
            if 1 < gap < 1000:
                self.lost += gap - 1
        self._last_seq = seq
        if not self._decoded:
            pos = 12 + 4 * (b0 & 0x0F)
            if b0 & 0x10:
                pos += 4 + 4 * struct.unpack_from("!H", data, pos + 2)[0]
            if ts != self._cur_ts:
                self._first_payloads = []
                self._cur_ts = ts
            self._first_payloads.append(data[pos:])
        if b1 & 0x80:  # marker: the frame is complete
            now = time.time()
            if not self._decoded:
                self._decode_first(ts)
                if not self._decoded:
                    return
            self.frames.append((ts, now))

    def _decode_first(self, ts: int) -> None:
        try:
            annexb = b"".join(H264PayloadDescriptor.parse(p)[1] for p in self._first_payloads)
            codec = av.CodecContext.create("h264", "r")
            pictures = codec.decode(av.Packet(annexb)) + codec.decode(None)
        except Exception:
            return
        if pictures:
            self.first_stamp = read_stamp(pictures[0])
            self.first_ts = ts
            self._decoded = True
        self._first_payloads = []

    async def stop(self, session: aiohttp.ClientSession) -> None:
        if self.location:
            try:
                async with session.delete(f"{self.base}{self.location}"):
                    pass
            except aiohttp.ClientError:
                pass
        await self.pc.close()


async def run(base: str, bid: str, n: int, warmup: float, window: float, out: str) -> None:
    viewers = [LightViewer(base, bid) for _ in range(n)]
    conn = aiohttp.TCPConnector(limit=20)
    async with aiohttp.ClientSession(connector=conn) as session:
        for i in range(0, n, 10):
            await asyncio.gather(*(v.start(session) for v in viewers[i : i + 10]))
        deadline = time.time() + warmup
        while time.time() < deadline and not all(v.frames or v.error for v in viewers):
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        t0 = time.time()
        await asyncio.sleep(window)
        t1 = time.time()
        result: dict[str, Any] = {"t0": t0, "t1": t1, "viewers": []}
        for v in viewers:
            result["viewers"].append(
                {
                    "error": v.error,
                    "first_stamp": v.first_stamp,
                    "first_ts": v.first_ts,
                    "first_arrival": v.frames[0][1] if v.frames else None,
                    "to_picture": v.frames[0][1] - v.joined if v.frames and v.joined else None,
                    "frames": [(ts, t) for ts, t in v.frames if t0 <= t < t1],
                    "packets": v.packets,
                    "lost": v.lost,
                }
            )
        await asyncio.to_thread(Path(out).write_text, json.dumps(result))
        await asyncio.gather(*(v.stop(session) for v in viewers), return_exceptions=True)


def main() -> None:
    base, bid, n, warmup, window, out = sys.argv[1:7]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(run(base, bid, int(n), float(warmup), float(window), out))


if __name__ == "__main__":
    main()
