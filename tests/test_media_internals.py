"""The aiortc/aioice internals the relay relies on (stream/aiortc_internals.py, pinned to
aiortc 1.16.0), and the relay's parts on their own: keyframe requests, viewer queues,
packetizing, bitstream parsing, ICE settings and the egress wire format."""

from __future__ import annotations

import asyncio
import base64
import fractions
import hashlib
import hmac
import itertools
import threading

import aiortc
import av
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtp import RtpPacket
from jobcast.core.errors import Invalid, Unavailable
from jobcast.stream import aiortc_internals as ai
from jobcast.stream.aiortc_internals import IcePolicy, Packetized, PromptJitterBuffer
from jobcast.stream.bitstream import H264ParameterSets, dimensions, h264_types, is_keyframe
from jobcast.stream.egress import (
    codec_from_json,
    codec_to_json,
    decode_frame,
    encode_frame,
    error_from_json,
    error_to_json,
)
from jobcast.stream.errors import BadSdp
from jobcast.stream.ice import IceServers, parse_policy
from jobcast.stream.negotiation import rtc_configuration
from jobcast.stream.relay import KeyframeRequests, Packetizer, RelayTrack

from tests.clock import ManualClock
from tests.media_peers import LOOPBACK, StampedVideoTrack, candidate_addresses
from tests.waiting import wait_until

pytestmark = [pytest.mark.media, pytest.mark.timeout(60)]


# -- version pin -----------------------------------------------------------------------------


def test_internals_are_pinned_to_the_checked_aiortc(monkeypatch):
    ai.check_versions()
    monkeypatch.setattr(aiortc, "__version__", "1.17.0")
    with pytest.raises(RuntimeError, match=r"1\.16\.0"):
        ai.check_versions()


# -- two aiortc peers on loopback ------------------------------------------------------------


async def _connect(sender_pc, receiver_pc):
    ai.restrict_gathering(sender_pc, LOOPBACK)
    await sender_pc.setLocalDescription(await sender_pc.createOffer())
    await receiver_pc.setRemoteDescription(sender_pc.localDescription)
    ai.restrict_gathering(receiver_pc, LOOPBACK)
    await receiver_pc.setLocalDescription(await receiver_pc.createAnswer())
    await sender_pc.setRemoteDescription(receiver_pc.localDescription)
    assert candidate_addresses(sender_pc.localDescription.sdp) == {"127.0.0.1"}
    assert candidate_addresses(receiver_pc.localDescription.sdp) == {"127.0.0.1"}


def _prefer(transceiver, name: str) -> None:
    transceiver.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == f"video/{name}"]
    )


async def test_tap_hands_over_encoded_frames_and_nothing_is_decoded():
    pub = RTCPeerConnection(rtc_configuration())
    srv = RTCPeerConnection(rtc_configuration())
    _prefer(pub.addTransceiver(StampedVideoTrack(), direction="sendonly"), "H264")
    t = srv.addTransceiver("video", direction="recvonly")
    got: list[tuple[str, bytes, int]] = []
    arrived = asyncio.Event()

    def sink(codec, frame):
        got.append((codec.name, frame.data, frame.timestamp))
        if len(got) >= 10:
            arrived.set()

    ai.tap_encoded_frames(t.receiver, sink)
    await _connect(pub, srv)
    await asyncio.wait_for(arrived.wait(), 15)
    assert got[0][0] == "H264"
    assert {5, 7, 8} <= h264_types(got[0][1])  # IDR with SPS/PPS, Annex B
    assert got[0][2] == 0  # timestamps mapped to start at 0
    assert all(b[2] > a[2] for a, b in itertools.pairwise(got))
    # the decoder never ran: its output queue (the track's) is empty
    assert t.receiver.track._queue.qsize() == 0
    await pub.close()
    await srv.close()
    # ...and its idle thread still ended with the receiver
    assert not any(th.name == "video-decoder" and th.is_alive() for th in threading.enumerate())


