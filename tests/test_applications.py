"""Applications: validation, idempotency, every submission stored (also for one phone and
opening), 50 concurrent submits with one key store one application, rate limits, hosts-only personal data, the status workflow,
exports, deletion and retention."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest
from jobcast.core import keys
from jobcast.openings.applications import ApplicationService
from jobcast.openings.service import OpeningService
from jobcast.web.api.openings import APPLICATIONS
from jobcast.web.appkeys import EVENT_LOG, REDIS

from tests.helpers import connect, login
from tests.openings_helpers import applicant, application_body, make_opening


async def test_apply_then_applied_survives_a_reload(
    app_factory, redis_url, client, client_b, bid, opening
):
    v = await applicant(client_b)
    r = await v.apply(opening["id"], application_body())
    assert r.status == 201, await r.text()
    body = await r.json()
    assert set(body) == {"application_id", "opening_id", "applied"}
    assert body["opening_id"] == opening["id"]
    assert "phone" not in body and "name" not in body
    assert await v.applied(bid) == [opening["id"]]
    # the same browser (cookie) on another visit, through another instance
    cookie = next(c for c in client_b.session.cookie_jar if c.key == "jc_vid")
    fresh = await app_factory(redis_url)
    r = await fresh.get(
        f"/api/broadcasts/{bid}/applied", headers={"Cookie": f"jc_vid={cookie.value}"}
    )
    assert (await r.json())["opening_ids"] == [opening["id"]]
    r = await fresh.get(f"/api/broadcasts/{bid}/applied")  # someone else
    assert (await r.json())["opening_ids"] == []
    stored = await client.server.app[APPLICATIONS].get(bid, body["application_id"])
    assert stored["phone"] == "+8613800138000"
    assert stored["consent_version"] == "2026-01" and stored["consented_at"] > 0
    assert stored["status"] == "submitted" and stored["opening_title"] == opening["title"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "名" * 41}, "name"),
        ({"phone": ""}, "phone"),
        ({"phone": "12345678901"}, "phone"),  # 12x is not a mainland mobile
        ({"phone": "1380013800"}, "phone"),  # 10 digits
        ({"phone": "+86 0451 1234567"}, "phone"),  # +86 but not a mobile
        ({"phone": "+0123456789"}, "phone"),
        ({"phone": "+1234567890123456"}, "phone"),  # 16 digits: longer than E.164
        ({"phone": "call me"}, "phone"),
        ({"phone": 13800138000}, "phone"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"school": "校" * 81}, "school"),
        ({"major": "专" * 61}, "major"),
        ({"degree": "kindergarten"}, "degree"),
        ({"degree": "any"}, "degree"),
        ({"graduation_year": 1900}, "graduation_year"),
        ({"graduation_year": 2200}, "graduation_year"),
        ({"graduation_year": "soon"}, "graduation_year"),
        ({"note": "留" * 501}, "note"),
        ({"consent": False}, "consent"),
        ({"consent": "yes"}, "consent"),
        ({"consent_version": "1999-01"}, "consent_version"),
        ({"consent_version": None}, "consent_version"),
        ({"salary": 1}, "salary"),
    ],
)
async def test_every_bad_field_is_named_in_a_422(client_b, bid, opening, change, field):
    v = await applicant(client_b)
    r = await v.apply(opening["id"], application_body(**change))
    assert r.status == 422, await r.text()
    assert field in (await r.json())["error"]["fields"]
    assert await v.applied(bid) == []


@pytest.mark.parametrize(
    ("phone", "stored"),
    [
        ("13800138000", "+8613800138000"),
        ("138 0013 8000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 (415) 555-2671", "+14155552671"),
    ],
)
async def test_phone_forms_are_normalised(client, client_b, bid, opening, phone, stored):
    v = await applicant(client_b)
    r = await v.apply(opening["id"], application_body(phone=phone))
    assert r.status == 201, await r.text()
    aid = (await r.json())["application_id"]
    assert (await client.server.app[APPLICATIONS].get(bid, aid))["phone"] == stored


async def test_idempotency_key_same_body_replays_other_body_422(client, client_b, bid, opening):
    v = await applicant(client_b)
    key = uuid.uuid4().hex
    r1 = await v.apply(opening["id"], application_body(), key)
    assert r1.status == 201
    r2 = await v.apply(opening["id"], application_body(), key)
    assert r2.status == 201 and r2.headers["Idempotent-Replayed"] == "true"
    assert await r2.json() == await r1.json()
    r3 = await v.apply(opening["id"], application_body(note="另一份"), key)
    assert r3.status == 422
    err = (await r3.json())["error"]
    assert err["code"] == "idempotency_key_reused" and "Idempotency-Key" in err["fields"]
    r = await client_b.post(
        f"/api/openings/{opening['id']}/applications",
        json=application_body(),
        headers={"X-CSRF-Token": v.csrf},
    )
    assert r.status == 422 and "Idempotency-Key" in (await r.json())["error"]["fields"]
    total, _ = await client.server.app[APPLICATIONS].list(bid)
    assert total == 1


async def test_same_phone_same_opening_is_stored_again_and_marked(
    app_factory, redis_url, client, client_b, host, bid, opening
):
    v1 = await applicant(client_b)
    r1 = await v1.apply(opening["id"], application_body())
    first = await r1.json()
    # another device (another viewer id), same phone written differently
    v2 = await applicant(await app_factory(redis_url))
    r2 = await v2.apply(opening["id"], application_body(phone="+86 138 0013 8000", name="张伟 "))
    assert r2.status == 201, await r2.text()
    second = await r2.json()
    assert second["application_id"] != first["application_id"]
    assert await v2.applied(bid) == [opening["id"]]
    # a different opening is a new application, not marked
    o2 = await make_opening(host, bid, title="另一个岗位")
    r3 = await v1.apply(o2["id"], application_body())
    assert r3.status == 201
    total, items = await client.server.app[APPLICATIONS].list(bid)
    assert total == 3
    marks = {x["id"]: (x["same_phone"], x["same_phone_ids"]) for x in items}
    assert marks[first["application_id"]] == (1, [second["application_id"]])
    assert marks[second["application_id"]] == (1, [first["application_id"]])
    assert marks[(await r3.json())["application_id"]] == (0, [])


async def test_fifty_concurrent_submits_with_one_key_store_one(client, client_b, bid, opening):
    v = await applicant(client_b)
    key = uuid.uuid4().hex
    rs = await asyncio.gather(*(v.apply(opening["id"], application_body(), key) for _ in range(50)))
    assert [r.status for r in rs] == [201] * 50
    ids = {(await r.json())["application_id"] for r in rs}
    assert len(ids) == 1
    assert sum(1 for r in rs if "Idempotent-Replayed" not in r.headers) == 1
    redis = client.server.app[REDIS]
    assert await redis.zcard(keys.applications(bid)) == 1
    assert await redis.zcard(keys.opening_applications(bid, opening["id"])) == 1


@pytest.mark.app_settings(apply_per_viewer=100, apply_per_phone=100)
async def test_fifty_concurrent_keys_same_phone_store_fifty(client, client_b, bid, opening):
    v = await applicant(client_b)
    rs = await asyncio.gather(*(v.apply(opening["id"], application_body()) for _ in range(50)))
    assert [r.status for r in rs] == [201] * 50
    ids = {(await r.json())["application_id"] for r in rs}
    assert len(ids) == 50
    total, items = await client.server.app[APPLICATIONS].list(bid)
    assert total == 50 and {x["same_phone"] for x in items} == {49}


@pytest.mark.app_settings(apply_per_viewer=3, apply_per_ip=5)
async def test_rate_limits_answer_429_with_retry_after(
    app_factory, redis_url, app_settings, client, client_b, bid, opening
):
    v = await applicant(client_b)
    for i in range(3):
        r = await v.apply(opening["id"], application_body(phone=f"1390000000{i}"))
        assert r.status == 201
    r = await v.apply(opening["id"], application_body(phone="13900000009"))
    assert r.status == 429
    assert int(r.headers["Retry-After"]) >= 1
    err = (await r.json())["error"]
    assert err["code"] == "rate_limited" and err["limit"] == "viewer"
    # per IP: another viewer on the same address
    v2 = await applicant(await app_factory(redis_url, **app_settings))
    for i in range(2):
        assert (
            await v2.apply(opening["id"], application_body(phone=f"1370000000{i}"))
        ).status == 201
    r = await v2.apply(opening["id"], application_body(phone="13700000009"))
    assert r.status == 429 and (await r.json())["error"]["limit"] == "ip"
    total, _ = await client.server.app[APPLICATIONS].list(bid)
    assert total == 5


@pytest.mark.app_settings(apply_per_viewer=1)
async def test_replays_are_not_rate_limited(client_b, opening):
    v = await applicant(client_b)
    key = uuid.uuid4().hex
    assert (await v.apply(opening["id"], application_body(), key)).status == 201
    for _ in range(3):
        assert (await v.apply(opening["id"], application_body(), key)).status == 201


async def test_closed_draft_expired_and_unknown_openings(client_b, host, bid, opening):
    v = await applicant(client_b)
    draft = await make_opening(host, bid, status="draft")
    r = await v.apply(draft["id"], application_body())
    assert r.status == 409 and (await r.json())["error"]["code"] == "opening_closed"
    old = await make_opening(host, bid, deadline="2020-01-01")
    r = await v.apply(old["id"], application_body())
    assert r.status == 409 and (await r.json())["error"]["code"] == "deadline_passed"
    r = await v.apply("nosuch22", application_body())
    assert r.status == 404
    await host.delete(f"/api/broadcasts/{bid}/openings/{opening['id']}")
    r = await v.apply(opening["id"], application_body())
    assert r.status == 404
    assert await v.applied(bid) == []


async def test_csrf_and_viewer_cookie_are_required(client_b, opening):
    v = await applicant(client_b)
    r = await client_b.post(
        f"/api/openings/{opening['id']}/applications",
        json=application_body(),
        headers={"Idempotency-Key": "k1"},
    )
    assert r.status == 403 and (await r.json())["error"]["code"] == "csrf"
    r = await client_b.post(
        f"/api/openings/{opening['id']}/applications",
        json=application_body(),
        headers={"Idempotency-Key": "k1", "X-CSRF-Token": v.csrf, "Origin": "https://evil.test"},
    )
    assert r.status == 403


async def test_viewers_cannot_read_applications(client_b, bid, opening, moderator):
    v = await applicant(client_b)
    aid = (await (await v.apply(opening["id"], application_body())).json())["application_id"]
    for path in (
        f"/api/broadcasts/{bid}/applications",
        f"/api/broadcasts/{bid}/applications.csv",
        f"/api/broadcasts/{bid}/applications/counts",
        f"/api/broadcasts/{bid}/applications/{aid}",
        f"/api/openings/{opening['id']}/applications",
    ):
        r = await client_b.get(path)
        assert r.status in (401, 403), path
        assert "13800138000" not in await r.text()
    r = await client_b.delete(
        f"/api/broadcasts/{bid}/applications/{aid}", headers={"X-CSRF-Token": v.csrf}
    )
    assert r.status in (401, 403)
    r = await moderator.get(f"/api/broadcasts/{bid}/applications")
    assert r.status == 403


async def test_events_carry_counts_to_hosts_and_nothing_to_viewers(
    app_factory, redis_url, client, client_b, host, bid, opening
):
    console = await connect(client, bid, host=True)
    viewer = await connect(client_b, bid)
    v = await applicant(client_b)
    for i in range(3):
        assert (
            await v.apply(opening["id"], application_body(phone=f"1350000000{i}"))
        ).status == 201
    got = await console.wait_count("application.received", 3)
    assert [e["data"]["count"] for e in got] == [1, 2, 3]
    assert set(got[0]["data"]) == {"opening_id", "application_id", "count", "total", "same_phone"}
    aid = got[0]["data"]["application_id"]
    r = await host.patch(f"/api/broadcasts/{bid}/applications/{aid}", {"status": "contacted"})
    assert r.status == 200 and (await r.json())["status"] == "contacted"
    st = await console.wait_for("application.status")
    assert st["data"] == {"application_id": aid, "opening_id": opening["id"], "status": "contacted"}
    r = await host.delete(f"/api/broadcasts/{bid}/applications/{aid}")
    assert r.status == 200 and (await r.json())["count"] == 2
    deleted = await console.wait_for("application.deleted")
    assert deleted["data"]["count"] == 2
    # a late host console gets the counts in its snapshot
    late_host = await login(await app_factory(redis_url), "host2")
    late = await connect(late_host.client, bid, host=True)
    snap = late.of_type("snapshot")[0]["data"]
    assert snap["application_counts"] == {opening["id"]: 2} and snap["applications_total"] == 2
    # the viewer saw no application event and no personal data at all (events reach it in
    # order: any would have come before this one)
    await client.server.app[EVENT_LOG].publish(bid, "test.fence", {})
    await viewer.wait_for("test.fence")
    raw = orjson.dumps(viewer.events).decode()
    assert not viewer.of_type("application.received", "application.status", "application.deleted")
    for secret in ("1350000000", "+86135", "张伟", "zhangwei@example.com", "黑龙江工业学院"):
        assert secret not in raw
    assert "1350000000" not in orjson.dumps(console.events).decode()
    r = await client_b.get("/metrics")  # the instance that took the applications
    metrics = await r.text()
    assert 'jobcast_applications_total{outcome="new"} 3.0' in metrics
    assert "1350000000" not in metrics


async def test_status_workflow_lists_and_exports(client_b, host, bid, opening):
    o2 = await make_opening(host, bid, title="会计", employer={"name": "鸡西财务公司"})
    v = await applicant(client_b)
    ids = []
    for i, oid in enumerate([opening["id"], opening["id"], o2["id"]]):
        r = await v.apply(
            oid,
            application_body(phone=f"1330000000{i}", note="=cmd|' /C calc'!A0", name=f"申请人{i}"),
        )
        ids.append((await r.json())["application_id"])
    r = await host.patch(f"/api/broadcasts/{bid}/applications/{ids[0]}", {"status": "interview"})
    assert r.status == 200
    r = await host.patch(f"/api/broadcasts/{bid}/applications/{ids[0]}", {"status": "maybe"})
    assert r.status == 422 and "status" in (await r.json())["error"]["fields"]
    r = await host.patch(f"/api/broadcasts/{bid}/applications/{ids[0]}", {"name": "x"})
    assert r.status == 422
    r = await host.get(f"/api/broadcasts/{bid}/applications")
    body = await r.json()
    assert body["total"] == 3 and {x["id"] for x in body["applications"]} == set(ids)
    stamps = [x["created_at"] for x in body["applications"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    r = await host.get(f"/api/broadcasts/{bid}/applications?status=interview")
    assert [x["id"] for x in (await r.json())["applications"]] == [ids[0]]
    r = await host.get(f"/api/openings/{opening['id']}/applications")
    assert {x["id"] for x in (await r.json())["applications"]} == set(ids[:2])
    r = await host.get(f"/api/broadcasts/{bid}/applications?employer=鸡西财务公司")
    assert [x["id"] for x in (await r.json())["applications"]] == [ids[2]]
    r = await host.get(f"/api/broadcasts/{bid}/applications/counts")
    assert (await r.json())["application_counts"] == {opening["id"]: 2, o2["id"]: 1}
    for query, n in (("", 3), (f"?opening_id={opening['id']}", 2), ("?employer=鸡西财务公司", 1)):
        r = await host.get(f"/api/broadcasts/{bid}/applications.csv{query}")
        assert r.status == 200
        raw = await r.read()
        assert raw.startswith(b"\xef\xbb\xbf")
        lines = raw.decode("utf-8-sig").strip().splitlines()
        assert lines[0].startswith("申请编号,岗位编号,岗位名称,单位名称,姓名,手机号")
        assert len(lines) == 1 + n
    text = (await (await host.get(f"/api/broadcasts/{bid}/applications.csv")).read()).decode(
        "utf-8-sig"
    )
    assert ",13300000000," in text  # mainland numbers as dialled
    assert "'=cmd" in text and ",=cmd" not in text  # formula defused


async def test_purge_deletes_applications_older_than_retention(client, client_b, bid, opening):
    v = await applicant(client_b)
    for i in range(3):
        await v.apply(opening["id"], application_body(phone=f"1360000000{i}"))
    app = client.server.app
    svc = ApplicationService(app[REDIS], app[EVENT_LOG], OpeningService(app[REDIS], app[EVENT_LOG]))
    assert await svc.purge(30) == 0
    later = int(time.time() * 1000) + 31 * 86_400_000
    assert await svc.purge(30, now_ms=later) == 3
    total, _ = await svc.list(bid)
    assert total == 0 and await v.applied(bid) == []
    # the phone may apply again once its old application is gone
    assert (await v.apply(opening["id"], application_body(phone="13600000000"))).status == 201


async def test_a_consent_text_covers_exactly_the_details_it_names(client, opening):
    """The page's consent text names what its form asks (name, mobile, education, major) and
    nothing else; an application under it that carries another detail is refused, naming it."""
    import re
    from pathlib import Path

    from jobcast.openings.applicant import CONSENT_FIELDS, CONSENT_VERSION

    form = (Path(__file__).parent.parent / "web/pages/templates/viewer.html").read_text()
    start = form.index('<form id="apply-form"')
    asked = set(re.findall(r'name="([a-z_]+)"', form[start : form.index("</form>", start)]))
    assert asked - {"consent"} == set(CONSENT_FIELDS[CONSENT_VERSION])
    viewer = await applicant(client)
    body = {
        "name": "王芳",
        "phone": "13800138000",
        "degree": "bachelor",
        "major": "会计",
        "consent": True,
        "consent_version": CONSENT_VERSION,
    }
    r = await viewer.apply(opening["id"], body)
    assert r.status == 201, await r.text()
    r = await viewer.apply(opening["id"], {**body, "email": "a@example.cn", "note": "hi"})
    assert r.status == 422
    err = (await r.json())["error"]
    assert list(err["fields"]) == ["email"] and "note" in err["fields"]["email"]
