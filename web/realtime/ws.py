"""The viewer socket `/ws/b/{id}` and the host console socket `/ws/host/b/{id}`.

Protocol (docs/protocol.md): the server sends text frames, each a JSON array of events; the
client sends one JSON object per frame, `{"type": ..., "id": ..., "data": {...}}`, and gets an
`ack` or an `error` event carrying the same `id`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web
from jobcast.chat.actor import Actor
from jobcast.core.actions import Action
from jobcast.core.errors import Invalid, JobcastError, NotFound, RateLimited
from jobcast.core.events import parse_seq
from jobcast.web.access import auth
from jobcast.web.access.requests import client_ip, host_user, viewer_id
from jobcast.web.api import login
from jobcast.web.api.actions import RequestCaller
from jobcast.web.api.chat import CHAT
from jobcast.web.appkeys import (
    BROADCASTS,
    BUS,
    HUB,
    METRICS,
    SETTINGS,
    SIGNER,
    WS_ACTIONS,
    WS_IP_COUNTS,
)
from jobcast.web.errors import refusal_response
from jobcast.web.pages.i18n import page_lang
from jobcast.web.realtime.hub import Socket
from jobcast.web.redis_errors import Refusal, message, refusal_kind, retry_after

log = logging.getLogger("jobcast.ws")

NAME_MAX = 24
CLOSE_FLOOD = 4029
# How long a handshake waits for the bus's pub/sub connection (reconnecting after a Redis
# restart) before it is answered 503 instead of being upgraded.
BUS_WAIT = 2.0


@dataclass(slots=True)
class WsContext(RequestCaller):
    """Who is on the other end of a socket; the `Caller` of every action it sends."""

    socket: Socket | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TokenBucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 if a token was taken, else seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def error_event(code: str, message: str, id_: Any = None, **extra: Any) -> bytes:
    data = {"code": code, "message": message, **extra}
    ev: dict[str, Any] = {"type": "error", "data": data}
    if id_ is not None:
        ev["id"] = id_
    return orjson.dumps(ev)


def refusal_event(kind: Refusal, id_: Any = None) -> bytes:
    """The socket's form of a Redis refusal: `unavailable`, with the kind and when to retry."""
    return error_event("unavailable", message(kind), id_, redis=kind, retry_after=retry_after(kind))


async def _bus_ready(app: web.Application) -> bool:
    bus = app[BUS]
    if bus.connected.is_set():
        return True
    try:
        async with asyncio.timeout(BUS_WAIT):
            await bus.connected.wait()
    except TimeoutError:
        return False
    return True


def _parse_since(request: web.Request) -> tuple[int, int] | None:
    raw = request.query.get("since")
    if not raw:
        return None
    try:
        return parse_seq(raw)
    except ValueError:
        raise Invalid(
            "since must be a seq like 1700000000000-0", fields={"since": "bad seq"}
        ) from None


async def host_socket(request: web.Request) -> web.StreamResponse:
    user = auth.require_role(await host_user(request), host_only=False)
    return await viewer_socket(request, user=user)


