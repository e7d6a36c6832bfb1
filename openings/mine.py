"""An applicant's own applications, across broadcasts: what they see, and the devices that
see it.

Applying adds the application to two indexes (in the apply script, with the application):
the viewer id's and the phone number's. A viewer id sees the applications of its own index
and of every phone number it confirmed with a code sent to that number (`PhoneCodes`), so
the same person finds them again on another device. Phone numbers never appear in key
names: the app names each by an HMAC with its secret (`phone_key`), stored with the
application.

The viewer-facing form (`viewer_form`) is what the applicant may see of their own
application: the opening, the employer, when they applied, the status and an interview's
details. Never their personal data, never anyone else's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
from jobcast.core import keys
from jobcast.core.errors import Invalid, RateLimited
from jobcast.core.notices import add_notice
from jobcast.core.replies import RawHash, text, text_hash, texts
from jobcast.openings.applicant import mask_phone, normalize_phone
from redis.asyncio import Redis

MINE_MAX = 200  # applications listed per index (newest first)
CODE_DIGITS = 6


def viewer_index(vid: str) -> str:
    """Zset: "bid/aid" -> applied unix ms, every application made with this viewer id."""
    return f"{keys.PREFIX}:me:v:{vid}:apps"


def phone_index(phone_key: str) -> str:
    """Zset: "bid/aid" -> applied unix ms, every application made with one phone number."""
    return f"{keys.PREFIX}:me:p:{phone_key}:apps"


def phone_viewers(phone_key: str) -> str:
    """Set of viewer ids that confirmed this phone number (no expiry: a device stays linked)."""
    return f"{keys.PREFIX}:me:p:{phone_key}:viewers"


def viewer_phones(vid: str) -> str:
    """Hash: phone key -> the number masked (+86138****8000), the numbers this viewer confirmed."""
    return f"{keys.PREFIX}:me:v:{vid}:phones"


def phone_code(phone_key: str) -> str:
    """Hash {mac, tries}: the code last sent to this number (expires)."""
    return f"{keys.PREFIX}:me:p:{phone_key}:code"


def code_rate(who: str, window: int) -> str:
    """Counter of code requests or checks by `who` ('p:KEY', 'ip:ADDR', 'vip:ADDR')."""
    return f"{keys.PREFIX}:me:rl:{who}:{window}"


def member(bid: str, aid: str) -> str:
    return f"{bid}/{aid}"


def unkeyed_phone_key(phone: str) -> str:
    """A phone key without a secret (tools that only delete use the stored key instead)."""
    return hashlib.sha256(b"jobcast-phone:" + phone.encode()).hexdigest()[:32]


# -- the viewer-facing form ------------------------------------------------------------------


def status_at(d: dict[str, str]) -> int:
    return int(d.get("status_at") or d.get("updated_at") or d.get("created_at") or 0)


def interview_of(d: dict[str, str]) -> dict[str, Any] | None:
    """The interview's details ({starts_at, place, link, note}) while the status is interview."""
    raw = d.get("interview")
    if not raw or d.get("status") != "interview":
        return None
    try:
        got = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return got if isinstance(got, dict) else None


def viewer_form(d: dict[str, str]) -> dict[str, Any]:
    """What the applicant sees of their own application (`d`: its stored fields)."""
    from jobcast.openings.applications import status_word

    status = status_word(d.get("status", ""))
    return {
        "id": d["id"],
        "broadcast_id": d.get("broadcast_id", ""),
        "opening_id": d.get("opening_id", ""),
        "opening_title": d.get("opening_title", ""),
        "employer": d.get("employer", ""),
        "applied_at": int(d.get("created_at") or 0),
        "status": status,
        "status_at": status_at(d),
        "interview": interview_of({**d, "status": status}),
    }


def notice_data(d: dict[str, str]) -> dict[str, Any]:
    """The `data` of an application.status notice (docs/protocol.md, "Notifier")."""
    form = viewer_form(d)
    iv = form["interview"] or {}
    return {
        "application_id": form["id"],
        "opening_id": form["opening_id"],
        "opening_title": form["opening_title"],
        "employer_name": form["employer"],
        "status": form["status"],
        "status_at": form["status_at"],
        "starts_at": iv.get("starts_at"),
        "place": iv.get("place", ""),
        "link": iv.get("link", ""),
        "note": iv.get("note", ""),
    }


async def list_mine(redis: Redis, vid: str) -> list[dict[str, Any]]:
    """This viewer's applications, newest first: its own and its confirmed numbers'."""
    pkeys = texts(await redis.hkeys(viewer_phones(vid)))
    async with redis.pipeline(transaction=False) as p:
        for index in [viewer_index(vid), *(phone_index(k) for k in pkeys)]:
            p.zrevrange(index, 0, MINE_MAX - 1, withscores=True)
        found = await p.execute()
    scores: dict[str, float] = {}
    for ranked in found:
        for m, score in ranked:
            scores[text(m)] = score
    order = sorted(scores, key=lambda m: -scores[m])[:MINE_MAX]
    async with redis.pipeline(transaction=False) as p:
        for m in order:
            bid, _, aid = m.partition("/")
            p.hgetall(keys.application(bid, aid))
        rows: list[RawHash] = await p.execute()
    return [viewer_form(text_hash(h)) for h in rows if h]


