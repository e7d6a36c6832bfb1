"""Openings of a broadcast, their lineup and the pinned card: every write goes through here.

Each write runs as one optimistic transaction (WATCH the broadcast's openings, lineup and
pinned keys, read, MULTI, write, queue the events, EXEC), so the state and the events that
describe it commit together, and a concurrent write retries instead of clobbering.

Events (docs/protocol.md, "Openings and applications"):
    viewers  opening.updated, opening.removed, openings.added, lineup.updated,
             card.pinned, card.unpinned
    hosts    opening.saved, opening.deleted, openings.imported, lineup.saved
"""

from __future__ import annotations

import builtins
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from jobcast.core import keys
from jobcast.core.errors import Conflict, Invalid, NotFound, Unavailable
from jobcast.core.events import HOST, PUBLIC, Audience, EventLog
from jobcast.core.ids import is_valid_id, new_id
from jobcast.core.replies import RawHash, text, text_hash, texts
from jobcast.core.text import clean
from jobcast.core.tx import transact
from jobcast.openings.models import (
    EDUCATION,
    Opening,
    education_rank,
    parse_education,
    validate_opening,
)
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

LINEUP_MAX = 2000
PIN_HISTORY_MAX = 1000
_TXN_TRIES = 20


def _busy() -> Unavailable:
    return Unavailable("too many concurrent changes, try again", code="busy")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class State:
    """What a transaction read: every opening of the broadcast, the lineup and the pin."""

    openings: dict[str, Opening]
    lineup: list[str]
    pinned: str | None
    pinned_at: int
    events: list[tuple[str, dict[str, Any], Audience]] = field(default_factory=list)

    def ordered(self) -> list[Opening]:
        seen = set()
        out = []
        for oid in self.lineup:
            o = self.openings.get(oid)
            if o is not None and oid not in seen:
                seen.add(oid)
                out.append(o)
        rest = [o for oid, o in self.openings.items() if oid not in seen]
        rest.sort(key=lambda o: (o.created_at, o.id))
        return out + rest

    def visible_order(self) -> list[str]:
        return [o.id for o in self.ordered() if o.visible()]

    def emit(self, type_: str, data: dict[str, Any], audience: Audience = PUBLIC) -> None:
        self.events.append((type_, data, audience))


def _pin_data(o: Opening, at: int) -> dict[str, Any]:
    return {"opening": o.public(), "pinned_at": at}


