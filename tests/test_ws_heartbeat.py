"""The hub's heartbeat: quiet peers get pings, a peer that answers stays, one that never
answers is cut off; the server answers the peer's own pings."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient
from jobcast.web.appkeys import EVENT_LOG, HUB

from tests.rawws import open_raw_viewer, read_to_eof
from tests.waiting import wait_until


@pytest.mark.app_settings(ws_heartbeat=0.2)
async def test_silent_peer_is_cut_off_and_answering_peer_stays(client, bid):
    hub = client.server.app[HUB]
    answering = await _AnsweringPeer.open(client, bid)
    silent = open_raw_viewer(client.server.port, f"/ws/b/{bid}")
    await wait_until(lambda: len(hub.sockets.get(bid, ())) == 2, 5, "both peers to join")
    async with asyncio.timeout(10):
        received = await read_to_eof(silent)  # ends when the server cuts it off
    silent.close()
    assert b"\x89\x00" in received  # it was pinged before being cut off
    assert len(hub.sockets[bid]) == 1
    seen = answering.pings
    await wait_until(lambda: answering.pings >= seen + 5, 10, "five more heartbeats answered")
    assert not answering.ws.closed
    seq = await client.server.app[EVENT_LOG].publish(bid, "test.tick", {"i": 1})
    await wait_until(lambda: answering.of_type("test.tick"), 5, "the tick on the answering peer")
    assert answering.of_type("test.tick")[0]["seq"] == seq
    await answering.close()


class _AnsweringPeer:
    """A viewer that answers the server's pings by hand (autoping off) and counts them, so
    the test sees each heartbeat instead of sleeping through them."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pings = 0
        self.events: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._pump())

    @classmethod
    async def open(cls, client: TestClient, bid: str) -> _AnsweringPeer:
        peer = cls(await client.ws_connect(f"/ws/b/{bid}", autoping=False))
        await wait_until(lambda: peer.of_type("synced"), 5, "the answering peer's synced")
        return peer

    async def _pump(self) -> None:
        async for msg in self.ws:  # ends at the close
            if msg.type == WSMsgType.PING:
                await self.ws.pong(msg.data)
                self.pings += 1
            elif msg.type == WSMsgType.TEXT:
                frame = orjson.loads(msg.data)
                self.events.extend(frame if isinstance(frame, list) else [frame])

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()


async def test_server_answers_the_peers_ping(client, bid):
    ws = await client.ws_connect(f"/ws/b/{bid}", autoping=False)
    await ws.ping(b"hi")
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type.name == "PONG":
                assert msg.data == b"hi"
                break
    await ws.close()
