"""Clients that behave like the browser's: apply events above their seq, reconnect with since
and jittered exponential backoff."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import orjson
from jobcast.core.events import parse_seq

from tests.waiting import wait_until


class ReconnectingViewer:
    """Behaves like the browser client: applies events above its seq, reconnects with since."""

    def __init__(self, base: str, bid: str, session: aiohttp.ClientSession | None = None) -> None:
        self.base = base
        self.session = session
        self.bid = bid
        self.seq: tuple[int, int] | None = None
        self.applied: list[int] = []
        self.raw_seqs: list[str] = []
        self.connections = 0
        self.stop = False
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        attempt = 0
        while not self.stop:
            url = f"{self.base}/ws/b/{self.bid}"
            if self.seq:
                url += f"?since={self.seq[0]}-{self.seq[1]}"
            try:
                if self.session is not None:
                    await self._listen(self.session, url)
                else:
                    async with aiohttp.ClientSession() as s:
                        await self._listen(s, url)
            except (TimeoutError, aiohttp.ClientError, OSError):
                pass
            attempt += 1
            # The browser's jittered backoff: the behaviour under test, nothing waits on it.
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + os.urandom(1)[0] / 512))

    async def _listen(self, s: aiohttp.ClientSession, url: str) -> None:
        async with s.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws:
            self.connections += 1
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    for ev in orjson.loads(msg.data):
                        self.apply(ev)

    def apply(self, ev: dict) -> None:
        if ev["type"] == "snapshot":
            self.seq = parse_seq(ev["seq"])
            return
        if "seq" not in ev:
            return
        self.raw_seqs.append(ev["seq"])
        s = parse_seq(ev["seq"])
        if self.seq is not None and s <= self.seq:
            return
        self.seq = s
        if ev["type"] == "test.tick":
            self.applied.append(ev["data"]["i"])


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (the workers of a `jobcast serve --workers N`)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


async def wait_healthy(base: str, timeout: float = 20.0) -> None:
    async with aiohttp.ClientSession() as s:

        async def healthy() -> bool:
            try:
                async with s.get(base + "/healthz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(healthy, timeout, f"{base}/healthz to answer 200", interval=0.1)
