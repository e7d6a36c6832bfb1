"""The replay: the whole stream's HLS playlist after the broadcast, with a chapter at each
pinned card placed where the video showed it; deleting it; and HLS on a disk that fills up
while WebRTC viewers keep watching. Real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import av
import pytest
from jobcast.stream.playlist import parse
from jobcast.web.api.media import MEDIA

from tests.helpers import connect, login
from tests.media_peers import Publisher, Viewer, read_stamp
from tests.openings_helpers import make_opening
from tests.waiting import wait_until

MEDIA_SETTINGS = {"media_ice_addresses": "127.0.0.1", "media_publisher_grace": 3.0}
pytestmark = [
    pytest.mark.media,
    pytest.mark.timeout(90),
    pytest.mark.app_settings(**MEDIA_SETTINGS),
]


async def _frame_at(client, bid: str, offset: float) -> int:
    """The publisher's frame number shown `offset` seconds into the replay."""
    playlist = parse(await (await client.get(f"/hls/{bid}/index.m3u8")).text())
    start = 0.0
    for s in playlist.segments:
        if start + s.duration > offset:
            break
        start += s.duration
    data = await (await client.get(f"/hls/{bid}/{s.init}")).read()
    data += await (await client.get(f"/hls/{bid}/{s.name}")).read()
    with av.open(io.BytesIO(data), format="mp4") as f:
        vs = f.streams.video[0]
        first = None
        for frame in f.decode(vs):
            t = float(frame.pts * vs.time_base)
            first = t if first is None else first
            if t - first >= offset - start - 1 / 60:
                return read_stamp(frame)
    raise AssertionError("no frame at that offset")


