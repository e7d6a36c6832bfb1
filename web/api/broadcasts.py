"""JSON API for broadcasts: public reads, host-only writes."""

from __future__ import annotations

from aiohttp import web
from jobcast.web.access import orgs
from jobcast.web.access.requests import host_user, read_json, require_host
from jobcast.web.appkeys import BROADCASTS, PRESENCE
from jobcast.web.jsonutil import json_response

routes = web.RouteTableDef()


@routes.get("/api/broadcasts")
async def list_broadcasts(request: web.Request) -> web.Response:
    """Viewers: every broadcast not ended. Staff: all of their organization's."""
    items = await request.app[BROADCASTS].list()
    if await host_user(request) is None:
        items = [b for b in items if b.status != "ended"]
    else:
        items = await orgs.visible(request, items)
    return json_response({"broadcasts": [b.public() for b in items]})


@routes.post("/api/broadcasts")
async def create_broadcast(request: web.Request) -> web.Response:
    await require_host(request)
    org = await orgs.caller_org(request)
    b = await request.app[BROADCASTS].create(
        await read_json(request), org=orgs.DEFAULT if org in (None, orgs.ALL) else org
    )
    return json_response(b.public(), status=201, headers={"Location": f"/api/broadcasts/{b.id}"})


@routes.get("/api/broadcasts/{bid}")
async def get_broadcast(request: web.Request) -> web.Response:
    bid = request.match_info["bid"]
    b = await request.app[BROADCASTS].get(bid)
    body = b.public()
    body["viewers"] = await request.app[PRESENCE].total(bid)
    return json_response(body)


@routes.patch("/api/broadcasts/{bid}")
async def update_broadcast(request: web.Request) -> web.Response:
    await require_host(request)
    b = await request.app[BROADCASTS].update(request.match_info["bid"], await read_json(request))
    return json_response(b.public())


@routes.post("/api/broadcasts/{bid}/start")
async def start_broadcast(request: web.Request) -> web.Response:
    await require_host(request)
    b = await request.app[BROADCASTS].start(request.match_info["bid"])
    return json_response(b.public())


@routes.post("/api/broadcasts/{bid}/end")
async def end_broadcast(request: web.Request) -> web.Response:
    await require_host(request)
    b = await request.app[BROADCASTS].end(request.match_info["bid"])
    return json_response(b.public())
