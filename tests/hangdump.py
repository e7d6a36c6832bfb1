"""What a hung test was waiting for: pytest-timeout prints each thread's stack, but a hang
on an idle event loop shows only `select()` there. Shortly before a test's timeout, this
prints every pending asyncio task with its chain of awaits (coroutine by coroutine, down to
the future it sits on), so a CI log names the coroutine that never finished."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from types import CoroutineType, GeneratorType
from typing import Any

import pytest

LEAD = 5.0  # seconds before the test's timeout


def _chain(coro: Any) -> list[str]:
    out: list[str] = []
    while coro is not None and len(out) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None and isinstance(coro, (CoroutineType, GeneratorType)):
            break
        if frame is not None:
            code = frame.f_code
            out.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_name}")
        nxt = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if nxt is None:
            if isinstance(coro, asyncio.Future):
                out.append(f"  waiting on {coro!r}"[:300])
            elif frame is None:
                out.append(f"  waiting on {type(coro).__name__}")
            break
        coro = nxt
    return out


def dump_tasks(file: Any = None) -> int:
    """Print every pending task's await chain; returns how many there were."""
    file = file or sys.stderr
    pending = [o for o in gc.get_objects() if isinstance(o, asyncio.Task) and not o.done()]
    print(f"\n+++ {len(pending)} pending asyncio tasks +++", file=file)
    for task in pending:
        print(f"task {task.get_name()}:", file=file)
        for line in _chain(task.get_coro()):
            print(line, file=file)
    file.flush()
    return len(pending)


def _timeout_of(item: pytest.Item) -> float | None:
    """The test's pytest-timeout bound: its mark, else --timeout, else the ini's."""
    mark = item.get_closest_marker("timeout")
    value: Any = None
    if mark is not None:
        value = mark.args[0] if mark.args else mark.kwargs.get("timeout")
    if value is None:
        value = item.config.getoption("timeout", default=None) or item.config.getini("timeout")
    try:
        return float(value) or None
    except (TypeError, ValueError):
        return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):  # type: ignore[no-untyped-def]
    seconds = _timeout_of(item)
    timer = None
    if seconds and seconds > LEAD * 2:
        timer = threading.Timer(seconds - LEAD, dump_tasks, kwargs={"file": sys.__stderr__})
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
