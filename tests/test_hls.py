"""HLS from the publisher's own frames (stream/hls.py), end to end with a real aiortc
publisher on 127.0.0.1: what a player reads in the files, the video bytes untouched, the
headers a cache obeys, and a publisher that reconnects."""

from __future__ import annotations

import io

import av
import pytest
from jobcast.stream.bitstream import H264_PPS, H264_SPS, h264_nal_units
from jobcast.stream.playlist import parse
from jobcast.web.api.media import MEDIA

from tests.helpers import connect
from tests.media_peers import EncodedVideoTrack, Publisher, encode_h264
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.media,
    pytest.mark.timeout(90),
    pytest.mark.app_settings(media_ice_addresses="127.0.0.1", media_publisher_grace=3.0),
]


def _slices(nals: list[bytes]) -> list[bytes]:
    """The coded picture without its parameter sets (the relay may repeat those)."""
    return [n for n in nals if n[0] & 0x1F not in (H264_SPS, H264_PPS)]


def _avcc_nals(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 4 <= len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return out


async def _get(client, path: str) -> bytes:
    r = await client.get(path)
    assert r.status == 200, (path, r.status, await r.text())
    return await r.read()


def _read(init: bytes, segment: bytes) -> tuple[list[tuple[bytes, int, bool]], int, int]:
    """(video packets as (bytes, pts, keyframe), audio packets, decoded video frames) of one
    segment, as a player reads it: its init segment, then it."""
    video: list[tuple[bytes, int, bool]] = []
    audio = decoded = 0
    with av.open(io.BytesIO(init + segment), format="mp4") as f:
        vs = f.streams.video[0]
        assert vs.codec_context.name == "h264"
        assert [s.codec_context.name for s in f.streams.audio] == ["aac"]
        for packet in f.demux():
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                video.append((bytes(packet), packet.pts, packet.is_keyframe))
                decoded += len(packet.decode())
            else:
                audio += 1
    return video, audio, decoded


async def test_segments_play_and_carry_the_publishers_video_bytes(client, bid, stream_key):
    frames = encode_h264(150)  # 5 s, an IDR each second, sent as they are
    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key, video=EncodedVideoTrack(frames))
    await pub.publish()
    await ws.wait_for("stream.live", timeout=10)
    await wait_until(lambda: pub.video.sent >= len(frames), 20, "every frame sent")
    writer = client.server.app[MEDIA].streams[bid].hls
    await wait_until(lambda: writer.segments >= 3, 10, "three segments")
    assert await pub.delete() == 200
    await ws.wait_for("stream.ended", timeout=10)

    playlist = parse((await _get(client, f"/hls/{bid}/index.m3u8")).decode())
    assert playlist.ended and len(playlist.segments) >= 4
    inits = {s.init: await _get(client, f"/hls/{bid}/{s.init}") for s in playlist.segments}
    assert len(inits) == 1
    got: list[tuple[bytes, int, bool]] = []
    for s in playlist.segments:
        video, audio, decoded = _read(inits[s.init], await _get(client, f"/hls/{bid}/{s.name}"))
        assert video and video[0][2], f"{s.name} opens on a keyframe"
        assert decoded == len(video), f"every frame of {s.name} decodes"
        assert audio > 0, f"{s.name} has audio"
        span = (video[-1][1] - video[0][1] + 3000) / 90000
        assert abs(span - s.duration) < 0.02, (s.name, span, s.duration)
        got += video
    # the durations add up to the stream's length: first frame to the end of the last
    length = (got[-1][1] - got[0][1] + 3000) / 90000
    assert abs(playlist.duration - length) < 0.05, (playlist.duration, length)
    # nothing re-encoded: the pictures are the publisher's, byte for byte, in order, from the
    # first keyframe the relay received
    sent = [_slices(h264_nal_units(f)) for f in frames]
    hls = [_slices(_avcc_nals(v)) for v, _pts, _key in got]
    first = sent.index(hls[0])
    assert hls == sent[first : first + len(hls)]
    assert len(hls) >= 120
    await pub.close()


