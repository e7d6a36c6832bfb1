"""Failed logins cannot freeze the process or wear down an account: argon2 runs in threads, a
bounded number at once; an account's attempts from devices that never logged in to it are
delayed after a few failures, without its real host being kept out."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from jobcast.core.errors import Unavailable
from jobcast.web.access import auth
from jobcast.web.api.login import LOGIN_GUARD
from jobcast.web.appkeys import REDIS
from redis.asyncio import Redis

from tests.waiting import wait_until

PASSWORD = "s3cret-pass"


def _base(client: Any) -> str:
    return str(client.make_url("")).rstrip("/")


async def _post_login(
    s: aiohttp.ClientSession, base: str, password: str, ip: str | None = None, user: str = "host1"
) -> tuple[int, str, Any]:
    headers = {"X-Forwarded-For": ip} if ip else {}
    r = await s.post(
        f"{base}/api/login", json={"username": user, "password": password}, headers=headers
    )
    body = await r.json()
    code = body["error"]["code"] if "error" in body else "ok"
    return r.status, code, r


@pytest.fixture(autouse=True)
def long_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    """Delays far longer than any test: how many attempts get through does not depend on
    how fast the machine runs them."""
    monkeypatch.setattr(auth, "DELAY_BASE_MS", 3_600_000)


async def test_a_flood_of_wrong_passwords_runs_off_the_loop_and_is_cut_per_account(
    app_factory, redis_url
):
    client = await app_factory(
        redis_url,
        trust_proxy=True,
        login_concurrency=2,
        login_delay_max=7200,
        ws_messages_per_second=10_000.0,  # the watcher pings as fast as it is answered
        ws_burst=10_000,
    )
    app = client.server.app
    redis: Redis = app[REDIS]
    guard = app[LOGIN_GUARD]
    base = _base(client)
    await auth.add_user(redis, "host1", PASSWORD, "host")
    host = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    try:
        # The real host logs in once from its browser: that browser is now a known device.
        status, _, resp = await _post_login(host, base, PASSWORD)
        assert status == 200
        assert auth.DEVICE_COOKIE in resp.cookies
        csrf = (await resp.json())["csrf"]
        r = await host.post(
            f"{base}/api/broadcasts",
            json={"title": "t", "description": "d"},
            headers={"X-CSRF-Token": csrf, "Origin": base},
        )
        bid = (await r.json())["id"]
        checks_before = guard.checks

        # A second client keeps using the process while the flood runs.
        stop = asyncio.Event()
        answered = {"healthz": 0, "pong": 0}

        async def watch() -> None:
            async with aiohttp.ClientSession() as s:
                ws = await s.ws_connect(f"{base}/ws/b/{bid}", headers={"Origin": base})
                while not stop.is_set():
                    r = await s.get(f"{base}/healthz")
                    assert r.status == 200
                    answered["healthz"] += 1
                    await ws.send_str(orjson.dumps({"type": "ping", "data": {}}).decode())
                    async with asyncio.timeout(10):
                        while True:
                            msg = await ws.receive()
                            assert msg.type == WSMsgType.TEXT
                            if any(e["type"] == "pong" for e in orjson.loads(msg.data)):
                                break
                    answered["pong"] += 1
                await ws.close()

        watcher = asyncio.create_task(watch())
        await wait_until(lambda: answered["pong"] > 0)
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as attacker:
            # 100 wrong passwords, 10 from each of 10 addresses (each at the per-address limit).
            results = await asyncio.gather(
                *(_post_login(attacker, base, f"guess-{i}", f"10.0.0.{i % 10}") for i in range(100))
            )
        stop.set()
        await watcher
        assert answered["healthz"] > 0 and answered["pong"] > 0

        codes = [(status, code) for status, code, _ in results]
        evaluated = codes.count((401, "bad_credentials"))
        refused = codes.count((429, "login_throttled"))
        assert evaluated + refused == 100, codes
        # Each evaluated attempt ran argon2 once; the refused ones never reached it.
        assert guard.checks - checks_before == evaluated
        # The first few are free; the next one starts the account's delay.
        assert evaluated == auth.FREE_ATTEMPTS + 1 and refused == 100 - evaluated
        throttled = [r for (s, c, r) in results if c == "login_throttled"]
        assert all(int(r.headers["Retry-After"]) >= 1 for r in throttled)
        # argon2 ran in the pool's threads, never on the loop's, at most 2 at once.
        assert guard.threads and threading.get_ident() not in guard.threads
        assert guard.peak <= 2

        # A new device, even with the right password, waits; the real host, from its known
        # device, logs in at once.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as stranger:
            got = await _post_login(stranger, base, PASSWORD, "10.0.0.99")
            assert got[:2] == (429, "login_throttled")
        checks = guard.checks
        status, _, _ = await _post_login(host, base, PASSWORD)
        assert status == 200 and guard.checks == checks + 1
    finally:
        await host.close()


async def test_an_unknown_account_is_throttled_like_a_real_one(app_factory, redis_url):
    """Same answers, same work: the throttle reveals nothing about which usernames exist."""
    client = await app_factory(redis_url, trust_proxy=True, login_delay_max=7200)
    await auth.add_user(client.server.app[REDIS], "host1", PASSWORD, "host")
    base = _base(client)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        seen = {}
        for user in ("host1", "nobody"):
            seen[user] = [
                (await _post_login(s, base, "wrong-one", f"10.1.{i}.1", user))[:2]
                for i in range(auth.FREE_ATTEMPTS + 2)
            ]
        assert seen["host1"] == seen["nobody"]
        assert seen["host1"][-1] == (429, "login_throttled")


async def test_a_known_device_that_keeps_failing_loses_its_pass(app_factory, redis_url):
    """A stolen device cookie does not give unlimited guesses: after DEVICE_FAILURES wrong
    passwords in a row the device is delayed like any other."""
    client = await app_factory(redis_url, trust_proxy=True, login_delay_max=7200)
    redis: Redis = client.server.app[REDIS]
    await auth.add_user(redis, "host1", PASSWORD, "host")
    base = _base(client)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as dev:
        assert (await _post_login(dev, base, PASSWORD))[0] == 200
        n = auth.DEVICE_FAILURES + auth.FREE_ATTEMPTS + 2
        got = [(await _post_login(dev, base, "wrong-one", f"10.2.{i}.1"))[:2] for i in range(n)]
        # The device's own failures run argon2 (bypassing the account's delay) up to its
        # allowance; then it is an unknown device, past the account's free attempts.
        assert got[: auth.DEVICE_FAILURES] == [(401, "bad_credentials")] * auth.DEVICE_FAILURES
        assert got[-1] == (429, "login_throttled")
    # The operator can let the owner in from anywhere: enabling lifts the delay.
    await auth.set_disabled(redis, "host1", False)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as new:
        assert (await _post_login(new, base, PASSWORD, "10.3.0.1"))[0] == 200


async def test_logins_beyond_the_checks_that_may_wait_get_503_with_retry_after(
    app_factory, redis_url
):
    client = await app_factory(redis_url, login_concurrency=1)
    guard = client.server.app[LOGIN_GUARD]
    await auth.add_user(client.server.app[REDIS], "host1", PASSWORD, "host")
    gate = threading.Event()
    # One check runs (blocked on the gate) and as many as may wait are waiting.
    held = [asyncio.create_task(guard.run(gate.wait)) for _ in range(1 + auth.QUEUE_PER_SLOT)]
    try:
        await wait_until(lambda: guard.running == 1 and guard.waiting == auth.QUEUE_PER_SLOT)
        r = await client.post("/api/login", json={"username": "host1", "password": PASSWORD})
        assert r.status == 503, await r.text()
        assert (await r.json())["error"]["code"] == "login_busy"
        assert int(r.headers["Retry-After"]) >= 1
        with pytest.raises(Unavailable):
            await guard.run(gate.wait)
        # A waiter whose wait runs out is answered the same way.
        last = held.pop()
        last.cancel()  # room for one more waiter
        await asyncio.gather(last, return_exceptions=True)
        assert guard.waiting == auth.QUEUE_PER_SLOT - 1
        guard.queue_wait = 0.01
        with pytest.raises(Unavailable):
            await guard.run(gate.wait)
        assert guard.peak == 1 and guard.checks == 1
    finally:
        gate.set()
        await asyncio.gather(*held, return_exceptions=True)
    guard.queue_wait = auth.QUEUE_WAIT
    r = await client.post("/api/login", json={"username": "host1", "password": PASSWORD})
    assert r.status == 200
