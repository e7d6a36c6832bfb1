"""Public and host-only events live in two streams of a broadcast with one sequence of seqs:
a flood of host-only events (applications) leaves the viewers' history alone, host consoles
get both audiences merged in seq order, and the gap rules hold for each stream."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from jobcast.core import keys
from jobcast.core.events import HOST, PUBLIC, EventLog, parse_seq
from jobcast.web.appkeys import EVENT_LOG, REDIS
from redis.asyncio import Redis

from tests.helpers import Viewer, connect
from tests.openings_helpers import applicant, application_body, make_opening

HOST_ONLY = ("application.received", "application.deleted", "application.status", "test.secret")


def _seqs(v: Viewer) -> list[tuple[int, int]]:
    return [parse_seq(s) for s in v.seqs()]


async def _apply_many(client: Any, oid: str, n: int, start: int = 0) -> None:
    """`n` applications through the real endpoint, each with its own phone."""
    who = await applicant(client)
    for chunk in range(start, start + n, 50):
        rs = await asyncio.gather(
            *(
                who.apply(oid, application_body(phone=f"139{i:08d}"), uuid.uuid4().hex)
                for i in range(chunk, min(chunk + 50, start + n))
            )
        )
        assert all(r.status == 201 for r in rs), [await r.text() for r in rs if r.status != 201]


@pytest.mark.app_settings(event_history=50, host_event_history=50, apply_per_viewer=1000)
async def test_host_only_flood_leaves_the_viewers_replay_window(client, host, bid):
    o = await make_opening(host, bid)
    live = await connect(client, bid)  # stays connected throughout
    v = await connect(client, bid)
    since = v.of_type("snapshot")[0]["seq"]
    await v.close()

    log = client.server.app[EVENT_LOG]
    missed: list[str] = []
    for round_ in range(5):
        await _apply_many(client, o["id"], 60, start=round_ * 60)
        r = await host.patch(f"/api/broadcasts/{bid}", {"title": f"Round {round_}"})
        assert r.status == 200
        missed.append(await log.publish(bid, "test.tick", {"i": round_}))
    redis = client.server.app[REDIS]
    assert await redis.zcard(keys.applications(bid)) == 300
    # The host stream is capped on its own (MAXLEN ~ keeps up to one node more).
    assert await redis.xlen(keys.host_events(bid)) < 300

    v2 = await connect(client, bid, since=since)
    assert v2.of_type("synced")[0]["data"]["mode"] == "replay"
    assert not v2.of_type("snapshot")
    got = v2.of_type("broadcast.updated", "test.tick")
    assert [e["data"]["title"] for e in got if e["type"] == "broadcast.updated"] == [
        f"Round {i}" for i in range(5)
    ]
    assert [e["seq"] for e in got if e["type"] == "test.tick"] == missed
    assert _seqs(v2) == sorted(set(_seqs(v2)))  # in order, each once
    await live.wait_for(lambda e: e.get("seq") == missed[-1])
    for sock in (live, v2):
        assert not sock.of_type(*HOST_ONLY)


@pytest.mark.app_settings(apply_per_viewer=1000)
async def test_host_replay_merges_both_audiences_in_seq_order(client, host, bid):
    o = await make_opening(host, bid)
    log: EventLog = client.server.app[EVENT_LOG]
    redis: Redis = client.server.app[REDIS]
    live_host = await connect(host.client, bid, host=True)
    live_viewer = await connect(client, bid)
    h = await connect(host.client, bid, host=True)
    since = h.of_type("snapshot")[0]["seq"]
    await h.close()

    published: list[tuple[str, str]] = []  # (seq, audience)
    # One MULTI: back to back inside Redis, so many fall in the same millisecond.
    async with redis.pipeline(transaction=True) as pipe:
        for i in range(100):
            audience = HOST if i % 2 else PUBLIC
            log.add_to(
                pipe, bid, "test.secret" if i % 2 else "test.tick", {"i": i}, audience=audience
            )
        replies = await pipe.execute()
    published += [(s.decode(), HOST if i % 2 else PUBLIC) for i, s in enumerate(replies)]
    # Concurrent publishes of both audiences and applications (host-only, their own script).
    seqs = await asyncio.gather(
        *(
            log.publish(
                bid,
                "test.secret" if i % 2 else "test.tick",
                {"i": i},
                audience=HOST if i % 2 else PUBLIC,
            )
            for i in range(100, 200)
        )
    )
    published += [
        (s, HOST if i % 2 else PUBLIC) for i, s in zip(range(100, 200), seqs, strict=True)
    ]
    await _apply_many(client, o["id"], 50)

    assert len({s for s, _ in published}) == len(published)
    by_ms: dict[int, set[str]] = {}
    for s, audience in published:
        by_ms.setdefault(parse_seq(s)[0], set()).add(audience)
    assert any(len(aud) == 2 for aud in by_ms.values()), "no millisecond held both audiences"

    h2 = await connect(host.client, bid, host=True, since=since)
    assert h2.of_type("synced")[0]["data"]["mode"] == "replay"
    for sock in (h2, live_host):
        await sock.wait_count("application.received", 50)
        ticks = sock.of_type("test.tick", "test.secret")
        # The MULTI ran in order; the concurrent ones in whatever order Redis took them.
        assert [e["data"]["i"] for e in ticks[:100]] == list(range(100))
        assert sorted(e["data"]["i"] for e in ticks) == list(range(200))
        assert {e["seq"] for e in ticks} == {s for s, _ in published}
        seqs_seen = _seqs(sock)
        assert seqs_seen == sorted(set(seqs_seen))  # strictly increasing: each once, in order
    await live_viewer.wait_count("test.tick", 100)
    assert not live_viewer.of_type(*HOST_ONLY)
    v = await connect(client, bid, since=since)
    assert v.of_type("synced")[0]["data"]["mode"] == "replay"
    assert sorted(e["data"]["i"] for e in v.of_type("test.tick")) == list(range(0, 200, 2))
    assert not v.of_type(*HOST_ONLY)


class _SteppedPipeline:
    """Runs the queued commands one by one on the real client, calling `hook` after the
    first XRANGE: another client's writes landing between two reads of one replay."""

    def __init__(self, redis: Redis, hook: Any) -> None:
        self.redis = redis
        self.hook = hook
        self.calls: list[tuple[str, tuple, dict]] = []

    async def __aenter__(self) -> _SteppedPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        def queue(*args: Any, **kw: Any) -> None:
            self.calls.append((name, args, kw))

        return queue

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        out: list[Any] = []
        hooked = False
        for name, args, kw in self.calls:
            try:
                out.append(await getattr(self.redis, name)(*args, **kw))
            except Exception as e:
                if raise_on_error:
                    raise
                out.append(e)
            if name == "xrange" and not hooked:
                hooked = True
                await self.hook()
        return out


