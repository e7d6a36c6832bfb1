"""Openings: validation, host-only writes, viewers see only published ones, filters, the lineup,
pin / pin-next / unpin across two app instances, the pinned card in a late viewer's snapshot."""

from __future__ import annotations

import pytest

from tests.helpers import connect
from tests.openings_helpers import make_opening, opening_body


async def test_create_get_update_delete(host, bid):
    o = await make_opening(host, bid, status="draft")
    assert o["status"] == "draft" and o["employer"]["verified"] is True
    assert o["education"] == "associate" and o["education_label"] == "大专"
    assert o["deadline"] == "2099-08-31" and o["deadline_ms"] > 0
    r = await host.patch(f"/api/broadcasts/{bid}/openings/{o['id']}", {"salary_max": 9000})
    assert r.status == 200, await r.text()
    changed = await r.json()
    assert changed["salary_max"] == 9000 and changed["title"] == o["title"]
    r = await host.delete(f"/api/broadcasts/{bid}/openings/{o['id']}")
    assert r.status == 200
    r = await host.get(f"/api/broadcasts/{bid}/openings/{o['id']}")
    assert r.status == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "岗" * 61}, "title"),
        ({"employer": {"name": ""}}, "employer.name"),
        ({"employer": {"name": "单" * 101}}, "employer.name"),
        ({"employer": {"name": "x", "verified": "maybe"}}, "employer.verified"),
        ({"city": ""}, "city"),
        ({"city": "城" * 41}, "city"),
        ({"address": "址" * 201}, "address"),
        ({"salary_min": None}, "salary_min"),
        ({"salary_max": None}, "salary_max"),
        ({"salary_min": "面议"}, "salary_min"),
        ({"salary_min": 0}, "salary_min"),
        ({"salary_min": 9000, "salary_max": 5000}, "salary_max"),
        ({"salary_max": 10**7}, "salary_max"),
        ({"headcount": 0}, "headcount"),
        ({"headcount": "many"}, "headcount"),
        ({"education": "幼儿园"}, "education"),
        ({"majors": ["专" * 41]}, "majors"),
        ({"majors": [str(i) for i in range(21)]}, "majors"),
        ({"majors": 5}, "majors"),
        ({"experience": "年" * 41}, "experience"),
        ({"description": "描" * 4001}, "description"),
        ({"benefits": ["福" * 31]}, "benefits"),
        ({"deadline": "next week"}, "deadline"),
        ({"deadline": "2026-02-30"}, "deadline"),
        ({"tags": [str(i) for i in range(11)]}, "tags"),
        ({"tags": ["标" * 17]}, "tags"),
        ({"status": "live"}, "status"),
        ({"salary": 5000}, "salary"),
    ],
)
async def test_every_bad_field_is_named_in_a_422(host, bid, change, field):
    r = await host.post(f"/api/broadcasts/{bid}/openings", opening_body(**change))
    assert r.status == 422, await r.text()
    err = (await r.json())["error"]
    assert err["code"] == "invalid"
    assert field in err["fields"], err


async def test_several_bad_fields_are_all_named(host, bid):
    r = await host.post(
        f"/api/broadcasts/{bid}/openings", {"title": "", "city": "", "salary_min": 3}
    )
    fields = (await r.json())["error"]["fields"]
    assert {"title", "city", "employer.name", "salary_max"} <= set(fields)


async def test_writes_are_host_only(client_b, host, bid, moderator):
    o = await make_opening(host, bid)
    viewer = client_b
    r = await viewer.post(f"/api/broadcasts/{bid}/openings", json=opening_body())
    assert r.status in (401, 403)
    r = await viewer.post(f"/api/broadcasts/{bid}/pin", json={"opening_id": o["id"]})
    assert r.status in (401, 403)
    r = await moderator.post(f"/api/broadcasts/{bid}/openings", opening_body())
    assert r.status == 403
    # a host without the CSRF header
    r = await host.client.post(f"/api/broadcasts/{bid}/openings", json=opening_body())
    assert r.status == 403


