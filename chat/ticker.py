"""The flush loop shared by the coalescers (question votes, poll results): broadcasts touched
on this process are flushed twice per interval, and forgotten once a flush finds nothing
dirty and nothing touched them meanwhile. Which process publishes in an interval is the
flush's own business (a lock key in its script)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from jobcast.core import tasks

log = logging.getLogger("jobcast.chat")


class FlushTicker:
    def __init__(self, flush: Callable[[str], Awaitable[int]], interval: float, name: str) -> None:
        self._flush = flush
        self.interval = interval
        self.name = name
        self._bids: dict[str, int] = {}  # broadcast id -> touches since it was added
        self._task: asyncio.Task[None] | None = None

    def touch(self, bid: str) -> None:
        """Something to publish happened on `bid` here: keep flushing it."""
        self._bids[bid] = self._bids.get(bid, 0) + 1

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval / 2)
            for bid, touches in list(self._bids.items()):
                try:
                    if await self._flush(bid) == 0 and self._bids.get(bid) == touches:
                        del self._bids[bid]
                except Exception as e:  # Redis down: keep the broadcast, try next tick
                    log.warning(f"{self.name} flush failed", extra={"bid": bid, "error": str(e)})

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"jobcast-{self.name}")

    async def close(self) -> None:
        task, self._task = self._task, None
        await tasks.stop(task)
