"""One publish path: every event goes through the one append script (core/events.py), loaded
once and run by SHA, and only registered types in their audience get appended."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from jobcast.chat.votes import VoteCoalescer
from jobcast.core import keys
from jobcast.core.event_types import EVENTS, UnregisteredEvent, lookup, register
from jobcast.core.events import HOST, PUBLIC, PUBLISH_LUA, EventLog, Hole
from redis.asyncio import Redis

from tests.redisproc import RedisProcess

BID = "pubpath"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


async def _calls(r: Redis, command: str) -> tuple[int, int]:
    """How many times Redis ran `command` since the last CONFIG RESETSTAT, and how many of
    those failed."""
    stats = (await r.info("commandstats")).get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0)), int(stats.get("failed_calls", 0))


async def _events(r: Redis, bid: str, audience: str = PUBLIC) -> list[dict]:
    stream = keys.host_events(bid) if audience == HOST else keys.events(bid)
    return [orjson.loads(b"{" + f[b"b"]) for _, f in await r.xrange(stream)]


async def test_an_unregistered_type_is_refused_and_nothing_is_appended(redis):
    log = EventLog(redis)
    with pytest.raises(UnregisteredEvent, match=r"nope\.nothing"):
        await log.publish(BID, "nope.nothing", {})
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set("jc:test:touched", "1")
        with pytest.raises(UnregisteredEvent):
            log.add_to(pipe, BID, "chat.nothing", {"x": 1})
    with pytest.raises(UnregisteredEvent):
        log.event(BID, "application.nothing", {})
    # A host-only type is never published to everyone; a public one not to hosts only.
    with pytest.raises(ValueError, match=r"application\.status"):
        await log.publish(BID, "application.status", {"application_id": "a"}, audience=PUBLIC)
    with pytest.raises(ValueError, match=r"card\.pinned"):
        await log.publish(BID, "card.pinned", {}, audience=HOST)
    # Socket frames are not logged events.
    with pytest.raises(ValueError, match="hello"):
        await log.publish(BID, "hello", {})
    assert await redis.exists(keys.events(BID), keys.host_events(BID), "jc:test:touched") == 0
    assert log.published == 0

    # Either audience where the registry says so.
    await log.publish(BID, "question.updated", {"id": "1"}, audience=HOST)
    await log.publish(BID, "question.updated", {"id": "1"}, audience=PUBLIC)
    assert log.published == 2


def test_every_registered_type_has_an_audience_and_a_description():
    for name, t in EVENTS.items():
        assert t.name == name and lookup(name) is t
        assert t.audience in ("public", "host", "either", "socket")
        assert t.description and "\n" not in t.description
        assert t.logged != (t.audience == "socket") or name == "presence"
        assert t.model is None or hasattr(t.model, "model_json_schema")
    with pytest.raises(ValueError):
        register("card.pinned", "public", "again")


async def test_the_append_script_is_loaded_once_and_run_by_sha(redis):
    await redis.script_flush()
    await redis.config_resetstat()
    log = EventLog(redis)
    for i in range(3):
        await log.publish(BID, "chat.hidden", {"id": str(i)})
    for i in range(3):
        async with redis.pipeline(transaction=True) as pipe:
            pipe.set("jc:test:state", i)
            log.add_to(pipe, BID, "chat.hidden", {"id": f"m{i}"})
            await pipe.execute()
    assert await _calls(redis, "eval") == (0, 0)
    # The first EVALSHA found no script (NOSCRIPT), loaded it and ran again; the MULTIs
    # asked SCRIPT EXISTS and found it.
    assert await _calls(redis, "evalsha") == (7, 1)
    assert await _calls(redis, "script|load") == (1, 0)
    assert await _calls(redis, "script|exists") == (3, 0)
    assert [e["data"]["id"] for e in await _events(redis, BID)] == ["0", "1", "2", "m0", "m1", "m2"]
    assert log.published == 6


async def test_script_flush_mid_run_still_publishes(redis):
    log = EventLog(redis)
    votes = VoteCoalescer(redis, log, 0.5)
    await log.publish(BID, "chat.hidden", {"id": "before"})

    await redis.script_flush()
    await log.publish(BID, "chat.hidden", {"id": "plain"})  # EVALSHA: NOSCRIPT, load, again

    await redis.script_flush()
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set("jc:test:state", "written")
        log.add_to(pipe, BID, "chat.hidden", {"id": "multi"})
        _, seq = await pipe.execute()  # redis-py loaded the script before MULTI
    assert await redis.get("jc:test:state") == b"written"

    await redis.script_flush()
    await redis.sadd(keys.question_dirty(BID), "7")
    await redis.zadd(keys.question_votes(BID), {"7": 3})
    assert await votes.flush(BID) == 1  # a script of its own, with two events in it

    public = await _events(redis, BID)
    assert [e["data"].get("id") for e in public[:3]] == ["before", "plain", "multi"]
    assert public[3]["type"] == "question.votes" and public[3]["data"] == {"votes": {"7": 3}}
    hosts = await _events(redis, BID, HOST)
    assert hosts[0]["data"] == {"voters": {"7": {"voters": 0, "addresses": 0}}}
    assert log.published == 5
    assert (await redis.xrange(keys.events(BID)))[2][0] == seq


async def test_a_restarted_redis_gets_the_scripts_again(own_redis: RedisProcess):
    r = Redis.from_url(own_redis.url)
    try:
        log = EventLog(r)
        script = log.script("jc_event(1, 1, {n = 41 + 1})\nreturn 'done'")
        ev = log.event(BID, "chat.settings", {"slow_mode": Hole("n")})
        assert await script(ev.keys, ev.args) == b"done"
        assert await log.publish(BID, "chat.hidden", {"id": "1"})

        own_redis.kill()
        own_redis.start()
        await r.connection_pool.disconnect()
        sha = r.register_script(PUBLISH_LUA).sha
        assert await r.script_exists(sha, script.script.sha) == [False, False]

        await log.publish(BID, "chat.hidden", {"id": "2"})
        async with r.pipeline(transaction=True) as pipe:
            log.add_to(pipe, BID, "chat.hidden", {"id": "3"})
            await pipe.execute()
        ev = log.event(BID, "chat.settings", {"slow_mode": Hole("n")})
        assert await script(ev.keys, ev.args) == b"done"
        got = [(e["type"], e["data"]) for e in await _events(r, BID)]
        assert got[-4:] == [
            ("chat.hidden", {"id": "1"}),
            ("chat.hidden", {"id": "2"}),
            ("chat.hidden", {"id": "3"}),
            ("chat.settings", {"slow_mode": 42}),
        ]
        assert log.published == 5
    finally:
        await r.aclose()


async def test_a_hole_is_filled_by_the_script_and_nowhere_else(redis):
    log = EventLog(redis)
    ev = log.event(BID, "chat.settings", {"slow_mode": Hole("n")}, ts=7)
    assert ev.args[2] == b'"type":"chat.settings","data":{"slow_mode":\x00n\x00},"ts":7}'
    with pytest.raises(ValueError, match="Hole"):
        await log.publish(BID, "chat.settings", {"slow_mode": Hole("n")})
    script = log.script("jc_event(1, 1, {count = {a = 1}})\nreturn false")
    ev = log.event(
        BID, "application.deleted", {"opening_id": "o", "count": Hole("count")}, audience=HOST, ts=7
    )
    assert await script(ev.keys, ev.args) is None
    raw = (await redis.xrange(keys.host_events(BID)))[-1][1][b"b"]
    assert raw == b'"type":"application.deleted","data":{"opening_id":"o","count":{"a":1}},"ts":7}'
    # A value the script does not give is an error, not a broken event.
    bad = log.script("jc_event(1, 1, {})\nreturn 1")
    with pytest.raises(Exception, match="no value for the hole count"):
        await bad(ev.keys, ev.args)
    assert len(await redis.xrange(keys.host_events(BID))) == 1


async def test_chat_writes_run_their_scripts_by_sha_also_after_a_flush(client, bid, viewers):
    """A chat message's append and a held message's queueing are scripts inside the MULTI that
    publishes their event: queued as EVALSHA (redis-py loads what SCRIPT EXISTS misses before
    MULTI), never EVAL with the source, and they survive SCRIPT FLUSH."""
    from jobcast.web.appkeys import REDIS

    from tests.chat_helpers import err, messages, ok
    from tests.helpers import connect
    from tests.waiting import wait_until

    r = client.server.app[REDIS]
    console = await connect(client, bid, host=True)
    v = await viewers.open(client, bid)
    await r.config_resetstat()
    await r.script_flush()
    assert (await ok(v, "chat.send", {"text": "你好"}))["text"] == "你好"
    await r.script_flush()
    assert (await err(v, "chat.send", {"text": "加我微信 13800138000"}))["code"] == "held"
    await console.wait_for("review.added")
    assert (await ok(v, "chat.send", {"text": "还在吗"}))["text"] == "还在吗"
    assert (await _calls(r, "eval"))[0] == 0
    # (Scripts run on their own, such as the chat gate, meet NOSCRIPT once after each flush
    # and load themselves; inside a MULTI nothing may fail, and the messages arrive below.)
    assert (await _calls(r, "evalsha"))[0] >= 3
    await wait_until(lambda: len(messages(v)) >= 2, what="both approved messages")
    assert [m["text"] for m in messages(v)] == ["你好", "还在吗"]
