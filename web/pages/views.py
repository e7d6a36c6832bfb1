"""Server-rendered pages (jinja2, autoescape on), the language switch, QR codes.

The viewer page is rendered from the same snapshot a socket gets (every feature's part), so
the pinned card, the openings and the recent chat are in the HTML before any script runs;
its script then connects and keeps them current.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import ipaddress
import logging
import mimetypes
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import segno
from aiohttp import web
from jobcast.core.errors import Conflict, NotFound
from jobcast.openings.applicant import CONSENT_TEXTS, CONSENT_VERSION
from jobcast.web.access import auth, orgs
from jobcast.web.access.requests import host_user, viewer_id
from jobcast.web.api.me import my_applications
from jobcast.web.api.openings import APPLICATIONS
from jobcast.web.appkeys import BROADCASTS, HUB, METRICS, SETTINGS, SIGNER
from jobcast.web.pages import calendar, i18n
from jobcast.web.redis_errors import refusal_kind
from jobcast.web.runtime.settings import Settings
from yarl import URL

log = logging.getLogger("jobcast.pages")
routes = web.RouteTableDef()
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
JINJA = web.AppKey("jinja", jinja2.Environment)


@dataclass(frozen=True)
class Asset:
    """A static file held in memory with its gzip form; `version` is a hash of its bytes."""

    mtime: float
    raw: bytes
    gz: bytes
    version: str
    content_type: str


_ASSETS: dict[str, Asset] = {}
_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


def asset(name: str) -> Asset | None:
    path = STATIC / name
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return None
    cached = _ASSETS.get(name)
    if cached is None or cached.mtime != mtime:
        raw = path.read_bytes()
        ctype = (
            _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        )
        cached = Asset(mtime, raw, gzip.compress(raw, 9, mtime=0), _digest(raw), ctype)
        _ASSETS[name] = cached
    return cached


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:12]


def static_url(name: str) -> str:
    """`/static/NAME?v=HASH`: the hash changes when the file does, so caches never go stale."""
    a = asset(name)
    if a is None:
        raise FileNotFoundError(name)
    return f"/static/{quote(name)}?v={a.version}"


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its extension
        undefined=jinja2.StrictUndefined,
        enable_async=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    i18n.install(env)
    # Read the catalogue and the scripts' msgids now: a broken .po stops start-up, not a page.
    i18n.translations()
    i18n.js_msgids()
    env.globals["static"] = static_url
    env.filters["salary"] = salary
    env.tests["closed"] = closed
    return env


def closed(o: Any) -> bool:
    """An opening past its deadline: its card says so instead of offering Apply (the server
    refuses such applications anyway)."""
    deadline = o.get("deadline_ms") if isinstance(o, dict) else getattr(o, "deadline_ms", 0)
    return bool(deadline) and deadline < time.time() * 1000


def salary(o: dict[str, Any]) -> str:
    """'8000–12000' (yuan per month), as the centers print it."""
    lo, hi = o.get("salary_min") or 0, o.get("salary_max") or 0
    if not lo and not hi:
        return ""
    return f"{lo}" if lo == hi else f"{lo}–{hi}"


page_lang = i18n.page_lang


def base_url(request: web.Request) -> str:
    """The base of links and QR codes: `public_url`, else this server's own address.

    The `Host` header is the client's to choose, so it is used only when it names this
    server: the address the connection came in on, a loopback name when that address is
    loopback, or a host of `allowed_origins`. Anything else would put a stranger's host into
    a viewer link or a QR code that caches keep.
    """
    settings = request.app[SETTINGS]
    if settings.public_url:
        return settings.public_url  # without a trailing slash (web/runtime/settings.py)
    scheme = "https" if auth.is_secure(request, settings) else "http"
    local = _local_address(request)
    if request.host in _own_hosts(local, settings):
        return f"{scheme}://{request.host}"
    if local is None:
        return f"{scheme}://{settings.host}:{settings.port}"
    ip, port = local
    return f"{scheme}://{f'[{ip}]' if ':' in ip else ip}:{port}"


def _local_address(request: web.Request) -> tuple[str, int] | None:
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if isinstance(sock, tuple) and len(sock) >= 2:
        return str(sock[0]), int(sock[1])
    return None


def _own_hosts(local: tuple[str, int] | None, settings: Settings) -> set[str]:
    hosts = set(settings.allowed_hosts)
    if local is not None:
        ip, port = local
        bare = f"[{ip}]" if ":" in ip else ip
        hosts |= {f"{bare}:{port}"} | ({bare} if port in (80, 443) else set())
        if ipaddress.ip_address(ip.split("%")[0]).is_loopback:
            hosts |= {f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"}
    return hosts


# The scripts each page loads, in order; the page embeds the strings of these scripts only.
SCRIPTS: dict[str, tuple[str, ...]] = {
    "viewer.html": (
        "common.js",
        "live.js",
        "media.js",
        "viewer.js",
        "player.js",
        "replay.js",
        "chat.js",
        "remind.js",
        "polls.js",
        "mine.js",
        "interviews.js",
        "reports.js",
    ),
    "host_console.html": (
        "common.js",
        "live.js",
        "media.js",
        "host.js",
        "console.js",
        "golive.js",
        "polls.js",
        "interviews.js",
        "reports.js",
    ),
    "host_index.html": ("common.js", "host.js", "notifier.js", "employers.js"),
    "screen.html": ("common.js", "live.js", "screen.js"),
    "me.html": ("common.js", "mine.js"),
    "recruiter.html": ("common.js", "recruiter.js"),
    "host_login.html": ("common.js", "host.js"),
}


def render(request: web.Request, name: str, status: int = 200, **ctx: Any) -> web.Response:
    lang = page_lang(request)
    scripts = SCRIPTS.get(name, ("common.js",))
    html = (
        request.app[JINJA]
        .get_template(name)
        .render(
            lang=lang,
            langs=i18n.LANGS,
            lang_names=i18n.LANG_NAMES,
            js_i18n=i18n.js_dictionary(lang, scripts),
            scripts=scripts,
            here=request.path_qs,
            **ctx,
        )
    )
    resp = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    resp.headers["Content-Language"] = lang
    resp.headers["Vary"] = "Accept-Language, Cookie"
    resp.headers["Cache-Control"] = "no-cache"
    if len(html) > 1024:
        resp.enable_compression()  # gzip or deflate when the browser accepts it
    return resp


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    items = [b for b in await request.app[BROADCASTS].list() if b.status != "ended"]
    return render(request, "index.html", broadcasts=items)


async def _snapshot(request: web.Request, bid: str, host: bool) -> dict[str, Any]:
    """The socket snapshot for the first paint; without Redis parts, what the page can show."""
    _seq, data = await request.app[HUB].snapshot(bid, host)
    return data


def busy_page(request: web.Request) -> web.Response:
    """A page (not JSON) while Redis is unavailable; it reloads itself every few seconds."""
    resp = render(request, "busy.html", status=503)
    resp.headers["Retry-After"] = "5"
    return resp


@routes.get("/b/{bid}")
async def viewer_page(request: web.Request) -> web.Response:
    bid = request.match_info["bid"]
    try:
        return await _viewer_page(request, bid)
    except Exception as e:
        kind = refusal_kind(e)
        if kind is None:
            raise
        log.warning("viewer page without redis", extra={"path": request.path, "redis": kind})
        request.app[METRICS].redis_refusals.labels(kind).inc()
        return busy_page(request)


async def _viewer_page(request: web.Request, bid: str) -> web.Response:
    try:
        snap = await _snapshot(request, bid, False)
    except NotFound:
        return render(request, "not_found.html", status=404)
    vid = viewer_id(request)
    applied: dict[str, str] = {}
    if vid and APPLICATIONS in request.app:
        applied = await request.app[APPLICATIONS].applied(bid, vid)
    lang = page_lang(request)
    return render(
        request,
        "viewer.html",
        broadcast=snap["broadcast"],
        snap=snap,
        applied=applied,
        viewers=snap.get("viewers", 0),
        csrf=auth.viewer_csrf(request.app[SIGNER], vid) if vid else "",
        viewer_url=f"{base_url(request)}/b/{bid}",
        consent_version=CONSENT_VERSION,
        consent_text=CONSENT_TEXTS[CONSENT_VERSION]["zh" if lang == "zh-CN" else "en"],
    )


@routes.get("/me")
async def my_applications_page(request: web.Request) -> web.Response:
    """My applications (我的投递): this device's, and a number's after its code is confirmed."""
    vid = viewer_id(request)
    return render(
        request,
        "me.html",
        mine=await my_applications(request),
        csrf=auth.viewer_csrf(request.app[SIGNER], vid) if vid else "",
    )


@routes.get("/b/{bid}/qr.svg")
async def viewer_qr(request: web.Request) -> web.Response:
    """The viewer link as a QR code (SVG), for the screen behind the host and for posters."""
    b = await request.app[BROADCASTS].get(request.match_info["bid"])
    qr = segno.make(f"{base_url(request)}/b/{b.id}", error="m")
    out = io.BytesIO()
    qr.save(out, kind="svg", xmldecl=False, scale=8, border=2, dark="#000", light="#fff")
    return web.Response(
        body=out.getvalue(),
        content_type="image/svg+xml",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@routes.get("/b/{bid}/calendar.ics")
async def viewer_calendar(request: web.Request) -> web.Response:
    """The broadcast as a calendar entry with a reminder (预约), in the page's language."""
    b = await request.app[BROADCASTS].get(request.match_info["bid"])
    if b.scheduled_at is None:
        raise Conflict("this broadcast has no start time yet", code="not_scheduled")
    tr = i18n.translations()[page_lang(request)]
    url = f"{base_url(request)}/b/{b.id}"
    body = calendar.broadcast_ics(
        b,
        url,
        URL(url).host or "jobcast",
        description=tr.gettext("Watch and apply live on Jobcast:"),
        reminder=tr.gettext("The broadcast starts in 10 minutes"),
        now_ms=int(time.time() * 1000),
    )
    return web.Response(
        body=body.encode(),
        content_type="text/calendar",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="jobcast-{b.id}.ics"',
            "Cache-Control": "no-cache",
        },
    )


