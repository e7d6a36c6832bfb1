"""Taking rights away takes effect at once: a demoted, reset, disabled or removed account's
sessions end on every process, and so do its open host sockets; logout ends the session's.

The account commands run as an operator runs them, as real processes beside a real
`jobcast serve` (two workers where it matters), on its data directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from jobcast.core import keys
from jobcast.web.access import auth
from jobcast.web.appkeys import BUS, HUB, REDIS
from redis.asyncio import Redis

from tests import browserkit
from tests.helpers import login
from tests.servekit import Client, Server, run_command
from tests.waiting import wait_until

CLOSE_POLICY = 4003


async def _host_socket(session: aiohttp.ClientSession, base: str, bid: str) -> Any:
    """A host console socket, once it has caught up (`synced`)."""
    ws = await session.ws_connect(f"{base}/ws/host/b/{bid}", headers={"Origin": base})
    async with asyncio.timeout(10):
        while True:
            msg = await ws.receive()
            assert msg.type == WSMsgType.TEXT, (msg.type, msg.data)
            if any(e["type"] == "synced" for e in orjson.loads(msg.data)):
                return ws


async def _closed(ws: Any, timeout: float = 10) -> tuple[int, str, list[dict[str, Any]]]:
    """Read until the server's close frame: (code, reason, the events before it)."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type == WSMsgType.TEXT:
                events.extend(orjson.loads(msg.data))
            elif msg.type == WSMsgType.CLOSE:
                return msg.data, msg.extra, events
            else:
                raise AssertionError(f"no close frame: {msg.type} {msg.data!r}")


async def _revoked(ws: Any, why: str) -> None:
    code, reason, events = await _closed(ws)
    assert (code, reason) == (CLOSE_POLICY, "session_revoked"), (code, reason, events)
    errors = [e["data"] for e in events if e["type"] == "error"]
    assert errors and errors[-1]["code"] == "session_revoked" and errors[-1]["why"] == why


async def _alive(ws: Any) -> None:
    """The socket still answers (a `ping` action gets its `pong`)."""
    await ws.send_str(orjson.dumps({"type": "ping", "data": {"t": 1}}).decode())
    async with asyncio.timeout(10):
        while True:
            msg = await ws.receive()
            assert msg.type == WSMsgType.TEXT, (msg.type, msg.data)
            if any(e["type"] == "pong" for e in orjson.loads(msg.data)):
                return


async def _command(data_dir: Path, *args: str, stdin: str = "") -> Any:
    return await asyncio.to_thread(run_command, data_dir, *args, stdin=stdin)


async def _me(c: Client) -> dict[str, Any] | None:
    r = await c.session.get(f"{c.base}/api/me")
    return (await r.json())["host"]


async def _applications(c: Client, bid: str) -> int:
    r = await c.session.get(f"{c.base}/api/broadcasts/{bid}/applications")
    return r.status


