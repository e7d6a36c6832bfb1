"""The one optimistic transaction: WATCH, read, MULTI, write, EXEC, retried a bounded number
of times when another client changed a watched key in between.

    async def body(pipe: Pipeline) -> T:
        current = await pipe.get(key)     # reads run at once, under WATCH
        pipe.multi()                      # then queue the writes (and the events:
        pipe.set(key, new)                # EventLog.add_to), which EXEC commits together
        return result

    result = await transact(redis, [key], body, busy=lambda: Conflict(...))

`body` may raise (NotFound, Invalid...): the pipeline is reset and the error goes to the
caller, nothing written. When EXEC finds a watched key changed (WatchError: also what redis-py
raises when the connection drops while watching), the pipeline is reset and `body` runs again
on fresh reads; after `attempts` tries `busy()` is raised, an error web/errors.py maps (each
caller keeps the one it always gave: `busy` 409 or 503, or a not-found). Whatever should
happen only after the write (telling other processes, touching a coalescer) goes after
`transact` returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from jobcast.core.errors import Conflict
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

T = TypeVar("T")

ATTEMPTS = 10


def busy_conflict() -> Conflict:
    """The default give-up error: 409 `busy`."""
    return Conflict("busy, try again", code="busy")


async def transact(
    redis: Redis,
    keys: Sequence[str],
    body: Callable[[Pipeline], Awaitable[T]],
    *,
    attempts: int = ATTEMPTS,
    busy: Callable[[], Exception] = busy_conflict,
) -> T:
    """Run `body` between WATCH `keys` and EXEC until EXEC succeeds, at most `attempts`
    times; then raise `busy()`. Returns what the successful `body` returned."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    async with redis.pipeline(transaction=True) as pipe:
        for _ in range(attempts):
            try:
                await pipe.watch(*keys)
                result = await body(pipe)
                if not pipe.explicit_transaction:
                    pipe.multi()
                await pipe.execute()
                return result
            except WatchError:
                await pipe.reset()
    raise busy()
