"""Many sockets joining at once (a reconnect storm): they share snapshots and replays, and each
still gets every event after its starting point exactly once; the direct-write path and the
queued path keep frames in order."""

from __future__ import annotations

import asyncio
from typing import Any

from jobcast.core import keys
from jobcast.core.events import parse_seq
from jobcast.web.appkeys import EVENT_LOG, HUB, METRICS, REDIS

from tests.helpers import Viewer, connect
from tests.waiting import wait_until

N = 30


async def _publish_until(log: Any, bid: str, stop: asyncio.Event, i: int = 0) -> int:
    while not stop.is_set():
        await log.publish(bid, "test.tick", {"i": i})
        i += 1
        await asyncio.sleep(0.002)  # the publisher's pace (500/s); nothing waits on it
    return i


async def _stream_after(app: Any, bid: str, seq: str) -> list[str]:
    entries = await app[REDIS].xrange(keys.events(bid), min="(" + seq, max="+")
    return [e[0].decode() for e in entries]


def _ticks_after(v: Viewer, start: str) -> list[str]:
    after = parse_seq(start)
    ticks = [e["seq"] for e in v.of_type("test.tick")]
    assert all(parse_seq(s) > after for s in ticks), "an event at or before the start arrived"
    return ticks


async def _held_until_all_joined(hub: Any, bid: str, n: int, gate: asyncio.Event) -> None:
    """A snapshot or replay held back (as under load) until `n` sockets are in the room, so
    they all ask while it is under way; the test then lets it go."""
    await wait_until(lambda: len(hub.sockets.get(bid, ())) >= n, what=f"{n} sockets joining")
    gate.set()


async def _a_live_tick_each(viewers: list[Viewer]) -> None:
    """Each socket, synced, also gets an event written to it live."""
    for v in viewers:
        await v.wait_count("test.tick", len(v.of_type("test.tick")) + 1)


async def test_joining_together_shares_one_snapshot_and_misses_nothing(client, bid):
    app = client.server.app
    hub = app[HUB]
    real_snapshot = hub.snapshot
    calls: list[str] = []
    gate = asyncio.Event()

    async def held_snapshot(b: str, is_host: bool) -> Any:
        calls.append(b)
        await gate.wait()
        return await real_snapshot(b, is_host)

    hub.snapshot = held_snapshot
    stop = asyncio.Event()
    publisher = asyncio.create_task(_publish_until(app[EVENT_LOG], bid, stop))
    release = asyncio.create_task(_held_until_all_joined(hub, bid, N, gate))
    viewers = await asyncio.gather(*(connect(client, bid) for _ in range(N)))
    await release
    await _a_live_tick_each(viewers)
    stop.set()
    total = await publisher
    last = await app[EVENT_LOG].publish(bid, "test.tick", {"i": total})

    assert 1 <= len(calls) < N
    assert app[METRICS].registry.get_sample_value("jobcast_snapshots_total") == N
    for v in viewers:
        await v.wait_for(lambda e: e.get("seq") == last)
        start = v.of_type("snapshot")[0]["seq"]
        assert _ticks_after(v, start) == await _stream_after(app, bid, start)


async def test_reconnecting_together_shares_one_replay_and_misses_nothing(client, bid):
    app = client.server.app
    log = app[EVENT_LOG]
    since = await log.publish(bid, "test.tick", {"i": -1})
    for i in range(5):
        await log.publish(bid, "test.tick", {"i": i})
    real_replay = log.replay
    calls: list[Any] = []
    gate = asyncio.Event()

    async def held_replay(*args: Any, **kw: Any) -> Any:
        calls.append(args)
        await gate.wait()
        return await real_replay(*args, **kw)

    log.replay = held_replay  # type: ignore[method-assign]
    stop = asyncio.Event()
    publisher = asyncio.create_task(_publish_until(log, bid, stop, 5))
    release = asyncio.create_task(_held_until_all_joined(app[HUB], bid, N, gate))
    viewers = await asyncio.gather(*(connect(client, bid, since=since) for _ in range(N)))
    await release
    await _a_live_tick_each(viewers)
    stop.set()
    total = await publisher
    last = await log.publish(bid, "test.tick", {"i": total})

    assert 1 <= len(calls) < N
    expected = await _stream_after(app, bid, since)
    for v in viewers:
        assert v.of_type("synced")[0]["data"]["mode"] == "replay"
        await v.wait_for(lambda e: e.get("seq") == last)
        assert _ticks_after(v, since) == expected
        assert [e["data"]["i"] for e in v.of_type("test.tick")] == list(range(total + 1))


