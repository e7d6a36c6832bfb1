"""Live polls in a real browser (Debian's Chromium through Playwright): the host starts a poll
in the console, a phone viewer (390x844, zh-CN) votes by tapping and sees the result bars, the
host sees the count; a reload keeps the viewer's choice; closing, the jobs poll and removing.

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


async def test_host_starts_a_poll_a_phone_viewer_taps_and_both_see_the_results(client, host, bid):
    require_browser()
    jobs = [
        await make_opening(host, bid, title="煤矿机电技术员"),
        await make_opening(host, bid, title="护士"),
    ]
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        console = await host_console(browser, base, bid)
        viewer = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await viewer.goto(f"/b/{bid}")
        await viewer.wait_for_function("() => document.documentElement.dataset.live === 'live'")
        card = viewer.locator("#poll")
        assert await card.is_hidden()

        # the host writes a poll in the console
        await console.get_by_label("Poll question").fill("你最关心哪方面？")
        for i, text in enumerate(["薪资", "地点", "五险一金"]):
            await console.locator(f"#poll-o{i}").fill(text)
        await console.get_by_role("button", name="Start poll").click()
        await console.get_by_text("Poll open").wait_for()
        assert await console.locator("#poll-form").is_hidden()  # one poll at a time

        # the phone viewer sees it under the pinned card, in Chinese, with big tap targets
        await card.get_by_text("你最关心哪方面？").wait_for()
        await card.get_by_text("点选一项即可投票").wait_for()
        options = card.locator("[data-option]")
        assert await options.count() == 3
        for i in range(3):
            box = await options.nth(i).bounding_box()
            assert box is not None and box["height"] >= 44 and box["width"] >= 300, box
        assert await card.locator(".poll-bar").count() == 0  # no results before voting
        await options.nth(2).tap()

        # after the tap: the bars, the own choice marked, the share
        await card.locator(".poll-bar").first.wait_for()
        mine = card.locator(".poll-opt.mine")
        await mine.get_by_text("（你的选择）").wait_for()
        assert "五险一金" in await mine.inner_text() and "100%" in await mine.inner_text()
        width = await viewer.evaluate(
            "() => document.querySelector('.poll-opt.mine .poll-fill').getBoundingClientRect()"
            ".width / document.querySelector('.poll-opt.mine .poll-bar')"
            ".getBoundingClientRect().width"
        )
        assert width > 0.9
        await card.get_by_text("1 票").wait_for()

        # the host sees the count live
        row = console.locator('#poll-now li[data-option="2"]')
        await row.locator(".poll-count").get_by_text("1", exact=True).wait_for()
        await console.locator("#poll-total").get_by_text("1 vote").wait_for()

        # changing the vote moves it; a reload keeps the choice
        await options.nth(0).tap()
        await card.locator('.poll-opt.mine[data-option="0"]').wait_for()
        await (
            console.locator('#poll-now li[data-option="0"] .poll-count')
            .get_by_text("1", exact=True)
            .wait_for()
        )
        await viewer.reload()
        await card.locator('.poll-opt.mine[data-option="0"]').wait_for()
        await card.get_by_text("（你的选择）").wait_for()
        assert await a11y_problems(viewer) == []

        # the host closes it: the viewer keeps the results, marked closed, and cannot vote
        await console.get_by_role("button", name="Close poll").click()
        await card.get_by_text("已截止").wait_for()
        await card.get_by_text("投票已结束", exact=False).first.wait_for()
        assert await options.nth(1).is_disabled()

        # one click: which of these jobs interests you?
        await console.get_by_role("button", name="Ask: which of these jobs interests you?").click()
        await card.get_by_text("你对哪个岗位感兴趣？").wait_for()
        for o in jobs:
            await card.get_by_text(o["title"], exact=False).wait_for()
        await card.locator('[data-option="1"]').tap()
        await (
            console.locator('#poll-now li[data-option="1"] .poll-count')
            .get_by_text("1", exact=True)
            .wait_for()
        )

        # removed: gone from the phone
        await console.get_by_role("button", name="Close poll").click()
        await console.get_by_role("button", name="Remove poll").click()
        await card.wait_for(state="hidden")
        await console.get_by_text("No poll is shown").wait_for()
        assert real_errors(viewer) == []
        assert real_errors(console) == []
