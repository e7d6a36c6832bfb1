"""The API document's operations, section by section: each path and method with its summary,
who may call it, its parameters, the models of its bodies and answers, and the status codes
it answers with besides those `_Doc.op` adds (503 always; 401 and 403 with a session or
cookie; 413, 415 and 422 with a JSON body). The chat actions' operations come from their
declarations (web/api/openapi.py `_chat`).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from jobcast.core.broadcasts import Broadcast, BroadcastInput, BroadcastPatch
from jobcast.openings import demo
from jobcast.openings.actions import Pin
from jobcast.openings.applicant import (
    ApplicationInput,
    MyApplications,
    PhoneCodeSent,
    PhoneStart,
    PhoneVerify,
    StatusUpdate,
)
from jobcast.openings.applications import IDEMPOTENCY_KEY_MAX
from jobcast.openings.applications import STATUSES as APPLICATION_STATUSES
from jobcast.openings.models import CST, STATUSES, Opening, OpeningInput, OpeningPatch
from jobcast.web.access.auth import DEVICE_COOKIE, SESSION_COOKIE
from jobcast.web.api import schemas as s
from pydantic import BaseModel

if TYPE_CHECKING:
    from jobcast.web.api.openapi import _Doc

Schema = dict[str, Any]
JSON = "application/json"
STR = {"type": "string"}


def ok(
    schema: Schema | type[BaseModel] | None, description: str = "success", media: str = JSON
) -> Schema:
    """A response: `schema` may be a model (its component is referred to)."""
    resp: Schema = {"description": description}
    if schema is not None:
        resp["content"] = {media: {"schema": schema}}
    return resp


def located(model: type[BaseModel]) -> Schema:
    return {**ok(model), "headers": {"Location": {"schema": STR}}}


def param(name: str, where: str, schema: Schema, description: str = "", **kw: Any) -> Schema:
    p: Schema = {"name": name, "in": where, "schema": schema, **kw}
    if where == "path":
        p["required"] = True
    if description:
        p["description"] = description
    return p


def query(name: str, schema: Schema = STR, description: str = "") -> Schema:
    return param(name, "query", schema, description, required=False)


EXAMPLE_OPENING_ID = "k7m2x9pq"
# The first demo opening, as a host would send it today.
OPENING_EXAMPLE = demo.as_sent(demo.SAMPLES[0], datetime.now(CST).date())
# Request examples by operation (the chat actions' are CHAT_EXAMPLES).
EXAMPLES: dict[str, Any] = {
    "post /api/login": {"username": "host1", "password": "s3cret-pass"},
    "post /api/broadcasts": {
        "title": "鸡西市春季招聘会",
        "description": "煤矿、医护、教育岗位",
        "scheduled_at": "2026-03-20T09:00:00+08:00",
    },
    "patch /api/broadcasts/{bid}": {
        "title": "鸡西市春季招聘会（第二场）",
        "scheduled_at": 1774000000000,
    },
    "post /api/broadcasts/{bid}/openings": OPENING_EXAMPLE,
    "patch /api/broadcasts/{bid}/openings/{oid}": {
        "salary_max": 9000,
        "status": "published",
        "tags": ["国企"],
    },
    "put /api/broadcasts/{bid}/lineup": {"order": [EXAMPLE_OPENING_ID]},
    "post /api/broadcasts/{bid}/pin": {"opening_id": EXAMPLE_OPENING_ID},
    "post /api/openings/{oid}/applications": {
        "name": "王芳",
        "phone": "138 0013 8000",
        "email": "wangfang@example.cn",
        "school": "黑龙江工业学院",
        "major": "机电一体化",
        "degree": "associate",
        "graduation_year": 2026,
        "note": "可以下个月入职",
        "consent": True,
        "consent_version": "2026-01",  # the text that names every detail above
    },
    "patch /api/broadcasts/{bid}/applications/{aid}": {"status": "contacted"},
}


def auth(d: _Doc) -> None:
    op = partial(d.op, tag="auth")
    cookie = (
        f"{SESSION_COOKIE}: HttpOnly, SameSite=Lax, Secure behind TLS; {DEVICE_COOKIE} (path "
        "/api/login, SameSite=Strict): this browser, known to the account's login throttle"
    )
    session = {**ok(s.Session), "headers": {"Set-Cookie": {"schema": STR, "description": cookie}}}
    op(
        "post",
        "/api/login",
        "Log in as a host or moderator: session cookie and CSRF token",
        responses={200: session},
        body=s.Login,
        errors=(401, 429),
        description="429 `rate_limited` past the per-address limit; 429 `login_throttled` while "
        "the account's delay for devices that have not logged in to it runs; 503 `login_busy` "
        "when every password check is busy. A disabled or unknown account answers 401 "
        "`bad_credentials`, as a wrong password does.",
    )
    op("post", "/api/logout", "End the session (with the session's CSRF token)", {200: s.Ok})
    d.paths["/api/logout"]["post"]["security"] = [{}, {"hostSession": [], "csrfToken": []}]
    op(
        "get",
        "/api/me",
        "Who is asking: the viewer id and CSRF token, the host session",
        {200: s.Me},
    )


def broadcasts(d: _Doc) -> None:
    op = partial(d.op, tag="broadcasts")
    one = "/api/broadcasts/{bid}"
    op(
        "get",
        "/api/broadcasts",
        "Broadcasts, newest first (hosts also see ended ones)",
        {200: s.BroadcastList},
    )
    created = {201: located(Broadcast)}
    op(
        "post",
        "/api/broadcasts",
        "Create a broadcast",
        created,
        "host",
        body=BroadcastInput,
        errors=(409,),
    )
    op(
        "get",
        one,
        "One broadcast with its viewer count",
        {200: s.BroadcastWithViewers},
        errors=(404,),
    )
    op(
        "patch",
        one,
        "Change a broadcast's title, description or time",
        {200: Broadcast},
        "host",
        body=BroadcastPatch,
        errors=(404,),
    )
    for action, what in (("start", "live"), ("end", "ended")):
        op(
            "post",
            f"{one}/{action}",
            f"Set the status to {what}",
            {200: Broadcast},
            "host",
            errors=(404, 409),
        )


def openings(d: _Doc) -> None:
    op = partial(d.op, tag="openings")
    base = "/api/broadcasts/{bid}/openings"
    card, lineup, pin = base + "/{oid}", "/api/broadcasts/{bid}/lineup", "/api/broadcasts/{bid}/pin"
    filters = (
        query("city", STR, "part of the city name (first 40 characters count)"),
        query("education", STR, "openings asking at most this level (a code or label)"),
        query("major", STR, "openings naming a matching major, or open to any"),
        query("status", STR, "staff only: draft, published or closed"),
    )
    op(
        "get",
        base,
        "Openings in lineup order (viewers: published ones; staff: all)",
        {200: s.OpeningList},
        errors=(404, 422),
        params=filters,
    )
    created = {201: located(Opening)}
    op("post", base, "Create an opening", created, "host", body=OpeningInput, errors=(404, 409))
    csv = {200: ok(STR, media="text/csv")}
    op(
        "get",
        base + ".csv",
        "Export the openings (UTF-8 CSV with BOM)",
        csv,
        "host",
        errors=(404,),
        params=(query("status"),),
    )
    op(
        "get",
        base + "/template.csv",
        "The CSV import template: Chinese headers and two example rows that import as they are",
        {200: ok(STR, "UTF-8 with a BOM, or GBK (Content-Disposition: attachment)", "text/csv")},
        "host",
        errors=(404, 422),
        params=(query("encoding", {"enum": ["utf-8", "gbk"]}, "utf-8 (default, with BOM) or gbk"),),
    )
    file = {"type": "string", "format": "binary"}
    form = {"type": "object", "properties": {"file": file}, "required": ["file"]}
    op(
        "post",
        base + "/import",
        "Import openings from a CSV file: all rows or none",
        {200: ok(s.ImportReport, "dry run: the report"), 201: ok(s.ImportReport, "imported")},
        "host",
        errors=(404, 409, 413, 422),
        params=(
            query("dry_run", STR, "1, true or yes: only report, store nothing"),
            query(
                "status",
                {"enum": list(STATUSES)},
                "every imported card's status, over the file's 状态 column (default: that "
                "column, else published)",
            ),
        ),
        body_media={"text/csv": {"schema": file}, "multipart/form-data": {"schema": form}},
    )
    op("get", card, "One opening (viewers: published only)", {200: Opening}, errors=(404,))
    op("patch", card, "Change an opening", {200: Opening}, "host", body=OpeningPatch, errors=(404,))
    op(
        "delete",
        card,
        "Delete an opening (its applications stay)",
        {200: s.Deleted},
        "host",
        errors=(404,),
    )
    op(
        "get",
        lineup,
        "The presentation order (viewers: published ids, pinned null)",
        {200: s.Lineup},
        errors=(404,),
    )
    op(
        "put",
        lineup,
        "Put these openings first, in this order",
        {200: s.LineupSaved},
        "host",
        body=s.LineupInput,
        errors=(404,),
    )
    op("get", pin, "The card being presented", {200: s.PinState}, errors=(404,))
    op(
        "post",
        pin,
        "Present (pin) a published opening",
        {200: s.PinState},
        "host",
        body=Pin,
        errors=(404, 409),
    )
    op(
        "post",
        pin + "/next",
        "Pin the next published opening in the lineup",
        {200: s.PinState},
        "host",
        errors=(404, 409),
    )
    op("delete", pin, "Unpin", {200: s.Unpinned}, "host", errors=(404,))


def applications(d: _Doc) -> None:
    op = partial(d.op, tag="applications")
    base = "/api/broadcasts/{bid}/applications"
    one, to_opening = base + "/{aid}", "/api/openings/{oid}/applications"
    status = query("status", {"enum": list(APPLICATION_STATUSES)})
    paging = (
        query("offset", {"type": "integer", "minimum": 0, "maximum": 10**7}),
        query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    )
    filters = (
        query("opening_id"),
        status,
        query("employer", STR, "the employer's name, exactly"),
    )
    op(
        "get",
        "/api/consent",
        "The consent text and the degree labels the form shows",
        {200: s.Consent},
    )
    key = {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX}
    key["pattern"] = "^[A-Za-z0-9._:-]+$"
    fresh = "a fresh random value per application"
    op(
        "post",
        to_opening,
        "Apply: stored durably before the answer; retry with the same key and body",
        {
            201: ok(
                s.ApplyResult, "stored (the same answer whether or not the number applied before)"
            )
        },
        "viewer",
        errors=(404, 409, 429),
        body=ApplicationInput,
        params=(param("Idempotency-Key", "header", key, fresh, required=True),),
    )
    op(
        "get",
        "/api/broadcasts/{bid}/applied",
        "What this viewer applied to in the broadcast",
        {200: s.Applied},
        "viewer",
    )
    found = {200: s.ApplicationList}
    op(
        "get",
        base,
        "Applications, newest first",
        found,
        "host",
        errors=(404, 422),
        params=(*filters, *paging),
    )
    csv = {200: ok(STR, media="text/csv")}
    op(
        "get",
        base + ".csv",
        "Export applications (UTF-8 CSV)",
        csv,
        "host",
        errors=(404, 422),
        params=filters,
    )
    op(
        "get",
        base + "/counts",
        "Applications per opening and in all (counts only: staff, like the host socket)",
        {200: s.ApplicationCounts},
        "staff",
        errors=(404,),
    )
    op(
        "get",
        to_opening,
        "Applications to one opening",
        found,
        "host",
        errors=(404, 422),
        params=(status, *paging),
    )
    op(
        "get",
        one,
        "One application (opening it marks it viewed, once)",
        {200: s.Application},
        "host",
        errors=(404,),
        params=(query("peek", {"enum": ["1"]}, "1: read without marking it viewed"),),
    )
    op(
        "patch",
        one,
        "Change an application's status (the applicant is told)",
        {200: s.Application},
        "host",
        body=StatusUpdate,
        errors=(404, 409),
        description="The old words `new` and `rejected` are taken as `submitted` and "
        "`not_selected`. `interview` (when, where or a link, a note) goes with the status "
        "`interview` only.",
    )
    op(
        "delete",
        one,
        "Delete an application (the applicant asked to erase it)",
        {200: s.ApplicationDeleted},
        "host",
        errors=(404,),
    )
    interviews(d)
    my_applications(d)


def my_applications(d: _Doc) -> None:
    """A viewer's own applications and confirming their number (web/api/me.py)."""
    op = partial(d.op, tag="applications")
    op(
        "get",
        "/api/me/applications",
        "My applications, across broadcasts, newest first (viewer cookie)",
        {200: MyApplications},
        "viewer",
    )
    op(
        "post",
        "/api/me/phone",
        "Send a code to the number I applied with (the same answer for any number)",
        {202: PhoneCodeSent},
        "viewer",
        body=PhoneStart,
        errors=(429,),
    )
    op(
        "post",
        "/api/me/phone/verify",
        "Confirm the number with its code: its applications show on this device",
        {200: MyApplications},
        "viewer",
        body=PhoneVerify,
        errors=(429,),
        description="422 `code_invalid` for a wrong or expired code (with `tries_left`), "
        "`code_spent` after too many wrong ones.",
    )


