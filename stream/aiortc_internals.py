"""Every use of aiortc's and aioice's private internals, in this one module.

The relay forwards the publisher's encoded frames without decoding or encoding them. aiortc has
no public API for that, so this module adds a few small hooks, each pinned to the aiortc
version below (`check_versions` refuses any other) and covered by tests/test_media_internals.py:

1. Receiver side, `tap_encoded_frames`: `RTCRtpReceiver` depacketises RTP through its jitter
   buffer and puts `(codec, JitterFrame)` on a `queue.Queue` that its decoder thread reads. We
   swap that queue for a tap that hands each complete encoded frame to the relay instead; the
   decoder thread stays idle and still ends when the receiver stops. The jitter buffer is
   swapped for `PromptJitterBuffer`, which releases a frame at its marker bit instead of when
   the next frame begins (one frame interval less latency; audio without prefetch).
2. Receiver side, `request_keyframe`: sends RTCP PLI (or FIR) for the publisher's media SSRC.
3. Sender side, `send_packetized` and `on_keyframe_request`: `RTCRtpSender` calls its encoder's
   `pack()` for anything its track yields that is not an `av.Frame`. We give it an encoder whose
   `pack()` returns RTP payloads already cut once per frame for every viewer, and route the
   viewer's PLI/FIR to the relay instead of a (missing) encoder.
   The direct send path (stream/sendpath.py) goes further: `send_context` reads a started
   sender's SSRC, payload types, header extensions, SRTP session and nominated ICE pair so
   the relay writes RTP itself; `set_sender_counters` keeps the sender's RTCP reports true and
   `on_retransmit` answers its NACKs.
4. ICE, `restrict_gathering`: aioice gathers host candidates on every non-loopback address
   with an ephemeral port. We gather on the configured addresses only (127.0.0.1 included, for
   tests), optionally inside a UDP port range, and announce NAT 1:1 public addresses instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import queue
import random
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aioice
import aiortc
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import Connection, StunProtocol, get_host_addresses
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc.clock import current_ntp_time
from aiortc.codecs.base import Encoder
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket, RtpPacket

PINNED_AIORTC = "1.16.0"
PINNED_AIOICE = "0.13."

EncodedSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]


def check_versions() -> None:
    """Refuse to run against an aiortc/aioice whose internals were not checked."""
    if aiortc.__version__ != PINNED_AIORTC:
        raise RuntimeError(
            f"Jobcast's media relay needs aiortc {PINNED_AIORTC} (found {aiortc.__version__})"
        )
    if not aioice.__version__.startswith(PINNED_AIOICE):
        raise RuntimeError(
            f"Jobcast's media relay needs aioice {PINNED_AIOICE}x (found {aioice.__version__})"
        )


# -- receiver: encoded frames before decoding ------------------------------------------------


class _DecoderQueueTap:
    """Stands in for `RTCRtpReceiver.__decoder_queue`.

    `put((codec, frame))` comes from `_handle_rtp_packet` on the event loop for every complete
    frame: it goes to the sink and is never decoded. `put(None)` (receiver stopping) and `get()`
    (the decoder thread) go to the original queue, so the idle thread still ends cleanly whether
    it was started before or after the tap went in.
    """

    def __init__(self, original: queue.Queue, sink: EncodedSink) -> None:
        self._original = original
        self._sink = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            self._original.put(None)
            return
        codec, frame = item
        self._sink(codec, frame)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._original.get(block, timeout)


class PromptJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing each frame as soon as it is complete.

    aiortc's own buffer only knows a frame is complete when a packet of the *next* frame
    arrives, which delays every video frame by one frame interval, and it holds four audio
    packets back (prefetch). A relay wants neither: a video frame is complete at its marker
    bit (RFC 6184 / RFC 7741: set on the last packet of a frame), an audio packet is a frame.
    Loss and reordering are handled as before: a frame is only released when every packet
    from the buffer's origin up to its end is there.
    """

    def __init__(self, capacity: int, is_video: bool) -> None:
        super().__init__(capacity=capacity, prefetch=0, is_video=is_video)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        packets: list[Any] = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self._capacity]
            if packet is None:
                return None
            if timestamp is None:
                timestamp = packet.timestamp
            elif packet.timestamp != timestamp:
                # the marker was lost: the timestamp change ends the frame, as in aiortc
                self.remove(count)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)
            packets.append(packet)
            if packet.marker or not self._is_video:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets), timestamp=timestamp)
        return None


