"""Moderation state, all in Redis so that every process enforces it at once: time-outs, bans
(viewer id and the address it posted from), slow mode and the blocked-words list.

The gate (chat.gate) enforces these on every post, question and vote. Sockets react too: a
ban or a time-out is published on one pub/sub channel (keys.CHAT_KICK) that every process
listens to, and the process holding the viewer's sockets tells them why (and closes them
on a ban).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from jobcast.chat.actor import Actor
from jobcast.chat.filters import normalize_word
from jobcast.core import keys
from jobcast.core.errors import Conflict, Invalid, NotFound
from jobcast.core.events import HOST, EventLog
from jobcast.core.tx import transact
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

TIMEOUT_MIN = 60
TIMEOUT_MAX = 24 * 3600
SLOW_MAX = 3600
WORDS_MAX = 500
WORD_MAX_CHARS = 40


def _busy() -> Conflict:
    return Conflict("the list is changing, try again", code="busy")


def _s(v: bytes | str | None) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


def _int(data: dict[str, Any], name: str, lo: int, hi: int) -> int:
    v = data.get(name)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise Invalid(f"{name} must be {lo} to {hi}", fields={name: f"an integer, {lo} to {hi}"})
    return v


class ModerationService:
    def __init__(self, redis: Redis, log: EventLog) -> None:
        self.redis = redis
        self.log = log

    async def resolve(self, bid: str, data: dict[str, Any]) -> str:
        """The viewer id an action is about: given directly, or the author of a message or a
        question (so a moderator can act on what they see without knowing ids)."""
        vid = data.get("viewer_id")
        if vid is not None:
            if not isinstance(vid, str) or not 0 < len(vid) <= 64:
                raise Invalid("bad viewer id", fields={"viewer_id": "a viewer id"})
            return vid
        mid = data.get("message_id")
        if mid is not None:
            mid = str(mid)
            raw = await self.redis.hget(keys.chat_messages(bid), mid) if mid.isdigit() else None
            if raw is None:
                raw = await self.redis.get(keys.review_item(bid, "m:" + mid))
                if raw is not None:
                    return orjson.loads(raw)["item"]["vid"]
                raise NotFound("no such message", code="message_not_found")
            return orjson.loads(raw)["vid"]
        qid = data.get("question_id")
        if qid is not None:
            qid = str(qid)
            vid = await self.redis.hget(keys.question(bid, qid), "vid") if qid.isdigit() else None
            if vid is None:
                raise NotFound("no such question", code="question_not_found")
            return _s(vid)
        raise Invalid(
            "say who: viewer_id, message_id or question_id",
            fields={"viewer_id": "required (or message_id / question_id)"},
        )

    async def tell(self, vid: str, bid: str, code: str, **extra: Any) -> None:
        """Tell one viewer's open sockets something about their own posts (an `error` event
        `code`, not a refusal of a request), on every process."""
        await self._kick(bid, vid, "notify", code, **extra)

    async def _kick(self, bid: str, vid: str, action: str, code: str, **extra: Any) -> None:
        payload = {"bid": bid, "viewer_id": vid, "action": action, "code": code, **extra}
        await self.redis.publish(keys.CHAT_KICK, orjson.dumps(payload))

    # -- time-outs ----------------------------------------------------------------------------

    async def timeout(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        seconds = _int(data, "seconds", TIMEOUT_MIN, TIMEOUT_MAX)
        vid = await self.resolve(bid, data)
        until = int(time.time() * 1000) + seconds * 1000
        body = {"viewer_id": vid, "until": until, "by": by.by}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.mod_mutes(bid), vid, until)
            self.log.add_to(pipe, bid, "moderation.muted", body, audience=HOST)
            await pipe.execute()
        await self._kick(bid, vid, "notify", "muted", until=until)
        return body

    async def lift_timeout(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        vid = await self.resolve(bid, data)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.mod_mutes(bid), vid)
            self.log.add_to(pipe, bid, "moderation.unmuted", {"viewer_id": vid}, audience=HOST)
            await pipe.execute()
        await self._kick(bid, vid, "notify", "unmuted")  # their page lets them write again
        return {"viewer_id": vid}

    # -- bans ---------------------------------------------------------------------------------

    async def ban(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        """Ban the viewer id and, unless `ip` is false, the address it last posted from.

        An address ban refuses posts from everyone behind it (a hall's Wi-Fi, a carrier's
        NAT); open sockets are closed by viewer id only, so bystanders keep watching.
        """
        vid = await self.resolve(bid, data)
        with_ip = data.get("ip", True)
        if not isinstance(with_ip, bool):
            raise Invalid("ip must be true or false", fields={"ip": "a boolean"})
        ip = _s(await self.redis.hget(keys.viewer_ips(bid), vid)) if with_ip else ""
        at = int(time.time() * 1000)
        record = {"ip": ip, "at": at, "by": by.by}
        body = {"viewer_id": vid, "ip_banned": bool(ip), "at": at, "by": by.by}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.mod_bans(bid), vid, orjson.dumps(record))
            if ip:
                pipe.hset(keys.mod_ban_ips(bid), ip, vid)
            self.log.add_to(pipe, bid, "moderation.banned", body, audience=HOST)
            await pipe.execute()
        await self._kick(bid, vid, "close", "banned")
        return body

    async def lift_ban(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        vid = await self.resolve(bid, data)
        raw = await self.redis.hget(keys.mod_bans(bid), vid)
        ip = orjson.loads(raw).get("ip", "") if raw else ""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.mod_bans(bid), vid)
            if ip:
                pipe.hdel(keys.mod_ban_ips(bid), ip)
            self.log.add_to(pipe, bid, "moderation.unbanned", {"viewer_id": vid}, audience=HOST)
            await pipe.execute()
        return {"viewer_id": vid}

    # -- room settings ------------------------------------------------------------------------

    async def slow_mode(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        seconds = _int(data, "seconds", 0, SLOW_MAX)
        async with self.redis.pipeline(transaction=True) as pipe:
            if seconds:
                pipe.set(keys.mod_slow(bid), seconds)
            else:
                pipe.delete(keys.mod_slow(bid))
            self.log.add_to(pipe, bid, "chat.settings", {"slow_mode": seconds})
            await pipe.execute()
        return {"slow_mode": seconds}

    async def after_end(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        """Keep chat and questions open after the broadcast ends (`open` true), or close them
        with it (the default). Decided by the gate at each post, so it applies at once."""
        keep = data.get("open")
        if not isinstance(keep, bool):
            raise Invalid("open must be true or false", fields={"open": "a boolean"})
        async with self.redis.pipeline(transaction=True) as pipe:
            if keep:
                pipe.set(keys.chat_open_after_end(bid), "1")
            else:
                pipe.delete(keys.chat_open_after_end(bid))
            self.log.add_to(pipe, bid, "chat.settings", {"open_after_end": keep})
            await pipe.execute()
        return {"open_after_end": keep}

    async def words(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        """Change the blocked words: `set` replaces the list, `add` and `remove` edit it."""
        parsed = {k: _words(data, k) for k in ("set", "add", "remove") if k in data}
        if not parsed:
            raise Invalid("give set, add or remove", fields={"add": "a list of words"})
        key = keys.mod_words(bid)

        async def body(pipe: Pipeline) -> dict[str, Any]:
            current = {_s(w) for w in await pipe.smembers(key)}
            new = set(parsed["set"]) if "set" in parsed else set(current)
            new |= set(parsed.get("add", []))
            new -= set(parsed.get("remove", []))
            if len(new) > WORDS_MAX:
                raise Invalid(f"at most {WORDS_MAX} words", fields={"add": f"at most {WORDS_MAX}"})
            words = sorted(new)
            pipe.multi()
            pipe.delete(key)
            if words:
                pipe.sadd(key, *words)
            self.log.add_to(pipe, bid, "moderation.words", {"words": words}, audience=HOST)
            return {"words": words}

        return await transact(self.redis, [key], body, attempts=10, busy=_busy)

    # -- reading ------------------------------------------------------------------------------

    async def settings(self, bid: str) -> dict[str, Any]:
        slow, keep = await self.redis.mget(keys.mod_slow(bid), keys.chat_open_after_end(bid))
        return {"slow_mode": int(slow or 0), "open_after_end": keep is not None}

    async def state(self, bid: str) -> dict[str, Any]:
        """Hosts' view: blocked words, active time-outs and bans."""
        now = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.mod_words(bid))
            pipe.hgetall(keys.mod_mutes(bid))
            pipe.hgetall(keys.mod_bans(bid))
            words, mutes, bans = await pipe.execute()
        return {
            "blocked_words": sorted(_s(w) for w in words),
            "muted": {_s(v): int(u) for v, u in mutes.items() if int(u) > now},
            "banned": {
                _s(v): {"ip_banned": bool(orjson.loads(r).get("ip"))} for v, r in bans.items()
            },
        }

    async def is_banned(self, bid: str, vid: str) -> bool:
        return bool(await self.redis.hexists(keys.mod_bans(bid), vid))


def _words(data: dict[str, Any], name: str) -> list[str]:
    raw = data.get(name)
    if not isinstance(raw, list) or not all(isinstance(w, str) for w in raw):
        raise Invalid(f"{name} must be a list of words", fields={name: "a list of strings"})
    out = []
    for w in raw:
        n = normalize_word(w)
        if not n:
            continue
        if len(n) > WORD_MAX_CHARS:
            raise Invalid("word too long", fields={name: f"at most {WORD_MAX_CHARS} characters"})
        out.append(n)
    return out