_SLOT_BODY: Schema = {
    "type": "object",
    "properties": {
        "start": {"type": "integer", "description": "Unix ms, in the future, within a year"},
        "duration": {"type": "integer", "minimum": 5, "maximum": 480, "description": "minutes"},
        "place": {"type": "string", "maxLength": 200},
        "link": {"type": "string", "maxLength": 500, "description": "https:// link"},
        "capacity": {"type": "integer", "minimum": 1, "maximum": 500},
    },
    "additionalProperties": False,
}
_SLOT: Schema = {
    "type": "object",
    "description": "a slot with `booked` and `remaining` seats",
    "properties": {
        **_SLOT_BODY["properties"],
        "id": STR,
        "opening_id": STR,
        "booked": {"type": "integer"},
        "remaining": {"type": "integer"},
        "created_at": {"type": "integer"},
        "updated_at": {"type": "integer"},
    },
}
_INTERVIEW: Schema = {
    "type": "object",
    "description": "the applicant's interview: the opening, `booking` (a slot or null), `slots`",
    "properties": {
        "application_id": STR,
        "broadcast_id": STR,
        "opening_id": STR,
        "opening_title": STR,
        "employer": STR,
        "status": STR,
        "applied_at": {"type": "integer"},
        "invited": {"type": "boolean"},
        "booking": {"anyOf": [_SLOT, {"type": "null"}]},
        "slots": {"type": "array", "items": _SLOT},
    },
}