async def test_viewers_only_see_published_and_filters_work(client_b, host, bid):
    p1 = await make_opening(host, bid, title="技术员", city="鸡西市", education="大专")
    await make_opening(host, bid, title="草稿岗位", status="draft")
    await make_opening(host, bid, title="已关闭岗位", status="closed")
    await make_opening(
        host, bid, title="研发工程师", city="密山市", education="本科", majors=["材料科学与工程"]
    )
    await make_opening(host, bid, title="司机", city="鸡西市", education="不限", majors=[])
    viewer = client_b

    async def titles(query: str = "") -> list[str]:
        r = await viewer.get(f"/api/broadcasts/{bid}/openings{query}")
        assert r.status == 200, await r.text()
        return [o["title"] for o in (await r.json())["openings"]]

    assert await titles() == ["技术员", "研发工程师", "司机"]
    assert await titles("?city=鸡西") == ["技术员", "司机"]
    assert await titles("?education=associate") == ["技术员", "司机"]
    assert await titles("?education=本科") == ["技术员", "研发工程师", "司机"]
    assert await titles("?major=材料") == ["研发工程师", "司机"]  # 司机: any major
    assert await titles("?city=密山&major=材料&education=bachelor") == ["研发工程师"]
    r = await viewer.get(f"/api/broadcasts/{bid}/openings?education=nonsense")
    assert r.status == 422 and "education" in (await r.json())["error"]["fields"]
    r = await host.get(f"/api/broadcasts/{bid}/openings?status=draft")
    draft_id = (await r.json())["openings"][0]["id"]
    r = await viewer.get(f"/api/broadcasts/{bid}/openings/{draft_id}")
    assert r.status == 404
    r = await viewer.get(f"/api/broadcasts/{bid}/openings/{p1['id']}")
    assert r.status == 200
    # hosts see every status
    r = await host.get(f"/api/broadcasts/{bid}/openings")
    assert len((await r.json())["openings"]) == 5


async def test_lineup_reorder_and_pin_next(host, bid):
    ids = [(await make_opening(host, bid, title=f"岗位{i}"))["id"] for i in range(4)]
    r = await host.client.put(
        f"/api/broadcasts/{bid}/lineup",
        json={"order": [ids[2], ids[0]]},
        headers={"X-CSRF-Token": host.csrf},
    )
    assert r.status == 200, await r.text()
    order = (await r.json())["order"]
    assert order == [ids[2], ids[0], ids[1], ids[3]]
    r = await host.client.put(
        f"/api/broadcasts/{bid}/lineup",
        json={"order": ["nosuchid"]},
        headers={"X-CSRF-Token": host.csrf},
    )
    assert r.status == 422 and "order" in (await r.json())["error"]["fields"]
    # hide ids[1]: pin-next skips it
    await host.patch(f"/api/broadcasts/{bid}/openings/{ids[1]}", {"status": "draft"})
    seen = []
    for _ in range(3):
        r = await host.post(f"/api/broadcasts/{bid}/pin/next")
        assert r.status == 200, await r.text()
        seen.append((await r.json())["pinned"]["opening"]["id"])
    assert seen == [ids[2], ids[0], ids[3]]
    r = await host.post(f"/api/broadcasts/{bid}/pin/next")
    assert r.status == 409 and (await r.json())["error"]["code"] == "lineup_end"
    r = await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": ids[1]})
    assert r.status == 409 and (await r.json())["error"]["code"] == "not_published"


async def test_pin_next_and_unpin_reach_viewers_on_two_instances(client, client_b, host, bid):
    first = await make_opening(host, bid, title="第一个岗位")
    second = await make_opening(host, bid, title="第二个岗位")
    va = await connect(client, bid)
    vb = await connect(client_b, bid)
    r = await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": first["id"]})
    assert r.status == 200, await r.text()
    for v in (va, vb):
        ev = await v.wait_for("card.pinned")
        assert ev["data"]["opening"]["id"] == first["id"]
        assert ev["data"]["opening"]["title"] == "第一个岗位"
    r = await host.post(f"/api/broadcasts/{bid}/pin/next")
    assert (await r.json())["pinned"]["opening"]["id"] == second["id"]
    for v in (va, vb):
        ev = await v.wait_for(
            lambda e: e["type"] == "card.pinned" and e["data"]["opening"]["id"] == second["id"]
        )
        assert ev["seq"]
    r = await host.delete(f"/api/broadcasts/{bid}/pin")
    assert r.status == 200 and (await r.json())["unpinned"]["opening_id"] == second["id"]
    for v in (va, vb):
        ev = await v.wait_for("card.unpinned")
        assert ev["data"]["opening_id"] == second["id"]
    r = await client_b.get(f"/api/broadcasts/{bid}/pin")
    assert (await r.json())["pinned"] is None