async def viewer_socket(
    request: web.Request, user: auth.HostUser | None = None
) -> web.StreamResponse:
    """Serve one socket for its whole life (host consoles come through `host_socket`).

    Everything a viewer holds lives as long as the connection: this one coroutine reads, the
    hub writes from the fan-out, and no task is started per socket.
    """
    app = request.app
    settings = app[SETTINGS]
    metrics = app[METRICS]
    bid = request.match_info["bid"]
    # Everything that reads Redis before `ws.prepare` fails as a plain HTTP answer (the error
    # middleware makes a refusal 503 with Retry-After); after the 101 only socket frames can
    # say what went wrong, so nothing may escape from there to the middleware.
    if not await app[BROADCASTS].exists(bid):
        raise NotFound("no such broadcast", code="broadcast_not_found")
    since = _parse_since(request)
    ip = client_ip(request)
    counts: dict[str, int] = app[WS_IP_COUNTS]
    if counts.get(ip, 0) >= settings.ws_connections_per_ip:
        raise RateLimited(
            "too many connections from this address", code="too_many_connections", retry_after=10
        )
    # The viewer middleware may have minted an id for this request already; either way, a
    # browser without the cookie gets it on the 101 response so the id survives a reload.
    minted = auth.viewer_id(request, app[SIGNER]) is None
    vid = viewer_id(request) or auth.new_viewer_id()
    name = await app[CHAT].names.from_query(bid, request.query.get("name", ""), staff=bool(user))

    # Pings come from the hub's one heartbeat loop (no timer per socket); `_read_loop` answers
    # the peer's pings and notes when it last heard from it.
    ws = web.WebSocketResponse(
        heartbeat=None,
        # aiohttp closes the socket (1009) above this hard cap; between the setting and the cap
        # a frame gets a `too_large` error event and the connection lives on.
        max_msg_size=max(settings.ws_max_frame_bytes * 8, 64 * 1024),
        compress=False,
        autoping=False,
    )
    if minted:
        auth.set_viewer_cookie(request, ws, app[SIGNER], vid, settings)
    if not await _bus_ready(app):
        log.warning("socket refused: the bus is not connected", extra={"path": request.path})
        metrics.redis_refusals.labels("down").inc()
        return refusal_response("down")
    await ws.prepare(request)
    counts[ip] = counts.get(ip, 0) + 1

    sock = Socket(
        ws,
        bid,
        host=user is not None,
        queue_max=settings.ws_queue_events,
        request=request,
        metrics=metrics,
        frame_max=settings.ws_send_frame_bytes,
        close_timeout=settings.ws_close_timeout,
    )
    lang = page_lang(request)
    ctx = WsContext(
        app=app, bid=bid, viewer_id=vid, ip=ip, user=user, name=name, socket=sock, lang=lang
    )
    sock.meta["ctx"] = ctx
    hub = app[HUB]
    hub.start_heartbeat(settings.ws_heartbeat)
    gauge = metrics.host_sockets if user is not None else metrics.viewers
    gauge.inc()
    try:
        role = _role(user)
        sock.send_now(
            orjson.dumps(
                {
                    "type": "hello",
                    "data": {
                        "viewer_id": vid,
                        # what the room calls this viewer: the chosen name, or the default
                        "name": Actor(
                            vid,
                            ip,
                            name=name,
                            role=role,
                            username=user.username if user is not None else "",
                            lang=lang,
                        ).display_name,
                        "chosen": bool(name),
                        "role": role,
                    },
                }
            )
        )
        try:
            mode = await hub.join(sock, since)
        except Exception as e:
            await _refuse_join(ws, e, metrics)
            return ws
        sock.send_now(orjson.dumps({"type": "synced", "data": {"mode": mode}}))
        if user is not None:
            await login.close_if_revoked(app, sock, user)  # ended during the handshake
        await _read_loop(ws, ctx, sock)  # until the peer closes, or `sock.drop` closes it
        await sock.wait_closed()
    except Exception:
        # Past the 101 the middleware's HTTP answer would land inside the socket as garbage.
        log.exception("socket failed", extra={"path": request.path})
        if not ws.closed:
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal")
    finally:
        sock.stop()
        try:
            await hub.leave(sock)
        except Exception:
            log.exception("socket leave failed")
        gauge.dec()
        counts[ip] -= 1
        if counts[ip] <= 0:
            del counts[ip]
    return ws


async def _refuse_join(ws: web.WebSocketResponse, e: Exception, metrics: Any) -> None:
    """The join failed after the upgrade: one error event, then close.

    A Redis refusal (or the bus not answering) closes with 1013, try again later; the client
    reconnects with backoff and `since`. Anything else is a bug: `internal`, 1011.
    """
    kind = refusal_kind(e)
    close, reason = WSCloseCode.TRY_AGAIN_LATER, b"unavailable"
    if kind is not None:
        metrics.redis_refusals.labels(kind).inc()
        metrics.ws_errors.labels("unavailable").inc()
        frame = refusal_event(kind)
        log.warning("socket join refused", extra={"redis": kind, "error": str(e)})
    elif isinstance(e, JobcastError):
        metrics.ws_errors.labels(e.code).inc()
        frame = orjson.dumps({"type": "error", "data": e.to_dict()})
    else:
        log.exception("socket join failed")
        metrics.ws_errors.labels("internal").inc()
        frame = error_event("internal", "internal error")
        close, reason = WSCloseCode.INTERNAL_ERROR, b"internal"
    try:
        await ws.send_frame(b"[" + frame + b"]", WSMsgType.TEXT)
        await ws.close(code=close, message=reason)
    except (ConnectionError, RuntimeError):
        pass  # the peer is gone already


def _role(user: auth.HostUser | None) -> str:
    return user.role if user is not None else "viewer"


