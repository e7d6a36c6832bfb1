"""The snapshot a (re)connecting socket gets when replay can't cover its gap.

Its `seq` is read *before* the state, so every event after it is delivered afterwards; an
event whose effect the state already shows may arrive again, and clients apply events
idempotently (set-by-id, not increment).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from jobcast.web.appkeys import BROADCASTS, EVENT_LOG, PRESENCE, SNAPSHOT_PARTS
from jobcast.web.realtime.hub import Seq, SnapshotFn


def make_snapshot(app: web.Application) -> SnapshotFn:
    """The hub's snapshot function. It reads the app's objects when it runs: the hub it is
    given to is built before the presence that counts the hub's sockets."""

    async def snapshot(bid: str, host: bool) -> tuple[Seq | None, dict[str, Any]]:
        seq = await app[EVENT_LOG].last_seq(bid)
        broadcast = await app[BROADCASTS].get(bid)
        data: dict[str, Any] = {
            "broadcast": broadcast.public(),
            "viewers": await app[PRESENCE].total(bid),
        }
        for part in app[SNAPSHOT_PARTS]:
            data.update(await part(bid, host))
        return seq, data

    return snapshot
