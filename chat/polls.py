"""Live polls: a host asks one question with 2 to 6 options (or "which of these jobs interests
you?" from the broadcast's published openings), viewers choose one option each and may change
it while the poll is open, and everyone sees the totals.

One poll is shown per broadcast (`keys.poll_current`): while it is open no other can start;
closed, its results stay on screen until the host removes it or starts the next one. A vote is
one script: the viewer's choice (one per viewer id, in a hash) and the option counts change
together, so two sockets of one viewer cannot count twice.

Totals reach viewers throttled, not per vote: a vote publishes `poll.results` (the totals, not
a delta) at once when none went out within the interval, otherwise it marks the poll dirty and
a per-process tick publishes the totals at the end of the interval. Many votes a second cost
at most two events per interval, and any one event carries the whole state.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from jobcast.chat.actor import Actor
from jobcast.chat.messages import now_ms
from jobcast.chat.ticker import FlushTicker
from jobcast.core import keys
from jobcast.core.errors import Conflict, Forbidden, Invalid, NotFound
from jobcast.core.events import PUBLIC, EventLog, Hole
from jobcast.core.replies import text_hash
from jobcast.core.text import clean
from jobcast.core.tx import transact
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

log = logging.getLogger("jobcast.chat.polls")

QUESTION_MAX = 140
OPTION_MAX = 80
OPTIONS_MIN = 2
OPTIONS_MAX = 6

# (broadcast id) -> its published openings in lineup order, as (opening id, label).
LineupFn = Callable[[str], Awaitable[list[tuple[str, str]]]]

# The totals of a poll and how many viewers voted, read inside a script.
_TOTALS_LUA = """
local function jc_totals(pkey, ckey, vkey)
  local n = tonumber(redis.call('HGET', pkey, 'n') or '0')
  local t = {}
  for i = 0, n - 1 do t[i + 1] = tonumber(redis.call('HGET', ckey, tostring(i)) or '0') end
  return t, redis.call('HLEN', vkey)
end
"""

# KEYS: 1 broadcast, 2 current poll id, 3 poll, 4 choices, 5 counts, 6 bans, 7 banned
#       addresses, 8 tick lock, 9 dirty, 10-13 the poll.results event
# ARGV: 1 poll id, 2 viewer id, 3 option index, 4 ip, 5 interval ms (0: publish each vote),
#       6-8 the event
# Returns {code, totals, voters}: 1 changed, 0 same choice as before, -1 no such poll,
# -2 banned, -3 closed poll, -4 no such option, -5 broadcast ended.
_VOTE_LUA = (
    _TOTALS_LUA
    + """
if redis.call('HGET', KEYS[1], 'status') == 'ended' then return {-5} end
if redis.call('HEXISTS', KEYS[6], ARGV[2]) == 1 or redis.call('HEXISTS', KEYS[7], ARGV[4]) == 1
then return {-2} end
local st = redis.call('HGET', KEYS[3], 'status')
if not st or redis.call('GET', KEYS[2]) ~= ARGV[1] then return {-1} end
if st ~= 'open' then return {-3} end
local opt = tonumber(ARGV[3])
if opt >= tonumber(redis.call('HGET', KEYS[3], 'n')) then return {-4} end
local prev = redis.call('HGET', KEYS[4], ARGV[2])
local code = 0
if prev ~= ARGV[3] then
  redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
  redis.call('HINCRBY', KEYS[5], ARGV[3], 1)
  if prev then redis.call('HINCRBY', KEYS[5], prev, -1) end
  code = 1
end
local t, voters = jc_totals(KEYS[3], KEYS[5], KEYS[4])
if code == 1 then
  if ARGV[5] == '0' or redis.call('SET', KEYS[8], '1', 'NX', 'PX', ARGV[5]) then
    redis.call('DEL', KEYS[9])
    jc_event(10, 6, {id = ARGV[1], totals = t, voters = voters})
  else
    redis.call('SET', KEYS[9], ARGV[1])
  end
