"""The viewer page over HLS in a real browser (Debian's Chromium through Playwright): stable
mode, a full relay, a network where WebRTC never connects, and WebRTC viewers who never load
hls.js. An aiortc publisher sends H264 over WHIP from the test process; the server writes it
as HLS; the page plays it with the vendored hls.js.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jobcast.web.pages.views import STATIC

from tests.browserkit import (
    FRAMES_DECODED,
    PHONE,
    chromium,
    new_page,
    real_errors,
    require_browser,
    screenshot,
)
from tests.media_peers import Publisher, Viewer
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.media,
    pytest.mark.timeout(150),
    pytest.mark.app_settings(media_ice_addresses="127.0.0.1", media_publisher_grace=3.0),
]

ROOT = Path(__file__).resolve().parent.parent
VENDOR = STATIC / "vendor"
HLSJS = "/static/vendor/hls.light.min.js"

PLAYER = """() => {
  const p = JC.viewer.player, v = document.getElementById("video");
  return {mode: p.hlsMode() ? "hls" : "webrtc", phase: p.phase, fallback: p.fallback,
    engine: p.hls && p.hls.engine, error: p.lastError, time: v.currentTime,
    width: v.videoWidth, src: v.currentSrc, label: document.getElementById("stage-mode").innerText,
    overlay: document.getElementById("overlay").hidden ? "" :
      document.getElementById("overlay-title").textContent};
}"""
HLS_PLAYING = """() => {
  const p = JC.viewer.player, v = document.getElementById("video");
  return p.hlsMode() && p.phase === "playing" && v.videoWidth > 0;
}"""
WEBRTC_PLAYING = """() => {
  const p = JC.viewer.player;
  return !p.hlsMode() && p.phase === "playing" && !!p.session;
}"""


class Traffic:
    """Every request a page made, and the answers to them, in order."""

    def __init__(self, page: Any) -> None:
        self.requests: list[tuple[str, str]] = []
        self.responses: list[Any] = []
        page.on("request", lambda r: self.requests.append((r.method, r.url)))
        page.on("response", lambda r: self.responses.append(r))

    def paths(self, part: str, method: str | None = None) -> list[str]:
        return [u for m, u in self.requests if part in u and method in (None, m)]

    def answer(self, part: str) -> Any:
        return next(r for r in self.responses if part in r.url)


async def until(page: Any, check: str, what: str, timeout: float = 30.0, arg: Any = None) -> None:
    """page.wait_for_function, failing with the player's state and the page's errors."""
    try:
        await page.wait_for_function(check, arg=arg, timeout=timeout * 1000, polling=100)
    except Exception as e:
        if type(e).__name__ != "TimeoutError":
            raise
        state = await page.evaluate(PLAYER)
        raise AssertionError(f"timed out waiting for {what}: {state} {page.errors}") from None


async def hls_plays(page: Any, timeout: float = 30.0) -> None:
    """The page plays over HLS: pictures, and the position moves on by a second and more."""
    await until(page, HLS_PLAYING, "HLS playing with a picture", timeout)
    start = await page.evaluate("() => document.getElementById('video').currentTime")
    await until(
        page,
        "(t) => document.getElementById('video').currentTime > t + 1",
        f"currentTime past {start} + 1 s",
        timeout,
        arg=start,
    )


async def webrtc_frames(page: Any, more_than: int, timeout: float = 30.0) -> int:
    seen = [0]

    async def decoded() -> bool:
        seen.append(await page.evaluate(FRAMES_DECODED))
        return seen[-1] > more_than

    await wait_until(decoded, timeout, f"more than {more_than} WebRTC frames", interval=0.2)
    return seen[-1]


async def go_live(client: Any, bid: str, stream_key: str) -> Publisher:
    """A publisher sending H264; returns once the stream state is live and names its HLS."""
    pub = Publisher(client, bid, stream_key)
    await pub.publish()

    async def live_with_hls() -> bool:
        s = await (await client.get(f"/api/broadcasts/{bid}/stream")).json()
        return s["state"] == "live" and bool(s.get("hls"))

    await wait_until(live_with_hls, 20, "the stream live with an HLS playlist")
    return pub


async def relay_viewers(host: Any, n: int) -> bool:
    """Whether the relay serves `n` WebRTC viewers (GET /api/media/stats, as the host)."""
    return (await (await host.get("/api/media/stats")).json())["viewers"] == n


def test_vendored_hlsjs_is_the_pinned_package() -> None:
    """package.json pins one exact hls.js; the vendored light build is that version, its .gz
    (served to browsers that take gzip) is the same bytes, and its licence is beside it."""
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["hls.js"]
    assert re.fullmatch(r"1\.\d+\.\d+", pinned), pinned
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/hls.js"]["version"] == pinned
    raw = (VENDOR / "hls.light.min.js").read_bytes()
    assert f'"{pinned}"'.encode() in raw
    assert gzip.decompress((VENDOR / "hls.light.min.js.gz").read_bytes()) == raw
    assert "Apache License" in (VENDOR / "hls.js.LICENSE").read_text()


async def test_stable_mode_plays_hls_with_hlsjs_and_back(client, host, bid, stream_key) -> None:
    """A WebRTC viewer picks stable mode: hls.js (loaded then, from 'self') plays the live
    playlist, the stage says so and how far behind live it is, the WebRTC slot is freed, and
    the choice is kept across a reload; switching it off plays WebRTC again."""
    require_browser()
    pub = await go_live(client, bid, stream_key)
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE, lang="en")
        traffic = Traffic(v)
        await v.goto(f"/b/{bid}")
        await until(v, WEBRTC_PLAYING, "WebRTC playing")
        await until(
            v,
            "() => document.getElementById('stage-mode').innerText.includes('Live (low latency)')",
            "the stage saying low latency",
        )
        assert traffic.paths("/static/vendor/") == [] and traffic.paths("/hls/") == []
        await wait_until(lambda: relay_viewers(host, 1), 10, "one WebRTC viewer on the relay")

        await v.get_by_role("button", name="Stable mode").click()
        await hls_plays(v)
        state = await v.evaluate(PLAYER)
        assert state["engine"] == "hls.js" and state["src"].startswith("blob:"), state
        assert state["width"] == 320 and state["fallback"] is None, state
        assert "Stable mode (HLS)" in state["label"], state
        assert (
            await v.evaluate("() => typeof Hls === 'function' && Hls.version")
            == (json.loads((ROOT / "package.json").read_text())["devDependencies"]["hls.js"])
        )
        script = traffic.answer(HLSJS)
        assert script.status == 200
        assert (await script.all_headers()).get("content-encoding") == "gzip"
        assert traffic.paths(f"/hls/{bid}/live.m3u8") and traffic.paths(".m4s")
        # how far behind live, from hls.js, shown in whole seconds
        await until(
            v,
            "() => /^\\d+ s behind live$/.test("
            "document.getElementById('mode-lag').textContent) && "
            "!document.getElementById('mode-lag').hidden",
            "the latency on the stage",
        )
        lag = await v.evaluate("() => JC.viewer.player.hls.latency()")
        assert lag > 0, lag
        await screenshot(v, "viewer-360-hls-en")
        assert await v.get_by_role("button", name="Stable mode").get_attribute("aria-pressed") == (
            "true"
        )
        assert await v.get_by_role("button", name="Audio only").is_disabled()
        assert await v.evaluate("() => JC.viewer.player.session") is None
        await wait_until(lambda: relay_viewers(host, 0), 10, "the WebRTC slot freed on the relay")
        assert await v.evaluate("() => localStorage.getItem('jc_stable')") == "1"

        # The choice is kept: after a reload the page plays HLS without asking for WebRTC.
        whep_before = len(traffic.paths("/whep/", "POST"))
        await v.reload()
        await hls_plays(v)
        assert len(traffic.paths("/whep/", "POST")) == whep_before

        # Off again: WebRTC plays (and audio only works again).
        await v.get_by_role("button", name="Stable mode").click()
        await until(v, WEBRTC_PLAYING, "WebRTC playing again")
        await webrtc_frames(v, 0)
        assert await v.evaluate("() => localStorage.getItem('jc_stable')") == "0"
        assert await v.evaluate("() => JC.viewer.player.hls") is None
        assert not await v.get_by_role("button", name="Audio only").is_disabled()
        assert real_errors(v) == [], real_errors(v)
    await pub.close()


@pytest.mark.app_settings(media_max_viewers=1)
async def test_a_full_relay_moves_the_viewer_to_hls(client, host, bid, stream_key) -> None:
    """WHEP answers 503 (an aiortc viewer holds the relay's one slot): the page plays HLS by
    itself, in Chinese words; switching stable mode off tries WebRTC once more, which is
    still full, and HLS plays again."""
    require_browser()
    pub = await go_live(client, bid, stream_key)
    first = Viewer(client, bid)
    await first.play()
    await first.wait_frames(1)
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        traffic = Traffic(v)
        await v.goto(f"/b/{bid}")
        await hls_plays(v)
        state = await v.evaluate(PLAYER)
        assert state["fallback"] == "full" and state["engine"] == "hls.js", state
        assert "稳定模式（HLS）" in state["label"], state
        assert traffic.answer("/whep/").status == 503
        assert traffic.paths(HLSJS)
        # a fallback is not the viewer's choice: nothing is kept for the next visit
        assert await v.evaluate("() => localStorage.getItem('jc_stable')") is None
        stable = v.get_by_role("button", name="稳定模式", exact=True)
        assert await stable.get_attribute("aria-pressed") == "true"
        await until(v, "() => !document.getElementById('mode-lag').hidden", "the latency shown")
        await screenshot(v, "viewer-360-hls")

        await stable.click()
        await wait_until(
            lambda: len(traffic.paths("/whep/", "POST")) == 2, 10, "a second WHEP offer"
        )
        await hls_plays(v)
        assert (await v.evaluate(PLAYER))["fallback"] == "full"
        assert await relay_viewers(host, 1)  # the aiortc viewer's, still playing
        assert real_errors(v) == [], real_errors(v)
    await first.close()
    await pub.close()


# The server announces an address nothing listens on (NAT 1:1 set wrong, or, as the page sees
# it, a network where WebRTC's UDP goes nowhere): the publisher (aiortc) still connects through
# the address its checks come from, the browser's checks to the announced one never arrive.
@pytest.mark.app_settings(media_announce_addresses="127.0.0.2")
async def test_webrtc_that_never_connects_falls_back_to_hls(client, host, bid, stream_key) -> None:
    """The WHEP answer comes, but no connection follows; a few seconds later the page plays
    HLS, and its WHEP session is ended rather than left to time out."""
    require_browser()
    pub = await go_live(client, bid, stream_key)
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE, lang="en")
        traffic = Traffic(v)
        await v.goto(f"/b/{bid}")
        await hls_plays(v, timeout=40)
        state = await v.evaluate(PLAYER)
        assert state["fallback"] == "no_connect" and state["engine"] == "hls.js", state
        assert traffic.answer("/whep/").status == 201
        assert traffic.paths("/whep/", "DELETE"), "the unconnected WHEP session is ended"
        assert await relay_viewers(host, 0)
        assert real_errors(v) == [], real_errors(v)
    await pub.close()


async def test_a_webrtc_viewer_never_loads_hlsjs(client, host, bid, stream_key) -> None:
    """A viewer whose WebRTC plays fetches neither hls.js nor a playlist, also after the few
    seconds in which a connection that did not come up would have moved it to HLS."""
    require_browser()
    pub = await go_live(client, bid, stream_key)
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE, lang="en")
        traffic = Traffic(v)
        await v.goto(f"/b/{bid}")
        await until(v, WEBRTC_PLAYING, "WebRTC playing")
        # 200 frames at 30 fps: well past the 5 s after the answer that HLS waits for
        await webrtc_frames(v, 200, timeout=40)
        state = await v.evaluate(PLAYER)
        assert state["mode"] == "webrtc" and state["fallback"] is None, state
        assert "Live (low latency)" in state["label"], state
        assert len(traffic.paths("/whep/", "POST")) == 1
        assert traffic.paths("/static/vendor/") == []
        assert traffic.paths("hlsplay.js") == []
        assert traffic.paths("/hls/") == []
        assert await v.evaluate("() => typeof Hls === 'undefined' && !JC.HlsPlayback")
        assert await v.get_by_role("button", name="Stable mode").is_visible()
        await screenshot(v, "viewer-360-webrtc-en")
        assert real_errors(v) == [], real_errors(v)
    await pub.close()
