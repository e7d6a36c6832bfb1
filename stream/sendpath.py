"""The direct send path: each frame's RTP packets go to every viewer of a broadcast in one loop.

aiortc's own path (kept as `media_send_path = aiortc`) runs a coroutine per viewer: per packet
it builds an `RtpPacket`, serialises it with its header extensions, keeps it in a per-viewer
history, and awaits three coroutines down to the UDP transport, with a future per frame to wake
the viewer's sender. That costs about 30 µs per packet per viewer.

Here, once a viewer's DTLS is up, `DirectFanOut.push` does per packet only what has to differ:

- a 12-byte header packed with the viewer's sequence number, timestamp and SSRC, followed by
  the viewer's header extensions (mid, abs-send-time), built once per frame;
- SRTP protection with the viewer's own libsrtp session;
- for video, the frame's datagrams to that viewer in as few `sendmsg` calls as UDP GSO
  allows (`UDP_SEGMENT`: one buffer the kernel cuts into datagrams of one size, the last
  one shorter; about half the kernel's cost per packet here), on a second handle of the
  viewer's socket; audio and retransmissions go through `sendto` on its transport; no
  coroutine, future or wrapper in between.

Everything else of aiortc's sender stays: its RTCP task (sender reports use the counters this
path keeps up to date), its handling of the viewer's RTCP (PLI/FIR go to the relay's keyframe
requests; NACKs come back here and are answered from the frames themselves, RTX-wrapped when
negotiated). The frames' payloads are shared by every viewer; a viewer only remembers, for each
of its recent frames, the sequence number its first packet got.

A viewer whose transport cannot keep up (its write buffer passes `LAG_BYTES`: the kernel
refused datagrams and the transport holds them) is lagging: its frames are dropped and video
restarts at a keyframe, requested once the transport has room again. A viewer whose
transport fails is reported with `on_failed` and closed by the hub.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import struct
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpTransceiver
from jobcast.stream.aiortc_internals import (
    Packetized,
    SendContext,
    ntp_now,
    on_retransmit,
    send_context,
    set_sender_counters,
)
from jobcast.stream.relay import RelayTrack

_HEAD = struct.Struct("!BBHII")
_SEQ = struct.Struct("!H")
USE_GSO = True  # send each frame's packets to a viewer in UDP GSO calls (Linux 4.18+)
LAG_BYTES = 256 * 1024  # bytes waiting in a viewer's transport before it counts as lagging
HISTORY_FRAMES = {"video": 90, "audio": 100}  # frames a viewer can still get NACKed packets of


class DirectSender:
    """One viewer's stream of one kind, sent by `DirectFanOut`."""

    __slots__ = (
        "_history",
        "_on_failed",
        "_on_lag",
        "ctx",
        "dead",
        "gso",
        "gso_checked",
        "octets",
        "packets",
        "recovering",
        "retransmitted",
        "sender",
        "seq",
        "track",
        "transceiver",
        "ts_origin",
    )

    def __init__(
        self,
        track: RelayTrack,
        transceiver: RTCRtpTransceiver,
        on_lag: Callable[[], None],
        on_failed: Callable[[], None],
    ) -> None:
        self.track = track
        self.transceiver = transceiver
        self.sender = transceiver.sender
        self.ctx: SendContext | None = None
        self.seq = random.getrandbits(15)  # lower half: no early wrap (as aiortc)
        self.ts_origin = random.getrandbits(32)
        self.packets = 0
        self.octets = 0
        self.retransmitted = 0
        self.recovering = False  # lagged: ask for a keyframe once it can send again
        self.dead = False
        self.gso: socket.socket | None = None  # the viewer's UDP socket, for UDP GSO sends
        self.gso_checked = False
        self._on_lag = on_lag
        self._on_failed = on_failed
        self._history = History(HISTORY_FRAMES.get(track.kind, 90))
        on_retransmit(self.sender, self.retransmit)

    def attach(self) -> bool:
        """True once the viewer's sender has started and its DTLS and ICE pair are up."""
        ctx = send_context(self.transceiver)
        if ctx is None:
            return False
        self.ctx = ctx
        if USE_GSO and self.track.kind == "video":
            with contextlib.suppress(OSError, AttributeError, ValueError):
                fd = ctx.transport.get_extra_info("socket").fileno()
                # a second handle on the same socket (same non-blocking file): sendmsg with
                # UDP_SEGMENT, which the event loop's transport does not offer
                self.gso = socket.socket(fileno=os.dup(fd))
        if self.track.kind == "video":
            self.track.need_keyframe = True
            self._on_lag()  # a keyframe for the newly connected viewer
        return True

    def no_gso(self) -> None:
        if self.gso is not None:
            self.gso.close()
            self.gso = None

    def close(self) -> None:
        self.dead = True
        self.no_gso()

    def fail(self) -> None:
        if not self.dead:
            self.close()
            self._on_failed()

    async def retransmit(self, seq: int) -> None:
        """Answer a NACK for `seq` from the frames this viewer was sent."""
        ctx = self.ctx
        if ctx is None or self.dead:
            return
        found = self._history.find(seq)
        if found is None:
            return
        i, ts, payloads = found
        marker = 0x80 if i == len(payloads) - 1 else 0
        payload = payloads[i]
        ext = ctx.ext_prefix + _ast(ntp_now()) + ctx.ext_suffix if ctx.ast else ctx.ext_prefix
        if ctx.rtx_pt is None:
            head = _HEAD.pack(ctx.b0, ctx.pt | marker, seq, ts, ctx.ssrc)
        else:
            head = _HEAD.pack(ctx.b0, ctx.rtx_pt | marker, ctx.rtx_seq, ts, ctx.rtx_ssrc)
            ctx.rtx_seq = (ctx.rtx_seq + 1) & 0xFFFF
            payload = _SEQ.pack(seq) + payload
        try:
            data = ctx.protect(head + ext + payload)
        except Exception:
            return  # e.g. too old for libsrtp's replay window without RTX: not sent again
        try:
            ctx.transport.sendto(data, ctx.addr)
        except Exception:
            self.fail()
            return
        self.retransmitted += 1