async def test_cache_headers_cors_no_cookies_and_404s(client, bid, stream_key):
    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    await ws.wait_for("stream.live", timeout=10)
    writer = client.server.app[MEDIA].streams[bid].hls
    await wait_until(lambda: writer.segments >= 2, 20, "two segments")
    client.session.cookie_jar.clear()
    live = await client.get(f"/hls/{bid}/live.m3u8")
    assert live.status == 200
    assert live.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert live.headers["Cache-Control"] == "public, max-age=1"
    assert live.headers["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in live.headers
    playlist = parse(await live.text())
    seg = await client.get(
        f"/hls/{bid}/{playlist.segments[0].name}", headers={"Origin": "https://cdn.example"}
    )
    assert seg.status == 200 and seg.headers["Content-Type"] == "video/mp4"
    assert seg.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert seg.headers["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in seg.headers
    init = await client.get(f"/hls/{bid}/{playlist.segments[0].init}")
    assert init.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    ranged = await client.get(
        f"/hls/{bid}/{playlist.segments[0].name}", headers={"Range": "bytes=0-99"}
    )
    assert ranged.status == 206 and len(await ranged.read()) == 100
    for path in (
        f"/hls/{bid}/s999999.m4s",
        f"/hls/{bid}/..%2F..%2Fsecret.key",
        f"/hls/{bid}/live.m3u8.tmp",
        f"/hls/{bid}/.live.m3u8.tmp",
        f"/hls/{bid}/s1.m4s%00",
        "/hls/nosuchbroadcast/live.m3u8",
        "/hls/..%2Fredis/live.m3u8",
        f"/hls/{bid}/../../secret.key",
    ):
        r = await client.get(path)
        assert r.status == 404, path
        # a JSON error; the router's own when the path no longer names a file under /hls/
        assert (await r.json())["error"]["code"] in ("hls_not_found", "not_found"), path
    r = await client.get(f"/hls/{bid}/nope.txt")
    assert r.status == 404 and (await r.json())["error"]["code"] == "hls_not_found"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    opts = await client.options(
        f"/hls/{bid}/live.m3u8",
        headers={"Origin": "https://x.example", "Access-Control-Request-Method": "GET"},
    )
    assert opts.status == 204 and opts.headers["Access-Control-Allow-Origin"] == "*"
    await pub.close()


async def test_stream_state_names_the_live_playlist(client, bid, stream_key):
    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    live = await ws.wait_for("stream.live", timeout=10)
    assert live["data"]["hls"] == f"/hls/{bid}/live.m3u8"
    assert live["data"]["hls_state"] == "on"
    r = await client.get(f"/api/broadcasts/{bid}/stream")
    state = await r.json()
    assert state["hls"] == f"/hls/{bid}/live.m3u8" and state["hls_state"] == "on"
    await pub.close()


async def test_vp8_publisher_gets_webrtc_only_and_the_reason(client, bid, stream_key):
    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key, video_codec="VP8")
    await pub.publish()
    live = await ws.wait_for("stream.live", timeout=10)
    assert live["data"]["hls"] is None and live["data"]["hls_state"] == "video_codec"
    assert client.server.app[MEDIA].streams[bid].hls is None
    await pub.close()


async def test_whip_answer_prefers_h264_when_hls_is_on(client, bid, stream_key):
    pub = Publisher(client, bid, stream_key, video_codec="VP8")
    # an offer with both, VP8 first: the answer picks H264
    from aiortc import RTCRtpSender

    vt = pub.pc.addTransceiver(pub.video, direction="sendonly")
    caps = RTCRtpSender.getCapabilities("video").codecs
    vt.setCodecPreferences(sorted(caps, key=lambda c: c.mimeType != "video/VP8"))
    from tests.media_peers import make_offer

    offer = await make_offer(pub.pc)
    r = await client.post(
        f"/whip/{bid}",
        data=offer,
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {stream_key}"},
    )
    assert r.status == 201
    answer = await r.text()
    video = answer[answer.index("m=video") :]
    first_pt = video.split("\r\n", 1)[0].split()[3]
    assert f"a=rtpmap:{first_pt} H264/90000" in video
    await pub.close()


async def test_reconnecting_publisher_continues_the_playlist_after_a_discontinuity(
    client, bid, stream_key
):
    ws = await connect(client, bid)
    first = Publisher(client, bid, stream_key)
    await first.publish()
    await ws.wait_for("stream.live", timeout=10)
    media = client.server.app[MEDIA]
    await wait_until(lambda: media.streams[bid].hls.segments >= 2, 20, "two segments")
    assert await first.delete() == 200
    await ws.wait_for("stream.ended", timeout=10)
    ended = parse((await _get(client, f"/hls/{bid}/index.m3u8")).decode())
    assert ended.ended
    second = Publisher(client, bid, stream_key)
    await second.publish()
    await ws.wait_count("stream.live", 2, timeout=10)
    await wait_until(lambda: media.streams[bid].hls.segments >= 2, 20, "two more segments")
    playlist = parse((await _get(client, f"/hls/{bid}/index.m3u8")).decode())
    assert not playlist.ended
    n = len(ended.segments)
    assert playlist.segments[:n] == ended.segments  # the first session, kept as it was
    resumed = playlist.segments[n]
    assert resumed.discontinuity and resumed.init != ended.segments[-1].init
    assert resumed.seq == ended.segments[-1].seq + 1
    names = [s.name for s in playlist.segments]
    assert len(set(names)) == len(names)
    live = (await _get(client, f"/hls/{bid}/live.m3u8")).decode()
    assert "#EXT-X-DISCONTINUITY" in live or "#EXT-X-DISCONTINUITY-SEQUENCE:1" in live
    await first.close()
    await second.close()
