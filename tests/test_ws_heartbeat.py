"""The hub's heartbeat: quiet peers get pings, a peer that answers stays, one that never
answers is cut off; the server answers the peer's own pings."""

from __future__ import annotations

import asyncio
import socket

from tests.helpers import connect, login
from web.appkeys import EVENT_LOG, HUB


def _raw_viewer(port: int, bid: str) -> socket.socket:
    """A client that completes the handshake and then never answers anything."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        (
            f"GET /ws/b/{bid} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    s.setblocking(False)
    return s


async def _read_until_closed(s: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    got = b""
    while True:
        try:
            chunk = await loop.sock_recv(s, 65536)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


async def test_silent_peer_is_cut_off_and_answering_peer_stays(app_factory, redis_url):
    a = await app_factory(redis_url, ws_heartbeat=0.2)
    host = await login(a)
    bid = await host.create_broadcast()
    hub = a.server.app[HUB]
    answering = await connect(a, bid)  # aiohttp's client answers pings by itself
    silent = _raw_viewer(a.server.port, bid)
    async with asyncio.timeout(5):
        while len(hub.sockets.get(bid, ())) < 2:
            await asyncio.sleep(0.02)
    async with asyncio.timeout(10):
        received = await _read_until_closed(silent)  # ends when the server cuts it off
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
