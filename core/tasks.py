"""Stopping a background task for good.

`task.cancel(); await task` can wait forever: a cancel can be absorbed on its way in. On
Python 3.11, `asyncio.wait_for` drops a cancel that arrives as its inner awaitable finishes
(gh-86296), and the Redis client wraps every command's send in `wait_for` when it has a
socket timeout, as ours does. A loop that catches `Exception` to survive a Redis outage then
goes round again, and the server's shutdown hangs with the event loop idle. `stop` cancels
again until the task has ended, and gives up after a bound, logging which task it was, so a
shutdown always finishes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("jobcast.tasks")

RECANCEL = 0.1  # seconds between cancels while the task is still running
BOUND = 10.0  # seconds before `stop` gives up on a task


async def stop(task: asyncio.Task[Any] | None, *, bound: float = BOUND) -> bool:
    """Cancel `task` until it is done; True if it ended within `bound` seconds.

    Never raises: whatever the task ended with (its cancel, an error) stays with the task,
    and an error is logged. Safe to call on a task that has already ended, or on None."""
    if task is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while not task.done():
        left = deadline - loop.time()
        if left <= 0:
            log.warning("task did not stop", extra={"task": task.get_name()})
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL, left))
    if not task.cancelled() and task.exception() is not None:
        log.warning(
            "task ended with an error",
            extra={"task": task.get_name()},
            exc_info=task.exception(),
        )
    return True


async def stop_all(tasks: Iterable[asyncio.Task[Any]], *, bound: float = BOUND) -> bool:
    """`stop` for several tasks at once (they are cancelled together, not one by one)."""
    results = await asyncio.gather(*(stop(t, bound=bound) for t in tasks))
    return all(results)
