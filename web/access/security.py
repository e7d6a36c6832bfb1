"""Middlewares that apply to every request: Origin checks, the viewer cookie, security headers."""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from jobcast.web.access import auth
from jobcast.web.access.requests import UNSAFE, mark_new_viewer
from jobcast.web.appkeys import SETTINGS, SIGNER
from jobcast.web.errors import error_response

# WHIP/WHEP are called cross-origin by design (OBS, other pages) and authenticate with a
# bearer stream key or not at all, so no cookie can be abused there; /hls/ is public files
# for any player and cache, which must neither read nor set a cookie.
CORS_OPEN_PREFIXES = ("/whip/", "/whep/", "/hls/")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@functools.lru_cache(maxsize=4)
def csp(hls_base_url: str) -> str:
    """The policy, with the origin that serves HLS (a CDN: `hls_public_base_url`) allowed to
    be fetched (hls.js) and played (native HLS)."""
    if not hls_base_url:
        return CSP
    u = urlsplit(hls_base_url)
    origin = f"{u.scheme}://{u.netloc}"
    return CSP.replace("media-src 'self' blob:", f"media-src 'self' blob: {origin}").replace(
        "connect-src 'self'", f"connect-src 'self' {origin}"
    )


@web.middleware
async def origin_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    """Refuse cross-site writes and cross-site WebSocket handshakes (CSWSH)."""
    is_ws = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
    if (request.method in UNSAFE or is_ws) and not request.path.startswith(CORS_OPEN_PREFIXES):
        if not auth.origin_allowed(request, request.app[SETTINGS]):
            return error_response(403, "bad_origin", "cross-site request refused")
    return await handler(request)


@web.middleware
async def viewer_cookie_middleware(
    request: web.Request, handler: web.Handler
) -> web.StreamResponse:
    """Give every browser a signed viewer id on its first page or API visit."""
    signer = request.app[SIGNER]
    minted = None
    # WHIP/WHEP answer any origin (CORS `*`): they neither read nor set cookies.
    if auth.viewer_id(request, signer) is None and not request.path.startswith(
        ("/static/", "/metrics", "/healthz", *CORS_OPEN_PREFIXES)
    ):
        minted = auth.new_viewer_id()
        mark_new_viewer(request, minted)
    response = await handler(request)
    if minted is not None and not response.prepared:
        auth.set_viewer_cookie(request, response, signer, minted, request.app[SETTINGS])
    return response


@web.middleware
async def headers_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as e:
        response = e
    if not response.prepared:
        h = response.headers
        h.setdefault("Content-Security-Policy", csp(request.app[SETTINGS].hls_public_base_url))
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault(
            "Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)"
        )
        if request.path.startswith("/api/"):
            h.setdefault("Cache-Control", "no-store")
    if isinstance(response, web.HTTPException):
        raise response
    return response
