"""Redis SIGKILLed mid-stream: the API answers 503, the bus reconnects and re-subscribes, and
every connected viewer ends up holding every acknowledged event exactly once."""

from __future__ import annotations

import asyncio

from jobcast.web.appkeys import BUS, EVENT_LOG, METRICS
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.helpers import connect
from tests.waiting import wait_until


async def test_redis_killed_and_restarted_mid_stream(own_redis, client, client_b, host, bid):
    log = client.server.app[EVENT_LOG]
    viewers = [
        await connect(client, bid),
        await connect(client_b, bid),
        await connect(client_b, bid),
    ]

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
            await asyncio.sleep(0.01)  # the publisher's pace (about 100/s); nothing waits on it

    task = asyncio.create_task(publisher())
    await wait_until(lambda: len(acked) >= 20, what="events published before the kill")
    own_redis.kill()
    await wait_until(lambda: failed > 0, what="a publish refused while Redis is down")
    # While Redis is down the API answers 503 with the JSON error shape.
    r = await host.patch(f"/api/broadcasts/{bid}", {"title": "x"})
    assert r.status == 503
    body = await r.json()
    assert body["error"]["code"] == "unavailable"
    assert r.headers["Retry-After"]
    r = await client.get(f"/api/broadcasts/{bid}")
    assert r.status == 503
    down_failures = failed
    await wait_until(lambda: failed >= down_failures + 10, what="ten more refused publishes")
    own_redis.start()
    restarted = len(acked)
    await wait_until(lambda: len(acked) >= restarted + 50, 15, "50 events after the restart")
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
    metrics = client.server.app[METRICS].registry
    assert metrics.get_sample_value("jobcast_redis_reconnects_total") >= 1
    assert client_b.server.app[BUS].subscribed()  # re-subscribed after the restart


async def test_viewer_connecting_while_redis_is_down_gets_an_error_then_recovers(
    own_redis, client, bid
):
    own_redis.kill()
    r = await client.get(f"/ws/b/{bid}")
    assert r.status == 503
    assert (await r.json())["error"]["code"] == "unavailable"
    r = await client.get("/healthz")
    assert r.status == 503
    own_redis.start()
    # The bus reconnects on its backoff (up to 5 s apart); a viewer's client retries its 503s
    # until then. Connect once the bus is back, which is when a retry would succeed.
    async with asyncio.timeout(15):
        await client.server.app[BUS].connected.wait()
    v = await connect(client, bid)
    assert v.of_type("snapshot")
