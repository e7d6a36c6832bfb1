"""The room around the chat in a real browser (Debian's Chromium through Playwright): the
host's pinned announcement, a rejected question told to its author, and chat and questions
closing with the broadcast (or kept open by the host).

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browserkit import PHONE_390, chromium, new_page, real_errors, require_browser
from tests.openings_helpers import make_opening

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1366, "height": 768}


async def _host_page(browser: Any, base: str, bid: str) -> Any:
    page = await new_page(browser, base, viewport=DESKTOP, lang="en")
    r = await page.request.post("/api/login", data={"username": "host1", "password": "s3cret-pass"})
    assert r.ok
    await page.goto(f"/host/b/{bid}")
    await page.locator("#host-chat-text").wait_for()
    return page


async def test_a_pinned_announcement_and_a_rejected_question(client, host, bid):
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        console = await _host_page(browser, base, bid)
        v = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await v.goto(f"/b/{bid}")
        await v.get_by_role("tab", name="聊天").click()
        pinned = v.locator("#chat-pinned")
        assert await pinned.is_hidden()

        # The host writes an announcement and pins it in one go.
        await console.locator("#host-chat-text").fill("投递后请保持电话畅通")
        await console.get_by_label("Pin above the chat").check()
        await console.locator("#host-chat").get_by_role("button", name="Send").click()
        await pinned.filter(has_text="投递后请保持电话畅通").wait_for()
        assert "主持人置顶" in await pinned.inner_text()
        await (
            console.locator("#console-chat-pinned")
            .filter(has_text="投递后请保持电话畅通")
            .wait_for()
        )
        # a reload shows it at once (rendered with the page)
        await v.reload()
        await v.get_by_role("tab", name="聊天").click()
        await v.locator("#chat-pinned").filter(has_text="投递后请保持电话畅通").wait_for()
        # the host takes it down from the console
        await (
            console.locator("#console-chat-pinned")
            .get_by_role("button", name="Unpin message")
            .click()
        )
        await v.locator("#chat-pinned").wait_for(state="hidden")

        # A question held for review and rejected: its author is told, not left waiting.
        await v.get_by_role("tab", name="问答").click()
        await v.locator("#ask-text").fill("可以私下加微信吗")
        await v.get_by_role("button", name="提问").click()
        ask_error = v.locator("#ask-error")
        await ask_error.filter(has_text="审核").wait_for()
        review = console.locator("#qa-queue li.held").filter(has_text="可以私下加微信吗")
        await review.get_by_role("button", name="Reject").click()
        await ask_error.filter(has_text="您的提问未通过审核").wait_for()
        assert real_errors(console) == [] and real_errors(v) == []


async def test_chat_and_questions_close_when_the_broadcast_ends(client, host, bid):
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        console = await _host_page(browser, base, bid)
        v = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await v.goto(f"/b/{bid}")
        await v.get_by_role("tab", name="聊天").click()
        chat_text = v.locator("#chat-text")
        assert await chat_text.is_enabled()
        assert (await host.post(f"/api/broadcasts/{bid}/end", {})).status == 200
        closed = v.locator("#chat-closed")
        await closed.wait_for()
        assert "直播已结束，聊天和提问已关闭" in await closed.inner_text()
        assert await chat_text.is_disabled()
        await v.get_by_role("tab", name="问答").click()
        await v.locator("#qa-closed").wait_for()
        assert await v.locator("#ask-text").is_disabled()
        # after a reload too
        await v.reload()
        await v.get_by_role("tab", name="聊天").click()
        await v.locator("#chat-closed").wait_for()
        assert await v.locator("#chat-text").is_disabled()

        # The host keeps the room open: viewers can write again, live.
        await console.get_by_label("Keep chat and questions open after the broadcast ends").check()
        await v.locator("#chat-closed").wait_for(state="hidden")
        await v.locator("#chat-text").fill("谢谢主持人")
        await v.get_by_role("button", name="发送").click()
        await v.locator("#chat .msg.mine").filter(has_text="谢谢主持人").wait_for()
        assert real_errors(console) == [] and real_errors(v) == []


async def test_a_newly_pinned_card_pops_up_over_the_video(client, host, bid):
    require_browser()
    a = await make_opening(host, bid, title="数控操作工")
    b = await make_opening(host, bid, title="仓库管理员")
    assert (await host.post(f"/api/broadcasts/{bid}/start", {})).status == 200
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await v.goto(f"/b/{bid}")
        await v.locator("#openings [data-apply]").first.wait_for()
        pop = v.locator("#pin-pop")
        assert await pop.is_hidden()
        assert (
            await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": a["id"]})
        ).status == 200
        await pop.filter(has_text="数控操作工").wait_for()
        assert "讲解中" in await pop.inner_text()
        box = await pop.bounding_box()
        stage = await v.locator("#stage").bounding_box()
        assert box is not None and stage is not None
        assert stage["y"] <= box["y"] and box["y"] + box["height"] <= stage["y"] + stage["height"]
        assert box["height"] >= 44
        # the next card replaces it; tapping leads to the card's Apply button
        assert (
            await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": b["id"]})
        ).status == 200
        await pop.filter(has_text="仓库管理员").wait_for()
        # the card built live links to the opening's own page (its answered questions)
        more = v.locator("#pinned-slot .card-more a")
        assert await more.get_attribute("href") == f"/b/{bid}/o/{b['id']}"
        await pop.click()
        await pop.wait_for(state="hidden")
        focused = await v.evaluate("() => document.activeElement.dataset.apply")
        assert focused == b["id"]
        # taken down: no pop-up left
        assert (
            await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": a["id"]})
        ).status == 200
        await pop.filter(has_text="数控操作工").wait_for()
        assert (await host.delete(f"/api/broadcasts/{bid}/pin")).status == 200
        await pop.wait_for(state="hidden")
        assert real_errors(v) == []


# Records every notification the page shows (the browser's own stays out of reach headless).
NOTIFICATIONS = """
window.__shown = [];
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, opts) { super(title, opts); window.__shown.push(title); }
};
Object.defineProperty(window.Notification, 'permission', { get: () => Real.permission });
window.Notification.requestPermission = (...a) => Real.requestPermission(...a);
"""


async def test_remind_me_with_a_calendar_file_or_a_notification_when_live(client, host, bid):
    require_browser()
    r = await host.patch(f"/api/broadcasts/{bid}", {"scheduled_at": "2026-12-24T10:00:00+08:00"})
    assert r.status == 200
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await v.context.grant_permissions(["notifications"])
        await v.add_init_script(NOTIFICATIONS)
        await v.goto(f"/b/{bid}")
        remind = v.locator("#remind")
        await remind.wait_for()
        assert "预约" in await remind.inner_text()
        async with v.expect_download() as dl:
            await v.get_by_role("link", name="添加到日历").click()
        download = await dl.value
        body = Path(await download.path()).read_bytes()  # noqa: ASYNC240
        assert body.startswith(b"BEGIN:VCALENDAR") and b"DTSTART:20261224T020000Z" in body
        notify = v.get_by_role("button", name="开播时提醒我")
        await notify.click()
        await v.get_by_role("button", name="开播时会提醒您").wait_for()
        assert (
            await v.get_by_role("button", name="开播时会提醒您").get_attribute("aria-pressed")
            == "true"
        )
        # kept across a reload
        await v.reload()
        await v.get_by_role("button", name="开播时会提醒您").wait_for()

        assert (await host.post(f"/api/broadcasts/{bid}/start", {})).status == 200
        await remind.wait_for(state="hidden")
        await v.wait_for_function("() => window.__shown.length === 1")
        assert (await v.evaluate("() => window.__shown"))[0].startswith("正在直播：")
        assert real_errors(v) == []
