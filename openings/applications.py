"""Applications: written durably and exactly once, readable by hosts only.

One Lua script does all of an application's checks and writes, so they are atomic and cost one
round trip: the idempotency key (same key and body: the first result; another body: refused),
whether the opening is published and before its deadline, the per-viewer, per-IP and per-phone
rate limits, the writes, and the host-only `application.received` event carrying ids and
counts. Fifty concurrent submits with one key therefore store one application, and nothing is
half-written.

Every submission is stored, also when its phone number already applied to the opening: the
sender cannot tell a number that applied before from a new one (same status, same answer, an
id of its own), so nobody learns whether someone else applied, and nobody can apply first in
another person's name to make that person's own application vanish. Hosts see all
submissions for one number to one opening side by side (`same_phone`) and decide.

Durability: the caller answers only after the script returned, and Redis answers only after it
appended the write to its AOF (see docs/protocol.md, "What durable means").

Statuses, as the applicant sees them: submitted (已投递) -> viewed (已查看, set the first time
a host opens the application, or by hand) -> contacted (已联系) -> interview (邀请面试, with
when, where or a link) -> hired (已录用) or not_selected (未通过). Each change writes, in one
MULTI, the status, the host-only `application.status` event and a notice to the applicant
(core/notices.py); then the applicant's own sockets get `application.mine` (openings/mine.py
says who they are). Records stored before these words read "new" as submitted and "rejected"
as not_selected, and the API still takes the old words (OLD_STATUSES).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, get_args

import orjson
from jobcast.core import keys
from jobcast.core.errors import Conflict, Invalid, NotFound, RateLimited
from jobcast.core.events import HOST, EventLog, EventScript, Hole
from jobcast.core.ids import is_valid_id, new_id
from jobcast.core.notices import add_notice
from jobcast.core.replies import RawHash, text, text_hash, texts
from jobcast.core.tx import busy_conflict, transact
from jobcast.openings import mine
from jobcast.openings.applicant import StatusWord, validate_application, validate_interview
from jobcast.openings.models import EDUCATION
from jobcast.openings.service import OpeningService
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

STATUSES: tuple[str, ...] = get_args(StatusWord)
# The words used before the applicant could see their status, read (and accepted) as these.
OLD_STATUSES = {"new": "submitted", "rejected": "not_selected"}
LANGS = ("zh-CN", "en")  # the page languages an application records (the notice's language)
IDEMPOTENCY_KEY_MAX = 100
SAME_PHONE_IDS_MAX = 20  # ids listed under same_phone_ids (the count is exact)
_IDEM_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")

# KEYS: 1 idempotency, 2 openings hash, 3 viewer rate, 4 ip rate, 5 phone-at-this-ip rate,
#       6 this phone's applications to the opening, 7 legacy phones hash, 8 new application,
#       9 broadcast applications, 10 opening applications, 11 viewer applied,
#       12-15 the application.received event's keys (EventLog.event),
#       16 the viewer's applications across broadcasts, 17 the phone's (openings/mine.py)
# ARGV: 1 fingerprint, 2 application id, 3 opening id, 4 now ms, 5 phone, 6 idempotency ttl,
#       7 viewer limit, 8 ip limit, 9 rate window, 10 key prefix of an application (for EXISTS
#       on an earlier id), 11 the application's fields as a JSON object of strings (one
#       argument instead of forty: packing arguments is the client's main cost),
#       12 phone limit, 13-15 the event's arguments (its counts are holes),
#       16 the application's member in the cross-broadcast indexes ("bid/aid")
_APPLY_LUA = """
local prev = redis.call('GET', KEYS[1])
if prev then
  local fp, aid = string.match(prev, '^(%S+) (%S+)')
  if fp ~= ARGV[1] then return {'mismatch'} end
  if redis.call('EXISTS', ARGV[10] .. aid) == 0 then return {'gone', aid} end
  return {'replay', aid}
