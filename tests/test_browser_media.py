"""Chromium as a WHEP viewer of the direct send path (Debian's Chromium through Playwright): two
browsers decode at the publisher's rate, and one that joins mid-stream gets a picture from the
next keyframe. The page is a bare WHEP client (no viewer page), so only the relay is tested.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from jobcast.web.api.media import MEDIA

from tests.browserkit import DESKTOP, chromium, new_page, require_browser
from tests.media_peers import Publisher
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.media,
    pytest.mark.timeout(120),
    pytest.mark.app_settings(media_ice_addresses="127.0.0.1", media_publisher_grace=3.0),
]

WHEP = """async (bid) => {
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", {direction: "recvonly"});
  pc.addTransceiver("audio", {direction: "recvonly"});
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.appendChild(video);
  const stream = new MediaStream();
  video.srcObject = stream;
  pc.ontrack = (e) => stream.addTrack(e.track);
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") done();
    });
  });
  const r = await fetch(`/whep/${bid}`, {method: "POST", body: pc.localDescription.sdp,
    headers: {"Content-Type": "application/sdp"}});
  if (r.status !== 201) throw new Error(`WHEP ${r.status}: ${await r.text()}`);
  await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
  window.whep = {pc, video, location: r.headers.get("Location")};
}"""

DECODED = """async () => {
  let out = {frames: 0, width: 0, nacks: 0, plis: 0, lost: 0};
  if (!window.whep) return out;
  (await window.whep.pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      out = {frames: r.framesDecoded || 0, width: r.frameWidth || 0, nacks: r.nackCount || 0,
        plis: r.pliCount || 0, lost: r.packetsLost || 0};
    }
  });
  return out;
}"""


async def decoded(page: Any) -> dict[str, int]:
    return await page.evaluate(DECODED)


async def frames_past(page: Any, n: int, timeout: float = 30.0) -> dict[str, int]:
    seen: list[dict[str, int]] = []

    async def check() -> bool:
        seen.append(await decoded(page))
        return seen[-1]["frames"] > n

    await wait_until(check, timeout, f"more than {n} frames decoded", interval=0.1)
    return seen[-1]


def sent_between(pub: Publisher, t0: float, t1: float) -> int:
    return sum(1 for t in pub.video.sent_at.values() if t0 <= t <= t1)


async def test_chromium_viewers_decode_at_the_publishers_rate(client, bid, stream_key) -> None:
    require_browser()
    media = client.server.app[MEDIA]
    assert media.egress.send_path == "direct"
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        pages = [await new_page(browser, base, viewport=DESKTOP, lang="en") for _ in range(2)]
        for p in pages:
            await p.goto("/whep/probe")  # any page of the server: same-origin fetches
            await p.evaluate(WHEP, bid)
        for p in pages:
            first = await frames_past(p, 10)
            assert first["width"] == 320
        # the decode rate over a stretch, against what the publisher sent in it
        t0, at0 = time.monotonic(), [await decoded(p) for p in pages]
        await frames_past(pages[0], at0[0]["frames"] + 120)
        t1, at1 = time.monotonic(), [await decoded(p) for p in pages]
        sent = sent_between(pub, t0, t1)
        got = [b["frames"] - a["frames"] for a, b in zip(at0, at1, strict=True)]
        print({"publisher_frames": sent, "decoded": got, "seconds": round(t1 - t0, 2)})
        for g in got:
            assert g >= 0.9 * sent
        for b in at1:
            assert b["lost"] == 0 and b["plis"] <= 2

        # a third browser joins mid-stream: its first picture comes from the next keyframe
        late = await new_page(browser, base, viewport=DESKTOP, lang="en")
        await late.goto("/whep/probe")
        requests_before = media.counters["keyframe_requests"]
        joined = time.monotonic()
        await late.evaluate(WHEP, bid)
        await frames_past(late, 0)
        pictured = time.monotonic()
        frames_waited = sent_between(pub, joined, pictured)
        print({"first_picture_s": round(pictured - joined, 3), "frames_waited": frames_waited})
        assert media.counters["keyframe_requests"] > requests_before
        # within a keyframe interval (media_keyframe_interval, 1 s = 30 frames) of connecting,
        # with room for ICE and DTLS
        assert frames_waited <= 60
        late_stats = await frames_past(late, 30)
        assert late_stats["width"] == 320
        for p in [*pages, late]:
            await p.context.close()
    await pub.delete()
    await pub.close()
