"""Interviews booked from the card: slots per opening, invitations, one-tap bookings, reminders.

A host sets interview slots per opening (start, duration, place or link, capacity) and invites
an application: its status becomes `interview` (ApplicationService.set_status) and it may then
book one slot of its opening. Booking is one Lua script: it checks the invitation, the slot's
time and capacity, frees the application's previous seat when it moves, takes the new one,
queues the applicant's notice (core/notices.py; the script adds it to the outbox, so a stored
booking always has its notice and a refused one has none) and publishes the host event with
the counts. Two applicants tapping the last seat at once: the script runs one at a time, the
second finds it full (`slot_full`).

Reminders: each booking is a member 'bid/aid/sid' of keys.INTERVIEW_REMINDERS scored by the
slot's start. Every process runs a `Reminders` task; a member falls due `lead` before the
start, and whoever removes it (ZREM, in the script that queues the notice) sends it, so each
reminder is queued once however many processes look.

Host events carry ids and counts, never an applicant's name or phone; the applicant hears of
their own interview through a private event (`interview.mine`, never logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import orjson
from jobcast.core import keys, tasks
from jobcast.core.errors import Conflict, Invalid, NotFound
from jobcast.core.events import HOST, EventLog, EventScript, Hole, pipeline_script, queue_script
from jobcast.core.ids import is_valid_id, new_id
from jobcast.core.notices import NOTICES_MAX, Kind, add_notice
from jobcast.core.replies import text, text_hash
from jobcast.core.tx import busy_conflict, transact
from jobcast.openings import mine
from jobcast.openings.applications import ApplicationService
from jobcast.openings.models import Opening
from jobcast.openings.service import OpeningService
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

log = logging.getLogger("jobcast.interviews")

CAPACITY_MAX = 500
DURATION_MIN, DURATION_MAX, DURATION_DEFAULT = 5, 480, 30  # minutes
PLACE_MAX, LINK_MAX = 200, 500
SLOTS_MAX = 100  # per opening
HORIZON_MS = 366 * 86_400_000  # a slot starts within a year
DEFAULT_LANG = "zh-CN"
SLOT_FIELDS = ("start", "duration", "place", "link", "capacity")

# Who tells a viewer of a change: (viewer id, event type, data), web/realtime/private.py.
Tell = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class Manager(Protocol):
    """The logged-in account asking (web/access/auth.HostUser)."""

    @property
    def is_host(self) -> bool: ...


def can_manage_opening(caller: Manager | None, opening: Opening) -> bool:
    """Whether `caller` may set the opening's slots and invite its applicants.

    The organization middleware has already checked that the caller's organization owns the
    broadcast; within it, hosts manage every opening, and a recruiter the openings of its own
    employer (by the employer's name key, openings/employers.py)."""
    if caller is None:
        return False
    if caller.is_host:
        return True
    from jobcast.openings.employers import employer_key_of

    key = getattr(caller, "employer_key", "")
    return bool(key) and getattr(caller, "is_recruiter", False) and employer_key_of(opening) == key


async def owns_application(redis: Redis, viewer_id: str, bid: str, aid: str) -> bool:
    """Whether `viewer_id` may act on application `aid` as its applicant: it sent it (the
    application's viewer id), it confirmed the application's phone number with a code
    (openings/mine.py: another device of the same person), or the id is in keys.viewer_owned
    (a device linked some other way)."""
    if not (viewer_id and is_valid_id(bid) and is_valid_id(aid)):
        return False
    sent, pkey = await redis.hmget(keys.application(bid, aid), "viewer_id", "phone_key")
    if sent is not None and text(sent) == viewer_id:
        return True
    if pkey and await redis.hexists(mine.viewer_phones(viewer_id), text(pkey)):
        return True
    return bool(await redis.sismember(keys.viewer_owned(viewer_id), f"{bid}/{aid}"))


async def linked_applications(redis: Redis, viewer_id: str) -> set[str]:
    """'bid/aid' of the applications this viewer id may act on besides its own invitations:
    those of the phone numbers it confirmed, and keys.viewer_owned."""
    found = {text(m) for m in await redis.smembers(keys.viewer_owned(viewer_id))}
    for pkey in await redis.hkeys(mine.viewer_phones(viewer_id)):
        found |= {text(m) for m in await redis.zrange(mine.phone_index(text(pkey)), 0, -1)}
    return found


# -- validation -----------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def validate_slot(
    body: Any, *, now_ms: int, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A slot's fields from a request body (all of them, or with `current` the changed ones
    over it); raises Invalid (422, code `bad_slot`) naming every bad field."""
    if not isinstance(body, dict):
        raise Invalid("expected a JSON object", fields={"body": "must be an object"})
    bad: dict[str, str] = {}
    for k in body:
        if k not in SLOT_FIELDS:
            bad[str(k)[:40]] = "unknown field"
    out: dict[str, Any] = dict(current or {})
    given = {k: v for k, v in body.items() if k in SLOT_FIELDS}
    if current is None:
        given.setdefault("duration", DURATION_DEFAULT)
        given.setdefault("place", "")
        given.setdefault("link", "")
    if "start" in given or current is None:
        start = _int(given.get("start"))
        if start is None:
            bad["start"] = "required: the start as Unix milliseconds"
        elif start <= now_ms:
            bad["start"] = "must be in the future"
        elif start > now_ms + HORIZON_MS:
            bad["start"] = "must be within a year"
        else:
            out["start"] = start
    if "duration" in given:
        d = _int(given["duration"])
        if d is None or not DURATION_MIN <= d <= DURATION_MAX:
            bad["duration"] = f"minutes, from {DURATION_MIN} to {DURATION_MAX}"
        else:
            out["duration"] = d
    if "capacity" in given or current is None:
        c = _int(given.get("capacity"))
        if c is None or not 1 <= c <= CAPACITY_MAX:
            bad["capacity"] = f"a whole number from 1 to {CAPACITY_MAX}"
        else:
            out["capacity"] = c
    for name, limit in (("place", PLACE_MAX), ("link", LINK_MAX)):
        if name not in given:
            continue
        v = given[name]
        if v is None:
            v = ""
        if not isinstance(v, str):
            bad[name] = "must be text"
            continue
        v = " ".join(v.split())
        if len(v) > limit:
            bad[name] = f"at most {limit} characters"
        elif name == "link" and v and not v.lower().startswith(("https://", "http://")):
            bad[name] = "a link starting with https://"
        else:
            out[name] = v
    if "place" not in bad and "link" not in bad and not out.get("place") and not out.get("link"):
        bad["place"] = "give a place or a link"
    if bad:
        raise Invalid("bad interview slot", code="bad_slot", fields=bad)
    return out


# -- scripts --------------------------------------------------------------------------------

# The application's `interview` field (its status's details: when, where or a link, a note,
# as openings/applicant.py `Interview`), kept to the booking so that the applicant's own
# list of applications shows the time; the host's note stays. `starts` nil: not booked.
_DETAILS_FN = """
local function jc_iv_details(key, starts, place, link)
  local note = ''
  local cur = redis.call('HGET', key, 'interview')
  if cur then
    local ok, d = pcall(cjson.decode, cur)
    if ok and type(d) == 'table' and type(d['note']) == 'string' then note = d['note'] end
  end
  local at = 'null'
  if starts then at = string.format('%d', tonumber(starts)) end
  redis.call('HSET', key, 'interview', '{"starts_at":' .. at .. ',"place":' ..
    cjson.encode(place or '') .. ',"link":' .. cjson.encode(link or '') .. ',"note":' ..
    cjson.encode(note) .. '}')
