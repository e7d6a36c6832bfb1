"""The replay on the viewer page in a real browser (Debian's Chromium through Playwright):
after the broadcast, the page plays the whole stream with the openings presented as chapters,
and tapping one seeks to where it was presented, with its card and Apply button beside the
player. An aiortc publisher sends its numbered frames (tests/media_peers.py) over WHIP; the
test reads the number of the picture the browser shows, so "where it was presented" is
checked against what the publisher sent when the card was pinned.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from jobcast.web.api.media import MEDIA

from tests.browserkit import PHONE, chromium, new_page, require_browser
from tests.helpers import connect
from tests.media_peers import BITS, BLOCK, Publisher
from tests.openings_helpers import make_opening
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.media,
    pytest.mark.timeout(150),
    pytest.mark.app_settings(media_ice_addresses="127.0.0.1", media_publisher_grace=3.0),
]

# The frame number drawn into the picture (tests/media_peers.StampedVideoTrack), read back
# from the <video> element through a canvas, as read_stamp does from a decoded frame.
STAMP = f"""() => {{
  const v = document.getElementById("video");
  if (!v.videoWidth) return -1;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0);
  const row = g.getImageData(0, {BLOCK // 2}, c.width, 1).data;
  let n = 0;
  for (let bit = 0; bit < {BITS}; bit++) {{
    const x = bit * {BLOCK} + {BLOCK // 2};
    n = (n << 1) | (row[x * 4] > 128 ? 1 : 0);
  }}
  return n;
}}"""


async def test_replay_chapters_seek_to_where_each_opening_was_presented(
    client, host, bid, stream_key
):
    require_browser()
    first = await make_opening(host, bid, title="焊工 Welder")
    second = await make_opening(host, bid, title="护士 Nurse")
    assert (
        await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": first["id"]})
    ).status == 200
    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    await ws.wait_for("stream.live", timeout=10)
    writer = client.server.app[MEDIA].streams[bid].hls
    await wait_until(lambda: writer.segments >= 4, 30, "four segments")
    assert (
        await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": second["id"]})
    ).status == 200
    pinned = (await (await client.get(f"/api/broadcasts/{bid}/pin")).json())["pinned"]["pinned_at"]
    sent_then = time.monotonic() - (time.time() * 1000 - pinned) / 1000
    n = writer.segments
    await wait_until(lambda: writer.segments >= n + 4, 30, "four more segments")
    assert (await host.post(f"/api/broadcasts/{bid}/end", {})).status == 200
    await ws.wait_for("stream.ended", timeout=15)
    replay = await (await client.get(f"/api/broadcasts/{bid}/replay")).json()
    assert replay["ended"] and [c["opening_id"] for c in replay["chapters"]] == [
        first["id"],
        second["id"],
    ]
    offset = replay["chapters"][1]["offset"]

    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await page.goto(f"/b/{bid}")
        chapters = page.locator("#chapters .chapter")
        await chapters.nth(1).wait_for()
        assert await chapters.count() == 2
        assert "护士 Nurse" in await chapters.nth(1).inner_text()
        assert "已介绍的岗位" in await page.locator("#replay").inner_text()
        # the replay starts at the beginning with the first card beside it
        await page.wait_for_function(
            "() => document.getElementById('video').videoWidth > 0", timeout=30000
        )
        assert await page.locator("#pinned-slot .card-title").inner_text() == "焊工 Welder"

        await chapters.nth(1).click()
        await page.wait_for_function(
            """(t) => { const v = document.getElementById('video');
              return !v.seeking && v.readyState >= 2 && Math.abs(v.currentTime - t) < 2; }""",
            arg=offset,
            timeout=30000,
        )
        await page.evaluate("() => document.getElementById('video').pause()")
        await page.wait_for_function(
            "() => { const v = document.getElementById('video'); return v.paused && !v.seeking; }",
            timeout=10000,
        )
        at = await page.evaluate("() => document.getElementById('video').currentTime")
        assert abs(at - offset) < 2, (at, offset)
        shown = await page.evaluate(STAMP)
        assert shown in pub.video.sent_at, shown
        # the picture shown is what the publisher sent within 2 s of the pin
        assert abs(pub.video.sent_at[shown] - sent_then) < 2.0, pub.video.sent_at[shown] - sent_then
        # the chosen opening's card, with its Apply button, beside the player
        card = page.locator("#pinned-slot .card")
        assert await card.locator(".card-title").inner_text() == "护士 Nurse"
        assert await card.get_by_role("button", name="投递").is_visible()
        assert "current" in (await page.locator("#chapters li").nth(1).get_attribute("class") or "")
        errors: list[Any] = [e for e in page.errors if "Failed to load resource" not in e]
        assert errors == []

        # the host's list of broadcasts shows the replay's length and size, and deletes it
        hp = await new_page(browser, base, viewport=PHONE, lang="en")
        hp.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await hp.goto("/host")
        await hp.get_by_label("Username").fill("host1")
        await hp.get_by_label("Password").fill("s3cret-pass")
        await hp.get_by_role("button", name="Log in").click()
        row = hp.locator(f'#broadcast-list li[data-bid="{bid}"]')
        info = row.locator(".replay-info")
        await info.wait_for()
        text = await info.inner_text()
        minutes, seconds = text.split()[1].split(":")
        assert abs(int(minutes) * 60 + int(seconds) - replay["duration"]) <= 1, text
        assert text.endswith(("KB", "MB")), text
        await row.get_by_role("button", name="Delete replay").click()
        await info.wait_for(state="detached")
        assert hp.errors == []
    r = await client.get(f"/api/broadcasts/{bid}/replay")
    assert r.status == 404
    await pub.close()