class _PacketizedTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.i = 0

    async def recv(self) -> Packetized:
        await asyncio.sleep(0.02)  # a 20 ms audio frame's pace; nothing waits on it
        self.i += 1
        return Packetized([b"opus-%d" % self.i], self.i * 960, True)


async def test_sender_sends_packetized_frames_as_they_are():
    src = RTCPeerConnection(rtc_configuration())
    dst = RTCPeerConnection(rtc_configuration())
    t = src.addTransceiver(_PacketizedTrack(), direction="sendonly")
    ai.send_packetized(t.sender)
    r = dst.addTransceiver("audio", direction="recvonly")
    got: list[tuple[bytes, int]] = []
    done = asyncio.Event()

    def sink(codec, frame):
        got.append((frame.data, frame.timestamp))
        if len(got) >= 10:
            done.set()

    ai.tap_encoded_frames(r.receiver, sink)
    await _connect(src, dst)
    await asyncio.wait_for(done.wait(), 15)
    # byte for byte what the track yielded, timestamps 960 apart, and prompt (no prefetch)
    first = int(got[0][0].split(b"-")[1])
    for k, (data, ts) in enumerate(got):
        assert data == b"opus-%d" % (first + k)
        assert ts == 960 * k
    await src.close()
    await dst.close()


async def test_keyframe_requests_go_both_ways():
    """request_keyframe (relay -> publisher) makes aiortc's encoder send a keyframe;
    on_keyframe_request sees a viewer's PLI."""
    pub = RTCPeerConnection(rtc_configuration())
    srv = RTCPeerConnection(rtc_configuration())
    pt = pub.addTransceiver(StampedVideoTrack(), direction="sendonly")
    _prefer(pt, "VP8")  # aiortc's VP8 keyframe interval is 3000 frames: only requests give one
    seen: list[int] = []
    plis: list[bool] = []
    original = pt.sender._send_keyframe

    def hooked() -> None:
        plis.append(True)
        original()

    ai.on_keyframe_request(pt.sender, hooked)
    t = srv.addTransceiver("video", direction="recvonly")
    ai.tap_encoded_frames(t.receiver, lambda c, f: seen.append(is_keyframe(c.name, f.data)))
    await _connect(pub, srv)
    await wait_until(lambda: len(seen) >= 20, 15, "20 frames")
    assert seen[0] is True and not any(seen[1:])
    before = len(seen)
    plis.clear()
    await wait_until(lambda: ai.request_keyframe(t.receiver), 10, "a PLI sent")
    await wait_until(lambda: True in seen[before:], 10, "a keyframe after the PLI")
    assert plis  # the viewer-side hook saw the PLI, and the encoder obeyed
    before = len(seen)
    assert ai.request_keyframe(t.receiver, full=True, seq=1)  # FIR works as well
    await wait_until(lambda: True in seen[before:], 10, "a keyframe after the FIR")
    await pub.close()
    await srv.close()


def test_prompt_jitter_buffer_releases_a_frame_at_its_marker():
    def pkt(seq: int, ts: int, marker: bool, data: bytes) -> RtpPacket:
        p = RtpPacket(payload_type=96, sequence_number=seq, timestamp=ts, marker=int(marker))
        p._data = data
        return p

    jb = PromptJitterBuffer(capacity=128, is_video=True)
    assert jb.add(pkt(10, 3000, False, b"a"))[1] is None
    assert jb.add(pkt(12, 3000, True, b"c"))[1] is None  # 11 missing: not complete
    frame = jb.add(pkt(11, 3000, False, b"b"))[1]
    assert frame is not None and frame.data == b"abc" and frame.timestamp == 3000
    # marker lost: the next frame's first packet ends it, as in aiortc
    assert jb.add(pkt(13, 6000, False, b"d"))[1] is None
    frame = jb.add(pkt(14, 9000, False, b"e"))[1]
    assert frame is not None and frame.data == b"d"
    audio = PromptJitterBuffer(capacity=16, is_video=False)
    assert audio.add(pkt(1, 960, False, b"x"))[1].data == b"x"
    assert audio.add(pkt(2, 1920, False, b"y"))[1].data == b"y"


