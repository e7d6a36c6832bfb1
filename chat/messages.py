"""Chat messages: post (through the gate, maybe into the review queue), hide, recent list.

Approved messages live in a hash by id, with two capped id lists: every approved id (so that
hiding and moderating by message id work for the last `keep`), and the visible ones (what
the snapshot shows). Ids are small integers from a per-broadcast counter.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from jobcast.chat.actor import Actor
from jobcast.chat.config import ChatConfig
from jobcast.chat.errors import Held
from jobcast.chat.filters import hold_reason
from jobcast.chat.gate import Gate
from jobcast.chat.review import ReviewQueue
from jobcast.core import keys, tasks
from jobcast.core.errors import Invalid, NotFound
from jobcast.core.events import EventLog, pipeline_script, queue_script
from jobcast.core.text import clean
from jobcast.core.tx import transact
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

# Append one approved message; forget the ones that fall off the kept list.
APPEND_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('RPUSH', KEYS[2], ARGV[1])
local over = redis.call('LLEN', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local old = redis.call('LPOP', KEYS[2], over)
  redis.call('HDEL', KEYS[1], unpack(old))
  redis.call('HDEL', KEYS[4], unpack(old))
end
redis.call('RPUSH', KEYS[3], ARGV[1])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[4]), -1)
return 1
"""
_APPEND = pipeline_script(APPEND_LUA)


def now_ms() -> int:
    return int(time.time() * 1000)


def message_text(data: dict[str, Any], max_chars: int) -> str:
    """The cleaned text, or Invalid `too_long` / `invalid` (length in characters)."""
    raw = data.get("text")
    if not isinstance(raw, str):
        raise Invalid("text must be a string", fields={"text": "required"})
    text = clean(raw)
    if not text:
        raise Invalid("empty message", fields={"text": "required"})
    if len(text) > max_chars:
        raise Invalid(
            f"at most {max_chars} characters",
            code="too_long",
            fields={"text": f"at most {max_chars} characters"},
            extra={"max": max_chars},
        )
    return text


def public_message(m: dict[str, Any]) -> dict[str, Any]:
    """What the room sees of a message: never the viewer id."""
    return {"id": m["id"], "name": m["name"], "role": m["role"], "text": m["text"], "ts": m["ts"]}


def append_message(pipe: Pipeline, bid: str, m: dict[str, Any], config: ChatConfig) -> None:
    queue_script(
        pipe,
        _APPEND,
        (keys.chat_messages(bid), keys.chat_ids(bid), keys.chat_recent(bid), keys.chat_hidden(bid)),
        (m["id"], orjson.dumps(m), config.keep, config.recent),
    )


def publish_messages(
    pipe: Pipeline, log: EventLog, bid: str, msgs: list[dict[str, Any]], config: ChatConfig
) -> None:
    """Queue the writes and the one `chat.messages` event for `msgs` in a MULTI pipeline."""
    for m in msgs:
        append_message(pipe, bid, m, config)
    log.add_to(pipe, bid, "chat.messages", {"messages": [public_message(m) for m in msgs]})


