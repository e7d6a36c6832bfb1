"""core/tasks.py: a background loop stops even when a cancel is absorbed on its way in."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest
from jobcast.core import tasks


def _looping(waiting: asyncio.Queue[asyncio.Future[int]]):
    """A background loop like ours: each pass awaits a Redis-like step under `wait_for`
    and survives its errors."""

    async def run() -> None:
        while True:
            step: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            await waiting.put(step)
            try:
                await asyncio.wait_for(step, 5)
            except Exception:
                pass

    return run


async def test_a_cancel_absorbed_by_wait_for_does_not_stop_the_loop_but_stop_does() -> None:
    waiting: asyncio.Queue[asyncio.Future[int]] = asyncio.Queue()
    task = asyncio.create_task(_looping(waiting)(), name="loop")
    step = await waiting.get()
    # the step finishes in the same turn as the cancel arrives (a reply read as shutdown began)
    step.set_result(1)
    task.cancel()
    nxt = await waiting.get()  # the loop is back, waiting on its next step
    if sys.version_info < (3, 12):  # gh-86296: 3.11's wait_for returned the result instead
        assert not task.done()
    nxt.set_result(2)
    assert await tasks.stop(task)
    assert task.cancelled()


async def test_stop_gives_up_after_its_bound_and_names_the_task(caplog) -> None:
    release, started = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn-loop")
    await started.wait()
    with caplog.at_level(logging.WARNING, logger="jobcast.tasks"):
        assert not await tasks.stop(task, bound=0.3)
    assert [r.task for r in caplog.records if r.getMessage() == "task did not stop"] == [
        "stubborn-loop"
    ]
    release.set()
    await task


async def test_a_task_that_failed_is_logged_and_counts_as_stopped(caplog) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails(), name="failing")
    await asyncio.wait({task})
    with caplog.at_level(logging.WARNING, logger="jobcast.tasks"):
        assert await tasks.stop(task)
    assert any(r.getMessage() == "task ended with an error" for r in caplog.records)


@pytest.mark.parametrize("ended", ["none", "done", "cancelled"])
async def test_stop_on_a_task_that_is_not_running(ended: str) -> None:
    task = None
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def body() -> None:
        if ended == "cancelled":
            await never

    if ended != "none":
        task = asyncio.create_task(body())
        if ended == "cancelled":
            task.cancel()
        await asyncio.wait({task})
    assert await tasks.stop(task)


async def test_stop_all_cancels_together() -> None:
    waiting: asyncio.Queue[asyncio.Future[int]] = asyncio.Queue()
    loops = [asyncio.create_task(_looping(waiting)(), name=f"loop-{i}") for i in range(3)]
    for _ in loops:
        await waiting.get()
    assert await tasks.stop_all(loops)
    assert all(t.cancelled() for t in loops)


async def test_the_hang_dump_names_the_coroutine_a_task_waits_in() -> None:
    """tests/hangdump.py (printed before a test's timeout) shows each pending task's awaits."""
    import io

    from tests.hangdump import dump_tasks

    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()

    async def inner_wait() -> None:
        started.set()
        await never

    async def outer_close() -> None:
        await inner_wait()

    task = asyncio.create_task(outer_close(), name="stuck-close")
    await started.wait()
    out = io.StringIO()
    assert dump_tasks(out) >= 2  # this test's own task too
    text = out.getvalue()
    assert "task stuck-close:" in text
    block = text[text.index("task stuck-close:") :]
    assert block.index("in outer_close") < block.index("in inner_wait") < block.index("waiting on")
    assert await tasks.stop(task)
