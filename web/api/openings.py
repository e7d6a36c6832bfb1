"""HTTP API and socket actions for openings, the lineup, the pinned card and applications.

Viewers read published openings and apply; hosts write openings, run the lineup and read
applications (personal data goes to hosts only: `require_host(host_only=True)`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from aiohttp import BodyPartReader, web
from jobcast.core.actions import Action, Caller, NoData
from jobcast.core.errors import Invalid, TooLarge
from jobcast.core.ids import is_valid_id
from jobcast.openings import actions as card
from jobcast.openings import csvio
from jobcast.openings.applicant import CONSENT_TEXTS, CONSENT_VERSION, DEGREES
from jobcast.openings.applications import STATUSES as APPLICATION_STATUSES
from jobcast.openings.applications import ApplicationService, ApplyLimits
from jobcast.openings.models import CST, EDUCATION
from jobcast.openings.service import OpeningService
from jobcast.web.access.auth import Signer
from jobcast.web.access.requests import (
    client_ip,
    host_user,
    read_json,
    require_host,
    require_viewer,
)
from jobcast.web.api.actions import declare, http_caller
from jobcast.web.appkeys import (
    BROADCASTS,
    EVENT_LOG,
    METRICS,
    REDIS,
    SETTINGS,
    SIGNER,
    SNAPSHOT_PARTS,
)
from jobcast.web.jsonutil import json_response
from jobcast.web.pages.i18n import page_lang
from jobcast.web.realtime.aiohttp_internals import MalformedRequest
from jobcast.web.realtime.private import tell_viewer
from prometheus_client import Counter

routes = web.RouteTableDef()

# The openings feature's shared objects (the chat checks that a question's opening exists, the
# viewer page whether the viewer applied, the organization guard whose broadcast an opening is).
OPENINGS = web.AppKey("openings", OpeningService)
APPLICATIONS = web.AppKey("applications", ApplicationService)
APPLY_RESULTS = web.AppKey("apply_results", Counter)
CSV_TYPE = "text/csv"


# -- helpers -------------------------------------------------------------------------------


def phone_key(signer: Signer) -> Callable[[str], str]:
    """How the app names a phone number in key names: an HMAC with its secret."""
    return lambda phone: signer.mac("phone", phone)


async def _broadcast(request: web.Request) -> str:
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)  # 404 for an unknown broadcast
    return bid


def _int_query(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 12) or not lo <= int(raw) <= hi:
        raise Invalid(f"bad {name}", fields={name: f"a whole number from {lo} to {hi}"})
    return int(raw)


def _csv_response(body: bytes, filename: str) -> web.Response:
    return web.Response(
        body=body,
        content_type=CSV_TYPE,
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


async def _read_upload(request: web.Request) -> bytes:
    """The CSV file: a multipart form's `file` field, or the raw request body."""
    limit = request.app[SETTINGS].max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise TooLarge(f"upload larger than {limit} bytes", extra={"limit": limit})
    buf = bytearray()

    def add(chunk: bytes) -> None:
        buf.extend(chunk)
        if len(buf) > limit:
            raise TooLarge(f"upload larger than {limit} bytes", extra={"limit": limit})

    if request.content_type.startswith("multipart/"):
        try:
            reader = await request.multipart()
            async for part in reader:
                if isinstance(part, BodyPartReader) and part.name == "file":
                    while chunk := await part.read_chunk(65536):
                        add(chunk)
                    break
            else:
                raise Invalid("no file in the form", fields={"file": "required"})
        except (MalformedRequest, ValueError):
            # A malformed form (bad boundary, part headers with control characters...).
            raise Invalid(
                "malformed multipart form", code="bad_upload", fields={"file": "unreadable form"}
            ) from None
    else:
        async for chunk in request.content.iter_chunked(65536):
            add(chunk)
    if not buf:
        raise Invalid("empty file", fields={"file": "required"})
    return bytes(buf)


# -- openings --------------------------------------------------------------------------------


@routes.get("/api/broadcasts/{bid}/openings")
async def list_openings(request: web.Request) -> web.Response:
    """Published openings in lineup order (hosts and moderators also see drafts and closed)."""
    bid = await _broadcast(request)
    staff = await host_user(request) is not None
    q = request.query
    items = await request.app[OPENINGS].list(
        bid,
        include_hidden=staff,
        city=q.get("city", "")[:40],
        education=q.get("education", "")[:20],
        major=q.get("major", "")[:60],
        status=q.get("status", "") if staff else "",
    )
    cities = sorted({o.city for o in items})
    return json_response({"openings": [o.public() for o in items], "cities": cities})