def interviews(d: _Doc) -> None:
    """Interview slots, invitations and bookings (web/api/interviews.py)."""
    op = partial(d.op, tag="applications")
    slots = "/api/broadcasts/{bid}/openings/{oid}/slots"
    one = slots + "/{sid}"
    slot_list = {"type": "object", "properties": {"slots": {"type": "array", "items": _SLOT}}}
    op("get", slots, "An opening's interview slots", {200: ok(slot_list)}, "host", errors=(404,))
    example = {"start": 1893456000000, "duration": 30, "place": "3号楼 201", "capacity": 4}
    op(
        "post",
        slots,
        "Add an interview slot (start, duration, place or link, capacity)",
        {201: ok(_SLOT)},
        "host",
        body=_SLOT_BODY,
        example=example,
        errors=(404, 409),
    )
    op(
        "patch",
        one,
        "Change a slot (capacity not below its bookings: 409 capacity_below_booked)",
        {200: ok(_SLOT)},
        "host",
        body=_SLOT_BODY,
        example={"capacity": 6},
        errors=(404, 409),
    )
    gone = {
        "type": "object",
        "properties": {"deleted": STR, "cancelled": {"type": "array", "items": STR}},
    }
    op(
        "delete",
        one,
        "Delete a slot; one with bookings needs force=1, which cancels them with a notice",
        {200: ok(gone)},
        "host",
        params=(query("force", {"enum": ["1", "true"]}, "cancel the slot's bookings"),),
        errors=(404, 409),
    )
    state = {
        "type": "object",
        "properties": {
            "application_id": STR,
            "opening_id": {"type": ["string", "null"]},
            "invited": {"type": "boolean"},
            "slot_id": {"type": ["string", "null"]},
        },
    }
    op(
        "post",
        "/api/broadcasts/{bid}/applications/{aid}/invite",
        "Invite an application to choose an interview slot (status: interview)",
        {200: ok(state)},
        "host",
        errors=(404, 409),
    )
    ids = {"type": "object", "additionalProperties": STR}
    overview = {"type": "object", "properties": {"invited": ids, "bookings": ids}}
    op(
        "get",
        "/api/broadcasts/{bid}/interviews",
        "Invitations (application id -> opening id) and bookings (-> slot id)",
        {200: ok(overview)},
        "host",
        errors=(404,),
    )
    mine = "/api/me/interviews"
    many = {"type": "array", "items": _INTERVIEW}
    listed = {"type": "object", "properties": {"interviews": many}}
    op(
        "get",
        mine,
        "This viewer's interview invitations",
        {200: ok(listed)},
        "viewer",
        params=(query("bid", STR, "of one broadcast"),),
        errors=(422,),
    )
    op(
        "get",
        mine + "/{aid}",
        "One of this viewer's interviews",
        {200: ok(_INTERVIEW)},
        "viewer",
        errors=(404,),
    )
    op(
        "post",
        mine + "/{aid}/book",
        "Book a slot in one tap (again: move the booking); 409 slot_full when taken",
        {200: ok(_INTERVIEW)},
        "viewer",
        body={
            "type": "object",
            "properties": {"slot_id": STR},
            "required": ["slot_id"],
            "additionalProperties": False,
        },
        example={"slot_id": "k7m2x9pq3n"},
        errors=(404, 409),
    )
    op(
        "delete",
        mine + "/{aid}/booking",
        "Cancel this viewer's booking (the invitation stays)",
        {200: ok(_INTERVIEW)},
        "viewer",
        errors=(404,),
    )
    op(
        "get",
        mine + "/{aid}/interview.ics",
        "The booked interview as a calendar entry (RFC 5545)",
        {200: ok(STR, media="text/calendar")},
        "viewer",
        errors=(404, 409),
    )


