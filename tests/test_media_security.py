"""WHIP and WHEP against an outside attacker, with real aiortc peers over real HTTP.

Ending the stream takes the publisher's secret resource URL (the 201's Location), never the
public session id that viewers, snapshots and `stream.live` carry. Offers that never connect
are limited per client address and lose their viewer slot when their connection fails or their
connect deadline passes, so one client cannot keep the other viewers out of the video.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from jobcast.web.api.media import MEDIA
from jobcast.web.appkeys import REDIS
from redis.asyncio import Redis

from tests.helpers import connect
from tests.media_peers import Publisher, Viewer, loopback_peer, make_offer
from tests.waiting import wait_until

MEDIA_SETTINGS = {"media_ice_addresses": "127.0.0.1", "media_publisher_grace": 3.0}
pytestmark = [
    pytest.mark.media,
    pytest.mark.timeout(90),
    pytest.mark.app_settings(**MEDIA_SETTINGS),
]
SDP = {"Content-Type": "application/sdp"}
EVIL = "https://evil.example"
_FP = ":".join(["5A"] * 32)


async def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status == status, await r.text()
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    body = await r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


def _offer_to(address: str) -> str:
    """A WHEP offer whose only ICE candidate is `address`:9: on 127.0.0.1 nothing answers the
    checks (the offer never connects); on ::1 no candidate pair can form (ICE fails at once)."""
    lines = [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic: WMS *",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        f"a=ice-ufrag:{secrets.token_hex(4)}",
        "a=ice-pwd:oU6kR1dXq2hP8sL0aZ4vB7nM",
        f"a=fingerprint:sha-256 {_FP}",
        "a=setup:actpass",
        "a=mid:0",
        "a=recvonly",
        "a=rtcp-mux",
        "a=rtpmap:96 H264/90000",
        "a=rtcp-fb:96 nack",
        "a=rtcp-fb:96 nack pli",
        "a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        f"a=candidate:1 1 udp 2122260223 {address} 9 typ host",
        "a=end-of-candidates",
    ]
    return "\r\n".join(lines) + "\r\n"


class FromAddress:
    """HTTP to the test server from another loopback source address (a second client)."""

    def __init__(self, client: TestClient, address: str) -> None:
        self.client = client
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(address, 0))
        )

    async def post(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        r = await self.session.post(self.client.make_url(path), **kw)
        await r.read()
        return r

    async def delete(self, path: str, **kw: Any) -> aiohttp.ClientResponse:
        r = await self.session.delete(self.client.make_url(path), **kw)
        await r.read()
        return r

    async def close(self) -> None:
        await self.session.close()


async def _redis_contents(redis: Redis) -> bytes:
    """Every key name and value in Redis, for looking for a secret."""
    out = bytearray()
    async for k in redis.scan_iter(count=1000):
        out += k + b"\n"
        kind = await redis.type(k)
        if kind == b"string":
            out += await redis.get(k) or b""
        elif kind == b"hash":
            for f, v in (await redis.hgetall(k)).items():
                out += f + b"=" + v + b"\n"
        elif kind == b"list":
            out += b"\n".join(await redis.lrange(k, 0, -1))
        elif kind == b"set":
            out += b"\n".join(await redis.smembers(k))
        elif kind == b"zset":
            out += b"\n".join(await redis.zrange(k, 0, -1))
        elif kind == b"stream":
            for _id, fields in await redis.xrange(k):
                out += b"\n".join(v for pair in fields.items() for v in pair)
        out += b"\n"
    return bytes(out)


# -- finding 1: ending the stream ------------------------------------------------------------


async def test_only_the_publishers_location_ends_the_stream(client, client_b, bid, stream_key):
    # client_b: another worker on the same Redis
    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    live = (await ws.wait_for("stream.live", timeout=10))["data"]
    public = live["session"]
    assert pub.location is not None
    resource = pub.location.rsplit("/", 1)[1]
    # what viewers see names the public id; the resource id is somewhere else entirely
    state = await (await client.get(f"/api/broadcasts/{bid}/stream")).json()
    late = await connect(client_b, bid)
    snap = late.of_type("snapshot")[0]["data"]["stream"]
    assert state["state"] == snap["state"] == "live"
    assert state["session"] == snap["session"] == public == pub.session
    assert resource != public and public not in pub.location and len(resource) >= 43
    assert resource not in json.dumps([ws.events, late.events, state])
    v = Viewer(client, bid)
    await v.play()
    assert v.answer is not None and v.location is not None
    assert resource not in v.answer + v.location
    await v.wait_frames(5, timeout=15)
    # nothing a viewer or another site holds ends the stream, on either worker
    async with aiohttp.ClientSession() as anon:
        for c in (client, client_b):
            for path, headers in (
                (f"/whip/{bid}/{public}", {"Origin": EVIL}),
                (f"/whip/{bid}/{public}", {"Origin": EVIL, "Authorization": "Bearer jc_guess"}),
                (f"/whip/{bid}/{secrets.token_urlsafe(32)}", {"Origin": EVIL}),
                (f"/whip/{bid}/{v.location.rsplit('/', 1)[1]}", {}),
            ):
                r = await anon.delete(c.make_url(path), headers=headers)
                await _error(r, 404, "session_not_found")
        # the host's own cookies are no credential for it either
        await _error(await client.delete(f"/whip/{bid}/{public}"), 404, "session_not_found")
    n = len(v.frames)
    await v.wait_frames(n + 15, timeout=15)
    assert not ws.of_type("stream.ended") and not v.ended.is_set()
    state = await (await client_b.get(f"/api/broadcasts/{bid}/stream")).json()
    assert state["state"] == "live" and state["session"] == public
    # the secret is kept only as a hash
    assert resource.encode() not in await _redis_contents(client.server.app[REDIS])
    # the publisher's own DELETE, as OBS sends it (bearer key included), on the other worker
    r = await client_b.delete(pub.location, headers={"Authorization": f"Bearer {stream_key}"})
    assert r.status == 200, await r.text()
    ended = (await ws.wait_for("stream.ended", timeout=10))["data"]
    assert ended["reason"] == "publisher_left" and ended["session"] == public
    await asyncio.wait_for(v.ended.wait(), 10)
    await _error(await client.delete(pub.location), 404, "session_not_found")
    state = await (await client.get(f"/api/broadcasts/{bid}/stream")).json()
    assert state["state"] == "offline"
    await v.close()
    await pub.close()


# -- finding 6: offers that never connect ---------------------------------------------------


@pytest.mark.app_settings(media_pending_per_address=2)
async def test_unfinished_offers_are_limited_per_address(client, bid, stream_key):
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    media = client.server.app[MEDIA]
    held = []
    for _ in range(2):
        r = await client.post(f"/whep/{bid}", data=_offer_to("127.0.0.1"), headers=SDP)
        assert r.status == 201, await r.text()
        held.append(r.headers["Location"])
    for _ in range(5):
        r = await client.post(
            f"/whep/{bid}", data=_offer_to("127.0.0.1"), headers={**SDP, "Origin": EVIL}
        )
        err = await _error(r, 429, "too_many_pending")
        assert 1 <= int(r.headers["Retry-After"]) <= 2 and 1 <= err["retry_after"] <= 2
    assert media.unfinished("127.0.0.1") == 2 and media.stats()["pending_refused"] == 5
    # a real viewer on another address gets in and plays; once connected it counts no more
    other = FromAddress(client, "127.0.0.2")
    v = Viewer(other, bid)  # type: ignore[arg-type]
    await v.play()
    await v.wait_frames(10, timeout=15)
    await wait_until(lambda: media.unfinished("127.0.0.2") == 0, 15)
    # a DELETE gives the held place back at once
    assert (await client.delete(held[0])).status == 200
    r = await client.post(f"/whep/{bid}", data=_offer_to("127.0.0.1"), headers=SDP)
    assert r.status == 201, await r.text()
    await v.close()
    await other.close()
    assert await pub.delete() == 200
    await pub.close()


@pytest.mark.app_settings(trust_proxy=True, media_pending_per_address=1)
async def test_the_limit_counts_the_forwarded_address_and_ipv6_by_64(client, bid, stream_key):
    from jobcast.stream.service import address_key

    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:10.1.2.3") == "10.1.2.3"
    pub = Publisher(client, bid, stream_key)
    await pub.publish()

    async def offer(forwarded_for: str) -> Any:
        headers = {**SDP, "X-Forwarded-For": forwarded_for}
        return await client.post(f"/whep/{bid}", data=_offer_to("127.0.0.1"), headers=headers)

    assert (await offer("2001:db8:1:2::1")).status == 201
    await _error(await offer("2001:db8:1:2:ffff::9"), 429, "too_many_pending")
    assert (await offer("2001:db8:1:3::1")).status == 201
    assert (await offer("10.1.2.3")).status == 201
    await _error(await offer("10.1.2.3"), 429, "too_many_pending")
    assert await pub.delete() == 200
    await pub.close()


@pytest.mark.app_settings(media_max_viewers=1, media_connect_timeout=2.0)
async def test_an_offer_that_never_connects_frees_its_slot_at_the_deadline(client, bid, stream_key):
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    media = client.server.app[MEDIA]
    shut_out = loopback_peer()  # its offer made first: nothing slow between the two POSTs
    shut_out.addTransceiver("video", direction="recvonly")
    real_offer = await make_offer(shut_out)
    r = await client.post(f"/whep/{bid}", data=_offer_to("127.0.0.1"), headers=SDP)
    assert r.status == 201, await r.text()
    r = await client.post(f"/whep/{bid}", data=real_offer, headers=SDP)
    await _error(r, 503, "viewer_limit")
    await shut_out.close()
    await wait_until(lambda: len(media.egress) == 0, 15)
    assert media.unfinished() == 0 and media.stats()["failed"] == 1
    v = Viewer(client, bid)
    await v.play()
    await v.wait_frames(10, timeout=15)
    await v.close()
    assert await pub.delete() == 200
    await pub.close()


@pytest.mark.app_settings(media_max_viewers=1, media_connect_timeout=300.0)
async def test_an_offer_whose_connection_fails_frees_its_slot_at_once(client, bid, stream_key):
    # a deadline longer than the test: only the failure itself can free the slot
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    media = client.server.app[MEDIA]
    # ICE fails: no candidate of the offer can pair with the server's
    r = await client.post(f"/whep/{bid}", data=_offer_to("::1"), headers=SDP)
    assert r.status == 201, await r.text()
    await wait_until(lambda: len(media.egress) == 0, 15)
    # ICE succeeds, DTLS fails: the peer's certificate is not the one its offer announced
    from aiortc import RTCSessionDescription

    liar = loopback_peer()
    liar.addTransceiver("video", direction="recvonly")
    offer = await make_offer(liar)
    lines = [
        f"a=fingerprint:sha-256 {_FP}" if line.startswith("a=fingerprint:") else line
        for line in offer.split("\r\n")
    ]
    r = await client.post(f"/whep/{bid}", data="\r\n".join(lines), headers=SDP)
    assert r.status == 201, await r.text()
    # the slot is held until the liar answers the DTLS handshake, which needs the answer
    shut_out = Viewer(client, bid)
    await _error(await shut_out.play(expect=503), 503, "viewer_limit")
    await shut_out.close()
    await liar.setRemoteDescription(RTCSessionDescription(await r.text(), "answer"))
    await wait_until(lambda: len(media.egress) == 0, 15)
    assert media.unfinished() == 0 and media.stats()["failed"] == 2
    v = Viewer(client, bid)
    await v.play()
    await v.wait_frames(10, timeout=15)
    await v.close()
    await liar.close()
    assert await pub.delete() == 200
    await pub.close()


@pytest.mark.app_settings(media_egress_processes=1, media_pending_per_address=1)
async def test_egress_processes_report_connected_and_failed_viewers(client, bid, stream_key):
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    media = client.server.app[MEDIA]
    viewers = []
    for _ in range(2):  # one address, one after the other: a connected viewer is not pending
        v = Viewer(client, bid)
        await v.play()
        await v.wait_frames(5, timeout=20)
        await wait_until(lambda: media.unfinished() == 0, 15)
        viewers.append(v)
    r = await client.post(f"/whep/{bid}", data=_offer_to("::1"), headers=SDP)
    assert r.status == 201, await r.text()
    await wait_until(lambda: media.unfinished() == 0, 15)  # ICE failed in the egress process
    r = await client.post(f"/whep/{bid}", data=_offer_to("127.0.0.1"), headers=SDP)
    assert r.status == 201, await r.text()
    await _error(
        await client.post(f"/whep/{bid}", data=_offer_to("127.0.0.1"), headers=SDP),
        429,
        "too_many_pending",
    )
    for v in viewers:
        await v.close()
    assert await pub.delete() == 200
    await pub.close()
