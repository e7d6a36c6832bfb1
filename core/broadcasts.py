"""Broadcasts: a titled, scheduled live session with a short public id and a status."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any, Literal, cast, get_args

from jobcast.core import keys
from jobcast.core.contract import Id, Input, Ms, Output, check, partial, refuse, text
from jobcast.core.errors import Conflict, NotFound
from jobcast.core.events import EventLog
from jobcast.core.ids import is_valid_id, new_id
from jobcast.core.replies import RawHash, text_hash
from jobcast.core.replies import fields as as_fields
from jobcast.core.replies import text as reply_text
from pydantic import ConfigDict, Field, PlainValidator
from redis.asyncio import Redis

Status = Literal["scheduled", "live", "ended"]
STATUSES: tuple[str, ...] = get_args(Status)
TITLE_MAX = 120
DESCRIPTION_MAX = 2000


class Broadcast(Output):
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    id: Id
    title: str
    description: str
    scheduled_at: Ms | None
    status: Status
    created_at: Ms
    updated_at: Ms
    started_at: Ms | None = None
    ended_at: Ms | None = None
    # The organization that owns it (web/access/orgs.py); not shown to anyone.
    org: str = Field("default", exclude=True)

    def public(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_hash(cls, raw: RawHash) -> Broadcast:
        h = text_hash(raw)

        def opt_int(name: str) -> int | None:
            v = h.get(name)
            return int(v) if v else None

        return cls(
            id=h["id"],
            title=h["title"],
            description=h.get("description", ""),
            scheduled_at=opt_int("scheduled_at"),
            status=cast(Status, h["status"]),
            created_at=int(h["created_at"]),
            updated_at=int(h["updated_at"]),
            started_at=opt_int("started_at"),
            ended_at=opt_int("ended_at"),
            org=h.get("org", "") or "default",
        )

    def to_hash(self) -> dict[str, str]:
        fields = {**self.model_dump(), "org": self.org}
        return {k: ("" if v is None else str(v)) for k, v in fields.items()}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _parse_time(value: Any) -> int | None:
    """Accepts unix milliseconds or an ISO 8601 string with a timezone."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise refuse("must be a time")
    if isinstance(value, int):
        if 0 <= value < 10**14:
            return value
        raise refuse("out of range")
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise refuse("must be ISO 8601 or unix milliseconds") from None
        if dt.tzinfo is None:
            raise refuse("needs a timezone")
        ms = int(dt.timestamp() * 1000)
        if not 0 <= ms < 10**14:  # the same range as unix milliseconds
            raise refuse("out of range")
        return ms
    raise refuse("must be a time")


When = Annotated[
    Annotated[int, Field(ge=0, le=10**14 - 1)] | datetime | Literal[""] | None,
    Field(description="Unix ms, or ISO 8601 with a timezone; null or '' for none"),
]


class BroadcastInput(Input):
    title: Annotated[str, text(TITLE_MAX, required=True)]
    description: Annotated[str, text(DESCRIPTION_MAX, multiline=True)] = ""
    scheduled_at: Annotated[
        int | None, PlainValidator(_parse_time, json_schema_input_type=When)
    ] = None


BroadcastPatch = partial(BroadcastInput, "BroadcastPatch")


def _validate(data: Any, *, partial: bool) -> dict[str, Any]:
    """The new fields of a broadcast (`partial`: only those sent)."""
    model = BroadcastPatch if partial else BroadcastInput
    return check(model, data).model_dump(exclude_unset=partial)


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
                    pipe.hset(keys.broadcast(bid), mapping=as_fields(b.to_hash()))
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
                pipe.hgetall(keys.broadcast(reply_text(bid)))
            rows = await pipe.execute()
        return [Broadcast.from_hash(h) for h in rows if h and b"title" in h]

    async def _write(self, b: Broadcast) -> Broadcast:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.broadcast(b.id), mapping=as_fields(b.to_hash()))
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
    return b.model_copy(update=changes)
