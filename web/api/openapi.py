"""The API contract: an OpenAPI 3.1 document for every JSON endpoint, WHIP/WHEP, health and
metrics, and the pages; served at `GET /api/openapi.json`.

The request schemas state what the validation code accepts in its canonical form (types,
required fields, lengths in characters after control characters are stripped, enums); where
the code is lenient on purpose (Chinese education labels, "8,000" as a salary, a list given as
one comma-separated string) the schema says so with `anyOf`. tests/test_openapi.py keeps the
document and the router in step, and tests/test_fuzz.py sends generated requests built from
it to a running app and checks every answer against it.

Each operation carries `x-jobcast-access`, who may call it:
`public`, `viewer` (the signed viewer cookie, plus X-CSRF-Token on writes), `staff` (a host or
moderator session), `host` (a host session only), `stream-key` (WHIP's bearer key) or
`session-url` (the unguessable WHIP/WHEP resource URL from the POST's Location is the
credential).
"""

from __future__ import annotations

from functools import cache
from typing import Any, get_args

from aiohttp import web
from jobcast.core import broadcasts
from jobcast.openings import applicant, models
from jobcast.openings.applications import IDEMPOTENCY_KEY_MAX
from jobcast.openings.applications import STATUSES as APPLICATION_STATUSES
from jobcast.web.access.auth import (
    CSRF_HEADER,
    DEVICE_COOKIE,
    SESSION_COOKIE,
    USERNAME_MAX,
    VIEWER_COOKIE,
)
from jobcast.web.api import chat as chat_api
from jobcast.web.api.actions import json_schema
from jobcast.web.jsonutil import json_response
from jobcast.web.redis_errors import HEALTH_KINDS, Refusal

Schema = dict[str, Any]
routes = web.RouteTableDef()

JSON = "application/json"
ACCESS = ("public", "viewer", "staff", "host", "stream-key", "session-url")

# Routes the document leaves out on purpose, with the reason (tests/test_openapi.py reads it).
EXCLUDED = {
    "/ws/b/{bid}": "WebSocket upgrade: the socket protocol is in docs/protocol.md",
    "/ws/host/b/{bid}": "WebSocket upgrade: the socket protocol is in docs/protocol.md",
    "/static/{name}": "static files (scripts, styles, images)",
}


# -- schema helpers --------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    props: dict[str, Schema], required: tuple[str, ...] | list[str] = (), *, extra: bool = False
) -> Schema:
    s: Schema = {"type": "object", "properties": props, "additionalProperties": extra}
    if required:
        s["required"] = list(required)
    return s


def out(props: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """A response object: every listed property is present unless named in `optional`."""
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
    }


def text(max_len: int, *, required: bool = False, multiline: bool = False) -> Schema:
    """Plain text, counted in characters after control characters are stripped."""
    s: Schema = {"type": "string", "maxLength": max_len}
    if required:
        s["minLength"] = 1
    if multiline:
        s["description"] = "may contain line breaks"
    return s


def nullable(s: Schema) -> Schema:
    return {"anyOf": [s, {"type": "null"}]}


def array(items: Schema, **kw: Any) -> Schema:
    return {"type": "array", "items": items, **kw}


INT = {"type": "integer"}
MS = {"type": "integer", "description": "Unix milliseconds"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
ID = {"type": "string", "description": "a short public id (letters and digits, no 0 o 1 l i)"}
ITEM_ID = {
    "anyOf": [{"type": "string", "pattern": "^[0-9]{1,12}$"}, {"type": "integer", "minimum": 0}],
    "description": "a message or question id (a number, as a string or an integer)",
}


SCHEDULED_AT = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 10**14 - 1},
        {"type": "string", "format": "date-time"},
        {"const": ""},
        {"type": "null"},
    ],
    "description": "Unix ms, or ISO 8601 with a timezone; null or '' for none",
}


EXAMPLE_OPENING_ID = "k7m2x9pq"
OPENING_EXAMPLE = {
    "title": "煤矿机电技术员",
    "employer": {"name": "鸡西矿业（集团）有限责任公司", "verified": True},
    "city": "鸡西市",
    "address": "鸡西市鸡冠区中心大街",
    "salary_min": 5000,
    "salary_max": 8000,
    "headcount": 20,
    "education": "associate",
    "majors": ["机电一体化"],
    "experience": "不限",
    "description": "负责井下机电设备的维护",
    "benefits": ["五险一金"],
    "deadline": "2026-08-31",
    "tags": ["国企"],
    "status": "published",
}
# A body for each host/moderator chat action (ids of a message, a question, a viewer).
CHAT_EXAMPLES: dict[str, dict[str, Any]] = {
    "chat.hide": {"id": "1"},
    "question.answer": {"id": "1", "answer": "可以，欢迎应届生", "answered": True},
    "question.highlight": {"id": "1"},
    "question.hide": {"id": "1"},
    "question.restore": {"id": "1"},
    "review.decide": {"kind": "question", "id": "1", "approve": True},
    "mod.timeout": {"viewer_id": "vK3mP9xQ2wR5", "seconds": 300},
    "mod.untimeout": {"viewer_id": "vK3mP9xQ2wR5"},
    "mod.ban": {"message_id": "1", "ip": False},
    "mod.unban": {"viewer_id": "vK3mP9xQ2wR5"},
    "mod.slow_mode": {"seconds": 10},
    "mod.words": {"add": ["加微信"], "remove": ["兼职"]},
}


