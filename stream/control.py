"""Media requests between app processes (workers > 1), over Redis pub/sub.

A broadcast's media lives in the process that took its WHIP POST. A WHEP POST, or a DELETE,
that lands on another worker (SO_REUSEPORT spreads connections at random) is forwarded to the
owner's inbox channel; the owner answers on the asker's inbox. Each process listens on its
own inbox only, through the `subscribe` function it is given: the app's one pub/sub
connection (web/realtime/bus.py), which re-subscribes after Redis comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from jobcast.core import keys
from jobcast.core.errors import JobcastError, Unavailable
from jobcast.stream.egress import error_from_json, error_to_json
from redis.asyncio import Redis

log = logging.getLogger("jobcast.media")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class Subscribe(Protocol):
    """Hold `channel` for the life of the process, each message going to `on_message(channel,
    payload)`, resubscribed after Redis comes back; returns once subscribed (or after a bounded
    wait while Redis is away), with the function that lets the channel go."""

    def __call__(
        self, channel: str, on_message: Callable[[str, bytes], object], /
    ) -> Awaitable[Callable[[], Awaitable[None]]]: ...


def inbox(process: str) -> str:
    return f"{keys.MEDIA_CONTROL}:{process}"


@dataclass(eq=False)
class ControlChannel:
    """Requests to another process's inbox and their replies; `handler` answers this
    process's own inbox, which `subscribe` (the process's one bus) delivers."""

    redis: Redis
    process: str
    handler: Handler
    subscribe: Subscribe
    _ids: Iterator[int] = field(init=False, default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future[Any]] = field(init=False, default_factory=dict)
    _unsubscribe: Callable[[], Awaitable[None]] | None = field(init=False, default=None)
    _handlers: set[asyncio.Task[None]] = field(init=False, default_factory=set)

    async def start(self) -> None:
        self._unsubscribe = await self.subscribe(inbox(self.process), self._on_message)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            await self._unsubscribe()
            self._unsubscribe = None
        for t in list(self._handlers):
            t.cancel()

    async def request(self, process: str, msg: dict[str, Any], *, seconds: float = 15.0) -> Any:
        """Send `msg` to `process` and return its result (or raise its error)."""
        req = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[req] = fut
        try:
            body = orjson.dumps({**msg, "req": req, "reply_to": inbox(self.process)})
            receivers = await self.redis.publish(inbox(process), body)
            if not receivers:
                raise Unavailable(
                    "the process serving this stream is gone", code="media_owner_gone"
                )
            async with asyncio.timeout(seconds):
                return await fut
        except TimeoutError:
            raise Unavailable("the media process did not answer", code="media_timeout") from None
        finally:
            self._pending.pop(req, None)

    def _on_message(self, _channel: str, raw: bytes) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if msg.get("op") == "reply":
            fut = self._pending.get(msg.get("req"))
            if fut is not None and not fut.done():
                if msg.get("ok"):
                    fut.set_result(msg.get("result"))
                else:
                    fut.set_exception(error_from_json(msg.get("error") or {}))
            return
        task = asyncio.create_task(self._serve(msg))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve(self, msg: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"op": "reply", "req": msg.get("req")}
        try:
            reply["result"] = await self.handler(msg)
            reply["ok"] = True
        except JobcastError as e:
            reply["ok"] = False
            reply["error"] = error_to_json(e)
        except Exception as e:
            log.exception("media control request failed")
            reply["ok"] = False
            reply["error"] = error_to_json(
                JobcastError(f"media failure: {type(e).__name__}", code="media_error")
            )
        reply_to = msg.get("reply_to")
        if isinstance(reply_to, str) and reply_to.startswith(keys.MEDIA_CONTROL):
            with contextlib.suppress(Exception):
                await self.redis.publish(reply_to, orjson.dumps(reply))