@routes.post("/api/broadcasts/{bid}/openings")
async def create_opening(request: web.Request) -> web.Response:
    await require_host(request)
    bid = await _broadcast(request)
    o = await request.app[OPENINGS].create(bid, await read_json(request))
    return json_response(
        o.public(), status=201, headers={"Location": f"/api/broadcasts/{bid}/openings/{o.id}"}
    )


@routes.get("/api/broadcasts/{bid}/openings.csv")
async def export_openings(request: web.Request) -> web.Response:
    await require_host(request)
    bid = await _broadcast(request)
    items = await request.app[OPENINGS].list(
        bid, include_hidden=True, status=request.query.get("status", "")
    )
    return _csv_response(csvio.export_openings(items), f"openings-{bid}.csv")


# The template's file name: Chinese for the browser (RFC 5987 filename*), ASCII for the rest.
_TEMPLATE_NAMES = {
    "utf-8": ("岗位导入模板-UTF-8.csv", "jobcast-openings-template-utf8.csv"),
    "gbk": ("岗位导入模板-Excel.csv", "jobcast-openings-template-gbk.csv"),
}


@routes.get("/api/broadcasts/{bid}/openings/template.csv")
async def import_template(request: web.Request) -> web.Response:
    """The CSV import template, `?encoding=utf-8` (with a BOM, the default) or `gbk` (what
    Excel on Chinese Windows opens by double-click). Under the broadcast, as the import is:
    the console links it from there, and hosts of other organizations get their 404."""
    await require_host(request)
    await _broadcast(request)
    encoding = request.query.get("encoding", "utf-8").lower().replace("utf8", "utf-8")
    if encoding not in csvio.TEMPLATE_ENCODINGS:
        raise Invalid("unknown encoding", fields={"encoding": "utf-8 or gbk"})
    body = csvio.template_openings(encoding, datetime.now(CST).date())
    name, ascii_name = _TEMPLATE_NAMES[encoding]
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    return web.Response(
        body=body,
        content_type=CSV_TYPE,
        charset=encoding,
        headers={"Content-Disposition": disposition, "Cache-Control": "no-store"},
    )


@routes.post("/api/broadcasts/{bid}/openings/import")
async def import_openings(request: web.Request) -> web.Response:
    """CSV import; `?dry_run=1` only reports. Without it, all rows are stored or none.

    `?status=` sets every row's status, whatever the file's 状态 column says (drafts during a
    broadcast stay drafts); without it a row's 状态 cell decides, else published."""
    await require_host(request)
    bid = await _broadcast(request)
    dry_run = request.query.get("dry_run", "") in ("1", "true", "yes")
    status = request.query.get("status")
    if status is not None and status not in ("draft", "published", "closed"):
        raise Invalid("bad status", fields={"status": "draft, published or closed"})
    data = await _read_upload(request)
    report = csvio.parse_openings(
        data, status=status, max_bytes=request.app[SETTINGS].max_upload_bytes
    )
    if dry_run:
        return json_response(report.public(dry_run=True))
    if report.errors:
        raise Invalid(
            f"{report.errors} of {len(report.rows)} rows have errors; nothing was imported",
            code="import_invalid",
            fields={"file": f"{report.errors} rows have errors"},
            extra={"report": report.public(dry_run=False)},
        )
    created = await request.app[OPENINGS].create_many(bid, report.valid)
    return json_response(report.public(dry_run=False, created=created), status=201)


@routes.get("/api/broadcasts/{bid}/openings/{oid}")
async def get_opening(request: web.Request) -> web.Response:
    staff = await host_user(request) is not None
    o = await request.app[OPENINGS].get(
        request.match_info["bid"], request.match_info["oid"], include_hidden=staff
    )
    return json_response(o.public())


@routes.patch("/api/broadcasts/{bid}/openings/{oid}")
async def update_opening(request: web.Request) -> web.Response:
    await require_host(request)
    o = await request.app[OPENINGS].update(
        request.match_info["bid"], request.match_info["oid"], await read_json(request)
    )
    return json_response(o.public())


@routes.delete("/api/broadcasts/{bid}/openings/{oid}")
async def delete_opening(request: web.Request) -> web.Response:
    await require_host(request)
    await request.app[OPENINGS].delete(request.match_info["bid"], request.match_info["oid"])
    return json_response({"deleted": request.match_info["oid"]})


# -- lineup and pinned card -----------------------------------------------------------------


@routes.get("/api/broadcasts/{bid}/lineup")
async def get_lineup(request: web.Request) -> web.Response:
    bid = await _broadcast(request)
    staff = await host_user(request) is not None
    st = await request.app[OPENINGS].state(bid)
    order = [o.id for o in st.ordered()] if staff else st.visible_order()
    return json_response({"order": order, "pinned": st.pinned if staff else None})