# -- components ------------------------------------------------------------------------------


def _schemas() -> dict[str, Schema]:
    edu_codes = list(models.EDUCATION)
    str_list = {
        "anyOf": [
            array({"type": "string"}),
            {"type": "string", "description": "items separated by , ， 、 ; ； | / or newlines"},
        ]
    }
    return {
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "minLength": 1},
                        "message": {"type": "string"},
                        "fields": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                            "description": "one message per bad field (422)",
                        },
                        "retry_after": {
                            "type": "number",
                            "minimum": 0,
                            "description": "seconds (429, 503; also the Retry-After header)",
                        },
                        "redis": {
                            "enum": list(get_args(Refusal)),
                            "description": "503 `unavailable`: how Redis refused",
                        },
                    },
                    "required": ["code", "message"],
                    "description": "some codes add context: `limit`, `report`, "
                    "`ignored_columns`, `until`",
                }
            },
            "required": ["error"],
            "additionalProperties": False,
        },
        "Broadcast": out(
            {
                "id": ID,
                "title": STR,
                "description": STR,
                "scheduled_at": nullable(MS),
                "status": {"enum": list(broadcasts.STATUSES)},
                "created_at": MS,
                "updated_at": MS,
                "started_at": nullable(MS),
                "ended_at": nullable(MS),
            }
        ),
        "BroadcastWithViewers": {
            "allOf": [ref("Broadcast"), out({"viewers": {"type": "integer", "minimum": 0}})]
        },
        "BroadcastInput": obj(
            {
                "title": text(broadcasts.TITLE_MAX, required=True),
                "description": text(broadcasts.DESCRIPTION_MAX, multiline=True),
                "scheduled_at": SCHEDULED_AT,
            },
            ["title"],
        ),
        "BroadcastPatch": obj(
            {
                "title": text(broadcasts.TITLE_MAX, required=True),
                "description": text(broadcasts.DESCRIPTION_MAX, multiline=True),
                "scheduled_at": SCHEDULED_AT,
            }
        ),
        "Login": obj(
            {
                "username": {"type": "string", "maxLength": USERNAME_MAX},
                "password": {"type": "string"},
            },
            ["username", "password"],
        ),
        "Session": out({"username": STR, "role": {"enum": ["host", "moderator"]}, "csrf": STR}),
        "Me": out(
            {
                "viewer_id": nullable(STR),
                "csrf": nullable(STR),
                "host": nullable(ref("Session")),
            }
        ),
        "Employer": out({"name": STR, "verified": BOOL}),
        "Opening": out(
            {
                "id": ID,
                "broadcast_id": ID,
                "title": STR,
                "employer": ref("Employer"),
                "city": STR,
                "address": STR,
                "salary_min": INT,
                "salary_max": INT,
                "headcount": INT,
                "education": {"enum": edu_codes},
                "education_label": STR,
                "majors": array(STR),
                "experience": STR,
                "description": STR,
                "benefits": array(STR),
                "deadline": {"type": "string", "description": "YYYY-MM-DD or ''"},
                "deadline_ms": INT,
                "tags": array(STR),
                "status": {"enum": list(models.STATUSES)},
                "created_at": MS,
                "updated_at": MS,
            }
        ),
        "OpeningInput": _opening_input(required=True, str_list=str_list),
        "OpeningPatch": _opening_input(required=False, str_list=str_list),
        "Pinned": out({"opening": ref("Opening"), "pinned_at": MS}),
        "ImportRow": out(
            {
                "row": {"type": "integer", "description": "spreadsheet line (header: 1)"},
                "title": STR,
                "ok": BOOL,
                "errors": {"type": "object", "additionalProperties": STR},
            },
            optional=("errors",),
        ),
        "ImportReport": out(
            {
                "dry_run": BOOL,
                "ok": BOOL,
                "encoding": STR,
                "total": INT,
                "valid": INT,
                "invalid": INT,
                "ignored_columns": array(STR),
                "rows": array(ref("ImportRow")),
                "created": array(ID),
            }
        ),
        "ApplicationInput": obj(
            {
                "name": text(applicant.NAME_MAX, required=True),
                "phone": {
                    "type": "string",
                    "minLength": 1,
                    "description": "a mainland mobile (1[3-9] + 9 digits, optionally +86/0086) "
                    f"or E.164; spaces, dashes and brackets allowed; at most "
                    f"{applicant.PHONE_RAW_MAX} characters without them",
                },
                "email": {"type": "string", "maxLength": applicant.EMAIL_MAX, "format": "email"},
                "school": text(applicant.SCHOOL_MAX),
                "major": text(applicant.MAJOR_MAX),
                "degree": {
                    "anyOf": [
                        {"enum": [*applicant.DEGREES, ""]},
                        {"type": "string", "description": "a Chinese label such as 本科"},
                        {"type": "null"},
                    ]
                },
                "graduation_year": {
                    "anyOf": [
                        {"type": "integer", "minimum": 1950},
                        {"type": "string", "pattern": "^[0-9]{4}$"},
                        {"type": "null"},
                    ],
                    "description": "1950 to this year + 6",
                },
                "note": text(applicant.NOTE_MAX, multiline=True),
                "consent": {"const": True},
                "consent_version": {"enum": list(applicant.CONSENT_TEXTS)},
            },
            ["name", "phone", "consent", "consent_version"],
        ),
        "ApplyResult": out(
            {
                "application_id": ID,
                "opening_id": ID,
                "applied": {"const": True},
            }
        ),
        "Application": out(
            {
                "id": ID,
                "opening_id": STR,
                "opening_title": STR,
                "employer": STR,
                "name": STR,
                "phone": STR,
                "email": STR,
                "school": STR,
                "major": STR,
                "degree": STR,
                "degree_label": STR,
                "graduation_year": nullable(INT),
                "note": STR,
                "status": {"enum": list(APPLICATION_STATUSES)},
                "created_at": MS,
                "updated_at": MS,
                "consent_version": STR,
                "consented_at": MS,
                "same_phone": INT,
                "same_phone_ids": array(ID),
            }
        ),
        "ApplicationList": out({"total": INT, "applications": array(ref("Application"))}),
        "Label": out({"code": STR, "zh": STR, "en": STR}),
        "Message": out(
            {
                "id": STR,
                "name": STR,
                "role": {"enum": ["viewer", "host", "moderator"]},
                "text": STR,
                "ts": MS,
            }
        ),
        "Question": out(
            {
                "id": STR,
                "name": nullable(STR),
                "anonymous": BOOL,
                "text": STR,
                "opening_id": nullable(STR),
                "ts": MS,
                "status": {"enum": ["open", "answered"]},
                "answer": nullable(STR),
                "answered_at": nullable(MS),
                "votes": INT,
                "hidden": BOOL,
                "author": out({"viewer_id": STR, "name": STR}),
                "voters": {**INT, "description": "hosts: every viewer's vote, counted or not"},
                "addresses": {**INT, "description": "hosts: addresses the votes came from"},
            },
            optional=("author", "voters", "addresses"),
        ),
        "ReviewItem": out(
            {
                "kind": {"enum": ["message", "question"]},
                "id": STR,
                "text": STR,
                "ts": MS,
                "reason": {"enum": ["phone", "contact", "link", "question"]},
                "author": out({"viewer_id": STR, "name": STR}),
                "anonymous": BOOL,
                "opening_id": nullable(STR),
            },
            optional=("anonymous", "opening_id"),
        ),
        "ChatState": out(
            {
                "chat": array(ref("Message")),
                "chat_settings": out({"slow_mode": INT}),
                "questions": array(ref("Question")),
                "highlighted_question": nullable(STR),
                "review": array(ref("ReviewItem")),
                "moderation": out(
                    {
                        "blocked_words": array(STR),
                        "muted": {"type": "object", "additionalProperties": MS},
                        "banned": {
                            "type": "object",
                            "additionalProperties": out({"ip_banned": BOOL}),
                        },
                    }
                ),
            },
            optional=("review", "moderation"),
        ),
        "Who": {
            "type": "object",
            "description": "the viewer an action is about: `viewer_id`, or the author of "
            "`message_id` or `question_id`",
            "properties": {
                "viewer_id": {"type": "string", "minLength": 1, "maxLength": 64},
                "message_id": ITEM_ID,
                "question_id": ITEM_ID,
            },
            "anyOf": [
                {"required": ["viewer_id"]},
                {"required": ["message_id"]},
                {"required": ["question_id"]},
            ],
        },
        "StreamState": out(
            {
                "state": {"enum": ["offline", "starting", "live"]},
                "session": {
                    **STR,
                    "description": "public id of the WHIP session (new when a publisher takes"
                    " over); not the resource id in the publisher's Location",
                },
                "whep": STR,
                "codecs": out({"video": STR, "audio": STR}, optional=("video", "audio")),
            },
            optional=("session", "codecs", "whep"),
        ),
        "StreamKeyInfo": out({"has_key": BOOL, "created_at": nullable(MS), "whip_url": STR}),
        "StreamKey": out({"stream_key": STR, "created_at": MS, "whip_url": STR}),
        "Recording": out({"name": STR, "bytes": INT, "modified_at": MS, "in_progress": BOOL}),
    }


