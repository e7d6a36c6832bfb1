"""Headless Chromium (Debian's) driven by Playwright, for the browser tests.

Never `playwright install`: the tests use /usr/bin/chromium (apt-get install chromium). The
flags keep it off the network (no component updates, no sync) and give it a fake camera and
microphone, and plain 127.0.0.1 ICE candidates instead of mDNS names.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("JOBCAST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
]
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def require_browser() -> None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium)")


@asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(
    browser: Any,
    base_url: str,
    *,
    viewport: dict[str, int] = PHONE,
    lang: str = "zh-CN",
    javascript: bool = True,
    mobile: bool | None = None,
) -> Any:
    """A page in its own context (own cookies), with console errors collected in page.errors."""
    is_mobile = viewport["width"] < 600 if mobile is None else mobile
    ctx = await browser.new_context(
        base_url=base_url,
        viewport=viewport,
        locale=lang,
        extra_http_headers={"Accept-Language": lang},
        java_script_enabled=javascript,
        is_mobile=is_mobile,
        has_touch=is_mobile,
        device_scale_factor=1,
        permissions=["camera", "microphone"],
    )
    page = await ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on(
        "console",
        lambda m: page.errors.append(m.text) if m.type == "error" else None,
    )
    return page


async def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """docs/screenshots/NAME.png of the top of the page (or all of it), as a person sees it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.evaluate(
        "() => { if (document.activeElement) document.activeElement.blur(); window.scrollTo(0, 0); }"
    )
    await page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path
