"""Organizations: an employment center, or a school's career office, owns its broadcasts and
its host and moderator accounts. A host sees only their organization's broadcasts and
applicants; an operator (an account of the organization `*`) sees and manages all of them.

Data from before organizations belongs to the organization `default`: a broadcast or an
account without one is in it, so a single-center install changes nothing.

The check is one middleware. Which routes it guards comes from the API document (every
operation whose access is `host` or `staff`) plus the host console page and the host socket,
so a new staff route is guarded the day it is documented. A broadcast of another organization
answers exactly as one that does not exist (404), so ids of other centers reveal nothing.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from jobcast.core import keys
from jobcast.core.broadcasts import Broadcast
from jobcast.core.errors import Invalid, NotFound
from jobcast.web.access.auth import HostUser
from jobcast.web.access.requests import RECRUITER_OK, USER_KEY, host_user
from jobcast.web.appkeys import REDIS
from redis.asyncio import Redis

DEFAULT = "default"
ALL = "*"  # the operator's organization: every organization
ORG_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")

# Routes outside the API document that staff reach for one broadcast.
EXTRA_GUARDED = {("GET", "/ws/host/b/{bid}")}
# The host console page checks for itself (`check_broadcast`), to answer with its 404 page.
SELF_CHECKED = {"/host/b/{bid}"}


def org_key(org: str) -> str:
    return f"{keys.PREFIX}:org:{org}"


ORG_INDEX = f"{keys.PREFIX}:orgs"


async def create_org(redis: Redis, org: str, name: str) -> None:
    if not ORG_ID.match(org):
        raise Invalid("bad organization id", fields={"org": "a-z, 0-9 and -, at most 32"})
    name = name.strip() or org
    await redis.hset(org_key(org), mapping={"id": org, "name": name[:100]})
    await redis.sadd(ORG_INDEX, org)


async def list_orgs(redis: Redis) -> list[dict[str, str]]:
    ids = sorted({DEFAULT, *(o.decode() for o in await redis.smembers(ORG_INDEX))})
    out = []
    for org in ids:
        h = await redis.hgetall(org_key(org))
        out.append({"id": org, "name": h.get(b"name", org.encode()).decode()})
    return out


async def org_exists(redis: Redis, org: str) -> bool:
    return org in (DEFAULT, ALL) or bool(await redis.sismember(ORG_INDEX, org))


async def set_user_org(redis: Redis, username: str, org: str) -> None:
    if not await org_exists(redis, org):
        raise Invalid(f"no organization {org!r}", fields={"org": "create it with jobcast orgs add"})
    await redis.hset(keys.user(username), "org", org)


async def broadcast_org(redis: Redis, bid: str) -> str:
    raw = await redis.hget(keys.broadcast(bid), "org")
    return raw.decode() if raw else DEFAULT


async def set_broadcast_org(redis: Redis, bid: str, org: str) -> None:
    await redis.hset(keys.broadcast(bid), "org", org)


async def caller_org(request: web.Request) -> str | None:
    """The logged-in staff member's organization (None without a staff session)."""
    user = await host_user(request)
    return None if user is None else user.org


async def check_broadcast(request: web.Request, bid: str) -> None:
    """NotFound unless the caller's organization owns `bid` (or the caller is an operator)."""
    if not await _owns(request, bid):
        raise NotFound("no such broadcast", code="broadcast_not_found")


async def visible(request: web.Request, items: list[Broadcast]) -> list[Broadcast]:
    """Of `items`, those the caller's organization may see as staff."""
    org = await caller_org(request)
    return [b for b in items if org in (None, ALL) or b.org == org]