def media(d: _Doc) -> None:
    op = partial(d.op, tag="media")
    sdp = {"application/sdp": {"schema": STR}}
    created = {
        "description": "the SDP answer",
        "content": sdp,
        "headers": {
            "Location": {"schema": STR, "required": True, "description": "the session URL"},
            "ETag": {"schema": STR},
            "Link": {"schema": STR, "description": 'rel="ice-server" per STUN/TURN server'},
        },
    }
    options = {
        "description": "Allow, Accept-Post and CORS headers",
        "headers": {"Allow": {"schema": STR, "required": True}},
    }
    for kind, access, who, refusals in (
        ("whip", "stream-key", "publish", (400, 401, 404, 409, 413, 415, 422)),
        ("whep", "public", "play", (400, 404, 409, 413, 415, 422, 429)),
    ):
        ep, res = f"/{kind}/{{bid}}", f"/{kind}/{{bid}}/{{sid}}"
        summary = f"{kind.upper()}: {who} (an SDP offer in, the answer out)"
        op("post", ep, summary, {201: created}, access, body_media=sdp, errors=refusals)
        op("options", ep, "CORS preflight and ICE servers", {204: options})
        op("patch", ep, "Trickle ICE is not supported", {}, errors=(405,))
        op("delete", res, "End the session", {200: ok(None)}, "session-url", errors=(404,))
        op("options", res, "CORS preflight", {204: options})
        op("patch", res, "Trickle ICE and ICE restarts are not supported", {}, errors=(405,))
    b = "/api/broadcasts/{bid}"
    key = b + "/stream-key"
    op(
        "get",
        b + "/stream",
        "Whether the stream is live, and where to play",
        {200: s.StreamState},
        errors=(404,),
    )
    op(
        "get",
        b + "/stream/health",
        "What the publisher sends (fps, bit rates, keyframes) and how viewers watch",
        {200: s.StreamHealth},
        "staff",
        errors=(404,),
    )
    op(
        "get",
        key,
        "Whether a stream key is set (never the key)",
        {200: s.StreamKeyInfo},
        "host",
        errors=(404,),
    )
    op(
        "post",
        key,
        "A new stream key (the old one stops working for new publishes)",
        {201: s.StreamKey},
        "host",
        errors=(404,),
    )
    recordings = {200: s.RecordingList}
    op("get", b + "/recordings", "Recordings of the broadcast", recordings, "host", errors=(404,))
    video = {200: ok({"type": "string", "format": "binary"}, media="video/x-matroska")}
    op("get", b + "/recordings/{name}", "Download a recording", video, "host", errors=(404,))
    counters = {200: ok({"type": "object", "additionalProperties": {"type": "number"}})}
    op("get", "/api/media/stats", "This process's relay counters", counters, "host")
    op(
        "get",
        b + "/replay",
        "The replay (the whole stream's HLS playlist) and a chapter per pinned opening",
        {200: s.Replay},
        errors=(404,),
    )
    op(
        "delete",
        b + "/replay",
        "Delete the replay's files",
        {200: s.ReplayDeleted},
        "host",
        errors=(404, 409),
    )
    op(
        "get",
        "/api/replays",
        "The replays of the caller's organization, newest first",
        {200: s.ReplayList},
        "staff",
    )
    hls = "/hls/{stream}/{name}"
    files = {
        200: ok(STR, media="application/vnd.apple.mpegurl"),
        206: ok({"type": "string", "format": "binary"}, media="video/mp4"),
    }
    op(
        "get",
        hls,
        "HLS: live.m3u8, index.m3u8, init (i<n>.mp4) and media (s<n>.m4s) segments",
        files,
        errors=(404,),
    )
    op("options", hls, "CORS preflight", {204: options})


