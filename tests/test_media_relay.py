"""The broadcast itself, end to end with real aiortc peers on 127.0.0.1: a publisher over WHIP,
viewers over WHEP decoding the frames the relay forwarded without re-encoding them."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.helpers import connect, login
from tests.media_peers import Publisher, Viewer, candidate_addresses
from web.appkeys import MEDIA

pytestmark = [pytest.mark.media, pytest.mark.timeout(60)]

MEDIA_SETTINGS = {"media_ice_addresses": "127.0.0.1", "media_publisher_grace": 3.0}


async def _live(client, **kw):
    host = await login(client)
    bid = await host.create_broadcast()
    r = await host.post(f"/api/broadcasts/{bid}/stream-key")
    assert r.status == 201
    key = (await r.json())["stream_key"]
    return host, bid, key


async def test_publish_and_view(app_factory, redis_url):
    client = await app_factory(redis_url, **MEDIA_SETTINGS)
    _host, bid, key = await _live(client)
    ws = await connect(client, bid)
    pub = Publisher(client, bid, key)
    await pub.publish()
    assert candidate_addresses(pub.answer) == {"127.0.0.1"}
    assert candidate_addresses(pub.offer) == {"127.0.0.1"}
    live = await ws.wait_for("stream.live", timeout=10)
    assert live["data"]["codecs"]["video"] == "H264"
    viewers = [Viewer(client, bid) for _ in range(3)]
    for v in viewers:
        await v.play()
        assert candidate_addresses(v.answer) == {"127.0.0.1"}
    for v in viewers:
        await v.wait_frames(20, timeout=15)
    for v in viewers:
        stamps = [f[1] for f in v.frames]
        assert all(b > a for a, b in itertools.pairwise(stamps))
        assert v.frames[0][2:] == (320, 240)
    print(
        {
            "first": [v.first_picture_after_join() for v in viewers],
            "fps": [v.fps() for v in viewers],
        }
    )
    assert await pub.delete() == 200
    ended = await ws.wait_for("stream.ended", timeout=10)
    assert ended["data"]["reason"] == "publisher_left"
    for v in viewers:
        await asyncio.wait_for(v.ended.wait(), 10)
        await v.close()
    await pub.close()
    assert client.server.app[MEDIA].stats()["viewers"] == 0
