"""Chat, questions and moderation wired into the app: socket actions, JSON API, snapshot part
and the vote coalescer.

Viewers post, ask and vote over their socket. Hosts and moderators act over the host socket
(`mod.*`, `review.decide`, ...) or the JSON API; both call the same service functions.

A ban is enforced twice: the gate refuses every action of a banned viewer id or address, and
every process holds one pub/sub channel (keys.CHAT_KICK) on its bus, on which a ban closes the
viewer's open sockets (after an `error` event `banned`) and a time-out tells them `muted`
(web/realtime/kicks.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from jobcast.chat import actions as chat_actions
from jobcast.chat.actor import Actor
from jobcast.chat.config import ChatConfig
from jobcast.chat.service import ChatRoom
from jobcast.core.actions import Action, Caller, given
from jobcast.core.errors import NotFound
from jobcast.web.access.requests import host_user
from jobcast.web.api import schemas
from jobcast.web.api.actions import StaffActions, declare
from jobcast.web.api.openings import OPENINGS
from jobcast.web.appkeys import (
    BROADCASTS,
    EVENT_LOG,
    REDIS,
    SETTINGS,
    SNAPSHOT_PARTS,
)
from jobcast.web.jsonutil import json_response
from jobcast.web.runtime.settings import Settings

log = logging.getLogger("jobcast.chat")
routes = web.RouteTableDef()

# The chat room (the sockets check display names with it).
CHAT = web.AppKey("chat", ChatRoom)


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


def actor_of(caller: Caller) -> Actor:
    user = caller.user
    return Actor(
        viewer_id=caller.viewer_id,
        ip=caller.ip,
        name=caller.name,
        role=user.role if user is not None else "viewer",
        username=user.username if user is not None else "",
        lang=caller.lang,
    )


# -- viewer actions (the socket) --------------------------------------------------------------


async def _send(caller: Caller, data: chat_actions.ChatMessageInput) -> dict[str, Any]:
    return await caller.app[CHAT].messages.post(caller.bid, actor_of(caller), given(data))


async def _ask(caller: Caller, data: chat_actions.QuestionInput) -> dict[str, Any]:
    return await caller.app[CHAT].questions.ask(caller.bid, actor_of(caller), given(data))


async def _vote(caller: Caller, data: chat_actions.VoteInput) -> dict[str, Any]:
    return await caller.app[CHAT].questions.vote(caller.bid, actor_of(caller), data.id, data.up)


VIEWER = (
    Action(
        "chat.send", chat_actions.ChatMessageInput, "viewer", _send, summary="Post a chat message"
    ),
    Action("question.ask", chat_actions.QuestionInput, "viewer", _ask, summary="Ask a question"),
    Action("question.vote", chat_actions.VoteInput, "viewer", _vote, summary="Vote for a question"),
)


# -- host and moderator actions (the host socket and the JSON API) ---------------------------

_FAMILY = StaffActions("chat", CHAT, actor_of)
_staff = _FAMILY.action


# Each is served by the host socket and by `POST /api/broadcasts/{bid}/chat/<name>`.
STAFF: dict[str, Action[Any]] = {
    a.name: a
    for a in (
        _staff(
            "chat.hide",
            chat_actions.ItemRef,
            "Hide a chat message",
            chat_actions.Hidden,
            lambda r, b, d, a: r.messages.hide(b, d.id, a),
        ),
        _staff(
            "question.answer",
            chat_actions.AnswerInput,
            "Answer a question (answered false re-opens it)",
            schemas.Question,
            lambda r, b, d, a: r.questions.answer(b, d.id, given(d), a),
        ),
        _staff(
            "question.highlight",
            chat_actions.HighlightInput,
            "Show one question on every screen (id null clears)",
            chat_actions.Highlighted,
            lambda r, b, d, a: r.questions.highlight(b, d.id, a),
        ),
        _staff(
            "question.hide",
            chat_actions.ItemRef,
            "Hide a question",
            chat_actions.Hidden,
            lambda r, b, d, a: r.questions.hide(b, d.id, a),
        ),
        _staff(
            "question.restore",
            chat_actions.ItemRef,
            "Restore a hidden question",
            schemas.Question,
            lambda r, b, d, a: r.questions.restore(b, d.id, a),
        ),
        _staff(
            "review.decide",
            chat_actions.ReviewDecision,
            "Approve or reject a held message or question",
            chat_actions.Decided,
            lambda r, b, d, a: r.decide(b, given(d), a),
        ),
        _staff(
            "mod.timeout",
            chat_actions.TimeoutInput,
            "Time a viewer out",
            chat_actions.Muted,
            lambda r, b, d, a: r.moderation.timeout(b, given(d), a),
        ),
        _staff(
            "mod.untimeout",
            chat_actions.Who,
            "End a viewer's time-out",
            chat_actions.ViewerRef,
            lambda r, b, d, a: r.moderation.lift_timeout(b, given(d), a),
        ),
        _staff(
            "mod.ban",
            chat_actions.BanInput,
            "Ban a viewer (and the address it posted from, unless ip is false)",
            chat_actions.Banned,
            lambda r, b, d, a: r.moderation.ban(b, given(d), a),
        ),
        _staff(
            "mod.unban",
            chat_actions.Who,
            "Lift a ban",
            chat_actions.ViewerRef,
            lambda r, b, d, a: r.moderation.lift_ban(b, given(d), a),
        ),
        _staff(
            "mod.slow_mode",
            chat_actions.SlowModeInput,
            "Seconds between two messages of one viewer (0: off)",
            chat_actions.SlowModeSet,
            lambda r, b, d, a: r.moderation.slow_mode(b, given(d), a),
        ),
        _staff(
            "chat.pin",
            chat_actions.PinInput,
            "Pin a message above the chat (id null takes it down)",
            chat_actions.MessagePinned,
            lambda r, b, d, a: r.messages.pin(b, d.id, a),
        ),
        _staff(
            "mod.after_end",
            chat_actions.AfterEndInput,
            "Keep chat and questions open after the broadcast ends (default: they close)",
            chat_actions.AfterEndSet,
            lambda r, b, d, a: r.moderation.after_end(b, given(d), a),
        ),
        _staff(
            "mod.words",
            chat_actions.WordsInput,
            "Change the blocked words: set replaces, add and remove edit",
            chat_actions.BlockedWords,
            lambda r, b, d, a: r.moderation.words(b, given(d), a),
        ),
    )
}
ACTIONS: tuple[Action[Any], ...] = (*VIEWER, *STAFF.values())


# -- JSON API ---------------------------------------------------------------------------------


# `POST /api/broadcasts/{id}/chat/<action>` with the action's data as the JSON body, for every
# host/moderator action (`mod.ban`, `question.answer`, ...).
_FAMILY.serve(routes)


@routes.get("/api/broadcasts/{bid}/chat")
async def chat_state(request: web.Request) -> web.Response:
    """The chat part of the snapshot: the host view for a logged-in host or moderator."""
    bid = request.match_info["bid"]
    await request.app[BROADCASTS].get(bid)
    host = await host_user(request) is not None
    return json_response(await request.app[CHAT].snapshot(bid, host))


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
    yield
    await room.messages.close()
    await room.votes.close()


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)

    async def part(bid: str, host: bool) -> dict[str, Any]:
        return await app[CHAT].snapshot(bid, host)

    app[SNAPSHOT_PARTS].append(part)
    declare(app, *ACTIONS)
    app.cleanup_ctx.append(_chat_ctx)