def meta(d: _Doc) -> None:
    op = partial(d.op, tag="meta")
    op("get", "/api/openapi.json", "This document", responses={200: ok({"type": "object"})})
    down = ok(s.Unhealthy, "Redis is down or refuses writes (the kind under `redis`)")
    op("get", "/healthz", "Liveness and Redis reachability", responses={200: s.Healthy, 503: down})
    op(
        "get",
        "/metrics",
        "Prometheus metrics of this process",
        responses={200: ok(STR, media="text/plain")},
    )


def pages(d: _Doc) -> None:
    """HTML pages: described so that they are fuzzed too; their errors are pages, not JSON."""
    op = partial(d.op, tag="pages")
    html = {"text/html": {"schema": STR}}
    page = {"description": "the page", "content": html}
    not_found = {"description": "the not-found page", "content": html}
    busy = {"description": "a page that reloads itself while Redis is down", "content": html}
    for path, summary, extra in (
        ("/", "Upcoming and live broadcasts", {}),
        ("/b/{bid}", "The viewer page", {404: not_found, 503: busy}),
        ("/b/{bid}/screen", "Full-screen QR code and title", {404: not_found}),
        ("/host", "Host login or home", {}),
        ("/host/", "Host login or home", {}),
        ("/host/b/{bid}", "Host console (the login page without a session)", {404: not_found}),
        ("/me", "My applications, on any device", {}),
    ):
        op("get", path, summary, responses={200: page, **extra}, error_json=False)
    op(
        "get",
        "/b/{bid}/qr.svg",
        "The viewer link as a QR code",
        errors=(404,),
        responses={200: ok(STR, media="image/svg+xml")},
    )
    op(
        "get",
        "/b/{bid}/calendar.ics",
        "The broadcast as a calendar entry with a reminder (RFC 5545)",
        errors=(404, 409),
        responses={200: ok(STR, media="text/calendar")},
    )
    back = {"description": "redirect", "headers": {"Location": {"schema": STR, "required": True}}}
    op(
        "get",
        "/lang/{code}",
        "Choose the language, then go back (303 to `next`)",
        params=(query("next", STR, "a path on this site"),),
        responses={303: back},
    )
    report(d)


