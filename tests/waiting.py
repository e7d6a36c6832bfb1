"""Waiting for a condition of a server's state, for the tests.

Where the state has no event to await (a socket's transport closing, a counter on
/metrics, a process gone), this polls it, bounded by `timeout`, and fails naming what it
waited for. It is the one poller the tests share: `wait_until` on the event loop,
`poll_until` in plain (blocking) code such as starting a redis-server or a CLI process.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

Check = Callable[[], object | Awaitable[object]]


async def wait_until(
    check: Check, timeout: float = 10.0, what: str = "the condition", interval: float = 0.02
) -> None:
    """Until `check()` (sync or async) is truthy; AssertionError after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                res = check()
                if inspect.isawaitable(res):
                    res = await res
                if res:
                    return
                await asyncio.sleep(interval)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def poll_until(
    check: Callable[[], object],
    timeout: float = 10.0,
    what: str = "the condition",
    interval: float = 0.05,
) -> None:
    """`wait_until` for blocking code: until `check()` is truthy; AssertionError after
    `timeout` seconds. An exception from `check` ends the wait at once."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