end
"""

# KEYS: 1 the opening's slots, 2 the new slot's seats, 3 the previous slot's seats (2 when
#       none), 4 bookings, 5 invites, 6 notices, 7 reminders, 8-11 the interview.booked event,
#       12 the application
# ARGV: 1 application id, 2 slot id, 3 the previous slot id the caller read ('' none),
#       4 now ms, 5 the notice (JSON), 6 notices cap, 7 opening id, 8 'bid/aid/' (reminder
#       member prefix), 9-11 the event's arguments (holes: booked, freed)
_BOOK_LUA = (
    _DETAILS_FN
    + """
local cur = redis.call('HGET', KEYS[4], ARGV[1]) or ''
if cur ~= ARGV[3] then return {'stale'} end
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[7] then return {'not_invited'} end
local raw = redis.call('HGET', KEYS[1], ARGV[2])
if not raw then return {'no_slot'} end
local slot = cjson.decode(raw)
if tonumber(slot['start']) <= tonumber(ARGV[4]) then return {'past'} end
local n = redis.call('ZCARD', KEYS[2])
if cur == ARGV[2] then return {'same', n} end
if n >= tonumber(slot['capacity']) then return {'full', n} end
local freed = 0
if cur ~= '' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[7], ARGV[8] .. cur)
  freed = redis.call('ZCARD', KEYS[3])
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[7], slot['start'], ARGV[8] .. ARGV[2])
redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[6], '*', 'n', ARGV[5])
jc_iv_details(KEYS[12], slot['start'], slot['place'], slot['link'])
jc_event(8, 9, {booked = n + 1, freed = freed})
return {'ok', n + 1, freed}
"""
)

# KEYS: 1 the slot's seats, 2 bookings, 3 notices, 4 reminders, 5-8 interview.cancelled,
#       9 the application
# ARGV: 1 application id, 2 the slot id the caller read, 3 the notice, 4 notices cap,
#       5 the reminder member, 6-8 the event's arguments (hole: booked)
_CANCEL_LUA = (
    _DETAILS_FN
    + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return {'stale'} end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[5])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'n', ARGV[3])
jc_iv_details(KEYS[9], nil, '', '')
local n = redis.call('ZCARD', KEYS[1])
jc_event(5, 6, {booked = n})
return {'ok', n}
"""
)

