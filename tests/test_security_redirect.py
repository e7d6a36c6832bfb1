"""The language switch goes back to a page of this site only, whatever a browser makes of
the `next` it is given (tabs and newlines removed, backslashes read as slashes)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests import browserkit

# Raw (already percent-encoded) `next` values that a browser would turn into another host.
ATTACKS = [
    "/%09/evil.example/x",  # the reported one: tab removed after the check
    "/%0A/evil.example/x",
    "/%0D%0A/evil.example/x",
    "%09//evil.example/x",
    "%20//evil.example/x",
    "%00//evil.example/x",
    "/%09%09/evil.example/x",
    "/%5Cevil.example/x",  # /\evil.example
    "%5C%5Cevil.example/x",
    "/%09%5Cevil.example/x",
    "//evil.example/x",
    "///evil.example/x",
    "https://evil.example/x",
    "https:/evil.example/x",
    "javascript:alert(1)",
    "%0Ajavascript:alert(1)",
    "evil.example",
]
SAFE = {
    "/host": "/host",
    quote("/b/abc?x=1", safe="/"): "/b/abc?x=1",
    "/%2509/x": "/%09/x",  # a percent sign in the path: stays a path
}


def _as_browser_reads(location: str) -> str:
    """What the URL standard makes of a Location before resolving it."""
    value = location.replace("\t", "").replace("\n", "").replace("\r", "")
    return value.strip("".join(chr(c) for c in range(0x21))).replace("\\", "/")


async def _location(client, raw_next: str) -> str:
    from yarl import URL

    url = URL(f"/lang/zh-CN?next={raw_next}", encoded=True)
    r = await client.get(url, allow_redirects=False)
    assert r.status == 303, raw_next
    return r.headers["Location"]


async def test_next_never_leads_off_site(client) -> None:
    for raw in ATTACKS:
        location = await _location(client, raw)
        seen = _as_browser_reads(location)
        assert seen.startswith("/") and not seen.startswith("//"), (raw, location)
        assert location == "/", (raw, location)
    for raw, want in SAFE.items():
        assert await _location(client, raw) == want, raw


@pytest.mark.browser
async def test_chromium_stays_on_the_site(client) -> None:
    browserkit.require_browser()
    base = str(client.make_url("")).rstrip("/")
    foreign: list[str] = []
    async with browserkit.chromium() as browser:
        page = await browser.new_page()

        async def only_here(route) -> None:
            if route.request.url.startswith(base):
                await route.continue_()
            else:  # nothing leaves 127.0.0.1; note where it would have gone
                foreign.append(route.request.url)
                await route.abort()

        await page.route("**/*", only_here)
        for raw in ATTACKS[:10]:
            await page.goto(f"{base}/lang/zh-CN?next={raw}")
            assert page.url == f"{base}/", (raw, page.url)
    assert foreign == []