def tap_encoded_frames(receiver: RTCRtpReceiver, sink: EncodedSink) -> None:
    """Hand every depacketised frame of `receiver` to `sink(codec, JitterFrame)`, undecoded,
    as soon as it is complete (see PromptJitterBuffer).

    The frame's `timestamp` is already mapped to start at 0 (aiortc's TimestampMapper); `data`
    is Annex B for H264, the raw VP8 frame, or one Opus packet.
    """
    attr = "_RTCRtpReceiver__decoder_queue"
    current = getattr(receiver, attr)
    if isinstance(current, _DecoderQueueTap):
        current._sink = sink
        return
    old = receiver._RTCRtpReceiver__jitter_buffer
    receiver._RTCRtpReceiver__jitter_buffer = PromptJitterBuffer(old.capacity, old._is_video)
    setattr(receiver, attr, _DecoderQueueTap(current, sink))


def media_ssrcs(receiver: RTCRtpReceiver) -> list[int]:
    """The publisher's media SSRCs seen recently (retransmission SSRCs left out)."""
    rtx: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc
    seen = [s.source for s in receiver.getSynchronizationSources()]
    return [s for s in seen if s not in rtx]


def request_keyframe(
    receiver: RTCRtpReceiver, *, full: bool = False, seq: int = 0
) -> list[asyncio.Future[None]]:
    """Ask the publisher for a keyframe: PLI, or FIR (RFC 5104) when `full`.

    Returns the sends under way (keep them referenced), empty when nothing can be sent yet
    (no media SSRC seen, or RTCP not set up).
    """
    rtcp_ssrc = receiver._RTCRtpReceiver__rtcp_ssrc
    ssrcs = media_ssrcs(receiver)
    if rtcp_ssrc is None or not ssrcs:
        return []
    sends = []
    for ssrc in ssrcs:
        if full:
            packet = RtcpPsfbPacket(
                fmt=RTCP_PSFB_FIR,
                ssrc=rtcp_ssrc,
                media_ssrc=0,
                fci=struct.pack("!LBxxx", ssrc, seq & 0xFF),
            )
        else:
            packet = RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=rtcp_ssrc, media_ssrc=ssrc)
        sends.append(asyncio.ensure_future(receiver._send_rtcp(packet)))
    return sends


# -- sender: packets cut once, sent to many --------------------------------------------------


class Packetized:
    """One encoded frame as RTP payloads, shared (read-only) by every viewer's sender."""

    __slots__ = ("keyframe", "payloads", "timestamp")

    def __init__(self, payloads: list[bytes], timestamp: int, keyframe: bool) -> None:
        self.payloads = payloads
        self.timestamp = timestamp
        self.keyframe = keyframe


class PassThroughEncoder(Encoder):
    """The sender's encoder for a relayed track: `pack()` returns the ready payloads."""

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("a relayed track yields encoded frames, never raw ones")

    def pack(self, packet: Any) -> tuple[list[bytes], int]:
        return packet.payloads, packet.timestamp


def send_packetized(sender: RTCRtpSender) -> None:
    """Make `sender` send `Packetized` frames from its track as they are (no encoding).

    Must be called before the sender starts; aiortc only creates an encoder when it has none.
    """
    sender._RTCRtpSender__encoder = PassThroughEncoder()


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call `callback` when the viewer sends PLI or FIR for this sender's stream."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


# -- sender: the direct send path (stream/sendpath.py) ----------------------------------------


