"""Security properties, each checked for every route it applies to (enumerated from the router
or the OpenAPI document, not picked by hand):

- cross-site WebSocket hijacking: a foreign Origin is refused on both sockets;
- every unsafe route refuses a cookie-authenticated write without the CSRF token, with a wrong
  one, or from a foreign Origin;
- every `host`/`staff` operation answers 401 to anonymous callers and 401/403 to viewers;
  moderators get 403 on every `host` operation and may moderate;
- one viewer can never read another's application or act under another's viewer id;
- bodies, frames and uploads over their limits are refused cleanly;
- cookie flags, security headers, and CORS on WHIP/WHEP.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestServer, make_mocked_request
from jobcast.core.errors import TooLarge
from jobcast.web.access import auth
from jobcast.web.api.openapi import CHAT_EXAMPLES, EXAMPLE_OPENING_ID, document
from jobcast.web.app import create_app
from jobcast.web.appkeys import REDIS, SETTINGS

from tests.conftest import make_settings
from tests.helpers import connect

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
EVIL = "https://evil.example"
CORS_OPEN = ("/whip/", "/whep/")
# Unsafe routes that need no CSRF token, and why.
NO_CSRF = {
    ("POST", "/api/login"): "no session exists yet; the Origin check and SameSite cover it",
}


@dataclass
class Caller:
    """Someone with cookies and a CSRF token, sending requests without a cookie jar."""

    base: str
    cookies: dict[str, str]
    csrf: str | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: Any = None,
        csrf: bool | str = True,
        origin: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        """(status, the JSON body or else the text, the response)."""
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if csrf is True and self.csrf:
            h[auth.CSRF_HEADER] = self.csrf
        elif isinstance(csrf, str):
            h[auth.CSRF_HEADER] = csrf
        if origin is not None:
            h["Origin"] = origin
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as s:
            async with s.request(
                method, self.base + path, json=json, data=data, headers=h, allow_redirects=False
            ) as r:
                if r.content_type == "application/json":
                    return r.status, await r.json(), r
                return r.status, await r.text(), r


async def _session(client: Any, username: str, role: str) -> Caller:
    """Log in `username` on a fresh cookie jar (the client's own jar stays as it is)."""
    await auth.add_user(client.server.app[REDIS], username, "s3cret-pass", role)  # type: ignore[arg-type]
    base = str(client.make_url("")).rstrip("/")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        async with s.post(
            base + "/api/login", json={"username": username, "password": "s3cret-pass"}
        ) as r:
            assert r.status == 200, await r.text()
            csrf = (await r.json())["csrf"]
    return Caller(base, {c.key: c.value for c in jar}, csrf)


async def _viewer(client: Any) -> Caller:
    base = str(client.make_url("")).rstrip("/")
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as s:
        async with s.get(base + "/api/me") as r:
            csrf = (await r.json())["csrf"]
    return Caller(base, {c.key: c.value for c in jar}, csrf)


@dataclass
class World:
    client: Any
    host: Caller
    bid: str
    oid: str
    aid: str
    applicant: Caller


APPLICATION = {
    "name": "王芳",
    "phone": "13800138000",
    "consent": True,
    "consent_version": "2026-01",
}


async def _world(client: Any) -> World:
    host = await _session(client, "host1", "host")
    status, b, _ = await host.request("POST", "/api/broadcasts", json={"title": "安全"})
    assert status == 201
    bid = b["id"]
    status, o, _ = await host.request(
        "POST",
        f"/api/broadcasts/{bid}/openings",
        json={
            "title": "电工",
            "employer": "矿业",
            "city": "鸡西",
            "salary_min": 1,
            "salary_max": 2,
            "status": "published",
        },
    )
    assert status == 201
    applicant = await _viewer(client)
    status, a, _ = await applicant.request(
        "POST",
        f"/api/openings/{o['id']}/applications",
        json=APPLICATION,
        headers={"Idempotency-Key": "k1"},
    )
    assert status == 201, a
    return World(client, host, bid, o["id"], a["application_id"], applicant)


def _fill(path: str, w: World, action: str = "") -> str:
    # each family of `{action}` routes with one of its own actions
    action = action or ("poll.close" if "/polls/" in path else "mod.slow_mode")
    return (
        path.replace("{bid}", w.bid)
        .replace("{nid}", "n0000000000000000")
        .replace("{eid}", "e0000000")
        .replace("{oid}", w.oid)
        .replace("{aid}", w.aid)
        .replace("{action}", action)
        .replace("{sid}", "nosuchsession")
        .replace("{name}", "x.mkv")
        .replace("{code}", "en")
    )


def _doc_ops() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (m.upper(), path, op)
        for path, item in document()["paths"].items()
        for m, op in item.items()
    ]