def polls(d: _Doc) -> None:
    """Live polls (web/api/polls.py): the state, and each host action from its declaration."""
    from jobcast.chat.actions import PollState
    from jobcast.web.api import polls as polls_api

    op = partial(d.op, tag="chat")
    op(
        "get",
        "/api/broadcasts/{bid}/poll",
        "The poll shown now (or null) and the calling viewer's choice in it",
        errors=(404,),
        responses={200: PollState},
    )
    for name, action in polls_api.STAFF.items():
        assert action.http is not None and action.reply is not None, name
        method, path = action.http
        op(
            method.lower(),
            path,
            action.summary,
            access=action.access,
            body=action.model,
            errors=(404, 409),
            route="/api/broadcasts/{bid}/polls/{action}",
            example=polls_api.EXAMPLES[name],
            responses={200: action.reply},
        )


def notifier(d: _Doc) -> None:
    """The notifier's dead letters (web/api/notifier.py): hosts list and retry them."""
    op = partial(d.op, tag="applications")
    op(
        "get",
        "/api/notifier/dead",
        "Notices the webhook did not take after every attempt, of the caller's organization",
        {200: s.DeadLetters},
        "host",
    )
    op(
        "post",
        "/api/notifier/dead/{nid}/retry",
        "Send a dead letter again (attempts counted afresh)",
        {202: s.Requeued},
        "host",
        errors=(404,),
    )
    reports(d)


