"""Helpers for the chat tests: viewers with their own cookie jars, request/reply over a socket."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from tests.helpers import Viewer

_ids = itertools.count(1)


class Viewers:
    """Opens viewer sockets, each with its own session (so its own viewer id) unless a jar is
    shared; a jar shared across two app instances gives the same viewer on both."""

    def __init__(self) -> None:
        self.sessions: list[aiohttp.ClientSession] = []

    def jar(self) -> aiohttp.CookieJar:
        return aiohttp.CookieJar(unsafe=True)

    async def open(
        self,
        client: TestClient,
        bid: str,
        *,
        jar: aiohttp.CookieJar | None = None,
        name: str | None = None,
        since: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Viewer:
        session = aiohttp.ClientSession(
            cookie_jar=jar if jar is not None else self.jar(), headers=headers
        )
        self.sessions.append(session)
        params = {}
        if name:
            params["name"] = name
        if since:
            params["since"] = since
        if not len(session.cookie_jar):
            # A browser loads the page first, which sets the signed viewer cookie.
            async with session.get(client.make_url("/api/me")) as r:
                assert r.status == 200
        ws = await session.ws_connect(client.make_url(f"/ws/b/{bid}"), params=params)
        v = Viewer(ws)
        await v.wait_for("synced")
        return v

    async def close(self) -> None:
        for s in self.sessions:
            await s.close()


async def call(v: Viewer, type_: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send one action and wait for its `ack` or `error`."""
    id_ = next(_ids)
    await v.send(type_, data or {}, id_)
    return await v.wait_for(lambda e: e.get("id") == id_ and e["type"] in ("ack", "error"))


async def ok(v: Viewer, type_: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = await call(v, type_, data)
    assert reply["type"] == "ack", reply
    return reply["data"]


async def err(v: Viewer, type_: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = await call(v, type_, data)
    assert reply["type"] == "error", reply
    return reply["data"]


def messages(v: Viewer) -> list[dict[str, Any]]:
    """Every chat message the socket received live, in order (from `chat.messages` events)."""
    return [m for e in v.of_type("chat.messages") for m in e["data"]["messages"]]


async def wait_message(v: Viewer, pred: Any = None, timeout: float = 5.0) -> dict[str, Any]:
    """The first live chat message matching `pred` (any message when None)."""

    def has(e: dict[str, Any]) -> bool:
        return e["type"] == "chat.messages" and any(
            pred is None or pred(m) for m in e["data"]["messages"]
        )

    await v.wait_for(has, timeout)
    return next(m for m in messages(v) if pred is None or pred(m))


async def wait_messages(v: Viewer, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        while len(messages(v)) < n:
            await v.wait_for(lambda e: e["type"] == "chat.messages" and len(messages(v)) >= n)
    return messages(v)