class SendContext:
    """What the direct send path needs of one started sender to write RTP itself.

    `ext_prefix` + 3 bytes of abs-send-time (when `ast`) + `ext_suffix` is the header
    extension block aiortc's own sender would write (mid, abs-send-time); `b0` is the first
    header byte (version 2, the extension bit when there is a block).
    """

    __slots__ = (
        "addr",
        "ast",
        "b0",
        "ext_prefix",
        "ext_suffix",
        "protect",
        "pt",
        "rtx_pt",
        "rtx_seq",
        "rtx_ssrc",
        "ssrc",
        "transport",
    )

    def __init__(self, **values: Any) -> None:
        for k, v in values.items():
            setattr(self, k, v)


def _extension_block(sender: RTCRtpSender) -> tuple[bytes, bool, bytes]:
    ext_map = sender._RTCRtpSender__rtp_header_extensions_map
    mid = sender._RTCRtpSender__mid

    def header(ast: int) -> bytes:
        p = RtpPacket(payload_type=0, sequence_number=0, timestamp=0, ssrc=0)
        p.extensions.mid = mid
        p.extensions.abs_send_time = ast
        return p.serialize(ext_map)[12:]

    a, b = header(0), header(0xFFFFFF)
    if a == b:
        return a, False, b""
    at = next(i for i in range(len(a)) if a[i] != b[i])
    return a[:at], True, a[at + 3 :]


def send_context(transceiver: RTCRtpTransceiver) -> SendContext | None:
    """The sending state of `transceiver`'s sender, or None while it cannot send yet (sender
    not started, DTLS not connected, no nominated ICE pair)."""
    sender = transceiver.sender
    if not sender._RTCRtpSender__started:
        return None
    dtls = sender.transport
    if dtls._state != DtlsState.CONNECTED or dtls._tx_srtp is None:
        return None
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None or pair.protocol.transport is None:
        return None
    prefix, ast, suffix = _extension_block(sender)
    return SendContext(
        addr=pair.remote_addr,
        ast=ast,
        b0=0x90 if prefix else 0x80,
        ext_prefix=prefix,
        ext_suffix=suffix,
        protect=srtp_protector(dtls._tx_srtp),
        pt=transceiver._codecs[0].payloadType,
        rtx_pt=sender._RTCRtpSender__rtx_payload_type,
        rtx_seq=sender._RTCRtpSender__rtx_sequence_number,
        rtx_ssrc=sender._rtx_ssrc,
        ssrc=sender._ssrc,
        transport=pair.protocol.transport,
    )


PINNED_PYLIBSRTP = "1.0."


def srtp_protector(session: Any) -> Callable[[bytes], bytes]:
    """`session.protect` without its per-call checks and allocation (pylibsrtp 1.0's own
    buffer and binding, a length cell made once): about half its cost per packet. Any other
    pylibsrtp gets its public `protect`."""
    import pylibsrtp
    from pylibsrtp._binding import ffi, lib

    if not pylibsrtp.__version__.startswith(PINNED_PYLIBSRTP):
        return session.protect
    srtp = session._srtp[0]
    cdata = session._cdata
    buf = session._buffer
    room = len(cdata) - pylibsrtp.SRTP_MAX_TRAILER_LEN
    length = ffi.new("int *")
    protect_c = lib.srtp_protect

    def protect(data: bytes) -> bytes:
        n = len(data)
        if n > room:
            raise ValueError("packet is too long")
        length[0] = n
        buf[0:n] = data
        if protect_c(srtp, cdata, length):
            return session.protect(data)  # the public call raises with libsrtp's reason
        return buf[0 : length[0]]

    return protect


def ntp_now() -> int:
    """NTP time as aiortc's sender reports use it (64-bit fixed point)."""
    return current_ntp_time()


def set_sender_counters(
    sender: RTCRtpSender, packets: int, octets: int, rtp_ts: int, ntp: int
) -> None:
    """What aiortc's RTCP task puts in the sender's reports, for packets sent past it."""
    sender._RTCRtpSender__packet_count = packets
    sender._RTCRtpSender__octet_count = octets
    sender._RTCRtpSender__rtp_timestamp = rtp_ts
    sender._RTCRtpSender__ntp_timestamp = ntp


