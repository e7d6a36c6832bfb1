"""The review queue: questions, and messages that carry a phone number, a contact id or a
link, wait here until a host or moderator approves (publishes) or rejects (drops) them.

Each held item is one Redis string (WATCHed while it is decided, so two moderators deciding at
once publish it at most once) plus its place in a zset ordered by when it was held. Only
host-audience events mention the queue; the author was told `held` when posting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import orjson
from jobcast.core import keys
from jobcast.core.errors import Invalid, NotFound
from jobcast.core.events import HOST, EventLog, queue_script
from jobcast.core.replies import texts
from jobcast.core.tx import transact
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

Kind = Literal["message", "question"]
_PREFIX = {"message": "m", "question": "q"}
_KIND = {"m": "message", "q": "question"}

# Queue one item; drop the oldest beyond the cap (their question hashes go too).
_HOLD_LUA = """
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
local dropped = {}
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[1], over)
  for i = 1, #old, 2 do
    local m = old[i]
    redis.call('DEL', ARGV[5] .. m)
    if string.sub(m, 1, 2) == 'q:' then redis.call('DEL', ARGV[6] .. string.sub(m, 3)) end
    table.insert(dropped, m)
  end
end
return dropped
"""

# Called inside the MULTI that takes an item off the queue, to add the decision's effects
# (state writes and public events) to the same transaction.
Effects = Callable[[Pipeline, dict[str, Any]], None]


def _gone() -> NotFound:
    return NotFound("not in the review queue", code="review_not_found")


def member(kind: str, item_id: str) -> str:
    if kind not in _PREFIX:
        raise Invalid("kind must be message or question", fields={"kind": "message or question"})
    if not str(item_id).isdigit():
        raise Invalid("bad id", fields={"id": "a number"})
    return f"{_PREFIX[kind]}:{item_id}"


def host_item(kind: str, item: dict[str, Any], reason: str) -> dict[str, Any]:
    """What hosts see of a held item: the author included."""
    out = {
        "kind": kind,
        "id": item["id"],
        "text": item["text"],
        "ts": item["ts"],
        "reason": reason,
        "author": {"viewer_id": item["vid"], "name": item["name"]},
    }
    if kind == "question":
        out["anonymous"] = item.get("anonymous", False)
        out["opening_id"] = item.get("opening_id")
    return out


class ReviewQueue:
    def __init__(self, redis: Redis, log: EventLog, max_items: int) -> None:
        self.redis = redis
        self.log = log
        self.max_items = max_items
        self._hold = redis.register_script(_HOLD_LUA)

    async def hold(self, bid: str, kind: Kind, item: dict[str, Any], reason: str) -> None:
        """Queue `item` (which has id, vid, name, text, ts) and tell the hosts."""
        m = member(kind, item["id"])
        stored = {"kind": kind, "reason": reason, "item": item}
        view = host_item(kind, item, reason)
        async with self.redis.pipeline(transaction=True) as p:
            queue_script(
                p,
                self._hold,
                (keys.review(bid), keys.review_item(bid, m)),
                (
                    m,
                    orjson.dumps(stored),
                    int(time.time() * 1000),
                    self.max_items,
                    keys.review_item(bid, ""),
                    keys.question(bid, ""),
                ),
            )
            self.log.add_to(p, bid, "review.added", view, audience=HOST)
            dropped, _ = await p.execute()
        for d in dropped or []:
            d = d.decode() if isinstance(d, bytes) else d
            await self.log.publish(
                bid,
                "review.removed",
                {"kind": _KIND[d[0]], "id": d[2:], "decision": "expired"},
                audience=HOST,
            )

    async def decide(
        self,
        bid: str,
        kind: str,
        item_id: Any,
        *,
        approve: bool,
        by: str,
        effects: Effects | None,
    ) -> dict[str, Any]:
        """Take the item off the queue, with `effects` in the same MULTI; returns the item."""
        m = member(kind, str(item_id))
        key = keys.review_item(bid, m)

        async def body(pipe: Pipeline) -> dict[str, Any]:
            raw = await pipe.get(key)
            if raw is None:
                raise _gone()
            stored = orjson.loads(raw)
            pipe.multi()
            pipe.delete(key)
            pipe.zrem(keys.review(bid), m)
            if effects is not None:
                effects(pipe, stored["item"])
            self.log.add_to(
                pipe,
                bid,
                "review.removed",
                {
                    "kind": kind,
                    "id": str(item_id),
                    "decision": "approved" if approve else "rejected",
                    "by": by,
                },
                audience=HOST,
            )
            return stored["item"]

        # Losing the race five times over means other moderators keep deciding it: by the
        # time this one could, it is gone.
        return await transact(self.redis, [key], body, attempts=5, busy=_gone)

    async def items(self, bid: str) -> list[dict[str, Any]]:
        """The queue for hosts, oldest first."""
        members = await self.redis.zrange(keys.review(bid), 0, -1)
        if not members:
            return []
        raws = await self.redis.mget([keys.review_item(bid, m) for m in texts(members)])
        out = []
        for raw in raws:
            if raw is not None:
                s = orjson.loads(raw)
                out.append(host_item(s["kind"], s["item"], s["reason"]))
        return out
