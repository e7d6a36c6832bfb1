"""Media requests between app processes (workers > 1), over Redis pub/sub.

A broadcast's media lives in the process that took its WHIP POST. A WHEP POST, or a DELETE,
that lands on another worker (SO_REUSEPORT spreads connections at random) is forwarded to the
owner's inbox channel; the owner answers on the asker's inbox. Each process listens on its
own inbox only, with one pub/sub connection that re-subscribes after Redis comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from jobcast.core import keys
from jobcast.core.errors import JobcastError, Unavailable
from jobcast.stream.egress import error_from_json, error_to_json
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("jobcast.media")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def inbox(process: str) -> str:
    return f"{keys.MEDIA_CONTROL}:{process}"


class ControlChannel:
    def __init__(self, redis: Redis, process: str, handler: Handler) -> None:
        self.redis = redis
        self.process = process
        self.handler = handler
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._ready.wait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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

    async def _run(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as ps:
                    await ps.subscribe(inbox(self.process))
                    self._ready.set()
                    async for message in ps.listen():
                        if message.get("type") == "message":
                            self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError) as e:
                log.warning("media control channel lost; retrying", extra={"error": str(e)})
                await asyncio.sleep(1.0)

    def _on_message(self, raw: bytes) -> None:
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
