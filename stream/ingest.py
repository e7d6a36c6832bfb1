"""The publisher's peer connection (WHIP): receives, never decodes.

Each receiver is tapped (stream.aiortc_internals) so that every complete encoded frame goes to
`on_frame(kind, codec, frame)` on the event loop, where the relay packetises it for viewers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from jobcast.stream.aiortc_internals import IcePolicy, request_keyframe, tap_encoded_frames
from jobcast.stream.bitstream import is_keyframe
from jobcast.stream.health import IngestMeter
from jobcast.stream.negotiation import (
    answer,
    parse_offer,
    preferences,
    publisher_codecs,
    rtc_configuration,
)

FrameSink = Callable[[str, RTCRtpCodecParameters, JitterFrame], None]


class IngestPeer:
    """One WHIP session: the publisher's peer connection and what it negotiated."""

    def __init__(self, sid: str, bid: str, on_frame: FrameSink, *, resource_hash: str = "") -> None:
        self.sid = sid  # public: snapshots and events carry it
        self.resource_hash = resource_hash  # sha256 of the secret in the publisher's Location
        self.bid = bid
        self.pc: RTCPeerConnection | None = None
        self.codecs: dict[str, RTCRtpCodecParameters] = {}
        self.receivers: dict[str, RTCRtpReceiver] = {}
        self.created = time.monotonic()
        self.last_frame: float | None = None
        self.lost_at: float | None = None
        self.frames = 0
        self.meter = IngestMeter()  # what the host's stream-health panel shows
        self._on_frame = on_frame
        self._fir_seq = 0
        self._sends: set[asyncio.Future[None]] = set()
        self.closed = False

    async def open(self, offer_text: str, ice: IcePolicy, video_order: Sequence[str]) -> str:
        """Negotiate with the publisher's offer; returns the answer."""
        offer = parse_offer(offer_text)
        codecs = publisher_codecs(offer, video_order)
        pc = RTCPeerConnection(rtc_configuration())
        self.pc = pc
        for kind, codec in codecs.items():
            t = pc.addTransceiver(kind, direction="recvonly")
            t.setCodecPreferences(preferences(kind, codec))
            tap_encoded_frames(t.receiver, self._sink(kind))
            self.receivers[kind] = t.receiver
        self.codecs = codecs

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and self.lost_at is None:
                self.lost_at = time.monotonic()

        try:
            return await answer(pc, offer_text, ice)
        except BaseException:
            await self.close()
            raise

    def _sink(self, kind: str) -> Callable[[RTCRtpCodecParameters, JitterFrame], None]:
        def sink(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            if self.closed:
                return
            self.frames += 1
            self.last_frame = now = time.monotonic()
            key = kind == "video" and is_keyframe(codec.mimeType.split("/")[-1], frame.data)
            self.meter.add(kind, len(frame.data), key, now)
            self._on_frame(kind, codec, frame)

        return sink

    def request_keyframe(self, full: bool) -> bool:
        receiver = self.receivers.get("video")
        if receiver is None or self.closed:
            return False
        self._fir_seq += 1 if full else 0
        sends = request_keyframe(receiver, full=full, seq=self._fir_seq)
        for f in sends:
            self._sends.add(f)
            f.add_done_callback(self._sends.discard)
        return bool(sends)

    @property
    def connection_state(self) -> str:
        return self.pc.connectionState if self.pc is not None else "new"

    def media_age(self, now: float) -> float:
        """Seconds since the last frame (or since the session began, before any)."""
        return now - (self.last_frame if self.last_frame is not None else self.created)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()
