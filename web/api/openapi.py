"""The API contract: an OpenAPI 3.1 document for every JSON endpoint, WHIP/WHEP, health and
metrics, and the pages; served at `GET /api/openapi.json`.

Every body's schema comes from its pydantic model (core/contract.py exports them as
`components.schemas`): requests from the models that validate them, so the document states
what the validation accepts (lengths in characters after control characters are stripped,
and, with `anyOf`, the lenient forms: Chinese education labels, "8,000" as a salary, a list as
one comma-separated string); responses from the models of what is sent. Written here by hand
is only what no model holds: the operations with their status codes, who may call them, and
their parameters. tests/test_openapi.py keeps the document and the router in step, and
tests/test_fuzz.py sends generated requests built from it to a running app and checks every
answer against it.

Each operation carries `x-jobcast-access`, who may call it:
`public`, `viewer` (the signed viewer cookie, plus X-CSRF-Token on writes), `staff` (a host or
moderator session), `host` (a host session only), `stream-key` (WHIP's bearer key) or
`session-url` (the unguessable WHIP/WHEP resource URL from the POST's Location is the
credential).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from aiohttp import web
from jobcast.core.contract import REF, components
from jobcast.web.access.auth import CSRF_HEADER, SESSION_COOKIE, VIEWER_COOKIE
from jobcast.web.api import chat as chat_api
from jobcast.web.api import operations as ops
from jobcast.web.api import schemas as s
from jobcast.web.api.operations import (
    EXAMPLE_OPENING_ID,
    EXAMPLES,
    JSON,
    OPENING_EXAMPLE,
    Schema,
    ok,
    param,
)
from jobcast.web.jsonutil import json_response
from pydantic import BaseModel

routes = web.RouteTableDef()
__all__ = ["ACCESS", "CHAT_EXAMPLES", "EXAMPLE_OPENING_ID", "OPENING_EXAMPLE", "document"]

ACCESS = ("public", "viewer", "staff", "host", "stream-key", "session-url")
TAGS = ("auth", "broadcasts", "openings", "applications", "chat", "media", "meta", "pages")

# Routes the document leaves out on purpose, with the reason (tests/test_openapi.py reads it).
EXCLUDED = {
    "/ws/b/{bid}": "WebSocket upgrade: the socket protocol is in docs/protocol.md",
    "/ws/host/b/{bid}": "WebSocket upgrade: the socket protocol is in docs/protocol.md",
    "/static/{name}": "static files (scripts, styles, images)",
}
# Components other parts of the document name by name: the error shape of every error
# response, and the chat state and question the chat operations refer to.
NAMED = (s.Error, s.ChatState, s.Question)


def ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


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
    "mod.after_end": {"open": True},
    "chat.pin": {"id": "1"},
    "mod.words": {"add": ["加微信"], "remove": ["兼职"]},
}


# -- responses, security and parameters ------------------------------------------------------

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
    resp: Schema = {"description": _ERROR_TEXT[status], "content": {JSON: {"schema": s.Error}}}
    if status in (429, 503):
        resp["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "required": False}}
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


# Path parameters by name: every operation gets those its path names.
PATH_PARAMS = {
    name: param(name, "path", {"type": "string", "minLength": 1}, description)
    for name, description in (
        ("bid", "broadcast id"),
        ("stream", "broadcast id (HLS files: not `bid`, so no session is looked at)"),
        ("oid", "opening id"),
        ("aid", "application id"),
        (
            "sid",
            "the resource id from the POST's Location (for WHIP a secret, not the public "
            "`session`)",
        ),
        ("name", ""),
        ("code", ""),
        ("nid", "notice id"),
    )
}
BID = PATH_PARAMS["bid"]


class _Doc:
    """Collects operations into `paths`, and the models their bodies refer to."""

    def __init__(self) -> None:
        self.paths: dict[str, dict[str, Any]] = {}
        self.models: dict[str, type[BaseModel]] = {m.__name__: m for m in NAMED}

    def op(
        self,
        method: str,
        path: str,
        summary: str,
        responses: dict[int, Schema | type[BaseModel]],
        access: str = "public",
        *,
        tag: str,
        errors: tuple[int, ...] = (),
        params: tuple[Schema, ...] = (),
        body: Schema | type[BaseModel] | None = None,
        body_media: dict[str, Schema] | None = None,
        example: Any = None,
        route: str | None = None,
        error_json: bool = True,
        description: str = "",
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
        if description:
            op["description"] = description
        if route is not None:
            op["x-route"] = route
        given = {p["name"] for p in params}
        named = [PATH_PARAMS[n] for n in re.findall(r"{(\w+)}", path) if n not in given]
        if named or params:
            op["parameters"] = [*named, *params]
        codes = set(errors) | {503}
        if unsafe and access in ("host", "staff", "viewer", "public") and path.startswith("/api/"):
            codes.add(403)  # bad_origin, csrf
        if access in ("host", "staff", "viewer"):
            codes |= {401, 403}
        if body is not None or body_media is not None:
            content = body_media or {JSON: {"schema": body}}
            if example is None:
                example = EXAMPLES.get(f"{method} {path}")
            if example is not None and JSON in content:
                content[JSON]["example"] = example
            op["requestBody"] = {"required": True, "content": content}
            if JSON in content:
                codes |= {413, 415, 422}
        resp: dict[str, Any] = {
            str(k): ok(v) if isinstance(v, type) else v for k, v in sorted(responses.items())
        }
        for code in sorted(codes):
            resp.setdefault(
                str(code),
                {"$ref": f"#/components/responses/E{code}"} if error_json else {"description": ""},
            )
        op["responses"] = resp
        self.paths.setdefault(path, {})[method] = self._refs(op)

    def _refs(self, node: Any) -> Any:
        """`node` with each model in it replaced by a reference to its component."""
        if isinstance(node, type) and issubclass(node, BaseModel):
            if self.models.setdefault(node.__name__, node) is not node:
                # One name, one component: two models of one name would share a schema.
                raise ValueError(f"two models are named {node.__name__}")
            return ref(node.__name__)
        if isinstance(node, dict):
            return {k: self._refs(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self._refs(v) for v in node]
        return node

    def components(self) -> dict[str, Schema]:
        return components(*self.models.values())


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
    # its data model, the answer its reply model.
    for name, action in chat_api.STAFF.items():
        assert action.http is not None and action.reply is not None, name
        method, path = action.http
        d.op(
            method.lower(),
            path,
            action.summary,
            access=action.access,
            tag=t,
            params=(BID,),
            body=action.model,
            errors=(404, 409),
            route="/api/broadcasts/{bid}/chat/{action}",
            example=CHAT_EXAMPLES[name],
            responses={200: action.reply},
        )


@cache
def document() -> dict[str, Any]:
    d = _Doc()
    for section in (ops.auth, ops.broadcasts, ops.openings, ops.applications):
        section(d)
    _chat(d)
    ops.polls(d)
    ops.notifier(d)
    for section in (ops.media, ops.meta, ops.pages):
        section(d)
    errors = {f"E{code}": d._refs(_error(code)) for code in _ERROR_TEXT}
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
        "tags": [{"name": n} for n in TAGS],
        "paths": d.paths,
        "components": {
            "schemas": d.components(),
            "responses": errors,
            "securitySchemes": SECURITY_SCHEMES,
        },
        "x-jobcast-excluded": EXCLUDED,
    }


@routes.get("/api/openapi.json")
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(document())


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
