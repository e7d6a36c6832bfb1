"""The notifier delivers the outbox of notices as a signed webhook to a real local HTTP
receiver: signed, retried with backoff after failures, dead-lettered after the last attempt
and retried from there by a host, taken over from a crashed process, shared by two processes,
never sent twice by us, and nothing personal in the logs.

Time: the backoff is 0 in the app tests (a retry is due at once) and driven by a clock the
test moves in the Notifier tests; every wait is for the receiver's requests."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from jobcast.core import keys
from jobcast.core.notices import add_notice
from jobcast.web.api.notifier import NOTIFIER
from jobcast.web.appkeys import REDIS
from jobcast.web.pages import i18n
from jobcast.web.runtime import notice_text
from jobcast.web.runtime.notifier import GROUP, Config, Notifier
from jobcast.web.runtime.settings import SettingError, Settings
from redis.asyncio import Redis

from tests.helpers import login
from tests.waiting import wait_until

SECRET = "gateway-shared-secret"
PHONE = "13800138000"
NAME = "王芳"
BID = "bTESTfair"


class Receiver:
    """The employment center's gateway: answers each request as `script` says ("ok", "500",
    "reset": the connection closed without an answer, "hang": no answer at all), then "ok"."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.delivered: Counter[str] = Counter()
        self._hung: list[asyncio.Event] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        how = self.script.pop(0) if self.script else "ok"
        if how == "500":
            return web.Response(status=500, text="gateway down")
        if how == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=200)  # never reaches the notifier
        if how == "hang":
            stop = asyncio.Event()
            self._hung.append(stop)
            await stop.wait()
        self.delivered[request.headers["X-Jobcast-Id"]] += 1
        return web.json_response({"ok": True})

    def release(self) -> None:
        for e in self._hung:
            e.set()

    def attempts(self, nid: str) -> list[str]:
        return [h["X-Jobcast-Attempt"] for h, _ in self.requests if h["X-Jobcast-Id"] == nid]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield rec, str(server.make_url("/hook"))
    rec.release()
    await server.close()


def notifier_settings(url: str, **kw: Any) -> dict[str, Any]:
    base = {
        "notifier_url": url,
        "notifier_secret": SECRET,
        "notifier_timeout": 0.5,
        "notifier_backoff_base": 0.0,
        "notifier_claim_after": 0.3,
    }
    base.update(kw)
    return base


async def queue(
    redis: Redis,
    n: int = 1,
    *,
    kind: str = "application.status",
    lang: str = "zh-CN",
    data: dict[str, Any] | None = None,
    notice_id: str | None = None,
    bid: str = BID,
) -> list[str]:
    """Add `n` notices in one MULTI, as a producer does; their ids."""
    pipe = redis.pipeline(transaction=True)
    ids = [
        add_notice(
            pipe,
            kind,  # type: ignore[arg-type]
            bid=bid,
            lang=lang,
            to={"phone": PHONE, "name": NAME, "application_id": f"a{i}"},
            data=data
            or {"status": "contacted", "opening_title": "焊工", "employer_name": "鸡西矿业"},
            notice_id=notice_id,
        )
        for i in range(n)
    ]
    await pipe.execute()
    return ids


async def delivered(rec: Receiver, *ids: str, timeout: float = 10.0) -> None:
    await wait_until(
        lambda: all(rec.delivered[i] for i in ids), timeout, f"{len(ids)} notices delivered"
    )


async def settled(redis: Redis) -> None:
    """Nothing read and unanswered in the outbox, nothing waiting for a retry."""

    async def check() -> bool:
        pending = await redis.xpending(keys.NOTICES, GROUP)
        return pending["pending"] == 0 and await redis.zcard(keys.NOTIFIER_RETRY) == 0

    await wait_until(check, what="the outbox settled")


# -- delivery --------------------------------------------------------------------------------


