"""Behind a reverse proxy the client address is the one the trusted proxies saw, never an
entry the client wrote into X-Forwarded-For itself."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import make_mocked_request
from jobcast.web.access import auth
from jobcast.web.api.login import LOGIN_ATTEMPTS

from tests.conftest import make_settings
from tests.helpers import login


def _ip(tmp_path: Any, headers: list[tuple[str, str]], **settings: Any) -> str:
    req = make_mocked_request("GET", "/", headers=headers)
    return auth.client_ip(req, make_settings("redis://unused", tmp_path, **settings))


def test_the_address_is_taken_the_trusted_hops_from_the_right(tmp_path):
    xff = [("X-Forwarded-For", "6.6.6.6, 10.0.0.7")]
    # One proxy appended 10.0.0.7: what the client wrote before it is not believed.
    assert _ip(tmp_path, xff, trust_proxy=True) == "10.0.0.7"
    assert _ip(tmp_path, xff, trust_proxy=True, trust_proxy_hops=1) == "10.0.0.7"
    # Two proxies: the outer one saw the client, the inner one saw the outer proxy.
    chain = [("X-Forwarded-For", "6.6.6.6, 10.0.0.7, 192.168.1.2")]
    assert _ip(tmp_path, chain, trust_proxy=True, trust_proxy_hops=2) == "10.0.0.7"
    # A proxy that adds its own header line instead of appending counts the same.
    lines = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "10.0.0.7")]
    assert _ip(tmp_path, lines, trust_proxy=True) == "10.0.0.7"
    # Fewer entries than trusted hops: it did not come through them; the peer is used.
    peer = _ip(tmp_path, [])
    assert (
        _ip(tmp_path, [("X-Forwarded-For", "10.0.0.7")], trust_proxy=True, trust_proxy_hops=2)
        == peer
    )
    # Without trust_proxy the header means nothing.
    assert _ip(tmp_path, xff) == peer


async def _login(s: aiohttp.ClientSession, base: str, forwarded: str) -> int:
    """A wrong login to an account of its own (so no account's delay is what answers)."""
    r = await s.post(
        f"{base}/api/login",
        json={"username": f"nobody-{forwarded}", "password": "wrong-password"},
        headers={"X-Forwarded-For": forwarded},
    )
    return r.status


async def test_rotating_the_leftmost_entry_does_not_escape_per_address_limits(
    app_factory, redis_url
):
    client = await app_factory(redis_url, trust_proxy=True, ws_connections_per_ip=2)
    base = str(client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        # The login limit per address: a fresh made-up leftmost entry each time.
        statuses = [
            await _login(s, base, f"203.0.113.{i}, 10.9.9.9") for i in range(LOGIN_ATTEMPTS + 1)
        ]
        assert statuses[:LOGIN_ATTEMPTS] == [401] * LOGIN_ATTEMPTS
        assert statuses[-1] == 429
        r = await s.post(
            f"{base}/api/login",
            json={"username": "x", "password": "wrong-password"},
            headers={"X-Forwarded-For": "203.0.113.200, 10.9.9.9"},
        )
        assert (await r.json())["error"]["code"] == "rate_limited"
        # Another real address still may try.
        assert await _login(s, base, "203.0.113.1, 10.9.9.8") == 401

    # Socket connections per address.
    host = await login(client)
    bid = await host.create_broadcast()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
        socks = []
        for i in range(2):
            socks.append(
                await s.ws_connect(
                    f"{base}/ws/b/{bid}",
                    headers={"X-Forwarded-For": f"198.51.100.{i}, 10.8.8.8", "Origin": base},
                )
            )
        r = await s.get(
            f"{base}/ws/b/{bid}",
            headers={
                "X-Forwarded-For": "198.51.100.77, 10.8.8.8",
                "Origin": base,
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert r.status == 429
        assert (await r.json())["error"]["code"] == "too_many_connections"
        for ws in socks:
            await ws.close()