async def test_pin_through_the_host_socket(client, client_b, host, bid):
    o = await make_opening(host, bid)
    console = await connect(client, bid, host=True)
    viewer = await connect(client_b, bid)
    await console.send("card.pin", {"opening_id": o["id"]}, id_=1)
    ack = await console.wait_for(lambda e: e["type"] == "ack" and e.get("id") == 1)
    assert ack["data"]["pinned"]["opening"]["id"] == o["id"]
    assert (await viewer.wait_for("card.pinned"))["data"]["opening"]["id"] == o["id"]
    await console.send("card.unpin", {}, id_=2)
    await viewer.wait_for("card.unpinned")
    # a viewer socket cannot pin
    await viewer.send("card.pin", {"opening_id": o["id"]}, id_=3)
    err = await viewer.wait_for(lambda e: e["type"] == "error" and e.get("id") == 3)
    assert err["data"]["code"] == "host_only"


async def test_late_viewer_snapshot_holds_the_pinned_card(client, client_b, host, bid):
    await make_opening(host, bid, title="草稿", status="draft")
    o = await make_opening(host, bid, title="正在介绍的岗位")
    await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": o["id"]})
    late = await connect(client_b, bid)
    snap = late.of_type("snapshot")[0]["data"]
    assert snap["pinned"]["opening"]["id"] == o["id"]
    assert snap["pinned"]["opening"]["title"] == "正在介绍的岗位"
    assert [x["id"] for x in snap["openings"]] == [o["id"]]  # no drafts for viewers
    assert "application_counts" not in snap
    console = await connect(client, bid, host=True)
    hsnap = console.of_type("snapshot")[0]["data"]
    assert len(hsnap["openings"]) == 2
    assert hsnap["application_counts"] == {x["id"]: 0 for x in hsnap["openings"]}


async def test_hiding_the_pinned_opening_unpins_it(client, host, bid):
    o = await make_opening(host, bid)
    await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": o["id"]})
    v = await connect(client, bid)
    r = await host.patch(f"/api/broadcasts/{bid}/openings/{o['id']}", {"salary_max": 8800})
    assert r.status == 200
    ev = await v.wait_for(
        lambda e: e["type"] == "card.pinned" and e["data"]["opening"]["salary_max"] == 8800
    )
    assert ev["data"]["opening"]["id"] == o["id"]
    upd = await v.wait_for("opening.updated")
    assert upd["data"]["opening"]["salary_max"] == 8800
    await host.patch(f"/api/broadcasts/{bid}/openings/{o['id']}", {"status": "closed"})
    assert (await v.wait_for("card.unpinned"))["data"]["opening_id"] == o["id"]
    assert (await v.wait_for("opening.removed"))["data"]["opening_id"] == o["id"]
    lineup = await v.wait_for(lambda e: e["type"] == "lineup.updated" and not e["data"]["order"])
    assert lineup["data"]["order"] == []
    r = await host.get(f"/api/broadcasts/{bid}/pin")
    assert (await r.json())["pinned"] is None


async def test_viewers_never_get_draft_events(client, host, bid):
    v = await connect(client, bid)
    console = await connect(client, bid, host=True)
    d = await make_opening(host, bid, title="内部草稿", status="draft")
    saved = await console.wait_for("opening.saved")
    assert saved["data"]["opening"]["id"] == d["id"]
    p = await make_opening(host, bid, title="公开岗位")
    await v.wait_for(lambda e: e["type"] == "opening.updated")
    assert all(d["id"] not in str(e) for e in v.events)
    assert p["id"] in str(v.events)


async def test_unknown_broadcast_and_opening(client, host):
    r = await host.post("/api/broadcasts/nosuch22/openings", opening_body())
    assert r.status == 404
    r = await client.get("/api/broadcasts/nosuch22/openings")
    assert r.status == 404
