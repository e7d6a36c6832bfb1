"""Viewer peer connections (WHEP) of one process: the app process itself, or an egress process.

A `ViewerHub` owns one `FanOut` per broadcast and one peer connection per viewer. Frames come
in through `push` (from the local relay or from the app process over a socket), keyframe wants,
connected viewers and gone viewers go out through the callbacks it was given.

A viewer that has not connected (ICE and DTLS) holds a slot of the viewer cap, so it is closed
as soon as its connection fails, and in any case `connect_timeout` seconds after its offer: an
offer whose candidates lead nowhere would otherwise keep aioice retrying its checks for about
a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from jobcast.core.errors import Unavailable
from jobcast.stream.aiortc_internals import (
    IcePolicy,
    Packetized,
    on_keyframe_request,
    send_packetized,
)
from jobcast.stream.negotiation import (
    answer,
    parse_offer,
    preferences,
    rtc_configuration,
    viewer_codecs,
)
from jobcast.stream.relay import FanOut, RelayTrack
from jobcast.stream.sendpath import DirectFanOut, retransmitted

log = logging.getLogger("jobcast.media")

# "direct": stream.sendpath writes every viewer's RTP in one loop per frame; "aiortc": each
# viewer's aiortc sender sends from its own queue (the earlier path, kept for comparison).
SEND_PATHS = ("direct", "aiortc")


@dataclass
class ViewerPeer:
    sid: str
    bid: str
    pc: RTCPeerConnection
    tracks: list[RelayTrack] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    connected: bool = False
    closing: bool = False


class ViewerHub:
    """Every viewer of this process, grouped by broadcast."""

    def __init__(
        self,
        ice: IcePolicy,
        *,
        queue_frames: int,
        connect_timeout: float,
        on_keyframe_wanted: Callable[[str], None],
        on_gone: Callable[[str, str, str], None],
        on_connected: Callable[[str], None] | None = None,
        send_path: str = "direct",
    ) -> None:
        if send_path not in SEND_PATHS:
            raise ValueError(f"send_path must be one of {SEND_PATHS}")
        self.ice = ice
        self.send_path = send_path
        self.queue_frames = queue_frames
        self.connect_timeout = connect_timeout
        self._want_keyframe = on_keyframe_wanted
        self._on_gone = on_gone
        self._on_connected = on_connected
        self.fanouts: dict[str, FanOut | DirectFanOut] = {}
        self.peers: dict[str, ViewerPeer] = {}
        self.closed_failed = 0
        self._tasks: set[asyncio.Task[bool]] = set()

    def __len__(self) -> int:
        return len(self.peers)

    def count(self, bid: str) -> int:
        return sum(1 for p in self.peers.values() if p.bid == bid)

    def sessions(self) -> list[str]:
        return list(self.peers)

    def has_broadcast(self, bid: str) -> bool:
        return bid in self.fanouts

    def _fanout(self, bid: str) -> FanOut | DirectFanOut:
        fan = self.fanouts.get(bid)
        if fan is None:
            cls = DirectFanOut if self.send_path == "direct" else FanOut
            fan = cls(lambda: self._want_keyframe(bid), self.queue_frames)
            self.fanouts[bid] = fan
        return fan

    async def open(
        self, bid: str, sid: str, offer_text: str, codecs: dict[str, RTCRtpCodecParameters]
    ) -> str:
        """Create viewer `sid` of `bid` from its offer; returns the SDP answer."""
        offer = parse_offer(offer_text)
        codecs = viewer_codecs(offer, codecs)
        pc = RTCPeerConnection(rtc_configuration())
        peer = ViewerPeer(sid=sid, bid=bid, pc=pc)
        fan = self._fanout(bid)
        try:
            for kind in codecs:
                track = fan.make_track(kind)
                t = pc.addTransceiver(track, direction="sendonly")
                t.setCodecPreferences(preferences(kind, codecs[kind]))
                send_packetized(t.sender)
                if isinstance(fan, DirectFanOut):
                    fan.bind(track, t, lambda s=sid: self._close_soon(s, "failed"))
                on_keyframe_request(t.sender, lambda b=bid, tr=track: self._viewer_pli(b, tr))
                peer.tracks.append(track)
            sdp = await answer(pc, offer_text, self.ice)
        except BaseException:
            for tr in peer.tracks:
                tr.stop()
            await pc.close()
            self._drop_empty(bid)
            raise
        # Tracks join the fan-out only once the answer exists, so a failed offer never costs
        # the publisher a keyframe.
        for tr in peer.tracks:
            fan.add(tr)
        self.peers[sid] = peer

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            state = pc.connectionState
            if state == "connected" and not peer.connected:
                peer.connected = True
                if self._on_connected is not None:
                    self._on_connected(sid)
            elif state in ("failed", "closed") and not peer.closing:
                await self.close(sid, "failed" if state == "failed" else "closed")

        if pc.connectionState in ("failed", "closed"):
            # ICE failed before the handler above existed (no candidate pair at all)
            self._close_soon(sid, "failed")
        asyncio.get_running_loop().call_later(
            self.connect_timeout, lambda: self._check_connected(sid)
        )
        return sdp

    def _viewer_pli(self, bid: str, track: RelayTrack) -> None:
        # The viewer lost its picture: it skips to the next keyframe, which we ask for.
        track.need_keyframe = True
        self._want_keyframe(bid)

    def _check_connected(self, sid: str) -> None:
        peer = self.peers.get(sid)
        if peer is not None and not peer.connected and not peer.closing:
            self._close_soon(sid, "connect_timeout")

    def _close_soon(self, sid: str, reason: str) -> None:
        task = asyncio.ensure_future(self.close(sid, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def push(self, bid: str, kind: str, frame: Packetized) -> None:
        fan = self.fanouts.get(bid)
        if fan is not None:
            fan.push(kind, frame)

    async def close(self, sid: str, reason: str = "deleted") -> bool:
        peer = self.peers.pop(sid, None)
        if peer is None:
            return False
        peer.closing = True
        fan = self.fanouts.get(peer.bid)
        for tr in peer.tracks:
            if fan is not None:
                fan.remove(tr)
            else:
                tr.stop()
        if reason in ("failed", "connect_timeout"):
            self.closed_failed += 1
        self._drop_empty(peer.bid)
        # told before the close is awaited, so that its slot and its place in the
        # unfinished-offer count are given back at the same moment
        self._on_gone(sid, peer.bid, reason)
        with contextlib.suppress(Exception):
            await peer.pc.close()
        return True

    def _drop_empty(self, bid: str) -> None:
        if not any(p.bid == bid for p in self.peers.values()):
            fan = self.fanouts.pop(bid, None)
            if fan is not None:
                fan.stop_all()

    async def end(self, bid: str, reason: str = "stream_ended") -> int:
        """Close every viewer of `bid` (the stream ended)."""
        sids = [sid for sid, p in self.peers.items() if p.bid == bid]
        await asyncio.gather(*(self.close(sid, reason) for sid in sids))
        return len(sids)

    async def close_all(self) -> None:
        await asyncio.gather(*(self.close(sid, "shutdown") for sid in list(self.peers)))

    def stats(self) -> dict[str, int]:
        tracks = [t for p in self.peers.values() for t in p.tracks]
        return {
            "viewers": len(self.peers),
            "frames_sent": sum(t.sent for t in tracks),
            "frames_skipped": sum(t.skipped for t in tracks),
            "lag_events": sum(t.lagged for t in tracks),
            "retransmitted": sum(retransmitted(f) for f in self.fanouts.values()),
            "failed": self.closed_failed,
        }


def check_capacity(current: int, cap: int) -> None:
    if cap > 0 and current >= cap:
        raise Unavailable(
            "this server is at its viewer limit, try again shortly",
            code="viewer_limit",
            retry_after=5,
        )
