"""Events for one viewer alone (the status of their own application, their interview), on
whichever process holds their sockets.

`tell_viewer` publishes on keys.VIEWER_PRIVATE, which every process holds on its bus; each
process writes the frame to its local sockets of that viewer id (of one broadcast, or of
every broadcast when `bid` is None) and to no other. Nothing goes into an event stream, so a
private event is never in a replay or a snapshot of anyone else; pub/sub is at-most-once, so
a page learns the current state from the API when it (re)connects, and the private events
keep it current while it stays connected. Host and moderator sockets never get them.

The type must be registered (core/event_types.py) with audience `socket`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web
from jobcast.core import keys
from jobcast.core.event_types import lookup
from jobcast.web.appkeys import BUS, HUB
from redis.asyncio import Redis

log = logging.getLogger("jobcast.private")


async def tell_viewer(
    redis: Redis, viewer_id: str, type_: str, data: dict[str, Any], *, bid: str | None = None
) -> None:
    """Send `{"type": type_, "data": data}` to the open sockets of `viewer_id` only."""
    if lookup(type_).audience != "socket":
        raise ValueError(f"{type_} is not a private (socket) event type")
    msg = {"viewer_id": viewer_id, "bid": bid, "event": {"type": type_, "data": data}}
    await redis.publish(keys.VIEWER_PRIVATE, orjson.dumps(msg))


def deliver(app: web.Application, payload: bytes) -> int:
    """Write a private event to this process's sockets of its viewer; returns how many."""
    try:
        msg = orjson.loads(payload)
        vid, bid, event = msg["viewer_id"], msg.get("bid"), msg["event"]
        raw = orjson.dumps(event)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return 0
    hub = app[HUB]
    groups = [hub.sockets.get(bid, ())] if bid is not None else list(hub.sockets.values())
    n = 0
    for socks in groups:
        for sock in list(socks):
            ctx = sock.meta.get("ctx")
            if ctx is None or ctx.viewer_id != vid or ctx.is_staff:
                continue
            sock.send_now(raw)
            n += 1
    return n


async def private_ctx(app: web.Application) -> AsyncIterator[None]:
    """Hold keys.VIEWER_PRIVATE on the bus while the app runs."""
    unlisten = await app[BUS].listen(
        keys.VIEWER_PRIVATE, lambda _channel, payload: deliver(app, payload)
    )
    yield
    await unlisten()
