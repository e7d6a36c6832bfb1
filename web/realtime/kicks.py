"""Bans, time-outs and ended sessions reach the open sockets of every process.

A ban or a time-out (chat/moderation.py) and a session revocation (web/access/auth.py
`revoke`) are published on one channel, keys.CHAT_KICK, which every process holds on its bus.
A ban closes the viewer's local sockets after an `error` event `banned`, a time-out tells them
`muted`, and a revocation closes the host sockets of that session or account.

Pub/sub is at-most-once: a revocation published while the bus was away is lost, so each time
Redis confirms the subscription (at start and after every reconnect) every host socket's
session is checked again.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson
from aiohttp import web
from jobcast.core import keys
from jobcast.web.access import auth
from jobcast.web.api import login
from jobcast.web.appkeys import BUS, HUB
from jobcast.web.realtime.ws import error_event

log = logging.getLogger("jobcast.chat")


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
    extra = {k: v for k, v in msg.items() if k not in ("bid", "viewer_id", "action", "code")}
    text = {
        "banned": "you are banned from this room",
        "unmuted": "your time-out was lifted: you may post again",
        "rejected": f"a moderator did not approve your {msg.get('item', 'message')}",
    }.get(code, "you are timed out")
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


async def recheck_sessions(app: web.Application) -> None:
    """Revocations published while the bus was away are lost: check every host socket."""
    try:
        await login.recheck_staff_sockets(app)
    except Exception as e:
        log.warning("could not recheck host sessions", extra={"error": str(e)})


async def kicks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Hold keys.CHAT_KICK on the bus while the app runs."""
    unlisten = await app[BUS].listen(
        keys.CHAT_KICK,
        lambda _channel, payload: apply_kick(app, payload),
        on_subscribed=lambda: recheck_sessions(app),
    )
    yield
    await unlisten()