def _opening_input(*, required: bool, str_list: Schema) -> Schema:
    """An opening as a host sends it (create: `required`; PATCH: any subset of the fields).

    Read-only fields of the card (`id`, `created_at`...) may be sent back; they are ignored.
    """
    count = {
        "anyOf": [
            {"type": "integer", "minimum": 1, "maximum": models.SALARY_MAX},
            {"type": "string", "pattern": "^[0-9, ，]{1,12}(\\.0+)?$"},
        ]
    }
    props: dict[str, Schema] = {
        "title": text(models.TITLE_MAX, required=True),
        "employer": {
            "anyOf": [
                obj(
                    {
                        "name": text(models.EMPLOYER_MAX, required=True),
                        "verified": {
                            "anyOf": [
                                BOOL,
                                {"enum": ["1", "0", "true", "false", "yes", "no", "是", "否"]},
                            ]
                        },
                    },
                    ["name"] if required else [],
                ),
                {**text(models.EMPLOYER_MAX, required=True), "description": "the name"},
            ]
        },
        "city": text(models.CITY_MAX, required=True),
        "address": text(models.ADDRESS_MAX),
        "salary_min": count,
        "salary_max": count,
        "headcount": {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": models.HEADCOUNT_MAX},
                {"type": "string", "pattern": "^[0-9]{1,6}$"},
                {"type": "null"},
            ]
        },
        "education": {
            "anyOf": [
                {"enum": list(models.EDUCATION)},
                {"type": "string", "description": "a Chinese or English label (本科及以上)"},
            ]
        },
        "majors": {
            **str_list,
            "description": f"≤ {models.LIST_ITEMS_MAX} of ≤ {models.MAJOR_MAX} characters",
        },
        "experience": text(models.EXPERIENCE_MAX),
        "description": text(models.DESCRIPTION_MAX, multiline=True),
        "benefits": {
            **str_list,
            "description": f"≤ {models.LIST_ITEMS_MAX} of ≤ {models.BENEFIT_MAX} characters",
        },
        "deadline": {
            "anyOf": [{"type": "string", "format": "date"}, {"const": ""}, {"type": "null"}],
            "description": "the last day (China time); 2026/9/15 is accepted too",
        },
        "tags": {
            **str_list,
            "description": f"≤ {models.TAGS_MAX} of ≤ {models.TAG_MAX} characters",
        },
        "status": {"enum": list(models.STATUSES)},
    }
    for name in sorted(models.READ_ONLY):
        props[name] = {"description": "read-only: ignored"}
    return obj(props, ["title", "employer", "city", "salary_min", "salary_max"] if required else [])