end
return {code, t, voters}
"""
)

# KEYS: 1 dirty, 2 tick lock, 3 current poll id, 4-7 the poll.results event
# ARGV: 1 interval ms, 2 key prefix of a poll, 3-4 the suffixes of its choices and counts,
#       5-7 the event
# Returns 1 published, 0 nothing dirty, -1 another publish within the interval.
# KEYS: 1 current poll id, 2 poll, 3 counts, 4 choices, 5-8 the poll.closed event
# ARGV: 1 poll id, 2 closed_at, 3-5 the event
# Returns {1, totals, voters}, or {-1} no such poll, {-3} closed already.
_CLOSE_LUA = (
    _TOTALS_LUA
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 0 then
  return {-1}
end
if redis.call('HGET', KEYS[2], 'status') ~= 'open' then return {-3} end
redis.call('HSET', KEYS[2], 'status', 'closed', 'closed_at', ARGV[2])
local t, voters = jc_totals(KEYS[2], KEYS[3], KEYS[4])
jc_event(5, 3, {totals = t, voters = voters})
return {1, t, voters}
"""
)

_FLUSH_LUA = (
    _TOTALS_LUA
    + """
local pid = redis.call('GET', KEYS[1])
if not pid then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return -1 end
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[3]) ~= pid then return 0 end
local p = ARGV[2] .. pid
if redis.call('EXISTS', p) == 0 then return 0 end
local t, voters = jc_totals(p, p .. ARGV[4], p .. ARGV[3])
jc_event(4, 5, {id = pid, totals = t, voters = voters})
return 1
"""
)


def _s(v: bytes | str | None) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


def _pid(pid: Any) -> str:
    pid = str(pid) if isinstance(pid, int) and not isinstance(pid, bool) else pid
    if not isinstance(pid, str) or not pid.isdigit() or len(pid) > 12:
        raise Invalid("bad poll id", fields={"id": "a poll id"})
    return pid


def _not_found() -> NotFound:
    return NotFound("no such poll", code="poll_not_found")


def _busy() -> Conflict:
    return Conflict("the poll is changing, try again", code="busy")


def _text(raw: Any, name: str, max_len: int) -> str:
    if not isinstance(raw, str):
        raise Invalid(f"{name} must be text", fields={name: "required"})
    value = clean(raw)
    if not value:
        raise Invalid(f"{name} is required", fields={name: "required"})
    if len(value) > max_len:
        raise Invalid(
            f"{name} is longer than {max_len} characters",
            fields={name: f"at most {max_len} characters"},
        )
    return value