def reports(d: _Doc) -> None:
    """Viewer reports of cards and the hosts' review queue (web/api/reports.py)."""
    op = partial(d.op, tag="openings")
    reasons = ["fake_job", "fees_asked", "pay_differs", "outside_contact", "other"]
    body = {
        "type": "object",
        "required": ["reason"],
        "properties": {
            "reason": {"enum": reasons},
            "note": {"type": "string", "maxLength": 300},
        },
        "additionalProperties": False,
    }
    done = {
        "type": "object",
        "properties": {"reported": {"type": "boolean"}, "held": {"type": "boolean"}},
    }
    op(
        "post",
        "/api/openings/{oid}/reports",
        "Report a card (one per viewer per opening; past the threshold the card is held)",
        {201: ok(done)},
        "viewer",
        errors=(404, 409, 429),
        body=body,
        example={"reason": "fees_asked", "note": "电话里要求先交培训费"},
    )
    queue = {"type": "object", "description": "docs/protocol.md, viewer reports"}
    op(
        "get",
        "/api/broadcasts/{bid}/reports",
        "The review queue: reported cards with counts, reasons and latest notes",
        {200: ok(queue)},
        "staff",
        errors=(404,),
    )
    outcome = {
        "type": "object",
        "required": ["outcome"],
        "properties": {"outcome": {"enum": ["clear", "close"]}},
    }
    reviewed = {
        "type": "object",
        "properties": {"opening_id": STR, "status": STR},
    }
    op(
        "post",
        "/api/broadcasts/{bid}/reports/{oid}/review",
        "End a review: clear (published again) or close the card",
        {200: ok(reviewed)},
        "host",
        errors=(404,),
        body=outcome,
        example={"outcome": "clear"},
    )
    employers(d)