@routes.get("/b/{bid}/screen")
async def viewer_screen(request: web.Request) -> web.Response:
    """A full-screen QR and title for the screen behind the host, and for printing posters."""
    try:
        b = await request.app[BROADCASTS].get(request.match_info["bid"])
    except NotFound:
        return render(request, "not_found.html", status=404)
    return render(
        request, "screen.html", broadcast=b.public(), viewer_url=f"{base_url(request)}/b/{b.id}"
    )


_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")
_C0_SPACE = "".join(chr(c) for c in range(0x21))


def _same_origin_path(value: str) -> bool:
    return (
        value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    )


def safe_next(raw: str) -> str:
    """`raw` as a same-origin path to redirect to, or `/`.

    Checked after the normalisation a browser applies to a `Location` (the URL standard):
    tabs, CR and LF removed anywhere, C0 controls and spaces stripped at both ends, and a
    backslash read as a slash, so neither `/` TAB `/evil.example` nor `/\\evil.example` can
    become `//evil.example`. The value aiohttp will actually send (yarl's rendering) is checked
    again, so no later rewriting can turn an accepted path into another host.
    """
    value = raw.translate(_TAB_NEWLINE).strip(_C0_SPACE).replace("\\", "/")
    if not _same_origin_path(value):
        return "/"
    sent = str(URL(value))
    return sent if _same_origin_path(sent) else "/"


