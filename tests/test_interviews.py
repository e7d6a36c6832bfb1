"""Interviews booked from the card: slots, invitations, one-tap bookings, the calendar file
and reminders, over real HTTP, sockets and Redis, on two processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiohttp
import icalendar
import orjson
import pytest
from aiohttp.test_utils import TestClient
from jobcast.core import keys
from jobcast.openings.interviews import owns_application
from jobcast.web.api.interviews import REMINDERS
from jobcast.web.appkeys import REDIS

from tests.helpers import Host, connect
from tests.openings_helpers import application_body, make_opening

HOUR = 3_600_000


class Person:
    """An applicant: a browser of their own (a cookie jar, so a viewer id), which may talk to
    either process."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.csrf = ""
        self.vid = ""

    @classmethod
    async def open(cls, client: TestClient) -> Person:
        p = cls(aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)))
        async with p.session.get(client.make_url("/api/me")) as r:
            me = await r.json()
        p.csrf, p.vid = me["csrf"], me.get("viewer_id", "")
        return p

    async def call(
        self, client: TestClient, method: str, path: str, json: Any = None
    ) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf}
        async with self.session.request(
            method, client.make_url(path), json=json, headers=headers
        ) as r:
            body = await r.read()
            ctype = r.content_type
            return r.status, (orjson.loads(body) if ctype == "application/json" else body)

    async def apply(self, client: TestClient, oid: str, **over: Any) -> str:
        headers = {"X-CSRF-Token": self.csrf, "Idempotency-Key": uuid.uuid4().hex}
        url = client.make_url(f"/api/openings/{oid}/applications")
        async with self.session.post(url, json=application_body(**over), headers=headers) as r:
            assert r.status == 201, await r.text()
            return (await r.json())["application_id"]

    async def book(self, client: TestClient, aid: str, sid: str) -> tuple[int, Any]:
        return await self.call(client, "POST", f"/api/me/interviews/{aid}/book", {"slot_id": sid})


@pytest.fixture
async def people() -> Any:
    made: list[Person] = []

    async def make(client: TestClient) -> Person:
        p = await Person.open(client)
        made.append(p)
        return p

    yield make
    for p in made:
        await p.session.close()


def _future(hours: float = 48) -> int:
    return int(time.time() * 1000) + int(hours * HOUR)


async def _slot(host: Host, bid: str, oid: str, **over: Any) -> dict[str, Any]:
    body = {"start": _future(), "duration": 30, "place": "3号楼 201", "capacity": 2, **over}
    r = await host.post(f"/api/broadcasts/{bid}/openings/{oid}/slots", body)
    assert r.status == 201, await r.text()
    return await r.json()


async def _invite(host: Host, bid: str, aid: str) -> dict[str, Any]:
    r = await host.post(f"/api/broadcasts/{bid}/applications/{aid}/invite")
    assert r.status == 200, await r.text()
    return await r.json()


async def _notices(client: TestClient, kind: str | None = None) -> list[dict[str, Any]]:
    entries = await client.server.app[REDIS].xrange(keys.NOTICES)
    out = [orjson.loads(fields[b"n"]) for _, fields in entries]
    return [n for n in out if kind is None or n["kind"] == kind]


async def test_slots_crud_and_coded_validation(client, host, bid):
    oid = (await make_opening(host, bid))["id"]
    base = f"/api/broadcasts/{bid}/openings/{oid}/slots"
    slot = await _slot(host, bid, oid, capacity=3, link="https://meet.example.com/x")
    assert slot["booked"] == 0 and slot["remaining"] == 3
    r = await host.patch(f"{base}/{slot['id']}", {"capacity": 5, "place": "4号楼"})
    assert r.status == 200, await r.text()
    assert (await r.json())["capacity"] == 5
    r = await host.get(base)
    [listed] = (await r.json())["slots"]
    assert listed["place"] == "4号楼" and listed["remaining"] == 5

    past = int(time.time() * 1000) - 60_000
    for body, field in (
        ({"start": _future(), "place": "x", "capacity": 0}, "capacity"),
        ({"start": _future(), "place": "x", "capacity": 1.5}, "capacity"),
        ({"start": _future(), "place": "x", "capacity": "two"}, "capacity"),
        ({"start": past, "place": "x", "capacity": 1}, "start"),
        ({"start": "tomorrow", "place": "x", "capacity": 1}, "start"),
        ({"start": _future(), "capacity": 1}, "place"),
        ({"start": _future(), "place": "x", "capacity": 1, "duration": 2}, "duration"),
        ({"start": _future(), "link": "javascript:x", "capacity": 1}, "link"),
    ):
        r = await host.post(base, body)
        assert r.status == 422, (body, await r.text())
        err = (await r.json())["error"]
        assert err["code"] == "bad_slot" and field in err["fields"], (body, err)
    r = await host.patch(f"{base}/{slot['id']}", {"start": past})
    assert r.status == 422 and (await r.json())["error"]["fields"].keys() == {"start"}
    r = await host.delete(f"{base}/{slot['id']}")
    assert r.status == 200 and (await r.json())["cancelled"] == []
    r = await host.get(base)
    assert (await r.json())["slots"] == []
    # a viewer (no session) may not touch slots
    r = await client.session.post(client.make_url(base), json={})
    assert r.status in (401, 403)


