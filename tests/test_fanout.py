"""The event path: publish through one instance, deliver on another; replay; host-only events;
slow viewers; bad frames; foreign origins."""

from __future__ import annotations

import socket

import orjson
import pytest
from aiohttp import WSServerHandshakeError
from jobcast.web.appkeys import EVENT_LOG, HUB, METRICS

from tests.helpers import connect
from tests.waiting import wait_until


async def test_event_reaches_viewer_on_other_instance(client_b, host, bid):
    viewer_b = await connect(client_b, bid)
    snap = viewer_b.of_type("snapshot")[0]
    assert snap["data"]["broadcast"]["id"] == bid
    r = await host.patch(f"/api/broadcasts/{bid}", {"title": "Renamed"})
    assert r.status == 200
    ev = await viewer_b.wait_for("broadcast.updated")
    assert ev["data"]["title"] == "Renamed"
    assert ev["seq"] > snap["seq"]


async def test_reconnect_with_since_gets_exactly_the_missed_events(client, client_b, bid):
    log = client.server.app[EVENT_LOG]
    v = await connect(client_b, bid)
    for i in range(5):
        await log.publish(bid, "test.tick", {"i": i})
    got = await v.wait_count("test.tick", 5)
    last_seen = got[-1]["seq"]
    await v.close()
    missed = [await log.publish(bid, "test.tick", {"i": i}) for i in range(5, 12)]
    v2 = await connect(client_b, bid, since=last_seen)
    assert v2.of_type("synced")[0]["data"]["mode"] == "replay"
    for i in range(12, 14):
        await log.publish(bid, "test.tick", {"i": i})
    ticks = await v2.wait_count("test.tick", 9)
    assert [e["data"]["i"] for e in ticks] == list(range(5, 14))
    assert [e["seq"] for e in ticks[:7]] == missed
    assert not v2.of_type("snapshot")
    await log.publish(bid, "test.fence", {})  # events arrive in order: a repeat comes before it
    await v2.wait_for("test.fence")
    assert len(v2.of_type("test.tick")) == 9  # none twice


@pytest.mark.app_settings(event_history=10)
async def test_gap_too_old_or_unknown_seq_gives_snapshot(client, bid):
    log = client.server.app[EVENT_LOG]
    first = await log.publish(bid, "test.tick", {"i": 0})
    for i in range(200):
        await log.publish(bid, "test.tick", {"i": i})
    v = await connect(client, bid, since=first)
    assert v.of_type("synced")[0]["data"]["mode"] == "snapshot"
    v2 = await connect(client, bid, since="99999999999999-0")  # ahead of the stream
    assert v2.of_type("synced")[0]["data"]["mode"] == "snapshot"
    r = await client.get(f"/ws/b/{bid}?since=nonsense")
    assert r.status == 422
    assert (await r.json())["error"]["fields"]["since"]


async def test_viewer_never_receives_host_only_events(client, client_b, host, bid):
    log = client.server.app[EVENT_LOG]
    viewer = await connect(client_b, bid)
    host_sock = await connect(host.client, bid, host=True)
    await log.publish(bid, "test.secret", {"phone": "13800138000"}, audience="h")
    await log.publish(bid, "test.public", {"n": 1})
    await host_sock.wait_for("test.secret")
    await host_sock.wait_for("test.public")
    await viewer.wait_for("test.public")
    assert not viewer.of_type("test.secret")
    # nor on replay
    v2 = await connect(client_b, bid, since=viewer.of_type("snapshot")[0]["seq"])
    await v2.wait_for("test.public")
    assert not v2.of_type("test.secret")
    assert all("13800138000" not in orjson.dumps(e).decode() for e in viewer.events + v2.events)
    # and the host socket refuses anonymous viewers
    with pytest.raises(WSServerHandshakeError) as exc:
        await client_b.ws_connect(f"/ws/host/b/{bid}")
    assert exc.value.status == 401


async def test_moderator_may_open_host_socket(bid, moderator):
    s = await connect(moderator.client, bid, host=True)
    assert s.of_type("hello")[0]["data"]["role"] == "moderator"


