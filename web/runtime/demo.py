"""`jobcast serve --demo`: one broadcast, a demo host account, and sample openings."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from jobcast.core.broadcasts import BroadcastService
from jobcast.core.events import EventLog
from jobcast.openings.demo import seed_openings
from jobcast.web.access.auth import add_user
from jobcast.web.runtime.settings import Settings
from redis.asyncio import Redis

DEMO_USER = "demo"
DEMO_KEY = "jc:demo"

# Packages that have demo content add a seeder: (redis, log, broadcast id) -> None.
SEEDERS: list[Callable[[Redis, EventLog, str], Awaitable[None]]] = [seed_openings]


async def seed(settings: Settings) -> dict[str, Any]:
    """Idempotent: a second `--demo` start reuses the broadcast and prints a new password."""
    from jobcast.web.app import redis_client

    redis = redis_client(settings.redis_url)
    try:
        log = EventLog(
            redis, maxlen=settings.event_history, host_maxlen=settings.host_event_history
        )
        broadcasts = BroadcastService(redis, log)
        bid_raw = await redis.get(DEMO_KEY)
        bid = bid_raw.decode() if bid_raw else None
        if bid is None or not await broadcasts.exists(bid):
            b = await broadcasts.create(
                {
                    "title": "鸡西市就业服务中心 · 2026 届高校毕业生直播招聘会",
                    "description": (
                        "本场直播为高校毕业生和求职者推介本地优质岗位。边看边问，看中即投。\n"
                        "Live job fair for graduates: ask questions and apply while you watch."
                    ),
                    "scheduled_at": None,
                }
            )
            bid = b.id
            await redis.set(DEMO_KEY, bid)
            for seeder in SEEDERS:
                await seeder(redis, log, bid)
            await broadcasts.start(bid)
        password = secrets.token_urlsafe(9)
        await add_user(redis, DEMO_USER, password, "host")
        return {"broadcast_id": bid, "username": DEMO_USER, "password": password}
    finally:
        await redis.aclose()
