"""Declared actions (core/actions.py) served over HTTP and registered for the sockets.

An HTTP route that serves an action authenticates first (a host or moderator session, CSRF
on writes, as every staff route does: 401 `login_required`, 403 `host_only`), checks the
broadcast, reads its body, then runs the action exactly as the socket does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web
from jobcast.core.actions import Action, Caller
from jobcast.core.errors import Invalid, NotFound
from jobcast.web.access import auth
from jobcast.web.access.requests import (
    client_ip,
    host_user,
    read_json,
    require_host,
    require_viewer,
)
from jobcast.web.access.requests import viewer_id as request_viewer_id
from jobcast.web.appkeys import BROADCASTS, WS_ACTIONS
from jobcast.web.jsonutil import json_response
from jobcast.web.pages.i18n import page_lang
from pydantic import BaseModel

S = TypeVar("S")
M = TypeVar("M", bound=BaseModel)


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


class StaffActions(Generic[S]):
    """The host and moderator actions of one family (chat, polls): each runs a method of the
    family's service (`app[service]`) for the acting host, and is served both by the host
    socket and by `POST /api/broadcasts/{bid}/<family>/<name>` with its data as the JSON
    body (`serve`)."""

    def __init__(
        self,
        family: str,
        service: web.AppKey[S],
        actor: Callable[[Caller], Any],
        noun: str = "",
    ) -> None:
        """`noun`: the family's name in the 404 for an unknown action (default `family`)."""
        self.family = family
        self.noun = noun or family
        self.service = service
        self.actor = actor
        self.actions: dict[str, Action[Any]] = {}

    def action(
        self,
        name: str,
        model: type[M],
        summary: str,
        reply: type[BaseModel],
        run: Callable[[S, str, M, Any], Awaitable[dict[str, Any]]],
    ) -> Action[M]:
        """Declare `name`: `run(service, bid, data, actor)` is its body."""
        service, actor = self.service, self.actor

        async def handler(caller: Caller, data: M) -> dict[str, Any]:
            return await run(caller.app[service], caller.bid, data, actor(caller))

        act = Action(
            name,
            model,
            "staff",
            handler,
            summary=summary,
            reply=reply,
            http=("POST", f"/api/broadcasts/{{bid}}/{self.family}/{name}"),
        )
        self.actions[name] = act
        return act

    def serve(self, routes: web.RouteTableDef) -> None:
        """The JSON API route of every action of the family (404 `unknown_action` for a
        name that is not one)."""
        actions = self.actions

        async def staff_action(request: web.Request) -> web.Response:
            action = actions.get(request.match_info["action"])
            if action is None:
                raise NotFound(f"no such {self.noun} action", code="unknown_action")
            caller = await http_caller(request, action)
            body = await read_json(request)
            if not isinstance(body, dict):
                raise Invalid("expected a JSON object", fields={"body": "must be an object"})
            return json_response(await action(caller, body))

        routes.post(f"/api/broadcasts/{{bid}}/{self.family}/{{action}}")(staff_action)
