"""The notifier wired into the app: its delivery task in a cleanup context, and the hosts'
view of the dead letters (`GET /api/notifier/dead`, `POST /api/notifier/dead/{nid}/retry`).

A host sees the dead letters of their organization's broadcasts (an operator's: all), as
what and why (kind, broadcast, application, attempts, last error), never the phone, the name
or the text. With `notifier_url` empty nothing reads the outbox; the dead letters stay
listed, and a retry waits in the retries until the notifier is turned on.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from jobcast.web.access import orgs
from jobcast.web.access.requests import require_host
from jobcast.web.appkeys import REDIS, SETTINGS
from jobcast.web.jsonutil import json_response
from jobcast.web.runtime.notifier import Config, Notifier, public

routes = web.RouteTableDef()

NOTIFIER = web.AppKey("notifier", Notifier)


async def _mine(request: web.Request) -> Any:
    """A check: may the caller see a notice (its broadcast is the organization's)?"""
    org = await orgs.caller_org(request)
    redis = request.app[REDIS]

    async def allowed(notice: dict[str, Any]) -> bool:
        if org in (None, orgs.ALL):
            return True
        bid = notice.get("broadcast_id")
        return isinstance(bid, str) and await orgs.broadcast_org(redis, bid) == org

    return allowed


@routes.get("/api/notifier/dead")
async def dead_letters(request: web.Request) -> web.Response:
    """The dead letters of the caller's organization, newest first."""
    await require_host(request)
    notifier = request.app[NOTIFIER]
    allowed = await _mine(request)
    items = [public(e) for e in await notifier.dead_letters() if await allowed(e["notice"])]
    counts = await notifier.counts()
    return json_response({"enabled": notifier.enabled, "items": items, "counts": counts})


@routes.post("/api/notifier/dead/{nid}/retry")
async def retry_dead(request: web.Request) -> web.Response:
    """Queue a dead letter again, due now (404 `notice_not_found` if it is not there)."""
    await require_host(request)
    notifier = request.app[NOTIFIER]
    item = await notifier.retry_dead(request.match_info["nid"], await _mine(request))
    return json_response({"queued": True, "item": item}, status=202)


async def _notifier_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    process = settings.process_name or f"{socket.gethostname()}:{os.getpid()}"
    notifier = Notifier(
        app[REDIS], Config.from_settings(settings), consumer=f"{process}:{id(app):x}"
    )
    app[NOTIFIER] = notifier
    if notifier.enabled:
        notifier.start()
    yield
    await notifier.close()


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_notifier_ctx)