async def test_a_failing_snapshot_fails_every_socket_waiting_for_it(client, bid):
    from jobcast.core.errors import Unavailable

    app = client.server.app
    hub = app[HUB]
    real_snapshot = hub.snapshot
    gate = asyncio.Event()

    async def failing_snapshot(b: str, is_host: bool) -> Any:
        await gate.wait()
        raise Unavailable("snapshot failed", code="boom")

    hub.snapshot = failing_snapshot
    release = asyncio.create_task(_held_until_all_joined(hub, bid, 5, gate))
    results = await asyncio.gather(
        *(client.ws_connect(f"/ws/b/{bid}") for _ in range(5)), return_exceptions=True
    )
    await release
    for ws in results:
        assert not isinstance(ws, BaseException)
        msgs = [await ws.receive() for _ in range(3)]
        texts = [m.data for m in msgs if isinstance(m.data, str)]
        assert any('"code":"unavailable"' in t or '"code":"boom"' in t for t in texts), texts
        await ws.close()
    hub.snapshot = real_snapshot
    v = await connect(client, bid)  # nothing is left stuck for the next one
    assert v.of_type("snapshot")
    assert not hub._next and not hub._running


async def test_frames_stay_in_order_when_a_socket_goes_from_queued_to_direct(client, bid):
    """Events queued while a socket syncs, then live ones written straight away, arrive in
    publish order with none twice."""
    app = client.server.app
    log = app[EVENT_LOG]
    stop = asyncio.Event()
    publisher = asyncio.create_task(_publish_until(log, bid, stop))
    viewers = [await connect(client, bid) for _ in range(5)]
    await _a_live_tick_each(viewers)
    stop.set()
    total = await publisher
    last = await log.publish(bid, "test.tick", {"i": total})
    for v in viewers:
        await v.wait_for(lambda e: e.get("seq") == last)
        ticks = [e["data"]["i"] for e in v.of_type("test.tick")]
        assert ticks == list(range(ticks[0], total + 1))


def _publish_blocking(redis_url: str, bid: str, events: list[tuple[str, int]]) -> None:
    """Publish with a blocking client, so the server's loop (this test's loop) reads nothing
    until the test awaits again: the events reach it as one burst."""
    import redis
    from jobcast.core.events import PUBLISH_LUA, encode_body, publish_keys

    r = redis.Redis.from_url(redis_url)
    for audience, i in events:
        r.eval(
            PUBLISH_LUA,
            4,
            *publish_keys(bid, audience),
            2000,
            audience,
            encode_body("test.tick", {"i": i, "a": audience}),
        )
    r.close()


async def _frames_until(ws: Any, n: int) -> list[list[dict[str, Any]]]:
    import orjson

    frames: list[list[dict[str, Any]]] = []
    async with asyncio.timeout(10):
        while sum(1 for f in frames for e in f if e["type"] == "test.tick") < n:
            msg = await ws.receive()
            frames.append(orjson.loads(msg.data))
    return frames


async def test_a_burst_that_piled_up_goes_out_as_few_frames_in_order(redis_url, client, bid):
    viewer = await client.ws_connect(f"/ws/b/{bid}")
    while '"synced"' not in (await viewer.receive()).data:  # hello, snapshot, synced
        pass
    staff = await connect(client, bid, host=True)
    _publish_blocking(redis_url, bid, [("p", i) for i in range(20)])
    frames = await _frames_until(viewer, 20)
    ticks = [e["data"]["i"] for f in frames for e in f if e["type"] == "test.tick"]
    assert ticks == list(range(20))
    assert len([f for f in frames if any(e["type"] == "test.tick" for e in f)]) < 20
    await staff.wait_count("test.tick", 20)

    # Host sockets are in two rooms: a burst mixing both keeps publish order, drops nothing.
    mixed = [("p" if i % 3 else "h", i) for i in range(20, 40)]
    _publish_blocking(redis_url, bid, mixed)
    got = await staff.wait_count("test.tick", 40)
    assert [e["data"]["i"] for e in got] == list(range(40))
    frames = await _frames_until(viewer, len([m for m in mixed if m[0] == "p"]))
    ticks = [e["data"]["i"] for f in frames for e in f if e["type"] == "test.tick"]
    assert ticks == [i for aud, i in mixed if aud == "p"]
    await viewer.close()
