"""Redis SIGKILLed mid-stream: the API answers 503, the bus reconnects and re-subscribes, and
every connected viewer ends up holding every acknowledged event exactly once."""

from __future__ import annotations

import asyncio

from jobcast.web.appkeys import BUS, EVENT_LOG, METRICS
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.helpers import connect, login


async def test_redis_killed_and_restarted_mid_stream(app_factory, own_redis):
    a = await app_factory(own_redis.url)
    b = await app_factory(own_redis.url)
    host = await login(a)
    bid = await host.create_broadcast()
    log = a.server.app[EVENT_LOG]
    viewers = [await connect(a, bid), await connect(b, bid), await connect(b, bid)]

    acked: list[int] = []
    failed = 0
    stop = asyncio.Event()

    async def publisher() -> None:
        nonlocal failed
        i = 0
        while not stop.is_set():
            try:
                await log.publish(bid, "test.tick", {"i": i})
                acked.append(i)
            except (RedisConnectionError, ConnectionError, OSError):
                failed += 1
            i += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(publisher())
    await asyncio.sleep(0.5)
    own_redis.kill()
    await asyncio.sleep(0.3)
    # While Redis is down the API answers 503 with the JSON error shape.
    r = await host.patch(f"/api/broadcasts/{bid}", {"title": "x"})
    assert r.status == 503
    body = await r.json()
    assert body["error"]["code"] == "unavailable"
    assert r.headers["Retry-After"]
    r = await a.get(f"/api/broadcasts/{bid}")
    assert r.status == 503
    await asyncio.sleep(0.5)
    own_redis.start()
    await asyncio.sleep(1.5)
    stop.set()
    await task
    assert failed > 0 and len(acked) > 50

    for v in viewers:
        got = await v.wait_count(
            lambda e: e["type"] == "test.tick" and e["data"]["i"] == acked[-1], 1, timeout=15
        )
        assert got
        ticks = [e["data"]["i"] for e in v.of_type("test.tick")]
        assert len(ticks) == len(set(ticks)), "an event was delivered twice"
        missing = set(acked) - set(ticks)
        assert not missing, f"viewer lost {len(missing)} acknowledged events"
        assert ticks == sorted(ticks), "events out of order"
    assert a.server.app[METRICS].redis_reconnects._value.get() >= 1
    assert b.server.app[BUS].subscribed()  # re-subscribed after the restart


async def test_viewer_connecting_while_redis_is_down_gets_an_error_then_recovers(
    app_factory, own_redis
):
    a = await app_factory(own_redis.url)
    host = await login(a)
    bid = await host.create_broadcast()
    own_redis.kill()
    r = await a.get(f"/ws/b/{bid}")
    assert r.status == 503
    assert (await r.json())["error"]["code"] == "unavailable"
    r = await a.get("/healthz")
    assert r.status == 503
    own_redis.start()
    v = await connect(a, bid)
    assert v.of_type("snapshot")
