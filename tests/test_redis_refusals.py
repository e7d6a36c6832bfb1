"""Redis refusing commands, on a real redis-server: out of memory, a disk error (MISCONF), a
read-only replica, a replica without its master, a long script (BUSY), down.

Every refused write answers `503 unavailable` with `Retry-After` and the refusal's kind under
`redis` (a socket action: an `unavailable` error event), reads keep working where Redis serves
them, a socket handshake Redis cannot serve is a plain 503 and never a 101, `/healthz` names
the kind, and all of it recovers once Redis does.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from jobcast.core import keys
from jobcast.web.appkeys import BUS
from jobcast.web.redis_errors import refusal_kind
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from tests.chat_helpers import Viewers, call, ok
from tests.helpers import Host, connect
from tests.openings_helpers import Applicant, applicant, application_body
from tests.redisproc import RedisProcess, free_port
from tests.waiting import wait_until


@pytest.fixture
async def admin(own_redis: RedisProcess) -> AsyncIterator[Redis]:
    """A connection of the test's own to the private server, for CONFIG and REPLICAOF."""
    r = Redis(port=own_redis.port, single_connection_client=True)
    await r.ping()
    yield r
    try:
        await r.aclose()
    except RedisError:
        pass


async def over_maxmemory(r: Redis) -> None:
    """Redis as it is once `maxmemory` is reached: no eviction, and more in use than allowed
    (the limit under what it uses, so that a freed client buffer cannot let a write in)."""
    await r.config_set("maxmemory-policy", "noeviction")
    used = int((await r.info("memory"))["used_memory"])
    await r.config_set("maxmemory", used // 2)
    with pytest.raises(ResponseError):
        await r.set("test:probe", "x")


def assert_refused(body: dict[str, Any], status: int, headers: Any, kind: str) -> None:
    assert status == 503, body
    assert int(headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "unavailable", body
    assert body["error"]["redis"] == kind, body


async def refused(resp: aiohttp.ClientResponse, kind: str) -> None:
    assert_refused(await resp.json(), resp.status, resp.headers, kind)


async def refused_event(v: Any, type_: str, data: dict[str, Any], kind: str) -> None:
    reply = await call(v, type_, data)
    assert reply["type"] == "error", reply
    assert reply["data"]["code"] == "unavailable", reply
    assert reply["data"]["redis"] == kind, reply
    assert reply["data"]["retry_after"] >= 1


async def healthz(client: Any) -> tuple[int, dict[str, Any]]:
    r = await client.get("/healthz")
    return r.status, await r.json()


class Fair:
    """One app on the private server with a host, a broadcast, a pinned published opening, an
    applicant and a viewer socket, all set up while Redis still takes writes."""

    client: Any
    host: Host
    bid: str
    oid: str
    applicant: Applicant
    viewer: Any

    @classmethod
    async def open(cls, client: Any, host: Host, bid: str, oid: str, viewers: Viewers) -> Fair:
        f = cls()
        f.client, f.host, f.bid, f.oid = client, host, bid, oid
        r = await f.host.post(f"/api/broadcasts/{f.bid}/pin", {"opening_id": f.oid})
        assert r.status == 200, await r.text()
        f.applicant = await applicant(f.client)
        f.viewer = await viewers.open(f.client, f.bid)
        return f

    async def writes_refused(self, kind: str, phone: str) -> None:
        await refused(await self.host.post("/api/broadcasts", {"title": "more"}), kind)
        await refused(
            await self.host.post(f"/api/broadcasts/{self.bid}/pin", {"opening_id": self.oid}),
            kind,
        )
        await refused(await self.applicant.apply(self.oid, application_body(phone=phone)), kind)
        await refused_event(self.viewer, "chat.send", {"text": "有夜班吗"}, kind)
        await refused_event(self.viewer, "question.ask", {"text": "包住宿吗？"}, kind)
        assert not self.viewer.closed.is_set()  # the socket lives on

    async def reads_served(self) -> None:
        r = await self.client.get(f"/api/broadcasts/{self.bid}/openings")
        assert r.status == 200, await r.text()
        assert [o["id"] for o in (await r.json())["openings"]] == [self.oid]
        r = await self.client.get(f"/api/broadcasts/{self.bid}/pin")
        assert r.status == 200, await r.text()
        assert (await r.json())["pinned"]["opening"]["id"] == self.oid
        r = await self.client.get(f"/b/{self.bid}")
        assert r.status == 200, await r.text()
        late = await connect(self.client, self.bid)  # joins and gets its snapshot
        snap = late.of_type("snapshot")[0]["data"]
        assert snap["pinned"]["opening"]["id"] == self.oid
        assert [o["id"] for o in snap["openings"]] == [self.oid]
        await late.close()

    async def writes_work(self, phone: str) -> None:
        await self.host.create_broadcast("again")
        r = await self.host.post(f"/api/broadcasts/{self.bid}/pin", {"opening_id": self.oid})
        assert r.status == 200, await r.text()
        r = await self.applicant.apply(self.oid, application_body(phone=phone))
        assert r.status == 201, await r.text()
        await ok(self.viewer, "chat.send", {"text": "谢谢"})
        assert await healthz(self.client) == (200, {"ok": True, "redis": "up"})


@pytest.fixture
async def fair(
    own_redis: RedisProcess, client: Any, host: Host, bid: str, opening: Any, viewers: Viewers
) -> Fair:
    """The fair, on the private server (asking for `own_redis` builds `client` on it)."""
    return await Fair.open(client, host, bid, opening["id"], viewers)


async def test_maxmemory_reached_writes_are_503_oom_and_reads_still_work(own_redis, admin, fair):
    await over_maxmemory(admin)
    try:
        await fair.writes_refused("oom", "13800138001")
        await fair.reads_served()
        assert await healthz(fair.client) == (503, {"ok": False, "redis": "oom"})
        metrics = await (await fair.client.get("/metrics")).text()
        assert 'jobcast_redis_refusals_total{kind="oom"}' in metrics
    finally:
        await admin.config_set("maxmemory", 0)
    await fair.writes_work("13800138002")


async def test_join_with_since_under_maxmemory_never_breaks_the_socket(own_redis, admin, fair):
    """A reconnect with `since` while Redis is full: either it replays, or (if the replay
    cannot be read) one `unavailable` event and a 1013 close. Never an HTTP answer inside the
    upgraded socket (which the client sees as a protocol error, close 1002)."""
    seq = fair.viewer.of_type("snapshot")[0]["seq"]
    await over_maxmemory(admin)
    try:
        ws = await fair.client.ws_connect(f"/ws/b/{fair.bid}?since={seq}")
        frames: list[Any] = []
        async with asyncio.timeout(10):
            async for msg in ws:
                assert msg.type == WSMsgType.TEXT, msg
                frames.extend(orjson.loads(msg.data))
                if any(e["type"] in ("synced", "error") for e in frames):
                    break
        last = frames[-1]
        if last["type"] == "error":
            assert last["data"]["code"] == "unavailable" and last["data"]["redis"] == "oom"
            msg = await ws.receive(timeout=5)
            assert msg.type == WSMsgType.CLOSE and msg.data == 1013, msg
        else:
            assert last["data"]["mode"] == "replay"
        await ws.close()
    finally:
        await admin.config_set("maxmemory", 0)


async def test_join_failing_after_the_upgrade_closes_the_socket_cleanly(
    own_redis, admin, client, bid
):
    """Past the 101 no HTTP answer may reach the socket: a snapshot that cannot be read (here
    the recent-chat list overwritten with a string, so Redis answers WRONGTYPE) gives one
    `internal` error event and a 1011 close, not an HTTP 500 inside the upgraded socket."""
    await admin.set(keys.chat_recent(bid), "not a list")
    ws = await client.ws_connect(f"/ws/b/{bid}")
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        msg = await ws.receive()
        while msg.type == WSMsgType.TEXT:
            events.extend(orjson.loads(msg.data))
            msg = await ws.receive()
    assert [e["type"] for e in events] == ["hello", "error"], events
    assert events[-1]["data"]["code"] == "internal"
    assert msg.type == WSMsgType.CLOSE and msg.data == 1011, msg
    await admin.delete(keys.chat_recent(bid))
    v = await connect(client, bid)
    assert v.of_type("snapshot")
    await v.close()


async def test_disk_error_misconf_writes_are_503_and_healthz_says_misconf(own_redis, admin, fair):
    """Redis that cannot persist (MISCONF): here an RDB save fails because its directory is
    gone, and stop-writes-on-bgsave-error refuses writes, as on a full disk."""
    await admin.config_set("save", "3600 1")
    try:
        shutil.rmtree(own_redis.dir)
        await admin.bgsave()

        async def save_failed() -> bool:
            info = await admin.info("persistence")
            return not info["rdb_bgsave_in_progress"] and info["rdb_last_bgsave_status"] == "err"

        await wait_until(save_failed)
        await fair.writes_refused("misconf", "13800138003")
        await fair.reads_served()
        assert await healthz(fair.client) == (503, {"ok": False, "redis": "misconf"})
        await admin.config_set("stop-writes-on-bgsave-error", "no")
        await fair.writes_work("13800138004")
    finally:
        await admin.config_set("save", "")  # else shutting down tries to save into nowhere


async def test_read_only_replica_writes_are_503_readonly_then_recover(own_redis, admin, fair):
    await admin.replicaof("127.0.0.1", free_port())  # a master that never answers
    try:
        await fair.writes_refused("readonly", "13800138005")
        await fair.reads_served()
        assert await healthz(fair.client) == (503, {"ok": False, "redis": "readonly"})

        # A replica that may not serve stale data refuses reads too (MASTERDOWN): the socket
        # handshake is then a plain 503, never a 101, and the page the busy page.
        await admin.config_set("replica-serve-stale-data", "no")
        await refused(await fair.client.get(f"/api/broadcasts/{fair.bid}"), "masterdown")
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await fair.client.ws_connect(f"/ws/b/{fair.bid}")
        assert e.value.status == 503
        await refused(await fair.client.get(f"/ws/b/{fair.bid}"), "masterdown")
        r = await fair.client.get(f"/b/{fair.bid}")
        assert r.status == 503 and r.headers["Retry-After"]
        assert r.content_type == "text/html"
        assert await healthz(fair.client) == (503, {"ok": False, "redis": "readonly"})
    finally:
        await admin.config_set("replica-serve-stale-data", "yes")
        await admin.replicaof("NO", "ONE")
    await fair.writes_work("13800138006")


async def test_busy_script_answers_503_busy_until_killed(own_redis, admin, client, host, bid):
    await admin.config_set("busy-reply-threshold", 100)
    runner = Redis(port=own_redis.port, single_connection_client=True)
    script = asyncio.create_task(runner.eval("while true do end", 0))
    try:

        async def busy() -> bool:
            return (await healthz(client)) == (503, {"ok": False, "redis": "busy"})

        await wait_until(busy)
        await refused(await client.get(f"/api/broadcasts/{bid}"), "busy")
        await refused(await host.patch(f"/api/broadcasts/{bid}", {"title": "x"}), "busy")
    finally:
        await admin.script_kill()
        with pytest.raises(ResponseError):
            await script
        await runner.aclose()
    assert await healthz(client) == (200, {"ok": True, "redis": "up"})
    r = await host.patch(f"/api/broadcasts/{bid}", {"title": "x"})
    assert r.status == 200, await r.text()


async def test_redis_down_socket_handshake_is_503_not_101_and_healthz_says_down(
    own_redis, client, host, bid
):
    own_redis.stop()
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await client.ws_connect(f"/ws/b/{bid}")
    assert e.value.status == 503
    r = await client.get(
        f"/ws/b/{bid}",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    await refused(r, "down")
    await refused(await host.patch(f"/api/broadcasts/{bid}", {"title": "x"}), "down")
    assert await healthz(client) == (503, {"ok": False, "redis": "down"})
    own_redis.start()
    # The bus reconnects on its backoff; a handshake before then is (rightly) still a 503.
    async with asyncio.timeout(15):
        await client.server.app[BUS].connected.wait()
    v = await connect(client, bid)
    assert v.of_type("snapshot")
    await v.close()


# -- the classifier, over errors the real server returns ------------------------------------


async def _error_of(make: Callable[[], Awaitable[Any]]) -> BaseException:
    try:
        await make()
    except BaseException as e:  # whatever redis-py raises is the point
        return e
    raise AssertionError("expected Redis to refuse")


async def test_classifier_kinds_from_the_real_server(own_redis, admin):
    r = admin
    await r.set("k", "v")

    # OOM: a plain write, a write inside a MULTI (queued command refused), a read inside a
    # MULTI, a write inside a script, and EXEC refused as a whole ("EXECABORT ... because of").
    await over_maxmemory(r)
    assert refusal_kind(await _error_of(lambda: r.set("k", "w"))) == "oom"

    async def multi(*cmds: tuple[str, ...]) -> Any:
        async with r.pipeline(transaction=True) as p:
            for c in cmds:
                p.execute_command(*c)
            return await p.execute()

    assert refusal_kind(await _error_of(lambda: multi(("SET", "k", "w")))) == "oom"
    assert refusal_kind(await _error_of(lambda: multi(("GET", "k"), ("GET", "k")))) == "oom"
    script = "return redis.call('set', KEYS[1], ARGV[1])"
    assert refusal_kind(await _error_of(lambda: r.eval(script, 1, "k", "w"))) == "oom"
    await r.config_set("maxmemory", 0)
    queued = Redis(port=own_redis.port, single_connection_client=True)
    await queued.execute_command("MULTI")
    await queued.execute_command("SET", "k", "w")
    await over_maxmemory(r)
    abort = await _error_of(lambda: queued.execute_command("EXEC"))
    assert type(abort).__name__ == "ExecAbortError" and refusal_kind(abort) == "oom"
    await queued.aclose()
    await r.config_set("maxmemory", 0)

    # READONLY: a replica, plain, in a MULTI, in a script.
    await r.replicaof("127.0.0.1", free_port())
    try:
        assert refusal_kind(await _error_of(lambda: r.set("k", "w"))) == "readonly"
        assert refusal_kind(await _error_of(lambda: multi(("SET", "k", "w")))) == "readonly"
        assert refusal_kind(await _error_of(lambda: r.eval(script, 1, "k", "w"))) == "readonly"
        await r.config_set("replica-serve-stale-data", "no")
        assert refusal_kind(await _error_of(lambda: r.get("k"))) == "masterdown"
    finally:
        await r.config_set("replica-serve-stale-data", "yes")
        await r.replicaof("NO", "ONE")

    # NOSCRIPT: EVALSHA of a script Redis does not hold.
    assert refusal_kind(await _error_of(lambda: r.evalsha("0" * 40, 0))) == "noscript"

    # BUSY: a script past busy-reply-threshold; other clients are refused until SCRIPT KILL.
    await r.config_set("busy-reply-threshold", 100)
    runner = Redis(port=own_redis.port, single_connection_client=True)
    other = Redis(port=own_redis.port, single_connection_client=True)
    looping = asyncio.create_task(runner.eval("while true do end", 0))
    try:

        async def refused_busy() -> bool:
            try:
                await other.get("k")
            except ResponseError as e:
                assert refusal_kind(e) == "busy", e
                return True
            return False

        await wait_until(refused_busy)
        async with other.pipeline(transaction=False) as p:
            p.get("k")
            p.get("k")
            busy_pipe = await _error_of(p.execute)
        assert refusal_kind(busy_pipe) == "busy"
    finally:
        await r.script_kill()
        killed = await _error_of(lambda: looping)
        await runner.aclose()
        await other.aclose()
    assert refusal_kind(killed) is None  # the killed script's own error is not a refusal

    # Down: nothing listens on the port.
    gone = Redis(port=free_port(), socket_connect_timeout=0.5)
    assert refusal_kind(await _error_of(gone.ping)) == "down"
    await gone.aclose()

    # Not refusals: a wrong type, an unknown command.
    await r.rpush("list", "a")
    assert refusal_kind(await _error_of(lambda: r.get("list"))) is None
    assert refusal_kind(await _error_of(lambda: r.execute_command("NOSUCHCOMMAND"))) is None


def test_classifier_message_prefixes():
    """Replies hard to provoke on a test server, as redis-py raises them."""
    from redis._parsers.base import BaseParser
    from redis.exceptions import ExecAbortError

    def parsed(reply: str) -> BaseException:
        return BaseParser.parse_error(reply)

    cases = {
        "LOADING Redis is loading the dataset in memory": "loading",
        "MISCONF Errors writing to the AOF file: No space left on device": "misconf",
        "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to "
        "persist to disk.": "misconf",
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN "
        "NOSAVE.": "busy",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.": (
            "masterdown"
        ),
        "TRYAGAIN Multiple keys request during rehashing of slot": "tryagain",
        "CLUSTERDOWN The cluster is down": "clusterdown",
        "EXECABORT Transaction discarded because of: MISCONF Errors writing to the AOF "
        "file: No space left on device": "misconf",
        "EXECABORT Transaction discarded because of previous errors.": None,
        "WRONGTYPE Operation against a key holding the wrong kind of value": None,
        "ERR unknown command 'BUSY'": None,
    }
    for reply, kind in cases.items():
        assert refusal_kind(parsed(reply)) == kind, reply
    # A refusal inside a pipeline, as redis-py annotates it: only the error counts, not the
    # command text (which may hold anything, here a value that reads like a refusal).
    e = ResponseError("BUSY Redis is busy running a script.")
    e.args = (f"Command # 1 (SET k BUSY) of pipeline caused error: {e.args}",)
    assert refusal_kind(e) == "busy"
    e = ResponseError("WRONGTYPE Operation against a key")
    e.args = (f"Command # 1 (SET k OOM) of pipeline caused error: {e.args}",)
    assert refusal_kind(e) is None
    # An EXECABORT raised from the queued command's refusal.
    try:
        try:
            raise parsed("MISCONF Errors writing to the AOF file: No space left on device")
        except ResponseError as cause:
            raise ExecAbortError("Transaction discarded because of previous errors.") from cause
    except ExecAbortError as e:
        assert refusal_kind(e) == "misconf"
    assert refusal_kind(ValueError("OOM")) is None