async def test_gathering_is_restricted_and_announced():
    pc = RTCPeerConnection(rtc_configuration())
    pc.addTransceiver("video", direction="recvonly")
    policy = IcePolicy(addresses=("127.0.0.1",), ports=(42000, 42010))
    ai.restrict_gathering(pc, policy)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    assert candidate_addresses(sdp) == {"127.0.0.1"}
    conn = ai.ice_gatherers(pc)[0]._connection
    assert all(42000 <= c.port <= 42010 for c in conn.local_candidates)
    await pc.close()
    # NAT 1:1: the candidate carries the public address and the port bound locally. Nothing is
    # ever sent to it here (no remote peer).
    pc = RTCPeerConnection(rtc_configuration())
    pc.addTransceiver("video", direction="recvonly")
    ai.restrict_gathering(pc, IcePolicy(("127.0.0.1",), None, {"127.0.0.1": "198.51.100.7"}))
    await pc.setLocalDescription(await pc.createOffer())
    conn = ai.ice_gatherers(pc)[0]._connection
    (announced,) = conn.local_candidates
    assert announced.host == "198.51.100.7"
    assert conn._protocols[0].local_candidate.host == "127.0.0.1"
    assert conn._protocols[0].local_candidate.port == announced.port
    await pc.close()


async def test_no_third_party_stun_server_by_default():
    pc = RTCPeerConnection(rtc_configuration())
    pc.addTransceiver("video", direction="recvonly")
    conn = ai.ice_gatherers(pc)[0]._connection
    assert conn.stun_server is None and conn.turn_server is None
    # (aiortc's own default would have been Google's STUN server)
    default = RTCPeerConnection()
    default.addTransceiver("video", direction="recvonly")
    assert ai.ice_gatherers(default)[0]._connection.stun_server == ("stun.l.google.com", 19302)
    await pc.close()
    await default.close()  # never gathered: nothing was sent to it


# -- relay parts -----------------------------------------------------------------------------


def test_keyframe_requests_are_spaced_deferred_and_never_dropped():
    sent: list[tuple[float, bool]] = []
    clock = ManualClock()
    kf = KeyframeRequests(
        lambda full: sent.append((clock.time(), full)) or True,
        0.2,
        loop=clock,  # type: ignore[arg-type]  # its time() and call_later() are all it uses
    )
    kf.request()
    assert sent == [(0.0, False)]  # the first goes out at once
    kf.keyframe()
    kf.request()  # within the interval: deferred, not sent, not dropped
    assert len(sent) == 1 and kf.pending
    clock.advance(0.3)
    assert len(sent) == 2 and sent[1][0] == pytest.approx(0.2)  # at the end of the interval
    # no keyframe comes: repeated every interval, PLI twice, then FIR from the third attempt
    clock.advance(0.5)
    assert [t for t, _ in sent] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert [full for _, full in sent] == [False, False, False, True, True]
    kf.keyframe()
    clock.advance(1.0)
    assert len(sent) == 5 and not kf.pending
    kf.close()


def _frame(i: int, key: bool = False) -> Packetized:
    return Packetized([b"p%d" % i], i * 3000, key)


async def test_a_lagging_viewer_skips_to_the_next_keyframe():
    lags: list[int] = []
    track = RelayTrack("video", 4, lambda: lags.append(1))
    track.push(_frame(0))  # not a keyframe: a new viewer waits for one
    assert track.queued == 0 and track.skipped == 1
    track.push(_frame(1, key=True))
    for i in range(2, 5):
        track.push(_frame(i))
    assert track.queued == 4 and not lags
    track.push(_frame(5))  # over the bound: drop the queue, wait for a keyframe, ask for one
    assert track.queued == 0 and track.need_keyframe and lags == [1]
    track.push(_frame(6))
    assert track.queued == 0
    track.push(_frame(7, key=True))
    assert [(await track.recv()).timestamp] == [7 * 3000]
    audio = RelayTrack("audio", 3, lambda: None)
    for i in range(5):
        audio.push(_frame(i, key=True))
    assert [(await audio.recv()).timestamp for _ in range(3)] == [6000, 9000, 12000]
    track.stop()
    with pytest.raises(aiortc.mediastreams.MediaStreamError):
        await track.recv()


