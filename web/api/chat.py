"""Chat, questions and moderation wired into the app: socket actions, JSON API, snapshot part,
the vote coalescer and the listener that acts on bans and time-outs.

Viewers post, ask and vote over their socket. Hosts and moderators act over the host socket
(`mod.*`, `review.decide`, ...) or the JSON API; both call the same service functions.

A ban is enforced twice: the gate refuses every action of a banned viewer id or address, and
every process listens on one pub/sub channel (keys.CHAT_KICK) on which a ban closes the
viewer's open sockets (after an `error` event `banned`) and a time-out tells them `muted`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from jobcast.chat.actor import Actor
from jobcast.chat.config import ChatConfig
from jobcast.chat.service import ChatRoom
from jobcast.core import keys
from jobcast.core.errors import Forbidden, Invalid, NotFound
from jobcast.web.access import auth
from jobcast.web.access.requests import client_ip, host_user, read_json, require_host, viewer_id
from jobcast.web.api import login
from jobcast.web.appkeys import (
    BROADCASTS,
    CHAT,
    EVENT_LOG,
    HUB,
    OPENINGS,
    REDIS,
    SETTINGS,
    SNAPSHOT_PARTS,
    WS_ACTIONS,
)
from jobcast.web.jsonutil import json_response
from jobcast.web.realtime.pubsub import PubSubConnection
from jobcast.web.realtime.ws import WsContext, error_event
from jobcast.web.runtime.settings import Settings

log = logging.getLogger("jobcast.chat")
routes = web.RouteTableDef()

# A staff action: (room, broadcast id, data, actor) -> reply.
StaffAction = Callable[[ChatRoom, str, dict[str, Any], Actor], Awaitable[dict[str, Any]]]


def chat_config(s: Settings) -> ChatConfig:
    return ChatConfig(
        max_chars=s.chat_max_chars,
        recent=s.chat_recent,
        rate=s.chat_rate,
        burst=s.chat_burst,
        ip_rate=s.chat_ip_rate,
        ip_burst=s.chat_ip_burst,
        review_questions=s.chat_review_questions,
        review_contacts=s.chat_review_contacts,
        batch_s=s.chat_batch_ms / 1000,
        votes_interval=s.qa_votes_interval,
        votes_per_address=s.qa_votes_per_address,
    )


def _id(data: dict[str, Any], name: str = "id") -> Any:
    if name not in data:
        raise Invalid(f"{name} is required", fields={name: "required"})
    return data[name]


# Host and moderator actions, shared by the host socket and the JSON API.
STAFF: dict[str, StaffAction] = {
    "chat.hide": lambda r, b, d, a: r.messages.hide(b, _id(d), a),
    "question.answer": lambda r, b, d, a: r.questions.answer(b, _id(d), d, a),
    "question.highlight": lambda r, b, d, a: r.questions.highlight(b, d.get("id"), a),
    "question.hide": lambda r, b, d, a: r.questions.hide(b, _id(d), a),
    "question.restore": lambda r, b, d, a: r.questions.restore(b, _id(d), a),
    "review.decide": lambda r, b, d, a: r.decide(b, d, a),
    "mod.timeout": lambda r, b, d, a: r.moderation.timeout(b, d, a),
    "mod.untimeout": lambda r, b, d, a: r.moderation.lift_timeout(b, d, a),
    "mod.ban": lambda r, b, d, a: r.moderation.ban(b, d, a),
    "mod.unban": lambda r, b, d, a: r.moderation.lift_ban(b, d, a),
    "mod.slow_mode": lambda r, b, d, a: r.moderation.slow_mode(b, d, a),
    "mod.words": lambda r, b, d, a: r.moderation.words(b, d, a),
}


def actor_of(ctx: WsContext) -> Actor:
    user = ctx.user
    return Actor(
        viewer_id=ctx.viewer_id,
        ip=ctx.ip,
        name=ctx.name,
        role=user.role if user is not None else "viewer",
        username=user.username if user is not None else "",
    )


# -- socket actions ---------------------------------------------------------------------------


async def ws_chat_send(ctx: WsContext, data: dict[str, Any]) -> dict[str, Any]:
    return await ctx.app[CHAT].messages.post(ctx.bid, actor_of(ctx), data)


async def ws_question_ask(ctx: WsContext, data: dict[str, Any]) -> dict[str, Any]:
    return await ctx.app[CHAT].questions.ask(ctx.bid, actor_of(ctx), data)


async def ws_question_vote(ctx: WsContext, data: dict[str, Any]) -> dict[str, Any]:
    return await ctx.app[CHAT].questions.vote(
        ctx.bid, actor_of(ctx), _id(data), data.get("up", True)
    )


def ws_staff(name: str) -> Callable[[WsContext, dict[str, Any]], Awaitable[dict[str, Any]]]:
    action = STAFF[name]

    async def handler(ctx: WsContext, data: dict[str, Any]) -> dict[str, Any]:
        if not ctx.is_staff:
            raise Forbidden("hosts and moderators only", code="staff_only")
        return await action(ctx.app[CHAT], ctx.bid, data, actor_of(ctx))

    return handler


# -- JSON API ---------------------------------------------------------------------------------


async def _staff_actor(request: web.Request) -> tuple[str, Actor]:
    user = await require_host(request, host_only=False)
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)
    actor = Actor(
        viewer_id=viewer_id(request) or "",
        ip=client_ip(request),
        role=user.role,
        username=user.username,
    )
    return bid, actor


@routes.post("/api/broadcasts/{bid}/chat/{action}")
async def staff_action(request: web.Request) -> web.Response:
    """`POST /api/broadcasts/{id}/chat/<action>` with the action's data as the JSON body, for
    every host/moderator action (`mod.ban`, `question.answer`, ...)."""
    name = request.match_info["action"]
    action = STAFF.get(name)
    if action is None:
        raise NotFound("no such chat action", code="unknown_action")
    bid, actor = await _staff_actor(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise Invalid("expected a JSON object", fields={"body": "must be an object"})
    return json_response(await action(request.app[CHAT], bid, body, actor))


@routes.get("/api/broadcasts/{bid}/chat")
async def chat_state(request: web.Request) -> web.Response:
    """The chat part of the snapshot: the host view for a logged-in host or moderator."""
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)
    host = await host_user(request) is not None
    return json_response(await request.app[CHAT].snapshot(bid, host))


# -- bans and time-outs reach open sockets ----------------------------------------------------


def apply_kick(app: web.Application, payload: bytes) -> int:
    """Tell (and on a ban, close) the local sockets of the viewer named in `payload`."""
    try:
        msg = orjson.loads(payload)
        if isinstance(msg, dict) and msg.get("kind") == auth.REVOKE_KIND:  # a session ended
            return login.close_revoked_sockets(app, msg)
        bid, vid, code = msg["bid"], msg["viewer_id"], msg["code"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return 0
    close = msg.get("action") == "close"
    extra = {"until": msg["until"]} if "until" in msg else {}
    text = "you are banned from this room" if code == "banned" else "you are timed out"
    n = 0
    for sock in list(app[HUB].sockets.get(bid, ())):
        ctx = sock.meta.get("ctx")
        if ctx is None or ctx.viewer_id != vid or ctx.is_staff:
            continue
        sock.send_now(error_event(code, text, **extra))
        if close:
            sock.drop(code)
        n += 1
    return n


async def _recheck_sessions(app: web.Application) -> None:
    """Revocations published while the listener was away are lost: check every host socket."""
    try:
        await login.recheck_staff_sockets(app)
    except Exception as e:
        log.warning("could not recheck host sessions", extra={"error": str(e)})


async def _kick_listener(app: web.Application) -> None:
    url = app[SETTINGS].redis_url
    delay = 0.05
    while True:
        conn: PubSubConnection | None = None
        try:
            conn = await PubSubConnection.open(url)
            conn.subscribe(keys.CHAT_KICK)
            delay = 0.05
            while True:
                try:
                    async with asyncio.timeout(10):
                        kind, _, payload = await conn.read()
                except TimeoutError:
                    conn.ping()
                    async with asyncio.timeout(10):
                        kind, _, payload = await conn.read()
                if kind == b"message":
                    apply_kick(app, payload)
                elif kind == b"subscribe":
                    await _recheck_sessions(app)
        except (OSError, ConnectionError, TimeoutError) as e:
            log.warning("kick listener reconnecting", extra={"error": str(e)})
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 5.0)
        finally:
            if conn is not None:
                await conn.close()


async def _chat_ctx(app: web.Application) -> AsyncIterator[None]:
    async def opening_exists(bid: str, oid: str) -> bool:
        service = app.get(OPENINGS)
        if service is None:
            return True  # openings not wired: the id's shape was checked
        try:
            await service.get(bid, oid)
        except NotFound:
            return False
        return True

    room = ChatRoom(
        app[REDIS], app[EVENT_LOG], chat_config(app[SETTINGS]), opening_lookup=opening_exists
    )
    app[CHAT] = room
    room.votes.start()
    listener = asyncio.create_task(_kick_listener(app), name="jobcast-chat-kicks")
    yield
    listener.cancel()
    try:
        await listener
    except asyncio.CancelledError:
        pass
    await room.messages.close()
    await room.votes.close()


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)

    async def part(bid: str, host: bool) -> dict[str, Any]:
        return await app[CHAT].snapshot(bid, host)

    app[SNAPSHOT_PARTS].append(part)
    actions = app[WS_ACTIONS]
    actions["chat.send"] = ws_chat_send
    actions["question.ask"] = ws_question_ask
    actions["question.vote"] = ws_question_vote
    for name in STAFF:
        actions[name] = ws_staff(name)
    app.cleanup_ctx.append(_chat_ctx)
