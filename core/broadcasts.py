"""Broadcasts: a titled, scheduled live session with a short public id and a status."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from jobcast.core import keys
from jobcast.core.errors import Conflict, Invalid, NotFound
from jobcast.core.events import EventLog
from jobcast.core.ids import is_valid_id, new_id
from jobcast.core.text import raise_if, text_field
from redis.asyncio import Redis

STATUSES = ("scheduled", "live", "ended")
TITLE_MAX = 120
DESCRIPTION_MAX = 2000


@dataclass(frozen=True)
class Broadcast:
    id: str
    title: str
    description: str
    scheduled_at: int | None  # unix ms
    status: str
    created_at: int
    updated_at: int
    started_at: int | None = None
    ended_at: int | None = None
    org: str = "default"  # the organization that owns it (web/access/orgs.py); not shown to anyone

    def public(self) -> dict[str, Any]:
        out = asdict(self)
        del out["org"]
        return out

    @classmethod
    def from_hash(cls, h: dict[bytes, bytes]) -> Broadcast:
        def opt_int(name: str) -> int | None:
            v = h.get(name.encode())
            return int(v) if v else None

        return cls(
            id=h[b"id"].decode(),
            title=h[b"title"].decode(),
            description=h.get(b"description", b"").decode(),
            scheduled_at=opt_int("scheduled_at"),
            status=h[b"status"].decode(),
            created_at=int(h[b"created_at"]),
            updated_at=int(h[b"updated_at"]),
            started_at=opt_int("started_at"),
            ended_at=opt_int("ended_at"),
            org=h.get(b"org", b"").decode() or "default",
        )

    def to_hash(self) -> dict[str, str]:
        return {k: ("" if v is None else str(v)) for k, v in asdict(self).items()}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _parse_time(value: Any, errors: dict[str, str], field: str) -> int | None:
    """Accepts unix milliseconds or an ISO 8601 string with a timezone."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        errors[field] = "must be a time"
        return None
    if isinstance(value, int):
        if 0 <= value < 10**14:
            return value
        errors[field] = "out of range"
        return None
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            errors[field] = "must be ISO 8601 or unix milliseconds"
            return None
        if dt.tzinfo is None:
            errors[field] = "needs a timezone"
            return None
        ms = int(dt.timestamp() * 1000)
        if not 0 <= ms < 10**14:  # the same range as unix milliseconds
            errors[field] = "out of range"
            return None
        return ms
    errors[field] = "must be a time"
    return None


def _validate(data: Any, *, partial: bool) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Invalid("expected a JSON object", fields={"body": "must be an object"})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    if not partial or "title" in data:
        out["title"] = text_field(data, "title", errors, max_len=TITLE_MAX)
    if not partial or "description" in data:
        out["description"] = text_field(
            data, "description", errors, max_len=DESCRIPTION_MAX, required=False, multiline=True
        )
    if not partial or "scheduled_at" in data:
        out["scheduled_at"] = _parse_time(data.get("scheduled_at"), errors, "scheduled_at")
    unknown = set(data) - {"title", "description", "scheduled_at"}
    for name in unknown:
        errors[str(name)[:40]] = "unknown field"
    raise_if(errors)
    return out


class BroadcastService:
    """All writes to broadcasts go through here; each publishes `broadcast.updated`."""

    def __init__(self, redis: Redis, log: EventLog) -> None:
        self.redis = redis
        self.log = log

    async def create(self, data: Any, *, org: str = "default") -> Broadcast:
        fields = _validate(data, partial=False)
        now = _now_ms()
        for _ in range(5):
            bid = new_id()
            b = Broadcast(
                id=bid, status="scheduled", created_at=now, updated_at=now, org=org, **fields
            )
            # HSETNX on id guards the (astronomically unlikely) collision.
            if await self.redis.hsetnx(keys.broadcast(bid), "id", bid):
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.hset(keys.broadcast(bid), mapping=b.to_hash())
                    pipe.zadd(keys.BROADCAST_INDEX, {bid: now})
                    await pipe.execute()
                return b
        raise Conflict("could not allocate an id")

    async def get(self, bid: str) -> Broadcast:
        if not is_valid_id(bid):
            raise NotFound("no such broadcast", code="broadcast_not_found")
        h = await self.redis.hgetall(keys.broadcast(bid))
        if not h or b"title" not in h:
            raise NotFound("no such broadcast", code="broadcast_not_found")
        return Broadcast.from_hash(h)

    async def exists(self, bid: str) -> bool:
        return is_valid_id(bid) and bool(await self.redis.exists(keys.broadcast(bid)))

    async def list(self, *, limit: int = 100) -> list[Broadcast]:
        ids = await self.redis.zrevrange(keys.BROADCAST_INDEX, 0, limit - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for bid in ids:
                pipe.hgetall(keys.broadcast(bid.decode()))
            rows = await pipe.execute()
        return [Broadcast.from_hash(h) for h in rows if h and b"title" in h]

    async def _write(self, b: Broadcast) -> Broadcast:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.broadcast(b.id), mapping=b.to_hash())
            self.log.add_to(pipe, b.id, "broadcast.updated", b.public())
            await pipe.execute()
        return b

    async def update(self, bid: str, data: Any) -> Broadcast:
        current = await self.get(bid)
        fields = _validate(data, partial=True)
        return await self._write(_replace(current, updated_at=_now_ms(), **fields))

    async def start(self, bid: str) -> Broadcast:
        current = await self.get(bid)
        if current.status == "live":
            return current
        if current.status == "ended":
            raise Conflict("the broadcast has ended", code="broadcast_ended")
        now = _now_ms()
        return await self._write(_replace(current, status="live", started_at=now, updated_at=now))

    async def end(self, bid: str) -> Broadcast:
        current = await self.get(bid)
        if current.status == "ended":
            return current
        now = _now_ms()
        return await self._write(_replace(current, status="ended", ended_at=now, updated_at=now))


def _replace(b: Broadcast, **changes: Any) -> Broadcast:
    return Broadcast(**{**asdict(b), **changes})