end
local raw = redis.call('HGET', KEYS[2], ARGV[3])
if not raw then return {'missing'} end
local op = cjson.decode(raw)
if op['status'] ~= 'published' then return {'closed'} end
local deadline = tonumber(op['deadline_ms']) or 0
if deadline > 0 and tonumber(ARGV[4]) > deadline then return {'expired'} end
local limits = {
  {KEYS[3], ARGV[7], 'viewer'}, {KEYS[4], ARGV[8], 'ip'}, {KEYS[5], ARGV[12], 'phone'}
}
for _, l in ipairs(limits) do
  local n = redis.call('INCR', l[1])
  if n == 1 then redis.call('EXPIRE', l[1], ARGV[9]) end
  if n > tonumber(l[2]) then return {'rate', l[3], redis.call('TTL', l[1])} end
end
-- An application stored while one per phone and opening was kept joins this phone's list.
local legacy = redis.call('HGET', KEYS[7], ARGV[5])
if legacy then
  local at = redis.call('HGET', ARGV[10] .. legacy, 'created_at')
  if at then redis.call('ZADD', KEYS[6], tonumber(at) or 0, legacy) end
  redis.call('HDEL', KEYS[7], ARGV[5])
end
local flat = {'opening_title', op['title'], 'employer', op['employer']['name']}
for k, v in pairs(cjson.decode(ARGV[11])) do
  flat[#flat + 1] = k
  flat[#flat + 1] = v
end
redis.call('HSET', KEYS[8], unpack(flat))
redis.call('ZADD', KEYS[6], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[9], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[10], ARGV[4], ARGV[2])
redis.call('HSET', KEYS[11], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[16], ARGV[4], ARGV[16])
redis.call('ZADD', KEYS[17], ARGV[4], ARGV[16])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'EX', ARGV[6])
local count = redis.call('ZCARD', KEYS[10])
local total = redis.call('ZCARD', KEYS[9])
local same = redis.call('ZCARD', KEYS[6]) - 1
jc_event(12, 13, {count = count, total = total, same_phone = same})
return {'new', ARGV[2], same}
"""

# KEYS: 1 application, 2 broadcast applications, 3 opening applications, 4 legacy phones hash,
#       5 viewer applied, 6 this phone's applications to the opening,
#       7-10 the application.deleted event's keys (EventLog.event),
#       11 the viewer's cross-broadcast applications, 12 the phone's
# ARGV: 1 application id, 2 opening id, 3 phone, 4-6 the event's arguments (counts: holes),
#       7 the member "bid/aid" of 11 and 12
_DELETE_LUA = """
if redis.call('HGET', KEYS[1], 'opening_id') ~= ARGV[2] then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
if redis.call('HGET', KEYS[4], ARGV[3]) == ARGV[1] then redis.call('HDEL', KEYS[4], ARGV[3]) end
if redis.call('HGET', KEYS[5], ARGV[2]) == ARGV[1] then redis.call('HDEL', KEYS[5], ARGV[2]) end
redis.call('ZREM', KEYS[11], ARGV[7])
redis.call('ZREM', KEYS[12], ARGV[7])
local count = redis.call('ZCARD', KEYS[3])
local total = redis.call('ZCARD', KEYS[2])
jc_event(7, 4, {count = count, total = total})
return count
"""


def phone_digest(phone: str) -> str:
    """Names a phone number in Redis key names (so numbers don't show in key listings and
    monitoring); not a secret: the number itself is in the application."""
    return hashlib.sha256(phone.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class ApplyLimits:
    per_viewer: int = 20
    per_ip: int = 600
    # Counted per phone number at one address as well, so that a fresh viewer cookie per
    # request does not reset one applicant's budget. Per address, so that nobody elsewhere can
    # use up the budget of someone else's number; rotating numbers too meets the per-IP limit.
    per_phone: int = 20
    window: int = 600  # seconds
    idempotency_ttl: int = 24 * 3600


@dataclass(frozen=True)
class ApplyResult:
    application_id: str
    opening_id: str
    duplicate: bool  # this phone had applied to this opening before (for hosts and metrics)
    replayed: bool  # the same Idempotency-Key was seen before
    new: bool  # this request stored the application

    def public(self) -> dict[str, Any]:
        """What the applicant gets back: their own ids, none of the personal data, and nothing
        that tells whether the phone number had applied before."""
        return {
            "application_id": self.application_id,
            "opening_id": self.opening_id,
            "applied": True,
        }


def fingerprint(oid: str, body: Any) -> str:
    """Of the request as sent (keys sorted), so a retry with one changed field is told apart."""
    raw = orjson.dumps({"o": oid, "b": body}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:32]


def check_idempotency_key(key: str | None) -> str:
    if not key:
        raise Invalid(
            "send an Idempotency-Key header (a fresh random value per application)",
            code="idempotency_key_required",
            fields={"Idempotency-Key": "required"},
        )
    if len(key) > IDEMPOTENCY_KEY_MAX or not set(key) <= _IDEM_OK:
        raise Invalid(
            "bad Idempotency-Key",
            fields={"Idempotency-Key": f"1 to {IDEMPOTENCY_KEY_MAX} of A-Z a-z 0-9 - _ . :"},
        )
    return key


@dataclass(eq=False)
class ApplicationService:
    redis: Redis
    log: EventLog
    openings: OpeningService
    limits: ApplyLimits = field(default_factory=ApplyLimits)
    phone_key: Callable[[str], str] = mine.unkeyed_phone_key
    """Names a phone number in the cross-broadcast keys (the app gives an HMAC with its secret;
    the name is stored with the application, so deleting needs no secret)."""
    tell: Callable[[str, dict[str, Any]], Awaitable[None]] | None = None
    """Sends `application.mine` to one viewer id's own sockets (web/realtime/private.py)."""
    stored: int = field(init=False, default=0)
    """Applications this process stored (for metrics: a count, nothing else)."""
    _apply: EventScript = field(init=False, repr=False)
    _delete: EventScript = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._apply = self.log.script(_APPLY_LUA)
        self._delete = self.log.script(_DELETE_LUA)

    # -- applying ---------------------------------------------------------------------------

    async def apply(
        self,
        oid: str,
        *,
        viewer_id: str,
        ip: str,
        idempotency_key: str | None,
        body: Any,
        lang: str = "zh-CN",
    ) -> ApplyResult:
        key = check_idempotency_key(idempotency_key)
        fields = validate_application(body)
        fields["lang"] = lang if lang in LANGS else LANGS[0]
        bid = await self.openings.owner(oid)
        res = await self._store(bid, oid, viewer_id, ip, key, fingerprint(oid, body), fields)
        if res.new:
            await self._tell(bid, res.application_id)
        return res

    async def _store(
        self,
        bid: str,
        oid: str,
        vid: str,
        ip: str,
        key: str,
        fp: str,
        fields: dict[str, Any],
    ) -> ApplyResult:
        lim = self.limits
        now = int(time.time() * 1000)
        aid = new_id(10)
        record = {
            "id": aid,
            "opening_id": oid,
            "broadcast_id": bid,
            "viewer_id": vid,
            "status": "submitted",
            "created_at": now,
            "updated_at": now,
            "status_at": now,
            "consented_at": now,
            "phone_key": self.phone_key(fields["phone"]),
            **fields,
        }
        packed = orjson.dumps({k: str(v) for k, v in record.items()})
        digest = phone_digest(fields["phone"])
        received = self.log.event(
            bid,
            "application.received",
            {
                "opening_id": oid,
                "application_id": aid,
                "count": Hole("count"),
                "total": Hole("total"),
                "same_phone": Hole("same_phone"),
            },
            audience=HOST,
            ts=now,
        )
        res = await self._apply(
            keys=[
                keys.idempotency(bid, vid, key),
                keys.openings(bid),
                keys.apply_rate(bid, "v:" + vid, lim.window),
                keys.apply_rate(bid, "ip:" + ip, lim.window),
                keys.apply_rate(bid, f"p:{digest}:{ip}", lim.window),
                keys.phone_applications(bid, oid, digest),
                keys.opening_phones(bid, oid),
                keys.application(bid, aid),
                keys.applications(bid),
                keys.opening_applications(bid, oid),
                keys.viewer_applied(bid, vid),
                *received.keys,
                mine.viewer_index(vid),
                mine.phone_index(record["phone_key"]),
            ],
            args=[
                fp,
                aid,
                oid,
                now,
                fields["phone"],
                lim.idempotency_ttl,
                lim.per_viewer,
                lim.per_ip,
                lim.window,
                keys.application(bid, ""),
                packed,
                lim.per_phone,
                *received.args,
                mine.member(bid, aid),
            ],
        )
        kind = res[0].decode()
        if kind == "new":
            self.stored += 1
            return ApplyResult(aid, oid, duplicate=int(res[2]) > 0, replayed=False, new=True)
        if kind == "replay":  # this Idempotency-Key was seen: the first result again
            return ApplyResult(res[1].decode(), oid, duplicate=False, replayed=True, new=False)
        if kind == "mismatch":
            raise Invalid(
                "this Idempotency-Key was used with a different application",
                code="idempotency_key_reused",
                fields={"Idempotency-Key": "already used with another body"},
            )
        if kind == "gone":
            raise Conflict("this application was deleted", code="application_deleted")
        if kind == "missing":
            raise NotFound("no such opening", code="opening_not_found")
        if kind == "closed":
            raise Conflict("this opening is not taking applications", code="opening_closed")
        if kind == "expired":
            raise Conflict("the application deadline has passed", code="deadline_passed")
        if kind == "rate":
            who = res[1].decode()
            raise RateLimited(
                "too many applications, try again later",
                code="rate_limited",
                retry_after=max(1, int(res[2])),
                extra={"limit": who},
            )
        raise RuntimeError(f"unexpected apply result {kind}")

    async def applied(self, bid: str, vid: str) -> dict[str, str]:
        """Opening id -> application id for what this viewer applied to in the broadcast."""
        raw = await self.redis.hgetall(keys.viewer_applied(bid, vid))
        return text_hash(raw)

    # -- hosts ------------------------------------------------------------------------------

    async def counts(self, bid: str) -> dict[str, int]:
        oids = texts(await self.redis.hkeys(keys.openings(bid)))
        async with self.redis.pipeline(transaction=False) as p:
            for oid in oids:
                p.zcard(keys.opening_applications(bid, oid))
            ns = await p.execute()
        return {oid: int(n) for oid, n in zip(oids, ns, strict=True)}

    async def snapshot(self, bid: str, is_host: bool) -> dict[str, Any]:
        """Snapshot part: counts for hosts; nothing for viewers."""
        if not is_host:
            return {}
        counts = await self.counts(bid)
        total = await self.redis.zcard(keys.applications(bid))
        return {"application_counts": counts, "applications_total": int(total)}

    async def get(self, bid: str, aid: str) -> dict[str, Any]:
        h = await self.redis.hgetall(keys.application(bid, aid)) if is_valid_id(aid) else {}
        if not h:
            raise NotFound("no such application", code="application_not_found")
        return (await self._same_phone(bid, [_public(h)]))[0]

    async def _same_phone(self, bid: str, apps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Mark each application with the other applications to its opening from its phone
        number: `same_phone` (how many) and `same_phone_ids` (newest first, at most
        SAME_PHONE_IDS_MAX)."""
        async with self.redis.pipeline(transaction=False) as p:
            for a in apps:
                key = keys.phone_applications(bid, a["opening_id"], phone_digest(a["phone"]))
                p.zcard(key)
                p.zscore(key, a["id"])
                p.zrevrange(key, 0, SAME_PHONE_IDS_MAX)
            res = await p.execute()
        for i, a in enumerate(apps):
            n, own, ids = res[3 * i : 3 * i + 3]
            a["same_phone"] = int(n) - (1 if own is not None else 0)
            others = [x.decode() for x in ids if x.decode() != a["id"]]
            a["same_phone_ids"] = others[:SAME_PHONE_IDS_MAX]
        return apps

    async def list(
        self,
        bid: str,
        *,
        opening_id: str = "",
        status: str = "",
        employer: str = "",
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total before paging, one page newest first), filtered."""
        status = check_status(status) if status else ""
        items = [a async for a in self.iter(bid, opening_id=opening_id)]
        if status:
            items = [a for a in items if a["status"] == status]
        if employer:
            items = [a for a in items if a["employer"] == employer]
        return len(items), items[offset : offset + limit]

    async def iter(
        self, bid: str, *, opening_id: str = "", chunk: int = 500
    ) -> AsyncIterator[dict[str, Any]]:
        """Every application (newest first), read in chunks."""
        index = keys.opening_applications(bid, opening_id) if opening_id else keys.applications(bid)
        start = 0
        while True:
            ids = await self.redis.zrevrange(index, start, start + chunk - 1)
            if not ids:
                return
            async with self.redis.pipeline(transaction=False) as p:
                for aid in ids:
                    p.hgetall(keys.application(bid, text(aid)))
                rows = await p.execute()
            for a in await self._same_phone(bid, [_public(h) for h in rows if h]):
                yield a
            start += chunk

    async def set_status(
        self,
        bid: str,
        aid: str,
        status: Any,
        *,
        interview: Any = None,
        only_from: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """Change the status (an old word is taken as its new one); `interview` (when, where
        or a link, a note) goes with "interview", and stays as it was when not given. With
        `only_from`, nothing changes unless the status is one of those (marking viewed).

        The status, the host event and the applicant's notice are one MULTI; the applicant's
        sockets hear of it after it is written. Setting what is already set writes nothing."""
        status = check_status(status)
        details = validate_interview(interview) if interview is not None else None
        if details is not None and status != "interview":
            raise Invalid(
                "interview details go with the interview status",
                fields={"interview": "only with status interview"},
            )
        key = keys.application(bid, aid)
        if not is_valid_id(aid):
            raise NotFound("no such application", code="application_not_found")

        async def change(p: Pipeline) -> bool:
            h = text_hash(await p.hgetall(key))
            if not h.get("opening_id"):
                raise NotFound("no such application", code="application_not_found")
            before = status_word(h.get("status", ""))
            if only_from and before not in only_from:
                return False
            old_details = h.get("interview", "")
            packed = orjson.dumps(details).decode() if details is not None else old_details
            if status != "interview":
                packed = ""
            if before == status and packed == old_details:
                return False
            now = int(time.time() * 1000)
            p.multi()
            p.hset(key, mapping={"status": status, "updated_at": now, "status_at": now})
            if packed:
                p.hset(key, "interview", packed)
            else:
                p.hdel(key, "interview")
            data = {"application_id": aid, "opening_id": h["opening_id"], "status": status}
            self.log.add_to(p, bid, "application.status", data, audience=HOST)
            after = {**h, "status": status, "status_at": str(now), "interview": packed}
            add_notice(
                p,
                "application.status",
                bid=bid,
                lang=h.get("lang") or LANGS[0],
                to={"phone": h.get("phone", ""), "name": h.get("name", ""), "application_id": aid},
                data=mine.notice_data(after),
            )
            return True

        changed = await transact(self.redis, [key], change, attempts=10, busy=busy_conflict)
        if changed:
            await self._tell(bid, aid)
        return await self.get(bid, aid)

    async def mark_viewed(self, bid: str, aid: str) -> dict[str, Any]:
        """A host opened the application: submitted becomes viewed (once)."""
        return await self.set_status(bid, aid, "viewed", only_from=("submitted",))

    async def _tell(self, bid: str, aid: str) -> None:
        """`application.mine` to the applicant's viewer id and to the viewer ids that
        confirmed its phone number: their sockets only, never logged."""
        if self.tell is None:
            return
        h = text_hash(await self.redis.hgetall(keys.application(bid, aid)))
        if not h:
            return
        to = {h.get("viewer_id", "")}
        if h.get("phone_key"):
            to |= set(texts(await self.redis.smembers(mine.phone_viewers(h["phone_key"]))))
        form = mine.viewer_form(h)
        for vid in sorted(v for v in to if v):
            await self.tell(vid, form)

    async def delete(self, bid: str, aid: str) -> int:
        """Delete one application (on the applicant's request); returns the opening's count."""
        if not is_valid_id(aid):
            raise NotFound("no such application", code="application_not_found")
        h = await self.redis.hmget(
            keys.application(bid, aid), "opening_id", "phone", "viewer_id", "phone_key"
        )
        if h[0] is None:
            raise NotFound("no such application", code="application_not_found")
        oid, phone, vid, pkey = (text(x) if x else "" for x in h)
        deleted = self.log.event(
            bid,
            "application.deleted",
            {
                "opening_id": oid,
                "application_id": aid,
                "count": Hole("count"),
                "total": Hole("total"),
            },
            audience=HOST,
        )
        count = await self._delete(
            keys=[
                keys.application(bid, aid),
                keys.applications(bid),
                keys.opening_applications(bid, oid),
                keys.opening_phones(bid, oid),
                keys.viewer_applied(bid, vid),
                keys.phone_applications(bid, oid, phone_digest(phone)),
                *deleted.keys,
                mine.viewer_index(vid),
                mine.phone_index(pkey or self.phone_key(phone)),
            ],
            args=[aid, oid, phone, *deleted.args, mine.member(bid, aid)],
        )
        if count is None:
            raise NotFound("no such application", code="application_not_found")
        return int(count)

    async def purge(self, older_than_days: float, *, now_ms: int | None = None) -> int:
        """Delete every application older than the retention period; returns how many."""
        cutoff = (now_ms or int(time.time() * 1000)) - int(older_than_days * 86_400_000)
        n = 0
        for raw in await self.redis.zrange(keys.BROADCAST_INDEX, 0, -1):
            bid = text(raw)
            while True:
                old = await self.redis.zrangebyscore(
                    keys.applications(bid), "-inf", cutoff, start=0, num=500
                )
                if not old:
                    break
                for aid in old:
                    try:
                        await self.delete(bid, text(aid))
                    except NotFound:
                        # Index entry without a record: drop it so the loop ends.
                        await self.redis.zrem(keys.applications(bid), text(aid))
                        continue
                    n += 1
        return n


def status_word(raw: str) -> str:
    """A stored status in today's words ("new" -> submitted, "rejected" -> not_selected)."""
    return OLD_STATUSES.get(raw, raw) or "submitted"


def check_status(value: Any) -> str:
    """A status the API takes (today's words, or an old one read as its new word)."""
    if isinstance(value, str) and (value in STATUSES or value in OLD_STATUSES):
        return status_word(value)
    raise Invalid("bad status", fields={"status": "one of " + ", ".join(STATUSES)})


def _public(h: RawHash) -> dict[str, Any]:
    d = text_hash(h)
    degree = d.get("degree", "")
    return {
        "id": d["id"],
        "opening_id": d.get("opening_id", ""),
        "opening_title": d.get("opening_title", ""),
        "employer": d.get("employer", ""),
        "name": d.get("name", ""),
        "phone": d.get("phone", ""),
        "email": d.get("email", ""),
        "school": d.get("school", ""),
        "major": d.get("major", ""),
        "degree": degree,
        "degree_label": EDUCATION[degree][1] if degree in EDUCATION else "",
        "graduation_year": int(d.get("graduation_year") or 0) or None,
        "note": d.get("note", ""),
        "status": status_word(d.get("status", "")),
        "status_at": mine.status_at(d),
        "interview": mine.interview_of(d),
        "lang": d.get("lang") or LANGS[0],
        "created_at": int(d.get("created_at") or 0),
        "updated_at": int(d.get("updated_at") or 0),
        "consent_version": d.get("consent_version", ""),
        "consented_at": int(d.get("consented_at") or 0),
    }
