"""Headless Chromium (Debian's) driven by Playwright, for the browser tests.

Never `playwright install`: the tests use /usr/bin/chromium (apt-get install chromium). The
flags keep it off the network (no component updates, no sync) and give it a fake camera and
microphone, and plain 127.0.0.1 ICE candidates instead of mDNS names.
"""

from __future__ import annotations

import asyncio
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
PHONE_390 = {"width": 390, "height": 844}  # the phone of the issue reports (zh-CN and en-US)
DESKTOP = {"width": 1280, "height": 800}
DOC_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
# Where `screenshot` writes: a temporary folder, unless pytest runs with `--screenshots`
# (then docs/screenshots, which the README shows): a test run changes no tracked file.
SCREENSHOTS = DOC_SCREENSHOTS


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


# The login form's words and the page after it, by the page's language.
_LOGIN_WORDS = {
    "en": ("Username", "Password", "Log in", "New broadcast"),
    "zh-CN": ("用户名", "密码", "登录", "新建直播"),
}


async def log_in(page: Any, user: str = "host1", password: str = "s3cret-pass") -> None:
    """Sign in through /host's form as a host does (the labels in the page's language)."""
    lang = await page.evaluate("() => navigator.language")
    username, pw, button, heading = _LOGIN_WORDS["en" if lang.startswith("en") else "zh-CN"]
    await page.goto("/host")
    await page.get_by_label(username).fill(user)
    await page.get_by_label(pw).fill(password)
    await page.get_by_role("button", name=button).click()
    await page.get_by_role("heading", name=heading).wait_for()


async def host_console(
    browser: Any,
    base_url: str,
    bid: str,
    *,
    lang: str = "en",
    viewport: dict[str, int] = DESKTOP,
    ready: str = "#lineup li[data-opening]",
) -> Any:
    """A host's console of broadcast `bid`, signed in through the form, once `ready` shows
    (the snapshot is in). Confirm dialogs are accepted."""
    page = await new_page(browser, base_url, viewport=viewport, lang=lang)
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await log_in(page)
    await page.goto(f"/host/b/{bid}")
    await page.locator(ready).first.wait_for()
    return page


async def screenshot(page: Any, name: str, *, full_page: bool = False) -> Path:
    """NAME.png of the top of the page (or all of it), as a person sees it (see SCREENSHOTS)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.evaluate(
        "() => { if (document.activeElement) document.activeElement.blur(); window.scrollTo(0, 0);"
        " for (const t of document.querySelectorAll('.toast')) t.className = 'toast'; }"
    )
    await page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path


# Every visible control has an accessible name, and every visible text has a contrast of
# 4.5:1 (3:1 for large text) against the first opaque background behind it (WCAG 2.1 AA).
# The video stage is skipped: its text sits on a translucent layer over moving pictures.
A11Y_CHECK = """() => {
  const problems = [];
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
  };
  for (const el of document.querySelectorAll("input, select, textarea, button, a[href]")) {
    if (!visible(el) || el.type === "hidden" || el.closest("#stage")) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute("aria-label") ||
      el.getAttribute("aria-labelledby") || (el.textContent || "").trim() || el.title;
    if (!named) problems.push("no label: " + el.outerHTML.slice(0, 80));
  }
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bgOf = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] >= 0.95)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!el || seen.has(el) || !walker.currentNode.textContent.trim()) continue;
    seen.add(el);
    if (!visible(el) || el.closest("#stage, .toast, option")) continue;
    const s = getComputedStyle(el);
    if (parseFloat(s.opacity) < 1) continue;
    const fg = rgb(s.color).slice(0, 3);
    const bg = bgOf(el);
    const [a, b] = [lum(fg) + 0.05, lum(bg) + 0.05];
    const ratio = Math.max(a, b) / Math.min(a, b);
    const size = parseFloat(s.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push("contrast " + ratio.toFixed(2) + ": " + el.tagName + " " +
        JSON.stringify(el.textContent.trim().slice(0, 30)));
    }
  }
  return problems;
}"""


async def a11y_problems(page: Any) -> list[str]:
    return await page.evaluate(A11Y_CHECK)


def real_errors(page: Any, *also: str) -> list[str]:
    """Console errors other than HTTP statuses the page handles itself (a WHEP 503, the live
    playlist's 404 before its first segment), nor any containing one of `also`."""
    skip = ("Failed to load resource", *also)
    return [e for e in page.errors if not any(s in e for s in skip)]


# Video frames the viewer page's WebRTC session has decoded so far.
FRAMES_DECODED = """async () => {
  const s = JC.viewer.player.session;
  if (!s || !s.pc) return 0;
  let n = 0;
  (await s.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") n = r.framesDecoded || 0;
  });
  return n;
}"""
