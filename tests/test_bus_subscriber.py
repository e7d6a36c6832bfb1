"""Each process holds one Redis pub/sub connection (web/realtime/bus.py), and everything that
listens goes through it: broadcast events, bans and time-outs, ended sessions, and the media
requests between processes. The count is read from the real redis-server (`CLIENT LIST TYPE
pubsub`), and all of it still arrives after Redis is killed and restarted."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from jobcast.core import keys
from jobcast.stream.control import inbox
from jobcast.web.api.media import MEDIA
from jobcast.web.appkeys import BUS, METRICS
from jobcast.web.runtime.metrics import Metrics
from redis.asyncio import Redis

from tests.chat_helpers import Viewers, ok
from tests.helpers import Host, Viewer, connect, login
from tests.media_peers import Publisher
from tests.media_peers import Viewer as WhepViewer
from tests.redisproc import RedisProcess
from tests.waiting import wait_until

MEDIA_SETTINGS = {"media_ice_addresses": "127.0.0.1", "media_publisher_grace": 30.0}


async def pubsub_connections(url: str) -> list[dict[str, Any]]:
    r = Redis.from_url(url)
    try:
        return await r.client_list(_type="pubsub")
    finally:
        await r.aclose()


async def restart(redis: RedisProcess, *clients: TestClient) -> None:
    """SIGKILL Redis, start it again, and wait until every app's bus holds its channels again."""
    before = [(c.server.app[BUS].subscribed(), reconnects(c.server.app[METRICS])) for c in clients]
    redis.kill()
    redis.start()
    for c, (held, n) in zip(clients, before, strict=True):
        bus, metrics = c.server.app[BUS], c.server.app[METRICS]
        await wait_until(
            lambda bus=bus, metrics=metrics, held=held, n=n: (
                reconnects(metrics) > n and bus.subscribed() == held
            ),
            timeout=15,
            what="the bus reconnected and re-subscribed",
        )


def reconnects(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("jobcast_redis_reconnects_total") or 0.0


async def session(client: TestClient, user: str = "host1") -> aiohttp.ClientSession:
    """A second login of an existing account (its own session and cookie jar)."""
    base = str(client.make_url("")).rstrip("/")
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": base})
    r = await s.post(f"{base}/api/login", json={"username": user, "password": "s3cret-pass"})
    assert r.status == 200, await r.text()
    s.headers["X-CSRF-Token"] = (await r.json())["csrf"]
    return s


async def host_socket(s: aiohttp.ClientSession, client: TestClient, bid: str) -> Any:
    ws = await s.ws_connect(client.make_url(f"/ws/host/b/{bid}"))
    async with asyncio.timeout(10):
        while True:
            msg = await ws.receive()
            assert msg.type == WSMsgType.TEXT, (msg.type, msg.data)
            if any(e["type"] == "synced" for e in orjson.loads(msg.data)):
                return ws


async def logout_closes(s: aiohttp.ClientSession, client: TestClient, ws: Any) -> None:
    r = await s.post(client.make_url("/api/logout"))
    assert r.status == 200
    async with asyncio.timeout(10):
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.CLOSE:
                assert (msg.data, msg.extra) == (4003, "session_revoked")
                return
            assert msg.type == WSMsgType.TEXT, (msg.type, msg.data)


async def ban(host: Host, bid: str, v: Viewer) -> None:
    """Ban `v` by a message it posted; its socket is told `banned` and closed."""
    msg = await ok(v, "chat.send", {"text": "广告"})
    r = await host.post(
        f"/api/broadcasts/{bid}/chat/mod.ban", {"message_id": msg["id"], "ip": False}
    )
    assert r.status == 200, await r.text()
    await v.wait_for(lambda e: e["type"] == "error" and e["data"]["code"] == "banned")
    async with asyncio.timeout(10):
        await v.closed.wait()
    assert v.ws.close_code == 4003


async def test_one_connection_carries_events_bans_and_revocations_across_a_restart(
    app_factory, own_redis
):
    client = await app_factory(own_redis.url)
    host = await login(client)
    bid = await host.create_broadcast()
    viewers = Viewers()
    sessions = [await session(client), await session(client)]
    try:
        watching = [await viewers.open(client, bid) for _ in range(3)]
        console = await connect(client, bid, host=True)
        consoles = [await host_socket(s, client, bid) for s in sessions]

        await ban(host, bid, watching[0])
        await logout_closes(sessions[0], client, consoles[0])
        conns = await pubsub_connections(own_redis.url)
        assert len(conns) == 1, conns
        # this broadcast's public and host channels, the kicks, the private events, the media inbox
        assert int(conns[0]["sub"]) == 5, conns

        await restart(own_redis, client)

        await ban(host, bid, watching[1])
        await logout_closes(sessions[1], client, consoles[1])
        r = await host.patch(f"/api/broadcasts/{bid}", {"title": "after the restart"})
        assert r.status == 200
        for v in (watching[2], console):
            await v.wait_for(
                lambda e: (
                    e["type"] == "broadcast.updated" and e["data"]["title"] == "after the restart"
                )
            )
        assert len(await pubsub_connections(own_redis.url)) == 1
    finally:
        await viewers.close()
        for s in sessions:
            await s.close()


@pytest.mark.media
@pytest.mark.timeout(90)
async def test_media_requests_between_processes_share_the_connection_and_survive_a_restart(
    app_factory, own_redis
):
    a = await app_factory(own_redis.url, **MEDIA_SETTINGS)
    b = await app_factory(own_redis.url, **MEDIA_SETTINGS)
    host = await login(a)
    bid = await host.create_broadcast()
    r = await host.post(f"/api/broadcasts/{bid}/stream-key")
    key = (await r.json())["stream_key"]
    viewers = Viewers()
    pub = Publisher(a, bid, key)
    players: list[WhepViewer] = []
    try:
        watching = [await viewers.open(c, bid) for c in (a, b, b)]
        await pub.publish()
        await watching[1].wait_for("stream.live", timeout=10)
        await ban(host, bid, watching[2])  # banned on b, by a request to a

        async def play_through_b() -> None:
            v = WhepViewer(b, bid)  # the POST lands on b, the media is on a
            players.append(v)
            await v.play()
            await v.wait_frames(5, timeout=15)
            assert a.server.app[MEDIA].stats()["viewers"] == len(players)

        await play_through_b()
        conns = await pubsub_connections(own_redis.url)
        assert len(conns) == 2, conns  # one for each app, whatever each listens to
        held = sorted(c.server.app[BUS].subscribed() for c in (a, b))
        assert all(
            inbox(c.server.app[MEDIA].config.process) in c.server.app[BUS].subscribed()
            for c in (a, b)
        ), held
        assert sorted(int(c["sub"]) for c in conns) == sorted(len(h) for h in held)

        await restart(own_redis, a, b)

        await play_through_b()
        assert await players[0].delete() == 200  # a DELETE on b, forwarded to a
        assert a.server.app[MEDIA].stats()["viewers"] == 1
        await ban(host, bid, await viewers.open(b, bid))
        assert keys.CHAT_KICK in b.server.app[BUS].subscribed()
        assert len(await pubsub_connections(own_redis.url)) == 2
    finally:
        for v in players:
            await v.close()
        await pub.close()
        await viewers.close()