# KEYS: 1 the opening's slots, 2 the slot's seats, 3 bookings, 4 notices, 5 reminders,
#       6-9 interview.slot_deleted
# ARGV: 1 slot id, 2 force ('1'), 3 notices cap, 4 JSON {aid: notice} for the bookings the
#       caller read, 5 'bid/' (member prefix), 6-8 the event's arguments, 9 the key prefix
#       of an application
_DELETE_SLOT_LUA = (
    _DETAILS_FN
    + """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'missing'} end
local aids = redis.call('ZRANGE', KEYS[2], 0, -1)
if #aids > 0 and ARGV[2] ~= '1' then return {'booked', #aids} end
local notes = cjson.decode(ARGV[4])
for _, aid in ipairs(aids) do
  if notes[aid] == nil then return {'stale'} end
end
for _, aid in ipairs(aids) do
  redis.call('HDEL', KEYS[3], aid)
  redis.call('ZREM', KEYS[5], ARGV[5] .. aid .. '/' .. ARGV[1])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'n', notes[aid])
  jc_iv_details(ARGV[9] .. aid, nil, '', '')
end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], ARGV[1])
jc_event(6, 6)
return {'ok', #aids}
"""
)

# KEYS: 1 the application. ARGV: 1 start ms, 2 place, 3 link (a booked slot changed).
_SET_DETAILS_LUA = _DETAILS_FN + "jc_iv_details(KEYS[1], ARGV[1], ARGV[2], ARGV[3])\n"
_SET_DETAILS = pipeline_script(_SET_DETAILS_LUA)

