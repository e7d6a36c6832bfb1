"""The hub's heartbeat: quiet peers get pings, a peer that answers stays, one that never
answers is cut off; the server answers the peer's own pings."""

from __future__ import annotations

import asyncio

from jobcast.web.appkeys import EVENT_LOG, HUB

from tests.helpers import connect, login
from tests.rawws import open_raw_viewer, read_to_eof


async def test_silent_peer_is_cut_off_and_answering_peer_stays(app_factory, redis_url):
    a = await app_factory(redis_url, ws_heartbeat=0.2)
    host = await login(a)
    bid = await host.create_broadcast()
    hub = a.server.app[HUB]
    answering = await connect(a, bid)  # aiohttp's client answers pings by itself
    silent = open_raw_viewer(a.server.port, f"/ws/b/{bid}")
    async with asyncio.timeout(5):
        while len(hub.sockets.get(bid, ())) < 2:
            await asyncio.sleep(0.02)
    async with asyncio.timeout(10):
        received = await read_to_eof(silent)  # ends when the server cuts it off
    silent.close()
    assert b"\x89\x00" in received  # it was pinged before being cut off
    assert len(hub.sockets[bid]) == 1
    await asyncio.sleep(1.0)  # five heartbeats
    assert not answering.closed.is_set()
    seq = await a.server.app[EVENT_LOG].publish(bid, "test.tick", {"i": 1})
    ev = await answering.wait_for("test.tick")
    assert ev["seq"] == seq


async def test_server_answers_the_peers_ping(app_factory, redis_url):
    a = await app_factory(redis_url)
    host = await login(a)
    bid = await host.create_broadcast()
    ws = await a.ws_connect(f"/ws/b/{bid}", autoping=False)
    await ws.ping(b"hi")
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type.name == "PONG":
                assert msg.data == b"hi"
                break
    await ws.close()
