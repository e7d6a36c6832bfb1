"""The outbox of notices to applicants (a status change, an interview booked, a reminder),
delivered by the notifier (web/runtime/notifier.py) as a signed webhook to the employment
center's SMS or WeChat gateway.

A notice is added in the same MULTI as the change it tells of, so a stored change always has
its notice and a failed write has none. The outbox is a Redis stream (keys.NOTICES): the
notifier reads it with a consumer group, so a notice survives a restart until delivered or
dead-lettered. Each notice has a stable `id`, the idempotency key the receiver deduplicates by.

Notices carry what the gateway needs to reach the person (their phone) and nothing is logged
of them but the id and the kind.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from jobcast.core import keys
from jobcast.core.ids import new_id
from redis.asyncio.client import Pipeline

Kind = Literal[
    "application.status",
    "interview.booked",
    "interview.cancelled",
    "interview.reminder",
    "phone.code",  # the code that confirms a number from another device (openings/mine.py)
]
NOTICES_MAX = 100_000  # the outbox's cap: far beyond what a gateway outage leaves queued


def add_notice(
    pipe: Pipeline,
    kind: Kind,
    *,
    bid: str,
    lang: str,
    to: dict[str, Any],
    data: dict[str, Any],
    notice_id: str | None = None,
) -> str:
    """Queue one notice on `pipe` (inside the caller's MULTI); returns its id.

    `to` says who (`phone`, `name`, `application_id`); `data` what happened, in the shape of
    the kind (docs/protocol.md, "Notifier"); `lang` is the applicant's page language, for the
    message text.
    """
    nid = notice_id or new_id(16)
    notice = {
        "id": nid,
        "kind": kind,
        "broadcast_id": bid,
        "lang": lang,
        "to": to,
        "data": data,
        "created_at": int(time.time() * 1000),
    }
    pipe.xadd(keys.NOTICES, {"n": orjson.dumps(notice)}, maxlen=NOTICES_MAX, approximate=True)
    return nid