class _SteppedRedis:
    def __init__(self, redis: Redis, hook: Any) -> None:
        self._redis = redis
        self._hook = hook
        self.armed = False

    def pipeline(self, transaction: bool = True) -> Any:
        if self.armed:
            self.armed = False
            return _SteppedPipeline(self._redis, self._hook)
        return self._redis.pipeline(transaction=transaction)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._redis, name)


async def test_events_landing_between_the_two_stream_reads_are_not_lost(client, host, bid):
    log: EventLog = client.server.app[EVENT_LOG]
    await log.publish(bid, "test.tick", {"i": 0})
    await log.publish(bid, "test.secret", {"i": 1}, audience=HOST)
    h = await connect(host.client, bid, host=True)
    since = h.of_type("snapshot")[0]["seq"]
    await h.close()
    await log.publish(bid, "test.tick", {"i": 2})

    async def between() -> None:
        # After the public stream was read: a public event, then a host-only one.
        await log.publish(bid, "test.tick", {"i": 3})
        await log.publish(bid, "test.secret", {"i": 4}, audience=HOST)

    real = log.redis
    stepped = _SteppedRedis(real, between)
    log.redis = stepped  # type: ignore[assignment]
    stepped.armed = True
    try:
        h2 = await connect(host.client, bid, host=True, since=since)
    finally:
        log.redis = real
    assert not stepped.armed  # the replay went through the stepped pipeline
    assert h2.of_type("synced")[0]["data"]["mode"] == "replay"
    got = await h2.wait_count(lambda e: e["type"] in ("test.tick", "test.secret"), 3)
    await log.publish(bid, "test.tick", {"i": 5})
    got = await h2.wait_count(lambda e: e["type"] in ("test.tick", "test.secret"), 4)
    assert [e["data"]["i"] for e in got] == [2, 3, 4, 5]