# -- responses and operations ----------------------------------------------------------------

_ERROR_TEXT = {
    400: "bad request (e.g. a malformed SDP: `bad_sdp`)",
    401: "no or wrong credentials (`login_required`, `bad_credentials`, `no_key`, `bad_key`)",
    403: "not allowed (`host_only`, `staff_only`, `csrf`, `bad_origin`)",
    404: "no such resource (`broadcast_not_found`, `opening_not_found`, ...)",
    405: "method not allowed (`Allow` lists the methods)",
    409: "conflicts with the current state",
    413: "body over its size limit (`too_large`)",
    415: "the body is not in the format this endpoint reads",
    422: "validation failed: `fields` names each bad field",
    429: "rate limited: see `retry_after` and `Retry-After`",
    503: "Redis is unavailable (`unavailable`) or the server is full; retry after `Retry-After`",
}


def _error(status: int) -> Schema:
    resp: Schema = {
        "description": _ERROR_TEXT[status],
        "content": {JSON: {"schema": ref("Error")}},
    }
    if status in (429, 503):
        resp["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": False}}
    return resp


def ok(schema: Schema | None, description: str = "success", media: str = JSON) -> Schema:
    resp: Schema = {"description": description}
    if schema is not None:
        resp["content"] = {media: {"schema": schema}}
    return resp


SECURITY_SCHEMES = {
    "hostSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "a host or moderator session (POST /api/login); HttpOnly, SameSite=Lax",
    },
    "csrfToken": {
        "type": "apiKey",
        "in": "header",
        "name": CSRF_HEADER,
        "description": "the `csrf` of the session (login answer, GET /api/me) or of the "
        "viewer (GET /api/me); required on every cookie-authenticated write",
    },
    "viewerCookie": {
        "type": "apiKey",
        "in": "cookie",
        "name": VIEWER_COOKIE,
        "description": "the signed viewer id every browser gets on its first visit",
    },
    "streamKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "the broadcast's WHIP stream key (POST /api/broadcasts/{bid}/stream-key)",
    },
}


def _security(access: str, unsafe: bool) -> list[dict[str, list[str]]]:
    if access in ("host", "staff"):
        return [{"hostSession": [], "csrfToken": []} if unsafe else {"hostSession": []}]
    if access == "viewer":
        return [{"viewerCookie": [], "csrfToken": []} if unsafe else {"viewerCookie": []}]
    if access == "stream-key":
        return [{"streamKey": []}]
    return [{}]


def _param(name: str, where: str, schema: Schema, description: str = "", **kw: Any) -> Schema:
    p: Schema = {"name": name, "in": where, "schema": schema, **kw}
    if where == "path":
        p["required"] = True
    if description:
        p["description"] = description
    return p


BID = _param("bid", "path", {"type": "string", "minLength": 1}, "broadcast id")
OID = _param("oid", "path", {"type": "string", "minLength": 1}, "opening id")
AID = _param("aid", "path", {"type": "string", "minLength": 1}, "application id")
SID = _param(
    "sid",
    "path",
    {"type": "string", "minLength": 1},
    "the resource id from the POST's Location (for WHIP a secret, not the public `session`)",
)


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    return _param(name, "query", schema, description, required=False)


