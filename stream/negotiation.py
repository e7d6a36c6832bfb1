"""SDP offers in, peer connections out: validation, codec choice and the answer.

Publishers (WHIP) get one video codec in the answer, H264 or VP8 in the server's order of
preference among those they offer, and Opus; viewers (WHEP) get exactly the codecs the
publisher sends, so frames go through untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    sdp,
)
from aiortc.codecs import CODECS, is_rtx
from aiortc.exceptions import InternalError, InvalidStateError, OperationError
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from jobcast.core.errors import Invalid
from jobcast.stream.aiortc_internals import IcePolicy, restrict_gathering
from jobcast.stream.errors import BadSdp

VIDEO_CODECS = ("H264", "VP8")
AUDIO_CODECS = ("opus",)
MAX_MEDIA_SECTIONS = 8


def rtc_configuration() -> RTCConfiguration:
    """No ICE servers for the server's own peers: iceServers=None would make aiortc query
    Google's public STUN server, and a server has no use for server-reflexive candidates
    (NAT 1:1 addresses are announced from settings instead)."""
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def parse_offer(text: str) -> sdp.SessionDescription:
    """Parse and check an offer well enough that aiortc will not fail on it later."""
    if not text.startswith("v=0"):
        raise BadSdp("not an SDP offer (must start with v=0)")
    try:
        desc = sdp.SessionDescription.parse(text)
    except Exception as e:  # aiortc's parser raises whatever its first bad line causes
        raise BadSdp(f"malformed SDP: {type(e).__name__}") from None
    media = [m for m in desc.media if m.kind in ("audio", "video")]
    if not media:
        raise BadSdp("the offer has no audio or video section")
    if len(desc.media) > MAX_MEDIA_SECTIONS:
        raise BadSdp("too many media sections")
    for m in desc.media:
        if not m.ice.usernameFragment or not m.ice.password:
            raise BadSdp("the offer has no ICE credentials")
        if m.dtls is None or not m.dtls.fingerprints:
            raise BadSdp("the offer has no DTLS fingerprint")
        if m.kind in ("audio", "video") and not m.rtcp_mux:
            raise BadSdp("the offer must use rtcp-mux")
    return desc


def _local(kind: str) -> list[RTCRtpCodecParameters]:
    return [c for c in CODECS[kind] if not is_rtx(c)]


def capability(codec: RTCRtpCodecParameters) -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(
        mimeType=codec.mimeType,
        clockRate=codec.clockRate,
        channels=codec.channels,
        parameters=dict(codec.parameters),
    )


def _rtx() -> RTCRtpCodecCapability:
    return RTCRtpCodecCapability(mimeType="video/rtx", clockRate=90000)


def preferences(kind: str, codec: RTCRtpCodecParameters) -> list[RTCRtpCodecCapability]:
    """Transceiver codec preferences allowing only `codec` (and retransmission for video)."""
    prefs = [capability(codec)]
    if kind == "video":
        prefs.append(_rtx())
    return prefs


def _is_constrained_baseline(codec: RTCRtpCodecParameters) -> bool:
    try:
        profile = sdp.parse_h264_profile_level_id(
            str(codec.parameters.get("profile-level-id", "42e01f"))
        )[0]
    except ValueError:
        return False
    return profile == sdp.H264Profile.PROFILE_CONSTRAINED_BASELINE


def publisher_codecs(
    offer: sdp.SessionDescription, video_order: Sequence[str]
) -> dict[str, RTCRtpCodecParameters]:
    """The one codec per kind the publisher will be answered with.

    Video: the first of `video_order` (H264, VP8) that the offer has. Among the offer's H264
    variants that aiortc knows (packetization mode 1, baseline or constrained baseline),
    constrained baseline wins: every browser can receive it (iOS Safari offers no plain
    baseline), and browsers encode constrained baseline under either label anyway.
    """
    out: dict[str, RTCRtpCodecParameters] = {}
    for m in offer.media:
        if m.kind not in ("audio", "video") or m.kind in out:
            continue
        if m.direction not in ("sendonly", "sendrecv"):
            continue
        wanted = [n.upper() for n in video_order] if m.kind == "video" else ["OPUS"]
        best: tuple[int, int, RTCRtpCodecParameters] | None = None
        for remote in m.rtp.codecs:
            name = remote.name.upper()
            if name not in wanted:
                continue
            for local in _local(m.kind):
                if is_codec_compatible(local, remote):
                    penalty = 0 if name != "H264" or _is_constrained_baseline(local) else 1
                    score = (wanted.index(name), penalty, local)
                    if best is None or score[:2] < best[:2]:
                        best = score
                    break
        if best is None:
            names = "/".join(video_order) if m.kind == "video" else "Opus"
            raise Invalid(
                f"the offer's {m.kind} has no codec this server relays ({names})",
                code="unsupported_codec",
                fields={"sdp": f"{m.kind}: offer {names}"},
            )
        out[m.kind] = best[2]
    if not out:
        raise BadSdp("the offer sends no audio or video (direction must be sendonly)")
    return out


def _alternatives(codec: RTCRtpCodecParameters) -> list[RTCRtpCodecParameters]:
    """`codec`, then (H264) the other baseline flavour with the same packetization mode: the
    label differs, the bitstream a browser sends under either is constrained baseline."""
    out = [codec]
    if codec.name.upper() == "H264":
        mode = codec.parameters.get("packetization-mode")
        for local in _local("video"):
            if (
                local.name.upper() == "H264"
                and local.parameters != codec.parameters
                and local.parameters.get("packetization-mode") == mode
            ):
                out.append(local)
    return out


def viewer_codecs(
    offer: sdp.SessionDescription, codecs: dict[str, RTCRtpCodecParameters]
) -> dict[str, RTCRtpCodecParameters]:
    """For each kind of the publisher's media this viewer receives, the codec to answer with:
    the publisher's, or its other H264 baseline label when only that one is offered.

    Raises Invalid when the viewer cannot receive the codec the publisher sends.
    """
    out: dict[str, RTCRtpCodecParameters] = {}
    for m in offer.media:
        if m.kind not in codecs or m.kind in out:
            continue
        if m.direction not in ("recvonly", "sendrecv"):
            continue
        codec = codecs[m.kind]
        usable = [
            alt
            for alt in _alternatives(codec)
            if any(is_codec_compatible(alt, c) for c in m.rtp.codecs)
        ]
        if not usable:
            raise Invalid(
                f"this broadcast sends {codec.mimeType}, which the offer cannot receive",
                code="unsupported_codec",
                fields={"sdp": f"{m.kind}: must accept {codec.mimeType}"},
            )
        out[m.kind] = usable[0]
    if not out:
        raise BadSdp("the offer receives none of this broadcast's media (direction recvonly)")
    return out


async def answer(
    pc: RTCPeerConnection,
    offer_text: str,
    ice: IcePolicy,
    *,
    seconds: float = 10.0,
) -> str:
    """Apply the offer to `pc` (whose transceivers are already set up) and return the answer.

    aiortc's own failures on an offer that passed `parse_offer` are still the client's fault,
    so they become BadSdp (400), never 500.
    """
    try:
        async with asyncio.timeout(seconds):
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_text, type="offer"))
            restrict_gathering(pc, ice)
            await pc.setLocalDescription(await pc.createAnswer())
    except (ValueError, OperationError, InternalError, InvalidStateError, KeyError) as e:
        raise BadSdp(f"cannot use this offer: {e}") from None
    return pc.localDescription.sdp
