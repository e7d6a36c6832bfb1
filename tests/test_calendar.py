"""预约: a scheduled broadcast as a calendar file, read back with an independent parser."""

from __future__ import annotations

from datetime import UTC, datetime

import icalendar
from jobcast.web.pages.calendar import fold

START = "2026-12-24T10:00:00+08:00"


async def _schedule(host, bid: str, **fields: object) -> None:
    r = await host.patch(f"/api/broadcasts/{bid}", {"scheduled_at": START, **fields})
    assert r.status == 200, await r.text()


async def test_a_scheduled_broadcast_downloads_as_a_calendar_entry(client, host, bid):
    title = "鸡西市 2026 冬季招聘会; 第二场, 线上直播 — a long title to fold across lines"
    await _schedule(host, bid, title=title, description="岗位 300+\n包食宿")
    r = await client.get(f"/b/{bid}/calendar.ics", headers={"Accept-Language": "zh-CN"})
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert f'filename="jobcast-{bid}.ics"' in r.headers["Content-Disposition"]
    raw = await r.read()
    assert all(len(line) <= 75 for line in raw.split(b"\r\n")), "lines are folded at 75 octets"
    cal = icalendar.Calendar.from_ical(raw)
    (event,) = cal.walk("VEVENT")
    assert str(event["SUMMARY"]) == title
    assert event.decoded("DTSTART") == datetime(2026, 12, 24, 2, 0, tzinfo=UTC)
    assert event.decoded("DURATION").total_seconds() == 3600
    url = str(client.make_url(f"/b/{bid}"))
    assert str(event["URL"]) == url
    desc = str(event["DESCRIPTION"])
    assert desc.startswith("岗位 300+\n包食宿") and url in desc and "在 Jobcast 观看" in desc
    (alarm,) = event.walk("VALARM")
    assert alarm.decoded("TRIGGER").total_seconds() == -600
    assert str(alarm["DESCRIPTION"]) == "直播将在 10 分钟后开始"
    uid = str(event["UID"])
    assert uid.startswith(f"broadcast-{bid}@")

    # Moved: the same entry (UID) with a later SEQUENCE, so calendars update it in place.
    await _schedule(host, bid, scheduled_at="2026-12-24T14:00:00+08:00")
    r = await client.get(f"/b/{bid}/calendar.ics", headers={"Accept-Language": "en"})
    (moved,) = icalendar.Calendar.from_ical(await r.read()).walk("VEVENT")
    assert str(moved["UID"]) == uid
    assert int(moved["SEQUENCE"]) >= int(event["SEQUENCE"])
    assert moved.decoded("DTSTART") == datetime(2026, 12, 24, 6, 0, tzinfo=UTC)
    assert "Watch and apply live on Jobcast" in str(moved["DESCRIPTION"])


async def test_no_calendar_without_a_start_time_or_a_broadcast(client, bid):
    r = await client.get(f"/b/{bid}/calendar.ics")
    assert r.status == 409
    assert (await r.json())["error"]["code"] == "not_scheduled"
    r = await client.get("/b/nosuchb0/calendar.ics")
    assert r.status == 404
    assert (await r.json())["error"]["code"] == "broadcast_not_found"


def test_folding_never_cuts_a_character():
    line = "SUMMARY:" + "招聘" * 60
    folded = fold(line)
    parts = folded.encode().split(b"\r\n ")
    assert all(len(p) <= 75 for p in parts)
    assert "".join(p.decode() for p in parts) == line
