"""Every Redis key Jobcast uses, in one place, so that names never drift between modules.

All keys of one broadcast share the hash tag `{b:ID}` so that a Redis Cluster would keep
them in one slot (MULTI/EXEC and scripts across them stay legal).
"""

from __future__ import annotations

PREFIX = "jc"


def broadcast(bid: str) -> str:
    """Hash with a broadcast's fields."""
    return f"{PREFIX}:{{b:{bid}}}"


BROADCAST_INDEX = f"{PREFIX}:broadcasts"  # zset of broadcast ids scored by creation time


def events(bid: str) -> str:
    """The broadcast's capped event stream; entry id == event seq."""
    return f"{PREFIX}:{{b:{bid}}}:events"


def channel(bid: str, audience: str) -> str:
    """Pub/sub channel: audience 'p' (everyone) or 'h' (hosts only)."""
    return f"{PREFIX}:{{b:{bid}}}:ch:{audience}"


def presence(bid: str) -> str:
    """Hash: process id -> 'count:unix_ms' of that process's local viewers."""
    return f"{PREFIX}:{{b:{bid}}}:presence"


def stream_key(bid: str) -> str:
    return f"{PREFIX}:{{b:{bid}}}:streamkey"


def user(username: str) -> str:
    return f"{PREFIX}:user:{username}"


USER_INDEX = f"{PREFIX}:users"


def session(token: str) -> str:
    return f"{PREFIX}:session:{token}"


def rate(bucket: str) -> str:
    return f"{PREFIX}:rate:{bucket}"


# -- openings and applications (openings/) ---------------------------------------------------

OPENING_OWNER = f"{PREFIX}:opening-owner"  # hash: opening id -> broadcast id


def openings(bid: str) -> str:
    """Hash: opening id -> the opening as JSON (every status)."""
    return f"{PREFIX}:{{b:{bid}}}:openings"


def open_openings(bid: str) -> str:
    """Hash: id of each published opening -> its application deadline (unix ms, 0: none)."""
    return f"{PREFIX}:{{b:{bid}}}:open"


def lineup(bid: str) -> str:
    """List: the broadcast's opening ids in presentation order."""
    return f"{PREFIX}:{{b:{bid}}}:lineup"


def pinned(bid: str) -> str:
    """Hash {opening_id, at}: the card being presented now (absent: none)."""
    return f"{PREFIX}:{{b:{bid}}}:pinned"


def application(bid: str, aid: str) -> str:
    """Hash with one application's fields (personal data: hosts only)."""
    return f"{PREFIX}:{{b:{bid}}}:app:{aid}"


def applications(bid: str) -> str:
    """Zset: application id -> created unix ms, every application of the broadcast."""
    return f"{PREFIX}:{{b:{bid}}}:apps"


def opening_applications(bid: str, oid: str) -> str:
    """Zset: application id -> created unix ms, for one opening (ZCARD is its count)."""
    return f"{PREFIX}:{{b:{bid}}}:op:{oid}:apps"


def opening_phones(bid: str, oid: str) -> str:
    """Hash: normalised phone -> application id (one application per phone and opening)."""
    return f"{PREFIX}:{{b:{bid}}}:op:{oid}:phones"


def viewer_applied(bid: str, vid: str) -> str:
    """Hash: opening id -> application id, what this viewer applied to in the broadcast."""
    return f"{PREFIX}:{{b:{bid}}}:viewer:{vid}:applied"


def idempotency(bid: str, vid: str, key: str) -> str:
    """String 'fingerprint application-id duplicate-flag' for one Idempotency-Key."""
    return f"{PREFIX}:{{b:{bid}}}:idem:{vid}:{key}"


def apply_rate(bid: str, who: str, window: int) -> str:
    """Counter of application attempts by `who` ('v:ID' or 'ip:ADDR') in one time window."""
    return f"{PREFIX}:{{b:{bid}}}:rl:{who}:{window}"