class History:
    """A viewer's last `size` frames: the shared frame and the sequence number and timestamp
    its first packet had for this viewer. Fixed lists written in a ring: recording a frame
    allocates nothing the garbage collector tracks (a tuple per viewer per frame did, and
    the collections it set off cost a fifth of the process at 300 viewers)."""

    __slots__ = ("firsts", "frames", "pos", "size", "stamps")

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0
        self.firsts = [0] * size
        self.stamps = [0] * size
        self.frames: list[Packetized | None] = [None] * size

    def add(self, first: int, ts: int, frame: Packetized) -> None:
        p = self.pos
        self.firsts[p] = first
        self.stamps[p] = ts
        self.frames[p] = frame
        self.pos = p + 1 if p + 1 < self.size else 0

    def find(self, seq: int) -> tuple[int, int, list[bytes]] | None:
        """(index in its frame, timestamp, the frame's payloads) of packet `seq`, newest first."""
        for k in range(1, self.size + 1):
            p = (self.pos - k) % self.size
            frame = self.frames[p]
            if frame is None:
                return None
            i = (seq - self.firsts[p]) & 0xFFFF
            if i < len(frame.payloads):
                return i, self.stamps[p], frame.payloads
        return None


def _ast(ntp: int) -> bytes:
    """abs-send-time: 6.18 fixed-point seconds, 24 bits."""
    return ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big")


_UDP_SEGMENT = 103  # linux/udp.h: send one buffer as datagrams of this size (UDP GSO)
_MAX_SEGMENTS = 32  # of the kernel's 64 a call
_MAX_BATCH = 60_000  # bytes a call, under the 64 KiB of one IP packet before segmenting
_BATCH = bytearray()  # one frame's datagrams for one viewer, reused (tracked by no GC)
_SEGMENT_CMSG: dict[int, list[tuple[int, int, bytes]]] = {}


def _segment(size: int) -> list[tuple[int, int, bytes]]:
    cmsg = _SEGMENT_CMSG.get(size)
    if cmsg is None:
        cmsg = _SEGMENT_CMSG[size] = [(socket.SOL_UDP, _UDP_SEGMENT, struct.pack("=H", size))]
    return cmsg


def _gso_groups(payloads: list[bytes]) -> list[tuple[int, int]]:
    """Runs of packets one UDP GSO call can carry: all of one size but the last, which may be
    shorter. The same for every viewer of a frame (their headers and SRTP tags are the same
    length), so worked out once per frame."""
    groups: list[tuple[int, int]] = []
    start, n = 0, len(payloads)
    while start < n:
        size = len(payloads[start])
        end, total = start + 1, size
        while end < n and end - start < _MAX_SEGMENTS and total + size <= _MAX_BATCH:
            length = len(payloads[end])
            if length > size:
                break
            end += 1
            total += length
            if length < size:
                break
        groups.append((start, end))
        start = end
    return groups


