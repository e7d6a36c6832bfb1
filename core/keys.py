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
