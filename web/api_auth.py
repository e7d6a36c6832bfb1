"""Login, logout and "who am I" for hosts and viewers."""

from __future__ import annotations

import time

from aiohttp import web

from core.errors import Invalid, RateLimited
from web import auth
from web.appkeys import REDIS, SESSIONS, SIGNER
from web.jsonutil import json_response
from web.requests import client_ip, host_user, read_json, viewer_id

routes = web.RouteTableDef()
LOGIN_ATTEMPTS = 10  # per IP per minute
LOGIN_WINDOW = 60


async def _limit_logins(request: web.Request) -> None:
    redis = request.app[REDIS]
    key = f"jc:rate:login:{client_ip(request)}:{int(time.time()) // LOGIN_WINDOW}"
    n = await redis.incr(key)
    if n == 1:
        await redis.expire(key, LOGIN_WINDOW * 2)
    if n > LOGIN_ATTEMPTS:
        raise RateLimited("too many login attempts", retry_after=LOGIN_WINDOW - time.time() % 60)


@routes.post("/api/login")
async def login(request: web.Request) -> web.Response:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise Invalid("expected an object", fields={"body": "must be an object"})
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise Invalid(
            "username and password are required",
            fields={
                k: "required" for k in ("username", "password") if not isinstance(data.get(k), str)
            },
        )
    await _limit_logins(request)
    role = await auth.verify_user(request.app[REDIS], username, password[:1024])
    user = await request.app[SESSIONS].create(username, role)
    resp = json_response({"username": user.username, "role": user.role, "csrf": user.csrf})
    request.app[SESSIONS].set_cookie(request, resp, user)
    return resp


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    user = await host_user(request)
    if user is not None:
        auth.check_csrf(request.headers.get(auth.CSRF_HEADER), user.csrf)
        await request.app[SESSIONS].destroy(user)
    resp = json_response({"ok": True})
    auth.Sessions.clear_cookie(resp)
    return resp


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    """Who the caller is, and the CSRF token to send as X-CSRF-Token on writes."""
    user = await host_user(request)
    vid = viewer_id(request)
    body: dict = {
        "viewer_id": vid,
        "csrf": auth.viewer_csrf(request.app[SIGNER], vid) if vid else None,
        "host": None,
    }
    if user is not None:
        body["host"] = {"username": user.username, "role": user.role, "csrf": user.csrf}
    return json_response(body)
