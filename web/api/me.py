"""A viewer's own applications (docs/protocol.md, "My applications").

`GET /api/me/applications` lists them by the viewer cookie, across every broadcast; another
device sees them after confirming the phone number they applied with: `POST /api/me/phone`
sends a code to that number (as a notice, through the notifier), `POST /api/me/phone/verify`
checks it and links the number to this device's viewer id for good, so that the number's
applications list here and their status changes reach this device's sockets too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from jobcast.openings import mine
from jobcast.web.access.requests import client_ip, read_json, require_viewer
from jobcast.web.api.openings import phone_key
from jobcast.web.appkeys import REDIS, SIGNER
from jobcast.web.jsonutil import json_response
from jobcast.web.pages.i18n import page_lang

routes = web.RouteTableDef()
PHONE_CODES = web.AppKey("phone_codes", mine.PhoneCodes)


async def my_applications(request: web.Request) -> dict[str, object]:
    """The body of GET /api/me/applications (also what the /me page renders first)."""
    vid = require_viewer(request)
    redis = request.app[REDIS]
    return {
        "applications": await mine.list_mine(redis, vid),
        "phones": await mine.linked_phones(redis, vid),
    }


@routes.get("/api/me/applications")
async def list_mine(request: web.Request) -> web.Response:
    """This viewer's applications, newest first (only what the applicant may see)."""
    resp = json_response(await my_applications(request))
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _field(data: object, name: str) -> object:
    return data.get(name) if isinstance(data, dict) else None


@routes.post("/api/me/phone")
async def send_code(request: web.Request) -> web.Response:
    """Send a code to the number; the same answer whether or not it applied anywhere."""
    require_viewer(request)
    data = await read_json(request)
    await request.app[PHONE_CODES].send(
        _field(data, "phone"), ip=client_ip(request), lang=page_lang(request)
    )
    return json_response({"sent": True}, status=202)


@routes.post("/api/me/phone/verify")
async def verify_code(request: web.Request) -> web.Response:
    """The right code links the number's applications to this device; answers the list."""
    vid = require_viewer(request)
    data = await read_json(request)
    await request.app[PHONE_CODES].verify(
        _field(data, "phone"), _field(data, "code"), vid=vid, ip=client_ip(request)
    )
    return json_response(await my_applications(request))


async def _codes_ctx(app: web.Application) -> AsyncIterator[None]:
    app[PHONE_CODES] = mine.PhoneCodes(app[REDIS], phone_key(app[SIGNER]))
    yield


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_codes_ctx)
