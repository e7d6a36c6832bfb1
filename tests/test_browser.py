"""The pages in a real browser (Debian's Chromium through Playwright): a host and viewers.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browserkit import DESKTOP, PHONE, chromium, new_page, require_browser, screenshot
from tests.helpers import login

pytestmark = pytest.mark.browser


def real_errors(page: Any) -> list[str]:
    """Console errors other than HTTP statuses the page handles itself."""
    return [e for e in page.errors if "Failed to load resource" not in e]


async def test_host_creates_and_starts_a_broadcast_viewers_follow(app_factory, redis_url) -> None:
    require_browser()
    client = await app_factory(redis_url)
    base = str(client.make_url("/")).rstrip("/")
    await login(client, "anna", "host", "s3cret-pass")  # creates the account
    async with chromium() as browser:
        host = await new_page(browser, base, viewport=DESKTOP, lang="en")
        await host.goto("/host")
        await host.get_by_label("Username").fill("anna")
        await host.get_by_label("Password").fill("wrong-pass")
        await host.get_by_role("button", name="Log in").click()
        await host.get_by_text("Wrong username or password").wait_for()
        await host.get_by_label("Password").fill("s3cret-pass")
        await host.get_by_role("button", name="Log in").click()
        await host.get_by_role("heading", name="New broadcast").wait_for()

        # 422 fields appear next to their input
        await host.get_by_role("button", name="Create broadcast").click()
        await (
            host.locator('.field-error[data-field="title"]').filter(has_text="Required").wait_for()
        )
        assert await host.get_by_label("Title").get_attribute("aria-invalid") == "true"
        await host.get_by_label("Title").fill("春季招聘会 · Spring fair")
        await host.get_by_label("Description").fill("Jobs for graduates")
        await host.get_by_role("button", name="Create broadcast").click()
        await host.wait_for_url("**/host/b/*")
        bid = host.url.rsplit("/", 1)[1]
        await host.locator("#b-status .status-scheduled").wait_for()

        viewers = []
        for lang in ("zh-CN", "en"):
            v = await new_page(browser, base, viewport=PHONE, lang=lang)
            await v.goto(f"/b/{bid}")
            await v.wait_for_function("() => document.documentElement.dataset.live === 'live'")
            viewers.append(v)
        v1, v2 = viewers
        assert await v1.locator("#overlay-title").inner_text() == "尚未开播"
        assert await v2.locator("#overlay-title").inner_text() == "Not live yet"
        await host.locator("#fig-viewers").filter(has_text="2").wait_for(timeout=5000)

        await host.get_by_role("button", name="Start broadcast").click()
        await host.locator("#b-status .status-live").wait_for()
        await v1.locator(".meta .status-live").wait_for(timeout=1000)
        await v2.locator(".meta .status-live").wait_for(timeout=1000)
        assert await v1.locator(".meta .status-live").inner_text() == "直播中"

        await screenshot(v1, "viewer-360")
        await screenshot(host, "host-1280")
        for p in (host, v1, v2):
            assert real_errors(p) == [], real_errors(p)


async def test_viewer_reconnects_with_since_and_catches_up(app_factory, redis_url) -> None:
    require_browser()
    client = await app_factory(redis_url)
    host = await login(client)
    bid = await host.create_broadcast("Reconnect fair")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE)
        await v.goto(f"/b/{bid}")
        await v.wait_for_function("() => document.documentElement.dataset.live === 'live'")
        # Cut the socket; while it is away the title changes; it comes back with `since`.
        await v.evaluate("() => { JC.viewer.live.opts.pingEvery = 600000; JC.viewer.live.drop(); }")
        await v.locator("#conn").wait_for(state="visible")
        r = await host.patch(f"/api/broadcasts/{bid}", {"title": "Renamed fair"})
        assert r.status == 200
        await v.locator("#title").filter(has_text="Renamed fair").wait_for(timeout=10000)
        await v.wait_for_function("() => document.documentElement.dataset.live === 'live'")
        assert await v.locator("#conn").is_hidden()
        assert real_errors(v) == []


async def test_language_switch_and_keyboard(app_factory, redis_url) -> None:
    require_browser()
    client = await app_factory(redis_url)
    host = await login(client)
    bid = await host.create_broadcast("Keyboard fair")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await v.goto(f"/b/{bid}")
        await v.get_by_role("link", name="English").click()
        await v.wait_for_url(f"**/b/{bid}")
        assert await v.locator("html").get_attribute("lang") == "en"
        assert await v.locator("#overlay-title").inner_text() == "Not live yet"
        # Tab moves to the skip link first, and focus is visible.
        await v.keyboard.press("Tab")
        focused = await v.evaluate("document.activeElement.className")
        assert "skip" in focused
        outline = await v.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"
        # Nothing overflows sideways at 360 px.
        width = await v.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        assert real_errors(v) == []