@routes.put("/api/broadcasts/{bid}/lineup")
async def put_lineup(request: web.Request) -> web.Response:
    await require_host(request)
    bid = await _broadcast(request)
    data = await read_json(request)
    order = data.get("order") if isinstance(data, dict) else None
    return json_response({"order": await request.app[OPENINGS].set_lineup(bid, order)})


@routes.get("/api/broadcasts/{bid}/pin")
async def get_pin(request: web.Request) -> web.Response:
    bid = await _broadcast(request)
    return json_response({"pinned": await request.app[OPENINGS].pinned(bid)})


@routes.post("/api/broadcasts/{bid}/pin")
async def pin(request: web.Request) -> web.Response:
    caller = await http_caller(request, PIN)
    data = await read_json(request)
    return json_response(await PIN(caller, data if isinstance(data, dict) else {}))


@routes.post("/api/broadcasts/{bid}/pin/next")
async def pin_next(request: web.Request) -> web.Response:
    return json_response(await PIN_NEXT(await http_caller(request, PIN_NEXT), {}))


@routes.delete("/api/broadcasts/{bid}/pin")
async def unpin(request: web.Request) -> web.Response:
    reply = await UNPIN(await http_caller(request, UNPIN), {})
    return json_response({**(reply or {}), "pinned": None})


# -- applying (viewers) ---------------------------------------------------------------------


@routes.get("/api/consent")
async def consent(request: web.Request) -> web.Response:
    """The consent text an application form shows, with the version to send back."""
    return json_response(
        {
            "version": CONSENT_VERSION,
            "text": CONSENT_TEXTS[CONSENT_VERSION],
            "degrees": [{"code": c, "zh": EDUCATION[c][1], "en": EDUCATION[c][2]} for c in DEGREES],
            "education": [{"code": c, "zh": v[1], "en": v[2]} for c, v in EDUCATION.items()],
        }
    )


@routes.post("/api/openings/{oid}/applications")
async def apply(request: web.Request) -> web.Response:
    """Answers only after the application is written to Redis (and so to its AOF)."""
    vid = require_viewer(request)
    body = await read_json(request)
    res = await request.app[APPLICATIONS].apply(
        request.match_info["oid"],
        viewer_id=vid,
        ip=client_ip(request),
        idempotency_key=request.headers.get("Idempotency-Key"),
        body=body,
        lang=page_lang(request),  # the language of the applicant's notices
    )
    outcome = "replayed" if res.replayed else "same_phone" if res.duplicate else "new"
    request.app[APPLY_RESULTS].labels(outcome).inc()
    # One answer whether or not the number applied before: a 201 with this submission's id.
    headers = {"Idempotent-Replayed": "true"} if res.replayed else None
    return json_response(res.public(), status=201, headers=headers)


@routes.get("/api/broadcasts/{bid}/applied")
async def applied(request: web.Request) -> web.Response:
    """The opening ids this viewer (signed cookie) applied to in the broadcast."""
    vid = require_viewer(request)
    bid = request.match_info["bid"]
    got = await request.app[APPLICATIONS].applied(bid, vid)
    return json_response({"opening_ids": sorted(got), "applications": got})


# -- applications (hosts only) --------------------------------------------------------------


def _filters(request: web.Request) -> dict[str, str]:
    q = request.query
    return {
        "opening_id": q.get("opening_id", "")[:32],
        "status": q.get("status", ""),
        "employer": q.get("employer", "")[:100],
    }


@routes.get("/api/broadcasts/{bid}/applications")
async def list_applications(request: web.Request) -> web.Response:
    await require_host(request)
    bid = await _broadcast(request)
    return await _page_of_applications(request, bid, **_filters(request))


async def _page_of_applications(request: web.Request, bid: str, **filters: Any) -> web.Response:
    """One page (`offset`, `limit` from the query) of the applications `filters` select."""
    total, items = await request.app[APPLICATIONS].list(
        bid,
        **filters,
        offset=_int_query(request, "offset", 0, 0, 10**7),
        limit=_int_query(request, "limit", 100, 1, 1000),
    )
    return json_response({"total": total, "applications": items})


@routes.get("/api/broadcasts/{bid}/applications.csv")
async def export_applications(request: web.Request) -> web.Response:
    await require_host(request)
    bid = await _broadcast(request)
    _, items = await request.app[APPLICATIONS].list(bid, **_filters(request), offset=0, limit=10**7)
    f = _filters(request)
    # Only an id goes into the header: anything else could inject quotes or control characters.
    suffix = f"-{f['opening_id']}" if is_valid_id(f["opening_id"]) else ""
    return _csv_response(csvio.export_applications(items), f"applications-{bid}{suffix}.csv")


