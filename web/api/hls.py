"""HLS over HTTP: the live stream and the replay for viewers, through any cache or CDN, and the
replay's chapters and housekeeping for hosts.

`/hls/{stream}/{name}` serves the files that stream/hls.py writes under DATA_DIR/hls, with
headers a CDN obeys: segments and init segments never change (cached for a year, immutable),
the live playlist for at most one segment, the whole-stream playlist briefly while it still
grows. Players on other origins may fetch them (CORS `*`); no cookie is read or set, so a
cache may share every answer between all viewers. The route's parameter is not `bid` on
purpose: the organization middleware, which reads the session, leaves it alone.

Unknown or malformed names get a 404 JSON body; no name reaches the filesystem unchecked
(stream/replays.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from jobcast.core import keys, tasks
from jobcast.core.errors import Conflict, NotFound
from jobcast.stream import replays
from jobcast.stream.hls import INDEX, LIVE
from jobcast.web.access import orgs
from jobcast.web.access.requests import require_host
from jobcast.web.api.media import MEDIA
from jobcast.web.api.openings import OPENINGS
from jobcast.web.appkeys import BROADCASTS, REDIS, SETTINGS
from jobcast.web.errors import error_response
from jobcast.web.jsonutil import json_response

routes = web.RouteTableDef()

HLS_ROOT = web.AppKey("hls_root", Path)
HOUSEKEEP_EVERY = 600.0  # seconds

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "Range",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range",
    "Access-Control-Max-Age": "86400",
}
IMMUTABLE = "public, max-age=31536000, immutable"
PLAYLIST = "application/vnd.apple.mpegurl"


def _not_found(what: str = "no such HLS file") -> web.Response:
    resp = error_response(404, "hls_not_found", what)
    resp.headers.update(_CORS)
    # a name that may appear once the stream starts: let caches retry soon
    resp.headers["Cache-Control"] = "public, max-age=1"
    return resp


@routes.get("/hls/{stream}/{name}")
async def hls_file(request: web.Request) -> web.StreamResponse:
    root = request.app[HLS_ROOT]
    bid, name = request.match_info["stream"], request.match_info["name"]
    path = await asyncio.to_thread(replays.hls_path, root, bid, name)
    if path is None:
        return _not_found()
    if name.endswith(".m3u8"):
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return _not_found()
        ended = b"#EXT-X-ENDLIST" in body[-64:]
        seconds = request.app[SETTINGS].hls_segment_seconds
        if name == LIVE and not ended:
            cache = f"public, max-age={max(1, int(seconds))}"
        else:
            cache = f"public, max-age={60 if ended else max(1, int(seconds))}"
        resp = web.Response(body=body, content_type=PLAYLIST, headers=_CORS)
        resp.headers["Cache-Control"] = cache
        return resp
    return web.FileResponse(
        path,
        headers={**_CORS, "Content-Type": "video/mp4", "Cache-Control": IMMUTABLE},
    )


@routes.route("OPTIONS", "/hls/{stream}/{name}")
async def hls_options(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={**_CORS, "Allow": "GET, HEAD, OPTIONS"})


# -- the replay ------------------------------------------------------------------------------


async def chapters(app: web.Application, bid: str, rep: replays.Replay) -> list[dict[str, Any]]:
    """One chapter per pin of a published opening, where the video shows it: pinned before the
    video began, at 0; pinned while no video was written, where the video comes back; pinned
    after the end, none."""
    openings = app[OPENINGS]
    state = await openings.state(bid)
    playlist = rep.playlist
    first = playlist.segments[0].pdt_ms
    out: list[dict[str, Any]] = []
    for oid, at in await openings.pin_history(bid):
        o = state.openings.get(oid)
        if o is None or not o.visible():
            continue
        offset = 0.0 if at < first else playlist.position(at)
        if offset is None:
            offset = playlist.start_of_next_after(at)
        if offset is None:
            continue
        out.append(
            {
                "opening_id": oid,
                "title": o.title,
                "at": at,
                "offset": round(offset, 3),
                "opening": o.public(),
            }
        )
    return out


@routes.get("/api/broadcasts/{bid}/replay")
async def get_replay(request: web.Request) -> web.Response:
    bid = request.match_info["bid"]
    broadcast = await request.app[BROADCASTS].get(bid)
    rep = await asyncio.to_thread(replays.replay, request.app[HLS_ROOT], bid)
    if rep is None:
        raise NotFound("this broadcast has no replay", code="replay_not_found")
    base = request.app[SETTINGS].hls_public_base_url
    body = rep.public()
    body["playlist"] = f"{base}/hls/{bid}/{INDEX}"
    body["live"] = broadcast.status == "live" and not rep.playlist.ended
    body["chapters"] = await chapters(request.app, bid, rep)
    return json_response(body)


@routes.get("/api/replays")
async def list_replays(request: web.Request) -> web.Response:
    """Staff: the replays of their organization's broadcasts, newest first (no chapters)."""
    await require_host(request, host_only=False)
    items = await orgs.visible(request, await request.app[BROADCASTS].list())
    root = request.app[HLS_ROOT]

    def found() -> list[dict[str, Any]]:
        out = []
        for b in items:
            rep = replays.replay(root, b.id)
            if rep is not None:
                out.append({**rep.public(), "title": b.title, "status": b.status})
        return sorted(out, key=lambda r: r["started_at"] or 0, reverse=True)

    return json_response({"replays": await asyncio.to_thread(found)})


@routes.delete("/api/broadcasts/{bid}/replay")
async def delete_replay(request: web.Request) -> web.Response:
    await require_host(request)
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)
    if await request.app[REDIS].exists(keys.ingest(bid)):
        raise Conflict("the stream is live: end it first", code="stream_live")
    if not await asyncio.to_thread(replays.delete, request.app[HLS_ROOT], bid):
        raise NotFound("this broadcast has no replay", code="replay_not_found")
    return json_response({"deleted": True})


# -- housekeeping ----------------------------------------------------------------------------


async def housekeep(app: web.Application) -> dict[str, int]:
    """Close playlists no writer holds (a killed process) and delete replays past retention.
    A stream is left alone while any process on any box holds its ingest."""
    root = app[HLS_ROOT]
    names = await asyncio.to_thread(
        lambda: [p.name for p in root.iterdir()] if root.is_dir() else []
    )
    live: set[str] = set(app[MEDIA].streams) if MEDIA in app else set()
    for name in names:
        if await app[REDIS].exists(keys.ingest(name)):
            live.add(name)
    return await asyncio.to_thread(replays.housekeep, root, live, app[SETTINGS].hls_retention_days)


async def _housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        while True:
            try:
                await housekeep(app)
            except Exception:  # Redis down or a disk error: try again next round
                pass
            await asyncio.sleep(HOUSEKEEP_EVERY)

    task = asyncio.create_task(loop()) if app[SETTINGS].hls else None
    yield
    await tasks.stop(task)


def setup(app: web.Application) -> None:
    app[HLS_ROOT] = Path(app[SETTINGS].data_dir) / "hls"
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_housekeeping_ctx)
