"""Interviews wired into the app: the hosts' slots and invitations, the applicant's own
interview (book, move, cancel, calendar file), and the reminder task.

Hosts: `/api/broadcasts/{bid}/openings/{oid}/slots` and `/api/broadcasts/{bid}/applications/
{aid}/invite` (a session with CSRF; who may is `can_manage_opening`). Applicants:
`/api/me/interviews/...` by their signed viewer cookie; an application that is not theirs, or
not invited, answers 404 as one that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from jobcast.core.errors import Conflict, Forbidden, Invalid
from jobcast.core.ids import is_valid_id
from jobcast.openings.interviews import InterviewService, Reminders, can_manage_opening
from jobcast.web.access.requests import read_json, require_host, require_viewer
from jobcast.web.api.openings import APPLICATIONS, OPENINGS
from jobcast.web.appkeys import BROADCASTS, EVENT_LOG, REDIS, SETTINGS
from jobcast.web.jsonutil import json_response
from jobcast.web.pages import i18n
from jobcast.web.pages.calendar import escape_text, fold
from jobcast.web.realtime.private import tell_viewer

routes = web.RouteTableDef()

INTERVIEWS = web.AppKey("interviews", InterviewService)
REMINDERS = web.AppKey("interview_reminders", Reminders)

SLOTS = "/api/broadcasts/{bid}/openings/{oid}/slots"
MINE = "/api/me/interviews"


# -- hosts ----------------------------------------------------------------------------------


async def _managed(request: web.Request) -> tuple[str, str]:
    """(bid, oid) of the slots route, after checking the caller may manage the opening."""
    user = await require_host(request, host_only=False)
    bid, oid = request.match_info["bid"], request.match_info["oid"]
    await request.app[BROADCASTS].get(bid)
    opening = await request.app[INTERVIEWS].opening(bid, oid)
    if not can_manage_opening(user, opening):
        raise Forbidden("only hosts may do this", code="host_only")
    return bid, oid


@routes.get(SLOTS)
async def list_slots(request: web.Request) -> web.Response:
    bid, oid = await _managed(request)
    return json_response({"slots": await request.app[INTERVIEWS].slots(bid, oid)})


@routes.post(SLOTS)
async def add_slot(request: web.Request) -> web.Response:
    bid, oid = await _managed(request)
    slot = await request.app[INTERVIEWS].add_slot(bid, oid, await read_json(request))
    return json_response(slot, status=201)


@routes.patch(SLOTS + "/{sid}")
async def update_slot(request: web.Request) -> web.Response:
    bid, oid = await _managed(request)
    sid = request.match_info["sid"]
    body = await read_json(request)
    return json_response(await request.app[INTERVIEWS].update_slot(bid, oid, sid, body))


@routes.delete(SLOTS + "/{sid}")
async def delete_slot(request: web.Request) -> web.Response:
    bid, oid = await _managed(request)
    force = request.query.get("force", "") in ("1", "true")
    res = await request.app[INTERVIEWS].delete_slot(
        bid, oid, request.match_info["sid"], force=force
    )
    return json_response(res)


@routes.post("/api/broadcasts/{bid}/applications/{aid}/invite")
async def invite(request: web.Request) -> web.Response:
    user = await require_host(request, host_only=False)
    bid, aid = request.match_info["bid"], request.match_info["aid"]
    app = await request.app[APPLICATIONS].get(bid, aid)
    opening = await request.app[INTERVIEWS].opening(bid, app["opening_id"])
    if not can_manage_opening(user, opening):
        raise Forbidden("only hosts may do this", code="host_only")
    return json_response(await request.app[INTERVIEWS].invite(bid, aid))


@routes.get("/api/broadcasts/{bid}/interviews")
async def overview(request: web.Request) -> web.Response:
    """Every invitation and booking of the broadcast, by application id (ids only)."""
    await require_host(request)
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)
    return json_response(await request.app[INTERVIEWS].overview(bid))


# -- applicants -----------------------------------------------------------------------------


@routes.get(MINE)
async def list_mine(request: web.Request) -> web.Response:
    """This viewer's interview invitations (`?bid=`: of one broadcast)."""
    vid = require_viewer(request)
    bid = request.query.get("bid") or None
    if bid is not None and not is_valid_id(bid):
        raise Invalid("bad bid", fields={"bid": "a broadcast id"})
    return json_response({"interviews": await request.app[INTERVIEWS].list_mine(vid, bid)})


