"""Login, logout and "who am I" for hosts and viewers; ending sessions' open sockets.

A login passes three gates before its password is checked: the per-address limit
(`LOGIN_ATTEMPTS` a minute), the account's delay for devices that have not logged in to it
(web/access/auth.py `LoginGuard`), and a free password-check slot. Only then does argon2 run,
off the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from jobcast.core.errors import Invalid, RateLimited, Unauthorized
from jobcast.web.access import auth
from jobcast.web.access.requests import client_ip, host_user, read_json, viewer_id
from jobcast.web.appkeys import HUB, REDIS, SESSIONS, SETTINGS, SIGNER
from jobcast.web.jsonutil import json_response

log = logging.getLogger("jobcast.auth")
routes = web.RouteTableDef()
LOGIN_GUARD = web.AppKey("login_guard", auth.LoginGuard)
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
    username = username[: auth.USERNAME_MAX]
    await _limit_logins(request)
    guard = request.app[LOGIN_GUARD]
    signer = request.app[SIGNER]
    device = auth.device_id(request, signer)
    if not await guard.known_device(username, device):
        await guard.admit(username)
    try:
        account = await guard.verify(username, password[:1024])
    except Unauthorized:
        await guard.failed(username, device)
        raise
    device = device or auth.new_device_id()
    await guard.succeeded(account.username, device)
    user = await request.app[SESSIONS].create(account)
    resp = json_response({"username": user.username, "role": user.role, "csrf": user.csrf})
    request.app[SESSIONS].set_cookie(request, resp, user)
    auth.set_device_cookie(request, resp, signer, device, request.app[SETTINGS])
    return resp


@routes.post("/api/logout")
async def logout(request: web.Request) -> web.Response:
    """End the session, on every process: its HTTP requests and its open host sockets."""
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


# -- open sockets of ended sessions -------------------------------------------------------------

REVOKED_TEXT = {
    "logged_out": "you logged out",
    "account_changed": "your account was changed: log in again",
    "disabled": "your account was disabled",
    "removed": "your account was removed",
    "ended": "your session has ended: log in again",
}


def _staff_sockets(app: web.Application) -> list[tuple[Any, auth.HostUser]]:
    out = []
    for socks in app[HUB].sockets.values():
        for sock in socks:
            ctx = sock.meta.get("ctx")
            user = getattr(ctx, "user", None)
            if user is not None and not sock.closed:
                out.append((sock, user))
    return out


def _close(sock: Any, why: str) -> None:
    from jobcast.web.realtime.ws import error_event

    sock.send_now(error_event("session_revoked", REVOKED_TEXT.get(why, "session ended"), why=why))
    sock.drop("session_revoked")


def close_revoked_sockets(app: web.Application, msg: dict[str, Any]) -> int:
    """Close this process's host sockets named by a revocation (web/access/auth.py `revoke`):
    those of one session, or of every session of an account. Runs from web/realtime/kicks.py."""
    username, session, why = msg.get("username"), msg.get("session"), str(msg.get("why", ""))
    n = 0
    for sock, user in _staff_sockets(app):
        if session is not None:
            if auth.token_id(user.token) != session:
                continue
        elif user.username != username:
            continue
        _close(sock, why)
        n += 1
    return n


async def recheck_staff_sockets(app: web.Application) -> int:
    """Close the host sockets whose session has ended. web/realtime/kicks.py runs this each time
    it (re)subscribes: revocations published while it was away never reach it."""
    n = 0
    for sock, user in _staff_sockets(app):
        n += await close_if_revoked(app, sock, user)
    return n


async def close_if_revoked(app: web.Application, sock: Any, user: auth.HostUser) -> bool:
    """Close `sock` if its session has ended. A host socket runs this once it has joined the
    hub (web/realtime/ws.py): a revocation published during its handshake found no socket to
    close."""
    if await app[SESSIONS].by_token(user.token) is not None:
        return False
    _close(sock, "ended")
    return True


async def _guard_ctx(app: web.Application) -> AsyncIterator[None]:
    guard = auth.LoginGuard(app[REDIS], app[SETTINGS])
    app[LOGIN_GUARD] = guard
    yield
    guard.close()


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_guard_ctx)