def guarded_routes() -> set[tuple[str, str]]:
    from jobcast.web.api.openapi import document

    out = set(EXTRA_GUARDED)
    for path, item in document()["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and op.get("x-jobcast-access") in ("host", "staff"):
                out.add((method.upper(), op.get("x-route", path)))
    return out


# -- recruiters ---------------------------------------------------------------------------
#
# A recruiter (web/access/auth.py, role `recruiter`) is bound to one employer of its
# organization. Of the staff routes it reaches only these, and of their resources only its
# employer's: an opening whose employer's name key is the recruiter's, an application to such
# an opening, that opening's interview slots. Everything else about a resource (another
# employer's, other host routes, moderation, pins, broadcast changes, the host socket and
# console) answers 404 as a missing one would; staff routes about no resource answer 403
# (`require_host`). On public routes a recruiter is a viewer.
_SLOTS = "/api/broadcasts/{bid}/openings/{oid}/slots"
RECRUITER_ROUTES = {
    ("GET", "/api/recruiter"),
    ("GET", "/api/broadcasts/{bid}/applications/{aid}"),
    ("PATCH", "/api/broadcasts/{bid}/applications/{aid}"),
    ("POST", "/api/broadcasts/{bid}/applications/{aid}/invite"),
    ("GET", _SLOTS),
    ("POST", _SLOTS),
    ("PATCH", _SLOTS + "/{sid}"),
    ("DELETE", _SLOTS + "/{sid}"),
}
# Routes where a recruiter stays who it is (not a viewer): who am I, log out, its page.
RECRUITER_SELF = {"/api/me", "/api/logout", "/recruiter", "/api/login"}


async def recruiter_allows(request: web.Request, user: HostUser, method: str, route: str) -> bool:
    """The one decision for a recruiter on a staff route: True when the route is one a
    recruiter may use and every resource it names is of the recruiter's employer (in a
    broadcast of the recruiter's organization)."""
    if (method, route) not in RECRUITER_ROUTES or not user.employer_key:
        return False
    info = request.match_info
    bid = info.get("bid")
    if bid is None:
        return True  # the recruiter's own lists: they select by employer themselves
    redis = request.app[REDIS]
    if await broadcast_org(redis, bid) != user.org:
        return False
    oid = info.get("oid")
    if oid is None and "aid" in info:
        raw = await redis.hget(keys.application(bid, info["aid"]), "opening_id")
        oid = raw.decode() if raw else None
    if oid is None:
        return False
    from jobcast.openings.employers import employer_key_of
    from jobcast.web.api.openings import OPENINGS

    try:
        opening = await request.app[OPENINGS].get(bid, oid, include_hidden=True)
    except NotFound:
        return False
    return employer_key_of(opening) == user.employer_key


async def _recruiter_gate(
    request: web.Request, user: HostUser, method: str, route: str, guarded: bool
) -> None:
    info = request.match_info
    if route in RECRUITER_SELF:
        return
    if route in ("/host", "/host/"):
        raise web.HTTPFound("/recruiter")
    if guarded or route in SELF_CHECKED:
        if await recruiter_allows(request, user, method, route):
            request[RECRUITER_OK] = True
            return
        if "oid" in info and "bid" not in info:
            raise NotFound("no such opening", code="opening_not_found")
        if "bid" in info:
            raise NotFound("no such broadcast", code="broadcast_not_found")
        if info:  # another path parameter (an employer, a notice): as a missing one
            raise NotFound("not found", code="not_found")
        return  # about no resource: require_host answers 403
    request[USER_KEY] = None  # a public route: a viewer like any other


def make_middleware() -> Any:
    guarded = guarded_routes()

    @web.middleware
    async def org_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        info = request.match_info
        resource = info.route.resource
        canonical = resource.canonical if resource is not None else ""
        method = "GET" if request.method == "HEAD" else request.method
        home = canonical in ("/host", "/host/")
        if "bid" in info or "oid" in info or (method, canonical) in guarded or home:
            try:
                user = await host_user(request)
            except Exception:
                user = None
            if user is not None and user.is_recruiter:
                is_guarded = (method, canonical) in guarded
                await _recruiter_gate(request, user, method, canonical, is_guarded)
                return await handler(request)
        if (
            ("bid" in info or "oid" in info)
            and canonical not in SELF_CHECKED
            and await _org_or_none(request, (method, canonical) in guarded) not in (None, ALL)
        ):
            bid = info.get("bid")
            if bid is None:
                from jobcast.web.api.openings import OPENINGS  # the feature owns the key

                try:
                    bid = await request.app[OPENINGS].owner(info["oid"])
                except NotFound:
                    bid = None  # the handler answers opening_not_found
            if bid is not None and not await _owns(request, bid):
                if (method, canonical) in guarded:
                    if "bid" in info:
                        raise NotFound("no such broadcast", code="broadcast_not_found")
                    raise NotFound("no such opening", code="opening_not_found")
                # A public route (the viewer page, the chat, the openings list): here the
                # caller is a viewer like any other, without the staff view of it.
                request[USER_KEY] = None
        return await handler(request)

    return org_middleware


async def _org_or_none(request: web.Request, guarded: bool) -> str | None:
    """The caller's organization. When Redis fails on a public route: None, and the caller is
    a viewer there, so the handler answers in its own way (the viewer page has a page for
    that). A guarded route fails."""
    try:
        return await caller_org(request)
    except Exception:
        if guarded:
            raise
        request[USER_KEY] = None  # and no staff view, should Redis answer again meanwhile
        return None


async def _owns(request: web.Request, bid: str) -> bool:
    org = await caller_org(request)
    return org in (None, ALL) or await broadcast_org(request.app[REDIS], bid) == org
