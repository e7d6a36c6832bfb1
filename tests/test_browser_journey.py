"""What hosts and phone viewers met in the pages, in a real browser (Debian's Chromium through
Playwright): openings past their deadline, the card still "being presented" after the
broadcast, English plurals, the host writing in the chat, a timed-out viewer.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from tests.browserkit import DESKTOP, PHONE, chromium, new_page, real_errors, require_browser
from tests.openings_helpers import applicant, application_body, make_opening

pytestmark = pytest.mark.browser


async def _host_page(browser: Any, base: str, bid: str, *, lineup: bool = True) -> Any:
    page = await new_page(browser, base, viewport=DESKTOP, lang="en")
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.goto("/host")
    await page.get_by_label("Username").fill("host1")
    await page.get_by_label("Password").fill("s3cret-pass")
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("heading", name="New broadcast").wait_for()
    await page.goto(f"/host/b/{bid}")
    if lineup:
        await page.locator("#lineup li[data-opening]").first.wait_for()
    else:
        await page.locator("#mod-chat").wait_for(state="attached")
    return page


async def test_an_opening_past_its_deadline_says_closed_instead_of_apply(client, host, bid):
    require_browser()
    late = await make_opening(host, bid, title="过期岗位 Expired", deadline="2020-03-31")
    fresh = await make_opening(host, bid, title="在招岗位 Open", deadline="2099-08-31")
    assert (await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": late["id"]})).status == 200
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        viewer = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await viewer.goto(f"/b/{bid}")
        # the server-rendered page and the live one agree
        for where in ("#pinned-slot", "#openings"):
            closed = viewer.locator(f'{where} [data-opening="{late["id"]}"]')
            await closed.get_by_text("投递已截止").wait_for()
            assert await closed.locator("[data-apply]").count() == 0
        await viewer.locator("#openings").get_by_text("投递已截止").wait_for()
        open_card = viewer.locator(f'#openings [data-opening="{fresh["id"]}"]')
        assert await open_card.get_by_role("button", name="投递").is_visible()
        assert real_errors(viewer) == []

        # the host sees which openings are closed, and is told when saving one
        page = await _host_page(browser, base, bid)
        row = page.locator(f'#lineup li[data-opening="{late["id"]}"]')
        await row.get_by_text("Closed 2020-03-31").wait_for()
        assert "1 application" not in await row.inner_text()
        assert "0 applications" in await row.inner_text()
        await (
            page.locator(f'#lineup li[data-opening="{fresh["id"]}"]')
            .get_by_text("Apply by 2099-08-31")
            .wait_for()
        )
        await row.get_by_role("button", name="Edit 过期岗位 Expired").click()
        await page.locator("#opening-dialog").get_by_role("button", name="Save").click()
        await page.get_by_text("Saved, but its deadline has passed").wait_for()
        assert real_errors(page) == []


async def test_one_application_is_one_in_english(client, host, bid, app_factory, redis_url):
    require_browser()
    o = await make_opening(host, bid, title="Welder")
    viewer = await applicant(await app_factory(redis_url))
    r = await viewer.apply(o["id"], application_body())
    assert r.status in (200, 201), await r.text()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await _host_page(browser, base, bid)
        row = page.locator(f'#lineup li[data-opening="{o["id"]}"]')
        await row.get_by_text("1 application", exact=True).wait_for()


async def test_now_presenting_goes_when_the_broadcast_ends(client, host, bid):
    require_browser()
    o = await make_opening(host, bid, title="数控操作工")
    assert (await host.post(f"/api/broadcasts/{bid}/start", {})).status == 200
    assert (await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": o["id"]})).status == 200
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        watching = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await watching.goto(f"/b/{bid}")
        await watching.locator("#pinned-slot").get_by_text("正在讲解").wait_for()
        assert (await host.post(f"/api/broadcasts/{bid}/end", {})).status == 200
        await watching.locator("#overlay-title").get_by_text("本场直播已结束").wait_for()
        await watching.locator("#pinned-slot .pin-label").wait_for(state="detached")
        # a viewer who comes later sees no card "being presented" either, with JS or without
        later = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await later.goto(f"/b/{bid}")
        await later.locator("#overlay-title").get_by_text("本场直播已结束").wait_for()
        assert await later.locator("#pinned-slot .pin-label").count() == 0
        bare = await new_page(browser, base, viewport=PHONE, lang="zh-CN", javascript=False)
        await bare.goto(f"/b/{bid}")
        assert await bare.locator("#pinned-slot .card").count() == 0
        # the opening itself is still listed (open until its deadline)
        assert await later.locator(f'#openings [data-opening="{o["id"]}"]').count() == 1
        assert real_errors(watching) == [] and real_errors(later) == []


async def test_the_host_writes_in_the_chat_marked_as_the_host(client, host, bid):
    require_browser()
    await make_opening(host, bid, title="会计")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        viewer = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await viewer.goto(f"/b/{bid}")
        page = await _host_page(browser, base, bid)
        await page.get_by_label("Message to viewers").fill("欢迎大家！投递请点岗位卡片上的按钮。")
        await page.locator("#host-chat").get_by_role("button", name="Send").click()
        await page.locator("#mod-chat").filter(has_text="欢迎大家").wait_for()
        await viewer.get_by_role("tab", name="聊天").click()
        msg = viewer.locator("#chat li.role-host").filter(has_text="欢迎大家")
        await msg.wait_for()
        assert "主持人" in await msg.inner_text()
        assert await page.get_by_label("Message to viewers").input_value() == ""
        assert real_errors(page) == [] and real_errors(viewer) == []


async def test_a_timed_out_viewer_is_told_until_when_and_cannot_type(client, host, bid):
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        viewer = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await viewer.goto(f"/b/{bid}")
        await viewer.get_by_role("tab", name="聊天").click()
        await viewer.get_by_label("消息").fill("大家好呀")
        await viewer.get_by_role("button", name="发送").click()
        page = await _host_page(browser, base, bid, lineup=False)
        row = page.locator("#mod-chat li").filter(has_text="大家好呀")
        await row.wait_for()
        await row.get_by_role("button", name=re.compile("Time out")).first.click()
        box = viewer.locator("#chat-text")
        await viewer.wait_for_function("() => document.getElementById('chat-text').disabled")
        assert "管理员已暂停您发言，至" in (await box.get_attribute("placeholder") or "")
        assert " s" not in (await box.get_attribute("placeholder") or "")
        assert real_errors(viewer) == []


async def test_the_screen_follows_the_pin_and_the_question_on_screen(client, host, bid):
    """/screen is the presenter output: the pinned card and the highlighted question, live."""
    require_browser()
    o = await make_opening(host, bid, title="数控操作工")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        screen = await new_page(browser, base, viewport=DESKTOP, lang="zh-CN")
        await screen.goto(f"/b/{bid}/screen")
        await screen.locator("#screen img").wait_for()
        assert await screen.locator("#screen-card").is_hidden()
        assert (
            await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": o["id"]})
        ).status == 200
        await screen.locator("#screen-card").get_by_text("数控操作工").wait_for()
        # a viewer asks, the host approves it, answers it and puts it on screen
        viewer = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await viewer.goto(f"/b/{bid}")
        await viewer.get_by_role("tab", name="问答").click()
        await viewer.get_by_label("您的问题").fill("需要夜班吗？")
        await viewer.get_by_role("button", name="提问", exact=True).click()
        page = await _host_page(browser, base, bid)
        held = page.locator("#qa-queue li.held").filter(has_text="需要夜班")
        await held.get_by_role("button", name="Approve").click()
        item = (
            page.locator("#qa-queue li")
            .filter(has_text="需要夜班")
            .filter(has_not=page.locator(".reason"))
        )
        await item.get_by_role("textbox").fill("不需要，白班。")
        await item.get_by_role("button", name="Answer").click()
        await item.get_by_role("button", name="Show on screen").click()
        q = screen.locator("#screen-question")
        await q.get_by_text("需要夜班吗？").wait_for()
        await q.get_by_text("不需要，白班。").wait_for()
        await (
            page.locator("#qa-queue li")
            .filter(has_text="需要夜班")
            .get_by_role("button", name="Remove from screen")
            .click()
        )
        await q.wait_for(state="hidden")
        assert (await host.delete(f"/api/broadcasts/{bid}/pin")).status == 200
        await screen.locator("#screen-card").wait_for(state="hidden")
        assert real_errors(screen) == []