class OpeningService:
    def __init__(self, redis: Redis, log: EventLog) -> None:
        self.redis = redis
        self.log = log
        self._owners: dict[str, str] = {}
        # (bid, employer name) -> the employer record's fields for the card, or None
        # (openings/employers.py `EmployerService.card_fields`; set by web/api/employers.py)
        self.employer_fields: Callable[[str, str], Awaitable[dict[str, Any] | None]] | None = None

    # -- reads ------------------------------------------------------------------------------

    async def owner(self, oid: str) -> str:
        """The broadcast id an opening belongs to (cached: it never changes)."""
        bid = self._owners.get(oid)
        if bid is not None:
            return bid
        if not is_valid_id(oid):
            raise NotFound("no such opening", code="opening_not_found")
        raw = await self.redis.hget(keys.OPENING_OWNER, oid)
        if raw is None:
            raise NotFound("no such opening", code="opening_not_found")
        bid = text(raw)
        if len(self._owners) > 100_000:
            self._owners.clear()
        self._owners[oid] = bid
        return bid

    async def pin_history(self, bid: str) -> list[tuple[str, int]]:
        """(opening id, unix ms) of every pin of the broadcast, oldest first: the chapters of
        its replay."""
        out: list[tuple[str, int]] = []
        for raw in await self.redis.lrange(keys.pin_history(bid), 0, -1):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                d = orjson.loads(raw)
                out.append((str(d["opening_id"]), int(d["at"])))
        return out

    async def get(self, bid: str, oid: str, *, include_hidden: bool = False) -> Opening:
        raw = await self.redis.hget(keys.openings(bid), oid) if is_valid_id(oid) else None
        if raw is None:
            raise NotFound("no such opening", code="opening_not_found")
        o = Opening.from_json(raw)
        if not include_hidden and not o.visible():
            raise NotFound("no such opening", code="opening_not_found")
        return o

    async def state(self, bid: str) -> State:
        """Every opening, the lineup and the pin, for reading (writes read under WATCH).

        Not a MULTI: Redis refuses to queue any command, reads included, in a MULTI while it
        is over `maxmemory`, and reads should keep working then. A write may land between
        the three reads, so the openings are read last: every card the pin or the lineup
        names is then found, unless it was deleted in between, and such a card is left out
        (`ordered()` skips lineup ids without a card; a pin without its card shows as none).
        A snapshot reads its seq before this, so the event of any write in between comes
        after that seq and sets the rest right.
        """
        async with self.redis.pipeline(transaction=False) as p:
            p.hgetall(keys.pinned(bid))
            p.lrange(keys.lineup(bid), 0, -1)
            p.hgetall(keys.openings(bid))
            pin, lineup, raw = await p.execute()
        return _state(raw, lineup, pin)

    async def list(
        self,
        bid: str,
        *,
        include_hidden: bool = False,
        city: str = "",
        education: str = "",
        major: str = "",
        status: str = "",
    ) -> list[Opening]:
        """Openings in lineup order, filtered. `education` lists those asking at most that."""
        items = (await self.state(bid)).ordered()
        if not include_hidden:
            items = [o for o in items if o.visible()]
        elif status:
            items = [o for o in items if o.status == status]
        return filter_openings(items, city=city, education=education, major=major)

    async def pinned(self, bid: str) -> dict[str, Any] | None:
        st = await self.state(bid)
        o = st.openings.get(st.pinned or "")
        return _pin_data(o, st.pinned_at) if o is not None and o.visible() else None

    async def snapshot(self, bid: str, is_host: bool) -> dict[str, Any]:
        """Snapshot part: the pinned card, the openings in lineup order and the lineup."""
        st = await self.state(bid)
        ordered = st.ordered()
        shown = ordered if is_host else [o for o in ordered if o.visible()]
        o = st.openings.get(st.pinned or "")
        part: dict[str, Any] = {
            "pinned": _pin_data(o, st.pinned_at) if o is not None and o.visible() else None,
            "openings": [x.public() for x in shown[:LINEUP_MAX]],
            "lineup": [x.id for x in shown[:LINEUP_MAX]],
        }
        return part

    # -- writes -----------------------------------------------------------------------------

    async def _txn(self, bid: str, change: Callable[[State, Pipeline], Awaitable[Any]]) -> Any:
        """WATCH, read the state, let `change` queue writes and events, EXEC; retry on races."""

        async def body(p: Pipeline) -> Any:
            raw = await p.hgetall(keys.openings(bid))
            lineup = await p.lrange(keys.lineup(bid), 0, -1)
            pin = await p.hgetall(keys.pinned(bid))
            st = _state(raw, lineup, pin)
            p.multi()
            result = await change(st, p)
            for type_, data, audience in st.events:
                self.log.add_to(p, bid, type_, data, audience=audience)
            return result

        watched = [keys.openings(bid), keys.lineup(bid), keys.pinned(bid)]
        return await transact(self.redis, watched, body, attempts=_TXN_TRIES, busy=_busy)

    async def _claim_ids(self, bid: str, n: int) -> builtins.list[str]:
        """Fresh opening ids, each registered to `bid` before anything refers to it."""
        out: builtins.list[str] = []
        while len(out) < n:
            oid = new_id()
            if await self.redis.hsetnx(keys.OPENING_OWNER, oid, bid):
                out.append(oid)
                self._owners[oid] = bid
        return out

    async def create(self, bid: str, data: Any) -> Opening:
        return (await self.create_many(bid, [validate_opening(data)]))[0]

    async def create_many(
        self, bid: str, rows: builtins.list[dict[str, Any]]
    ) -> builtins.list[Opening]:
        """Store already validated openings all at once (CSV import: all rows or none)."""
        if not rows:
            return []
        rows = [await self._with_employer(bid, row) for row in rows]
        ids = await self._claim_ids(bid, len(rows))
        now = now_ms()
        made = [
            Opening(id=oid, broadcast_id=bid, created_at=now, updated_at=now, **_fields(row))
            for oid, row in zip(ids, rows, strict=True)
        ]

        async def change(st: State, p: Pipeline) -> builtins.list[Opening]:
            if len(st.openings) + len(made) > LINEUP_MAX:
                raise Conflict(
                    f"a broadcast holds at most {LINEUP_MAX} openings", code="too_many_openings"
                )
            p.hset(keys.openings(bid), mapping={o.id: o.to_json() for o in made})
            p.rpush(keys.lineup(bid), *[o.id for o in made])
            visible = [o for o in made if o.visible()]
            for o in made:
                st.openings[o.id] = o
                st.lineup.append(o.id)
            if len(made) == 1:
                st.emit("opening.saved", {"opening": made[0].public()}, HOST)
                if visible:
                    st.emit("opening.updated", {"opening": made[0].public()})
            else:
                st.emit("openings.imported", {"openings": [o.public() for o in made]}, HOST)
                if visible:
                    st.emit("openings.added", {"openings": [o.public() for o in visible]})
            if visible:
                st.emit("lineup.updated", {"order": st.visible_order()})
            st.emit("lineup.saved", {"order": [o.id for o in st.ordered()]}, HOST)
            return made

        return await self._txn(bid, change)

    async def _with_employer(self, bid: str, row: dict[str, Any]) -> dict[str, Any]:
        """The row with its employer record's link and check, when the employer has one."""
        emp = row.get("employer")
        if self.employer_fields is None or not isinstance(emp, dict) or emp.get("id"):
            return row
        extra = await self.employer_fields(bid, str(emp.get("name", "")))
        return {**row, "employer": {**emp, **extra}} if extra else row

    async def update(self, bid: str, oid: str, data: Any) -> Opening:
        async def change(st: State, p: Pipeline) -> Opening:
            old = st.openings.get(oid)
            if old is None:
                raise NotFound("no such opening", code="opening_not_found")
            fields = await self._with_employer(bid, validate_opening(data, current=old))
            new = old.replace(updated_at=now_ms(), **_fields(fields))
            p.hset(keys.openings(bid), oid, new.to_json())
            st.openings[oid] = new
            self._visibility(st, p, bid, old, new)
            return new

        return await self._txn(bid, change)

    async def set_review(self, bid: str, oid: str, status: str, *, only_from: str = "") -> bool:
        """Set the status `held` (viewer reports passed the threshold, openings/reports.py),
        or end a hold (`published` or `closed`). With `only_from`, nothing changes unless the
        opening has that status now. Viewers see the card go (opening.removed) or come back;
        True when it changed."""

        async def change(st: State, p: Pipeline) -> bool:
            old = st.openings.get(oid)
            if old is None:
                raise NotFound("no such opening", code="opening_not_found")
            if (only_from and old.status != only_from) or old.status == status:
                return False
            new = old.replace(updated_at=now_ms(), status=status)
            p.hset(keys.openings(bid), oid, new.to_json())
            st.openings[oid] = new
            self._visibility(st, p, bid, old, new)
            return True

        return bool(await self._txn(bid, change))

    async def set_employer(self, bid: str, oid: str, employer: dict[str, Any]) -> Opening:
        """Replace the card's employer fields (its record's id and check, openings/employers.py)."""

        async def change(st: State, p: Pipeline) -> Opening:
            old = st.openings.get(oid)
            if old is None:
                raise NotFound("no such opening", code="opening_not_found")
            emp = {**old.employer.model_dump(), **employer}
            new = old.replace(employer=emp)
            p.hset(keys.openings(bid), oid, new.to_json())
            st.openings[oid] = new
            self._visibility(st, p, bid, old, new)
            return new

        return await self._txn(bid, change)

    async def delete(self, bid: str, oid: str) -> None:
        async def change(st: State, p: Pipeline) -> None:
            old = st.openings.pop(oid, None)
            if old is None:
                raise NotFound("no such opening", code="opening_not_found")
            p.hdel(keys.openings(bid), oid)
            p.lrem(keys.lineup(bid), 0, oid)
            st.lineup = [x for x in st.lineup if x != oid]
            self._visibility(st, p, bid, old, None)
            st.emit("lineup.saved", {"order": [o.id for o in st.ordered()]}, HOST)

        await self._txn(bid, change)

    def _visibility(
        self, st: State, p: Pipeline, bid: str, old: Opening, new: Opening | None
    ) -> None:
        """Queue the index writes and events that follow an opening's change or removal."""
        oid = old.id
        if new is None:
            st.emit("opening.deleted", {"opening_id": oid}, HOST)
        else:
            st.emit("opening.saved", {"opening": new.public()}, HOST)
        if new is not None and new.visible():
            st.emit("opening.updated", {"opening": new.public()})
            if st.pinned == oid:
                st.emit("card.pinned", _pin_data(new, st.pinned_at))
        else:
            if old.visible():
                st.emit("opening.removed", {"opening_id": oid})
            if st.pinned == oid:
                p.delete(keys.pinned(bid))
                st.pinned = None
                st.emit("card.unpinned", {"opening_id": oid})
        if old.visible() != (new is not None and new.visible()):
            st.emit("lineup.updated", {"order": st.visible_order()})

    async def set_lineup(self, bid: str, order: Any) -> builtins.list[str]:
        """Put the listed ids first, in that order; the others keep their relative order."""
        if not isinstance(order, list) or not all(isinstance(x, str) for x in order):
            raise Invalid("order must be a list of opening ids", fields={"order": "list of ids"})
        if len(set(order)) != len(order):
            raise Invalid("order lists an opening twice", fields={"order": "duplicate id"})

        async def change(st: State, p: Pipeline) -> list[str]:
            unknown = [x for x in order if x not in st.openings]
            if unknown:
                raise Invalid(
                    "unknown opening ids", fields={"order": "unknown id " + unknown[0][:32]}
                )
            rest = [o.id for o in st.ordered() if o.id not in set(order)]
            st.lineup = [*order, *rest]
            p.delete(keys.lineup(bid))
            if st.lineup:
                p.rpush(keys.lineup(bid), *st.lineup)
            st.emit("lineup.saved", {"order": st.lineup}, HOST)
            st.emit("lineup.updated", {"order": st.visible_order()})
            return st.lineup

        return await self._txn(bid, change)

    async def pin(self, bid: str, oid: str) -> dict[str, Any]:
        async def change(st: State, p: Pipeline) -> dict[str, Any]:
            o = st.openings.get(oid)
            if o is None:
                raise NotFound("no such opening", code="opening_not_found")
            return self._pin(st, p, bid, o)

        return await self._txn(bid, change)

    async def pin_next(self, bid: str) -> dict[str, Any]:
        """Pin the published opening after the pinned one in the lineup (the first if none)."""

        async def change(st: State, p: Pipeline) -> dict[str, Any]:
            order = [o for o in st.ordered() if o.visible()]
            if not order:
                raise Conflict("no published opening to pin", code="lineup_empty")
            ids = [o.id for o in order]
            if st.pinned is None:
                nxt = order[0]
            elif st.pinned in ids:
                i = ids.index(st.pinned) + 1
                if i >= len(order):
                    raise Conflict("the pinned opening is the last one", code="lineup_end")
                nxt = order[i]
            else:  # pinned one was hidden meanwhile: go by the full lineup position
                full = [o.id for o in st.ordered()]
                pos = full.index(st.pinned) if st.pinned in full else -1
                after = [o for o in order if full.index(o.id) > pos]
                if not after:
                    raise Conflict("the pinned opening is the last one", code="lineup_end")
                nxt = after[0]
            return self._pin(st, p, bid, nxt)

        return await self._txn(bid, change)

    def _pin(self, st: State, p: Pipeline, bid: str, o: Opening) -> dict[str, Any]:
        if not o.visible():
            raise Conflict("only a published opening can be pinned", code="not_published")
        at = now_ms()
        p.hset(keys.pinned(bid), mapping={"opening_id": o.id, "at": at})
        p.rpush(keys.pin_history(bid), orjson.dumps({"opening_id": o.id, "at": at}))
        p.ltrim(keys.pin_history(bid), -PIN_HISTORY_MAX, -1)
        st.pinned, st.pinned_at = o.id, at
        data = _pin_data(o, at)
        st.emit("card.pinned", data)
        return data

    async def unpin(self, bid: str) -> dict[str, Any]:
        async def change(st: State, p: Pipeline) -> dict[str, Any]:
            if st.pinned is None:
                return {"opening_id": None}
            p.delete(keys.pinned(bid))
            data = {"opening_id": st.pinned}
            st.emit("card.unpinned", data)
            return data

        return await self._txn(bid, change)


