"""My applications: statuses the applicant sees, live on their own sockets only, the list
across broadcasts by the viewer cookie, and a second device linked by a code sent to the
phone number (read here from the outbox stream, as the notifier's gateway gets it)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import orjson
from aiohttp.test_utils import TestClient
from jobcast.core import keys
from jobcast.web.api.openings import APPLICATIONS
from jobcast.web.appkeys import REDIS

from tests.chat_helpers import ok, wait_message
from tests.helpers import Host, connect
from tests.openings_helpers import application_body, make_opening

VIEWER_FIELDS = {
    "id",
    "broadcast_id",
    "opening_id",
    "opening_title",
    "employer",
    "applied_at",
    "status",
    "status_at",
    "interview",
}
INTERVIEW = {
    "starts_at": "2099-03-21T10:00:00+08:00",
    "place": "鸡西市人才市场三楼302",
    "link": "https://meet.example.cn/r/123",
    "note": "请带身份证",
}


class Device:
    """A browser: one cookie jar (so one viewer id), used against any app instance."""

    def __init__(self, viewers: Any) -> None:
        self.viewers = viewers
        self.jar = viewers.jar()
        self.session = aiohttp.ClientSession(cookie_jar=self.jar)
        viewers.sessions.append(self.session)
        self.csrf = ""

    async def _csrf(self, client: TestClient) -> str:
        if not self.csrf:
            async with self.session.get(client.make_url("/api/me")) as r:
                self.csrf = (await r.json())["csrf"]
        return self.csrf

    async def post(self, client: TestClient, path: str, body: Any, **headers: str) -> Any:
        h = {"X-CSRF-Token": await self._csrf(client), **headers}
        async with self.session.post(client.make_url(path), json=body, headers=h) as r:
            return r.status, await r.json()

    async def get(self, client: TestClient, path: str) -> Any:
        await self._csrf(client)
        async with self.session.get(client.make_url(path)) as r:
            return r.status, await r.json()

    async def apply(self, client: TestClient, oid: str, **over: Any) -> str:
        status, body = await self.post(
            client,
            f"/api/openings/{oid}/applications",
            application_body(**over),
            **{"Idempotency-Key": uuid.uuid4().hex},
        )
        assert status == 201, body
        return body["application_id"]

    async def mine(self, client: TestClient) -> list[dict[str, Any]]:
        status, body = await self.get(client, "/api/me/applications")
        assert status == 200, body
        return body["applications"]

    async def socket(self, client: TestClient, bid: str, **kw: Any) -> Any:
        await self._csrf(client)
        return await self.viewers.open(client, bid, jar=self.jar, **kw)


async def notices(client: TestClient, kind: str) -> list[dict[str, Any]]:
    rows = await client.server.app[REDIS].xrange(keys.NOTICES)
    got = [orjson.loads(fields[b"n"]) for _id, fields in rows]
    return [n for n in got if n["kind"] == kind]


async def test_a_status_change_reaches_the_applicant_alone(
    client, client_b, host: Host, bid, opening, viewers
):
    me = Device(viewers)
    aid = await me.apply(client, opening["id"], phone="13900001111", name="李娜")
    mine_b = await me.socket(client_b, bid)  # the applicant, on the other process
    other = await viewers.open(client_b, bid)  # another viewer
    console = await connect(client, bid, host=True)
    r = await host.patch(
        f"/api/broadcasts/{bid}/applications/{aid}",
        {"status": "interview", "interview": INTERVIEW},
    )
    assert r.status == 200, await r.text()
    stored = await r.json()
    assert stored["status"] == "interview" and stored["interview"]["place"] == INTERVIEW["place"]
    ev = await mine_b.wait_for(
        lambda e: e["type"] == "application.mine" and e["data"]["status"] == "interview"
    )
    d = ev["data"]
    assert "seq" not in ev and set(d) == VIEWER_FIELDS
    assert d["id"] == aid and d["opening_id"] == opening["id"] and d["broadcast_id"] == bid
    assert d["opening_title"] == opening["title"] and d["employer"] == opening["employer"]["name"]
    assert d["interview"] == {
        "starts_at": 4077741600000,
        "place": INTERVIEW["place"],
        "link": INTERVIEW["link"],
        "note": INTERVIEW["note"],
    }
    assert d["status_at"] >= d["applied_at"] > 0
    assert (
        "13900001111" not in orjson.dumps(ev).decode() and "李娜" not in orjson.dumps(ev).decode()
    )
    # the host console gets the host event, never the private one
    st = await console.wait_for("application.status")
    assert st["data"] == {"application_id": aid, "opening_id": opening["id"], "status": "interview"}
    # a fence: a later public event reaches the others with nothing private before it
    await ok(other, "chat.send", {"text": "fence"})
    for sock in (other, console):
        await wait_message(sock, lambda m: m["text"] == "fence")
        assert not sock.of_type("application.mine")
        assert INTERVIEW["place"] not in orjson.dumps(sock.events).decode()
    # late joiners: a replay from the start and a snapshot have nothing of it
    for late in (await viewers.open(client, bid, since="1-0"), await viewers.open(client_b, bid)):
        raw = orjson.dumps(late.events).decode()
        assert not late.of_type("application.mine", "application.status")
        assert INTERVIEW["place"] not in raw and aid not in raw
    # the notice to the applicant, in the outbox, in the language they applied in
    got = [
        n for n in await notices(client, "application.status") if n["to"]["application_id"] == aid
    ]
    assert len(got) == 1
    n = got[0]
    assert n["broadcast_id"] == bid and n["lang"] == "zh-CN"
    assert n["to"] == {"phone": "+8613900001111", "name": "李娜", "application_id": aid}
    assert n["data"] == {
        "application_id": aid,
        "opening_id": opening["id"],
        "opening_title": opening["title"],
        "employer_name": opening["employer"]["name"],
        "status": "interview",
        "status_at": d["status_at"],
        "starts_at": 4077741600000,
        "place": INTERVIEW["place"],
        "link": INTERVIEW["link"],
        "note": INTERVIEW["note"],
    }
    # the same again changes nothing: no second notice, no second event
    r = await host.patch(f"/api/broadcasts/{bid}/applications/{aid}", {"status": "interview"})
    assert (await r.json())["interview"]["place"] == INTERVIEW["place"]
    assert len(await notices(client, "application.status")) == 1
    # and a later status drops the interview's details from what the applicant sees
    await host.patch(f"/api/broadcasts/{bid}/applications/{aid}", {"status": "hired"})
    ev = await mine_b.wait_for(
        lambda e: e["type"] == "application.mine" and e["data"]["status"] == "hired"
    )
    assert ev["data"]["interview"] is None


async def test_opening_an_application_marks_it_viewed_once(client, host, bid, opening, viewers):
    me = Device(viewers)
    aid = await me.apply(client, opening["id"])
    sock = await me.socket(client, bid)
    one = f"/api/broadcasts/{bid}/applications/{aid}"
    r = await host.get(one + "?peek=1")  # the console adding a row: not viewed
    assert (await r.json())["status"] == "submitted"
    r = await host.get(one)
    assert (await r.json())["status"] == "viewed"
    ev = await sock.wait_for("application.mine")
    assert ev["data"]["status"] == "viewed"
    await host.patch(one, {"status": "contacted"})
    r = await host.get(one)  # opening it again leaves the status as it is
    assert (await r.json())["status"] == "contacted"
    kinds = [n["data"]["status"] for n in await notices(client, "application.status")]
    assert kinds == ["viewed", "contacted"]
    assert [(await me.mine(client))[0]["status"]] == ["contacted"]


async def test_my_applications_lists_only_my_own(client, client_b, host, bid, opening, viewers):
    bid2 = await host.create_broadcast("第二场")
    o2 = await make_opening(host, bid2, title="护士", employer={"name": "鸡西市人民医院"})
    me, someone = Device(viewers), Device(viewers)
    first = await me.apply(client, opening["id"], phone="13900002222")
    theirs = await someone.apply(client, opening["id"], phone="13900003333")
    second = await me.apply(client_b, o2["id"], phone="13900002222")
    got = await me.mine(client_b)
    assert [a["id"] for a in got] == [second, first]  # newest first, across broadcasts
    assert all(set(a) == VIEWER_FIELDS for a in got)
    assert {a["broadcast_id"] for a in got} == {bid, bid2}
    assert got[0]["opening_title"] == "护士" and got[0]["status"] == "submitted"
    raw = orjson.dumps(got).decode()
    assert theirs not in raw and "13900003333" not in raw and "13900002222" not in raw
    assert [a["id"] for a in await someone.mine(client)] == [theirs]
    fresh = Device(viewers)
    assert await fresh.mine(client) == []
    # the /me page renders the same list for this device (and the viewer page has the tab)
    async with me.session.get(client.make_url("/me")) as r:
        page = await r.text()
    assert r.status == 200 and second in page and first in page and theirs not in page
    async with me.session.get(client.make_url(f"/b/{bid}")) as r:
        assert 'id="t-mine"' in await r.text()
    # a deleted application leaves the list
    await host.delete(f"/api/broadcasts/{bid}/applications/{first}")
    assert [a["id"] for a in await me.mine(client)] == [second]
    # no phone number appears in a key name
    names = [k.decode() async for k in client.server.app[REDIS].scan_iter("jc:me:*")]
    assert names and not any("13900002222" in k for k in names)


async def test_a_code_sent_to_the_phone_links_a_second_device(
    client, client_b, host, bid, opening, viewers
):
    phone = "13900004444"
    first = Device(viewers)
    aid = await first.apply(client, opening["id"], phone=phone)
    second = Device(viewers)
    assert await second.mine(client_b) == []
    # a number without applications gets the same answer, and no code is sent to it
    status, body = await second.post(client_b, "/api/me/phone", {"phone": "13900009999"})
    assert (status, body) == (202, {"sent": True})
    status, body = await second.post(client_b, "/api/me/phone", {"phone": phone})
    assert (status, body) == (202, {"sent": True})
    codes = await notices(client, "phone.code")
    assert [n["to"] for n in codes] == [{"phone": "+86" + phone}]
    code = codes[0]["data"]["code"]
    assert len(code) == 6 and code.isdigit() and codes[0]["data"]["expires_at"] > 0
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1, 0):
        status, body = await second.post(
            client_b, "/api/me/phone/verify", {"phone": phone, "code": wrong}
        )
        assert status == 422 and body["error"]["code"] == "code_invalid"
        assert body["error"]["tries_left"] == left
    # after five wrong codes even the right one is refused: a new code is needed
    status, body = await second.post(
        client_b, "/api/me/phone/verify", {"phone": phone, "code": code}
    )
    assert status == 422 and body["error"]["code"] == "code_spent"
    assert await second.mine(client_b) == []
    await second.post(client_b, "/api/me/phone", {"phone": "+86 139 0000 4444"})
    code = (await notices(client, "phone.code"))[-1]["data"]["code"]
    status, body = await second.post(
        client_b, "/api/me/phone/verify", {"phone": phone, "code": code}
    )
    assert status == 200, body
    assert [a["id"] for a in body["applications"]] == [aid]
    assert body["phones"] == ["+86139****4444"]
    assert [a["id"] for a in await second.mine(client)] == [aid]
    # the code is used up
    status, body = await second.post(
        client_b, "/api/me/phone/verify", {"phone": phone, "code": code}
    )
    assert status == 422 and body["error"]["code"] == "code_invalid"
    # a status change reaches the second device's socket too, on the other process
    sock = await second.socket(client_b, bid)
    await host.patch(f"/api/broadcasts/{bid}/applications/{aid}", {"status": "contacted"})
    ev = await sock.wait_for("application.mine")
    assert ev["data"]["id"] == aid and ev["data"]["status"] == "contacted"
    # an application made later with the number shows on the second device as well
    o2 = await make_opening(host, bid, title="电工")
    later = await first.apply(client, o2["id"], phone=phone)
    assert [a["id"] for a in await second.mine(client)] == [later, aid]
    # codes to one number are rate-limited (three per hour)
    status, body = await second.post(client_b, "/api/me/phone", {"phone": phone})
    assert status == 202
    status, body = await second.post(client_b, "/api/me/phone", {"phone": phone})
    assert status == 429 and body["error"]["code"] == "rate_limited"
    status, body = await second.post(client_b, "/api/me/phone", {"phone": "12"})
    assert status == 422 and "phone" in body["error"]["fields"]


async def test_old_status_words_read_as_the_new_ones(client, host, bid, opening, viewers):
    me = Device(viewers)
    old_new = await me.apply(client, opening["id"], phone="13900005555")
    old_rejected = await me.apply(client, opening["id"], phone="13900006666")
    redis = client.server.app[REDIS]
    # as stored before the applicant could see statuses
    await redis.hset(keys.application(bid, old_new), "status", "new")
    await redis.hset(keys.application(bid, old_rejected), "status", "rejected")
    await redis.hdel(keys.application(bid, old_new), "status_at", "lang")
    svc = client.server.app[APPLICATIONS]
    assert (await svc.get(bid, old_new))["status"] == "submitted"
    assert (await svc.get(bid, old_rejected))["status"] == "not_selected"
    assert {a["id"]: a["status"] for a in await me.mine(client)} == {
        old_new: "submitted",
        old_rejected: "not_selected",
    }
    r = await host.get(f"/api/broadcasts/{bid}/applications?status=submitted")
    assert [a["id"] for a in (await r.json())["applications"]] == [old_new]
    r = await host.get(f"/api/broadcasts/{bid}/applications?status=rejected")  # the old word
    assert [a["id"] for a in (await r.json())["applications"]] == [old_rejected]
    # opening the old "new" one marks it viewed like any submitted one
    r = await host.get(f"/api/broadcasts/{bid}/applications/{old_new}")
    assert (await r.json())["status"] == "viewed"
    # the API still takes the old words, stored as the new ones
    r = await host.patch(f"/api/broadcasts/{bid}/applications/{old_new}", {"status": "rejected"})
    assert (await r.json())["status"] == "not_selected"
    assert await redis.hget(keys.application(bid, old_new), "status") == b"not_selected"
    n = (await notices(client, "application.status"))[-1]
    assert n["lang"] == "zh-CN" and n["data"]["status"] == "not_selected"


async def test_interview_details_are_checked(client, host, bid, opening, viewers):
    me = Device(viewers)
    aid = await me.apply(client, opening["id"])
    one = f"/api/broadcasts/{bid}/applications/{aid}"
    for body, field in (
        ({"status": "interview", "interview": {"link": "javascript:alert(1)"}}, "interview.link"),
        (
            {"status": "interview", "interview": {"starts_at": "2099-03-21T10:00"}},
            "interview.starts_at",
        ),
        ({"status": "interview", "interview": {"place": "x" * 201}}, "interview.place"),
        ({"status": "interview", "interview": {"room": "1"}}, "interview.room"),
        ({"status": "hired", "interview": {"place": "x"}}, "interview"),
        ({"status": "maybe"}, "status"),
    ):
        r = await host.patch(one, body)
        assert r.status == 422, body
        assert field in (await r.json())["error"]["fields"], (body, await r.json())
    r = await host.patch(one, {"status": "interview", "interview": {"starts_at": 4077741600000}})
    assert (await r.json())["interview"] == {
        "starts_at": 4077741600000,
        "place": "",
        "link": "",
        "note": "",
    }


async def test_the_language_applied_in_is_the_notices(client, host, bid, opening, viewers):
    me = Device(viewers)
    status, body = await me.post(
        client,
        f"/api/openings/{opening['id']}/applications",
        application_body(),
        **{"Idempotency-Key": uuid.uuid4().hex, "Accept-Language": "en-US,en;q=0.9"},
    )
    assert status == 201
    aid = body["application_id"]
    await host.patch(f"/api/broadcasts/{bid}/applications/{aid}", {"status": "contacted"})
    assert (await notices(client, "application.status"))[-1]["lang"] == "en"
