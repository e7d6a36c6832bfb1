"""Which kind of refusal a Redis error is, so that every one of them answers 503 and not 500.

Redis refuses commands for reasons that pass: it is out of reach (`down`), over `maxmemory`
with a no-eviction policy (`oom`), unable to persist to disk (`misconf`: a full disk, a failed
RDB save), a replica during a failover (`readonly`), still loading its data set (`loading`),
stuck in a long script (`busy`), or it lost its script cache (`noscript`); in a cluster or
behind a failing master also `masterdown`, `tryagain` and `clusterdown`. A client should retry
every one of them later, so each becomes `503 unavailable` with `Retry-After` and the kind.

redis-py maps some reply prefixes to classes (OOM, READONLY, LOADING, NOSCRIPT, ...) and
strips the prefix from the message; the others (BUSY, MISCONF) arrive as a plain
`ResponseError` whose message starts with the prefix. Errors raised inside a Lua script keep
their prefix in Redis 7 ("OOM command not allowed ... script: ..."). In a MULTI, a command
refused while queuing is raised as itself (its ExecAbortError as the cause); EXEC refused as a
whole arrives as "EXECABORT Transaction discarded because of: <the error>".
"""

from __future__ import annotations

import re
from typing import Final, Literal

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ExecAbortError,
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

Refusal = Literal[
    "down",
    "oom",
    "misconf",
    "readonly",
    "loading",
    "busy",
    "noscript",
    "masterdown",
    "tryagain",
    "clusterdown",
]

# Reply prefix -> kind, for errors that redis-py leaves as a plain ResponseError.
_PREFIXES: Final[dict[str, Refusal]] = {
    "OOM": "oom",
    "MISCONF": "misconf",
    "READONLY": "readonly",
    "LOADING": "loading",
    "BUSY": "busy",
    "NOSCRIPT": "noscript",
    "MASTERDOWN": "masterdown",
    "TRYAGAIN": "tryagain",
    "CLUSTERDOWN": "clusterdown",
}
_LEADING = re.compile(r"-?([A-Z]+)\b")
_PIPELINE_NOTE = " of pipeline caused error: "
_ABORT_CAUSE = "because of: "

# Seconds a client should wait before retrying, by kind: an operator has to act on `oom` and
# `misconf`, a failover or a load takes a few seconds, the rest pass at once.
RETRY_AFTER: Final[dict[Refusal, int]] = {
    "down": 1,
    "oom": 5,
    "misconf": 5,
    "readonly": 2,
    "loading": 2,
    "busy": 1,
    "noscript": 1,
    "masterdown": 2,
    "tryagain": 1,
    "clusterdown": 2,
}

# What /healthz reports when its probe is refused: the kinds a write probe can meet on one
# server; a replica without its master is reported as `readonly`, anything else as `down`.
HEALTH_KINDS: Final = ("down", "readonly", "oom", "loading", "misconf", "busy")
_HEALTH_FOLD: Final[dict[str, str]] = {"masterdown": "readonly"}

MESSAGES: Final[dict[Refusal, str]] = {
    "down": "storage is unavailable, try again shortly",
    "oom": "storage is full (memory limit reached), try again later",
    "misconf": "storage cannot write to disk, try again later",
    "readonly": "storage is read-only for now (failing over), try again shortly",
    "loading": "storage is loading its data, try again shortly",
    "busy": "storage is busy, try again shortly",
    "noscript": "storage lost a script, try again",
    "masterdown": "storage lost its primary, try again shortly",
    "tryagain": "storage is moving data, try again",
    "clusterdown": "storage cluster is down, try again shortly",
}


def refusal_kind(exc: BaseException) -> Refusal | None:
    """The kind of refusal `exc` is, or None when it is not one (a bug, a bad command...)."""
    # BusyLoadingError subclasses ConnectionError: test it first.
    if isinstance(exc, BusyLoadingError):
        return "loading"
    if isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionRefusedError)):
        return "down"
    if isinstance(exc, OutOfMemoryError):
        return "oom"
    if isinstance(exc, ReadOnlyError):
        return "readonly"
    if isinstance(exc, NoScriptError):
        return "noscript"
    if isinstance(exc, MasterDownError):  # a ClusterDownError subclass
        return "masterdown"
    if isinstance(exc, ClusterDownError):
        return "clusterdown"
    if isinstance(exc, TryAgainError):
        return "tryagain"
    if not isinstance(exc, ResponseError):
        return None
    kind = _kind_of_message(exc)
    if kind is None and isinstance(exc, ExecAbortError):
        for cause in (exc.__cause__, exc.__context__):
            if cause is not None and not isinstance(cause, ExecAbortError):
                kind = refusal_kind(cause)
                if kind is not None:
                    break
    return kind


def _kind_of_message(exc: ResponseError) -> Refusal | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, str) and status in _PREFIXES:
        return _PREFIXES[status]
    msg = str(exc.args[0]) if exc.args else ""
    # "Command # 2 (SET k v) of pipeline caused error: ('BUSY Redis is busy ...',)": the
    # command text comes first and may hold anything, so only what follows the note counts.
    _, note, tail = msg.rpartition(_PIPELINE_NOTE)
    if note:
        msg = tail.lstrip("(\"'")
    if isinstance(exc, ExecAbortError) or msg.startswith("EXECABORT"):
        _, found, cause = msg.partition(_ABORT_CAUSE)
        if not found:
            return None
        msg = cause
    m = _LEADING.match(msg)
    return _PREFIXES.get(m.group(1)) if m else None


def retry_after(kind: Refusal) -> int:
    """Whole seconds for the `Retry-After` header (and the socket's `retry_after`)."""
    return RETRY_AFTER.get(kind, 1)


def message(kind: Refusal) -> str:
    return MESSAGES.get(kind, MESSAGES["down"])


def health_kind(exc: BaseException) -> str:
    """The state /healthz names for a refused probe: one of HEALTH_KINDS."""
    kind = refusal_kind(exc)
    state = _HEALTH_FOLD.get(kind, kind) if kind is not None else "down"
    return state if state in HEALTH_KINDS else "down"
