"""WHIP ingest, WHEP playback (RFC 9725) and the host's stream-key and recordings API.

The handlers only translate HTTP: stream.service.MediaService does the work. WHIP/WHEP are
called cross-origin (OBS, other pages) without cookies, so they answer CORS with `*` and are
exempt from the Origin check (web/access/security.py). The stream key is the credential for a WHIP
POST; the resource URL in its 201's `Location` (a secret, unlike the public session id that
snapshots and events carry) is the credential for DELETE. A WHEP session's URL is known only
to its viewer.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, ClassVar

from aiohttp import web
from jobcast.core.errors import JobcastError, TooLarge, UnsupportedMediaType
from jobcast.stream import health
from jobcast.stream.aiortc_internals import IcePolicy
from jobcast.stream.hls import HlsConfig
from jobcast.stream.ice import IceServers
from jobcast.stream.service import HEARTBEAT, MediaConfig, MediaService, SessionAnswer
from jobcast.web.access.requests import client_ip, require_host
from jobcast.web.appkeys import (
    BROADCASTS,
    BUS,
    EVENT_LOG,
    METRICS,
    PRESENCE,
    REDIS,
    SETTINGS,
    SNAPSHOT_PARTS,
)
from jobcast.web.errors import from_error
from jobcast.web.jsonutil import json_response
from jobcast.web.runtime.settings import Settings

HEALTH_FRESH_S = 3 * HEARTBEAT + 1  # a process whose count is older stopped writing
routes = web.RouteTableDef()
log = logging.getLogger("jobcast.media")

MEDIA = web.AppKey("media", MediaService)

SDP_TYPE = "application/sdp"
MAX_SDP_BYTES = 64 * 1024
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, Retry-After, Accept-Patch",
    "Access-Control-Max-Age": "86400",
}
_ENDPOINT_ALLOW = "POST, OPTIONS"
_RESOURCE_ALLOW = "DELETE, OPTIONS"


def media_config(settings: Settings) -> MediaConfig:
    """MediaConfig from settings, which checked every value when they were built."""
    if settings.hls and settings.media_video_codecs[0] != "H264":
        # the operator's order stands; HLS (and so the replay) needs H264
        log.warning(
            "media_video_codecs prefers %s: publishers offering both get no HLS",
            settings.media_video_codecs[0],
        )
    ice = IcePolicy(
        addresses=settings.media_ice_addresses,
        ports=settings.media_udp_ports,
        announce=dict(settings.media_announce_addresses),
    )
    servers = IceServers(
        settings.media_stun_urls,
        settings.media_turn_urls,
        settings.media_turn_username,
        settings.media_turn_password,
        settings.media_turn_secret,
    )
    return MediaConfig(
        ice=ice,
        ice_servers=servers,
        video_codecs=settings.media_video_codecs,
        max_viewers=settings.media_max_viewers,
        connect_timeout=settings.media_connect_timeout,
        pending_per_address=settings.media_pending_per_address,
        publisher_grace=settings.media_publisher_grace,
        keyframe_interval=settings.media_keyframe_interval,
        queue_frames=settings.media_viewer_queue,
        record=settings.media_record,
        recordings_dir=Path(settings.data_dir) / "recordings",
        egress_processes=settings.media_egress_processes,
        send_path=settings.media_send_path,
        hls=HlsConfig(
            directory=Path(settings.data_dir) / "hls",
            segment_seconds=settings.hls_segment_seconds,
            window=settings.hls_window,
            audio_bitrate=settings.hls_audio_bitrate,
        )
        if settings.hls
        else None,
        hls_base_url=settings.hls_public_base_url,
        process=settings.process_name or f"{socket.gethostname()}:{os.getpid()}",
    )


# -- helpers -------------------------------------------------------------------------------


def _cors(handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
    """CORS headers on every answer, errors included (so browsers can read the status)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except JobcastError as e:
            resp = from_error(e)
        except web.HTTPException as e:
            e.headers.update(CORS)
            raise
        resp.headers.update(CORS)
        return resp

    return wrapped