def _state(raw: RawHash, lineup: list[bytes | str], pin: RawHash) -> State:
    openings = {text(k): Opening.from_json(v) for k, v in raw.items()}
    p = text_hash(pin)
    return State(
        openings=openings,
        lineup=texts(lineup),
        pinned=p.get("opening_id") or None,
        pinned_at=int(p.get("at", 0) or 0),
    )


def _fields(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k in Opening.model_fields}


def filter_openings(
    items: Iterable[Opening], *, city: str = "", education: str = "", major: str = ""
) -> list[Opening]:
    """City: part of the opening's city ("鸡西" finds "鸡西市"). Education: openings asking at
    most that level. Major: openings open to any major, or naming one that matches."""
    errors: dict[str, str] = {}
    rank = None
    if education:
        code = parse_education(education)
        if code is None:
            errors["education"] = "unknown level: " + ", ".join(EDUCATION)
        else:
            rank = education_rank(code) if code != "any" else None
    if errors:
        raise Invalid("bad filter", fields=errors)
    c = clean(city).casefold()
    m = clean(major).casefold()
    out = []
    for o in items:
        if c and c not in o.city.casefold():
            continue
        if rank is not None and education_rank(o.education) > rank:
            continue
        if m and o.majors and not any(m in x.casefold() or x.casefold() in m for x in o.majors):
            continue
        out.append(o)
    return out