def on_retransmit(sender: RTCRtpSender, retransmit: Callable[[int], Awaitable[None]]) -> None:
    """Answer the viewer's NACKs with `retransmit(seq)` instead of aiortc's per-sender history
    (which the direct path never fills)."""
    sender._retransmit = retransmit  # type: ignore[method-assign]


# -- ICE: which addresses and ports host candidates use --------------------------------------


@dataclass(frozen=True)
class IcePolicy:
    """Where host candidates are gathered and what they announce.

    `addresses`: local addresses to bind (empty: aioice's choice, every non-loopback address).
    `ports`: inclusive UDP port range to bind in, or None for ephemeral ports.
    `announce`: local address (or "*") -> public address written into the candidates (NAT 1:1).
    """

    addresses: tuple[str, ...] = ()
    ports: tuple[int, int] | None = None
    announce: dict[str, str] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        return not self.addresses and self.ports is None and not self.announce


def ice_gatherers(pc: RTCPeerConnection) -> list[Any]:
    """The distinct ICE gatherers of `pc` (one per transport; one in total with BUNDLE)."""
    out: list[Any] = []
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        gatherer = dtls.transport.iceGatherer
        if all(g is not gatherer for g in out):
            out.append(gatherer)
    return out


def restrict_gathering(pc: RTCPeerConnection, policy: IcePolicy) -> None:
    """Gather `pc`'s host candidates according to `policy`.

    Call after the transceivers exist (offerer: after addTransceiver; answerer: after
    setRemoteDescription, which drops the bundled transports) and before setLocalDescription.
    """
    if policy.is_default:
        return
    for gatherer in ice_gatherers(pc):
        conn: Connection = gatherer._connection
        if conn._local_candidates_start:
            continue

        async def gather(conn: Connection = conn) -> None:
            await _gather(conn, policy)

        conn.gather_candidates = gather  # type: ignore[method-assign]


async def _gather(conn: Connection, policy: IcePolicy) -> None:
    if conn._local_candidates_start:
        return
    conn._local_candidates_start = True
    addresses: Sequence[str] = policy.addresses or get_host_addresses(
        use_ipv4=conn._use_ipv4, use_ipv6=conn._use_ipv6
    )
    loop = asyncio.get_running_loop()
    for component in sorted(conn._components):
        for address in addresses:
            try:
                _, protocol = await _bind(loop, conn, address, policy.ports)
            except OSError:
                continue
            host, port = protocol.transport.get_extra_info("sockname")[:2]
            protocol.local_candidate = _host_candidate(component, host, port)
            conn._protocols.append(protocol)
            public = policy.announce.get(host) or policy.announce.get("*")
            if public and _same_family(public, host):
                conn._local_candidates.append(_host_candidate(component, public, port))
            else:
                conn._local_candidates.append(protocol.local_candidate)
    conn._local_candidates_end = True


def _host_candidate(component: int, host: str, port: int) -> Candidate:
    return Candidate(
        foundation=candidate_foundation("host", "udp", host),
        component=component,
        transport="udp",
        priority=candidate_priority(component, "host"),
        host=host,
        port=port,
        type="host",
    )


def _same_family(a: str, b: str) -> bool:
    return ipaddress.ip_address(a).version == ipaddress.ip_address(b).version


async def _bind(
    loop: asyncio.AbstractEventLoop,
    conn: Connection,
    address: str,
    ports: tuple[int, int] | None,
) -> tuple[asyncio.DatagramTransport, StunProtocol]:
    candidates: Iterable[int] = [0] if ports is None else _port_order(ports)
    last: OSError | None = None
    for port in candidates:
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: StunProtocol(conn), local_addr=(address, port)
            )
        except OSError as e:
            last = e
            continue
        return transport, protocol  # type: ignore[return-value]
    raise last or OSError(f"no free UDP port on {address}")


def _port_order(ports: tuple[int, int]) -> list[int]:
    """Every port of the range once, from a random start (spreads binds, few collisions)."""
    lo, hi = ports
    start = random.randint(lo, hi)
    return list(range(start, hi + 1)) + list(range(lo, start))
