"""Stream health for the host: the ingest meter (with an injected clock), and a real aiortc
publisher and viewers measured through `GET /api/broadcasts/{id}/stream/health`."""

from __future__ import annotations

import aiohttp
import pytest
from jobcast.stream.health import IngestMeter, verdict

from tests.helpers import login
from tests.media_peers import Publisher, Viewer
from tests.waiting import wait_until

MEDIA = {"media_ice_addresses": "127.0.0.1", "media_publisher_grace": 3.0}


def _feed(meter: IngestMeter, seconds: float, fps: int, gop_s: float, t0: float = 0.0) -> float:
    """Feed `fps` video frames of 6,000 bytes (a keyframe every `gop_s`) and 50 audio frames
    of 160 bytes per second; returns the clock at the end."""
    n = int(seconds * fps)
    for i in range(n):
        t = t0 + i / fps
        meter.add("video", 6000, (i % int(gop_s * fps)) == 0, t)
    for i in range(int(seconds * 50)):
        meter.add("audio", 160, True, t0 + i / 50)
    return t0 + seconds


def test_the_meter_reports_rates_over_its_window():
    m = IngestMeter()
    now = _feed(m, 10, 30, 2.0)
    r = m.report(now)
    assert r["video"]["fps"] == pytest.approx(30, abs=1)
    assert r["video"]["kbps"] == pytest.approx(6000 * 8 * 30 / 1000, rel=0.05)  # 1,440 kbps
    assert r["audio"]["kbps"] == pytest.approx(64, rel=0.05)
    assert r["video"]["keyframe_s"] == pytest.approx(2.0, abs=0.1)
    assert 0 < r["age_s"] <= 1 / 30  # the last frame of either kind
    assert verdict(r) == ("good", [])


def test_the_verdict_names_what_is_wrong():
    m = IngestMeter()
    now = _feed(m, 10, 12, 2.0)
    assert verdict(m.report(now)) == ("warn", ["low_fps"])
    m = IngestMeter()
    now = _feed(m, 20, 30, 15.0)
    assert verdict(m.report(now)) == ("warn", ["rare_keyframes"])
    m = IngestMeter()
    now = _feed(m, 10, 30, 2.0)
    assert verdict(m.report(now + 5)) == ("bad", ["stalled"])
    m = IngestMeter()
    for i in range(250):
        m.add("audio", 160, True, i / 50)
    assert verdict(m.report(5.0)) == ("warn", ["no_video"])
    assert verdict(IngestMeter().report(1.0)) == ("bad", ["stalled"])


@pytest.mark.media
@pytest.mark.timeout(60)
@pytest.mark.app_settings(**MEDIA)
async def test_health_of_a_real_stream_for_hosts_only(client, client_b, host, bid, stream_key):
    url = f"/api/broadcasts/{bid}/stream/health"
    r = await host.get(url)
    assert r.status == 200
    assert await r.json() == {
        "state": "offline",
        "viewers": {"total": 0, "webrtc": 0, "other": 0},
    }
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    viewers = [Viewer(client, bid), Viewer(client_b, bid)]  # one per process
    for v in viewers:
        await v.play()
    for v in viewers:
        await v.wait_frames(30, timeout=20)

    async def measured() -> bool:
        body = await (await host.get(url)).json()
        video = body.get("ingest", {}).get("video", {})
        return body["viewers"]["webrtc"] == 2 and video.get("fps", 0) > 20

    await wait_until(measured, 20, "the publisher's frames and both processes' viewers")
    body = await (await host.get(url)).json()
    assert body["state"] == "live"
    assert body["ingest"]["audio"]["kbps"] > 0 and body["ingest"]["video"]["kbps"] > 0
    assert body["ingest"]["age_s"] < 2.5
    assert body["verdict"] in ("good", "warn")
    # a moderator sees it; a viewer does not
    mod = await login(client_b, "mod1", "moderator")
    assert (await mod.get(url)).status == 200
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(client.make_url(url)) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "login_required"
    for v in viewers:
        await v.close()
    await pub.close()
