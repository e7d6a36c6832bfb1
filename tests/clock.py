"""A clock the test moves by hand, for code that takes its loop's clock as a parameter
(`time()` and `call_later()`, as stream/relay.py's KeyframeRequests does): timing is then
checked exactly, without waiting through it."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any


class _Handle:
    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._when = when
        self._callback = callback
        self._args = args
        self.cancelled = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """`time()` and `call_later()` of an event loop; `advance(dt)` runs what falls due, in
    order, each at its own time."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, _Handle]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> _Handle:
        handle = _Handle(self.now + max(0.0, delay), callback, args)
        heapq.heappush(self._timers, (handle.when(), next(self._order), handle))
        return handle

    def advance(self, seconds: float) -> None:
        until = self.now + seconds
        while self._timers and self._timers[0][0] <= until + 1e-9:
            when, _, handle = heapq.heappop(self._timers)
            if handle.cancelled:
                continue
            self.now = max(self.now, when)
            handle._callback(*handle._args)
        self.now = until
