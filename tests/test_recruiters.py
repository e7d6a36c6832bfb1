"""Employer accounts: a recruiter of employer A reaches A's openings and applicants only.

Every staff operation of the API document is walked as a recruiter of A against employer
B's ids (same organization, same broadcast): 404 for every route about a resource, 401/403
for the others. Then the recruiter's own view and a status change of its own applicant, and
the host's verification of an employer as the card shows it (real Redis, HTTP and sockets).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.chat_helpers import Viewers
from tests.test_security import APPLICATION, Caller, _body, _doc_ops, _fill, _viewer, _world

EMPLOYER_A = "鸡西市人民医院"


async def _login(client: Any, username: str, password: str = "s3cret-pass") -> Caller:
    base = str(client.make_url("")).rstrip("/")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        async with s.post(
            base + "/api/login", json={"username": username, "password": password}
        ) as r:
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf"]
    return Caller(base, {c.key: c.value for c in jar}, csrf)


async def _setup(client: Any) -> dict[str, Any]:
    w = await _world(client)  # employer B ("矿业"): w.oid, w.aid
    status, oa, _ = await w.host.request(
        "POST",
        f"/api/broadcasts/{w.bid}/openings",
        json={
            "title": "护士",
            "employer": EMPLOYER_A,
            "city": "鸡西",
            "salary_min": 4000,
            "salary_max": 6000,
            "status": "published",
        },
    )
    assert status == 201, oa
    applicant = await _viewer(client)
    status, aa, _ = await applicant.request(
        "POST",
        f"/api/openings/{oa['id']}/applications",
        json=APPLICATION,
        headers={"Idempotency-Key": "rec-a-1"},
    )
    assert status == 201, aa
    status, ea, _ = await w.host.request("POST", "/api/employers", json={"name": " 鸡西市人民医院"})
    assert status == 201, ea
    status, eb, _ = await w.host.request("POST", "/api/employers", json={"name": "矿业"})
    assert status == 201, eb
    status, made, _ = await w.host.request(
        "POST",
        f"/api/employers/{ea['id']}/recruiters",
        json={"username": "rec-a", "password": "s3cret-pass"},
    )
    assert status == 201, made
    rec = await _login(client, "rec-a")
    return {
        "w": w,
        "oa": oa["id"],
        "aa": aa["application_id"],
        "ea": ea["id"],
        "eb": eb["id"],
        "rec": rec,
    }


async def test_a_recruiter_of_a_gets_404_on_everything_of_b(client: Any) -> None:
    s = await _setup(client)
    w, rec = s["w"], s["rec"]
    walked = 0
    for method, path, op in _doc_ops():
        if op["x-jobcast-access"] not in ("host", "staff") or path == "/api/recruiter":
            continue
        url = _fill(path, w).replace("{eid}", s["eb"]).replace("{nid}", "n1")
        status, err, _ = await rec.request(method, url, json=_body(op, w))
        if "{" in path:
            assert status == 404, (method, path, status, err)
        else:
            assert status in (401, 403), (method, path, status, err)
        walked += 1
    assert walked > 40
    # Also A's own opening on host routes that are not a recruiter's: 404.
    for method, url in (
        ("GET", f"/api/broadcasts/{w.bid}/applications"),
        ("DELETE", f"/api/broadcasts/{w.bid}/applications/{s['aa']}"),
        ("POST", f"/api/broadcasts/{w.bid}/pin"),
        ("PATCH", f"/api/broadcasts/{w.bid}"),
        ("POST", f"/api/employers/{s['ea']}/verify"),
    ):
        status, err, _ = await rec.request(method, url, json={"opening_id": s["oa"]})
        assert status == 404, (method, url, status, err)
    # The host socket and the console page.
    cookie = "; ".join(f"{k}={v}" for k, v in rec.cookies.items())
    async with aiohttp.ClientSession() as sess:
        try:
            async with sess.ws_connect(
                f"{rec.base}/ws/host/b/{w.bid}", headers={"Cookie": cookie, "Origin": rec.base}
            ):
                raise AssertionError("a recruiter opened the host socket")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 404
    status, _, _ = await rec.request("GET", f"/host/b/{w.bid}")
    assert status == 404
    # Nothing of B changed.
    status, a, _ = await w.host.request("GET", f"/api/broadcasts/{w.bid}/applications/{w.aid}")
    assert status == 200 and a["status"] in ("viewed", "new", "submitted"), a


async def test_a_recruiter_sees_and_updates_its_own_applicants(client: Any) -> None:
    s = await _setup(client)
    w, rec = s["w"], s["rec"]
    status, view, _ = await rec.request("GET", "/api/recruiter")
    assert status == 200, view
    assert view["employer"]["id"] == s["ea"]
    [entry] = view["openings"]
    assert entry["opening"]["id"] == s["oa"]
    assert [a["id"] for a in entry["applications"]] == [s["aa"]]
    assert w.aid not in str(view) and w.oid not in str(view)
    status, a, _ = await rec.request(
        "PATCH", f"/api/broadcasts/{w.bid}/applications/{s['aa']}", json={"status": "contacted"}
    )
    assert status == 200, a
    assert a["status"] == "contacted"
    status, a, _ = await w.host.request("GET", f"/api/broadcasts/{w.bid}/applications/{s['aa']}")
    assert a["status"] == "contacted"
    # The same change to B's applicant: 404, and B's applicant is as it was.
    status, err, _ = await rec.request(
        "PATCH", f"/api/broadcasts/{w.bid}/applications/{w.aid}", json={"status": "contacted"}
    )
    assert status == 404, err
    # Interview slots of its own opening.
    status, slots, _ = await rec.request("GET", f"/api/broadcasts/{w.bid}/openings/{s['oa']}/slots")
    assert status == 200, slots
    # The recruiter page; the host home sends a recruiter to it.
    status, html, _ = await rec.request("GET", "/recruiter")
    assert status == 200 and "recruiter.js" in html
    status, _, resp = await rec.request("GET", "/host")
    assert status == 302 and resp.headers["Location"] == "/recruiter"


async def test_verified_mark_on_the_card(client: Any, viewers: Viewers) -> None:
    s = await _setup(client)
    w = s["w"]
    sock = await viewers.open(client, w.bid)
    note = "营业执照已核验，统一社会信用代码一致"
    status, rec, _ = await w.host.request(
        "POST", f"/api/employers/{s['ea']}/verify", json={"verified": True, "note": note}
    )
    assert status == 200, rec
    assert rec["verified"] is True and rec["by"] == "host1"
    ev = await sock.wait_for(
        lambda e: (
            e["type"] == "opening.updated"
            and e["data"]["opening"]["id"] == s["oa"]
            and e["data"]["opening"]["employer"]["verified_on"]
        )
    )
    emp = ev["data"]["opening"]["employer"]
    assert emp["verified"] is True and emp["id"] == s["ea"] and emp["verified_note"] == note
    status, _, _ = await w.host.request(
        "POST", f"/api/employers/{s['ea']}/verify", json={"verified": True}
    )
    assert status == 422  # a check says what was checked
    # The page without script: the mark with the note's date.
    async with aiohttp.ClientSession() as sess:
        async with sess.get(f"{w.host.base}/b/{w.bid}", headers={"Accept-Language": "zh-CN"}) as r:
            html = await r.text()
    assert "已认证" in html and emp["verified_on"] in html
    # An edit of the card keeps its employer's check.
    status, o, _ = await w.host.request(
        "PATCH", f"/api/broadcasts/{w.bid}/openings/{s['oa']}", json={"headcount": 3}
    )
    assert status == 200 and o["employer"]["verified_on"] == emp["verified_on"], o
    # A card of the verified employer made afterwards carries the check too (matched by name).
    status, later, _ = await w.host.request(
        "POST",
        f"/api/broadcasts/{w.bid}/openings",
        json={
            "title": "药剂师",
            "employer": "鸡西市人民医院 ",
            "city": "鸡西",
            "salary_min": 4000,
            "salary_max": 7000,
            "status": "published",
        },
    )
    assert status == 201, later
    assert later["employer"]["id"] == s["ea"]
    assert later["employer"]["verified_on"] == emp["verified_on"]
    # B's card is not touched by A's check.
    status, b, _ = await w.host.request("GET", f"/api/broadcasts/{w.bid}/openings/{w.oid}")
    assert b["employer"]["verified_on"] == "" and b["employer"]["id"] == ""