# KEYS: 1 reminders, 2 notices. ARGV: 1 member, 2 the notice ('' drops the member), 3 cap.
_CLAIM_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == '' then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'n', ARGV[2])
return 1
"""


class _Capture:
    """Stands in for a pipeline to take the entry `add_notice` would queue, so that a script
    can add it to the outbox when (and only when) its write succeeds."""

    def __init__(self) -> None:
        self.entry: bytes = b""

    def xadd(self, name: str, fields: dict[str, bytes], **_kw: Any) -> None:
        assert name == keys.NOTICES
        self.entry = fields["n"]


def notice_entry(
    kind: Kind, *, bid: str, lang: str, to: dict[str, Any], data: dict[str, Any]
) -> bytes:
    """The outbox entry of one notice, as core.notices.add_notice makes it."""
    cap = _Capture()
    add_notice(cast(Pipeline, cap), kind, bid=bid, lang=lang, to=to, data=data)
    return cap.entry


def _slot(raw: bytes | str) -> dict[str, Any]:
    d: dict[str, Any] = orjson.loads(raw)
    return d


def _sorted(slots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(slots, key=lambda s: (s["start"], s["id"]))


@dataclass(eq=False)
class InterviewService:
    redis: Redis
    log: EventLog
    openings: OpeningService
    applications: ApplicationService
    tell: Tell | None = None
    now: Callable[[], float] = time.time
    _book: EventScript = field(init=False, repr=False)
    _cancel: EventScript = field(init=False, repr=False)
    _delete: EventScript = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._book = self.log.script(_BOOK_LUA)
        self._cancel = self.log.script(_CANCEL_LUA)
        self._delete = self.log.script(_DELETE_SLOT_LUA)

    def _now_ms(self) -> int:
        return int(self.now() * 1000)

    # -- slots (hosts) ----------------------------------------------------------------------

    async def opening(self, bid: str, oid: str) -> Opening:
        return await self.openings.get(bid, oid, include_hidden=True)

    async def slots(self, bid: str, oid: str) -> list[dict[str, Any]]:
        """Every slot of the opening by start, each with `booked` and `remaining`."""
        raw = await self.redis.hvals(keys.interview_slots(bid, oid))
        slots = [_slot(r) for r in raw]
        async with self.redis.pipeline(transaction=False) as p:
            for s in slots:
                p.zcard(keys.interview_seats(bid, s["id"]))
            counts = await p.execute()
        for s, n in zip(slots, counts, strict=True):
            s["booked"] = int(n)
            s["remaining"] = max(0, int(s["capacity"]) - int(n))
        return _sorted(slots)

    async def add_slot(self, bid: str, oid: str, body: Any) -> dict[str, Any]:
        await self.opening(bid, oid)
        now = self._now_ms()
        fields = validate_slot(body, now_ms=now)
        sid = new_id(10)
        slot = {"id": sid, "opening_id": oid, **fields, "created_at": now, "updated_at": now}
        key = keys.interview_slots(bid, oid)

        async def change(p: Pipeline) -> None:
            if await p.hlen(key) >= SLOTS_MAX:
                raise Conflict(f"at most {SLOTS_MAX} slots per opening", code="too_many_slots")
            p.multi()
            p.hset(key, sid, orjson.dumps(slot))
            ev = {"opening_id": oid, "slot": {**slot, "booked": 0, "remaining": slot["capacity"]}}
            self.log.add_to(p, bid, "interview.slot_saved", ev, audience=HOST)

        await transact(self.redis, [key], change, busy=busy_conflict)
        await self._tell_opening(bid, oid)
        return {**slot, "booked": 0, "remaining": slot["capacity"]}

    async def update_slot(self, bid: str, oid: str, sid: str, body: Any) -> dict[str, Any]:
        key = keys.interview_slots(bid, oid)
        seats = keys.interview_seats(bid, sid)
        now = self._now_ms()

        async def change(p: Pipeline) -> dict[str, Any]:
            raw = await p.hget(key, sid) if is_valid_id(sid) else None
            if raw is None:
                raise NotFound("no such interview slot", code="slot_not_found")
            current = _slot(raw)
            fields = validate_slot(body, now_ms=now, current=current)
            aids = [text(a) for a in await p.zrange(seats, 0, -1)]
            if fields["capacity"] < len(aids):
                raise Conflict(
                    "fewer seats than bookings: cancel bookings first",
                    code="capacity_below_booked",
                    extra={"booked": len(aids)},
                )
            slot = {**fields, "updated_at": now}
            p.multi()
            p.hset(key, sid, orjson.dumps(slot))
            if slot["start"] != current["start"]:
                for aid in aids:
                    member = f"{bid}/{aid}/{sid}"
                    p.zadd(keys.INTERVIEW_REMINDERS, {member: slot["start"]}, xx=True)
            if any(slot[k] != current[k] for k in ("start", "place", "link")):
                for aid in aids:
                    queue_script(
                        p,
                        _SET_DETAILS,
                        [keys.application(bid, aid)],
                        [slot["start"], slot["place"], slot["link"]],
                    )
            out = {**slot, "booked": len(aids), "remaining": slot["capacity"] - len(aids)}
            self.log.add_to(
                p, bid, "interview.slot_saved", {"opening_id": oid, "slot": out}, audience=HOST
            )
            return out

        out = await transact(self.redis, [key, seats], change, busy=busy_conflict)
        await self._tell_opening(bid, oid)
        return out

    async def delete_slot(self, bid: str, oid: str, sid: str, *, force: bool) -> dict[str, Any]:
        """Delete a slot; one with bookings only with `force`, which cancels each of them with
        a notice to its applicant."""
        if not is_valid_id(sid):
            raise NotFound("no such interview slot", code="slot_not_found")
        for _ in range(10):
            aids = [text(a) for a in await self.redis.zrange(keys.interview_seats(bid, sid), 0, -1)]
            raw = await self.redis.hget(keys.interview_slots(bid, oid), sid)
            if raw is None:
                raise NotFound("no such interview slot", code="slot_not_found")
            slot = _slot(raw)
            notes: dict[str, str] = {}
            if force:
                for aid in aids:
                    app = await self._app(bid, aid)
                    entry = notice_entry(
                        "interview.cancelled",
                        bid=bid,
                        lang=app.get("lang") or DEFAULT_LANG,
                        to=_to(app, aid),
                        data={**_notice_slot(slot, app), "by": "host"},
                    )
                    notes[aid] = entry.decode()
            ev = self.log.event(
                bid,
                "interview.slot_deleted",
                {"opening_id": oid, "slot_id": sid, "cancelled": len(aids)},
                audience=HOST,
            )
            res = await self._delete(
                keys=[
                    keys.interview_slots(bid, oid),
                    keys.interview_seats(bid, sid),
                    keys.interview_bookings(bid),
                    keys.NOTICES,
                    keys.INTERVIEW_REMINDERS,
                    *ev.keys,
                ],
                args=[
                    sid,
                    "1" if force else "0",
                    NOTICES_MAX,
                    orjson.dumps(notes),
                    f"{bid}/",
                    *ev.args,
                    keys.application(bid, ""),
                ],
            )
            kind = text(res[0])
            if kind == "stale":
                continue
            if kind == "missing":
                raise NotFound("no such interview slot", code="slot_not_found")
            if kind == "booked":
                raise Conflict(
                    "this slot has bookings: delete with force=1 to cancel them",
                    code="slot_booked",
                    extra={"booked": int(res[1])},
                )
            await self._tell_opening(bid, oid)
            return {"deleted": sid, "cancelled": sorted(aids)}
        raise busy_conflict()

    # -- invitations and bookings -----------------------------------------------------------

    async def _app(self, bid: str, aid: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.application(bid, aid)) if is_valid_id(aid) else {}
        if not raw:
            raise NotFound("no such application", code="application_not_found")
        return text_hash(raw)

    async def invite(self, bid: str, aid: str) -> dict[str, Any]:
        """Status `interview` (through ApplicationService.set_status, with whatever it tells)
        and the application may choose a slot of its opening."""
        await self.applications.set_status(bid, aid, "interview")
        app = await self._app(bid, aid)
        oid = app.get("opening_id", "")
        vid = app.get("viewer_id", "")
        now = self._now_ms()
        async with self.redis.pipeline(transaction=True) as p:
            p.hset(keys.interview_invites(bid), aid, oid)
            p.hset(keys.INTERVIEW_APPLICATIONS, aid, bid)
            if vid:
                p.sadd(keys.viewer_interviews(vid), f"{bid}/{aid}")
            data = {"application_id": aid, "opening_id": oid, "invited_at": now}
            self.log.add_to(p, bid, "interview.invited", data, audience=HOST)
            await p.execute()
        await self._tell_app(bid, aid)
        return await self.host_view(bid, aid)

    async def broadcast_of(self, aid: str) -> str:
        """The broadcast of an invited application (NotFound for any other id)."""
        raw = await self.redis.hget(keys.INTERVIEW_APPLICATIONS, aid) if is_valid_id(aid) else None
        if raw is None:
            raise NotFound("no such interview", code="interview_not_found")
        return text(raw)

    async def mine(self, viewer_id: str, aid: str) -> tuple[str, dict[str, Any]]:
        """(broadcast id, the interview) of an invited application of this viewer; any other
        id answers as one that does not exist."""
        bid = await self.broadcast_of(aid)
        if not await owns_application(self.redis, viewer_id, bid, aid):
            raise NotFound("no such interview", code="interview_not_found")
        return bid, await self.view(bid, aid)

    async def list_mine(self, viewer_id: str, bid: str | None = None) -> list[dict[str, Any]]:
        """This viewer's invitations (of one broadcast, or all), newest application first."""
        members = {text(m) for m in await self.redis.smembers(keys.viewer_interviews(viewer_id))}
        members |= await linked_applications(self.redis, viewer_id)
        out = []
        for m in members:
            b, _, aid = m.partition("/")
            if bid is not None and b != bid:
                continue
            with contextlib.suppress(NotFound):
                if await self.redis.hexists(keys.interview_invites(b), aid):
                    out.append(await self.view(b, aid))
        return sorted(out, key=lambda v: -v["applied_at"])

    async def view(self, bid: str, aid: str) -> dict[str, Any]:
        """What the applicant sees of their interview: the opening, the booking, and the
        opening's future slots with the seats left (the booked slot also when full)."""
        app = await self._app(bid, aid)
        oid = await self.redis.hget(keys.interview_invites(bid), aid)
        if oid is None:
            raise NotFound("no such interview", code="interview_not_found")
        oid_s = text(oid)
        booked = await self.redis.hget(keys.interview_bookings(bid), aid)
        sid = text(booked) if booked is not None else None
        now = self._now_ms()
        slots = await self.slots(bid, oid_s)
        booking = next((s for s in slots if s["id"] == sid), None)
        return {
            "application_id": aid,
            "broadcast_id": bid,
            "opening_id": oid_s,
            "opening_title": app.get("opening_title", ""),
            "employer": app.get("employer", ""),
            "status": app.get("status", ""),
            "applied_at": int(app.get("created_at") or 0),
            "invited": True,
            "booking": booking,
            "slots": [s for s in slots if s["start"] > now or s["id"] == sid],
        }

    async def host_view(self, bid: str, aid: str) -> dict[str, Any]:
        """What a host sees: ids, the invitation, the booked slot id."""
        oid = await self.redis.hget(keys.interview_invites(bid), aid)
        sid = await self.redis.hget(keys.interview_bookings(bid), aid)
        return {
            "application_id": aid,
            "opening_id": text(oid) if oid is not None else None,
            "invited": oid is not None,
            "slot_id": text(sid) if sid is not None else None,
        }

    async def overview(self, bid: str) -> dict[str, Any]:
        """Hosts: every invitation (application id -> opening id) and booking (-> slot id)."""
        invited = text_hash(await self.redis.hgetall(keys.interview_invites(bid)))
        booked = text_hash(await self.redis.hgetall(keys.interview_bookings(bid)))
        return {"invited": invited, "bookings": booked}

    async def book(self, viewer_id: str, aid: str, slot_id: Any) -> dict[str, Any]:
        """Book (or move to) a slot for this viewer's invited application."""
        bid = await self.broadcast_of(aid)
        if not await owns_application(self.redis, viewer_id, bid, aid):
            raise NotFound("no such interview", code="interview_not_found")
        if not isinstance(slot_id, str) or not is_valid_id(slot_id):
            raise Invalid("bad slot_id", code="bad_slot", fields={"slot_id": "a slot id"})
        app = await self._app(bid, aid)
        oid = await self.redis.hget(keys.interview_invites(bid), aid)
        if oid is None:
            raise NotFound("no such interview", code="interview_not_found")
        oid_s = text(oid)
        for _ in range(10):
            raw = await self.redis.hget(keys.interview_slots(bid, oid_s), slot_id)
            if raw is None:
                raise NotFound("no such interview slot", code="slot_not_found")
            slot = _slot(raw)
            cur_raw = await self.redis.hget(keys.interview_bookings(bid), aid)
            cur = text(cur_raw) if cur_raw is not None else ""
            previous = None
            if cur and cur != slot_id:
                prev_raw = await self.redis.hget(keys.interview_slots(bid, oid_s), cur)
                previous = _slot(prev_raw) if prev_raw is not None else None
            data = _notice_slot(slot, app)
            if previous is not None:
                data["previous"] = _notice_slot(previous, app)
            now = self._now_ms()
            entry = notice_entry(
                "interview.booked",
                bid=bid,
                lang=app.get("lang") or DEFAULT_LANG,
                to=_to(app, aid),
                data=data,
            )
            ev_data: dict[str, Any] = {
                "application_id": aid,
                "opening_id": oid_s,
                "slot_id": slot_id,
                "booked": Hole("booked"),
                "capacity": slot["capacity"],
                "previous_slot_id": cur or None,
            }
            if cur:
                ev_data["previous_booked"] = Hole("freed")
            ev = self.log.event(bid, "interview.booked", ev_data, audience=HOST, ts=now)
            res = await self._book(
                keys=[
                    keys.interview_slots(bid, oid_s),
                    keys.interview_seats(bid, slot_id),
                    keys.interview_seats(bid, cur or slot_id),
                    keys.interview_bookings(bid),
                    keys.interview_invites(bid),
                    keys.NOTICES,
                    keys.INTERVIEW_REMINDERS,
                    *ev.keys,
                    keys.application(bid, aid),
                ],
                args=[
                    aid,
                    slot_id,
                    cur,
                    now,
                    entry,
                    NOTICES_MAX,
                    oid_s,
                    f"{bid}/{aid}/",
                    *ev.args,
                ],
            )
            kind = text(res[0])
            if kind == "stale":
                continue  # the booking changed between the read and the script: read again
            if kind == "full":
                raise Conflict(
                    "this interview time is full", code="slot_full", extra={"slot_id": slot_id}
                )
            if kind == "past":
                raise Conflict("this interview time has passed", code="slot_past")
            if kind == "no_slot":
                raise NotFound("no such interview slot", code="slot_not_found")
            if kind == "not_invited":
                raise NotFound("no such interview", code="interview_not_found")
            if kind == "ok":
                await self._tell_app(bid, aid, viewer_id)
                if cur:
                    await self._tell_opening(bid, oid_s, skip=aid)
            return await self.view(bid, aid)
        raise busy_conflict()

    async def cancel(self, viewer_id: str, aid: str) -> dict[str, Any]:
        """Cancel this viewer's booking (the invitation stays: they may book again)."""
        bid = await self.broadcast_of(aid)
        if not await owns_application(self.redis, viewer_id, bid, aid):
            raise NotFound("no such interview", code="interview_not_found")
        app = await self._app(bid, aid)
        for _ in range(10):
            cur_raw = await self.redis.hget(keys.interview_bookings(bid), aid)
            if cur_raw is None:
                raise NotFound("no booking to cancel", code="booking_not_found")
            sid = text(cur_raw)
            oid = app.get("opening_id", "")
            raw = await self.redis.hget(keys.interview_slots(bid, oid), sid)
            slot = _slot(raw) if raw is not None else {"id": sid, "start": 0}
            entry = notice_entry(
                "interview.cancelled",
                bid=bid,
                lang=app.get("lang") or DEFAULT_LANG,
                to=_to(app, aid),
                data={**_notice_slot(slot, app), "by": "applicant"},
            )
            ev = self.log.event(
                bid,
                "interview.cancelled",
                {
                    "application_id": aid,
                    "opening_id": oid,
                    "slot_id": sid,
                    "booked": Hole("booked"),
                },
                audience=HOST,
            )
            res = await self._cancel(
                keys=[
                    keys.interview_seats(bid, sid),
                    keys.interview_bookings(bid),
                    keys.NOTICES,
                    keys.INTERVIEW_REMINDERS,
                    *ev.keys,
                    keys.application(bid, aid),
                ],
                args=[aid, sid, entry, NOTICES_MAX, f"{bid}/{aid}/{sid}", *ev.args],
            )
            if text(res[0]) == "stale":
                continue
            await self._tell_app(bid, aid, viewer_id)
            await self._tell_opening(bid, oid, skip=aid)
            return await self.view(bid, aid)
        raise busy_conflict()

    # -- telling applicants -----------------------------------------------------------------

    async def _tell_app(self, bid: str, aid: str, also: str | None = None) -> None:
        if self.tell is None:
            return
        try:
            v = await self.view(bid, aid)
            vid, pkey = await self.redis.hmget(keys.application(bid, aid), "viewer_id", "phone_key")
            targets = {text(vid)} if vid is not None else set()
            if pkey:  # the devices that confirmed the applicant's number
                targets |= {
                    text(v) for v in await self.redis.smembers(mine.phone_viewers(text(pkey)))
                }
            if also:
                targets.add(also)
            for t in targets:
                await self.tell(t, "interview.mine", v)
        except NotFound:
            return
        except Exception:  # the write stands; a page catches up from the API when it reloads
            log.warning("interview.mine not sent", exc_info=True)

    async def _tell_opening(self, bid: str, oid: str, skip: str | None = None) -> None:
        """The opening's slots changed: each invited applicant of it gets their view again."""
        if self.tell is None:
            return
        invites = text_hash(await self.redis.hgetall(keys.interview_invites(bid)))
        for aid, o in invites.items():
            if o == oid and aid != skip:
                await self._tell_app(bid, aid)