def employers(d: _Doc) -> None:
    """Employer records, their verification and recruiter accounts (web/api/employers.py)."""
    op = partial(d.op, tag="openings")
    record = {
        "type": "object",
        "properties": {
            "id": STR,
            "name": STR,
            "verified": {"type": "boolean"},
            "note": STR,
            "by": STR,
            "at": {"type": "integer"},
        },
    }
    listing = {"type": "object", "properties": {"items": {"type": "array", "items": record}}}
    op("get", "/api/employers", "The organization's employer records", {200: ok(listing)}, "host")
    named = {"type": "object", "required": ["name"], "properties": {"name": STR}}
    op(
        "post",
        "/api/employers",
        "The employer record of a name (made if new; openings match it by name)",
        {201: ok(record)},
        "host",
        body=named,
        example={"name": "鸡西矿业（集团）有限责任公司"},
    )
    eid = (param("eid", "path", STR, "an employer record's id"),)
    check = {
        "type": "object",
        "properties": {"verified": {"type": "boolean"}, "note": {"type": "string"}},
    }
    op(
        "post",
        "/api/employers/{eid}/verify",
        "Mark the employer verified with the note of the check (or not); every card shows it",
        {200: ok(record)},
        "host",
        errors=(404,),
        params=eid,
        body=check,
        example={"verified": True, "note": "营业执照已核验（统一社会信用代码）"},
    )
    account = {
        "type": "object",
        "required": ["username", "password"],
        "properties": {"username": STR, "password": {"type": "string", "minLength": 8}},
    }
    made = {
        "type": "object",
        "properties": {"username": STR, "role": STR, "employer": record},
    }
    op(
        "post",
        "/api/employers/{eid}/recruiters",
        "Create (or reset) a recruiter account of the employer",
        {201: ok(made)},
        "host",
        errors=(404,),
        params=eid,
        body=account,
        example={"username": "jxky-hr", "password": "s3cret-pass"},
    )
    view = {"type": "object", "description": "docs/protocol.md, employer accounts"}
    op(
        "get",
        "/api/recruiter",
        "A recruiter's employer, its openings in the organization and their applications",
        {200: ok(view)},
        "staff",
    )
    html = {"text/html": {"schema": STR}}
    op(
        "get",
        "/recruiter",
        "The recruiter's page (redirects to /host without a recruiter session)",
        responses={
            200: {"description": "the page", "content": html},
            302: {"description": "to /host"},
        },
        error_json=False,
        tag="pages",
    )


def report(d: _Doc) -> None:
    """The event report and the per-opening FAQ (web/api/report.py)."""
    op = d.op
    html = {"text/html": {"schema": STR}}
    page = {"description": "the page", "content": html}
    not_found = {"description": "the not-found page", "content": html}
    op(
        "get",
        "/host/b/{bid}/report",
        "The event report with its charts, printable (the login page without a session)",
        responses={200: page, 404: not_found},
        error_json=False,
        tag="pages",
    )
    op(
        "get",
        "/b/{bid}/o/{oid}",
        "One opening: its card, how to apply, its answered questions",
        responses={200: page, 404: not_found},
        error_json=False,
        tag="pages",
    )
    figures = {"type": "object", "description": "docs/protocol.md, the event report"}
    op(
        "get",
        "/api/broadcasts/{bid}/report",
        "The event report's figures, counted from the broadcast's events",
        {200: ok(figures)},
        "host",
        errors=(404,),
        tag="broadcasts",
    )
    op(
        "get",
        "/api/broadcasts/{bid}/report.csv",
        "The event report as CSV (UTF-8 with BOM, Chinese headers)",
        {200: ok(STR, media="text/csv")},
        "host",
        errors=(404,),
        tag="broadcasts",
    )
    faq = {
        "type": "object",
        "properties": {
            "opening_id": STR,
            "questions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": STR,
                        "text": STR,
                        "answer": STR,
                        "answered_at": {"type": ["integer", "null"]},
                        "votes": {"type": "integer"},
                    },
                },
            },
        },
    }
    op(
        "get",
        "/api/broadcasts/{bid}/openings/{oid}/faq",
        "The opening's answered questions (approved, not hidden; no names or viewer ids)",
        {200: ok(faq)},
        errors=(404,),
        tag="openings",
    )