class DirectFanOut:
    """The viewers of one broadcast in this process, sent to directly (see module doc).

    Same interface as relay.FanOut, plus `bind`, which ties a viewer's track to its sender.
    """

    def __init__(self, on_keyframe_wanted: Callable[[], None], max_frames: int) -> None:
        self._want_keyframe = on_keyframe_wanted
        self.max_frames = max_frames
        self.tracks: dict[str, list[RelayTrack]] = {"video": [], "audio": []}
        self.senders: dict[str, list[DirectSender]] = {"video": [], "audio": []}
        self._by_track: dict[int, DirectSender] = {}

    def make_track(self, kind: str) -> RelayTrack:
        """The track aiortc's sender holds: it never yields (this path sends), and ends the
        sender's loop when stopped."""
        return RelayTrack(kind, self.max_frames, self._want_keyframe)

    def bind(
        self, track: RelayTrack, transceiver: RTCRtpTransceiver, on_failed: Callable[[], None]
    ) -> None:
        self._by_track[id(track)] = DirectSender(track, transceiver, self._want_keyframe, on_failed)

    def add(self, track: RelayTrack) -> None:
        self.tracks.setdefault(track.kind, []).append(track)
        s = self._by_track.get(id(track))
        if s is not None:
            self.senders.setdefault(track.kind, []).append(s)

    def remove(self, track: RelayTrack) -> None:
        tracks = self.tracks.get(track.kind, [])
        if track in tracks:
            tracks.remove(track)
        s = self._by_track.pop(id(track), None)
        if s is not None:
            s.close()
            senders = self.senders.get(track.kind, [])
            if s in senders:
                senders.remove(s)
        track.stop()

    def push(self, kind: str, frame: Packetized) -> None:
        """Send `frame` to every viewer of `kind` now."""
        senders = self.senders.get(kind)
        if not senders:
            return
        payloads = frame.payloads
        count = len(payloads)
        if not count:
            return
        last = count - 1
        key = frame.keyframe
        video = kind == "video"
        octets = sum(map(len, payloads))
        ntp = ntp_now()
        ast = _ast(ntp)
        pack = _HEAD.pack
        groups = _gso_groups(payloads) if count > 1 else None
        for s in senders:
            track = s.track
            track.pushed += 1
            ctx = s.ctx
            if ctx is None:
                if s.dead or not s.attach():
                    track.skipped += 1
                    continue
                ctx = s.ctx
                assert ctx is not None
            if s.dead:
                continue
            transport = ctx.transport
            if transport.get_write_buffer_size() > LAG_BYTES:
                track.lagged += 1
                track.skipped += 1
                if video:
                    track.need_keyframe = True
                    s.recovering = True
                continue
            if video and track.need_keyframe:
                if not key:
                    track.skipped += 1
                    if s.recovering:
                        s.recovering = False
                        s._on_lag()
                    continue
                track.need_keyframe = False
                s.recovering = False
            ext = ctx.ext_prefix + ast + ctx.ext_suffix if ctx.ast else ctx.ext_prefix
            ts = (s.ts_origin + frame.timestamp) & 0xFFFFFFFF
            b0, pt, ssrc, protect, addr = ctx.b0, ctx.pt, ctx.ssrc, ctx.protect, ctx.addr
            first = s.seq
            gso = s.gso
            try:
                if gso is None or groups is None:
                    sendto = transport.sendto
                    seq = first
                    for i in range(count):
                        head = pack(b0, pt | 0x80 if i == last else pt, seq, ts, ssrc)
                        sendto(protect(head + ext + payloads[i]), addr)
                        seq = (seq + 1) & 0xFFFF
                else:
                    sendmsg = gso.sendmsg
                    buf = _BATCH
                    for start, end in groups:
                        del buf[:]
                        for i in range(start, end):
                            seq = (first + i) & 0xFFFF
                            head = pack(b0, pt | 0x80 if i == last else pt, seq, ts, ssrc)
                            data = protect(head + ext + payloads[i])
                            if i == start:
                                size = len(data)
                            buf += data
                        sendmsg((buf,), _segment(size), 0, addr)
            except BlockingIOError:
                # the kernel's buffer for this socket is full: the rest of the frame is lost
                # (NACKs may bring it back); video restarts at a keyframe
                track.lagged += 1
                if video:
                    track.need_keyframe = True
                    s.recovering = True
            except Exception:
                if gso is not None and not s.gso_checked:
                    s.no_gso()  # this kernel or socket takes no UDP_SEGMENT: one by one
                else:
                    s.fail()
                    continue
            s.gso_checked = True
            seq = (first + count) & 0xFFFF
            s.seq = seq
            s._history.add(first, ts, frame)
            s.packets += count
            s.octets += octets
            track.sent += 1
            set_sender_counters(s.sender, s.packets, s.octets, ts, ntp)

    def stop_all(self) -> None:
        for tracks in self.tracks.values():
            for t in tracks:
                t.stop()
            tracks.clear()
        for senders in self.senders.values():
            for s in senders:
                s.close()
            senders.clear()
        self._by_track.clear()


def retransmitted(fan: Any) -> int:
    """NACKed packets sent again by `fan`'s viewers (0 for aiortc's path)."""
    senders = getattr(fan, "senders", None)
    if not senders:
        return 0
    return sum(s.retransmitted for kind in senders.values() for s in kind)