class _Doc:
    """Collects operations into `paths`."""

    def __init__(self) -> None:
        self.paths: dict[str, dict[str, Any]] = {}

    def op(
        self,
        method: str,
        path: str,
        summary: str,
        *,
        access: str,
        tag: str,
        responses: dict[int, Schema],
        errors: tuple[int, ...] = (),
        params: tuple[Schema, ...] = (),
        body: Schema | None = None,
        body_media: dict[str, Schema] | None = None,
        body_required: bool = True,
        example: Any = None,
        route: str | None = None,
        error_json: bool = True,
    ) -> None:
        assert access in ACCESS, access
        method = method.lower()
        unsafe = method in ("post", "put", "patch", "delete")
        op: dict[str, Any] = {
            "operationId": f"{method} {path}",
            "summary": summary,
            "tags": [tag],
            "x-jobcast-access": access,
            "security": _security(access, unsafe),
        }
        if route is not None:
            op["x-route"] = route
        if params:
            op["parameters"] = list(params)
        codes = set(errors) | {503}
        if unsafe and access in ("host", "staff", "viewer", "public") and path.startswith("/api/"):
            codes.add(403)  # bad_origin, csrf
        if access in ("host", "staff"):
            codes |= {401, 403}
        if access == "viewer":
            codes |= {401, 403}
        if body is not None or body_media is not None:
            content = body_media or {JSON: {"schema": body}}
            if example is not None:
                content[JSON]["example"] = example
            op["requestBody"] = {"required": body_required, "content": content}
            if JSON in content:
                codes |= {413, 415, 422}
        resp: dict[str, Any] = {str(k): v for k, v in sorted(responses.items())}
        for code in sorted(codes):
            resp.setdefault(
                str(code),
                {"$ref": f"#/components/responses/E{code}"} if error_json else {"description": ""},
            )
        op["responses"] = resp
        self.paths.setdefault(path, {})[method] = op


def _api(d: _Doc) -> None:
    bc = "broadcasts"
    d.op(
        "post",
        "/api/login",
        "Log in as a host or moderator: session cookie and CSRF token",
        access="public",
        tag="auth",
        body=ref("Login"),
        example={"username": "host1", "password": "s3cret-pass"},
        errors=(401, 429),
        responses={
            200: {
                **ok(ref("Session")),
                "headers": {
                    "Set-Cookie": {
                        "schema": STR,
                        "description": f"{SESSION_COOKIE}: HttpOnly, SameSite=Lax, Secure "
                        f"behind TLS; {DEVICE_COOKIE} (path /api/login, SameSite=Strict): this "
                        "browser, known to the account's login throttle",
                    }
                },
            }
        },
    )
    d.paths["/api/login"]["post"]["description"] = (
        "429 `rate_limited` past the per-address limit; 429 `login_throttled` while the "
        "account's delay for devices that have not logged in to it runs; 503 `login_busy` when "
        "every password check is busy. A disabled or unknown account answers 401 "
        "`bad_credentials`, as a wrong password does."
    )
    d.op(
        "post",
        "/api/logout",
        "End the session (with the session's CSRF token)",
        access="public",
        tag="auth",
        responses={200: ok(out({"ok": {"const": True}}))},
    )
    d.paths["/api/logout"]["post"]["security"] = [{}, {"hostSession": [], "csrfToken": []}]
    d.op(
        "get",
        "/api/me",
        "Who is asking: the viewer id and CSRF token, the host session",
        access="public",
        tag="auth",
        responses={200: ok(ref("Me"))},
    )
    d.op(
        "get",
        "/api/broadcasts",
        "Broadcasts, newest first (hosts also see ended ones)",
        access="public",
        tag=bc,
        responses={200: ok(out({"broadcasts": array(ref("Broadcast"))}))},
    )
    d.op(
        "post",
        "/api/broadcasts",
        "Create a broadcast",
        access="host",
        tag=bc,
        body=ref("BroadcastInput"),
        example={
            "title": "鸡西市春季招聘会",
            "description": "煤矿、医护、教育岗位",
            "scheduled_at": "2026-03-20T09:00:00+08:00",
        },
        errors=(409,),
        responses={201: {**ok(ref("Broadcast")), "headers": {"Location": {"schema": STR}}}},
    )
    d.op(
        "get",
        "/api/broadcasts/{bid}",
        "One broadcast with its viewer count",
        access="public",
        tag=bc,
        params=(BID,),
        errors=(404,),
        responses={200: ok(ref("BroadcastWithViewers"))},
    )
    d.op(
        "patch",
        "/api/broadcasts/{bid}",
        "Change a broadcast's title, description or time",
        access="host",
        tag=bc,
        params=(BID,),
        body=ref("BroadcastPatch"),
        example={"title": "鸡西市春季招聘会（第二场）", "scheduled_at": 1774000000000},
        errors=(404,),
        responses={200: ok(ref("Broadcast"))},
    )
    for action, what in (("start", "live"), ("end", "ended")):
        d.op(
            "post",
            f"/api/broadcasts/{{bid}}/{action}",
            f"Set the status to {what}",
            access="host",
            tag=bc,
            params=(BID,),
            errors=(404, 409),
            responses={200: ok(ref("Broadcast"))},
        )
    _openings(d)
    _applications(d)
    _chat(d)
    _media(d)
    d.op(
        "get",
        "/api/openapi.json",
        "This document",
        access="public",
        tag="meta",
        responses={200: ok({"type": "object"})},
    )
    d.op(
        "get",
        "/healthz",
        "Liveness and Redis reachability",
        access="public",
        tag="meta",
        responses={
            200: ok(out({"ok": {"const": True}, "redis": {"const": "up"}})),
            503: ok(
                out({"ok": {"const": False}, "redis": {"enum": list(HEALTH_KINDS)}}),
                "Redis is down or refuses writes (the kind under `redis`)",
            ),
        },
    )
    d.op(
        "get",
        "/metrics",
        "Prometheus metrics of this process",
        access="public",
        tag="meta",
        responses={200: ok(STR, media="text/plain")},
    )


