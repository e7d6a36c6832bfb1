"""Employers of the host's organization, their verification, their recruiter accounts, and
the recruiter's own view (openings/employers.py; who may reach what: web/access/orgs.py).

    GET  /api/employers                        hosts: the organization's employer records
    POST /api/employers                        hosts: {name} -> the record (made if new)
    POST /api/employers/{eid}/verify           hosts: {verified, note}
    POST /api/employers/{eid}/recruiters       hosts: {username, password} -> a recruiter
    GET  /api/recruiter                        the recruiter: its employer's openings and
                                               the applications to them
    GET  /recruiter                            the recruiter's page
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from jobcast.core import keys
from jobcast.core.errors import Forbidden, Invalid
from jobcast.openings.employers import EmployerService
from jobcast.web.access import auth
from jobcast.web.access.orgs import ALL, DEFAULT
from jobcast.web.access.requests import host_user, read_json, require_host
from jobcast.web.api.openings import APPLICATIONS, OPENINGS
from jobcast.web.appkeys import BROADCASTS, REDIS
from jobcast.web.jsonutil import json_response
from jobcast.web.pages.views import render

routes = web.RouteTableDef()

EMPLOYERS = web.AppKey("employers", EmployerService)


def _org(user: auth.HostUser) -> str:
    return DEFAULT if user.org == ALL else user.org


async def _body(request: web.Request) -> dict[str, Any]:
    body = await read_json(request, limit=4096)
    if not isinstance(body, dict):
        raise Invalid("expected a JSON object", fields={"body": "must be an object"})
    return body


@routes.get("/api/employers")
async def list_employers(request: web.Request) -> web.Response:
    user = await require_host(request)
    return json_response({"items": await request.app[EMPLOYERS].all(_org(user))})


@routes.post("/api/employers")
async def add_employer(request: web.Request) -> web.Response:
    user = await require_host(request)
    body = await _body(request)
    record = await request.app[EMPLOYERS].ensure(_org(user), body.get("name"))
    return json_response(record, status=201)


@routes.post("/api/employers/{eid}/verify")
async def verify_employer(request: web.Request) -> web.Response:
    user = await require_host(request)
    body = await _body(request)
    verified = body.get("verified", True)
    if not isinstance(verified, bool):
        raise Invalid("bad verified", fields={"verified": "true or false"})
    record = await request.app[EMPLOYERS].verify(
        _org(user),
        request.match_info["eid"],
        verified=verified,
        note=body.get("note"),
        by=user.username,
    )
    return json_response(record)


@routes.post("/api/employers/{eid}/recruiters")
async def add_recruiter(request: web.Request) -> web.Response:
    """A recruiter account of the employer, in the host's organization (an existing account
    of that name is reset to it, its sessions ended, as `jobcast add-host` does)."""
    user = await require_host(request)
    org = _org(user)
    body = await _body(request)
    record = await request.app[EMPLOYERS].get(org, request.match_info["eid"])
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise Invalid("username and password required", fields={"username": "required"})
    redis = request.app[REDIS]
    existing = await redis.hget(keys.user(username.strip()), "org")
    if existing is not None and existing.decode() not in (org, ""):
        raise Invalid("that username is taken", fields={"username": "taken"})
    await auth.add_user(redis, username, password, "recruiter")
    from jobcast.openings.employers import name_key

    await redis.hset(
        keys.user(username.strip()),
        mapping={"org": org, "employer": record["id"], "employer_key": name_key(record["name"])},
    )
    return json_response(
        {"username": username.strip(), "role": "recruiter", "employer": record}, status=201
    )


@routes.get("/api/recruiter")
async def recruiter_view(request: web.Request) -> web.Response:
    user = await require_host(request, host_only=False)
    if not user.is_recruiter:
        raise Forbidden("for recruiter accounts", code="not_recruiter")
    svc = request.app[EMPLOYERS]
    employer = await svc.get(user.org, user.employer)
    openings = await svc.openings_of(user.org, user.employer_key)
    apps = request.app[APPLICATIONS]
    out = []
    for o in openings:
        _, items = await apps.list(o.broadcast_id, opening_id=o.id, limit=1000)
        out.append({"opening": o.public(), "applications": items})
    return json_response({"employer": employer, "openings": out})


@routes.get("/recruiter")
async def recruiter_page(request: web.Request) -> web.Response:
    user = await host_user(request)
    if user is None or not user.is_recruiter:
        raise web.HTTPFound("/host")
    return render(request, "recruiter.html", user=user)


async def _employers_ctx(app: web.Application) -> AsyncIterator[None]:
    svc = EmployerService(app[REDIS], app[BROADCASTS], app[OPENINGS])
    app[EMPLOYERS] = svc
    app[OPENINGS].employer_fields = svc.card_fields  # new cards of a verified employer
    yield


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_employers_ctx)
