"""Questions: ask (through the gate, then the review queue unless it is off), vote, answer,
highlight, hide and restore; the ordered list for the snapshot.

A question is a Redis hash (its fields change one at a time, so two moderators acting at once
do not overwrite each other); its vote count lives in a zset of approved questions and the
voters in a hash per question (viewer id -> address), so a vote is one atomic script: one vote
per viewer, and it can be withdrawn. Ordered by votes (most first), then age (oldest first).

A viewer id costs nothing (a socket without the cookie gets a new one), so the count that
orders the questions counts addresses too: at most `votes_per_address` viewers from one
address (an IPv6 address by its /64) count for one question. Thirty sockets from one machine
add at most that many votes, a household or an office a few, while a hall behind one address
is undercounted; so hosts also see every vote (`voters`) and how many addresses they came
from (`addresses`): many voters from few addresses is a burst.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from jobcast.chat.actor import Actor
from jobcast.chat.config import ChatConfig
from jobcast.chat.errors import Held, chat_closed
from jobcast.chat.gate import Gate
from jobcast.chat.messages import message_text, now_ms
from jobcast.chat.review import ReviewQueue
from jobcast.chat.votes import VoteCoalescer, vote_address
from jobcast.core import keys
from jobcast.core.errors import Conflict, Forbidden, Invalid, NotFound
from jobcast.core.events import HOST, PUBLIC, EventLog
from jobcast.core.ids import is_valid_id
from jobcast.core.replies import Fields, RawHash, text_hash
from jobcast.core.replies import fields as as_fields
from jobcast.core.text import text_field
from jobcast.core.tx import transact
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

# (broadcast id, opening id) -> does that opening exist in the broadcast?
OpeningLookup = Callable[[str, str], Awaitable[bool]]


def _busy() -> Conflict:
    return Conflict("the question is changing, try again", code="busy")


# KEYS: 1 question, 2 voters from before addresses were kept (a set), 3 votes zset, 4 hidden,
#       5 dirty, 6 bans, 7 banned addresses, 8 voter -> address, 9 address -> voters
# ARGV: 1 question id, 2 viewer id, 3 up ('1'/'0'), 4 ip (for the ban), 5 coalesce ('1'/'0'),
#       6 vote address, 7 votes counted per address
# The count is the sum over addresses of min(voters from it, cap): a vote moves it only while
# its address is within the cap, and a withdrawal only when the address was.
_VOTE_LUA = """
if redis.call('HGET', KEYS[10], 'status') == 'ended' and redis.call('EXISTS', KEYS[11]) == 0
then return {-3, 0} end
if redis.call('HEXISTS', KEYS[6], ARGV[2]) == 1 or redis.call('HEXISTS', KEYS[7], ARGV[4]) == 1
then return {-2, 0} end
local st = redis.call('HGET', KEYS[1], 'status')
if not st or st == 'held' or redis.call('SISMEMBER', KEYS[4], ARGV[1]) == 1 then
  return {-1, 0}
end
local up, cap, changed = ARGV[3] == '1', tonumber(ARGV[7]), 0
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then
  if not up then
    redis.call('SREM', KEYS[2], ARGV[2])
    redis.call('ZINCRBY', KEYS[3], -1, ARGV[1])
    changed = 1
  end
else
  local prev = redis.call('HGET', KEYS[8], ARGV[2])
  if up and not prev then
    redis.call('HSET', KEYS[8], ARGV[2], ARGV[6])
    if redis.call('HINCRBY', KEYS[9], ARGV[6], 1) <= cap then
      redis.call('ZINCRBY', KEYS[3], 1, ARGV[1])
    end
    changed = 1
  elseif prev and not up then
    redis.call('HDEL', KEYS[8], ARGV[2])
    local left = redis.call('HINCRBY', KEYS[9], prev, -1)
    if left < cap then redis.call('ZINCRBY', KEYS[3], -1, ARGV[1]) end
    if left <= 0 then redis.call('HDEL', KEYS[9], prev) end
    changed = 1
  end
end
if changed == 1 and ARGV[5] == '1' then redis.call('SADD', KEYS[5], ARGV[1]) end
return {changed, tonumber(redis.call('ZSCORE', KEYS[3], ARGV[1]) or '0')}
"""

# Clear the highlight only if it still points at this question.
_UNHIGHLIGHT_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
"""


def _s(v: bytes | str | None) -> str:
    return v.decode() if isinstance(v, bytes) else (v or "")


