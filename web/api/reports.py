"""Viewer reports of cards and the hosts' review queue (openings/reports.py).

POST /api/openings/{oid}/reports                 a viewer reports a card {reason, note?}
GET  /api/broadcasts/{bid}/reports               hosts: the review queue
POST /api/broadcasts/{bid}/reports/{oid}/review  hosts: {outcome: clear | close}
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from jobcast.core.errors import Invalid
from jobcast.openings.reports import ReportService
from jobcast.web.access.requests import client_ip, read_json, require_host, require_viewer
from jobcast.web.api.openings import OPENINGS
from jobcast.web.appkeys import EVENT_LOG, REDIS, SETTINGS
from jobcast.web.jsonutil import json_response

routes = web.RouteTableDef()

REPORTS = web.AppKey("reports", ReportService)


@routes.post("/api/openings/{oid}/reports")
async def report(request: web.Request) -> web.Response:
    vid = require_viewer(request)
    body = await read_json(request, limit=4096)
    if not isinstance(body, dict):
        raise Invalid("expected a JSON object", fields={"body": "must be an object"})
    oid = request.match_info["oid"]
    bid = await request.app[OPENINGS].owner(oid)
    res = await request.app[REPORTS].report(
        bid, oid, vid, client_ip(request), body.get("reason"), body.get("note")
    )
    return json_response(res, status=201)


@routes.get("/api/broadcasts/{bid}/reports")
async def queue(request: web.Request) -> web.Response:
    await require_host(request, host_only=False)
    items = await request.app[REPORTS].queue(request.match_info["bid"])
    return json_response({"items": items})


@routes.post("/api/broadcasts/{bid}/reports/{oid}/review")
async def review(request: web.Request) -> web.Response:
    await require_host(request)
    body = await read_json(request, limit=1024)
    outcome = body.get("outcome") if isinstance(body, dict) else None
    res = await request.app[REPORTS].review(
        request.match_info["bid"], request.match_info["oid"], outcome
    )
    return json_response(res)


async def _reports_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    app[REPORTS] = ReportService(
        app[REDIS],
        app[EVENT_LOG],
        app[OPENINGS],
        threshold=s.report_hold_threshold,
        per_address=s.report_per_address,
        per_ip=s.report_per_ip,
    )
    yield


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_reports_ctx)