def _openings(d: _Doc) -> None:
    t = "openings"
    card = "/api/broadcasts/{bid}/openings/{oid}"
    d.op(
        "get",
        "/api/broadcasts/{bid}/openings",
        "Openings in lineup order (viewers: published ones; staff: all)",
        access="public",
        tag=t,
        errors=(404, 422),
        params=(
            BID,
            _query("city", STR, "part of the city name (first 40 characters count)"),
            _query("education", STR, "openings asking at most this level (a code or label)"),
            _query("major", STR, "openings naming a matching major, or open to any"),
            _query("status", STR, "staff only: draft, published or closed"),
        ),
        responses={200: ok(out({"openings": array(ref("Opening")), "cities": array(STR)}))},
    )
    d.op(
        "post",
        "/api/broadcasts/{bid}/openings",
        "Create an opening",
        access="host",
        tag=t,
        params=(BID,),
        body=ref("OpeningInput"),
        example=OPENING_EXAMPLE,
        errors=(404, 409),
        responses={201: {**ok(ref("Opening")), "headers": {"Location": {"schema": STR}}}},
    )
    d.op(
        "get",
        "/api/broadcasts/{bid}/openings.csv",
        "Export the openings (UTF-8 CSV with BOM)",
        access="host",
        tag=t,
        errors=(404,),
        params=(BID, _query("status", STR)),
        responses={200: ok(STR, media="text/csv")},
    )
    csv_body = {"type": "string", "format": "binary"}
    d.op(
        "post",
        "/api/broadcasts/{bid}/openings/import",
        "Import openings from a CSV file: all rows or none",
        access="host",
        tag=t,
        errors=(404, 409, 413, 422),
        params=(
            BID,
            _query("dry_run", STR, "1, true or yes: only report, store nothing"),
            _query("status", {"enum": list(models.STATUSES)}, "status of the imported cards"),
        ),
        body_media={
            "text/csv": {"schema": csv_body},
            "multipart/form-data": {
                "schema": obj({"file": csv_body}, ["file"], extra=True),
            },
        },
        responses={
            200: ok(ref("ImportReport"), "dry run: the report"),
            201: ok(ref("ImportReport"), "imported"),
        },
    )
    d.op(
        "get",
        card,
        "One opening (viewers: published only)",
        access="public",
        tag=t,
        params=(BID, OID),
        errors=(404,),
        responses={200: ok(ref("Opening"))},
    )
    d.op(
        "patch",
        card,
        "Change an opening",
        access="host",
        tag=t,
        params=(BID, OID),
        body=ref("OpeningPatch"),
        example={"salary_max": 9000, "status": "published", "tags": ["国企"]},
        errors=(404,),
        responses={200: ok(ref("Opening"))},
    )
    d.op(
        "delete",
        card,
        "Delete an opening (its applications stay)",
        access="host",
        tag=t,
        params=(BID, OID),
        errors=(404,),
        responses={200: ok(out({"deleted": ID}))},
    )
    lineup = "/api/broadcasts/{bid}/lineup"
    d.op(
        "get",
        lineup,
        "The presentation order (viewers: published ids, pinned null)",
        access="public",
        tag=t,
        params=(BID,),
        errors=(404,),
        responses={200: ok(out({"order": array(ID), "pinned": nullable(ID)}))},
    )
    d.op(
        "put",
        lineup,
        "Put these openings first, in this order",
        access="host",
        tag=t,
        params=(BID,),
        errors=(404,),
        body=obj({"order": array(ID, uniqueItems=True)}, ["order"]),
        example={"order": [EXAMPLE_OPENING_ID]},
        responses={200: ok(out({"order": array(ID)}))},
    )
    pin = "/api/broadcasts/{bid}/pin"
    pinned = out({"pinned": nullable(ref("Pinned"))})
    d.op(
        "get",
        pin,
        "The card being presented",
        access="public",
        tag=t,
        params=(BID,),
        errors=(404,),
        responses={200: ok(pinned)},
    )
    d.op(
        "post",
        pin,
        "Present (pin) a published opening",
        access="host",
        tag=t,
        params=(BID,),
        body=obj({"opening_id": {"type": "string", "minLength": 1}}, ["opening_id"]),
        example={"opening_id": EXAMPLE_OPENING_ID},
        errors=(404, 409),
        responses={200: ok(pinned)},
    )
    d.op(
        "post",
        pin + "/next",
        "Pin the next published opening in the lineup",
        access="host",
        tag=t,
        params=(BID,),
        errors=(404, 409),
        responses={200: ok(pinned)},
    )
    d.op(
        "delete",
        pin,
        "Unpin",
        access="host",
        tag=t,
        params=(BID,),
        errors=(404,),
        responses={
            200: ok(out({"unpinned": out({"opening_id": nullable(ID)}), "pinned": {"const": None}}))
        },
    )
    d.op(
        "get",
        "/api/consent",
        "The consent text and the degree labels the form shows",
        access="public",
        tag="applications",
        responses={
            200: ok(
                out(
                    {
                        "version": STR,
                        "text": out({"zh": STR, "en": STR}),
                        "degrees": array(ref("Label")),
                        "education": array(ref("Label")),
                    }
                )
            )
        },
    )