def decode(h: RawHash) -> dict[str, Any]:
    d = text_hash(h)
    return {
        "id": d["id"],
        "vid": d.get("vid", ""),
        "name": d.get("name", ""),
        "anonymous": d.get("anonymous") == "1",
        "text": d.get("text", ""),
        "opening_id": d.get("opening_id") or None,
        "ts": int(d.get("ts") or 0),
        "status": d.get("status", "open"),
        "answer": d.get("answer") or None,
        "answered_at": int(d["answered_at"]) if d.get("answered_at") else None,
    }


def public_question(q: dict[str, Any], votes: int, hidden: bool) -> dict[str, Any]:
    """What viewers see: no viewer id, and no name when the asker chose to be anonymous."""
    return {
        "id": q["id"],
        "name": None if q["anonymous"] else q["name"],
        "anonymous": q["anonymous"],
        "text": q["text"],
        "opening_id": q["opening_id"],
        "ts": q["ts"],
        "status": q["status"],
        "answer": q["answer"],
        "answered_at": q["answered_at"],
        "votes": votes,
        "hidden": hidden,
    }


def author(q: dict[str, Any]) -> dict[str, Any]:
    return {"id": q["id"], "viewer_id": q["vid"], "name": q["name"]}


def order_key(q: dict[str, Any]) -> tuple[int, int]:
    return (-q["votes"], int(q["id"]))


