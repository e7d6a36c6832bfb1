"""Viewers report a card they do not trust; enough distinct reporters hold it for review.

A report names a reason (REASONS) and may carry a short note. One per viewer per opening: the
script refuses a second one from the same viewer id. Viewer ids cost nothing to make, so the
count that decides a hold is not the number of ids but, as for question votes
(chat/votes.py), per address group (core/net.py) at most `per_address` reporters: thirty ids
behind one address count as `per_address`, while a hall of people behind one address can
still report (each counted, up to that cap). The count since the last review is
`score - base`; once it reaches `threshold` the card's status becomes `held`
(OpeningService.set_review): it leaves every viewer's page (opening.removed, lineup.updated)
and waits in the hosts' review queue with its counts and reasons. A host clears it (back to
published, the count starting again from there) or closes it.

The script writes the report and publishes `report.received` (hosts only: counts, reasons,
no viewer ids or addresses) in one go; the hold follows in its own transaction, and is
retried by the next report should the process fail between the two.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import orjson
from jobcast.core import keys
from jobcast.core.errors import Conflict, Invalid, NotFound, RateLimited
from jobcast.core.events import HOST, EventLog, Hole
from jobcast.core.net import address_group
from jobcast.core.replies import texts
from jobcast.core.text import clean
from jobcast.openings.service import OpeningService, now_ms
from redis.asyncio import Redis

Reason = Literal["fake_job", "fees_asked", "pay_differs", "outside_contact", "other"]
REASONS: tuple[str, ...] = get_args(Reason)
NOTE_MAX = 300
NOTES_KEPT = 50
RATE_WINDOW = 3600

# KEYS: 1 viewers, 2 addrs, 3 reasons, 4 notes, 5 meta, 6 queue, 7 ip rate, 8-11 the event's
# ARGV: 1 viewer id, 2 address group, 3 reason, 4 note ('' none), 5 per-address cap, 6 now ms,
#       7 opening id, 8 ip limit, 9 rate window s, 10-12 the event's arguments
_REPORT_LUA = """
local n = redis.call('INCR', KEYS[7])
if n == 1 then redis.call('EXPIRE', KEYS[7], tonumber(ARGV[9])) end
if n > tonumber(ARGV[8]) then return {'rate', redis.call('TTL', KEYS[7])} end
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return {'dup'} end
local at = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
if at <= tonumber(ARGV[5]) then redis.call('HINCRBY', KEYS[5], 'score', 1) end
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
if ARGV[4] ~= '' then
  redis.call('LPUSH', KEYS[4], ARGV[4])
  redis.call('LTRIM', KEYS[4], 0, 49)
end
redis.call('HSET', KEYS[5], 'last', ARGV[6])
redis.call('ZADD', KEYS[6], tonumber(ARGV[6]), ARGV[7])
local score = tonumber(redis.call('HGET', KEYS[5], 'score') or '0')
local base = tonumber(redis.call('HGET', KEYS[5], 'base') or '0')
local flat = redis.call('HGETALL', KEYS[3])
local reasons = {}
for i = 1, #flat, 2 do reasons[flat[i]] = tonumber(flat[i + 1]) end
jc_event(8, 10, {count = score - base, reporters = redis.call('HLEN', KEYS[1]),
  reasons = reasons})
return {'ok', tostring(score - base), tostring(redis.call('HLEN', KEYS[1]))}
"""


# A review: the count starts again from the score now, and the card leaves the queue.
_RESET_LUA = """
redis.call('HSET', KEYS[1], 'base', redis.call('HGET', KEYS[1], 'score') or '0')
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""


def _key(bid: str, oid: str, part: str) -> str:
    return keys.reports(bid, oid, part)