async def test_two_applicants_race_for_the_last_seat(client, client_b, host, bid, people):
    oid = (await make_opening(host, bid))["id"]
    slot = await _slot(host, bid, oid, capacity=1)
    a, b = await people(client), await people(client_b)
    aid_a = await a.apply(client, oid, phone="13800138001")
    aid_b = await b.apply(client_b, oid, phone="13800138002")
    console = await connect(client, bid, host=True)
    for aid in (aid_a, aid_b):
        assert (await _invite(host, bid, aid))["invited"]
    r = await host.get(f"/api/broadcasts/{bid}/applications/{aid_a}")
    assert (await r.json())["status"] == "interview"

    (sa, ra), (sb, rb) = await asyncio.gather(
        a.book(client, aid_a, slot["id"]), b.book(client_b, aid_b, slot["id"])
    )
    assert sorted([sa, sb]) == [200, 409], (ra, rb)
    winner, loser = (ra, rb) if sa == 200 else (rb, ra)
    assert loser["error"]["code"] == "slot_full"
    assert winner["booking"]["id"] == slot["id"] and winner["booking"]["remaining"] == 0
    seats = await client.server.app[REDIS].zcard(keys.interview_seats(bid, slot["id"]))
    assert seats == 1
    booked = await console.wait_for("interview.booked")
    assert booked["data"]["booked"] == 1 and booked["data"]["capacity"] == 1
    assert "phone" not in orjson.dumps(booked).decode()
    notices = await _notices(client, "interview.booked")
    assert len(notices) == 1
    assert notices[0]["to"]["application_id"] == winner["application_id"]


async def test_many_applicants_on_two_processes_fill_a_slot_exactly(
    client, client_b, host, bid, people
):
    oid = (await make_opening(host, bid))["id"]
    slot = await _slot(host, bid, oid, capacity=3)
    crowd = []
    for i in range(8):
        c = (client, client_b)[i % 2]
        p = await people(c)
        aid = await p.apply(c, oid, phone=f"1390000{i:04d}")
        await _invite(host, bid, aid)
        crowd.append((c, p, aid))
    results = await asyncio.gather(*(p.book(c, aid, slot["id"]) for c, p, aid in crowd))
    codes = sorted(status for status, _ in results)
    assert codes == [200] * 3 + [409] * 5
    assert all(r["error"]["code"] == "slot_full" for status, r in results if status == 409)
    redis = client.server.app[REDIS]
    assert await redis.zcard(keys.interview_seats(bid, slot["id"])) == 3
    assert len(await _notices(client, "interview.booked")) == 3
    assert await redis.zcard(keys.INTERVIEW_REMINDERS) == 3


async def test_moving_frees_the_old_seat_and_cancel_frees_it(client, host, bid, people, viewers):
    oid = (await make_opening(host, bid))["id"]
    first = await _slot(host, bid, oid, capacity=1)
    second = await _slot(host, bid, oid, capacity=1, start=_future(72))
    a, b = await people(client), await people(client)
    aid_a = await a.apply(client, oid, phone="13800138001")
    aid_b = await b.apply(client, oid, phone="13800138002")
    for aid in (aid_a, aid_b):
        await _invite(host, bid, aid)
    jar = a.session.cookie_jar
    sock = await viewers.open(client, bid, jar=jar)  # applicant a's own socket
    other = await viewers.open(client, bid)

    status, view = await a.book(client, aid_a, first["id"])
    assert status == 200 and view["booking"]["id"] == first["id"]
    mine = await sock.wait_for(
        lambda e: e["type"] == "interview.mine" and e["data"]["booking"] is not None
    )
    assert mine["data"]["application_id"] == aid_a and "seq" not in mine
    status, err = await b.book(client, aid_b, first["id"])
    assert status == 409 and err["error"]["code"] == "slot_full"
    # a moves to the second slot: the first is free again, b takes it
    status, view = await a.book(client, aid_a, second["id"])
    assert status == 200 and view["booking"]["id"] == second["id"]
    status, view_b = await b.book(client, aid_b, first["id"])
    assert status == 200, view_b
    moved = [n for n in await _notices(client, "interview.booked") if n["data"].get("previous")]
    assert len(moved) == 1 and moved[0]["data"]["previous"]["slot_id"] == first["id"]
    # booking the same slot again changes nothing
    status, again = await a.book(client, aid_a, second["id"])
    assert status == 200 and again["booking"]["booked"] == 1
    # cancel: the seat is free, a notice is queued; cancelling twice is a coded 404
    status, view = await a.call(client, "DELETE", f"/api/me/interviews/{aid_a}/booking")
    assert status == 200 and view["booking"] is None
    assert [s["remaining"] for s in view["slots"] if s["id"] == second["id"]] == [1]
    assert len(await _notices(client, "interview.cancelled")) == 1
    status, err = await a.call(client, "DELETE", f"/api/me/interviews/{aid_a}/booking")
    assert status == 404 and err["error"]["code"] == "booking_not_found"
    assert not other.of_type("interview.mine")