def _applications(d: _Doc) -> None:
    t = "applications"
    status_q = _query("status", {"enum": list(APPLICATION_STATUSES)})
    paging = (
        _query("offset", {"type": "integer", "minimum": 0, "maximum": 10**7}),
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
    )
    d.op(
        "post",
        "/api/openings/{oid}/applications",
        "Apply: stored durably before the answer; retry with the same key and body",
        access="viewer",
        tag=t,
        errors=(404, 409, 429),
        body=ref("ApplicationInput"),
        example={
            "name": "王芳",
            "phone": "138 0013 8000",
            "email": "wangfang@example.cn",
            "school": "黑龙江工业学院",
            "major": "机电一体化",
            "degree": "associate",
            "graduation_year": 2026,
            "note": "可以下个月入职",
            "consent": True,
            "consent_version": applicant.CONSENT_VERSION,
        },
        params=(
            OID,
            _param(
                "Idempotency-Key",
                "header",
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": IDEMPOTENCY_KEY_MAX,
                    "pattern": "^[A-Za-z0-9._:-]+$",
                },
                "a fresh random value per application",
                required=True,
            ),
        ),
        responses={
            201: ok(
                ref("ApplyResult"),
                "stored (the same answer whether or not the number applied before)",
            ),
        },
    )
    d.op(
        "get",
        "/api/broadcasts/{bid}/applied",
        "What this viewer applied to in the broadcast",
        access="viewer",
        tag=t,
        params=(BID,),
        responses={
            200: ok(
                out(
                    {
                        "opening_ids": array(ID),
                        "applications": {"type": "object", "additionalProperties": ID},
                    }
                )
            )
        },
    )
    base = "/api/broadcasts/{bid}/applications"
    filters = (
        _query("opening_id", STR),
        status_q,
        _query("employer", STR, "the employer's name, exactly"),
    )
    d.op(
        "get",
        base,
        "Applications, newest first",
        access="host",
        tag=t,
        errors=(404, 422),
        params=(BID, *filters, *paging),
        responses={200: ok(ref("ApplicationList"))},
    )
    d.op(
        "get",
        "/api/broadcasts/{bid}/applications.csv",
        "Export applications (UTF-8 CSV)",
        access="host",
        tag=t,
        errors=(404, 422),
        params=(BID, *filters),
        responses={200: ok(STR, media="text/csv")},
    )
    d.op(
        "get",
        base + "/counts",
        "Applications per opening and in all (counts only: staff, like the host socket)",
        access="staff",
        tag=t,
        params=(BID,),
        errors=(404,),
        responses={
            200: ok(
                out(
                    {
                        "application_counts": {"type": "object", "additionalProperties": INT},
                        "applications_total": INT,
                    }
                )
            )
        },
    )
    d.op(
        "get",
        "/api/openings/{oid}/applications",
        "Applications to one opening",
        access="host",
        tag=t,
        errors=(404, 422),
        params=(OID, status_q, *paging),
        responses={200: ok(ref("ApplicationList"))},
    )
    one = base + "/{aid}"
    d.op(
        "get",
        one,
        "One application",
        access="host",
        tag=t,
        params=(BID, AID),
        errors=(404,),
        responses={200: ok(ref("Application"))},
    )
    d.op(
        "patch",
        one,
        "Change an application's status",
        access="host",
        tag=t,
        params=(BID, AID),
        errors=(404, 409),
        body=obj({"status": {"enum": list(APPLICATION_STATUSES)}}, ["status"]),
        example={"status": "contacted"},
        responses={200: ok(ref("Application"))},
    )
    d.op(
        "delete",
        one,
        "Delete an application (the applicant asked to erase it)",
        access="host",
        tag=t,
        params=(BID, AID),
        errors=(404,),
        responses={200: ok(out({"deleted": ID, "count": INT}))},
    )


def _chat(d: _Doc) -> None:
    t = "chat"
    d.op(
        "get",
        "/api/broadcasts/{bid}/chat",
        "The chat part of the snapshot (the host view for staff)",
        access="public",
        tag=t,
        params=(BID,),
        errors=(404,),
        responses={200: ok(ref("ChatState"))},
    )
    # Each host/moderator action from its declaration (web/api/chat.py STAFF): the body is
    # its model's schema, the reply its reply model's (or a documented component).
    for name, action in chat_api.STAFF.items():
        assert action.http is not None and action.reply is not None, name
        method, path = action.http
        reply = action.reply
        d.op(
            method.lower(),
            path,
            action.summary,
            access=action.access,
            tag=t,
            params=(BID,),
            body=json_schema(action.model),
            errors=(404, 409),
            route="/api/broadcasts/{bid}/chat/{action}",
            example=CHAT_EXAMPLES[name],
            responses={200: ok(ref(reply) if isinstance(reply, str) else json_schema(reply))},
        )


