"""HLS from the publisher's own frames (stream/hls.py), end to end with a real aiortc
publisher on 127.0.0.1: the files, what a player reads in them, and the headers a cache
obeys."""

from __future__ import annotations

import pytest
from jobcast.web.api.media import MEDIA

from tests.helpers import connect
from tests.media_peers import Publisher
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.media,
    pytest.mark.timeout(60),
    pytest.mark.app_settings(media_ice_addresses="127.0.0.1", media_publisher_grace=3.0),
]


async def test_smoke(client, bid, stream_key):
    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    await ws.wait_for("stream.live", timeout=10)
    stream = client.server.app[MEDIA].streams[bid]
    await wait_until(lambda: stream.hls.segments >= 3, 20, "three segments")
    r = await client.get(f"/hls/{bid}/live.m3u8")
    print(r.headers, await r.text())
    assert await pub.delete() == 200
    await ws.wait_for("stream.ended", timeout=10)
    r = await client.get(f"/hls/{bid}/index.m3u8")
    print(await r.text())
    await pub.close()
