"""Interviews in a real browser (Debian's Chromium through Playwright): the host adds an
interview time in the console and invites an application; the phone viewer (390x844, zh-CN)
who sent it picks the time in one tap, sees the booking, reloads and still sees it; the host
sees the booking in the applications table and the slot's count.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.browserkit import (
    PHONE_390,
    a11y_problems,
    chromium,
    host_console,
    new_page,
    real_errors,
    require_browser,
)
from tests.openings_helpers import application_body, make_opening

pytestmark = pytest.mark.browser

APPLY_JS = """async ([oid, body]) => {
  const r = await JC.viewer.api("POST", "/api/openings/" + oid + "/applications", body,
    { headers: { "Idempotency-Key": JC.uuid() } });
  return r.application_id;
}"""


async def test_host_invites_and_the_phone_viewer_books_in_one_tap(client, host, bid):
    require_browser()
    opening = await make_opening(host, bid, title="煤矿机电技术员")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        console = await host_console(browser, base, bid)
        viewer = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await viewer.goto(f"/b/{bid}")
        await viewer.wait_for_function("() => document.documentElement.dataset.live === 'live'")
        aid = await viewer.evaluate(APPLY_JS, [opening["id"], application_body()])
        box = viewer.locator("#interviews")
        assert await box.is_hidden()

        # the host adds an interview time for the opening (local time, two days ahead)
        panel = console.locator("#iv-panel")
        await panel.get_by_text("No interview times yet").wait_for()
        start = (datetime.now() + timedelta(days=2)).replace(hour=10, minute=0, second=0)
        await panel.get_by_label("Start").fill(start.strftime("%Y-%m-%dT%H:%M"))
        await panel.get_by_label("Seats", exact=True).fill("1")
        await panel.get_by_label("Place").fill("鸡西市人才市场 3 楼")
        await panel.get_by_role("button", name="Add interview time").click()
        await panel.get_by_text("0 of 1 booked").wait_for()

        # ... and invites the application from its row
        row = console.locator(f'#apps-rows tr[data-app="{aid}"]')
        await row.get_by_role("button", name="Invite to interview").click()
        await row.get_by_text("Invited: choosing a time").wait_for()
        assert await row.locator("select").input_value() == "interview"

        # the phone shows the invitation with the time as a big choice; one tap books it
        await box.get_by_text("面试邀请").wait_for()
        choice = box.locator("button.iv-slot")
        await choice.wait_for()
        assert "剩余 1 个名额" in await choice.inner_text()
        size = await choice.bounding_box()
        assert size is not None and size["height"] >= 44 and size["width"] >= 300, size
        await choice.tap()
        booked = box.locator(".iv-booked")
        await booked.get_by_text("你的面试").wait_for()
        assert "鸡西市人才市场 3 楼" in await booked.inner_text()
        assert await box.locator("button.iv-slot").count() == 0
        ics = booked.get_by_role("link", name="添加到日历")
        assert await ics.get_attribute("href") == f"/api/me/interviews/{aid}/interview.ics"

        # the host sees it live
        await row.get_by_text("Interview booked").wait_for()
        await panel.get_by_text("1 of 1 booked").wait_for()

        # a reload keeps it, and the calendar file is there
        await viewer.reload()
        await box.locator(".iv-booked").get_by_text("你的面试").wait_for()
        status = await viewer.evaluate(
            "async (u) => (await fetch(u)).status", f"/api/me/interviews/{aid}/interview.ics"
        )
        assert status == 200
        # ... and 我的投递 lists the application as invited, with the booked time and place
        await viewer.get_by_role("tab", name="我的投递").click()
        mine = viewer.locator(f'#mine-list .mine-item[data-aid="{aid}"]')
        await mine.filter(has_text="鸡西市人才市场 3 楼").wait_for()
        assert await mine.get_attribute("data-status") == "interview"
        assert "煤矿机电技术员" in await mine.inner_text()
        await viewer.get_by_role("tab", name="岗位").click()
        assert await a11y_problems(viewer) == []
        assert real_errors(viewer) == []
        assert real_errors(console) == []