@pytest.mark.app_settings(ws_queue_events=50)
async def test_slow_viewer_is_dropped_without_delaying_others(client, bid):
    fast = await connect(client, bid)
    # A raw client that completes the handshake and then never reads.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: small window
    sock.connect(("127.0.0.1", client.server.port))
    sock.sendall(
        (
            f"GET /ws/b/{bid} HTTP/1.1\r\nHost: 127.0.0.1:{client.server.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    hub = client.server.app[HUB]
    await wait_until(lambda: len(hub.sockets.get(bid, ())) == 2, what="the raw socket to join")
    log = client.server.app[EVENT_LOG]
    payload = "x" * 16000
    for i in range(400):
        await log.publish(bid, "test.big", {"i": i, "pad": payload})
    got = await fast.wait_count("test.big", 400, timeout=20)
    assert [e["data"]["i"] for e in got] == list(range(400))
    await wait_until(lambda: len(hub.sockets.get(bid, ())) == 1, what="the slow socket to go")
    metrics = client.server.app[METRICS].registry
    assert metrics.get_sample_value("jobcast_slow_viewers_dropped_total") == 1
    sock.close()


@pytest.mark.app_settings(ws_max_frame_bytes=1024)
async def test_bad_frames_get_error_events_and_the_socket_survives(client, bid):
    v = await connect(client, bid)
    await v.ws.send_str("not json")
    await v.ws.send_str("[1,2,3]")
    await v.ws.send_str('{"type": 5}')
    await v.send("no.such.type", {}, id_="q1")
    await v.ws.send_str('{"type":"set_name","data":{"name":"' + "x" * 3000 + '"}}')
    await v.ws.send_bytes(b"\xff\xfe")
    errors = await v.wait_count("error", 6)
    codes = [e["data"]["code"] for e in errors]
    assert codes == [
        "bad_frame",
        "bad_frame",
        "bad_frame",
        "unknown_type",
        "too_large",
        "bad_frame",
    ]
    assert errors[3]["id"] == "q1"
    await v.send("ping", {"t": 1}, id_=7)
    pong = await v.wait_for("pong")
    assert pong["id"] == 7 and pong["data"]["t"] == 1
    await v.send("set_name", {"name": "<b>小王</b>"}, id_=8)
    ack = await v.wait_for("ack")
    assert ack["data"]["name"] == "<b>小王</b>" and ack["id"] == 8


@pytest.mark.app_settings(ws_burst=5, ws_messages_per_second=1)
async def test_flood_is_rate_limited(client, bid):
    v = await connect(client, bid)
    for i in range(10):
        await v.send("ping", {"t": i})
    err = await v.wait_for("error")
    assert err["data"]["code"] == "rate_limited" and err["data"]["retry_after"] > 0
    assert len(v.of_type("pong")) == 5


async def test_foreign_origin_is_refused(client, host, bid):
    with pytest.raises(WSServerHandshakeError) as exc:
        await client.ws_connect(f"/ws/b/{bid}", headers={"Origin": "https://evil.example"})
    assert exc.value.status == 403
    own = f"http://127.0.0.1:{client.server.port}"
    ws = await client.ws_connect(f"/ws/b/{bid}", headers={"Origin": own})
    await ws.close()
    r = await client.post(
        "/api/broadcasts",
        json={"title": "x"},
        headers={"Origin": "https://evil.example", "X-CSRF-Token": host.csrf},
    )
    assert r.status == 403
    assert (await r.json())["error"]["code"] == "bad_origin"


async def test_unknown_broadcast_socket_is_404(client):
    r = await client.get("/ws/b/nosuchid")
    assert r.status == 404
    assert (await r.json())["error"]["code"] == "broadcast_not_found"


async def test_socket_sets_the_viewer_cookie_once(client, bid):
    from aiohttp import ClientSession, CookieJar

    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as s:  # unsafe: IP host
        ws = await s.ws_connect(f"http://127.0.0.1:{client.server.port}/ws/b/{bid}")
        first = orjson.loads((await ws.receive()).data)[0]
        await ws.close()
        assert "jc_vid" in {c.key for c in s.cookie_jar}
        ws = await s.ws_connect(f"http://127.0.0.1:{client.server.port}/ws/b/{bid}")
        second = orjson.loads((await ws.receive()).data)[0]
        await ws.close()
    assert first["type"] == "hello"
    assert first["data"]["viewer_id"] == second["data"]["viewer_id"]