async def test_replay_has_a_chapter_per_pin_where_the_video_showed_it(
    client, host, bid, stream_key
):
    a = await make_opening(host, bid, title="Welder")
    b = await make_opening(host, bid, title="Nurse")
    hidden = await make_opening(host, bid, title="Hidden later")
    assert (await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": a["id"]})).status == 200
    r = await client.get(f"/api/broadcasts/{bid}/replay")
    assert r.status == 404 and (await r.json())["error"]["code"] == "replay_not_found"

    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    await ws.wait_for("stream.live", timeout=10)
    writer = client.server.app[MEDIA].streams[bid].hls
    await wait_until(lambda: writer.segments >= 3, 20, "three segments")
    assert (await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": b["id"]})).status == 200
    pinned_b = (await (await client.get(f"/api/broadcasts/{bid}/pin")).json())["pinned"][
        "pinned_at"
    ]
    # the frame the publisher was sending then (its clock is monotonic, the pin's wall time)
    sent_b = time.monotonic() - (time.time() * 1000 - pinned_b) / 1000
    assert (
        await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": hidden["id"]})
    ).status == 200
    await host.patch(f"/api/broadcasts/{bid}/openings/{hidden['id']}", {"status": "draft"})
    live = await client.get(f"/api/broadcasts/{bid}/replay")
    assert live.status == 200 and (await live.json())["live"] is True
    n = writer.segments
    await wait_until(lambda: writer.segments >= n + 3, 20, "three more segments")
    assert await pub.delete() == 200
    await ws.wait_for("stream.ended", timeout=10)

    r = await client.get(f"/api/broadcasts/{bid}/replay")
    assert r.status == 200
    body = await r.json()
    assert body["ended"] is True and body["live"] is False
    assert body["playlist"] == f"/hls/{bid}/index.m3u8"
    assert body["duration"] > 5 and body["segments"] >= 6 and body["bytes"] > 10_000
    chapters = body["chapters"]
    assert [c["opening_id"] for c in chapters] == [a["id"], b["id"]]  # the hidden one is left out
    assert chapters[0]["offset"] == 0  # pinned before the video began
    assert chapters[1]["title"] == "Nurse" and chapters[1]["opening"]["id"] == b["id"]
    assert 2.5 < chapters[1]["offset"] < body["duration"]
    # seeking to the chapter shows what the publisher sent when the card was pinned
    shown = await _frame_at(client, bid, chapters[1]["offset"])
    sent_at = pub.video.sent_at[shown]
    assert abs(sent_at - sent_b) < 2.0, sent_at - sent_b
    await pub.close()


async def test_deleting_a_replay(client, host, bid, stream_key, app_factory, redis_url):
    ws = await connect(client, bid)
    pub = Publisher(client, bid, stream_key)
    await pub.publish()
    await ws.wait_for("stream.live", timeout=10)
    writer = client.server.app[MEDIA].streams[bid].hls
    await wait_until(lambda: writer.segments >= 2, 20, "two segments")
    r = await host.delete(f"/api/broadcasts/{bid}/replay")
    assert r.status == 409 and (await r.json())["error"]["code"] == "stream_live"
    playlist = parse(await (await client.get(f"/hls/{bid}/index.m3u8")).text())
    assert await pub.delete() == 200
    await ws.wait_for("stream.ended", timeout=10)
    viewer = await app_factory(redis_url)  # a viewer without a host session
    r = await viewer.delete(f"/api/broadcasts/{bid}/replay")
    assert r.status in (401, 403)
    other = await login(await app_factory(redis_url), "host2", org="other")
    r = await other.delete(f"/api/broadcasts/{bid}/replay")
    assert r.status == 404
    r = await host.delete(f"/api/broadcasts/{bid}/replay")
    assert r.status == 200 and (await r.json()) == {"deleted": True}
    # a viewer in the middle of the replay gets clean 404s for what is gone
    for name in ("index.m3u8", playlist.segments[0].name):
        r = await client.get(f"/hls/{bid}/{name}")
        assert r.status == 404 and (await r.json())["error"]["code"] == "hls_not_found"
    r = await client.get(f"/api/broadcasts/{bid}/replay")
    assert r.status == 404
    assert (await host.delete(f"/api/broadcasts/{bid}/replay")).status == 404
    await pub.close()


def _fill(path: Path) -> None:
    """Take the whole disk."""
    with open(path, "wb") as f:
        chunk = b"\0" * (1 << 16)
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass


async def test_a_full_disk_stops_hls_only_warns_the_host_and_hls_resumes(
    small_disk: Path, app_factory, redis_url
):
    client = await app_factory(redis_url, data_dir=str(small_disk), **MEDIA_SETTINGS)
    host = await login(client)
    bid = await host.create_broadcast()
    key = (await (await host.post(f"/api/broadcasts/{bid}/stream-key")).json())["stream_key"]
    hs = await connect(client, bid, host=True)
    pub = Publisher(client, bid, key)
    await pub.publish()
    await hs.wait_for("stream.live", timeout=10)
    viewer = Viewer(client, bid)
    await viewer.play()
    await viewer.wait_frames(30, timeout=15)
    stream = client.server.app[MEDIA].streams[bid]
    await wait_until(lambda: stream.hls.segments >= 2, 20, "two segments")

    filler = small_disk / "filler"
    await asyncio.to_thread(_fill, filler)
    warned = await hs.wait_for(lambda e: e["type"] == "stream.hls", timeout=15)
    assert warned["data"]["state"] == "disk_full"
    state = await (await client.get(f"/api/broadcasts/{bid}/stream")).json()
    assert state["hls"] is None and state["hls_state"] == "disk_full"
    # WebRTC viewers keep watching
    n = len(viewer.frames)
    await viewer.wait_frames(n + 60, timeout=15)

    filler.unlink()
    back = await hs.wait_for(
        lambda e: e["type"] == "stream.hls" and e["data"]["state"] == "on", timeout=15
    )
    assert back["data"]["broadcast_id"] == bid
    before = stream.hls.segments
    await wait_until(lambda: stream.hls.segments >= before + 2, 20, "segments again")
    playlist = parse((small_disk / "hls" / bid / "index.m3u8").read_text())
    assert any(s.discontinuity for s in playlist.segments[1:])  # where segments were lost
    for s in playlist.segments:
        assert (small_disk / "hls" / bid / s.name).stat().st_size > 0
    state = await (await client.get(f"/api/broadcasts/{bid}/stream")).json()
    assert state["hls_state"] == "on"
    await viewer.close()
    await pub.close()