async def linked_phones(redis: Redis, vid: str) -> list[str]:
    """The masked numbers this viewer confirmed."""
    return sorted(texts((await redis.hgetall(viewer_phones(vid))).values()))


# -- confirming a phone number from another device -----------------------------------------


@dataclass(frozen=True)
class CodeLimits:
    per_phone: int = 3  # codes sent to one number per window
    per_ip: int = 20  # code requests from one address per window
    checks_per_ip: int = 30  # code checks from one address per window
    window: int = 3600  # seconds
    ttl: int = 600  # a code's life, seconds
    tries: int = 5  # wrong codes before a code is spent


# KEYS: 1 the code hash. ARGV: 1 max tries. Counts the try before the code is compared, so a
# burst of guesses gets at most `tries` comparisons.
_TRY_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'none'} end
local n = redis.call('HINCRBY', KEYS[1], 'tries', 1)
if n > tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) return {'spent'} end
return {'try', redis.call('HGET', KEYS[1], 'mac'), tonumber(ARGV[1]) - n}
"""


@dataclass(eq=False)
class PhoneCodes:
    """A 6-digit code sent to a number as a notice (kind phone.code); the right code links
    the number's applications to the viewer id that typed it.

    The answers never say whether the number has applications: a code is sent only to a number
    that has some, and the request is answered the same either way; a check without a code
    fails as a wrong code does."""

    redis: Redis
    phone_key: Any  # Callable[[str], str]: the app's HMAC naming of a number
    limits: CodeLimits = CodeLimits()

    def __post_init__(self) -> None:
        self._try = self.redis.register_script(_TRY_LUA)

    @staticmethod
    def _phone(raw: Any) -> str:
        phone = normalize_phone(raw) if isinstance(raw, str) else None
        if phone is None:
            raise Invalid("enter a valid mobile number", fields={"phone": "not a phone number"})
        return phone

    def _mac(self, pkey: str, code: str) -> str:
        return hmac.new(pkey.encode(), code.encode(), hashlib.sha256).hexdigest()

    async def _limit(self, who: str, limit: int) -> None:
        key = code_rate(who, self.limits.window)
        async with self.redis.pipeline(transaction=True) as p:
            p.incr(key)
            p.expire(key, self.limits.window, nx=True)
            p.ttl(key)
            n, _, ttl = await p.execute()
        if int(n) > limit:
            raise RateLimited(
                "too many tries, wait a while",
                code="rate_limited",
                retry_after=max(1, int(ttl)),
            )

    async def send(self, raw_phone: Any, *, ip: str, lang: str) -> None:
        """Send a fresh code to the number if it has applications (the caller answers the
        same either way)."""
        phone = self._phone(raw_phone)
        pkey = self.phone_key(phone)
        await self._limit("ip:" + ip, self.limits.per_ip)
        await self._limit("p:" + pkey, self.limits.per_phone)
        if not await self.redis.exists(phone_index(pkey)):
            return
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        expires = int(time.time()) + self.limits.ttl
        async with self.redis.pipeline(transaction=True) as p:
            p.delete(phone_code(pkey))
            p.hset(phone_code(pkey), mapping={"mac": self._mac(pkey, code), "tries": 0})
            p.expire(phone_code(pkey), self.limits.ttl)
            add_notice(
                p,
                "phone.code",
                bid="",
                lang=lang,
                to={"phone": phone},
                data={"code": code, "expires_at": expires * 1000},
            )
            await p.execute()

    async def verify(self, raw_phone: Any, raw_code: Any, *, vid: str, ip: str) -> str:
        """Link the number's applications to `vid`; returns the masked number."""
        phone = self._phone(raw_phone)
        code = raw_code.strip() if isinstance(raw_code, str) else ""
        if not (len(code) == CODE_DIGITS and code.isdigit()):
            raise Invalid("enter the 6-digit code", fields={"code": "6 digits"})
        await self._limit("vip:" + ip, self.limits.checks_per_ip)
        pkey = self.phone_key(phone)
        key = phone_code(pkey)
        res = await self._try(keys=[key], args=[self.limits.tries])
        kind = text(res[0])
        if kind == "spent":
            raise Invalid(
                "too many wrong codes: ask for a new one",
                code="code_spent",
                fields={"code": "ask for a new code"},
            )
        if kind != "try" or not hmac.compare_digest(text(res[1]), self._mac(pkey, code)):
            left = int(res[2]) if kind == "try" else 0
            raise Invalid(
                "wrong or expired code",
                code="code_invalid",
                fields={"code": "wrong or expired code"},
                extra={"tries_left": left},
            )
        if not await self.redis.delete(key):  # used once, by whoever got here first
            raise Invalid("wrong or expired code", code="code_invalid", fields={"code": "wrong"})
        async with self.redis.pipeline(transaction=True) as p:
            p.sadd(phone_viewers(pkey), vid)
            p.hset(viewer_phones(vid), pkey, mask_phone(phone))
            await p.execute()
        return mask_phone(phone)