def _to(app: dict[str, str], aid: str) -> dict[str, Any]:
    return {"phone": app.get("phone", ""), "name": app.get("name", ""), "application_id": aid}


def _notice_slot(slot: dict[str, Any], app: dict[str, str]) -> dict[str, Any]:
    return {
        "slot_id": slot.get("id", ""),
        "opening_id": app.get("opening_id", ""),
        "opening_title": app.get("opening_title", ""),
        "employer": app.get("employer", ""),
        "start": int(slot.get("start") or 0),
        "duration": int(slot.get("duration") or 0),
        "place": slot.get("place", ""),
        "link": slot.get("link", ""),
    }


@dataclass(eq=False)
class Reminders:
    """Queues an interview.reminder notice `lead_ms` before each booked slot, once across
    every process: each process runs this, and the one whose script removes a due member
    from keys.INTERVIEW_REMINDERS queues its notice. `now` is the clock (seconds), which
    tests drive by hand; `run_once` does one pass."""

    redis: Redis
    lead_ms: int
    interval: float = 15.0
    now: Callable[[], float] = time.time
    batch: int = 200
    sent: int = 0
    _task: asyncio.Task[None] | None = field(init=False, default=None, repr=False)
    _stop: asyncio.Event = field(init=False, default_factory=asyncio.Event, repr=False)

    def __post_init__(self) -> None:
        self._claim = self.redis.register_script(_CLAIM_LUA)

    async def run_once(self) -> int:
        """Queue every reminder due now; returns how many this process queued."""
        now = int(self.now() * 1000)
        due = await self.redis.zrangebyscore(
            keys.INTERVIEW_REMINDERS, "-inf", now + self.lead_ms, start=0, num=self.batch
        )
        n = 0
        for raw in due:
            member = text(raw)
            entry = await self._entry(member, now)
            n += int(
                await self._claim(
                    keys=[keys.INTERVIEW_REMINDERS, keys.NOTICES],
                    args=[member, entry, NOTICES_MAX],
                )
            )
        self.sent += n
        return n

    async def _entry(self, member: str, now: int) -> bytes:
        """The reminder's notice, or b'' when there is nothing to remind of any more (the
        booking moved or the slot started): the member is then dropped."""
        try:
            bid, aid, sid = member.split("/")
        except ValueError:
            return b""
        booked = await self.redis.hget(keys.interview_bookings(bid), aid)
        if booked is None or text(booked) != sid:
            return b""
        raw_app = await self.redis.hgetall(keys.application(bid, aid))
        if not raw_app:
            return b""
        app = text_hash(raw_app)
        raw = await self.redis.hget(keys.interview_slots(bid, app.get("opening_id", "")), sid)
        if raw is None:
            return b""
        slot = _slot(raw)
        if int(slot["start"]) <= now:
            return b""
        return notice_entry(
            "interview.reminder",
            bid=bid,
            lang=app.get("lang") or DEFAULT_LANG,
            to=_to(app, aid),
            data={**_notice_slot(slot, app), "minutes_before": self.lead_ms // 60_000},
        )

    def start(self) -> None:
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self._loop(self._stop), name="interview-reminders")

    async def _loop(self, stop: asyncio.Event) -> None:
        # Stopped by the event, not only by cancelling: a cancel that lands inside the Redis
        # client while it (re)connects can be absorbed there, and the loop must end anyway.
        while not stop.is_set():
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away for a moment: the next pass catches up
                log.warning("interview reminders pass failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)

    async def close(self) -> None:
        """Stop the task: at once when it waits, else after the pass it is in."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        await tasks.stop(task)
