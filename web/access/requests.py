"""Helpers every handler uses: read a bounded JSON body, who is asking, CSRF checks."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from jobcast.core.errors import Forbidden, Invalid, TooLarge, UnsupportedMediaType
from jobcast.web.access import auth
from jobcast.web.appkeys import SESSIONS, SETTINGS, SIGNER

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_USER = web.RequestKey("jobcast.user", object)
USER_KEY = _USER  # web/access/orgs.py clears it: staff of another organization act as viewers
_VIEWER = web.RequestKey("jobcast.viewer", str)
_RECRUITER_OK = web.RequestKey("jobcast.recruiter_ok", bool)
RECRUITER_OK = _RECRUITER_OK  # set by web/access/orgs.py for a recruiter's allowed route


async def read_json(request: web.Request, *, limit: int | None = None) -> Any:
    settings = request.app[SETTINGS]
    limit = limit or settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(f"body larger than {limit} bytes", extra={"limit": limit})
    ctype = request.content_type
    if ctype not in ("application/json", "text/plain", "application/octet-stream") and (
        request.can_read_body
    ):
        raise UnsupportedMediaType("expected application/json")
    body = bytearray()
    async for chunk in request.content.iter_chunked(16384):
        body.extend(chunk)
        if len(body) > limit:
            raise TooLarge(f"body larger than {limit} bytes", extra={"limit": limit})
    if not body:
        raise Invalid("empty body", code="bad_json", fields={"body": "required"})
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise Invalid(f"malformed JSON: {e.msg}", code="bad_json") from None


async def host_user(request: web.Request) -> auth.HostUser | None:
    if _USER not in request:
        request[_USER] = await request.app[SESSIONS].load(request)
    return request[_USER]


async def require_host(request: web.Request, *, host_only: bool = True) -> auth.HostUser:
    """The logged-in host (or moderator, unless `host_only`); checks CSRF on writes.

    A recruiter passes only where the organization middleware let it through
    (web/access/orgs.py `recruiter_allows`); elsewhere 403 `recruiter`."""
    user = await host_user(request)
    if user is not None and user.is_recruiter:
        if not request.get(_RECRUITER_OK):
            raise Forbidden("recruiter accounts may not do this", code="recruiter")
        host_only = False
    user = auth.require_role(user, host_only=host_only)
    if request.method in UNSAFE:
        auth.check_csrf(request.headers.get(auth.CSRF_HEADER), user.csrf)
    return user


def viewer_id(request: web.Request) -> str | None:
    """The signed viewer id from the cookie, or the one the viewer middleware just minted."""
    if _VIEWER in request:
        return request[_VIEWER]
    return auth.viewer_id(request, request.app[SIGNER])


def require_viewer(request: web.Request) -> str:
    """The viewer id, with a CSRF check on writes (so another site can't act as them)."""
    vid = viewer_id(request)
    if vid is None:
        from jobcast.core.errors import Unauthorized

        raise Unauthorized("no viewer id: load the page first", code="no_viewer")
    if request.method in UNSAFE:
        auth.check_csrf(
            request.headers.get(auth.CSRF_HEADER),
            auth.viewer_csrf(request.app[SIGNER], vid),
        )
    return vid


def client_ip(request: web.Request) -> str:
    return auth.client_ip(request, request.app[SETTINGS])


def mark_new_viewer(request: web.Request, vid: str) -> None:
    request[_VIEWER] = vid
