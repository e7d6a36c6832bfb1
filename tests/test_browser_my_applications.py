"""My applications in a real browser (Debian's Chromium through Playwright): a phone viewer
(390x844, zh-CN) applies, the host sets 邀请面试 with the interview's details in the console,
the viewer sees it live under 我的投递, still after a reload, and on /me.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

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
from tests.openings_helpers import make_opening

pytestmark = pytest.mark.browser

PLACE = "鸡西市人才市场三楼302"


async def test_the_applicant_sees_the_interview_invitation_live_and_after_a_reload(
    client, host, bid
):
    require_browser()
    job = await make_opening(host, bid, title="煤矿机电技术员")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        console = await host_console(browser, base, bid)
        viewer = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await viewer.goto(f"/b/{bid}")
        await viewer.wait_for_function("() => document.documentElement.dataset.live === 'live'")

        # apply from the card
        await viewer.locator(f'#openings [data-apply="{job["id"]}"]').tap()
        await viewer.locator("#a-name").fill("李娜")
        await viewer.locator("#a-phone").fill("13900001111")
        await viewer.locator("#a-consent").check()
        await viewer.locator("#apply-submit").tap()
        await viewer.locator(f'#openings [data-applied="{job["id"]}"]').wait_for()

        # 我的投递: the application, 已投递
        tab = viewer.get_by_role("tab", name="我的投递")
        box = await tab.bounding_box()
        assert box is not None and box["height"] >= 44, box
        await tab.tap()
        item = viewer.locator("#mine-list .mine-item")
        await item.get_by_text("煤矿机电技术员").wait_for()
        await item.locator(".badge").get_by_text("已投递").wait_for()

        # the host invites to an interview in the console, with the details
        row = console.locator("#apps-rows tr[data-app]").first
        await row.wait_for()
        await row.locator("select[data-app]").select_option("interview")
        dialog = console.locator("#interview-dialog")
        await dialog.wait_for()
        await dialog.get_by_label("Interview time").fill("2099-03-21T10:00")
        await dialog.get_by_label("Place").fill(PLACE)
        await dialog.get_by_label("Note to the applicant").fill("请带身份证")
        await dialog.get_by_role("button", name="Send invitation").click()
        await console.get_by_text("Saved").wait_for()

        # the viewer sees it live
        await item.locator(".badge").get_by_text("邀请面试").wait_for()
        await item.get_by_text(PLACE, exact=False).wait_for()
        await item.get_by_text("请带身份证").wait_for()
        assert "2099" in await item.locator(".mine-interview").inner_text()

        # after a reload, still there
        await viewer.reload()
        await viewer.get_by_role("tab", name="我的投递").tap()
        await item.locator(".badge").get_by_text("邀请面试").wait_for()
        await item.get_by_text(PLACE, exact=False).wait_for()
        assert await a11y_problems(viewer) == []

        # and on /me, from the same phone (its timers on a clock the test moves)
        await viewer.clock.install()
        await viewer.goto("/me")
        await viewer.get_by_role("heading", name="我的投递").wait_for()
        await item.locator(".badge").get_by_text("邀请面试").wait_for()
        await item.get_by_text(PLACE, exact=False).wait_for()
        # /me has no socket: a status changed meanwhile shows within its 30 s refresh
        aid = await row.get_attribute("data-app")
        r = await host.patch(f"/api/broadcasts/{bid}/applications/{aid}", {"status": "hired"})
        assert r.status == 200, await r.text()
        await viewer.clock.fast_forward(31_000)
        await item.locator(".badge").get_by_text("已录用").wait_for()
        for el in ("#mp-phone", "#mp-send"):
            box = await viewer.locator(el).bounding_box()
            assert box is not None and box["height"] >= 44, (el, box)
        assert await a11y_problems(viewer) == []
        assert real_errors(viewer) == []
        assert real_errors(console) == []