def _op_for(method: str, canonical: str) -> dict[str, Any]:
    for m, path, op in _doc_ops():
        if m == method and op.get("x-route", path) == canonical:
            return op
    raise AssertionError(f"{method} {canonical} is not in the OpenAPI document")


def _body(op: dict[str, Any], w: World) -> Any:
    example = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    example = example.get("example")
    if isinstance(example, dict):
        return {k: w.oid if v == EXAMPLE_OPENING_ID else v for k, v in example.items()}
    return example


def _unsafe_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, canonical path) of every state-changing route, from the router."""
    out = []
    for route in app.router.routes():
        if route.method in UNSAFE and route.resource is not None:
            out.append((route.method, route.resource.canonical))
    assert len(out) >= 25
    return sorted(set(out))


# -- cross-site WebSocket hijacking ---------------------------------------------------------


async def test_foreign_origin_websocket_handshake_refused_on_both_sockets(client):
    w = await _world(client)
    cookie = "; ".join(f"{k}={v}" for k, v in w.host.cookies.items())
    for path in (f"/ws/b/{w.bid}", f"/ws/host/b/{w.bid}"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as e:
            await client.ws_connect(path, origin=EVIL, headers={"Cookie": cookie})
        assert e.value.status == 403, path
        # the same handshake from this site's own page is accepted
        own = str(client.make_url("")).rstrip("/")
        ws = await client.ws_connect(path, origin=own, headers={"Cookie": cookie})
        frame = await ws.receive_json()
        assert frame[0]["type"] == "hello"
        await ws.close()


async def test_host_socket_needs_a_host_or_moderator_session(client):
    w = await _world(client)
    anon = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    try:
        for cookies in ({}, w.applicant.cookies):
            h = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await anon.ws_connect(w.host.base + f"/ws/host/b/{w.bid}", headers=h)
            assert e.value.status == 401
    finally:
        await anon.close()


# -- CSRF and Origin on every unsafe route --------------------------------------------------


async def test_every_unsafe_route_refuses_writes_without_csrf_or_from_another_site(client):
    w = await _world(client)
    app = client.server.app
    checked = 0
    for method, canonical in _unsafe_routes(app):
        if canonical.startswith(CORS_OPEN):
            continue  # no cookies there: tested in test_whip_whep_cors_carries_no_credentials
        op = _op_for(method, canonical)
        caller = w.applicant if op["x-jobcast-access"] == "viewer" else w.host
        path = _fill(canonical, w)
        body = _body(op, w)
        hdrs = {"Idempotency-Key": f"csrf-{checked}"}
        what = f"{method} {canonical}"
        if (method, canonical) not in NO_CSRF:
            for token in (False, "wrong-token", w.applicant.csrf if caller is w.host else "x"):
                status, err, _ = await caller.request(
                    method, path, json=body, csrf=token, headers=hdrs
                )
                assert status == 403 and err["error"]["code"] == "csrf", (what, token, err)
        status, err, _ = await caller.request(method, path, json=body, origin=EVIL, headers=hdrs)
        assert status == 403 and err["error"]["code"] == "bad_origin", (what, err)
        checked += 1
    assert checked >= 15
    # Nothing above changed anything: the broadcast, its opening and the application remain.
    status, b, _ = await w.host.request("GET", f"/api/broadcasts/{w.bid}")
    assert status == 200 and b["status"] == "scheduled" and b["title"] == "安全"
    status, _, _ = await w.host.request("GET", f"/api/broadcasts/{w.bid}/applications/{w.aid}")
    assert status == 200
    status, _, _ = await w.host.request("GET", "/api/me")
    status, me, _ = await w.host.request("GET", "/api/me")
    assert me["host"] is not None, "a refused logout ended the session"


async def test_same_site_writes_with_the_token_pass_the_checks(client):
    """The other side of the test above: with the token and this site's Origin, the same
    requests get past CSRF and Origin checks (whatever the action then answers)."""
    w = await _world(client)
    own = w.host.base
    for method, canonical in _unsafe_routes(client.server.app):
        if canonical.startswith(CORS_OPEN) or canonical == "/api/logout":
            continue
        op = _op_for(method, canonical)
        caller = w.applicant if op["x-jobcast-access"] == "viewer" else w.host
        _status, body, _ = await caller.request(
            method,
            _fill(canonical, w),
            json=_body(op, w),
            origin=own,
            headers={"Idempotency-Key": "same-site"},
        )
        code = (body or {}).get("error", {}).get("code")
        assert code not in ("csrf", "bad_origin", "login_required"), (method, canonical, body)


# -- who may call what ---------------------------------------------------------------------


async def test_every_host_operation_refuses_anonymous_callers_and_viewers(client):
    w = await _world(client)
    anonymous = Caller(w.host.base, {})
    ops = [(m, p, op) for m, p, op in _doc_ops() if op["x-jobcast-access"] in ("host", "staff")]
    assert len(ops) > 35
    for method, path, op in ops:
        url, body = _fill(path, w), _body(op, w)
        status, err, _ = await anonymous.request(method, url, json=body)
        assert status == 401 and err["error"]["code"] == "login_required", (method, path, err)
        status, err, _ = await w.applicant.request(method, url, json=body)
        assert status in (401, 403), (method, path, status)
        assert set(err) == {"error"}, err  # no data, only the error
    # ... and none of it happened.
    status, apps, _ = await w.host.request("GET", f"/api/broadcasts/{w.bid}/applications")
    assert status == 200 and apps["total"] == 1


async def test_moderators_moderate_but_do_nothing_host_only(client):
    w = await _world(client)
    mod = await _session(client, "mod1", "moderator")
    host_ops = [(m, p, op) for m, p, op in _doc_ops() if op["x-jobcast-access"] == "host"]
    assert len(host_ops) >= 20  # the enumeration is not empty
    for method, path, op in host_ops:
        status, err, _ = await mod.request(method, _fill(path, w), json=_body(op, w))
        assert status == 403 and err["error"]["code"] == "host_only", (method, path, err)
    # Staff operations are open to moderators: chat moderation works.
    who = {"viewer_id": "vSomeViewer01"}
    for name, data in (
        ("mod.slow_mode", CHAT_EXAMPLES["mod.slow_mode"]),
        ("mod.words", CHAT_EXAMPLES["mod.words"]),
        ("mod.timeout", {**who, "seconds": 60}),
        ("mod.ban", who),
        ("mod.unban", who),
    ):
        status, body, _ = await mod.request(
            "POST", f"/api/broadcasts/{w.bid}/chat/{name}", json=data
        )
        assert status == 200, (name, body)
    status, chat, _ = await mod.request("GET", f"/api/broadcasts/{w.bid}/chat")
    assert chat["chat_settings"]["slow_mode"] == 10 and "moderation" in chat
    # ... on the socket too: moderation acts, card actions are the host's.
    cookie = "; ".join(f"{k}={v}" for k, v in mod.cookies.items())
    sock = await connect(w.client, w.bid, host=True, headers={"Cookie": cookie})
    await sock.send("mod.slow_mode", {"seconds": 0}, id_="m")
    await sock.send("card.pin", {"opening_id": w.oid}, id_="p")
    ack = await sock.wait_for(lambda e: e.get("id") == "m")
    refused = await sock.wait_for(lambda e: e.get("id") == "p")
    assert ack["type"] == "ack" and ack["data"] == {"slow_mode": 0}
    assert refused["type"] == "error" and refused["data"]["code"] == "host_only"
    await sock.close()
    # Moderators never see applicants' personal data.
    status, _, _ = await mod.request("GET", f"/api/broadcasts/{w.bid}/applications/{w.aid}")
    assert status == 403


# -- viewers are kept apart ----------------------------------------------------------------


def _flip_last(value: str) -> str:
    return value[:-1] + ("1" if value[-1] != "1" else "2")


def _forged(cookie: str, vid: str) -> str:
    """Another viewer id under a signature that belongs to the first."""
    _value, _, mac = cookie.rpartition(".")
    return f"{vid}.{mac}"


async def test_viewers_cannot_read_or_act_as_each_other(client):
    w = await _world(client)
    other = await _viewer(client)
    applied = f"/api/broadcasts/{w.bid}/applied"
    status, mine, _ = await w.applicant.request("GET", applied)
    assert mine["opening_ids"] == [w.oid]
    status, theirs, _ = await other.request("GET", applied)
    assert theirs == {"opening_ids": [], "applications": {}}
    # The application itself is for hosts only, whoever asks.
    url = f"/api/broadcasts/{w.bid}/applications/{w.aid}"
    for caller in (w.applicant, other):
        status, _, _ = await caller.request("GET", url)
        assert status == 401
    # Another viewer's CSRF token does not work with one's own cookie.
    status, err, _ = await other.request(
        "POST",
        f"/api/openings/{w.oid}/applications",
        json=APPLICATION,
        csrf=w.applicant.csrf,
        headers={"Idempotency-Key": "k1"},
    )
    assert status == 403 and err["error"]["code"] == "csrf"


async def test_forged_or_altered_viewer_cookie_is_a_new_viewer(client):
    w = await _world(client)
    other = await _viewer(client)
    vid = w.applicant.cookies[auth.VIEWER_COOKIE].rpartition(".")[0]
    other_vid = other.cookies[auth.VIEWER_COOKIE].rpartition(".")[0]
    for cookie in (
        _forged(other.cookies[auth.VIEWER_COOKIE], vid),  # their signature, the victim's id
        vid,  # no signature
        vid + ".",  # empty signature
        _flip_last(w.applicant.cookies[auth.VIEWER_COOKIE]),  # one character changed
        "x" * 300,
    ):
        forger = Caller(w.host.base, {auth.VIEWER_COOKIE: cookie})
        status, me, r = await forger.request("GET", "/api/me")
        assert me["viewer_id"] not in (vid, other_vid, None), cookie
        assert auth.VIEWER_COOKIE in r.cookies  # a fresh signed id replaces it
        status, got, _ = await forger.request("GET", f"/api/broadcasts/{w.bid}/applied")
        assert got["opening_ids"] == [], cookie
        # With the victim's CSRF token, the forged cookie still cannot apply as them.
        status, err, _ = await forger.request(
            "POST",
            f"/api/openings/{w.oid}/applications",
            json=APPLICATION,
            csrf=w.applicant.csrf,
            headers={"Idempotency-Key": "k1"},
        )
        assert status == 403 and err["error"]["code"] == "csrf"
    # On the socket a forged cookie gets a new id too.
    forged = _forged(other.cookies[auth.VIEWER_COOKIE], vid)
    sock = await connect(w.client, w.bid, headers={"Cookie": f"{auth.VIEWER_COOKIE}={forged}"})
    hello = await sock.wait_for("hello")
    assert hello["data"]["viewer_id"] not in (vid, other_vid)
    await sock.close()


async def test_votes_count_for_the_socket_viewer_only(app_factory, redis_url):
    client = await app_factory(redis_url, chat_review_questions=False, qa_votes_interval=0)
    w = await _world(client)
    other = await _viewer(client)
    a_cookie = f"{auth.VIEWER_COOKIE}={w.applicant.cookies[auth.VIEWER_COOKIE]}"
    b_cookie = f"{auth.VIEWER_COOKIE}={other.cookies[auth.VIEWER_COOKIE]}"
    a = await connect(client, w.bid, headers={"Cookie": a_cookie})
    b = await connect(client, w.bid, headers={"Cookie": b_cookie})
    a_vid = (await a.wait_for("hello"))["data"]["viewer_id"]
    await a.send("question.ask", {"text": "招应届生吗？"}, id_="q")
    qid = (await a.wait_for(lambda e: e.get("id") == "q"))["data"]["id"]
    await a.send("question.vote", {"id": qid}, id_="va")
    assert (await a.wait_for(lambda e: e.get("id") == "va"))["data"]["votes"] == 1
    # B tries to withdraw A's vote, and to vote twice as A: data cannot name the voter.
    await b.send("question.vote", {"id": qid, "up": False, "viewer_id": a_vid}, id_="w")
    withdraw = await b.wait_for(lambda e: e.get("id") == "w")
    assert withdraw["type"] == "ack" and withdraw["data"]["changed"] is False
    assert withdraw["data"]["votes"] == 1
    await b.send("question.vote", {"id": qid, "up": True, "viewer_id": a_vid}, id_="u1")
    await b.send("question.vote", {"id": qid, "up": True, "viewer_id": a_vid}, id_="u2")
    first = await b.wait_for(lambda e: e.get("id") == "u1")
    second = await b.wait_for(lambda e: e.get("id") == "u2")
    assert first["data"]["votes"] == 2 and second["data"]["changed"] is False
    assert second["data"]["votes"] == 2
    await a.close()
    await b.close()


# -- size limits ---------------------------------------------------------------------------


async def test_oversized_bodies_uploads_and_sdp_are_refused(app_factory, redis_url):
    client = await app_factory(redis_url, max_body_bytes=4096, max_upload_bytes=32 * 1024)
    w = await _world(client)
    big_json = {"title": "x" * 5000}
    status, err, _ = await w.host.request("POST", "/api/broadcasts", json=big_json)
    assert status == 413 and err["error"]["code"] == "too_large"

    async def chunked(n: int):
        for _ in range(n):
            yield b" " * 1024

    # Without Content-Length (chunked) the limit holds while reading.
    status, err, _ = await w.host.request(
        "POST", "/api/broadcasts", data=chunked(8), headers={"Content-Type": "application/json"}
    )
    assert status == 413 and err["error"]["code"] == "too_large"
    csv = b"title,employer,city,salary\n" + b"a,b,c,1-2\n" * 4000
    url = f"/api/broadcasts/{w.bid}/openings/import?dry_run=1"
    status, err, _ = await w.host.request(
        "POST", url, data=csv, headers={"Content-Type": "text/csv"}
    )
    assert status == 413 and err["error"]["code"] == "too_large"
    form = aiohttp.FormData()
    form.add_field("file", csv, filename="big.csv", content_type="text/csv")
    status, err, _ = await w.host.request("POST", url, data=form)
    assert status == 413 and err["error"]["code"] == "too_large"
    status, err, _ = await w.host.request(
        "POST", url, data=chunked(40), headers={"Content-Type": "text/csv"}
    )
    assert status == 413
    status, err, r = await Caller(w.host.base, {}).request(
        "POST",
        f"/whep/{w.bid}",
        data=b"v=0\r\n" * 20000,
        headers={"Content-Type": "application/sdp"},
    )
    assert status == 413 and err["error"]["code"] == "too_large"
    assert r.headers["Access-Control-Allow-Origin"] == "*"


async def test_websocket_frames_over_the_limit(client):
    w = await _world(client)
    sock = await connect(client, w.bid)
    limit = client.server.app[SETTINGS].ws_max_frame_bytes
    await sock.ws.send_str('{"type":"ping","data":{"t":"' + "x" * limit + '"}}')
    err = await sock.wait_for("error")
    assert err["data"]["code"] == "too_large"
    await sock.send("ping", {"t": 1}, id_="alive")
    assert (await sock.wait_for(lambda e: e.get("id") == "alive"))["type"] == "pong"
    # Over the hard cap the server closes the connection with 1009 (message too big).
    await sock.ws.send_str("x" * (limit * 8 + 1))
    async with asyncio.timeout(10):
        await sock.closed.wait()
    assert sock.ws.close_code == 1009


def _stream(data: bytes) -> StreamReader:
    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    reader.feed_data(data)
    reader.feed_eof()
    return reader


async def test_size_limits_hold_before_the_body_is_read(tmp_path):
    """Each reader refuses on Content-Length before reading, and while streaming when there
    is none (or it lies), so an oversized body is never held in memory whole."""
    from jobcast.web.access.requests import read_json
    from jobcast.web.api.media import MAX_SDP_BYTES, _read_sdp
    from jobcast.web.api.openings import _read_upload

    app = create_app(make_settings("redis://127.0.0.1:1/0", tmp_path))
    limits = app[SETTINGS]
    cases = [
        (read_json, "application/json", limits.max_body_bytes),
        (_read_upload, "text/csv", limits.max_upload_bytes + 64 * 1024),
        (_read_sdp, "application/sdp", MAX_SDP_BYTES),
    ]
    for reader, ctype, limit in cases:
        # Content-Length over the limit: refused without reading the (short) body.
        req = make_mocked_request(
            "POST",
            "/x",
            headers={"Content-Type": ctype, "Content-Length": str(limit + 1)},
            payload=_stream(b'{"a": 1}'),
            app=app,
        )
        with pytest.raises(TooLarge):
            await reader(req)
        # No Content-Length: refused once the bytes read pass the limit.
        req = make_mocked_request(
            "POST",
            "/x",
            headers={"Content-Type": ctype, "Transfer-Encoding": "chunked"},
            payload=_stream(b"1" * (limit * 3)),
            app=app,
        )
        with pytest.raises(TooLarge):
            await reader(req)


# -- cookies -------------------------------------------------------------------------------


def _set_cookie(r: aiohttp.ClientResponse, name: str) -> str:
    for value in r.headers.getall("Set-Cookie", []):
        if value.startswith(name + "="):
            return value
    raise AssertionError(f"no Set-Cookie for {name}")


def _flags(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


async def test_cookies_are_httponly_samesite_and_secure_behind_tls(app_factory, redis_url):
    plain = await app_factory(redis_url)
    proxied = await app_factory(redis_url, trust_proxy=True)
    for client, headers, secure in (
        (plain, {}, False),
        (proxied, {"X-Forwarded-Proto": "https"}, True),
        (plain, {"X-Forwarded-Proto": "https"}, False),  # not trusted without trust_proxy
    ):
        await auth.add_user(client.server.app[REDIS], "h", "s3cret-pass", "host")
        status, _, r = await Caller(str(client.make_url("")).rstrip("/"), {}).request(
            "POST",
            "/api/login",
            json={"username": "h", "password": "s3cret-pass"},
            headers=headers,
        )
        assert status == 200
        for name in (auth.SESSION_COOKIE, auth.VIEWER_COOKIE):
            flags = _flags(_set_cookie(r, name))
            assert "httponly" in flags and "samesite=lax" in flags, (name, flags)
            assert ("secure" in flags) is secure, (name, flags, headers)


def _self_signed(tmp: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return ctx


async def test_cookies_are_secure_over_tls(redis_url, tmp_path):
    app = create_app(make_settings(redis_url, tmp_path))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=_self_signed(tmp_path))
    try:
        await auth.add_user(app[REDIS], "h", "s3cret-pass", "host")
        async with aiohttp.ClientSession() as s:
            url = str(server.make_url("/api/login"))
            assert url.startswith("https://")
            async with s.post(
                url, json={"username": "h", "password": "s3cret-pass"}, ssl=False
            ) as r:
                assert r.status == 200
                for name in (auth.SESSION_COOKIE, auth.VIEWER_COOKIE):
                    assert "secure" in _flags(_set_cookie(r, name)), name
    finally:
        await server.close()


# -- security headers ----------------------------------------------------------------------


def _csp(value: str) -> dict[str, list[str]]:
    out = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


async def test_security_headers_on_pages_api_and_errors(client):
    w = await _world(client)
    paths = [
        "/",
        f"/b/{w.bid}",
        f"/b/{w.bid}/screen",
        "/host",
        f"/host/b/{w.bid}",
        "/b/nosuch",
        "/api/broadcasts",
        f"/api/broadcasts/{w.bid}/openings",
        "/api/nosuch",
        "/api/openapi.json",
        "/healthz",
        "/static/common.js",
    ]
    for path in paths:
        for caller in (w.host, Caller(w.host.base, {})):
            status, _, r = await caller.request("GET", path)
            h = r.headers
            csp = _csp(h["Content-Security-Policy"])
            assert csp["script-src"] == ["'self'"], (path, csp)
            assert csp["frame-ancestors"] == ["'none'"] and csp["object-src"] == ["'none'"]
            assert "'unsafe-inline'" not in " ".join(csp["default-src"] + csp["script-src"])
            assert h["X-Content-Type-Options"] == "nosniff", path
            assert h["X-Frame-Options"] == "DENY", path
            if path.startswith("/api/"):
                assert h["Cache-Control"] == "no-store", path
    # Error answers made outside the handlers carry them too.
    for method, path in (("PUT", "/api/broadcasts"), ("POST", f"/whip/{w.bid}")):
        status, _, r = await Caller(w.host.base, {}).request(method, path)
        assert (
            status in (401, 405, 415) and "frame-ancestors" in r.headers["Content-Security-Policy"]
        )


async def test_pages_have_no_inline_script(client):
    w = await _world(client)
    for caller, path in (
        (Caller(w.host.base, {}), "/"),
        (w.applicant, f"/b/{w.bid}"),
        (Caller(w.host.base, {}), "/host"),
        (w.host, "/host"),
        (w.host, f"/host/b/{w.bid}"),
        (Caller(w.host.base, {}), f"/b/{w.bid}/screen"),
    ):
        _, html, _ = await caller.request("GET", path)
        for tag in re.findall(r"<script\b[^>]*>", html, flags=re.I):
            assert re.search(r"\ssrc=", tag) or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", html, flags=re.I), path
        assert "javascript:" not in html.lower(), path


# -- CORS on WHIP and WHEP -----------------------------------------------------------------


async def test_whip_whep_cors_allows_what_whip_needs_and_no_credentials(client):
    w = await _world(client)
    anonymous = Caller(w.host.base, {})
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    for path in (f"/whip/{w.bid}", f"/whep/{w.bid}", f"/whip/{w.bid}/s1", f"/whep/{w.bid}/s1"):
        status, _, r = await anonymous.request(
            "OPTIONS", path, origin="https://studio.example", headers=preflight
        )
        h = r.headers
        assert status == 204, path
        assert h["Access-Control-Allow-Origin"] == "*", path
        methods = {m.strip() for m in h["Access-Control-Allow-Methods"].split(",")}
        assert {"POST", "DELETE", "PATCH", "OPTIONS"} <= methods
        allowed = {x.strip().lower() for x in h["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type"} <= allowed
        exposed = {x.strip().lower() for x in h["Access-Control-Expose-Headers"].split(",")}
        assert {"location", "link"} <= exposed
        assert "Access-Control-Allow-Credentials" not in h, path
        assert "Set-Cookie" not in h, path
    # A cross-site request is answered (with CORS), not refused for its Origin; the host's
    # cookies do not authenticate it and it sets none.
    for caller in (anonymous, w.host):
        for path in (f"/whip/{w.bid}", f"/whep/{w.bid}", f"/whep/{w.bid}/s1", f"/whip/{w.bid}/s1"):
            method = "DELETE" if path.endswith("/s1") else "POST"
            status, err, r = await caller.request(
                method,
                path,
                data=b"v=0\r\n",
                origin="https://studio.example",
                headers={"Content-Type": "application/sdp"},
            )
            assert err is not None and err["error"]["code"] != "bad_origin", (path, err)
            assert r.headers["Access-Control-Allow-Origin"] == "*", path
            assert "Access-Control-Allow-Credentials" not in r.headers, path
            assert "Set-Cookie" not in r.headers, (path, r.headers.get("Set-Cookie"))
            if path == f"/whip/{w.bid}":
                assert status == 401 and err["error"]["code"] == "no_key", err


async def test_cookie_endpoints_grant_no_cross_origin_reads(client):
    """Only WHIP/WHEP answer CORS: the API, which cookies authenticate, gives another site
    no Access-Control-Allow-Origin, so a page there cannot read a viewer's or host's data."""
    w = await _world(client)
    for caller, path in (
        (w.applicant, "/api/me"),
        (w.applicant, f"/api/broadcasts/{w.bid}/applied"),
        (w.host, f"/api/broadcasts/{w.bid}/applications"),
    ):
        for method in ("GET", "OPTIONS"):
            _, _, r = await caller.request(
                method, path, origin=EVIL, headers={"Access-Control-Request-Method": "GET"}
            )
            assert "Access-Control-Allow-Origin" not in r.headers, (method, path)
            assert "Access-Control-Allow-Credentials" not in r.headers, (method, path)
