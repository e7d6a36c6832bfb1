"""WHIP and WHEP against an outside attacker, with real aiortc peers over real HTTP.

Ending the stream takes the publisher's secret resource URL (the 201's Location), never the
public session id that viewers, snapshots and `stream.live` carry.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.helpers import connect, login
from tests.media_peers import Publisher, Viewer
from web.appkeys import REDIS

pytestmark = [pytest.mark.media, pytest.mark.timeout(90)]

MEDIA_SETTINGS = {"media_ice_addresses": "127.0.0.1", "media_publisher_grace": 3.0}
SDP = {"Content-Type": "application/sdp"}
EVIL = "https://evil.example"


async def _broadcast_with_key(client: TestClient) -> tuple[str, str]:
    host = await login(client)
    bid = await host.create_broadcast()
    r = await host.post(f"/api/broadcasts/{bid}/stream-key")
    assert r.status == 201
    return bid, (await r.json())["stream_key"]


async def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status == status, await r.text()
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    body = await r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    return body["error"]


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


async def test_only_the_publishers_location_ends_the_stream(app_factory, redis_url):
    a = await app_factory(redis_url, **MEDIA_SETTINGS)
    b = await app_factory(redis_url, **MEDIA_SETTINGS)  # another worker on the same Redis
    bid, key = await _broadcast_with_key(a)
    ws = await connect(a, bid)
    pub = Publisher(a, bid, key)
    await pub.publish()
    live = (await ws.wait_for("stream.live", timeout=10))["data"]
    public = live["session"]
    assert pub.location is not None
    resource = pub.location.rsplit("/", 1)[1]
    # what viewers see names the public id; the resource id is somewhere else entirely
    state = await (await a.get(f"/api/broadcasts/{bid}/stream")).json()
    late = await connect(b, bid)
    snap = late.of_type("snapshot")[0]["data"]["stream"]
    assert state["state"] == snap["state"] == "live"
    assert state["session"] == snap["session"] == public == pub.session
    assert resource != public and public not in pub.location and len(resource) >= 43
    assert resource not in json.dumps([ws.events, late.events, state])
    v = Viewer(a, bid)
    await v.play()
    assert v.answer is not None and v.location is not None
    assert resource not in v.answer + v.location
    await v.wait_frames(5, timeout=15)
    # nothing a viewer or another site holds ends the stream, on either worker
    async with aiohttp.ClientSession() as anon:
        for c in (a, b):
            for path, headers in (
                (f"/whip/{bid}/{public}", {"Origin": EVIL}),
                (f"/whip/{bid}/{public}", {"Origin": EVIL, "Authorization": "Bearer jc_guess"}),
                (f"/whip/{bid}/{secrets.token_urlsafe(32)}", {"Origin": EVIL}),
                (f"/whip/{bid}/{v.location.rsplit('/', 1)[1]}", {}),
            ):
                r = await anon.delete(c.make_url(path), headers=headers)
                await _error(r, 404, "session_not_found")
        # the host's own cookies are no credential for it either
        await _error(await a.delete(f"/whip/{bid}/{public}"), 404, "session_not_found")
    n = len(v.frames)
    await v.wait_frames(n + 15, timeout=15)
    assert not ws.of_type("stream.ended") and not v.ended.is_set()
    state = await (await b.get(f"/api/broadcasts/{bid}/stream")).json()
    assert state["state"] == "live" and state["session"] == public
    # the secret is kept only as a hash
    assert resource.encode() not in await _redis_contents(a.server.app[REDIS])
    # the publisher's own DELETE, as OBS sends it (bearer key included), on the other worker
    r = await b.delete(pub.location, headers={"Authorization": f"Bearer {key}"})
    assert r.status == 200, await r.text()
    ended = (await ws.wait_for("stream.ended", timeout=10))["data"]
    assert ended["reason"] == "publisher_left" and ended["session"] == public
    await asyncio.wait_for(v.ended.wait(), 10)
    await _error(await a.delete(pub.location), 404, "session_not_found")
    state = await (await a.get(f"/api/broadcasts/{bid}/stream")).json()
    assert state["state"] == "offline"
    await v.close()
    await pub.close()
