"""Declared actions (core/actions.py) served over HTTP and registered for the sockets.

An HTTP route that serves an action authenticates first (a host or moderator session, CSRF
on writes, as every staff route does: 401 `login_required`, 403 `host_only`), checks the
broadcast, reads its body, then runs the action exactly as the socket does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from jobcast.core.actions import Action
from jobcast.web.access import auth
from jobcast.web.access.requests import client_ip, host_user, require_host, require_viewer
from jobcast.web.access.requests import viewer_id as request_viewer_id
from jobcast.web.appkeys import BROADCASTS, WS_ACTIONS
from jobcast.web.pages.i18n import page_lang


@dataclass(slots=True)
class RequestCaller:
    """The caller of an action: who sent it (a viewer, or a signed-in host or moderator) to
    which broadcast. An HTTP request's is this; a socket's is its WsContext, which extends
    it with the socket."""

    app: web.Application
    bid: str
    viewer_id: str
    ip: str
    user: auth.HostUser | None = None
    name: str = ""
    lang: str = "zh-CN"  # the page language (a viewer's default name is in it)

    @property
    def is_host(self) -> bool:
        return self.user is not None and self.user.is_host

    @property
    def is_staff(self) -> bool:
        """Hosts and moderators."""
        return self.user is not None


async def http_caller(request: web.Request, action: Action[Any]) -> RequestCaller:
    """Authenticate the request for `action` and check its broadcast (`{bid}`, 404 if
    unknown); the body is read after this, as it always was."""
    if action.access == "viewer":
        vid = require_viewer(request)
        user = await host_user(request)
    else:
        user = await require_host(request, host_only=action.access == "host")
        vid = request_viewer_id(request) or ""
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)
    return RequestCaller(
        app=request.app,
        bid=bid,
        viewer_id=vid,
        ip=client_ip(request),
        user=user,
        lang=page_lang(request),
    )


def declare(app: web.Application, *actions: Action[Any]) -> None:
    """Make `actions` reachable over the sockets; a name is declared once."""
    registry = app[WS_ACTIONS]
    for action in actions:
        if action.name in registry:
            raise ValueError(f"socket action {action.name!r} is declared twice")
        registry[action.name] = action
