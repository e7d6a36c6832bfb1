"""Employers of an organization: the record a host verifies and a recruiter account is bound to.

A record is `{id, name, verified, note, by, at}` in the organization's hash
(keys.employers), with its name's match key (`name_key`) -> id beside it. Openings carry the
employer as `{name, verified}` and have done so since before these records, so an opening
belongs to a record by its employer's name within the organization (`name_key`: trimmed,
NFKC, case folded, inner spaces dropped). That matches every existing opening without a
migration; a host who renames the employer on a card moves the card to the employer of the
new name. A record is made the first time a name is verified or a recruiter is bound to it.

Verifying writes `employer.id`, `verified`, `verified_note` and `verified_on` into every
opening of that name in the organization's broadcasts, through the openings service, so
viewers see the mark arrive (`opening.updated`).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

import orjson
from jobcast.core import keys
from jobcast.core.broadcasts import BroadcastService
from jobcast.core.errors import Invalid, NotFound
from jobcast.core.ids import new_id
from jobcast.core.replies import text
from jobcast.core.text import clean
from jobcast.openings.models import CST, EMPLOYER_MAX, Opening
from jobcast.openings.service import OpeningService, now_ms
from redis.asyncio import Redis

NOTE_MAX = 300
BROADCASTS_SCANNED = 1000


def name_key(name: str) -> str:
    """The form two employer names are compared in."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(folded.split())


def employer_key_of(opening: Opening) -> str:
    return name_key(opening.employer.name)


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, CST).date().isoformat()


class EmployerService:
    def __init__(
        self, redis: Redis, broadcasts: BroadcastService, openings: OpeningService
    ) -> None:
        self.redis = redis
        self.broadcasts = broadcasts
        self.openings = openings

    async def ensure(self, org: str, name: Any) -> dict[str, Any]:
        """The record for `name` in `org`, made if there is none."""
        if not isinstance(name, str) or not clean(name).strip():
            raise Invalid("employer name required", fields={"employer": "required"})
        name = clean(name).strip()[:EMPLOYER_MAX]
        key = name_key(name)
        eid = new_id()
        if await self.redis.hsetnx(keys.employer_names(org), key, eid):
            record = {"id": eid, "name": name, "verified": False, "note": "", "by": "", "at": 0}
            await self.redis.hset(keys.employers(org), eid, orjson.dumps(record))
            return record
        raw = await self.redis.hget(keys.employer_names(org), key)
        return await self.get(org, text(raw) if raw else "")

    async def get(self, org: str, eid: str) -> dict[str, Any]:
        raw = await self.redis.hget(keys.employers(org), eid) if eid else None
        if raw is None:
            raise NotFound("no such employer", code="employer_not_found")
        return orjson.loads(raw)

    async def all(self, org: str) -> list[dict[str, Any]]:
        """Every employer record of the organization, by name."""
        rows = [orjson.loads(v) for v in (await self.redis.hvals(keys.employers(org)))]
        return sorted(rows, key=lambda r: r["name"])

    async def broadcast_ids(self, org: str) -> list[str]:
        """The organization's broadcasts (an operator's `*`: all)."""
        items = await self.broadcasts.list(limit=BROADCASTS_SCANNED)
        return [b.id for b in items if org == "*" or b.org == org]

    async def openings_of(self, org: str, key: str) -> list[Opening]:
        """Every opening (every status) of the employer named by `key` in the organization."""
        out: list[Opening] = []
        for bid in await self.broadcast_ids(org):
            st = await self.openings.state(bid)
            out.extend(o for o in st.ordered() if employer_key_of(o) == key)
        return out

    async def card_fields(self, bid: str, name: str) -> dict[str, Any] | None:
        """What a new or renamed card of `name` in broadcast `bid` takes from the record of that
        name in the broadcast's organization: its id, and its check when verified."""
        raw_org = await self.redis.hget(keys.broadcast(bid), "org")
        org = text(raw_org) if raw_org else "default"
        eid = await self.redis.hget(keys.employer_names(org), name_key(name))
        if eid is None:
            return None
        try:
            record = await self.get(org, text(eid))
        except NotFound:
            return None
        if not record["verified"]:
            return {"id": record["id"]}
        return {
            "id": record["id"],
            "verified": True,
            "verified_note": record["note"],
            "verified_on": _day(int(record["at"])),
        }

    async def verify(
        self, org: str, eid: str, *, verified: bool, note: Any, by: str
    ) -> dict[str, Any]:
        """Mark the employer verified (with the note of the check) or not, and every opening
        of it in the organization with it."""
        record = await self.get(org, eid)
        text = clean(note if isinstance(note, str) else "").strip()
        if verified and not text:
            raise Invalid("say what was checked", fields={"note": "required"})
        if len(text) > NOTE_MAX:
            raise Invalid("note too long", fields={"note": f"at most {NOTE_MAX} characters"})
        at = now_ms()
        record = {**record, "verified": verified, "note": text, "by": by, "at": at}
        await self.redis.hset(keys.employers(org), eid, orjson.dumps(record))
        fields = {
            "id": eid,
            "verified": verified,
            "verified_note": text if verified else "",
            "verified_on": _day(at) if verified else "",
        }
        for o in await self.openings_of(org, name_key(record["name"])):
            await self.openings.set_employer(o.broadcast_id, o.id, fields)
        return record