def _media(d: _Doc) -> None:
    t = "media"
    sdp = {"application/sdp": {"schema": {"type": "string"}}}
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
    for kind, access, who in (("whip", "stream-key", "publish"), ("whep", "public", "play")):
        ep, res = f"/{kind}/{{bid}}", f"/{kind}/{{bid}}/{{sid}}"
        d.op(
            "post",
            ep,
            f"{kind.upper()}: {who} (an SDP offer in, the answer out)",
            access=access,
            tag=t,
            params=(BID,),
            body_media=sdp,
            errors=(400, 401, 404, 409, 413, 415, 422)
            if kind == "whip"
            else (400, 404, 409, 413, 415, 422, 429),
            responses={201: created},
        )
        d.op(
            "options",
            ep,
            "CORS preflight and ICE servers",
            access="public",
            tag=t,
            params=(BID,),
            responses={204: options},
        )
        d.op(
            "patch",
            ep,
            "Trickle ICE is not supported",
            access="public",
            tag=t,
            params=(BID,),
            errors=(405,),
            responses={},
        )
        d.op(
            "delete",
            res,
            "End the session",
            access="session-url",
            tag=t,
            params=(BID, SID),
            errors=(404,),
            responses={200: ok(None)},
        )
        d.op(
            "options",
            res,
            "CORS preflight",
            access="public",
            tag=t,
            params=(BID, SID),
            responses={204: options},
        )
        d.op(
            "patch",
            res,
            "Trickle ICE and ICE restarts are not supported",
            access="public",
            tag=t,
            params=(BID, SID),
            errors=(405,),
            responses={},
        )
    d.op(
        "get",
        "/api/broadcasts/{bid}/stream",
        "Whether the stream is live, and where to play",
        access="public",
        tag=t,
        params=(BID,),
        errors=(404,),
        responses={200: ok(ref("StreamState"))},
    )
    key = "/api/broadcasts/{bid}/stream-key"
    d.op(
        "get",
        key,
        "Whether a stream key is set (never the key)",
        access="host",
        tag=t,
        params=(BID,),
        errors=(404,),
        responses={200: ok(ref("StreamKeyInfo"))},
    )
    d.op(
        "post",
        key,
        "A new stream key (the old one stops working for new publishes)",
        access="host",
        tag=t,
        params=(BID,),
        errors=(404,),
        responses={201: ok(ref("StreamKey"))},
    )
    d.op(
        "get",
        "/api/broadcasts/{bid}/recordings",
        "Recordings of the broadcast",
        access="host",
        tag=t,
        params=(BID,),
        errors=(404,),
        responses={200: ok(out({"recordings": array(ref("Recording"))}))},
    )
    d.op(
        "get",
        "/api/broadcasts/{bid}/recordings/{name}",
        "Download a recording",
        access="host",
        tag=t,
        errors=(404,),
        params=(BID, _param("name", "path", {"type": "string", "minLength": 1})),
        responses={200: ok({"type": "string", "format": "binary"}, media="video/x-matroska")},
    )
    d.op(
        "get",
        "/api/media/stats",
        "This process's relay counters",
        access="host",
        tag=t,
        responses={200: ok({"type": "object", "additionalProperties": {"type": "number"}})},
    )


def _pages(d: _Doc) -> None:
    """HTML pages: described so that they are fuzzed too; their errors are pages, not JSON."""
    html = {"text/html": {"schema": STR}}
    page = {"description": "the page", "content": html}
    not_found = {"description": "the not-found page", "content": html}
    busy = {"description": "a page that reloads itself while Redis is down", "content": html}
    for path, summary, params, extra in (
        ("/", "Upcoming and live broadcasts", (), {}),
        ("/b/{bid}", "The viewer page", (BID,), {404: not_found, 503: busy}),
        ("/b/{bid}/screen", "Full-screen QR code and title", (BID,), {404: not_found}),
        ("/host", "Host login or home", (), {}),
        ("/host/", "Host login or home", (), {}),
        (
            "/host/b/{bid}",
            "Host console (the login page without a session)",
            (BID,),
            {404: not_found},
        ),
    ):
        d.op(
            "get",
            path,
            summary,
            access="public",
            tag="pages",
            params=params,
            responses={200: page, **extra},
            error_json=False,
        )
    d.op(
        "get",
        "/b/{bid}/qr.svg",
        "The viewer link as a QR code",
        access="public",
        tag="pages",
        params=(BID,),
        errors=(404,),
        responses={200: ok(STR, media="image/svg+xml")},
    )
    d.op(
        "get",
        "/lang/{code}",
        "Choose the language, then go back (303 to `next`)",
        access="public",
        tag="pages",
        params=(
            _param("code", "path", {"type": "string", "minLength": 1}),
            _query("next", STR, "a path on this site"),
        ),
        responses={
            303: {
                "description": "redirect",
                "headers": {"Location": {"schema": STR, "required": True}},
            }
        },
    )


@cache
def document() -> dict[str, Any]:
    d = _Doc()
    _api(d)
    _pages(d)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Jobcast",
            "version": "1",
            "description": (
                "Live job cards, Q&A chat and applications for recruitment livestreams. Every "
                'error is `{"error": {"code", "message", "fields"?, "retry_after"?}}`. '
                "Cookie-authenticated writes need `X-CSRF-Token` and, when a browser sends an "
                "`Origin`, a same-site one. The live socket protocol is in docs/protocol.md."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": n}
            for n in (
                "auth",
                "broadcasts",
                "openings",
                "applications",
                "chat",
                "media",
                "meta",
                "pages",
            )
        ],
        "paths": d.paths,
        "components": {
            "schemas": _schemas(),
            "responses": {f"E{code}": _error(code) for code in _ERROR_TEXT},
            "securitySchemes": SECURITY_SCHEMES,
        },
        "x-jobcast-excluded": EXCLUDED,
    }


@routes.get("/api/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(document())


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