@routes.get("/lang/{code}")
async def switch_lang(request: web.Request) -> web.Response:
    """Remember the chosen language in a cookie and go back where the switch was."""
    code = request.match_info["code"]
    resp = web.HTTPSeeOther(safe_next(request.query.get("next", "/")))
    if code in i18n.LANGS:
        resp.set_cookie(
            i18n.LANG_COOKIE,
            code,
            max_age=400 * 24 * 3600,
            samesite="Lax",
            secure=auth.is_secure(request, request.app[SETTINGS]),
            path="/",
        )
    raise resp


@routes.get("/host")
@routes.get("/host/")
async def host_home(request: web.Request) -> web.Response:
    user = await host_user(request)
    if user is None:
        return render(request, "host_login.html", user=None)
    return render(request, "host_index.html", user=user)


@routes.get("/host/b/{bid}")
async def host_console(request: web.Request) -> web.Response:
    user = await host_user(request)
    if user is None:
        return render(request, "host_login.html", user=None)
    try:
        b = await request.app[BROADCASTS].get(request.match_info["bid"])
        await orgs.check_broadcast(request, b.id)  # another center's: as if there were none
    except NotFound:
        return render(request, "not_found.html", status=404)
    return render(
        request,
        "host_console.html",
        user=user,
        broadcast=b.public(),
        viewer_url=f"{base_url(request)}/b/{b.id}",
        whip_url=f"{base_url(request)}/whip/{b.id}",
    )


@routes.get(r"/static/{name:[A-Za-z0-9_-]+\.(?:js|css|svg)}")
async def static_file(request: web.Request) -> web.Response:
    """Scripts and styles from memory, gzipped for browsers that take it (most of a phone's
    first visit), cached for a year when asked for by their versioned URL."""
    a = asset(request.match_info["name"])
    if a is None:
        raise web.HTTPNotFound()
    etag = f'"{a.version}"'
    headers = {"ETag": etag, "Vary": "Accept-Encoding"}
    if request.query.get("v") == a.version:
        headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        headers["Cache-Control"] = "no-cache"
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = a.raw
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body = a.gz
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, headers=headers, content_type=a.content_type, charset="utf-8")