async def test_a_notice_is_delivered_with_a_valid_signature(app_factory, redis_url, receiver):
    rec, url = receiver
    client = await app_factory(redis_url, **notifier_settings(url))
    redis = client.server.app[REDIS]
    (nid,) = await queue(redis)
    await delivered(rec, nid)
    headers, body = rec.requests[0]
    ts = headers["X-Jobcast-Timestamp"]
    assert re.fullmatch(r"\d{10}", ts)
    expected = hmac.new(SECRET.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Jobcast-Signature"], "sha256=" + expected)
    assert headers["X-Jobcast-Id"] == nid and headers["X-Jobcast-Attempt"] == "1"
    assert headers["Content-Type"] == "application/json"
    payload = orjson.loads(body)
    assert payload["id"] == nid and payload["kind"] == "application.status"
    assert payload["to"] == {"phone": PHONE, "name": NAME, "application_id": "a0"}
    assert payload["broadcast_id"] == BID and payload["lang"] == "zh-CN"
    assert payload["text"] == "鸡西矿业将就「焊工」岗位与您联系。"
    await settled(redis)
    assert await redis.exists(keys.notifier_done(nid))
    assert rec.delivered[nid] == 1


@pytest.mark.parametrize("second", ["reset", "hang"])
async def test_two_failures_then_delivered_on_the_third_attempt_once(
    app_factory, redis_url, receiver, second
):
    rec, url = receiver
    rec.script = ["500", second]
    client = await app_factory(redis_url, **notifier_settings(url))
    redis = client.server.app[REDIS]
    (nid,) = await queue(redis)
    await delivered(rec, nid)
    assert rec.attempts(nid) == ["1", "2", "3"]
    await settled(redis)
    assert rec.delivered[nid] == 1
    assert await redis.llen(keys.NOTIFIER_DEAD) == 0
    assert not await redis.hlen(keys.NOTIFIER_RETRY_DATA)
    # the same notice queued again (a producer retrying its write) is not sent again
    await queue(redis, notice_id=nid)
    (fence,) = await queue(redis)
    await delivered(rec, fence)
    await settled(redis)
    assert rec.delivered[nid] == 1 and len(rec.attempts(nid)) == 3


async def test_after_the_last_attempt_a_host_sees_the_dead_letter_and_retries_it(
    app_factory, redis_url, receiver
):
    rec, url = receiver
    rec.script = ["500", "500"]
    client = await app_factory(redis_url, **notifier_settings(url, notifier_max_attempts=2))
    host = await login(client)
    bid = await host.create_broadcast()
    redis = client.server.app[REDIS]
    (nid,) = await queue(redis, bid=bid)
    await wait_until(lambda: len(rec.requests) == 2, what="two attempts")
    await wait_until(lambda: redis.llen(keys.NOTIFIER_DEAD), what="the dead letter")
    assert not rec.delivered

    r = await host.get("/api/notifier/dead")
    assert r.status == 200
    text = await r.text()
    assert PHONE not in text and NAME not in text and "焊工" not in text
    body = orjson.loads(text)
    assert body["enabled"] is True and body["counts"]["dead"] == 1
    (item,) = body["items"]
    assert item["id"] == nid and item["kind"] == "application.status"
    assert item["broadcast_id"] == bid and item["application_id"] == "a0"
    assert item["attempts"] == 2 and item["error"] == "http 500"

    # a moderator may not; a host of another organization sees nothing of it
    mod = await login(await app_factory(redis_url, **notifier_settings(url)), "mod1", "moderator")
    assert (await mod.get("/api/notifier/dead")).status == 403
    other = await login(await app_factory(redis_url, **notifier_settings(url)), "host2", org="hb")
    assert (await (await other.get("/api/notifier/dead")).json())["items"] == []
    assert (await other.post(f"/api/notifier/dead/{nid}/retry", {})).status == 404
    no_csrf = await client.post(f"/api/notifier/dead/{nid}/retry")  # the host's cookie alone
    assert no_csrf.status == 403 and (await no_csrf.json())["error"]["code"] == "csrf"

    r = await host.post(f"/api/notifier/dead/{nid}/retry", {})
    assert r.status == 202, await r.text()
    assert (await r.json())["item"]["id"] == nid
    await delivered(rec, nid)
    assert rec.attempts(nid) == ["1", "2", "1"]
    assert (await host.post(f"/api/notifier/dead/{nid}/retry", {})).status == 404
    assert (await (await host.get("/api/notifier/dead")).json())["items"] == []
    await settled(redis)
    assert rec.delivered[nid] == 1


async def test_two_processes_deliver_each_notice_once(app_factory, redis_url, receiver):
    rec, url = receiver
    rec.script = ["500"] * 5  # a few failures, retried by whichever process takes them
    a = await app_factory(redis_url, **notifier_settings(url))
    b = await app_factory(redis_url, **notifier_settings(url))
    ids = await queue(a.server.app[REDIS], 40)
    await delivered(rec, *ids)
    await settled(b.server.app[REDIS])
    assert set(rec.delivered) == set(ids)
    assert all(n == 1 for n in rec.delivered.values())
    consumers = await b.server.app[REDIS].xinfo_consumers(keys.NOTICES, GROUP)
    assert len(consumers) == 2


async def test_a_crashed_process_notices_are_taken_over(app_factory, redis_url, receiver):
    rec, url = receiver
    redis = Redis.from_url(redis_url)
    try:
        await redis.xgroup_create(keys.NOTICES, GROUP, id="0", mkstream=True)
        ids = await queue(redis, 3)
        # a process reads them and dies before answering
        got = await redis.xreadgroup(GROUP, "crashed", {keys.NOTICES: ">"}, count=10)
        assert len(got[0][1]) == 3
        client = await app_factory(redis_url, **notifier_settings(url))
        await delivered(rec, *ids)
        await settled(client.server.app[REDIS])
        assert all(rec.delivered[i] == 1 for i in ids)
    finally:
        await redis.aclose()


async def test_a_notice_taken_over_while_still_being_sent_is_not_sent_again(
    app_factory, redis_url, receiver
):
    """The first process waits for the receiver's answer past claim_after; the second takes
    the notice over (XAUTOCLAIM) but finds it locked, and leaves it to the first."""
    rec, url = receiver
    rec.script = ["hang"]
    settings = notifier_settings(url, notifier_timeout=30.0)
    a = await app_factory(redis_url, **settings)
    redis = a.server.app[REDIS]
    (nid,) = await queue(redis)
    await wait_until(lambda: rec.requests, what="the first request")
    await app_factory(redis_url, **settings)

    async def taken_over() -> bool:
        (entry,) = await redis.xpending_range(keys.NOTICES, GROUP, "-", "+", 10)
        return entry["times_delivered"] >= 3  # read, then claimed twice

    await wait_until(taken_over, what="the notice taken over")
    rec.release()
    await delivered(rec, nid)
    await settled(redis)
    assert rec.attempts(nid) == ["1"] and rec.delivered[nid] == 1


async def test_delivery_goes_on_after_redis_restarts(app_factory, own_redis, receiver, caplog):
    rec, url = receiver
    client = await app_factory(own_redis.url, **notifier_settings(url))
    redis = client.server.app[REDIS]
    (first,) = await queue(redis)
    await delivered(rec, first)
    own_redis.stop()
    await wait_until(
        lambda: "redis unavailable" in caplog.text, what="the notifier noticing Redis is gone"
    )
    own_redis.start()
    (second,) = await queue(redis)
    await delivered(rec, second, timeout=20)
    await settled(redis)
    assert rec.delivered == {first: 1, second: 1}


async def test_consumers_of_processes_gone_are_forgotten_unless_they_hold_notices(redis, receiver):
    _, url = receiver
    await redis.xgroup_create(keys.NOTICES, GROUP, id="0", mkstream=True)
    await queue(redis)
    await redis.xreadgroup(GROUP, "holding", {keys.NOTICES: ">"}, count=1)
    await redis.xgroup_createconsumer(keys.NOTICES, GROUP, "empty")
    n = Notifier(redis, Config(url=url, secret=b"k"), consumer="me")
    try:
        await n.open()
        assert await n.forget_idle_consumers(idle_ms=0) == 1
        names = {c["name"] for c in await redis.xinfo_consumers(keys.NOTICES, GROUP)}
        assert names == {b"holding"}
    finally:
        await n.close()


async def test_off_without_a_url_the_notices_wait_in_the_outbox(app_factory, redis_url):
    client = await app_factory(redis_url)
    redis = client.server.app[REDIS]
    await queue(redis, 2)
    assert client.server.app[NOTIFIER].enabled is False
    assert await redis.xinfo_groups(keys.NOTICES) == []
    host = await login(client)
    body = await (await host.get("/api/notifier/dead")).json()
    assert body == {
        "enabled": False,
        "items": [],
        "counts": {"outbox": 2, "retrying": 0, "dead": 0},
    }


def test_a_url_without_a_secret_is_refused():
    with pytest.raises(SettingError, match="notifier_secret"):
        Settings(notifier_url="https://gw.example.cn/hook")
    with pytest.raises(SettingError, match="notifier_url"):
        Settings(notifier_url="ftp://gw.example.cn/hook", notifier_secret="k")


# -- backoff and expiry, with a clock the test moves ------------------------------------------


class Clock:
    """Seconds, moved by the test; it starts where the notices' created_at are."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


async def test_retries_wait_exponentially_with_jitter(redis, receiver):
    rec, url = receiver
    rec.script = ["500", "reset", "500", "500"]
    clock = Clock()
    draws = iter([1.0, 0.0, 1.0, 1.0])
    config = Config(url=url, secret=SECRET.encode(), timeout=2.0, backoff_base=2.0, backoff_max=5.0)
    n = Notifier(redis, config, consumer="t", clock=clock, rand=lambda: next(draws))
    try:
        (nid,) = await queue(redis)

        async def due() -> float:
            score = await redis.zscore(keys.NOTIFIER_RETRY, nid)
            return (score - clock.now * 1000) / 1000

        assert await n.run_once() == 1
        assert await due() == 2.0  # base, the upper half drawn at its top
        assert await n.run_once() == 0  # not due yet
        clock.now += 1.999
        assert await n.run_once() == 0
        clock.now += 0.001
        assert await n.run_once() == 1
        assert await due() == 2.0  # 4 s, the draw at the bottom of its upper half
        clock.now += 2
        assert await n.run_once() == 1
        assert await due() == 5.0  # 8 s capped at backoff_max
        clock.now += 5
        assert await n.run_once() == 1
        assert await due() == 5.0
        clock.now += 5
        assert await n.run_once() == 1
        assert rec.attempts(nid) == ["1", "2", "3", "4", "5"] and rec.delivered[nid] == 1
        assert await redis.zcard(keys.NOTIFIER_RETRY) == 0
        # the signature's timestamp is the injected clock's
        assert rec.requests[-1][0]["X-Jobcast-Timestamp"] == str(int(clock.now))
    finally:
        await n.close()


async def test_a_notice_past_its_age_is_dead_lettered_unsent(redis, receiver):
    rec, url = receiver
    clock = Clock()
    config = Config(url=url, secret=b"k", max_age=3600)
    n = Notifier(redis, config, consumer="t", clock=clock)
    try:
        (nid,) = await queue(redis)
        clock.now += 3700  # over an hour after the notice's created_at
        assert await n.run_once() == 1
        assert rec.requests == []
        (entry,) = await n.dead_letters()
        assert entry["notice"]["id"] == nid and entry["error"] == "expired"
    finally:
        await n.close()


# -- logs ----------------------------------------------------------------------------------------


async def test_logs_hold_no_phone_name_or_text(app_factory, redis_url, receiver, caplog):
    rec, url = receiver
    rec.script = ["500", "500"]
    caplog.set_level(logging.DEBUG)
    client = await app_factory(redis_url, **notifier_settings(url, notifier_max_attempts=2))
    redis = client.server.app[REDIS]
    (dead,) = await queue(redis)
    await wait_until(lambda: redis.llen(keys.NOTIFIER_DEAD), what="a dead letter")
    (ok,) = await queue(redis)
    await delivered(rec, ok)
    host = await login(client)
    (item,) = (await (await host.get("/api/notifier/dead")).json())["items"]
    assert (await host.post(f"/api/notifier/dead/{item['id']}/retry", {})).status == 202
    await delivered(rec, item["id"])
    text = orjson.loads(rec.requests[0][1])["text"]
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert dead in logged and ok in logged and "attempt" in logged
    for secret in (PHONE, NAME, text, "焊工", "鸡西矿业", SECRET):
        assert secret not in logged


# -- messages --------------------------------------------------------------------------------------


def test_every_notice_message_is_in_both_catalogues():
    ids = notice_text.msgids()
    for lang in i18n.LANGS:
        assert i18n.missing(lang, ids) == [], lang
        t = i18n.translations()[lang]
        for mid in ids:
            fields = set(re.findall(r"%\((\w+)\)s", mid))
            assert set(re.findall(r"%\((\w+)\)s", t.gettext(mid))) == fields, (lang, mid)


AT_9 = 1773968400000  # 2026-03-20 09:00 China time
STATUS = {"opening_title": "护士", "employer_name": "市医院"}  # as openings/mine.py sends
SLOT = {"opening_title": "护士", "employer": "市医院", "start": AT_9}  # as interviews.py sends


@pytest.mark.parametrize(
    ("kind", "data", "zh", "en"),
    [
        (
            "application.status",
            {**STATUS, "status": "interview"},
            "市医院邀请您参加「护士」岗位面试，请在 Jobcast 页面选择面试时间。",
            "市医院 invites you to an interview for 护士. Choose a time on the Jobcast page.",
        ),
        (
            "application.status",
            {**STATUS, "status": "interview", "starts_at": AT_9, "place": "3楼"},
            "市医院邀请您于2026-03-20 09:00参加「护士」岗位面试。地点：3楼。",
            "市医院 invites you to an interview for 护士 on 2026-03-20 09:00. Place: 3楼",
        ),
        (
            "application.status",
            {**STATUS, "status": "rejected"},  # the old word for not_selected
            "很遗憾，您投递的市医院「护士」岗位本次未通过，感谢您的投递。",
            "市医院 did not select your application for 护士 this time. Thank you for applying.",
        ),
        (
            "interview.booked",
            {**SLOT, "place": "3楼", "link": ""},
            "面试已预约：市医院「护士」，2026-03-20 09:00。地点：3楼。",
            "Interview booked: 护士 at 市医院, 2026-03-20 09:00. Place: 3楼",
        ),
        (
            "interview.reminder",
            {**SLOT, "link": "https://meet.example.cn/r/1", "minutes_before": 60},
            "面试提醒：市医院「护士」面试时间为2026-03-20 09:00。链接：https://meet.example.cn/r/1",
            "Reminder: your interview for 护士 at 市医院 is at 2026-03-20 09:00."
            " Link: https://meet.example.cn/r/1",
        ),
        (
            "interview.cancelled",
            {**SLOT, "by": "host"},
            "您在2026-03-20 09:00的市医院「护士」面试已取消。",
            "Your interview for 护士 at 市医院 on 2026-03-20 09:00 is cancelled.",
        ),
        ("phone.code", {}, "您在 Jobcast 的求职申请有新消息。", None),
    ],
)
def test_texts_in_both_languages(kind, data, zh, en):
    notice = {"kind": kind, "data": data}
    assert notice_text.render({**notice, "lang": "zh-CN"}) == zh
    assert notice_text.render({**notice, "lang": "xx"}) == zh
    if en is not None:
        assert notice_text.render({**notice, "lang": "en"}) == en


async def test_the_panel_is_on_the_host_home(app_factory, redis_url):
    client: TestClient = await app_factory(redis_url)
    await login(client)
    html = await (await client.get("/host")).text()
    assert 'id="notifier-panel"' in html and "/static/notifier.js" in html


# -- the host home's panel, in Chromium ------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
async def test_a_host_retries_a_dead_letter_from_the_host_home(
    app_factory, redis_url, receiver, lang
):
    """Run inside a loopback-only network namespace like CI does (scripts/test.sh)."""
    from tests.browserkit import DESKTOP, chromium, new_page, real_errors, require_browser

    require_browser()
    rec, url = receiver
    rec.script = ["500"]
    client = await app_factory(redis_url, **notifier_settings(url, notifier_max_attempts=1))
    host = await login(client)
    bid = await host.create_broadcast()
    (nid,) = await queue(client.server.app[REDIS], bid=bid)
    await wait_until(lambda: client.server.app[REDIS].llen(keys.NOTIFIER_DEAD), what="dead")
    words = {
        "zh-CN": ("登录", "用户名", "密码", "状态变更", "重试", "所有通知均已送达。"),
        "en": ("Log in", "Username", "Password", "Status change", "Retry", "Every notice"),
    }[lang]
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser, base, viewport=DESKTOP, lang=lang)
        await page.goto("/host")
        await page.get_by_label(words[1]).fill("host1")
        await page.get_by_label(words[2]).fill("s3cret-pass")
        await page.get_by_role("button", name=words[0]).click()
        item = page.locator(f'.notifier-item[data-id="{nid}"]')
        await item.wait_for()
        assert await page.locator("#notifier-panel").is_visible()
        assert words[3] in await item.inner_text() and "http 500" in await item.inner_text()
        assert PHONE not in await page.content()
        button = item.get_by_role("button", name=words[4])
        box = await button.bounding_box()
        assert box is not None and box["height"] >= 44 and box["width"] >= 44
        await button.click()
        await delivered(rec, nid)
        await item.wait_for(state="detached")
        await page.get_by_text(words[5]).wait_for()
        assert real_errors(page) == []