async def _read_sdp(request: web.Request) -> str:
    if request.content_type != SDP_TYPE:
        raise UnsupportedMediaType(
            "the body must be an SDP offer (Content-Type: application/sdp)",
            code="unsupported_media_type",
        )
    if request.content_length is not None and request.content_length > MAX_SDP_BYTES:
        raise TooLarge(f"SDP larger than {MAX_SDP_BYTES} bytes", extra={"limit": MAX_SDP_BYTES})
    body = bytearray()
    async for chunk in request.content.iter_chunked(16384):
        body.extend(chunk)
        if len(body) > MAX_SDP_BYTES:
            raise TooLarge(f"SDP larger than {MAX_SDP_BYTES} bytes", extra={"limit": MAX_SDP_BYTES})
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        from jobcast.stream.errors import BadSdp

        raise BadSdp("the SDP is not UTF-8") from None


def _created(answer: SessionAnswer) -> web.Response:
    resp = web.Response(status=201, text=answer.sdp, content_type=SDP_TYPE)
    resp.headers["Location"] = answer.location
    resp.headers["ETag"] = f'"{answer.sid}"'
    for link in answer.links:
        resp.headers.add("Link", link)
    return resp


def _options(allow: str, links: list[str] | None = None) -> web.Response:
    resp = web.Response(status=204)
    resp.headers["Allow"] = allow
    if allow == _ENDPOINT_ALLOW:
        resp.headers["Accept-Post"] = SDP_TYPE
    for link in links or []:
        resp.headers.add("Link", link)
    return resp


def _no_trickle(allow: str) -> web.Response:
    from jobcast.web.errors import error_response

    return error_response(
        405,
        "method_not_allowed",
        "trickle ICE and ICE restarts are not supported: send a complete offer",
        headers={"Allow": allow},
    )


# -- WHIP ----------------------------------------------------------------------------------


@routes.post("/whip/{bid}")
@_cors
async def whip_post(request: web.Request) -> web.Response:
    offer = await _read_sdp(request)
    media = request.app[MEDIA]
    answer = await media.publish(
        request.match_info["bid"], request.headers.get("Authorization"), offer
    )
    return _created(answer)


@routes.route("OPTIONS", "/whip/{bid}")
@_cors
async def whip_options(request: web.Request) -> web.Response:
    media = request.app[MEDIA]
    bid = request.match_info["bid"]
    links: list[str] = []
    if request.headers.get("Authorization"):
        # TURN credentials only for a caller that holds the stream key.
        try:
            await media.check_key(bid, request.headers.get("Authorization"))
            links = media.config.ice_servers.links(f"p-{bid}")
        except JobcastError:
            links = []
    return _options(_ENDPOINT_ALLOW, links)


@routes.delete("/whip/{bid}/{sid}")
@_cors
async def whip_delete(request: web.Request) -> web.Response:
    # {sid} here is the secret resource id from the Location, not the public session id
    await request.app[MEDIA].unpublish(request.match_info["bid"], request.match_info["sid"])
    return web.Response(status=200)


# -- WHEP ----------------------------------------------------------------------------------


@routes.post("/whep/{bid}")
@_cors
async def whep_post(request: web.Request) -> web.Response:
    offer = await _read_sdp(request)
    answer = await request.app[MEDIA].play(
        request.match_info["bid"], offer, client=client_ip(request)
    )
    return _created(answer)


@routes.route("OPTIONS", "/whep/{bid}")
@_cors
async def whep_options(request: web.Request) -> web.Response:
    bid = request.match_info["bid"]
    return _options(_ENDPOINT_ALLOW, request.app[MEDIA].config.ice_servers.links(f"v-{bid}"))


@routes.delete("/whep/{bid}/{sid}")
@_cors
async def whep_delete(request: web.Request) -> web.Response:
    await request.app[MEDIA].stop_play(request.match_info["bid"], request.match_info["sid"])
    return web.Response(status=200)


# -- both: a session resource's OPTIONS, and PATCH (no trickle ICE) ------------------------


@routes.route("OPTIONS", "/whip/{bid}/{sid}")
@routes.route("OPTIONS", "/whep/{bid}/{sid}")
@_cors
async def resource_options(request: web.Request) -> web.Response:
    return _options(_RESOURCE_ALLOW)


@routes.patch("/whip/{bid}")
@routes.patch("/whip/{bid}/{sid}")
@routes.patch("/whep/{bid}")
@routes.patch("/whep/{bid}/{sid}")
@_cors
async def media_patch(request: web.Request) -> web.Response:
    return _no_trickle(_RESOURCE_ALLOW if "sid" in request.match_info else _ENDPOINT_ALLOW)


