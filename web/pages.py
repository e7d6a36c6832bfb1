"""Server-rendered pages (jinja2, autoescape on), health and metrics."""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

from core.errors import NotFound
from web.appkeys import BROADCASTS, METRICS, PRESENCE, REDIS, SIGNER
from web.auth import viewer_csrf
from web.jsonutil import json_response
from web.metrics import CONTENT_TYPE
from web.requests import viewer_id

routes = web.RouteTableDef()
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
JINJA = web.AppKey("jinja", jinja2.Environment)


def make_env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        enable_async=False,
    )


def render(request: web.Request, name: str, status: int = 200, **ctx: object) -> web.Response:
    html = request.app[JINJA].get_template(name).render(**ctx)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    items = [b for b in await request.app[BROADCASTS].list() if b.status != "ended"]
    return render(request, "index.html", broadcasts=items)


@routes.get("/b/{bid}")
async def viewer_page(request: web.Request) -> web.Response:
    try:
        b = await request.app[BROADCASTS].get(request.match_info["bid"])
    except NotFound:
        return render(request, "not_found.html", status=404)
    vid = viewer_id(request)
    return render(
        request,
        "viewer.html",
        broadcast=b,
        viewers=await request.app[PRESENCE].total(b.id),
        csrf=viewer_csrf(request.app[SIGNER], vid) if vid else "",
    )


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    try:
        await request.app[REDIS].ping()
    except Exception:
        return json_response({"ok": False, "redis": "down"}, status=503)
    return json_response({"ok": True, "redis": "up"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
