"""The host console while live on a laptop screen (1366x768, Debian's Chromium): the running
broadcast's controls fit one screen, each panel scrolling inside itself.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browserkit import chromium, new_page, real_errors, require_browser, screenshot
from tests.chat_helpers import err, ok
from tests.helpers import connect, login
from tests.openings_helpers import make_opening

pytestmark = pytest.mark.browser

LAPTOP = {"width": 1366, "height": 768}
MEDIA = {"media_ice_addresses": "127.0.0.1", "media_publisher_grace": 3.0}

# What the host uses while live, each of which must be on screen without scrolling.
CONTROLS = (
    "#preview",
    "#stream-state",
    "#b-end",
    "#fig-viewers",
    "#pin-next",
    "#lineup > li:first-child",
    "#qa-queue > li:first-child",
    "#review > li:first-child",
    "#host-chat-text",
    "#poll-panel h2",
)

BOXES = """(sels) => sels.map((s) => {
  const el = document.querySelector(s);
  if (!el) return [s, null];
  const r = el.getBoundingClientRect();
  return [s, { top: r.top, bottom: r.bottom, left: r.left, right: r.right, h: r.height }];
})"""


async def _busy_broadcast(client: Any, viewers: Any) -> str:
    host = await login(client)
    bid = await host.create_broadcast("冬季专场招聘会")
    for i in range(12):
        await make_opening(host, bid, title=f"岗位 {i + 1}")
    console = await connect(client, bid, host=True)
    v = await viewers.open(client, bid, name="小王")
    for i in range(6):
        qid = (await err(v, "question.ask", {"text": f"问题 {i + 1}：有宿舍吗？"}))["question_id"]
        if i < 4:
            await ok(console, "review.decide", {"kind": "question", "id": qid, "approve": True})
    for i in range(30):
        await ok(await viewers.open(client, bid), "chat.send", {"text": f"消息 {i}"})
    await err(v, "chat.send", {"text": "加我微信 abc12345"})  # held for review
    return bid


@pytest.mark.app_settings(**MEDIA, chat_burst=100, chat_ip_burst=1000, chat_ip_rate=100.0)
async def test_the_live_console_fits_a_laptop_screen(client, viewers):
    require_browser()
    bid = await _busy_broadcast(client, viewers)
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser, base, viewport=LAPTOP, lang="zh-CN")
        r = await page.request.post(
            "/api/login", data={"username": "host1", "password": "s3cret-pass"}
        )
        assert r.ok
        await page.goto(f"/host/b/{bid}")
        await page.get_by_role("button", name="用本浏览器开播").click()
        await page.locator("#b-status .status-live").wait_for(timeout=20000)
        await page.locator("#review > li").first.wait_for()
        await page.locator("#qa-queue > li").nth(3).wait_for()
        await page.evaluate("() => window.scrollTo(0, 0)")
        boxes = dict(await page.evaluate(BOXES, list(CONTROLS)))
        off = {
            s: b
            for s, b in boxes.items()
            if b is None or b["h"] == 0 or b["top"] < 0 or b["bottom"] > LAPTOP["height"]
        }
        await screenshot(page, "host-1366-live")  # docs/screenshots with --screenshots
        assert off == {}, f"not on screen at 1366x768 while live: {off}"
        # the long lists scroll inside their panels instead of pushing the rest down
        for panel in ("lineup-h", "mod-h"):
            scrolls = await page.evaluate(
                "(id) => { const p = document.querySelector(`[aria-labelledby=${id}]`);"
                " return p.scrollHeight > p.clientHeight && getComputedStyle(p).overflowY; }",
                panel,
            )
            assert scrolls == "auto", panel
        assert real_errors(page) == []