async def _read_loop(ws: web.WebSocketResponse, ctx: WsContext, sock: Socket) -> None:
    app = ctx.app
    settings = app[SETTINGS]
    metrics = app[METRICS]
    actions = app[WS_ACTIONS]
    bucket = TokenBucket(settings.ws_messages_per_second, settings.ws_burst)
    refused = 0
    clock = asyncio.get_running_loop().time
    while True:
        msg = await ws.receive()
        if sock.closed:  # closed from this side (drop, shutdown): `sock.wait_closed` follows
            return
        sock.seen = clock()
        if msg.type == WSMsgType.TEXT or msg.type == WSMsgType.BINARY:
            wait = bucket.take()
            if wait:
                refused += 1
                metrics.ws_errors.labels("rate_limited").inc()
                sock.send_now(
                    error_event("rate_limited", "too many messages", retry_after=round(wait, 2))
                )
                if refused > 3 * settings.ws_burst:
                    sock.drop("flood")
                    return
                continue
            refused = 0
            if len(msg.data) > settings.ws_max_frame_bytes:
                metrics.ws_errors.labels("too_large").inc()
                sock.send_now(
                    error_event("too_large", f"frame over {settings.ws_max_frame_bytes} bytes")
                )
                continue
            await _handle(msg.data, ctx, sock, actions, metrics)
        elif msg.type == WSMsgType.PING:
            await ws.pong(msg.data)
        elif msg.type != WSMsgType.PONG:
            # CLOSE, CLOSING, CLOSED or ERROR; aiohttp also closes (1009) on frames over
            # max_msg_size.
            return


async def _handle(
    data: str | bytes,
    ctx: WsContext,
    sock: Socket,
    actions: dict[str, Action[Any]],
    metrics: Any,
) -> None:
    id_: Any = None
    try:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise Invalid("frame is not JSON", code="bad_frame") from None
        if not isinstance(frame, dict):
            raise Invalid("frame must be a JSON object", code="bad_frame")
        id_ = frame.get("id")
        if id_ is not None and not (isinstance(id_, (int, str)) and len(str(id_)) <= 64):
            id_ = None
            raise Invalid("id must be a short string or number", code="bad_frame")
        type_ = frame.get("type")
        payload = frame.get("data", {})
        if not isinstance(type_, str) or not isinstance(payload, dict):
            raise Invalid("frame needs a string type and an object data", code="bad_frame")
        if type_ == "ping":
            reply: dict[str, Any] | None = {"t": payload.get("t")}
            out = {"type": "pong", "data": reply}
        else:
            builtin = _BUILTIN.get(type_)
            if builtin is not None:
                reply = await builtin(ctx, payload)
            else:
                action = actions.get(type_)
                if action is None:
                    raise Invalid(f"unknown type {type_[:40]!r}", code="unknown_type")
                reply = await action(ctx, payload)  # its access rule, its model, its handler
            out = {"type": "ack", "data": reply or {}}
        if id_ is not None:
            out["id"] = id_
        try:
            reply_frame = orjson.dumps(out)
        except orjson.JSONEncodeError:  # `ping` echoes `t`: nested past what orjson writes
            raise Invalid(
                "the reply cannot be encoded (nested too deeply)", code="bad_frame"
            ) from None
        sock.send_now(reply_frame)
    except JobcastError as e:
        metrics.ws_errors.labels(e.code).inc()
        body = e.to_dict()
        ev: dict[str, Any] = {"type": "error", "data": body}
        if id_ is not None:
            ev["id"] = id_
        sock.send_now(orjson.dumps(ev))
    except Exception as e:
        kind = refusal_kind(e)
        if kind is None:
            log.exception("ws action failed")
            metrics.ws_errors.labels("internal").inc()
            sock.send_now(error_event("internal", "internal error", id_))
            return
        log.warning("ws action refused", extra={"redis": kind, "error": str(e)})
        metrics.redis_refusals.labels(kind).inc()
        metrics.ws_errors.labels("unavailable").inc()
        sock.send_now(refusal_event(kind, id_))


async def _set_name(ctx: WsContext, data: dict[str, Any]) -> dict[str, Any]:
    # The rules for names (chat/names.py): cleaning, contacts, blocked words, staff names.
    name = await ctx.app[CHAT].names.check(ctx.bid, data.get("name"), staff=ctx.is_staff)
    ctx.name = name
    return {"name": name}


_BUILTIN = {"set_name": _set_name}
