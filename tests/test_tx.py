"""The one capped transaction (core/tx.py), against real concurrent writers: a second client
writes the watched key from inside the body, between the read and EXEC, so each conflict is
certain and needs no timing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from jobcast.core import keys
from jobcast.core.errors import Conflict, NotFound, Unavailable
from jobcast.core.events import EventLog
from jobcast.core.tx import ATTEMPTS, transact
from jobcast.openings.service import OpeningService
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

KEY = "jc:test:tx"
BID = "txbid"


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[tuple[Redis, Redis]]:
    one, other = Redis.from_url(redis_url), Redis.from_url(redis_url)
    yield one, other
    await one.aclose()
    await other.aclose()


async def test_a_conflict_is_retried_on_fresh_reads(clients):
    r, other = clients
    await r.set(KEY, "0")
    log = EventLog(r)
    seen: list[bytes] = []

    async def body(pipe: Pipeline) -> str:
        value = await pipe.get(KEY)
        seen.append(value)
        if len(seen) == 1:
            await other.set(KEY, "other")  # lands between this read and EXEC
        pipe.multi()
        pipe.set(KEY, value + b"+mine")
        log.add_to(pipe, BID, "chat.hidden", {"id": str(len(seen))})
        return "done"

    assert await transact(r, [KEY], body) == "done"
    assert seen == [b"0", b"other"]
    assert await r.get(KEY) == b"other+mine"
    # Only the attempt that committed published: its event went out with its write.
    events = await r.xrange(keys.events(BID))
    assert len(events) == 1 and b'"id":"2"' in events[0][1][b"b"]


async def test_it_gives_up_after_its_cap_with_the_callers_error(clients):
    r, other = clients
    await r.set(KEY, "0")
    runs = 0

    async def body(pipe: Pipeline) -> None:
        nonlocal runs
        runs += 1
        await pipe.get(KEY)
        await other.set(KEY, f"other {runs}")  # every attempt loses
        pipe.multi()
        pipe.set(KEY, "mine")

    with pytest.raises(Conflict) as e:
        await transact(r, [KEY], body)
    assert (e.value.code, runs) == ("busy", ATTEMPTS)
    assert await r.get(KEY) == f"other {ATTEMPTS}".encode()

    runs = 0

    def gone() -> NotFound:
        return NotFound("not in the review queue", code="review_not_found")

    with pytest.raises(NotFound) as nf:
        await transact(r, [KEY], body, attempts=3, busy=gone)
    assert (nf.value.code, runs) == ("review_not_found", 3)
    assert await r.get(KEY) == b"other 3"


async def test_an_error_in_the_body_writes_nothing_and_is_not_retried(clients):
    r, _ = clients
    runs = 0

    async def body(pipe: Pipeline) -> None:
        nonlocal runs
        runs += 1
        await pipe.get(KEY)
        pipe.multi()
        pipe.set(KEY, "half")
        raise NotFound("no such thing")

    with pytest.raises(NotFound):
        await transact(r, [KEY], body)
    assert runs == 1 and await r.get(KEY) is None

    async def plain(pipe: Pipeline) -> int:  # no writes: EXEC of nothing, still checked
        return int(await pipe.exists(KEY))

    assert await transact(r, [KEY], plain) == 0


async def test_openings_give_up_with_their_503_busy(clients):
    """The openings service keeps its own cap and error (503 `busy`) through the helper."""
    r, other = clients
    svc = OpeningService(r, EventLog(r))
    runs = 0

    async def change(st, p) -> None:
        nonlocal runs
        runs += 1
        await other.rpush(keys.lineup(BID), f"x{runs}")  # a watched key of the broadcast
        p.delete(keys.pinned(BID))

    with pytest.raises(Unavailable) as e:
        await svc._txn(BID, change)
    assert (e.value.code, runs) == ("busy", 20)