def check_free(data: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The question and options of a poll the host wrote: cleaned, checked, no duplicates."""
    question = _text(data.get("question"), "question", QUESTION_MAX)
    raw = data.get("options")
    if not isinstance(raw, list) or not OPTIONS_MIN <= len(raw) <= OPTIONS_MAX:
        raise Invalid(
            f"a poll has {OPTIONS_MIN} to {OPTIONS_MAX} options",
            code="bad_options",
            fields={"options": f"{OPTIONS_MIN} to {OPTIONS_MAX} options"},
        )
    options = [_text(o, "options", OPTION_MAX) for o in raw]
    if len({o.casefold() for o in options}) != len(options):
        raise Invalid(
            "two options are the same", code="bad_options", fields={"options": "duplicates"}
        )
    return question, [{"text": o, "opening_id": None} for o in options]


def decode(h: Any) -> dict[str, Any]:
    d = text_hash(h)
    return {
        "id": d["id"],
        "kind": d.get("kind", "free"),
        "question": d.get("question", ""),
        "options": orjson.loads(d.get("options") or "[]"),
        "status": d.get("status", "open"),
        "ts": int(d.get("ts") or 0),
        "closed_at": int(d["closed_at"]) if d.get("closed_at") else None,
    }


def view(p: dict[str, Any], totals: list[int] | Hole, voters: int | Hole) -> dict[str, Any]:
    """What everyone sees of a poll: its options with their totals (Holes where a script
    fills them in)."""
    return {**p, "totals": totals, "voters": voters}


@dataclass(eq=False)
class PollService:
    redis: Redis
    log: EventLog
    interval: float  # seconds between two poll.results of a broadcast (0: one per vote)
    lineup: LineupFn | None = None
    _ticker: FlushTicker = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._vote = self.log.script(_VOTE_LUA)
        self._flush = self.log.script(_FLUSH_LUA)
        self._close = self.log.script(_CLOSE_LUA)
        self._ticker = FlushTicker(self.flush, self.interval, "polls")

    def _results_event(self, bid: str) -> Any:
        data = {"id": Hole("id"), "totals": Hole("totals"), "voters": Hole("voters")}
        return self.log.event(bid, "poll.results", data, audience=PUBLIC)

    def _interval_ms(self) -> int:
        """0: publish every vote (no interval)."""
        return max(1, int(self.interval * 1000)) if self.interval > 0 else 0

    # -- host and moderator actions ----------------------------------------------------------

    async def create(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        """A poll the host wrote: `question` and 2-6 `options` (text)."""
        question, options = check_free(data)
        return await self._open(bid, "free", question, options)

    async def create_jobs(self, bid: str, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        """ "Which of these jobs interests you?" over the first published openings of the
        lineup. `question` is optional: empty, each page shows the question in its language."""
        question = ""
        if data.get("question") not in (None, ""):
            question = _text(data.get("question"), "question", QUESTION_MAX)
        jobs = await self.lineup(bid) if self.lineup is not None else []
        if len(jobs) < OPTIONS_MIN:
            raise Conflict(
                f"a jobs poll needs at least {OPTIONS_MIN} published openings",
                code="not_enough_openings",
            )
        options = [
            {"text": clean(label)[:OPTION_MAX], "opening_id": oid}
            for oid, label in jobs[:OPTIONS_MAX]
        ]
        return await self._open(bid, "jobs", question, options)

    async def _open(
        self, bid: str, kind: str, question: str, options: list[dict[str, Any]]
    ) -> dict[str, Any]:
        pid = str(await self.redis.incr(keys.poll_seq(bid)))
        ts = now_ms()
        p: dict[str, Any] = {
            "id": pid,
            "kind": kind,
            "question": question,
            "options": options,
            "status": "open",
            "ts": ts,
            "closed_at": None,
        }
        shown = view(p, [0] * len(options), 0)

        async def body(pipe: Pipeline) -> None:
            if _s(await pipe.hget(keys.broadcast(bid), "status")) == "ended":
                raise Conflict("the broadcast has ended", code="broadcast_ended")
            old = _s(await pipe.get(keys.poll_current(bid)))
            if old and _s(await pipe.hget(keys.poll(bid, old), "status")) == "open":
                raise Conflict("close the open poll first", code="poll_open")
            pipe.multi()
            if old:
                self._drop(pipe, bid, old)
            pipe.hset(
                keys.poll(bid, pid),
                mapping={
                    "id": pid,
                    "kind": kind,
                    "question": question,
                    "options": orjson.dumps(options),
                    "n": len(options),
                    "status": "open",
                    "ts": ts,
                },
            )
            pipe.set(keys.poll_current(bid), pid)
            self.log.add_to(pipe, bid, "poll.opened", shown)

        await transact(self.redis, [keys.poll_current(bid)], body, busy=_busy)
        return shown

    def _drop(self, pipe: Pipeline, bid: str, pid: str) -> None:
        pipe.delete(keys.poll(bid, pid), keys.poll_choices(bid, pid), keys.poll_counts(bid, pid))

    async def close(self, bid: str, pid: Any, by: Actor) -> dict[str, Any]:
        """Stop the voting; the results stay on every screen, marked closed.

        One script, not a watched transaction: votes keep changing the counts until the
        poll is closed, and a WATCH on them would make closing fail while many vote."""
        pid = _pid(pid)
        h = await self.redis.hgetall(keys.poll(bid, pid))
        if not h or _s(await self.redis.get(keys.poll_current(bid))) != pid:
            raise _not_found()
        p = decode(h)  # what never changes; status and totals are the script's
        p["status"] = "closed"
        p["closed_at"] = now_ms()
        holes = view(p, Hole("totals"), Hole("voters"))
        ev = self.log.event(bid, "poll.closed", holes, audience=PUBLIC)
        reply = await self._close(
            keys=[
                keys.poll_current(bid),
                keys.poll(bid, pid),
                keys.poll_counts(bid, pid),
                keys.poll_choices(bid, pid),
                *ev.keys,
            ],
            args=[pid, p["closed_at"], *ev.args],
        )
        code = int(reply[0])
        if code == -1:
            raise _not_found()
        if code == -3:
            raise Conflict("the poll is closed", code="poll_closed")
        return view(p, [int(x) for x in reply[1]], int(reply[2]))

    async def remove(self, bid: str, pid: Any, by: Actor) -> dict[str, Any]:
        """Take the poll off every screen and forget its votes."""
        pid = _pid(pid)

        async def body(pipe: Pipeline) -> dict[str, Any]:
            if _s(await pipe.get(keys.poll_current(bid))) != pid:
                raise _not_found()
            pipe.multi()
            pipe.delete(keys.poll_current(bid))
            self._drop(pipe, bid, pid)
            self.log.add_to(pipe, bid, "poll.removed", {"id": pid})
            return {"id": pid, "removed": True}

        return await transact(self.redis, [keys.poll_current(bid)], body, busy=_busy)

    # -- viewers ------------------------------------------------------------------------------

    async def vote(self, bid: str, actor: Actor, pid: Any, option: Any) -> dict[str, Any]:
        """Choose one option (again: the choice moves); returns the totals as they are now."""
        pid = _pid(pid)
        if isinstance(option, bool) or not isinstance(option, int) or option < 0:
            raise Invalid(
                "option must be an option's index",
                code="bad_option",
                fields={"option": "an option index"},
            )
        ev = self._results_event(bid)
        reply = await self._vote(
            keys=[
                keys.broadcast(bid),
                keys.poll_current(bid),
                keys.poll(bid, pid),
                keys.poll_choices(bid, pid),
                keys.poll_counts(bid, pid),
                keys.mod_bans(bid),
                keys.mod_ban_ips(bid),
                keys.poll_tick(bid),
                keys.poll_dirty(bid),
                *ev.keys,
            ],
            args=[pid, actor.viewer_id, option, actor.ip, self._interval_ms(), *ev.args],
        )
        code = int(reply[0])
        if code == -5:
            raise Conflict("the broadcast has ended: polls are closed", code="broadcast_ended")
        if code == -2:
            raise Forbidden("you are banned from this room", code="banned")
        if code == -1:
            raise _not_found()
        if code == -3:
            raise Conflict("the poll is closed", code="poll_closed")
        if code == -4:
            raise Invalid("no such option", code="bad_option", fields={"option": "no such option"})
        if code == 1:
            self._ticker.touch(bid)
        return {
            "id": pid,
            "choice": option,
            "changed": code == 1,
            "totals": [int(x) for x in reply[1]],
            "voters": int(reply[2]),
        }

    async def mine(self, bid: str, actor: Actor) -> dict[str, Any]:
        """The shown poll's id and this viewer's choice in it (None: no poll, or no vote).

        The snapshot is shared by every socket of a broadcast, so a viewer's own choice is
        asked for separately after joining."""
        pid = _s(await self.redis.get(keys.poll_current(bid)))
        if not pid:
            return {"id": None, "choice": None}
        return {"id": pid, "choice": await self.choice_of(bid, pid, actor.viewer_id)}

    async def choice_of(self, bid: str, pid: str, viewer_id: str) -> int | None:
        raw = await self.redis.hget(keys.poll_choices(bid, pid), viewer_id)
        return int(raw) if raw is not None else None

    # -- reading ------------------------------------------------------------------------------

    async def _read(
        self, r: Redis | Pipeline, bid: str, pid: str
    ) -> tuple[dict[str, Any], list[int], int]:
        h = await r.hgetall(keys.poll(bid, pid))
        if not h:
            raise _not_found()
        p = decode(h)
        counts = text_hash(await r.hgetall(keys.poll_counts(bid, pid)))
        voters = int(await r.hlen(keys.poll_choices(bid, pid)))
        totals = [int(counts.get(str(i)) or 0) for i in range(len(p["options"]))]
        return p, totals, voters

    async def current(self, bid: str) -> dict[str, Any] | None:
        """The poll shown now with its totals, or None."""
        pid = _s(await self.redis.get(keys.poll_current(bid)))
        if not pid:
            return None
        try:
            p, totals, voters = await self._read(self.redis, bid, pid)
        except NotFound:
            return None
        return view(p, totals, voters)

    async def snapshot(self, bid: str, host: bool) -> dict[str, Any]:
        return {"poll": await self.current(bid)}

    # -- the trailing publish ----------------------------------------------------------------

    async def flush(self, bid: str) -> int:
        """Publish the totals of a dirty poll if this interval's turn is free: 1 published,
        0 nothing dirty, -1 not yet."""
        if self.interval <= 0:
            return 0  # every vote published its own totals
        ev = self._results_event(bid)
        prefix = keys.poll(bid, "")
        n = await self._flush(
            keys=[keys.poll_dirty(bid), keys.poll_tick(bid), keys.poll_current(bid), *ev.keys],
            args=[
                self._interval_ms(),
                prefix,
                keys.poll_choices(bid, "")[len(prefix) :],
                keys.poll_counts(bid, "")[len(prefix) :],
                *ev.args,
            ],
        )
        return int(n)

    def start(self) -> None:
        self._ticker.start()

    async def close_task(self) -> None:
        await self._ticker.close()