class ReportService:
    def __init__(
        self,
        redis: Redis,
        log: EventLog,
        openings: OpeningService,
        *,
        threshold: int,
        per_address: int,
        per_ip: int,
    ) -> None:
        self.redis = redis
        self.log = log
        self.openings = openings
        self.threshold = threshold
        self.per_address = per_address
        self.per_ip = per_ip
        self._script = log.script(_REPORT_LUA)
        self._reset = redis.register_script(_RESET_LUA)

    async def report(
        self, bid: str, oid: str, vid: str, ip: str, reason: Any, note: Any = None
    ) -> dict[str, Any]:
        """Record one viewer's report of a published card; hold the card past the threshold.

        Conflict `already_reported` for a second report by the same viewer; RateLimited past
        `per_ip` reports an hour from one address group."""
        if reason not in REASONS:
            raise Invalid("bad reason", fields={"reason": "one of " + ", ".join(REASONS)})
        if note is not None and not isinstance(note, str):
            raise Invalid("bad note", fields={"note": "text"})
        text = clean(note or "").strip()
        if len(text) > NOTE_MAX:
            raise Invalid("note too long", fields={"note": f"at most {NOTE_MAX} characters"})
        await self.openings.get(bid, oid)  # a published card, or opening_not_found
        group = address_group(ip)
        ev = self.log.event(
            bid,
            "report.received",
            {
                "opening_id": oid,
                "count": Hole("count"),
                "reporters": Hole("reporters"),
                "reasons": Hole("reasons"),
            },
            audience=HOST,
        )
        now = now_ms()
        stored = orjson.dumps({"reason": reason, "note": text, "at": now}).decode() if text else ""
        reply = await self._script(
            keys=[
                _key(bid, oid, "viewers"),
                _key(bid, oid, "addrs"),
                _key(bid, oid, "reasons"),
                _key(bid, oid, "notes"),
                _key(bid, oid, "meta"),
                keys.report_queue(bid),
                f"{keys.PREFIX}:reports:rate:{group}",
                *ev.keys,
            ],
            args=[
                vid,
                group,
                reason,
                stored,
                self.per_address,
                now,
                oid,
                self.per_ip,
                RATE_WINDOW,
                *ev.args,
            ],
        )
        kind = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
        if kind == "rate":
            raise RateLimited("too many reports from this address", retry_after=int(reply[1]))
        if kind == "dup":
            raise Conflict("you reported this card already", code="already_reported")
        count = int(reply[1])
        held = False
        if count >= self.threshold:
            held = await self.openings.set_review(bid, oid, "held", only_from="published")
        return {"reported": True, "held": held}

    async def queue(self, bid: str) -> list[dict[str, Any]]:
        """The review queue: every reported opening of the broadcast, newest report first,
        with its count since the last review, reporters, reasons, latest notes and status."""
        oids = texts(await self.redis.zrevrange(keys.report_queue(bid), 0, 499))
        if not oids:
            return []
        state = await self.openings.state(bid)
        out = []
        for oid in oids:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(_key(bid, oid, "meta"))
                pipe.hgetall(_key(bid, oid, "reasons"))
                pipe.hlen(_key(bid, oid, "viewers"))
                pipe.lrange(_key(bid, oid, "notes"), 0, 9)
                meta, reasons, reporters, notes = await pipe.execute()
            o = state.openings.get(oid)
            if o is None:
                continue
            score = int(meta.get(b"score", 0))
            base = int(meta.get(b"base", 0))
            out.append(
                {
                    "opening_id": oid,
                    "title": o.title,
                    "employer": o.employer.name,
                    "status": o.status,
                    "count": score - base,
                    "reporters": int(reporters),
                    "reasons": {k.decode(): int(v) for k, v in reasons.items()},
                    "notes": [orjson.loads(n) for n in notes],
                    "last_at": int(meta.get(b"last", 0)),
                }
            )
        return out

    async def review(self, bid: str, oid: str, outcome: str) -> dict[str, Any]:
        """A host's decision: `clear` (published again, counting afresh) or `close`."""
        if outcome not in ("clear", "close"):
            raise Invalid("bad outcome", fields={"outcome": "clear or close"})
        if await self.redis.zscore(keys.report_queue(bid), oid) is None:
            raise NotFound("no reports of this opening", code="report_not_found")
        o = await self.openings.get(bid, oid, include_hidden=True)
        status = "published" if outcome == "clear" else "closed"
        if outcome == "clear" and o.status not in ("held", "published"):
            status = o.status  # a draft or closed card stays as it is; its reports are done
        await self._reset(keys=[_key(bid, oid, "meta"), keys.report_queue(bid)], args=[oid])
        if status != o.status:
            await self.openings.set_review(bid, oid, status)
        return {"opening_id": oid, "status": status}
