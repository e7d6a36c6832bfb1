"""Vote counts reach viewers coalesced: each vote is written at once (one per viewer, in a
script), marks its question dirty, and a `question.votes` event with the current counts of
the dirty questions goes out at most once per interval per broadcast.

Every process ticks twice per interval for the broadcasts it has taken votes for; a lock
key that lives one interval lets only one of them publish per interval. Reading the counts,
clearing the dirty set and publishing happen in one script, so no stale count can overtake a
newer one. If the process that took a vote dies before publishing, the next vote on that
broadcast (on any process) flushes it; the snapshot always has the exact counts.

The same script publishes, for hosts only, `question.voters`: per dirty question, how many
viewers voted and from how many addresses (chat/questions.py says why both are kept).
"""

from __future__ import annotations

import logging

from jobcast.chat.ticker import FlushTicker
from jobcast.core import keys
from jobcast.core.events import HOST, PUBLIC, EventLog, Hole
from jobcast.core.net import address_group
from redis.asyncio import Redis

log = logging.getLogger("jobcast.chat.votes")

# Both events are made by EventLog.event with a hole where the counts go, so the wire format
# stays defined in one place; the script only reads the counts.
# KEYS: 1 dirty set, 2 tick lock, 3 votes zset, 4-7 the question.votes event's keys,
#       8-11 the question.voters event's keys
# ARGV: 1 interval ms, 2 key prefix of a question, 3-5 the key suffixes of its voter ->
#       address hash, its address -> voters hash and its set of voters from before addresses
#       were kept, 6-8 the question.votes event's arguments, 9-11 question.voters'
_FLUSH_LUA = """
if redis.call('SCARD', KEYS[1]) == 0 then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return -1 end
local ids = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
local t, v = {}, {}
for _, id in ipairs(ids) do
  t[id] = tonumber(redis.call('ZSCORE', KEYS[3], id) or '0')
  local q = ARGV[2] .. id
  v[id] = {
    voters = redis.call('HLEN', q .. ARGV[3]) + redis.call('SCARD', q .. ARGV[5]),
    addresses = redis.call('HLEN', q .. ARGV[4])
  }
end
jc_event(4, 6, {votes = t})
jc_event(8, 9, {voters = v})
return #ids
"""


vote_address = address_group  # see core/net.py


class VoteCoalescer:
    def __init__(self, redis: Redis, log_: EventLog, interval: float) -> None:
        self.redis = redis
        self.log = log_
        self.interval = interval
        self._script = log_.script(_FLUSH_LUA)
        self._ticker = FlushTicker(self.flush, interval, "votes")

    def touch(self, bid: str) -> None:
        """A vote (or a question update) on `bid` happened here: keep flushing it."""
        self._ticker.touch(bid)

    async def flush(self, bid: str) -> int:
        """Publish the dirty counts if this process holds this interval's turn.

        Returns the number of questions published, 0 when nothing was dirty, -1 when another
        process published within the interval.
        """
        votes = self.log.event(bid, "question.votes", {"votes": Hole("votes")}, audience=PUBLIC)
        voters = self.log.event(bid, "question.voters", {"voters": Hole("voters")}, audience=HOST)
        q = keys.question(bid, "")
        n = await self._script(
            keys=[
                keys.question_dirty(bid),
                keys.question_tick(bid),
                keys.question_votes(bid),
                *votes.keys,
                *voters.keys,
            ],
            args=[
                max(1, int(self.interval * 1000)),
                q,
                keys.question_voter_addrs(bid, "")[len(q) :],
                keys.question_addr_votes(bid, "")[len(q) :],
                keys.question_voters(bid, "")[len(q) :],
                *votes.args,
                *voters.args,
            ],
        )
        return int(n)

    def start(self) -> None:
        self._ticker.start()

    async def close(self) -> None:
        await self._ticker.close()
