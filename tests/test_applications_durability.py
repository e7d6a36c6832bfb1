"""Applications acknowledged while redis-server is SIGKILLed and restarted are all there
afterwards; requests made while it is down get 503 (never 500); a client that retries a 503
with the same Idempotency-Key ends with exactly one application."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis
from jobcast.core import keys

from tests.openings_helpers import applicant, application_body
from tests.waiting import wait_until


@pytest.mark.app_settings(apply_per_viewer=100_000, apply_per_ip=100_000)
async def test_acknowledged_applications_survive_sigkill(
    app_factory, own_redis, app_settings, bid, opening
):
    viewers = [await applicant(await app_factory(own_redis.url, **app_settings)) for _ in range(4)]

    acked: dict[str, str] = {}  # phone -> application id, for every 200/201 answer
    statuses: list[int] = []
    stop = asyncio.Event()
    counter = iter(range(10**6))

    async def submitter(v) -> None:
        while not stop.is_set():
            phone = f"139{next(counter):08d}"
            key = uuid.uuid4().hex
            body = application_body(phone=phone)
            while True:  # a real client retries a 503 with the same key and body
                r = await v.apply(opening["id"], body, key)
                statuses.append(r.status)
                if r.status in (200, 201):
                    acked[phone] = (await r.json())["application_id"]
                    break
                assert r.status == 503, await r.text()
                assert r.headers["Retry-After"]
                await asyncio.sleep(0.05)  # the client's pause before retrying; nothing waits on it

    async def wait_acks(n: int) -> None:
        def enough() -> bool:
            for t in tasks:
                if t.done():
                    t.result()  # a submitter that failed shows its error here
            return len(acked) >= n

        await wait_until(enough, 60, f"{n} acknowledged applications")

    async def refused_while_down(n: int) -> None:
        await wait_until(lambda: statuses.count(503) >= n, 30, f"{n} requests refused (503)")

    tasks = [asyncio.create_task(submitter(v)) for v in viewers]
    try:
        await wait_acks(40)
        own_redis.kill()
        before_restart = len(acked)
        await refused_while_down(4)  # requests made while it is down
        own_redis.start()
        await wait_acks(before_restart + 40)
        own_redis.kill()  # and once more, right in the middle of the traffic
        await refused_while_down(statuses.count(503) + 1)
        own_redis.start()
        await wait_acks(len(acked) + 20)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert set(statuses) <= {200, 201, 503}, sorted(set(statuses))
    assert statuses.count(503) >= 4
    r = aioredis.Redis.from_url(own_redis.url)
    try:
        stored = await r.zrange(keys.applications(bid), 0, -1)
        stored_ids = {x.decode() for x in stored}
        missing = {p: a for p, a in acked.items() if a not in stored_ids}
        assert not missing, f"acknowledged but lost: {missing}"
        # exactly once: one stored application per phone, no strays from retried requests
        assert len(stored_ids) == len(acked) == len(set(acked.values()))
        for phone, aid in list(acked.items())[:: max(1, len(acked) // 20)]:
            h = await r.hgetall(keys.application(bid, aid))
            assert h[b"phone"].decode() == "+86" + phone
    finally:
        await r.aclose()