def _encode(codec: str, w: int, h: int, n: int = 3, **opts) -> list[tuple[bytes, bool]]:
    enc = av.CodecContext.create(codec, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    for k, v in opts.items():
        setattr(enc, k, v)
    out = []
    for i in range(n):
        f = av.VideoFrame(w, h, "yuv420p")
        f.pts = i
        f.time_base = enc.time_base
        out += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(f)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in enc.encode(None)]
    return out


def test_bitstream_keyframes_and_dimensions():
    high = _encode("libx264", 1280, 720, profile="High")
    assert is_keyframe("H264", high[0][0]) and dimensions("H264", high[0][0]) == (1280, 720)
    assert not is_keyframe("H264", high[1][0])
    base = _encode("libx264", 854, 480, profile="Baseline")
    assert dimensions("H264", base[0][0]) == (854, 480)
    vp8 = _encode("libvpx", 642, 362)
    assert is_keyframe("VP8", vp8[0][0]) and dimensions("VP8", vp8[0][0]) == (642, 362)
    assert not is_keyframe("VP8", vp8[1][0])


def test_packetizer_repairs_parameter_sets_and_keeps_time_continuous():
    from aiortc.codecs import CODECS

    h264 = next(c for c in CODECS["video"] if c.name == "H264")
    frames = _encode("libx264", 320, 240, n=40, gop_size=20)
    key, delta = frames[0][0], frames[1][0]
    bare_idr = b"".join(b"\x00\x00\x00\x01" + n for n in _units_without(key, {7, 8}))
    p = Packetizer("video")
    p.set_codec(h264)
    packet, data = p.packetize(key, 0)
    assert packet.keyframe and data == key
    packet, data = p.packetize(bare_idr, 3000)  # an IDR without SPS/PPS gets them back
    assert packet.keyframe and {5, 7, 8} <= h264_types(data)
    packet, _ = p.packetize(delta, 6000)
    assert not packet.keyframe and packet.timestamp == 6000
    assert all(len(x) <= 1300 for x in packet.payloads)
    p.new_source()  # a reconnecting publisher starts its timestamps at 0 again
    packet, _ = p.packetize(key, 0)
    assert packet.timestamp == 9000
    packet, _ = p.packetize(delta, 3000)
    assert packet.timestamp == 12000
    sets = H264ParameterSets()
    assert sets.fix(bare_idr) == (bare_idr, True)  # nothing known yet: left alone


def _units_without(data: bytes, types: set[int]) -> list[bytes]:
    from jobcast.stream.bitstream import h264_nal_units

    return [n for n in h264_nal_units(data) if n[0] & 0x1F not in types]


# -- settings and wire formats ---------------------------------------------------------------


def test_ice_settings_parse_and_reject():
    p = parse_policy("127.0.0.1, 10.0.0.5", "40000-40100", "10.0.0.5=203.0.113.7")
    assert p.addresses == ("127.0.0.1", "10.0.0.5") and p.ports == (40000, 40100)
    assert p.announce == {"10.0.0.5": "203.0.113.7"}
    assert parse_policy("", "", "203.0.113.7").announce == {"*": "203.0.113.7"}
    assert parse_policy("", "", "").is_default
    for bad in (("nope", "", ""), ("", "10-5", ""), ("", "80-90", ""), ("", "", "x=y")):
        with pytest.raises(ValueError):
            parse_policy(*bad)