async def _login(base: str, user: str, password: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s:
        r = await s.post(f"{base}/api/login", json={"username": user, "password": password})
        return r.status, await r.json()


async def test_add_host_demoting_or_resetting_ends_every_session_and_socket(tmp_path: Path):
    server = Server(tmp_path, "--workers", "2").start()
    try:
        base, bid = server.base, server.bid
        bob_pw = "bob-password-1"
        r = await _command(tmp_path, "add-host", "bob", "--password-stdin", stdin=bob_pw + "\n")
        assert r.returncode == 0, r.stderr
        async with Client(base) as demo, Client(base) as bob:
            assert await demo.login(server.user, server.password) == 200
            assert await bob.login("bob", bob_pw) == 200
            # Several sockets, so both workers hold some of them.
            socks = [await _host_socket(demo.session, base, bid) for _ in range(6)]
            bob_sock = await _host_socket(bob.session, base, bid)
            assert await _applications(demo, bid) == 200

            # Demoted to moderator (same password): the host sessions are gone.
            r = await _command(
                tmp_path,
                "add-host",
                server.user,
                "--role",
                "moderator",
                "--password-stdin",
                stdin=server.password + "\n",
            )
            assert r.returncode == 0, r.stderr
            for ws in socks:
                await _revoked(ws, "account_changed")
            assert await _me(demo) is None
            assert await _applications(demo, bid) == 401
            await _alive(bob_sock)  # another account's socket is untouched
            assert await _applications(bob, bid) == 200

            # Logging in again gives what the account is now.
            assert await demo.login(server.user, server.password) == 200
            assert (await _me(demo) or {})["role"] == "moderator"
            assert await _applications(demo, bid) == 403
            mod_sock = await _host_socket(demo.session, base, bid)

            # A password reset ends sessions too, and the old password stops working.
            r = await _command(
                tmp_path, "add-host", server.user, "--password-stdin", stdin="brand-new-pass\n"
            )
            assert r.returncode == 0, r.stderr
            await _revoked(mod_sock, "account_changed")
            assert await _me(demo) is None
            assert (await _login(base, server.user, server.password))[0] == 401
            assert await demo.login(server.user, "brand-new-pass") == 200
            assert (await _me(demo) or {})["role"] == "host"
            await _alive(bob_sock)
            await bob_sock.close()
    finally:
        assert server.stop() == 0


async def test_hosts_list_disable_enable_remove(tmp_path: Path):
    server = Server(tmp_path).start()
    try:
        base, bid, user, pw = server.base, server.bid, server.user, server.password
        r = await _command(tmp_path, "add-host", "carol", "--password-stdin", stdin="carol-pw-12\n")
        assert r.returncode == 0, r.stderr
        async with Client(base) as c:
            assert await c.login(user, pw) == 200
            ws = await _host_socket(c.session, base, bid)

            r = await _command(tmp_path, "hosts", "list")
            assert r.returncode == 0, r.stderr
            rows = {line.split("\t")[0]: line.split("\t") for line in r.stdout.splitlines()[1:]}
            assert rows["username"] == [
                "username",
                "role",
                "organization",
                "disabled",
                "last login",
            ]
            assert rows[user][1:4] == ["host", "default", "no"] and rows[user][4] != "never"
            assert rows["carol"][1:5] == ["host", "default", "no", "never"]

            # Disabled: its sockets close, its session is gone, and a login with the right
            # password is refused exactly as a wrong one is.
            r = await _command(tmp_path, "hosts", "disable", user)
            assert r.returncode == 0, r.stderr
            await _revoked(ws, "disabled")
            assert await _me(c) is None
            right = await _login(base, user, pw)
            wrong = await _login(base, user, "not-the-password")
            assert right == wrong and right[0] == 401
            assert right[1]["error"]["code"] == "bad_credentials"
            r = await _command(tmp_path, "hosts", "list")
            assert any(
                line.startswith(f"{user}\thost\tdefault\tyes") for line in r.stdout.splitlines()
            )

            r = await _command(tmp_path, "hosts", "enable", user)
            assert r.returncode == 0, r.stderr
            assert await c.login(user, pw) == 200
            ws = await _host_socket(c.session, base, bid)

            r = await _command(tmp_path, "hosts", "remove", user)
            assert r.returncode == 0, r.stderr
            await _revoked(ws, "removed")
            assert await _me(c) is None
            assert (await _login(base, user, pw))[0] == 401
            r = await _command(tmp_path, "hosts", "list")
            assert user not in [line.split("\t")[0] for line in r.stdout.splitlines()]
            assert "carol" in r.stdout
            r = await _command(tmp_path, "hosts", "remove", user)
            assert r.returncode == 2 and "no account" in r.stderr
            r = await _command(tmp_path, "hosts", "disable")
            assert r.returncode == 2 and "username" in r.stderr
    finally:
        assert server.stop() == 0


# -- logout, and revocations the listener missed (one app, real Redis) -----------------------


async def _session_client(client: Any, user: str, password: str) -> aiohttp.ClientSession:
    base = str(client.make_url("")).rstrip("/")
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": base})
    r = await s.post(f"{base}/api/login", json={"username": user, "password": password})
    assert r.status == 200, await r.text()
    s.headers["X-CSRF-Token"] = (await r.json())["csrf"]
    return s


async def test_logout_closes_that_sessions_sockets_only(app_factory, redis_url):
    client = await app_factory(redis_url)
    redis: Redis = client.server.app[REDIS]
    await auth.add_user(redis, "host1", "s3cret-pass", "host")
    base = str(client.make_url("")).rstrip("/")
    one = await _session_client(client, "host1", "s3cret-pass")
    two = await _session_client(client, "host1", "s3cret-pass")
    try:
        r = await one.post(f"{base}/api/broadcasts", json={"title": "t", "description": "d"})
        bid = (await r.json())["id"]
        ws_one = await _host_socket(one, base, bid)
        ws_two = await _host_socket(two, base, bid)
        r = await one.post(f"{base}/api/logout")
        assert r.status == 200
        await _revoked(ws_one, "logged_out")
        await _alive(ws_two)  # the same account's other session goes on
        r = await one.get(f"{base}/api/broadcasts/{bid}/applications")
        assert r.status == 401
        r = await two.get(f"{base}/api/broadcasts/{bid}/applications")
        assert r.status == 200
        await ws_two.close()
    finally:
        await one.close()
        await two.close()


async def test_a_revocation_published_while_the_listener_was_away_still_closes(
    app_factory, redis_url
):
    """Pub/sub is at-most-once: when the kick listener resubscribes it checks every host
    socket's session, so one revoked while it was disconnected is closed all the same."""
    client = await app_factory(redis_url)
    redis: Redis = client.server.app[REDIS]
    await auth.add_user(redis, "host1", "s3cret-pass", "host")
    base = str(client.make_url("")).rstrip("/")
    s = await _session_client(client, "host1", "s3cret-pass")
    try:
        r = await s.post(f"{base}/api/broadcasts", json={"title": "t", "description": "d"})
        bid = (await r.json())["id"]
        ws = await _host_socket(s, base, bid)
        # The start-up recheck (run when the kicks channel was first confirmed) is over, so
        # only the resubscribe below can find the change.
        bus = client.server.app[BUS]
        await wait_until(lambda: bus.hooks_running == 0, what="the start-up session recheck")
        # The epoch changes without a publish, as if the message had been lost.
        await redis.hset(keys.user("host1"), "epoch", "changed-while-away")
        await _alive(ws)
        await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        await _revoked(ws, "ended")
    finally:
        await s.close()


async def test_a_session_ended_during_the_socket_handshake_is_closed(app_factory, redis_url):
    """The revocation lands after the handshake read the session but before the socket was
    in the hub, where a kick would find it: the socket checks once more after joining."""
    client = await app_factory(redis_url)
    app = client.server.app
    redis: Redis = app[REDIS]
    await auth.add_user(redis, "host1", "s3cret-pass", "host")
    base = str(client.make_url("")).rstrip("/")
    s = await _session_client(client, "host1", "s3cret-pass")
    try:
        r = await s.post(f"{base}/api/broadcasts", json={"title": "t", "description": "d"})
        bid = (await r.json())["id"]
        hub = app[HUB]
        join = hub.join

        async def revoked_meanwhile(sock: Any, since: Any) -> str:
            # The account changes and its kick has come and gone (found no socket to close).
            await redis.hset(keys.user("host1"), "epoch", "changed-during-the-handshake")
            return await join(sock, since)

        hub.join = revoked_meanwhile  # type: ignore[method-assign]
        ws = await s.ws_connect(f"{base}/ws/host/b/{bid}", headers={"Origin": base})
        await _revoked(ws, "ended")
    finally:
        await s.close()


@pytest.mark.browser
async def test_the_host_console_goes_to_the_login_page_when_its_session_ends(
    app_factory, redis_url
):
    browserkit.require_browser()
    client = await app_factory(redis_url)
    redis: Redis = client.server.app[REDIS]
    host = await login(client, "anna", "host", "s3cret-pass")
    bid = await host.create_broadcast()
    base = str(client.make_url("")).rstrip("/")
    async with browserkit.chromium() as browser:
        page = await browserkit.new_page(browser, base, viewport=browserkit.DESKTOP, lang="en")
        await page.goto("/host")
        await page.get_by_label("Username").fill("anna")
        await page.get_by_label("Password").fill("s3cret-pass")
        await page.get_by_role("button", name="Log in").click()
        await page.get_by_role("heading", name="New broadcast").wait_for()
        await page.goto(f"/host/b/{bid}")
        await page.wait_for_function("() => document.documentElement.dataset.live === 'live'")
        await auth.set_disabled(redis, "anna", True)
        await page.get_by_role("button", name="Log in").wait_for()
        assert page.url == f"{base}/host/b/{bid}"
