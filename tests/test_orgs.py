"""Employment centers kept apart: a host of one organization reaches none of another's
broadcasts, openings, applicants or exports (404, as if they did not exist), over HTTP and
sockets; an operator sees all; data from before organizations is in `default`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import aiohttp
from jobcast.core import keys
from jobcast.web.access import orgs
from jobcast.web.appkeys import REDIS

from tests.servekit import run_command
from tests.test_security import _body, _doc_ops, _fill, _session, _world


async def _in_org(client, username: str, org: str, role: str = "host"):
    redis = client.server.app[REDIS]
    if org not in (orgs.DEFAULT, orgs.ALL):
        await orgs.create_org(redis, org, org.upper())
    caller = await _session(client, username, role)
    await orgs.set_user_org(redis, username, org)
    return caller


async def test_a_host_of_another_organization_gets_404_on_everything(client):
    redis = client.server.app[REDIS]
    await orgs.create_org(redis, "jixi", "鸡西市就业服务中心")
    await orgs.set_user_org(redis, "host1", "jixi")  # _world's host, before it logs in
    await redis.hset(keys.user("host1"), "org", "jixi")
    w = await _world(client)
    assert await orgs.broadcast_org(redis, w.bid) == "jixi"
    other = await _in_org(client, "harbin1", "harbin")
    ops = [
        (m, p, op)
        for m, p, op in _doc_ops()
        if op["x-jobcast-access"] in ("host", "staff") and ("{bid}" in p or "{oid}" in p)
    ]
    assert len(ops) > 30
    for method, path, op in ops:
        status, err, _ = await other.request(method, _fill(path, w), json=_body(op, w))
        assert status == 404, (method, path, status, err)
        assert err["error"]["code"] in ("broadcast_not_found", "opening_not_found"), err
    # A moderator of the other center, too.
    mod = await _in_org(client, "harbinmod", "harbin", "moderator")
    status, chat, _ = await mod.request("GET", f"/api/broadcasts/{w.bid}/chat")
    assert status == 200 and "moderation" not in chat  # a viewer's view, nothing of staff
    # The host socket and the console page.
    cookie = "; ".join(f"{k}={v}" for k, v in other.cookies.items())
    async with aiohttp.ClientSession() as s:
        try:
            async with s.ws_connect(
                f"{other.base}/ws/host/b/{w.bid}", headers={"Cookie": cookie, "Origin": other.base}
            ):
                raise AssertionError("the other center's host socket opened")
        except aiohttp.WSServerHandshakeError as e:
            assert e.status == 404
    status, html, _ = await other.request("GET", f"/host/b/{w.bid}")
    assert status == 404 and "host_console" not in html
    # Nothing listed; nothing changed.
    status, listed, _ = await other.request("GET", "/api/broadcasts")
    assert w.bid not in [b["id"] for b in listed["broadcasts"]]
    status, apps, _ = await w.host.request("GET", f"/api/broadcasts/{w.bid}/applications")
    assert status == 200 and apps["total"] == 1
    # The owner's host still reaches all of it, and its own broadcasts belong to it.
    status, listed, _ = await w.host.request("GET", "/api/broadcasts")
    assert w.bid in [b["id"] for b in listed["broadcasts"]]
    status, b, _ = await other.request("POST", "/api/broadcasts", json={"title": "哈尔滨"})
    assert status == 201 and await orgs.broadcast_org(redis, b["id"]) == "harbin"
    status, _, _ = await w.host.request("GET", f"/api/broadcasts/{b['id']}/applications")
    assert status == 404


async def test_an_operator_sees_every_organization(client):
    redis = client.server.app[REDIS]
    await orgs.create_org(redis, "jixi", "鸡西")
    w = await _world(client)
    await orgs.set_broadcast_org(redis, w.bid, "jixi")
    op = await _in_org(client, "root", orgs.ALL)
    status, listed, _ = await op.request("GET", "/api/broadcasts")
    assert w.bid in [b["id"] for b in listed["broadcasts"]]
    status, apps, _ = await op.request("GET", f"/api/broadcasts/{w.bid}/applications")
    assert status == 200 and apps["total"] == 1


async def test_data_from_before_organizations_is_in_default(client, other_org_host):
    """A broadcast and an account without an organization belong to `default`."""
    redis = client.server.app[REDIS]
    w = await _world(client)
    await redis.hdel(keys.broadcast(w.bid), "org")
    await redis.hdel(keys.user("host1"), "org")
    status, _, _ = await w.host.request("GET", f"/api/broadcasts/{w.bid}/applications")
    assert status == 200
    r = await other_org_host.get(f"/api/broadcasts/{w.bid}/applications")
    assert r.status == 404


def test_orgs_and_add_host_commands(tmp_path: Path):
    r = run_command(tmp_path, "orgs", "add", "jixi", "--name", "鸡西市就业服务中心")
    assert r.returncode == 0, r.stderr
    r = run_command(tmp_path, "orgs", "list")
    assert r.returncode == 0 and "jixi\t鸡西市就业服务中心" in r.stdout and "default" in r.stdout
    r = run_command(
        tmp_path, "add-host", "li", "--org", "jixi", "--password-stdin", stdin="pw-12345678\n"
    )
    assert r.returncode == 0, r.stderr
    r = run_command(
        tmp_path, "add-host", "wu", "--org", "nowhere", "--password-stdin", stdin="pw-12345678\n"
    )
    assert r.returncode == 2 and "nowhere" in r.stderr
    r = run_command(tmp_path, "orgs", "add", "Bad Id!")
    assert r.returncode == 2
    assert isinstance(r, subprocess.CompletedProcess)
