"""WHIP/WHEP over HTTP: every error answers its status in the JSON error shape (never a 500),
CORS and OPTIONS, trickle refused, stream keys host-only, ICE servers in Link headers."""

from __future__ import annotations

import re

import pytest

from tests.helpers import connect
from tests.media_peers import Publisher, Viewer, candidate_addresses, loopback_peer, make_offer

MEDIA = {"media_ice_addresses": "127.0.0.1", "media_publisher_grace": 3.0}
pytestmark = [pytest.mark.media, pytest.mark.timeout(60), pytest.mark.app_settings(**MEDIA)]
SDP = {"Content-Type": "application/sdp"}


async def _offer(kind_dirs=(("video", "sendonly"), ("audio", "sendonly"))) -> tuple:
    pc = loopback_peer()
    for kind, direction in kind_dirs:
        pc.addTransceiver(kind, direction=direction)
    return pc, await make_offer(pc)


async def _error(r, status: int, code: str | None = None) -> dict:
    assert r.status == status, await r.text()
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    body = await r.json()
    assert set(body) == {"error"}
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


async def test_whip_key_errors_and_bad_bodies(client, bid, stream_key):
    pc, offer = await _offer()
    url = f"/whip/{bid}"
    auth = {"Authorization": f"Bearer {stream_key}"}
    # no key, wrong key, wrong scheme
    await _error(await client.post(url, data=offer, headers=SDP), 401, "no_key")
    await _error(
        await client.post(url, data=offer, headers={**SDP, "Authorization": "Bearer nope"}),
        401,
        "bad_key",
    )
    await _error(
        await client.post(url, data=offer, headers={**SDP, "Authorization": f"Basic {stream_key}"}),
        401,
        "no_key",
    )
    # unknown broadcast (404 before the key is looked at)
    await _error(
        await client.post("/whip/zzzzzzzz", data=offer, headers={**SDP, **auth}),
        404,
        "broadcast_not_found",
    )
    # wrong content type, too large
    await _error(
        await client.post(url, data=offer, headers={"Content-Type": "text/plain", **auth}),
        415,
        "unsupported_media_type",
    )
    await _error(
        await client.post(url, data="v=0\r\n" + "a=x\r\n" * 20000, headers={**SDP, **auth}),
        413,
        "too_large",
    )
    # malformed SDP in many shapes: always 400, never 500
    bad = [
        "",
        "hello",
        "v=0\r\n",
        "v=0\r\nm=video x\r\n",
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111\r\n",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/abc\r\n",
        re.sub(r"a=ice-ufrag:.*\r\n", "", offer),
        re.sub(r"a=fingerprint:.*\r\n", "", offer),
        offer.replace("a=rtcp-mux\r\n", ""),
        offer.replace("a=sendonly", "a=recvonly"),
        "\xff\xfe garbage",
        offer[: len(offer) // 2],
    ]
    for body in bad:
        r = await client.post(url, data=body.encode("utf-8", "replace"), headers={**SDP, **auth})
        err = await _error(r, 400)
        assert err["code"] == "bad_sdp", (body[:60], err)
    r = await client.post(url, data=b"\xff\xfe\xfd", headers={**SDP, **auth})
    await _error(r, 400, "bad_sdp")
    # no codec the relay can carry
    no_codec = re.sub(r"(m=video \d+ \S+) [\d ]+", r"\1 126", offer)
    no_codec = re.sub(r"a=rtpmap:(\d+) (H264|VP8|rtx)/90000", r"a=rtpmap:\1 AV1/90000", no_codec)
    await _error(
        await client.post(url, data=no_codec, headers={**SDP, **auth}), 422, "unsupported_codec"
    )
    # PATCH: no trickle ICE
    r = await client.patch(
        url, data="a=candidate:1", headers={"Content-Type": "application/trickle-ice-sdpfrag"}
    )
    err = await _error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["Allow"]
    # nothing of all that left a publisher behind
    r = await client.get(f"/api/broadcasts/{bid}/stream")
    assert (await r.json())["state"] == "offline"
    await pc.close()


@pytest.mark.app_settings(
    media_stun_urls="stun:stun.example.net:3478",
    media_turn_urls="turn:turn.example.net:3478?transport=udp",
    media_turn_secret="s3cret",
)
async def test_options_cors_and_link_headers(client, bid, stream_key):
    # a browser's preflight from another origin
    r = await client.options(
        f"/whip/{bid}",
        headers={
            "Origin": "https://studio.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    assert "Location" in r.headers["Access-Control-Expose-Headers"]
    assert r.headers["Accept-Post"] == "application/sdp"
    assert "Link" not in r.headers  # no TURN credentials without the stream key
    r = await client.options(f"/whip/{bid}", headers={"Authorization": f"Bearer {stream_key}"})
    links = r.headers.getall("Link")
    assert links[0] == '<stun:stun.example.net:3478>; rel="ice-server"'
    assert links[1].startswith('<turn:turn.example.net:3478?transport=udp>; rel="ice-server"')
    assert 'credential-type="password"' in links[1]
    r = await client.options(f"/whep/{bid}")
    assert r.status == 204 and len(r.headers.getall("Link")) == 2
    # cross-origin POST without cookies is not refused by the Origin check
    pub = Publisher(client, bid, stream_key)
    pub.pc = loopback_peer()
    r = await pub.publish()
    assert len(r.headers.getall("Link")) == 2
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    assert r.headers["Content-Type"].startswith("application/sdp")
    assert re.fullmatch(rf"/whip/{bid}/[\w-]+", r.headers["Location"])
    r = await client.options(r.headers["Location"])
    assert r.status == 204 and "DELETE" in r.headers["Allow"]
    r = await client.patch(
        pub.location, data="x", headers={"Content-Type": "application/trickle-ice-sdpfrag"}
    )
    await _error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "DELETE, OPTIONS"
    assert await pub.delete() == 200
    await pub.close()


@pytest.mark.app_settings(media_max_viewers=1)
async def test_second_publisher_conflict_and_whep_errors(client, host, bid, stream_key):
    # WHEP before anyone publishes: 409; unknown broadcast: 404
    v0 = Viewer(client, bid)
    r = await v0.play(expect=409)
    await _error(r, 409, "not_live")
    await v0.close()
    pc, offer = await _offer((("video", "recvonly"),))
    await _error(await client.post("/whep/zzzzzzzz", data=offer, headers=SDP), 404)
    await _error(await client.post(f"/whep/{bid}", data="nope", headers=SDP), 400, "bad_sdp")
    await pc.close()
    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    await ws.wait_for("stream.live", timeout=10)
    # a second publisher with the right key while the first is live
    pub2 = Publisher(client, bid, stream_key)
    r = await pub2.publish(expect=409)
    await _error(r, 409, "publisher_live")
    await pub2.close()
    # WHEP offers: one that sends only, one that cannot receive H264
    pc, offer = await _offer((("video", "sendonly"),))
    await _error(await client.post(f"/whep/{bid}", data=offer, headers=SDP), 400, "bad_sdp")
    await pc.close()
    from aiortc import RTCRtpSender

    pc = loopback_peer()
    t = pc.addTransceiver("video", direction="recvonly")
    t.setCodecPreferences(
        [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    )
    offer = await make_offer(pc)
    await _error(
        await client.post(f"/whep/{bid}", data=offer, headers=SDP), 422, "unsupported_codec"
    )
    await pc.close()
    # the viewer cap (1 here): the second viewer gets 503 with Retry-After
    v1 = Viewer(client, bid)
    await v1.play()
    v2 = Viewer(client, bid)
    r = await v2.play(expect=503)
    err = await _error(r, 503, "viewer_limit")
    assert int(r.headers["Retry-After"]) >= 1 and err["retry_after"] > 0
    await v2.close()
    await v1.wait_frames(5, timeout=15)
    # DELETE: a viewer's own session, then again (gone), then a made-up one
    assert await v1.delete() == 200
    await _error(await client.delete(v1.location), 404, "session_not_found")
    await _error(await client.delete(f"/whep/{bid}/nosuchsession"), 404, "session_not_found")
    await _error(await client.delete(f"/whip/{bid}/nosuchsession"), 404, "session_not_found")
    await v1.close()
    # an ended broadcast takes no publisher
    assert await pub.delete() == 200
    await ws.wait_for("stream.ended", timeout=10)
    r = await host.post(f"/api/broadcasts/{bid}/end")
    assert r.status == 200
    pub3 = Publisher(client, bid, stream_key)
    await _error(await pub3.publish(expect=409), 409, "broadcast_ended")
    await pub3.close()
    await pub.close()


async def test_stream_key_is_host_only_and_rotates(
    client, client_b, host, bid, stream_key, moderator
):
    r = await host.get(f"/api/broadcasts/{bid}/stream-key")
    info = await r.json()
    assert info["has_key"] is True and "stream_key" not in info
    # viewers (no session) and moderators may not read or rotate it
    anon = await client_b.post(f"/api/broadcasts/{bid}/stream-key")
    assert anon.status in (401, 403)
    r = await moderator.post(f"/api/broadcasts/{bid}/stream-key")
    assert r.status == 403
    r = await moderator.get(f"/api/broadcasts/{bid}/recordings")
    assert r.status == 403
    r = await host.post(f"/api/broadcasts/{bid}/stream-key")
    new_key = (await r.json())["stream_key"]
    assert new_key != stream_key
    old = Publisher(client, bid, stream_key)
    await _error(await old.publish(expect=401), 401, "bad_key")
    await old.close()
    r = await host.post("/api/broadcasts/zzzzzzzz/stream-key")
    assert r.status == 404
    # the stored value is a hash: the key itself is nowhere in Redis
    from jobcast.web.appkeys import REDIS

    redis = client.server.app[REDIS]
    stored = await redis.hgetall(f"jc:{{b:{bid}}}:streamkey")
    assert new_key.encode() not in b"".join(stored.values())


@pytest.mark.app_settings(media_udp_ports="41000-41099")
async def test_udp_port_range_and_snapshot(client, bid, stream_key):
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    ports = [int(p) for p in re.findall(r"a=candidate:\S+ \d \S+ \d+ \S+ (\d+)", pub.answer)]
    assert ports and all(41000 <= p <= 41099 for p in ports)
    assert candidate_addresses(pub.answer) == {"127.0.0.1"}
    v = Viewer(client, bid)
    await v.play()
    await v.wait_frames(5, timeout=15)
    ws = await connect(client, bid)
    snap = ws.of_type("snapshot")[0]["data"]["stream"]
    assert snap["state"] == "live" and snap["codecs"] == {"video": "H264", "audio": "opus"}
    assert snap["whep"] == f"/whep/{bid}"
    await v.close()
    assert await pub.delete() == 200
    await pub.close()


async def test_media_metrics(client):
    r = await client.get("/metrics")
    text = await r.text()
    assert "jobcast_media_viewers 0.0" in text
    assert "jobcast_media_frames_sent_total 0.0" in text


_FP = ":".join(["5A"] * 32)


def _static_offer(direction: str, video: list[tuple[int, str, str]], *, audio: bool = True) -> str:
    """An offer as a browser or OBS writes it, with one loopback candidate nothing listens on
    (the server's checks to it go nowhere but 127.0.0.1)."""
    lines = [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1" if audio else "a=group:BUNDLE 0",
        "a=msid-semantic: WMS *",
    ]
    media = []
    if audio:
        media.append(
            ("audio", "111", ["a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1"])
        )
    vlines = []
    for pt, name, fmtp in video:
        vlines.append(f"a=rtpmap:{pt} {name}/90000")
        if name != "rtx":
            vlines += [f"a=rtcp-fb:{pt} nack", f"a=rtcp-fb:{pt} nack pli"]
        if fmtp:
            vlines.append(f"a=fmtp:{pt} {fmtp}")
    media.append(("video", " ".join(str(v[0]) for v in video), vlines))
    for mid, (kind, pts, extra) in enumerate(media):
        lines += [
            f"m={kind} 9 UDP/TLS/RTP/SAVPF {pts}",
            "c=IN IP4 0.0.0.0",
            "a=ice-ufrag:Tq3x",
            "a=ice-pwd:oU6kR1dXq2hP8sL0aZ4vB7nM",
            f"a=fingerprint:sha-256 {_FP}",
            "a=setup:actpass",
            f"a=mid:{mid}",
            f"a={direction}",
            "a=rtcp-mux",
            *extra,
        ]
        if mid == 0:
            lines += ["a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host", "a=end-of-candidates"]
    return "\r\n".join(lines) + "\r\n"


def _video_section(answer: str) -> str:
    return answer.split("m=video")[1].split("m=audio")[0]


async def test_obs_chrome_and_safari_offers_get_the_right_codecs(
    app_factory, redis_url, app_settings, client, bid, stream_key
):
    auth = {**SDP, "Authorization": f"Bearer {stream_key}"}
    # OBS Studio 30: H264 constrained baseline and Opus
    obs = _static_offer(
        "sendonly",
        [(96, "H264", "profile-level-id=42e01f;packetization-mode=1;level-asymmetry-allowed=1")],
    )
    r = await client.post(f"/whip/{bid}", data=obs, headers=auth)
    assert r.status == 201, await r.text()
    answer = await r.text()
    assert "a=rtpmap:96 H264/90000" in answer and "a=rtpmap:111 opus/48000/2" in answer
    assert answer.count("a=recvonly") == 2
    assert "a=setup:active" in answer
    assert candidate_addresses(answer) == {"127.0.0.1"}
    assert (await client.delete(r.headers["Location"])).status == 200
    # Chrome: VP8 first, several H264 profiles, plain baseline before constrained baseline
    chrome = _static_offer(
        "sendonly",
        [
            (96, "VP8", ""),
            (97, "rtx", "apt=96"),
            (98, "VP9", "profile-id=0"),
            (45, "AV1", ""),
            (102, "H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f"),
            (103, "rtx", "apt=102"),
            (127, "H264", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f"),
            (108, "H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
            (109, "rtx", "apt=108"),
            (112, "H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f"),
            (116, "red", ""),
            (117, "ulpfec", ""),
        ],
    )
    r = await client.post(f"/whip/{bid}", data=chrome, headers=auth)
    assert r.status == 201, await r.text()
    video = _video_section(await r.text())
    assert video.split()[2:4] == ["108", "109"]  # H264 42e01f and its rtx, nothing else
    assert "profile-level-id=42e01f" in video and "VP8" not in video and "VP9" not in video
    # VP8 preferred by the server: the same offer is answered with VP8
    assert (await client.delete(r.headers["Location"])).status == 200
    client2 = await app_factory(redis_url, **app_settings, media_video_codecs="VP8,H264")
    r = await client2.post(f"/whip/{bid}", data=chrome, headers=auth)
    assert r.status == 201
    assert "VP8/90000" in _video_section(await r.text())
    assert (await client2.delete(r.headers["Location"])).status == 200


async def test_viewers_get_the_publishers_h264_under_the_label_they_offer(client, bid, stream_key):
    pub = Publisher(client, bid, stream_key)  # aiortc offers both baseline labels: 42e01f is chosen
    await pub.publish()
    assert "profile-level-id=42e01f" in _video_section(pub.answer)
    # iOS Safari: constrained baseline and high, no plain baseline
    safari = _static_offer(
        "recvonly",
        [
            (96, "H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f"),
            (97, "rtx", "apt=96"),
            (98, "H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"),
            (99, "rtx", "apt=98"),
            (100, "VP8", ""),
        ],
    )
    r = await client.post(f"/whep/{bid}", data=safari, headers=SDP)
    assert r.status == 201, await r.text()
    video = _video_section(await r.text())
    assert video.split()[2:4] == ["98", "99"] and "a=sendonly" in video
    assert (await client.delete(r.headers["Location"])).status == 200
    # a receiver that only labels its H264 as plain baseline gets the same stream under it
    old = _static_offer(
        "recvonly",
        [(102, "H264", "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f")],
    )
    r = await client.post(f"/whep/{bid}", data=old, headers=SDP)
    assert r.status == 201, await r.text()
    assert "profile-level-id=42001f" in _video_section(await r.text())
    assert (await client.delete(r.headers["Location"])).status == 200
    # H264 in packetization mode 0 only: cannot receive this stream
    mode0 = _static_offer(
        "recvonly",
        [(127, "H264", "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f")],
    )
    await _error(
        await client.post(f"/whep/{bid}", data=mode0, headers=SDP), 422, "unsupported_codec"
    )
    assert await pub.delete() == 200
    await pub.close()
