"""Helpers shared by tests: log in, open sockets, collect events."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
from aiohttp import ClientWebSocketResponse, WSMsgType
from aiohttp.test_utils import TestClient
from jobcast.web.access import orgs
from jobcast.web.access.auth import add_user
from jobcast.web.appkeys import EVENT_LOG, REDIS
from redis.asyncio import Redis


class Host:
    """A logged-in host (or moderator) session on one client."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    def _h(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    async def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.client.post(path, json=json, headers=self._h(), **kw)

    async def patch(self, path: str, json: Any = None) -> Any:
        return await self.client.patch(path, json=json, headers=self._h())

    async def delete(self, path: str) -> Any:
        return await self.client.delete(path, headers=self._h())

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.client.get(path, **kw)

    async def create_broadcast(self, title: str = "Test fair") -> str:
        r = await self.post("/api/broadcasts", {"title": title, "description": "d"})
        assert r.status == 201, await r.text()
        return (await r.json())["id"]


async def login(
    client: TestClient,
    username: str = "host1",
    role: str = "host",
    password: str = "s3cret-pass",
    *,
    org: str | None = None,
) -> Host:
    """Create (or reset) the account, in `org` when given (created if new), and log it in."""
    redis: Redis = client.server.app[REDIS]
    await add_user(redis, username, password, role)  # type: ignore[arg-type]
    if org is not None:
        if not await orgs.org_exists(redis, org):
            await orgs.create_org(redis, org, org.upper())
        await orgs.set_user_org(redis, username, org)
    r = await client.post("/api/login", json={"username": username, "password": password})
    assert r.status == 200, await r.text()
    return Host(client, (await r.json())["csrf"])


async def viewer_csrf(client: TestClient) -> str:
    r = await client.get("/api/me")
    return (await r.json())["csrf"]


class Viewer:
    """A WebSocket client that collects every event it receives."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._pump())
        self._new = asyncio.Event()

    async def _pump(self) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT:
                frame = orjson.loads(msg.data)
                self.events.extend(frame if isinstance(frame, list) else [frame])
                self._new.set()
        self.closed.set()
        self._new.set()

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] in types]

    def seqs(self) -> list[str]:
        return [e["seq"] for e in self.events if "seq" in e and e["type"] != "snapshot"]

    async def wait_for(self, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
        """First event matching `pred` (a type name or a predicate)."""
        check = (lambda e: e["type"] == pred) if isinstance(pred, str) else pred
        async with asyncio.timeout(timeout):
            while True:
                for e in self.events:
                    if check(e):
                        return e
                if self.closed.is_set():
                    raise AssertionError(f"socket closed; events: {self.events[-5:]}")
                self._new.clear()
                await self._new.wait()

    async def wait_count(self, pred: Any, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        check = (lambda e: e["type"] == pred) if isinstance(pred, str) else pred
        async with asyncio.timeout(timeout):
            while True:
                got = [e for e in self.events if check(e)]
                if len(got) >= n:
                    return got
                if self.closed.is_set():
                    raise AssertionError(f"socket closed with {len(got)}/{n}")
                self._new.clear()
                await self._new.wait()

    async def send(self, type_: str, data: dict[str, Any] | None = None, id_: Any = None) -> None:
        frame: dict[str, Any] = {"type": type_, "data": data or {}}
        if id_ is not None:
            frame["id"] = id_
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()


async def fence(client: TestClient, bid: str, *socks: Viewer) -> None:
    """Publish a marker event on `bid` and wait for it on each socket.

    A socket gets its broadcast's events in order, so every event published before the
    marker has then arrived: a test can check that something did not arrive, or that the
    last of a burst is in, without sleeping."""
    mark = uuid.uuid4().hex
    await client.server.app[EVENT_LOG].publish(bid, "test.fence", {"mark": mark})
    for sock in socks:
        await sock.wait_for(lambda e: e["type"] == "test.fence" and e["data"]["mark"] == mark)


async def connect(
    client: TestClient, bid: str, *, since: str | None = None, host: bool = False, **kw: Any
) -> Viewer:
    path = f"/ws/host/b/{bid}" if host else f"/ws/b/{bid}"
    if since:
        path += f"?since={since}"
    ws = await client.ws_connect(path, **kw)
    v = Viewer(ws)
    await v.wait_for("synced")
    return v