@routes.get(MINE + "/{aid}")
async def get_mine(request: web.Request) -> web.Response:
    vid = require_viewer(request)
    _, view = await request.app[INTERVIEWS].mine(vid, request.match_info["aid"])
    return json_response(view)


@routes.post(MINE + "/{aid}/book")
async def book(request: web.Request) -> web.Response:
    """Book a slot of the invited application's opening; booking again moves the booking."""
    vid = require_viewer(request)
    body = await read_json(request)
    if not isinstance(body, dict) or set(body) - {"slot_id"}:
        raise Invalid("expected {slot_id}", code="bad_slot", fields={"slot_id": "required"})
    view = await request.app[INTERVIEWS].book(vid, request.match_info["aid"], body.get("slot_id"))
    return json_response(view)


@routes.delete(MINE + "/{aid}/booking")
async def cancel(request: web.Request) -> web.Response:
    vid = require_viewer(request)
    return json_response(await request.app[INTERVIEWS].cancel(vid, request.match_info["aid"]))


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


def interview_ics(view: dict[str, Any], host: str, *, title: str, now_ms: int) -> str:
    """The booked interview as a calendar file (RFC 5545). The UID is one per application's
    booking, so adding the file again after moving the booking updates the same entry;
    SEQUENCE follows the slot's last change and so grows with a move or an edit."""
    slot = view["booking"]
    where = slot.get("place") or ""
    about = "\n".join(x for x in (view["employer"], where, slot.get("link") or "") if x)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Jobcast//Interviews//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:interview-{view['broadcast_id']}-{view['application_id']}@{host}",
        f"DTSTAMP:{_stamp(now_ms)}",
        f"SEQUENCE:{max(0, int(slot.get('updated_at') or 0) // 1000)}",
        f"DTSTART:{_stamp(int(slot['start']))}",
        f"DURATION:PT{int(slot['duration'])}M",
        f"SUMMARY:{escape_text(title)}",
        f"DESCRIPTION:{escape_text(about)}",
    ]
    if where:
        lines.append(f"LOCATION:{escape_text(where)}")
    if slot.get("link"):
        lines.append(f"URL:{slot['link']}")
    lines += [
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "TRIGGER:-PT1H",
        f"DESCRIPTION:{escape_text(title)}",
        "END:VALARM",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(fold(line) + "\r\n" for line in lines)


@routes.get(MINE + "/{aid}/interview.ics")
async def calendar(request: web.Request) -> web.Response:
    """The applicant's booked interview as a calendar entry (409 `not_booked` without one)."""
    vid = require_viewer(request)
    service = request.app[INTERVIEWS]
    aid = request.match_info["aid"]
    _, view = await service.mine(vid, aid)
    if view["booking"] is None:
        raise Conflict("no interview time is booked", code="not_booked")
    tr = i18n.translations()[i18n.page_lang(request)]
    title = tr.gettext("Interview: %(t)s") % {"t": view["opening_title"]}
    host = request.url.host or "jobcast"
    body = interview_ics(view, host, title=title, now_ms=service._now_ms())
    return web.Response(
        body=body.encode(),
        content_type="text/calendar",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="interview-{aid}.ics"',
            "Cache-Control": "no-store",
        },
    )


# -- wiring ---------------------------------------------------------------------------------


async def _interviews_ctx(app: web.Application) -> AsyncIterator[None]:
    redis = app[REDIS]

    async def tell(vid: str, type_: str, data: dict[str, Any]) -> None:
        await tell_viewer(redis, vid, type_, data)

    app[INTERVIEWS] = InterviewService(
        redis, app[EVENT_LOG], app[OPENINGS], app[APPLICATIONS], tell=tell
    )
    reminders = Reminders(redis, app[SETTINGS].interview_reminder_minutes * 60_000)
    app[REMINDERS] = reminders
    reminders.start()
    yield
    await reminders.close()


def setup(app: web.Application) -> None:
    """After openings_api.setup (its services come first)."""
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_interviews_ctx)