@pytest.mark.app_settings(host_event_history=10)
async def test_gap_rules_hold_for_each_stream(client, host, bid):
    log: EventLog = client.server.app[EVENT_LOG]
    await log.publish(bid, "test.tick", {"i": 0})
    secret = await log.publish(bid, "test.secret", {"i": 1}, audience=HOST)

    # A fresh socket's snapshot is at the broadcast's last seq, a host-only event here.
    v = await connect(client, bid)
    assert v.of_type("snapshot")[0]["seq"] == secret
    # That seq is ahead of the public stream but not of the broadcast: a replay.
    v2 = await connect(client, bid, since=secret)
    assert v2.of_type("synced")[0]["data"]["mode"] == "replay"
    assert not v2.of_type("test.tick")
    await log.publish(bid, "test.tick", {"i": 2})
    assert (await v2.wait_for("test.tick"))["data"]["i"] == 2

    # The host stream trimmed past `since`: hosts get a snapshot, viewers still a replay.
    for i in range(300):
        await log.publish(bid, "test.secret", {"i": i}, audience=HOST)
    h = await connect(host.client, bid, host=True, since=secret)
    assert h.of_type("synced")[0]["data"]["mode"] == "snapshot"
    v3 = await connect(client, bid, since=secret)
    assert v3.of_type("synced")[0]["data"]["mode"] == "replay"
    assert [e["data"]["i"] for e in v3.of_type("test.tick")] == [2]

    # Ahead of the broadcast's last seq: a snapshot for both.
    last = await log.last_seq(bid)
    assert last is not None
    ahead = f"{last[0]}-{last[1] + 1}"
    for host_socket in (False, True):
        c = host.client if host_socket else client
        s = await connect(c, bid, host=host_socket, since=ahead)
        assert s.of_type("synced")[0]["data"]["mode"] == "snapshot"


async def test_history_written_before_the_host_stream_still_replays(client, host, bid):
    log: EventLog = client.server.app[EVENT_LOG]
    redis: Redis = client.server.app[REDIS]
    await redis.delete(keys.events(bid), keys.host_events(bid), keys.event_last(bid))
    # One mixed stream as older versions wrote it; its last id ahead of the clock.
    legacy = []
    for i, aud in enumerate("phph"):
        body = f'"type":"test.{"tick" if aud == "p" else "secret"}","data":{{"i":{i}}},"ts":1}}'
        legacy.append(
            (
                await redis.xadd(keys.events(bid), {"a": aud, "b": body}, id=f"{2**45 + i}-0")
            ).decode()
        )
    assert await log.last_seq(bid) == parse_seq(legacy[-1])
    v = await connect(client, bid, since=legacy[0])
    assert v.of_type("synced")[0]["data"]["mode"] == "replay"
    assert [e["data"]["i"] for e in v.of_type("test.tick")] == [2]
    assert not v.of_type("test.secret")
    h = await connect(host.client, bid, host=True, since=legacy[0])
    assert [e["data"]["i"] for e in h.of_type("test.tick", "test.secret")] == [1, 2, 3]

    # New events, of either audience, draw their seqs above the old stream's last id.
    s_host = await log.publish(bid, "test.secret", {"i": 4}, audience=HOST)
    s_pub = await log.publish(bid, "test.tick", {"i": 5})
    assert parse_seq(legacy[-1]) < parse_seq(s_host) < parse_seq(s_pub)
    await h.wait_for(lambda e: e.get("seq") == s_pub)
    assert [e["data"]["i"] for e in h.of_type("test.tick", "test.secret")] == [1, 2, 3, 4, 5]


async def test_replay_works_when_redis_is_at_maxmemory(own_redis, client, host, bid):
    log: EventLog = client.server.app[EVENT_LOG]
    first = await log.publish(bid, "test.tick", {"i": 0})
    await log.publish(bid, "test.secret", {"i": 1}, audience=HOST)
    await log.publish(bid, "test.tick", {"i": 2})
    redis: Redis = client.server.app[REDIS]
    await redis.config_set("maxmemory-policy", "noeviction")
    await redis.config_set("maxmemory", 1)
    try:
        for include_host in (False, True):
            got = await log.replay(bid, parse_seq(first), include_host=include_host)
            assert got is not None
            assert len(got) == (2 if include_host else 1)
        assert await log.last_seq(bid) is not None
        v = await connect(client, bid, since=first)
        assert v.of_type("synced")[0]["data"]["mode"] == "replay"
        assert [e["data"]["i"] for e in v.of_type("test.tick", "test.secret")] == [2]
        h = await connect(host.client, bid, host=True, since=first)
        assert h.of_type("synced")[0]["data"]["mode"] == "replay"
        assert [e["data"]["i"] for e in h.of_type("test.tick", "test.secret")] == [1, 2]
    finally:
        await redis.config_set("maxmemory", 0)
