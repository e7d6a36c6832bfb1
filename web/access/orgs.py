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
from jobcast.web.access.requests import USER_KEY, host_user
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


def make_middleware() -> Any:
    guarded = guarded_routes()

    @web.middleware
    async def org_middleware(request: web.Request, handler: web.Handler) -> web.StreamResponse:
        info = request.match_info
        resource = info.route.resource
        canonical = resource.canonical if resource is not None else ""
        method = "GET" if request.method == "HEAD" else request.method
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