@dataclass(eq=False)
class QuestionService:
    redis: Redis
    log: EventLog
    config: ChatConfig
    gate: Gate
    review: ReviewQueue
    votes: VoteCoalescer
    opening_lookup: OpeningLookup | None = None
    _vote: AsyncScript = field(init=False, repr=False)
    _unhighlight: AsyncScript = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._vote = self.redis.register_script(_VOTE_LUA)
        self._unhighlight = self.redis.register_script(_UNHIGHLIGHT_LUA)

    # -- asking -------------------------------------------------------------------------------

    async def ask(self, bid: str, actor: Actor, data: dict[str, Any]) -> dict[str, Any]:
        text = message_text(data, self.config.max_chars)
        anonymous = data.get("anonymous", False)
        if not isinstance(anonymous, bool):
            raise Invalid("anonymous must be true or false", fields={"anonymous": "a boolean"})
        oid = data.get("opening_id")
        if oid in (None, ""):
            oid = None
        elif not isinstance(oid, str) or not is_valid_id(oid):
            raise Invalid("bad opening id", fields={"opening_id": "an opening id"})
        elif self.opening_lookup is not None and not await self.opening_lookup(bid, oid):
            raise NotFound("no such opening", code="opening_not_found")
        qid = await self.gate.admit(bid, actor, text, counter=keys.question_seq(bid), slow=False)
        q: dict[str, Any] = {
            "id": qid,
            "vid": actor.viewer_id,
            "name": actor.display_name,
            "anonymous": anonymous,
            "text": text,
            "opening_id": oid,
            "ts": now_ms(),
            "status": "held",
            "answer": None,
            "answered_at": None,
        }
        held = self.config.review_questions and not actor.is_staff
        fields: Fields = {
            "id": qid,
            "vid": q["vid"],
            "name": q["name"],
            "anonymous": "1" if anonymous else "0",
            "text": text,
            "opening_id": oid or "",
            "ts": q["ts"],
            "status": "held" if held else "open",
        }
        if held:
            await self.redis.hset(keys.question(bid, qid), mapping=fields)
            await self.review.hold(bid, "question", q, "question")
            raise Held(
                "pending review: a moderator will check it before others see it",
                extra={"question_id": qid},
            )
        q["status"] = "open"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.question(bid, qid), mapping=fields)
            self._publish_new(pipe, bid, q)
            await pipe.execute()
        return public_question(q, 0, False)

    def _publish_new(self, pipe: Pipeline, bid: str, q: dict[str, Any]) -> None:
        pipe.hset(keys.question(bid, q["id"]), "status", "open")
        pipe.zadd(keys.question_votes(bid), {q["id"]: 0}, nx=True)
        view = public_question({**q, "status": "open"}, 0, False)
        self.log.add_to(pipe, bid, "question.updated", view)
        self.log.add_to(pipe, bid, "question.author", author(q), audience=HOST)

    def approve_effects(self, bid: str) -> Callable[[Pipeline, dict[str, Any]], None]:
        return lambda pipe, q: self._publish_new(pipe, bid, q)

    def reject_effects(self, bid: str) -> Callable[[Pipeline, dict[str, Any]], None]:
        def reject(pipe: Pipeline, q: dict[str, Any]) -> None:
            pipe.delete(keys.question(bid, q["id"]))

        return reject

    # -- voting -------------------------------------------------------------------------------

    async def vote(self, bid: str, actor: Actor, qid: Any, up: Any = True) -> dict[str, Any]:
        qid = _qid(qid)
        if not isinstance(up, bool):
            raise Invalid("up must be true or false", fields={"up": "a boolean"})
        coalesce = self.config.votes_interval > 0
        changed, n = await self._vote(
            keys=[
                keys.question(bid, qid),
                keys.question_voters(bid, qid),
                keys.question_votes(bid),
                keys.question_hidden(bid),
                keys.question_dirty(bid),
                keys.mod_bans(bid),
                keys.mod_ban_ips(bid),
                keys.question_voter_addrs(bid, qid),
                keys.question_addr_votes(bid, qid),
                keys.broadcast(bid),
                keys.chat_open_after_end(bid),
            ],
            args=[
                qid,
                actor.viewer_id,
                "1" if up else "0",
                actor.ip,
                "1" if coalesce else "0",
                vote_address(actor.ip),
                self.config.votes_per_address,
            ],
        )
        if changed == -3:
            raise chat_closed()
        if changed == -2:
            raise Forbidden("you are banned from this room", code="banned")
        if changed == -1:
            raise NotFound("no such question", code="question_not_found")
        if changed == 1:
            if coalesce:
                self.votes.touch(bid)
            else:  # one event per vote: the baseline the coalescer is measured against
                await self.log.publish(bid, "question.votes", {"votes": {qid: n}})
                sources = await self.vote_sources(bid, [qid])
                await self.log.publish(bid, "question.voters", {"voters": sources}, audience=HOST)
        return {"id": qid, "votes": n, "voted": up, "changed": changed == 1}

    async def vote_sources(self, bid: str, qids: list[str]) -> dict[str, dict[str, int]]:
        """For hosts: question id -> `voters` (every viewer's vote) and `addresses` (how many
        addresses they voted from)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for qid in qids:
                pipe.hlen(keys.question_voter_addrs(bid, qid))
                pipe.scard(keys.question_voters(bid, qid))
                pipe.hlen(keys.question_addr_votes(bid, qid))
            res = await pipe.execute()
        return {
            qid: {"voters": int(res[3 * i]) + int(res[3 * i + 1]), "addresses": int(res[3 * i + 2])}
            for i, qid in enumerate(qids)
        }

    # -- host and moderator actions ----------------------------------------------------------

    async def get(self, bid: str, qid: Any) -> dict[str, Any]:
        qid = _qid(qid)
        h = await self.redis.hgetall(keys.question(bid, qid))
        if not h:
            raise NotFound("no such question", code="question_not_found")
        return decode(h)

    async def _update(
        self,
        bid: str,
        qid: Any,
        change: Callable[[dict[str, Any]], dict[str, str]],
        *,
        unhide: bool = False,
    ) -> dict[str, Any]:
        """Read-check-write one approved question under WATCH; publish its new public form."""
        qid = _qid(qid)
        key = keys.question(bid, qid)

        async def body(pipe: Pipeline) -> dict[str, Any]:
            h = await pipe.hgetall(key)
            if not h or h.get(b"status") == b"held":
                raise NotFound("no such question", code="question_not_found")
            q = decode(h)
            fields = change(q)
            hidden = not unhide and bool(await pipe.sismember(keys.question_hidden(bid), qid))
            votes = int(await pipe.zscore(keys.question_votes(bid), qid) or 0)
            q.update({k: v for k, v in fields.items() if k in q})
            if "answered_at" in fields:  # "" when re-opened
                q["answered_at"] = int(fields["answered_at"]) if fields["answered_at"] else None
            pipe.multi()
            if fields:
                pipe.hset(key, mapping=as_fields(fields))
            if unhide:
                pipe.srem(keys.question_hidden(bid), qid)
            # The count read here may be overtaken by a vote; the next votes event carries
            # this question again with the current count.
            pipe.sadd(keys.question_dirty(bid), qid)
            view = public_question(q, votes, hidden)
            # A hidden question's changes are for hosts only.
            audience = HOST if hidden else PUBLIC
            self.log.add_to(pipe, bid, "question.updated", view, audience=audience)
            return view

        view = await transact(
            self.redis, [key, keys.question_hidden(bid)], body, attempts=10, busy=_busy
        )
        self.votes.touch(bid)
        return view

    async def answer(self, bid: str, qid: Any, data: dict[str, Any], by: Actor) -> dict[str, Any]:
        errors: dict[str, str] = {}
        text = text_field(
            data,
            "answer",
            errors,
            max_len=self.config.answer_max_chars,
            required=False,
            multiline=True,
        )
        if errors:
            raise Invalid("bad answer", fields=errors)
        answered = data.get("answered", True)
        if not isinstance(answered, bool):
            raise Invalid("answered must be true or false", fields={"answered": "a boolean"})

        def change(q: dict[str, Any]) -> dict[str, str]:
            if not answered:
                return {"status": "open", "answer": "", "answered_at": ""}
            return {"status": "answered", "answer": text, "answered_at": str(now_ms())}

        view = await self._update(bid, qid, change)
        if not answered:
            view["answer"] = None
            view["answered_at"] = None
        return view

    async def restore(self, bid: str, qid: Any, by: Actor) -> dict[str, Any]:
        return await self._update(bid, qid, lambda q: {}, unhide=True)

    async def hide(self, bid: str, qid: Any, by: Actor) -> dict[str, Any]:
        q = await self.get(bid, qid)
        if q["status"] == "held":
            raise NotFound("no such question", code="question_not_found")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(keys.question_hidden(bid), q["id"])
            self.log.add_to(pipe, bid, "question.hidden", {"id": q["id"]})
            await pipe.execute()
        if await self._unhighlight(keys=[keys.question_highlight(bid)], args=[q["id"]]):
            await self.log.publish(bid, "question.highlighted", {"id": None})
        return {"id": q["id"], "hidden": True}

    async def highlight(self, bid: str, qid: Any, by: Actor) -> dict[str, Any]:
        """Highlight one question on every screen; `qid` None clears the highlight."""
        if qid is None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.question_highlight(bid))
                self.log.add_to(pipe, bid, "question.highlighted", {"id": None})
                await pipe.execute()
            return {"id": None}
        q = await self.get(bid, qid)
        if q["status"] == "held":
            raise NotFound("no such question", code="question_not_found")
        if await self.redis.sismember(keys.question_hidden(bid), q["id"]):
            raise Conflict("restore the question before highlighting it", code="question_hidden")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.question_highlight(bid), q["id"])
            self.log.add_to(pipe, bid, "question.highlighted", {"id": q["id"]})
            await pipe.execute()
        return {"id": q["id"]}

    # -- reading ------------------------------------------------------------------------------

    async def listing(self, bid: str, *, host: bool) -> dict[str, Any]:
        """The snapshot part: ordered questions (hosts: hidden ones too, with authors) and the
        highlighted id."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(keys.question_votes(bid), 0, -1, withscores=True)
            pipe.smembers(keys.question_hidden(bid))
            pipe.get(keys.question_highlight(bid))
            scored, hidden_raw, hl = await pipe.execute()
        hidden = {_s(h) for h in hidden_raw}
        rows = [(_s(m), int(s)) for m, s in scored if host or _s(m) not in hidden]
        rows.sort(key=lambda r: (-r[1], int(r[0])))
        rows = rows[: self.config.questions_in_snapshot]
        async with self.redis.pipeline(transaction=False) as pipe:
            for qid, _ in rows:
                pipe.hgetall(keys.question(bid, qid))
            hashes = await pipe.execute()
        sources = await self.vote_sources(bid, [qid for qid, _ in rows]) if host else {}
        out = []
        for (qid, votes), h in zip(rows, hashes, strict=True):
            if not h:
                continue
            q = decode(h)
            view = public_question(q, votes, qid in hidden)
            if host:
                view["author"] = {"viewer_id": q["vid"], "name": q["name"]}
                view.update(sources[qid])
            out.append(view)
        return {"questions": out, "highlighted_question": _s(hl) or None}


def _qid(qid: Any) -> str:
    qid = str(qid) if isinstance(qid, int) and not isinstance(qid, bool) else qid
    if not isinstance(qid, str) or not qid.isdigit() or len(qid) > 12:
        raise Invalid("bad question id", fields={"id": "a question id"})
    return qid
