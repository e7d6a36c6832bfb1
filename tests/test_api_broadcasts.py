"""Broadcast API: host-only writes, CSRF, validation, errors in one JSON shape, presence."""

from __future__ import annotations

from tests.helpers import connect, login
from tests.waiting import wait_until


async def test_host_creates_edits_starts_and_ends_a_broadcast(client, host):
    r = await host.post(
        "/api/broadcasts",
        {
            "title": "春季招聘会",
            "description": "岗位推介",
            "scheduled_at": "2026-12-01T09:00:00+08:00",
        },
    )
    assert r.status == 201
    b = await r.json()
    assert b["status"] == "scheduled" and b["title"] == "春季招聘会"
    assert b["scheduled_at"] == 1796086800000
    assert r.headers["Location"] == f"/api/broadcasts/{b['id']}"
    bid = b["id"]
    r = await host.patch(f"/api/broadcasts/{bid}", {"description": "新的描述"})
    assert (await r.json())["description"] == "新的描述"
    r = await host.post(f"/api/broadcasts/{bid}/start")
    assert (await r.json())["status"] == "live"
    r = await host.post(f"/api/broadcasts/{bid}/end")
    assert (await r.json())["status"] == "ended"
    r = await host.post(f"/api/broadcasts/{bid}/start")
    assert r.status == 409
    assert (await r.json())["error"]["code"] == "broadcast_ended"
    page = await client.get(f"/b/{bid}")
    assert page.status == 200
    assert "春季招聘会" in await page.text()


async def test_writes_need_a_host(client, client_b, moderator, bid):
    anon = client_b
    r = await anon.post("/api/broadcasts", json={"title": "x"})
    assert r.status == 401
    assert (await r.json())["error"]["code"] == "login_required"
    r = await anon.post(f"/api/broadcasts/{bid}/start")
    assert r.status == 401
    r = await moderator.post("/api/broadcasts", {"title": "x"})
    assert r.status == 403
    assert (await r.json())["error"]["code"] == "host_only"
    # a host without the CSRF token
    r = await client.post("/api/broadcasts", json={"title": "x"})
    assert r.status == 403
    assert (await r.json())["error"]["code"] == "csrf"
    r = await client.post("/api/broadcasts", json={"title": "x"}, headers={"X-CSRF-Token": "wrong"})
    assert r.status == 403


async def test_validation_names_each_bad_field(host):
    r = await host.post(
        "/api/broadcasts",
        {"title": "x" * 500, "scheduled_at": "tomorrow", "colour": "red"},
    )
    assert r.status == 422
    err = (await r.json())["error"]
    assert err["code"] == "invalid"
    assert set(err["fields"]) == {"title", "scheduled_at", "colour"}
    r = await host.post("/api/broadcasts", {"title": "   "})
    assert (await r.json())["error"]["fields"] == {"title": "required"}
    r = await host.post("/api/broadcasts", {"title": "ok", "scheduled_at": "2026-12-01T09:00:00"})
    assert (await r.json())["error"]["fields"]["scheduled_at"] == "needs a timezone"


async def test_bad_bodies_are_clean_errors(client, host):
    h = {"X-CSRF-Token": host.csrf, "Content-Type": "application/json"}
    r = await client.post("/api/broadcasts", data=b"{not json", headers=h)
    assert r.status == 422 and (await r.json())["error"]["code"] == "bad_json"
    r = await client.post("/api/broadcasts", data=b"[1,2]", headers=h)
    assert r.status == 422
    r = await client.post("/api/broadcasts", data=b"x" * 200_000, headers=h)
    assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"
    r = await client.post(
        "/api/broadcasts", data=b"<a/>", headers={**h, "Content-Type": "application/xml"}
    )
    assert r.status == 415
    r = await client.get("/api/broadcasts/zzzzzzzz")
    assert r.status == 404 and (await r.json())["error"]["code"] == "broadcast_not_found"
    r = await client.get("/api/broadcasts/../../etc")
    assert r.status == 404
    r = await client.delete("/api/broadcasts")
    assert r.status == 405 and (await r.json())["error"]["code"] == "method_not_allowed"
    r = await client.get("/api/nothing-here")
    assert r.status == 404 and "error" in await r.json()


async def test_login_logout_and_cookie_flags(client):
    host = await login(client)
    r = await client.post("/api/login", json={"username": "host1", "password": "s3cret-pass"})
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    r = await client.get("/api/me")
    me = await r.json()
    assert me["host"]["username"] == "host1"
    r = await client.post("/api/logout", headers={"X-CSRF-Token": (me["host"]["csrf"])})
    assert r.status == 200
    r = await client.get("/api/me")
    assert (await r.json())["host"] is None
    r = await client.post("/api/login", json={"username": "host1", "password": "wrong-pass"})
    assert r.status == 401 and (await r.json())["error"]["code"] == "bad_credentials"
    r = await client.post("/api/login", json={"username": "nobody", "password": "wrong-pass"})
    assert r.status == 401
    assert host  # the first session existed


async def test_secure_cookie_behind_tls_proxy(app_factory, redis_url):
    a = await app_factory(redis_url, trust_proxy=True)
    await login(a)
    r = await a.post(
        "/api/login",
        json={"username": "host1", "password": "s3cret-pass"},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in r.headers["Set-Cookie"]


async def test_security_headers(client):
    r = await client.get("/")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"


async def test_presence_counts_viewers_across_instances(client, client_b, bid):
    va = [await connect(client, bid) for _ in range(2)]
    vb = [await connect(client_b, bid) for _ in range(3)]
    five = lambda e: e["type"] == "presence" and e["data"]["viewers"] == 5  # noqa: E731
    assert await va[0].wait_for(five, timeout=20)
    assert await vb[0].wait_for(five, timeout=20)
    for v in vb:
        await v.close()
    await va[0].wait_for(
        lambda e: e["type"] == "presence" and e["data"]["viewers"] == 2, timeout=20
    )

    async def rest_says_two() -> bool:  # the REST figure agrees (same sum, read on demand)
        r = await client.get(f"/api/broadcasts/{bid}")
        return (await r.json())["viewers"] == 2

    await wait_until(rest_says_two, timeout=20, what="GET /api/broadcasts/{bid} to count 2")


async def test_metrics_and_health(client, bid):
    v = await connect(client, bid)
    r = await client.get("/metrics")
    text = await r.text()
    assert "jobcast_viewers 1.0" in text
    assert "jobcast_redis_reconnects_total" in text
    assert "jobcast_slow_viewers_dropped_total" in text
    assert "jobcast_events_published_total" in text
    r = await client.get("/healthz")
    assert (await r.json())["ok"] is True
    await v.close()
