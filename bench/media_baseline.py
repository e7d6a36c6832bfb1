"""The baseline for bench/media.py: WHIP in, WHEP out through aiortc's `MediaRelay`, the way
aiortc's examples fan one track out. The publisher's frames are decoded once and every viewer's
sender encodes them again (libx264, per viewer). Not part of Jobcast.

    python bench/media_baseline.py PORT
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jobcast.stream.aiortc_internals import IcePolicy, restrict_gathering  # noqa: E402
from jobcast.stream.negotiation import rtc_configuration  # noqa: E402

LOOPBACK = IcePolicy(addresses=("127.0.0.1",))
PCS = web.AppKey("pcs", set)
TRACKS = web.AppKey("tracks", dict)
RELAY = web.AppKey("relay", MediaRelay)


async def _answer(pc: RTCPeerConnection, offer: str) -> str:
    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    return offer


async def whip(request: web.Request) -> web.Response:
    offer = await request.text()
    pc = RTCPeerConnection(rtc_configuration())
    request.app[PCS].add(pc)
    tracks = request.app[TRACKS]

    @pc.on("track")
    def on_track(track) -> None:  # type: ignore[no-untyped-def]
        tracks[track.kind] = track

    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    restrict_gathering(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createAnswer())
    return web.Response(
        status=201,
        text=pc.localDescription.sdp,
        content_type="application/sdp",
        headers={"Location": "/whip/x/1"},
    )


async def whep(request: web.Request) -> web.Response:
    offer = await request.text()
    tracks = request.app[TRACKS]
    if "video" not in tracks:
        return web.Response(status=409, text="not live")
    pc = RTCPeerConnection(rtc_configuration())
    request.app[PCS].add(pc)
    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    for kind in ("video", "audio"):
        if kind in tracks:
            pc.addTrack(request.app[RELAY].subscribe(tracks[kind]))
    restrict_gathering(pc, LOOPBACK)
    await pc.setLocalDescription(await pc.createAnswer())
    n = len(request.app[PCS])
    return web.Response(
        status=201,
        text=pc.localDescription.sdp,
        content_type="application/sdp",
        headers={"Location": f"/whep/x/{n}"},
    )


async def delete(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def _cleanup(app: web.Application) -> None:
    await asyncio.gather(*(pc.close() for pc in app[PCS]))


def main() -> None:
    app = web.Application()
    app[PCS] = set()
    app[TRACKS] = {}
    app[RELAY] = MediaRelay()
    app.router.add_post("/whip/{bid}", whip)
    app.router.add_post("/whep/{bid}", whep)
    app.router.add_delete("/whip/{bid}/{sid}", delete)
    app.router.add_delete("/whep/{bid}/{sid}", delete)
    app.on_shutdown.append(_cleanup)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