def test_ice_servers_for_link_headers():
    s = IceServers.from_settings("stun:a.example:3478", "turn:b.example?transport=tcp", "u", "p")
    assert s.links("x") == [
        '<stun:a.example:3478>; rel="ice-server"',
        '<turn:b.example?transport=tcp>; rel="ice-server"; username="u"; credential="p"; '
        'credential-type="password"',
    ]
    rest = IceServers.from_settings("", "turn:b.example", secret="k")
    (server,) = rest.servers("v-abc", now=1000)
    assert server.username == f"{1000 + rest.turn_ttl}:v-abc"
    expected = hmac.new(b"k", server.username.encode(), hashlib.sha1).digest()
    assert server.credential == base64.b64encode(expected).decode()
    with pytest.raises(ValueError):
        IceServers.from_settings("turn:x", "")


def test_egress_wire_format_round_trips():
    frame = Packetized([b"a" * 1200, b"b" * 17, b""], 123456789, True)
    raw = encode_frame("abcd2345", "video", frame)
    bid, kind, back = decode_frame(raw[5:])
    assert (bid, kind, back.payloads, back.timestamp, back.keyframe) == (
        "abcd2345",
        "video",
        frame.payloads,
        frame.timestamp,
        True,
    )
    from aiortc.codecs import CODECS

    for c in CODECS["video"] + CODECS["audio"]:
        assert codec_from_json(codec_to_json(c)).parameters == c.parameters
    for err in (BadSdp("x"), Invalid("y", fields={"sdp": "z"}), Unavailable("u", retry_after=5)):
        back_err = error_from_json(error_to_json(err))
        assert type(back_err) is type(err) and back_err.to_dict() == err.to_dict()


async def test_viewer_offer_through_aiortc_gets_the_publishers_codec_only():
    """The answer to a viewer that offers every codec lists the publisher's codec alone."""
    from aiortc.codecs import CODECS
    from jobcast.stream.viewers import ViewerHub

    hub = ViewerHub(
        LOOPBACK,
        queue_frames=10,
        connect_timeout=5,
        on_keyframe_wanted=lambda bid: None,
        on_gone=lambda *a: None,
    )
    vp8 = next(c for c in CODECS["video"] if c.name == "VP8")
    opus = CODECS["audio"][0]
    viewer = RTCPeerConnection(rtc_configuration())
    viewer.addTransceiver("video", direction="recvonly")
    viewer.addTransceiver("audio", direction="recvonly")
    ai.restrict_gathering(viewer, LOOPBACK)
    await viewer.setLocalDescription(await viewer.createOffer())
    answer = await hub.open("b", "s1", viewer.localDescription.sdp, {"video": vp8, "audio": opus})
    video = answer.split("m=video")[1].split("m=audio")[0]
    assert "VP8/90000" in video and "H264" not in video
    assert "a=sendonly" in video
    await viewer.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    await hub.close_all()
    await viewer.close()


# -- the direct send path's internals ----------------------------------------------------------


def test_srtp_protector_matches_pylibsrtp_protect():
    import os
    import struct

    from pylibsrtp import Policy, Session

    key = os.urandom(30)

    def session(kind: int) -> Session:
        policy = Policy(key=key, ssrc_type=kind)
        policy.allow_repeat_tx = True
        return Session(policy)

    public, ours = session(Policy.SSRC_ANY_OUTBOUND), session(Policy.SSRC_ANY_OUTBOUND)
    inbound = session(Policy.SSRC_ANY_INBOUND)
    protect = ai.srtp_protector(ours)
    assert protect is not ours.protect  # pylibsrtp is the pinned one: the direct call is used
    for seq in range(200):
        packet = struct.pack("!BBHII", 0x80, 96, seq, 9000, 42) + os.urandom(seq * 6)
        sealed = protect(packet)
        assert sealed == public.protect(packet)
        assert inbound.unprotect(sealed) == packet
    with pytest.raises(ValueError):
        protect(b"\x80" * 1500)


def test_egress_count_uses_every_core_only_when_there_are_several():
    from jobcast.stream.egress import egress_count

    assert egress_count(3, cores=8) == 3
    assert egress_count(0, cores=8) == 0
    assert egress_count(-1, cores=2) == 2
    assert egress_count(-1, cores=1) == 0