async def test_one_applicant_cannot_book_anothers_application(client, host, bid, people, viewers):
    oid = (await make_opening(host, bid))["id"]
    slot = await _slot(host, bid, oid)
    a, b = await people(client), await people(client)
    aid_a = await a.apply(client, oid, phone="13800138001")
    await b.apply(client, oid, phone="13800138002")
    # not invited yet: 404 for the applicant too
    status, err = await a.book(client, aid_a, slot["id"])
    assert status == 404 and err["error"]["code"] == "interview_not_found"
    await _invite(host, bid, aid_a)
    for path, method in (
        (f"/api/me/interviews/{aid_a}/book", "POST"),
        (f"/api/me/interviews/{aid_a}", "GET"),
        (f"/api/me/interviews/{aid_a}/booking", "DELETE"),
        (f"/api/me/interviews/{aid_a}/interview.ics", "GET"),
    ):
        status, err = await b.call(client, method, path, {"slot_id": slot["id"]})
        assert status == 404 and err["error"]["code"] == "interview_not_found", path
    status, listed = await b.call(client, "GET", "/api/me/interviews")
    assert listed == {"interviews": []}
    status, listed = await a.call(client, "GET", f"/api/me/interviews?bid={bid}")
    assert [i["application_id"] for i in listed["interviews"]] == [aid_a]
    # another device of the applicant, linked by confirming the phone number with its code,
    # may act for them, lists it and hears of it
    phone = "13800138001"  # a's number
    status, _ = await b.call(client, "POST", "/api/me/phone", {"phone": phone})
    assert status == 202
    [sent] = await _notices(client, "phone.code")
    code = sent["data"]["code"]
    status, _ = await b.call(client, "POST", "/api/me/phone/verify", {"phone": phone, "code": code})
    assert status == 200
    redis = client.server.app[REDIS]
    assert await owns_application(redis, b.vid, bid, aid_a)
    status, listed = await b.call(client, "GET", "/api/me/interviews")
    assert [i["application_id"] for i in listed["interviews"]] == [aid_a]
    sock = await viewers.open(client, bid, jar=b.session.cookie_jar)
    status, view = await b.book(client, aid_a, slot["id"])
    assert status == 200 and view["booking"]["id"] == slot["id"]
    await sock.wait_for(lambda e: e["type"] == "interview.mine" and e["data"]["booking"])
    # or linked some other way (keys.viewer_owned)
    c = await people(client)
    assert not await owns_application(redis, c.vid, bid, aid_a)
    await redis.sadd(keys.viewer_owned(c.vid), f"{bid}/{aid_a}")
    assert await owns_application(redis, c.vid, bid, aid_a)
    status, view = await c.call(client, "DELETE", f"/api/me/interviews/{aid_a}/booking")
    assert status == 200 and view["booking"] is None


async def test_deleting_a_booked_slot_needs_force_and_cancels(client, host, bid, people):
    oid = (await make_opening(host, bid))["id"]
    slot = await _slot(host, bid, oid)
    a = await people(client)
    aid = await a.apply(client, oid)
    await _invite(host, bid, aid)
    assert (await a.book(client, aid, slot["id"]))[0] == 200
    one = f"/api/broadcasts/{bid}/openings/{oid}/slots/{slot['id']}"
    redis = client.server.app[REDIS]

    async def details() -> dict[str, Any]:
        return orjson.loads(await redis.hget(keys.application(bid, aid), "interview"))

    # the application's interview details follow the booking (the applicant's own list)
    assert await details() == {
        "starts_at": slot["start"],
        "place": "3号楼 201",
        "link": "",
        "note": "",
    }
    r = await host.patch(one, {"capacity": 1, "place": "5号楼 101"})
    assert r.status == 200
    assert (await details())["place"] == "5号楼 101"
    r = await host.delete(one)
    assert r.status == 409 and (await r.json())["error"]["code"] == "slot_booked"
    r = await host.delete(one + "?force=1")
    assert r.status == 200 and (await r.json())["cancelled"] == [aid]
    assert (await details())["starts_at"] is None
    [notice] = await _notices(client, "interview.cancelled")
    assert notice["data"]["by"] == "host" and notice["to"]["application_id"] == aid
    status, view = await a.call(client, "GET", f"/api/me/interviews/{aid}")
    assert status == 200 and view["booking"] is None and view["slots"] == []
    assert await client.server.app[REDIS].zcard(keys.INTERVIEW_REMINDERS) == 0