@dataclass(eq=False)
class ChatService:
    """Posting batches: the messages a process accepts for a broadcast within `batch_s` are
    written and published together, as one `chat.messages` event. A busy room (100 messages
    a second) then costs the fan-out 1/batch_s events a second, not 100, for at most batch_s
    of extra latency. Each sender's reply waits until its batch is written and published."""

    redis: Redis
    log: EventLog
    config: ChatConfig
    gate: Gate
    review: ReviewQueue
    _pending: dict[str, list[tuple[dict[str, Any], asyncio.Future[None]]]] = field(
        init=False, default_factory=dict
    )
    _flushers: dict[str, asyncio.Task[None]] = field(init=False, default_factory=dict)

    async def _publish(self, bid: str, m: dict[str, Any]) -> None:
        if self.config.batch_s <= 0:
            async with self.redis.pipeline(transaction=True) as pipe:
                publish_messages(pipe, self.log, bid, [m], self.config)
                await pipe.execute()
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(bid, []).append((m, fut))
        if bid not in self._flushers:
            self._flushers[bid] = asyncio.create_task(self._flush_later(bid))
        await fut

    async def _flush_later(self, bid: str) -> None:
        try:
            await asyncio.sleep(self.config.batch_s)
        finally:
            self._flushers.pop(bid, None)
            batch = self._pending.pop(bid, [])
            if batch:
                await self._flush(bid, batch)

    async def _flush(
        self, bid: str, batch: list[tuple[dict[str, Any], asyncio.Future[None]]]
    ) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                publish_messages(pipe, self.log, bid, [m for m, _ in batch], self.config)
                await pipe.execute()
        except Exception as e:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    async def close(self) -> None:
        """Publish what is pending now (shutdown)."""
        await tasks.stop_all(list(self._flushers.values()))

    async def post(self, bid: str, actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        """Post a message; returns its public form. Raises Held when it waits for review."""
        text = message_text(data, self.config.max_chars)
        mid = await self.gate.admit(bid, actor, text, counter=keys.chat_seq(bid), slow=True)
        m = {
            "id": mid,
            "vid": actor.viewer_id,
            "name": actor.display_name,
            "role": actor.role,
            "text": text,
            "ts": now_ms(),
        }
        reason = None if actor.is_staff or not self.config.review_contacts else hold_reason(text)
        if reason is not None:
            await self.review.hold(bid, "message", m, reason)
            raise Held(
                "pending review: a moderator will check it before others see it",
                extra={"message_id": mid, "reason": reason},
            )
        await self._publish(bid, m)
        return public_message(m)

    async def get(self, bid: str, mid: str) -> dict[str, Any]:
        raw = await self.redis.hget(keys.chat_messages(bid), mid) if mid.isdigit() else None
        if raw is None:
            raise NotFound("no such message", code="message_not_found")
        return orjson.loads(raw)

    async def hide(self, bid: str, mid: Any, by: Actor) -> dict[str, Any]:
        mid = str(mid)
        await self.get(bid, mid)

        async def body(pipe: Pipeline) -> dict[str, Any]:
            pinned = await pipe.get(keys.chat_pinned(bid))
            pipe.multi()
            pipe.lrem(keys.chat_recent(bid), 0, mid)
            pipe.hset(keys.chat_hidden(bid), mid, by.by)
            self.log.add_to(pipe, bid, "chat.hidden", {"id": mid})
            if pinned is not None and orjson.loads(pinned)["id"] == mid:  # hidden: not pinned
                pipe.delete(keys.chat_pinned(bid))
                self.log.add_to(pipe, bid, "chat.pinned", {"message": None})
            return {"id": mid, "hidden": True}

        return await transact(self.redis, [keys.chat_pinned(bid)], body, attempts=10)

    async def pin(self, bid: str, mid: Any, by: Actor) -> dict[str, Any]:
        """Pin one visible message above the chat for everyone (an announcement, usually the
        host's own), replacing the one pinned before; `mid` None takes it down."""
        if mid is None:
            message = None
        else:
            mid = str(mid) if isinstance(mid, int) and not isinstance(mid, bool) else mid
            if not isinstance(mid, str) or not mid.isdigit() or len(mid) > 12:
                raise Invalid("bad message id", fields={"id": "a message id, or null"})
            m = await self.get(bid, mid)
            if await self.redis.hexists(keys.chat_hidden(bid), mid):
                raise NotFound("no such message", code="message_not_found")
            message = public_message(m)
        async with self.redis.pipeline(transaction=True) as pipe:
            if message is None:
                pipe.delete(keys.chat_pinned(bid))
            else:
                pipe.set(keys.chat_pinned(bid), orjson.dumps(message))
            self.log.add_to(pipe, bid, "chat.pinned", {"message": message})
            await pipe.execute()
        return {"message": message}

    async def pinned(self, bid: str) -> dict[str, Any] | None:
        raw = await self.redis.get(keys.chat_pinned(bid))
        return None if raw is None else orjson.loads(raw)

    async def recent(self, bid: str) -> list[dict[str, Any]]:
        """The visible messages, oldest first, public form."""
        ids = await self.redis.lrange(keys.chat_recent(bid), 0, -1)
        if not ids:
            return []
        rows = await self.redis.hmget(keys.chat_messages(bid), ids)
        return [public_message(orjson.loads(r)) for r in rows if r is not None]