@routes.get("/api/broadcasts/{bid}/applications/counts")
async def application_counts(request: web.Request) -> web.Response:
    """Counts only, no personal data: staff see them, as on the host console's socket."""
    await require_host(request, host_only=False)
    bid = await _broadcast(request)
    return json_response(await request.app[APPLICATIONS].snapshot(bid, True))


@routes.get("/api/openings/{oid}/applications")
async def opening_applications(request: web.Request) -> web.Response:
    await require_host(request)
    oid = request.match_info["oid"]
    bid = await request.app[OPENINGS].owner(oid)
    return await _page_of_applications(
        request, bid, opening_id=oid, status=request.query.get("status", "")
    )


@routes.get("/api/broadcasts/{bid}/applications/{aid}")
async def get_application(request: web.Request) -> web.Response:
    """Opening an application marks it viewed (once; the applicant sees 已查看), except with
    `?peek=1`, which the console uses to add a new row to its table."""
    await require_host(request)
    bid, aid = request.match_info["bid"], request.match_info["aid"]
    svc = request.app[APPLICATIONS]
    peek = request.query.get("peek") == "1"
    a = await (svc.get(bid, aid) if peek else svc.mark_viewed(bid, aid))
    return json_response(a)


@routes.patch("/api/broadcasts/{bid}/applications/{aid}")
async def patch_application(request: web.Request) -> web.Response:
    await require_host(request)
    data = await read_json(request)
    if not isinstance(data, dict) or set(data) - {"status", "interview"}:
        raise Invalid(
            "only status can change", fields={"status": "one of " + ", ".join(APPLICATION_STATUSES)}
        )
    a = await request.app[APPLICATIONS].set_status(
        request.match_info["bid"],
        request.match_info["aid"],
        data.get("status"),
        interview=data.get("interview"),
    )
    return json_response(a)


@routes.delete("/api/broadcasts/{bid}/applications/{aid}")
async def delete_application(request: web.Request) -> web.Response:
    await require_host(request)
    count = await request.app[APPLICATIONS].delete(
        request.match_info["bid"], request.match_info["aid"]
    )
    return json_response({"deleted": request.match_info["aid"], "count": count})


# -- pinned-card actions (the host console socket and the JSON API) -------------------------


async def _pin(caller: Caller, data: card.Pin) -> dict[str, Any]:
    return {"pinned": await caller.app[OPENINGS].pin(caller.bid, data.opening_id)}


async def _pin_next(caller: Caller, data: NoData) -> dict[str, Any]:
    return {"pinned": await caller.app[OPENINGS].pin_next(caller.bid)}


async def _unpin(caller: Caller, data: NoData) -> dict[str, Any]:
    return {"unpinned": await caller.app[OPENINGS].unpin(caller.bid)}


PIN = Action(
    "card.pin",
    card.Pin,
    "host",
    _pin,
    summary="Pin a card on every screen",
    http=("POST", "/api/broadcasts/{bid}/pin"),
)
PIN_NEXT = Action(
    "card.pin_next",
    NoData,
    "host",
    _pin_next,
    summary="Pin the next card in the lineup",
    http=("POST", "/api/broadcasts/{bid}/pin/next"),
)
UNPIN = Action(
    "card.unpin",
    NoData,
    "host",
    _unpin,
    summary="Take the pinned card down",
    http=("DELETE", "/api/broadcasts/{bid}/pin"),
)


# -- wiring ---------------------------------------------------------------------------------


async def _services_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    redis = app[REDIS]
    openings = OpeningService(redis, app[EVENT_LOG])
    app[OPENINGS] = openings

    async def tell(vid: str, data: dict[str, Any]) -> None:
        await tell_viewer(redis, vid, "application.mine", data)

    app[APPLICATIONS] = ApplicationService(
        app[REDIS],
        app[EVENT_LOG],
        openings,
        ApplyLimits(
            per_viewer=s.apply_per_viewer,
            per_ip=s.apply_per_ip,
            per_phone=s.apply_per_phone,
            window=s.apply_window,
        ),
        phone_key=phone_key(app[SIGNER]),
        tell=tell,
    )
    yield


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_services_ctx)
    app[APPLY_RESULTS] = Counter(
        "jobcast_applications",
        "Application submissions answered, by outcome (new; same_phone: stored, and the number "
        "had applied to the opening before; replayed)",
        ["outcome"],
        registry=app[METRICS].registry,
    )

    async def openings_part(bid: str, is_host: bool) -> dict[str, Any]:
        return await app[OPENINGS].snapshot(bid, is_host)

    async def counts_part(bid: str, is_host: bool) -> dict[str, Any]:
        return await app[APPLICATIONS].snapshot(bid, is_host)

    app[SNAPSHOT_PARTS].extend([openings_part, counts_part])
    declare(app, PIN, PIN_NEXT, UNPIN)