async def test_the_calendar_file_parses(client, host, bid, people):
    oid = (await make_opening(host, bid, title="机电技术员, 夜班; 井下"))["id"]
    start = _future(30)
    slot = await _slot(host, bid, oid, start=start, duration=45, link="https://meet.example.com/j")
    a = await people(client)
    aid = await a.apply(client, oid)
    await _invite(host, bid, aid)
    status, err = await a.call(client, "GET", f"/api/me/interviews/{aid}/interview.ics")
    assert status == 409 and err["error"]["code"] == "not_booked"
    await a.book(client, aid, slot["id"])
    status, body = await a.call(client, "GET", f"/api/me/interviews/{aid}/interview.ics")
    assert status == 200
    cal = icalendar.Calendar.from_ical(body)
    [ev] = cal.walk("VEVENT")
    assert int(ev.decoded("dtstart").timestamp()) == start // 1000
    assert ev.decoded("duration").total_seconds() == 45 * 60
    assert "机电技术员, 夜班; 井下" in str(ev["summary"])
    assert str(ev["location"]) == "3号楼 201"
    uid = str(ev["uid"])
    # the same booking keeps its UID
    status, again = await a.call(client, "GET", f"/api/me/interviews/{aid}/interview.ics")
    assert str(icalendar.Calendar.from_ical(again).walk("VEVENT")[0]["uid"]) == uid


@pytest.mark.app_settings(interview_reminder_minutes=60)
async def test_a_reminder_is_queued_once_across_two_processes(client, client_b, host, bid, people):
    oid = (await make_opening(host, bid))["id"]
    start = _future(5)
    slot = await _slot(host, bid, oid, start=start)
    later_start = _future(10)
    later = await _slot(host, bid, oid, start=later_start)
    a = await people(client)
    aid = await a.apply(client, oid)
    await _invite(host, bid, aid)
    assert (await a.book(client, aid, slot["id"]))[0] == 200
    clock = {"now": time.time()}
    schedulers = []
    for c in (client, client_b):  # each process's own scheduler, on the test's clock
        sched = c.server.app[REMINDERS]
        await sched.close()  # its loop stops; the test drives the passes
        sched.now = lambda: clock["now"]
        schedulers.append(sched)

    async def both() -> list[int]:
        return list(await asyncio.gather(*(s.run_once() for s in schedulers)))

    assert await both() == [0, 0]  # five hours ahead: not due
    clock["now"] = (start - 61 * 60_000) / 1000
    assert await both() == [0, 0]
    clock["now"] = (start - 59 * 60_000) / 1000
    assert sorted(await both()) == [0, 1]
    assert await both() == [0, 0]
    [notice] = await _notices(client, "interview.reminder")
    assert notice["data"]["slot_id"] == slot["id"] and notice["data"]["minutes_before"] == 60
    assert notice["to"]["application_id"] == aid
    # moving the booking to a later slot gives a reminder for that one, not the old one
    assert (await a.book(client, aid, later["id"]))[0] == 200
    assert await both() == [0, 0]
    clock["now"] = (later_start - 30 * 60_000) / 1000
    assert sorted(await both()) == [0, 1]
    assert len(await _notices(client, "interview.reminder")) == 2


async def test_only_hosts_of_the_broadcast_manage_slots(
    client, host, bid, moderator, other_org_host
):
    oid = (await make_opening(host, bid))["id"]
    slot = await _slot(host, bid, oid)
    base = f"/api/broadcasts/{bid}/openings/{oid}/slots"
    r = await moderator.get(base)
    assert r.status == 403 and (await r.json())["error"]["code"] == "host_only"
    body = {"start": _future(), "place": "x", "capacity": 1}
    r = await moderator.post(base, body)
    assert r.status == 403
    for method, path, json in (
        ("get", base, None),
        ("post", base, body),
        ("patch", f"{base}/{slot['id']}", {"capacity": 3}),
        ("delete", f"{base}/{slot['id']}", None),
        ("get", f"/api/broadcasts/{bid}/interviews", None),
    ):
        call = getattr(other_org_host, method)
        r = await (call(path) if json is None else call(path, json))
        assert r.status == 404, (method, path, await r.text())
