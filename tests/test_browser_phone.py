"""A phone viewer in a real browser (Debian's Chromium through Playwright), as people met the
page: offline and back (the banner, an application kept and sent by itself), touch targets,
the apply form with the keyboard up, landscape and full screen, names in the chat.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browserkit import PHONE_390, chromium, new_page, real_errors, require_browser
from tests.openings_helpers import make_opening
from tests.waiting import wait_until

pytestmark = pytest.mark.browser


async def _fill_apply(page: Any, oid: str) -> None:
    await page.locator(f'#openings [data-apply="{oid}"]').click()
    dlg = page.locator("#apply-dialog")
    await dlg.locator("#a-name").fill("王小明")
    await dlg.locator("#a-phone").fill("13800138000")
    await dlg.locator("#a-consent").check()


async def test_offline_banner_and_an_application_sent_when_back(client, host, bid):
    require_browser()
    o = await make_opening(host, bid, title="数控操作工")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await page.goto(f"/b/{bid}")
        await page.locator("#openings [data-apply]").first.wait_for()
        await page.context.set_offline(True)
        banner = page.locator("#offline")
        await _fill_apply(page, o["id"])
        await page.get_by_role("button", name="提交投递").click()
        await page.locator("#toast").filter(has_text="恢复联网后会自动投递").wait_for()
        # the request that could not go out tells the page it is offline
        await banner.wait_for(state="visible")
        assert "网络已断开" in await banner.inner_text()
        await (
            page.locator(f'#openings [data-apply="{o["id"]}"]')
            .filter(has_text="等待发送")
            .wait_for()
        )
        r = await host.get(f"/api/broadcasts/{bid}/applications")
        assert (await r.json())["applications"] == []
        # back online: the kept application goes out by itself, once
        await page.context.set_offline(False)
        await banner.wait_for(state="hidden")
        await page.locator(f'#openings [data-applied="{o["id"]}"]').wait_for(state="visible")

        async def stored() -> bool:
            r = await host.get(f"/api/broadcasts/{bid}/applications")
            return len((await r.json())["applications"]) == 1

        await wait_until(stored, 10, "the application stored")
        assert (
            await page.evaluate("() => localStorage.getItem('jc_outbox_' + JC.viewer.bid)") == "[]"
        )
        # a reload does not send it again
        await page.reload()
        await page.locator(f'#openings [data-applied="{o["id"]}"]').wait_for(state="visible")
        r = await host.get(f"/api/broadcasts/{bid}/applications")
        assert len((await r.json())["applications"]) == 1
        assert real_errors(page, "ERR_INTERNET") == []


TARGETS = """() => {
  const out = [];
  for (const el of document.querySelectorAll('button, a, select, input[type=checkbox], [role=tab]')) {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    if (!r.width || !r.height || st.visibility === 'hidden' || el.closest('[hidden]')) continue;
    if (el.matches('input[type=checkbox]')) continue;  // its label is the target
    if (r.height < 44 || r.width < 44) out.push((el.id || el.textContent.trim().slice(0, 20)) + ' ' + Math.round(r.width) + 'x' + Math.round(r.height));
  }
  return out;
}"""


async def test_touch_targets_and_the_apply_form_with_the_keyboard_up(client, host, bid):
    require_browser()
    o = await make_opening(host, bid, title="会计")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await page.goto(f"/b/{bid}")
        await page.locator("#openings [data-apply]").first.wait_for()
        assert await page.evaluate(TARGETS) == []
        # the keyboard takes half the screen: 500 px left, the submit button still in view
        await page.set_viewport_size({"width": 390, "height": 500})
        await _fill_apply(page, o["id"])
        await page.locator("#a-name").focus()
        submit = page.get_by_role("button", name="提交投递")
        box = await submit.bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 500, box
        assert await page.evaluate(TARGETS) == []
        assert real_errors(page, "ERR_INTERNET") == []


async def test_landscape_keeps_the_video_and_its_controls_on_screen(client, host, bid):
    require_browser()
    assert (await host.post(f"/api/broadcasts/{bid}/start", {})).status == 200
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(
            browser, base, viewport={"width": 844, "height": 390}, lang="zh-CN", mobile=True
        )
        await page.goto(f"/b/{bid}")
        stage = await page.locator("#stage").bounding_box()
        assert stage is not None and stage["height"] <= 390 + 1, stage
        await page.evaluate("() => { document.getElementById('controls').hidden = false; }")
        fs = page.get_by_role("button", name="全屏")
        await fs.wait_for()
        box = await fs.bounding_box()
        assert box is not None and box["y"] + box["height"] <= 390, box
        await fs.click()
        await page.wait_for_function(
            "() => document.fullscreenElement === document.getElementById('stage')"
        )
        await page.locator('#fs-btn[aria-pressed="true"]').wait_for()  # on fullscreenchange
        await fs.click()
        await page.wait_for_function("() => document.fullscreenElement === null")
        assert real_errors(page, "ERR_INTERNET") == []


async def test_the_chat_names_the_viewer_and_marks_their_own_messages(client, host, bid):
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        zh = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        en = await new_page(browser, base, viewport=PHONE_390, lang="en-US")
        for page in (zh, en):
            await page.goto(f"/b/{bid}")
        await zh.get_by_role("tab", name="聊天").click()
        await zh.locator("#my-name").filter(has_text=re.compile(r"^观众 \d{4}$")).wait_for()
        await en.get_by_role("tab", name="Chat").click()
        await en.locator("#my-name").filter(has_text=re.compile(r"^Viewer \d{4}$")).wait_for()
        name = await zh.locator("#my-name").inner_text()
        await zh.get_by_label("消息").fill("大家好")
        await zh.get_by_role("button", name="发送").click()
        mine = zh.locator("#chat li.mine").filter(has_text="大家好")
        await mine.wait_for()
        assert name in await mine.inner_text() and "（我）" in await mine.inner_text()
        theirs = en.locator("#chat li").filter(has_text="大家好")
        await theirs.wait_for()
        assert "mine" not in (await theirs.get_attribute("class") or "")
        assert name in await theirs.inner_text()
        assert real_errors(zh, "ERR_INTERNET") == [] and real_errors(en, "ERR_INTERNET") == []


async def test_the_video_stays_in_view_while_typing_in_the_chat(client, host, bid):
    require_browser()
    for i in range(6):
        await make_opening(host, bid, title=f"岗位 {i}")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser, base, viewport={"width": 390, "height": 500}, lang="zh-CN")
        await page.goto(f"/b/{bid}")
        await page.get_by_role("tab", name="聊天").click()
        box = page.get_by_label("消息")
        await box.focus()
        await box.scroll_into_view_if_needed()
        assert await page.evaluate("() => window.scrollY") > 0  # the page did scroll
        stage = await page.locator("#stage").bounding_box()
        field = await box.bounding_box()
        assert stage is not None and field is not None
        assert stage["y"] >= 0 and stage["y"] + stage["height"] <= field["y"] + 1, (stage, field)
        assert field["y"] + field["height"] <= 501, field  # in view (to a pixel)
        assert real_errors(page, "ERR_INTERNET") == []