# -- host API ------------------------------------------------------------------------------


@routes.get("/api/broadcasts/{bid}/stream")
async def stream_state(request: web.Request) -> web.Response:
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)
    return json_response((await request.app[MEDIA].state(bid))["stream"])


@routes.get("/api/broadcasts/{bid}/stream/health")
async def stream_health(request: web.Request) -> web.Response:
    """For hosts and moderators: what the publisher sends and how viewers watch."""
    await require_host(request, host_only=False)
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)
    total = await request.app[PRESENCE].total(bid)
    body = await health.read_health(request.app[REDIS], bid, total, HEALTH_FRESH_S)
    return json_response(body, headers={"Cache-Control": "no-store"})


@routes.get("/api/broadcasts/{bid}/stream-key")
async def stream_key_info(request: web.Request) -> web.Response:
    await require_host(request)
    return json_response(await request.app[MEDIA].key_info(request.match_info["bid"]))


@routes.post("/api/broadcasts/{bid}/stream-key")
async def stream_key_rotate(request: web.Request) -> web.Response:
    await require_host(request)
    body = await request.app[MEDIA].rotate_key(request.match_info["bid"])
    return json_response(body, status=201, headers={"Cache-Control": "no-store"})


@routes.get("/api/broadcasts/{bid}/recordings")
async def recordings(request: web.Request) -> web.Response:
    await require_host(request)
    items = await request.app[MEDIA].recordings(request.match_info["bid"])
    return json_response({"recordings": items})


@routes.get("/api/broadcasts/{bid}/recordings/{name}")
async def recording_download(request: web.Request) -> web.StreamResponse:
    await require_host(request)
    path = await request.app[MEDIA].recording_file(
        request.match_info["bid"], request.match_info["name"]
    )
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "video/x-matroska",
            "Content-Disposition": f'attachment; filename="{path.name}"',
        },
    )


@routes.get("/api/media/stats")
async def media_stats(request: web.Request) -> web.Response:
    await require_host(request)
    return json_response(request.app[MEDIA].stats())


# -- wiring --------------------------------------------------------------------------------


async def _media_ctx(app: web.Application) -> AsyncIterator[None]:
    config = media_config(app[SETTINGS])
    if not app[SETTINGS].process_name:
        config = dataclasses.replace(config, process=f"{config.process}:{id(app):x}")
    media = MediaService(
        app[REDIS], app[EVENT_LOG], app[BROADCASTS], config, subscribe=app[BUS].listen
    )
    app[MEDIA] = media
    await media.start()
    yield
    await media.close()


class _MediaCollector:
    """The relay's counters at scrape time (stream/ has no Prometheus)."""

    GAUGES: ClassVar[dict[str, str]] = {
        "streams": "Broadcasts whose publisher is connected to this process",
        "publishers": "WHIP publishers connected to this process",
        "viewers": "WHEP viewers served by this process (egress processes included)",
        "egress_processes": "Egress processes alive",
    }
    COUNTERS: ClassVar[dict[str, str]] = {
        "frames_sent": "Frames handed to viewers' senders",
        "frames_skipped": "Frames viewers skipped while waiting for a keyframe",
        "lag_events": "Times a viewer fell behind and skipped to the next keyframe",
        "failed": "Viewer connections that failed or never connected",
        "keyframe_requests": "Keyframes wanted (joins, lag, viewers' PLI) before spacing",
        "ingests": "WHIP sessions accepted",
        "viewers_opened": "WHEP sessions accepted",
        "pending_refused": "WHEP offers refused: their address had too many unconnected ones",
        "egress_dropped": "Frames not written to a backed-up egress process",
    }

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if MEDIA not in self.app:
            return
        stats = self.app[MEDIA].stats()
        for name, help_ in self.GAUGES.items():
            g = GaugeMetricFamily(f"jobcast_media_{name}", help_)
            g.add_metric([], float(stats.get(name, 0)))
            yield g
        for name, help_ in self.COUNTERS.items():
            c = CounterMetricFamily(f"jobcast_media_{name}", help_)
            c.add_metric([], float(stats.get(name, 0)))
            yield c


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_media_ctx)
    app[METRICS].registry.register(_MediaCollector(app))

    async def stream_part(bid: str, is_host: bool) -> dict[str, Any]:
        return await app[MEDIA].state(bid)

    app[SNAPSHOT_PARTS].append(stream_part)
