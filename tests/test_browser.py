"""The pages in a real browser (Debian's Chromium through Playwright): a host and viewers.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.browserkit import (
    DESKTOP,
    FRAMES_DECODED,
    PHONE,
    a11y_problems,
    chromium,
    new_page,
    real_errors,
    require_browser,
    screenshot,
)
from tests.helpers import login
from tests.waiting import wait_until

pytestmark = pytest.mark.browser


async def test_host_creates_and_starts_a_broadcast_viewers_follow(app_factory, redis_url) -> None:
    require_browser()
    client = await app_factory(redis_url)
    base = str(client.make_url("/")).rstrip("/")
    await login(client, "anna", "host", "s3cret-pass")  # creates the account
    async with chromium() as browser:
        host = await new_page(browser, base, viewport=DESKTOP, lang="en")
        await host.goto("/host")
        await host.get_by_label("Username").fill("anna")
        await host.get_by_label("Password").fill("wrong-pass")
        await host.get_by_role("button", name="Log in").click()
        await host.get_by_text("Wrong username or password").wait_for()
        await host.get_by_label("Password").fill("s3cret-pass")
        await host.get_by_role("button", name="Log in").click()
        await host.get_by_role("heading", name="New broadcast").wait_for()

        # 422 fields appear next to their input
        await host.get_by_role("button", name="Create broadcast").click()
        await (
            host.locator('.field-error[data-field="title"]').filter(has_text="Required").wait_for()
        )
        assert await host.get_by_label("Title").get_attribute("aria-invalid") == "true"
        await host.get_by_label("Title").fill("春季招聘会 · Spring fair")
        await host.get_by_label("Description").fill("Jobs for graduates")
        await host.get_by_label("Scheduled start (optional)").fill("2030-05-01T09:30")
        await host.get_by_role("button", name="Create broadcast").click()
        await host.wait_for_url("**/host/b/*")
        bid = host.url.rsplit("/", 1)[1]
        await host.locator("#b-status .status-scheduled").wait_for()

        viewers = []
        for lang in ("zh-CN", "en"):
            v = await new_page(browser, base, viewport=PHONE, lang=lang)
            await v.goto(f"/b/{bid}")
            await v.wait_for_function("() => document.documentElement.dataset.live === 'live'")
            viewers.append(v)
        v1, v2 = viewers
        assert await v1.locator("#overlay-title").inner_text() == "尚未开播"
        assert await v2.locator("#overlay-title").inner_text() == "Not live yet"
        assert "09:30" in await v2.locator("#overlay-sub").inner_text()  # "Starts at ..."
        await host.locator("#b-when").filter(has_text="Scheduled for").wait_for()
        await host.locator("#fig-viewers").filter(has_text="2").wait_for(timeout=5000)

        # One go-live flow: "Go live" leads to the Go live panel and changes nothing yet
        await host.get_by_role("button", name="Go live", exact=True).click()
        await host.wait_for_function("() => document.activeElement.id === 'preview-btn'")
        assert await host.locator("#b-status .status-scheduled").count() == 1
        # a broadcast without video is the explicit other choice
        host.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await host.get_by_role("button", name="Live without video").click()
        await host.locator("#b-status .status-live").wait_for()
        await v1.locator(".meta .status-live").wait_for(timeout=1000)
        await v2.locator(".meta .status-live").wait_for(timeout=1000)
        assert await v1.locator(".meta .status-live").inner_text() == "直播中"

        # The host ends it; viewers see that it has ended. Then logs out.
        await host.get_by_role("button", name="End broadcast").click()
        await v1.locator("#overlay-title").filter(has_text="本场直播已结束").wait_for(timeout=3000)
        await v2.locator(".meta .status-ended").wait_for(timeout=3000)
        await host.get_by_role("button", name="Log out").click()
        await host.get_by_role("heading", name="Host login").wait_for()
        assert (await host.request.get("/api/me")).ok
        assert (await (await host.request.get("/api/me")).json())["host"] is None

        for p in (host, v1, v2):
            assert real_errors(p) == [], real_errors(p)


async def test_viewer_reconnects_with_since_and_catches_up(client, host) -> None:
    require_browser()
    bid = await host.create_broadcast("Reconnect fair")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE)
        await v.goto(f"/b/{bid}")
        await v.wait_for_function("() => document.documentElement.dataset.live === 'live'")
        # Cut the socket; while it is away the title changes; it comes back with `since`.
        await v.evaluate("() => { JC.viewer.live.opts.pingEvery = 600000; JC.viewer.live.drop(); }")
        await v.locator("#conn").wait_for(state="visible")
        r = await host.patch(f"/api/broadcasts/{bid}", {"title": "Renamed fair"})
        assert r.status == 200
        await v.locator("#title").filter(has_text="Renamed fair").wait_for(timeout=10000)
        await v.wait_for_function("() => document.documentElement.dataset.live === 'live'")
        assert await v.locator("#conn").is_hidden()
        assert real_errors(v) == []


async def test_language_switch_and_keyboard(client, host) -> None:
    require_browser()
    bid = await host.create_broadcast("Keyboard fair")
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await v.goto(f"/b/{bid}")
        await v.get_by_role("link", name="English").click()
        await v.wait_for_url(f"**/b/{bid}")
        assert await v.locator("html").get_attribute("lang") == "en"
        assert await v.locator("#overlay-title").inner_text() == "Not live yet"
        # Tab moves to the skip link first, and focus is visible.
        await v.keyboard.press("Tab")
        focused = await v.evaluate("document.activeElement.className")
        assert "skip" in focused
        outline = await v.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"
        # Nothing overflows sideways at 360 px.
        width = await v.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        assert real_errors(v) == []


MEDIA = {"media_ice_addresses": "127.0.0.1", "media_publisher_grace": 3.0}


async def frames_grow(page: Any, timeout: float = 20.0) -> int:
    """Wait until the viewer's decoder has decoded frames, and then more."""
    seen = [0]

    async def decoded(more_than: int) -> bool:
        seen.append(await page.evaluate(FRAMES_DECODED))
        return seen[-1] > more_than

    try:
        await wait_until(lambda: decoded(0), timeout, "a decoded video frame", interval=0.2)
    except AssertionError:
        info = await page.evaluate(
            "() => { const p = JC.viewer.player; return {phase: p.phase, err: p.lastError,"
            " status: p.status, pc: p.session && p.session.pc && p.session.pc.connectionState,"
            " overlay: document.getElementById('overlay-title').textContent}; }"
        )
        raise AssertionError(f"no video frame decoded: {info} {page.errors}") from None
    first = seen[-1]
    await wait_until(lambda: decoded(first), timeout, f"framesDecoded past {first}", interval=0.3)
    return seen[-1]


async def test_full_scenario_host_and_two_viewers(app_factory, redis_url) -> None:
    """Host goes live from the fake camera, pins, answers; viewers play, apply and ask."""
    require_browser()
    client = await app_factory(redis_url, **MEDIA)
    base = str(client.make_url("/")).rstrip("/")
    api = await login(client, "lina", "host", "s3cret-pass")
    async with chromium() as browser:
        host = await new_page(browser, base, viewport=DESKTOP, lang="en")
        await host.goto("/host")
        await host.get_by_label("Username").fill("lina")
        await host.get_by_label("Password").fill("s3cret-pass")
        await host.get_by_role("button", name="Log in").click()
        await host.get_by_label("Title").fill("春季招聘会")
        await host.get_by_role("button", name="Create broadcast").click()
        await host.wait_for_url("**/host/b/*")
        bid = host.url.rsplit("/", 1)[1]
        await host.locator("#lineup").wait_for()

        # One opening through the editor (its 422 fields shown in place), two through the API.
        await host.get_by_role("button", name="New opening").click()
        dlg = host.locator("#opening-dialog")
        await dlg.get_by_label("Job title").fill("数控操作工")
        await dlg.get_by_role("button", name="Save").click()
        await dlg.locator('.field-error[data-field="city"]').filter(has_text="Required").wait_for()
        await dlg.get_by_label("Employer", exact=True).fill("鸡西精工机械有限公司")
        await dlg.get_by_label("City").fill("鸡西")
        await dlg.get_by_label("Salary from (yuan/month)").fill("5000")
        await dlg.get_by_label("Salary to (yuan/month)").fill("7000")
        await dlg.get_by_role("button", name="Save").click()
        await dlg.wait_for(state="hidden")
        for title, city, edu in (("会计", "哈尔滨", "bachelor"), ("护士", "鸡西", "associate")):
            r = await api.post(
                f"/api/broadcasts/{bid}/openings",
                {
                    "title": title,
                    "employer": {"name": "某单位", "verified": True},
                    "city": city,
                    "salary_min": 4000,
                    "salary_max": 6000,
                    "education": edu,
                    "majors": ["财务管理"] if title == "会计" else [],
                    "status": "published",
                },
            )
            assert r.status == 201, await r.text()
        await host.locator("#lineup > li").nth(2).wait_for()

        # Go live from the fake camera over WHIP.
        await host.get_by_role("button", name="Go live from this browser").click()
        await (
            host.locator("#publish-state").filter(has_text="Sending video").wait_for(timeout=20000)
        )
        await host.locator("#stream-state").filter(has_text="Video: live").wait_for(timeout=20000)
        await host.locator("#b-status .status-live").wait_for()
        # Stream health: the fake camera's frame rate and bit rate, and a verdict.
        health = host.locator("#stream-health")
        await health.filter(has_text="fps").wait_for(timeout=15000)
        assert await health.get_attribute("data-verdict") in ("good", "warn")
        assert "kbps" in await health.inner_text()

        # A viewer at phone size plays the video.
        v1 = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await v1.goto(f"/b/{bid}")
        await frames_grow(v1)
        assert await v1.locator("#overlay").is_hidden()

        # The host pins an opening; the viewer sees it within a second.
        await host.get_by_role("button", name="Pin 会计").click()
        await v1.locator("#pinned-slot .card-title").filter(has_text="会计").wait_for(timeout=1000)
        await host.locator("#pinned-now").filter(has_text="会计").wait_for()
        await host.get_by_role("button", name="Pin next").click()
        await v1.locator("#pinned-slot .card-title").filter(has_text="护士").wait_for(timeout=1000)
        await host.get_by_role("button", name="Unpin", exact=True).first.click()
        await v1.locator("#pinned-slot .card").wait_for(state="detached", timeout=1000)
        await host.get_by_role("button", name="Pin 会计").click()
        await v1.locator("#pinned-slot .card-title").filter(has_text="会计").wait_for(timeout=1000)

        # Filters: by city.
        await v1.get_by_label("城市").select_option("鸡西")
        assert await v1.locator("#openings .card").count() == 2
        await v1.get_by_label("城市").select_option("")
        await v1.get_by_label("我的学历").select_option("associate")
        titles = await v1.locator("#openings .card-title").all_inner_texts()
        assert "会计" not in titles and "护士" in titles

        # The viewer applies: local checks, then the server's 422 fields, then success.
        await v1.locator("#pinned-slot").get_by_role("button", name="投递").click()
        form = v1.locator("#apply-form")
        await form.get_by_role("button", name="提交投递").click()
        await form.locator('.field-error[data-field="name"]').filter(has_text="必填").wait_for()
        await form.get_by_label("姓名", exact=True).fill("王小明")
        await form.get_by_label("手机号", exact=True).fill("12345678")
        await form.locator("#a-consent").check()
        await form.get_by_role("button", name="提交投递").click()
        await (
            form.locator('.field-error[data-field="phone"]')
            .filter(has_text="有效的手机号")
            .wait_for()
        )
        await form.get_by_label("手机号", exact=True).fill("138 0013 8000")
        submit = form.get_by_role("button", name="提交投递")
        await submit.dblclick()  # a double tap stores one application
        await v1.locator("#pinned-slot [data-applied]").wait_for(state="visible")
        await host.locator("#fig-applications").filter(has_text="1").wait_for(timeout=3000)
        await host.locator("#apps-rows tr").filter(has_text="王小明").wait_for(timeout=3000)
        await (
            host.locator("#lineup li")
            .filter(has_text="会计")
            .filter(has_text="1 application")
            .wait_for()
        )
        assert await host.locator("#apps-rows tr").count() == 1
        r = await api.get(f"/api/broadcasts/{bid}/applications")
        assert (await r.json())["total"] == 1
        # The host moves the application on; the status is stored.
        row = host.locator("#apps-rows tr").filter(has_text="王小明")
        await row.get_by_role("combobox").select_option("interview")
        # 邀请面试 asks for the interview's details first (the applicant is told them)
        await host.locator("#interview-dialog").get_by_label("Place").fill("鸡西市人才市场")
        # (the editor's earlier "Saved" is no proof: wait for this PATCH's own answer)
        async with host.expect_response(
            lambda r: "/applications/" in r.url and r.request.method == "PATCH"
        ) as patched:
            await host.get_by_role("button", name="Send invitation").click()
        assert (await patched.value).status == 200
        await host.locator("#toast.show").filter(has_text="Saved").wait_for()
        r = await api.get(f"/api/broadcasts/{bid}/applications")
        assert (await r.json())["applications"][0]["status"] == "interview"
        export = await host.request.get(f"/api/broadcasts/{bid}/applications.csv")
        assert "王小明" in (await export.body()).decode("utf-8-sig")

        # The viewer asks about the opening; the host answers; the viewer sees the answer.
        await v1.get_by_role("tab", name="问答").click()
        await v1.get_by_label("您的问题").fill("会计岗位需要证书吗？")
        await v1.locator("#ask-opening").select_option(label="会计 · 某单位")
        await v1.get_by_role("button", name="提问", exact=True).click()
        # Questions wait for a moderator (chat_review_questions): approve it in the console.
        await v1.locator("#ask-error").filter(has_text="审核通过后会显示").wait_for()
        # a held question waits in the Q&A panel and counts as a question, not a message
        held = host.locator("#qa-queue li.held").filter(has_text="需要证书")
        await held.get_by_text("Waiting for review").wait_for()
        assert await host.locator("#fig-questions").inner_text() == "1"
        assert await host.locator("#fig-review").inner_text() == "0"
        assert await host.locator("#review li").filter(has_text="需要证书").count() == 0
        await held.get_by_role("button", name="Approve").click()
        await v1.locator("#questions .q-text").filter(has_text="需要证书").wait_for(timeout=3000)
        # the "waiting for approval" notice goes once the question is shown
        await v1.wait_for_function("() => document.getElementById('ask-error').textContent === ''")
        await held.wait_for(state="detached")
        item = host.locator("#qa-queue li").filter(has_text="需要证书")
        await item.wait_for()
        await item.get_by_role("textbox").fill("需要初级会计证。")
        await item.get_by_role("button", name="Answer").click()
        await item.get_by_role("button", name="Show on screen").click()
        await (
            v1.locator("#questions .answer")
            .filter(has_text="需要初级会计证")
            .wait_for(timeout=3000)
        )
        await v1.locator("#questions .highlighted").wait_for(timeout=3000)

        # Chat, and a second viewer who sees all of it.
        await v1.get_by_role("tab", name="聊天").click()
        await v1.get_by_label("消息").fill("大家好")
        await v1.get_by_role("button", name="发送").click()
        await host.locator("#mod-chat").filter(has_text="大家好").wait_for()
        v2 = await new_page(browser, base, viewport=PHONE, lang="en")
        await v2.goto(f"/b/{bid}")
        await v2.locator("#pinned-slot .card-title").filter(has_text="会计").wait_for()
        await frames_grow(v2)
        await v2.get_by_role("tab", name="Q&A").click()
        await v2.locator("#questions .answer").filter(has_text="需要初级会计证").wait_for()
        # An upvote from the second viewer reaches the first viewer and the host.
        await v2.get_by_role("button", name="Vote for this question").click()
        await v2.get_by_role("button", name="Withdraw my vote").wait_for()
        await (
            v1.locator("#questions .votes")
            .filter(has_text="1")
            .wait_for(state="attached", timeout=3000)
        )
        await host.locator("#qa-queue .votes").filter(has_text="▲ 1").wait_for(timeout=3000)
        await v2.get_by_role("tab", name="Chat").click()
        await v2.locator("#chat").filter(has_text="大家好").wait_for()
        await host.locator("#fig-viewers").filter(has_text="2").wait_for(timeout=5000)

        await v1.get_by_role("tab", name="问答").click()
        for p in (host, v1, v2):
            assert await a11y_problems(p) == [], p.url
        for p in (v1, v2):
            assert await p.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]
        await screenshot(v1, "viewer-360")
        await screenshot(v1, "viewer-360-full", full_page=True)
        await v1.set_viewport_size(DESKTOP)
        await screenshot(v1, "viewer-1280")
        await screenshot(v2, "viewer-360-en")
        await screenshot(host, "host-1280")
        await screenshot(host, "host-1280-full", full_page=True)
        await host.set_viewport_size(PHONE)
        await screenshot(host, "host-360")
        width = await host.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "the console scrolls sideways at 360 px"
        for p in (host, v1, v2):
            assert real_errors(p) == [], real_errors(p)


async def _seed_busy_broadcast(client: Any, host: Any) -> tuple[Any, str]:
    """A broadcast as it looks mid-fair: 20 openings, one pinned, 60 chat messages."""
    from tests.helpers import connect

    bid = await host.create_broadcast("鸡西市就业服务中心 · 2026 届高校毕业生直播招聘会")
    first = None
    for i in range(20):
        r = await host.post(
            f"/api/broadcasts/{bid}/openings",
            {
                "title": f"岗位{i} 机电一体化技术员",
                "employer": {"name": f"鸡西第{i}机械制造有限责任公司", "verified": i % 2 == 0},
                "city": ["鸡西", "哈尔滨", "牡丹江"][i % 3],
                "salary_min": 4000 + i * 100,
                "salary_max": 6000 + i * 100,
                "education": ["associate", "bachelor", "any"][i % 3],
                "majors": ["机械设计制造及其自动化", "电气工程"],
                "benefits": ["五险一金", "包住宿", "年终奖"],
                "description": "负责设备的日常维护与保养，参与生产线改造。" * 4,
                "deadline": "2026-12-31",
                "status": "published",
            },
        )
        assert r.status == 201, await r.text()
        first = first or (await r.json())["id"]
    assert (await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": first})).status == 200
    ws = await connect(client, bid, host=True)
    for i in range(60):
        await ws.send("chat.send", {"text": f"第{i}条消息：请问这个岗位包住宿吗？"}, id_=i)
    # Messages arrive in batches (chat.messages); each send is acked once its batch is out.
    await ws.wait_count(lambda e: e["type"] == "ack" and isinstance(e.get("id"), int), 60)
    await ws.close()
    return host, bid


@pytest.mark.app_settings(ws_burst=100, ws_messages_per_second=100.0)
async def test_viewer_page_weight_and_first_paint_without_javascript(client, host) -> None:
    """<= 150 KB transferred before video; the pinned card is in the HTML without scripts."""
    require_browser()
    _host, bid = await _seed_busy_broadcast(client, host)
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        done: list[Any] = []
        page.on("requestfinished", lambda req: done.append(req))
        await page.goto(f"/b/{bid}", wait_until="load")
        await page.wait_for_function("() => document.documentElement.dataset.live === 'live'")
        await page.locator("#openings .card").nth(19).wait_for()
        sizes = {}
        for req in done:
            if "/whep/" in req.url or req.url.startswith("ws"):
                continue
            s = await req.sizes()
            sizes[req.url.split("?")[0].replace(base, "")] = (
                s["responseBodySize"] + s["responseHeadersSize"]
            )
        total = sum(sizes.values())
        print(f"viewer page weight: {total} bytes transferred", sizes)
        assert f"/b/{bid}" in sizes and "/static/viewer.js" in sizes and "/static/app.css" in sizes
        assert total <= 150 * 1024, sizes
        assert real_errors(page) == []

        # Scripts off: the server-rendered page already shows the pinned card and the openings.
        nojs = await new_page(browser, base, viewport=PHONE, lang="zh-CN", javascript=False)
        await nojs.goto(f"/b/{bid}")
        card = nojs.locator("#pinned-slot .card.pinned")
        assert await card.is_visible()
        assert "岗位0 机电一体化技术员" in await card.locator(".card-title").inner_text()
        assert "4000–6000 元/月" in await card.inner_text()
        assert await nojs.locator("#openings .card").count() == 20
        assert await nojs.locator("#overlay-title").inner_text() == "尚未开播"
        await screenshot(nojs, "viewer-360-nojs")


async def test_moderation_refusals_in_words_audio_only_and_video_restart(
    app_factory, redis_url
) -> None:
    """Slow mode and time-outs reach the viewer in words; audio-only mode; the video comes
    back by itself when the host stops and goes live again; a moderator's console."""
    require_browser()
    client = await app_factory(redis_url, **MEDIA)
    base = str(client.make_url("/")).rstrip("/")
    api = await login(client, "lina", "host", "s3cret-pass")
    bid = await api.create_broadcast("Moderation fair")
    async with chromium() as browser:
        host = await new_page(browser, base, viewport=DESKTOP, lang="en")
        r = await host.request.post(
            "/api/login", data={"username": "lina", "password": "s3cret-pass"}
        )
        assert r.ok
        await host.goto(f"/host/b/{bid}")
        await host.get_by_role("button", name="Go live from this browser").click()
        await host.locator("#stream-state").filter(has_text="Video: live").wait_for(timeout=20000)

        v = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await v.goto(f"/b/{bid}")
        await frames_grow(v)

        # The OBS details: a new stream key is shown once it is made.
        await host.get_by_text("Use OBS or another encoder (WHIP)").click()
        assert await host.get_by_label("Server URL").input_value() == f"{base}/whip/{bid}"
        old_key = await host.locator("#whip-key").input_value()
        host.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await host.get_by_role("button", name="New key").click()
        await host.wait_for_function(
            "(k) => document.getElementById('whip-key').value && "
            "document.getElementById('whip-key').value !== k",
            arg=old_key,
        )

        # Slow mode, set in the console: the second message is refused with the seconds left.
        await host.get_by_label("Slow mode").select_option("30")
        await v.get_by_role("tab", name="聊天").click()
        await v.locator("#chat-form").wait_for()
        await v.get_by_label("消息").fill("第一条")
        await v.get_by_role("button", name="发送").click()
        await v.locator("#chat").filter(has_text="第一条").wait_for()
        await v.get_by_label("消息").fill("第二条")
        await v.get_by_role("button", name="发送").click()
        err = v.locator("#chat-error")
        await err.filter(has_text="慢速模式中，还需等待").wait_for()
        assert "秒" in await err.inner_text()

        # A time-out from the console's chat list reaches the viewer at once, in words.
        msg = host.locator("#mod-chat li").filter(has_text="第一条")
        await msg.get_by_role("button", name="Time out 10 min").click()
        await err.filter(has_text="管理员已暂停您发言").wait_for(timeout=3000)
        assert await v.locator("#chat-text").is_disabled()
        await host.locator("#mod-people").filter(has_text="Lift time-out").wait_for()
        await host.get_by_role("button", name="Lift time-out").click()
        await host.locator("#mod-people").filter(has_text="Nobody").wait_for()
        # lifted: the viewer is told and may write again at once
        await err.filter(has_text="您可以继续发言了").wait_for(timeout=3000)
        assert not await v.locator("#chat-text").is_disabled()

        # Blocked words: added in the console, refused for the viewer.
        await host.get_by_label("Blocked words").fill("骗子")
        await host.get_by_role("button", name="Add").click()
        await host.locator("#words").filter(has_text="骗子").wait_for()

        # Audio only: a new session without video.
        await v.get_by_role("button", name="仅音频").click()
        await v.wait_for_function(
            "() => JC.viewer.player.phase === 'playing' && JC.viewer.player.audioOnly"
        )
        kinds = await v.evaluate(
            "() => JC.viewer.player.session.pc.getTransceivers().map((t) => t.receiver.track.kind)"
        )
        assert kinds == ["audio"]
        # The overlay is drawn on the player's next render, after the phase changes.
        await v.wait_for_function(
            "() => document.getElementById('overlay-title').textContent.trim() === '仅音频'"
        )
        await v.get_by_role("button", name="显示画面").click()
        await frames_grow(v)

        # The host switches to the screen while live: same session, the viewer keeps playing.
        await host.get_by_label("Source").select_option("screen")
        await host.wait_for_function(
            "() => document.getElementById('preview').srcObject.getVideoTracks()[0]"
            ".label.startsWith('screen')"
        )
        # The preview switches first; the sender's replaceTrack completes after it.
        await host.wait_for_function(
            "() => JC.host.golive.session.pc.getSenders()"
            ".some((s) => s.track && s.track.label.startsWith('screen'))"
        )
        await frames_grow(v)

        # The host stops sending: the viewer waits; the host goes live again: it plays again.
        await host.get_by_role("button", name="Stop sending").click()
        await v.locator("#overlay-title").filter(has_text="正在直播").wait_for(timeout=10000)
        assert await v.locator("#overlay-sub").inner_text() == "等待主播画面…"
        await host.get_by_role("button", name="Go live from this browser").click()
        await frames_grow(v)

        # A moderator's console: moderation, no lineup buttons, no applications, no go-live.
        await login(client, "mo", "moderator", "s3cret-pass")
        mod = await new_page(browser, base, viewport=DESKTOP, lang="en")
        r = await mod.request.post("/api/login", data={"username": "mo", "password": "s3cret-pass"})
        assert r.ok
        await mod.goto(f"/host/b/{bid}")
        await mod.locator("#mod-chat").filter(has_text="第一条").wait_for()
        assert await mod.locator("#golive").count() == 0
        assert await mod.locator("#pin-next").is_hidden()
        assert await mod.locator('section[aria-labelledby="apps-h"]').is_hidden()
        await (
            mod.locator("#mod-chat li")
            .filter(has_text="第一条")
            .get_by_role("button", name="Hide")
            .click()
        )
        await v.locator("#chat").filter(has_text="第一条").wait_for(state="detached")
        for p in (host, v, mod):
            assert real_errors(p) == [], real_errors(p)


CSV_OK = (
    "岗位名称,单位名称,工作地点,薪资下限,薪资上限,学历要求\n"
    "焊工,鸡西重工,鸡西,5000,8000,中专\n"
    "仓库管理员,龙江物流,牡丹江,3500,4500,高中\n"
).encode("gbk")
CSV_BAD = "岗位名称,单位名称,工作地点,薪资下限,薪资上限\n电工,某厂,鸡西,九千,8000\n".encode()


async def test_lineup_csv_import_edit_and_keyboard(app_factory, redis_url) -> None:
    """CSV import (errors by row), reordering and editing in the console; the viewer's tabs
    work with the keyboard and its cards follow the edits."""
    require_browser()
    client = await app_factory(redis_url)
    base = str(client.make_url("/")).rstrip("/")
    api = await login(client, "lina", "host", "s3cret-pass")
    bid = await api.create_broadcast("CSV fair")
    async with chromium() as browser:
        host = await new_page(browser, base, viewport=DESKTOP, lang="zh-CN")
        r = await host.request.post(
            "/api/login", data={"username": "lina", "password": "s3cret-pass"}
        )
        assert r.ok
        await host.goto(f"/host/b/{bid}")
        csv = host.locator("#csv-file")
        await csv.set_input_files({"name": "bad.csv", "mimeType": "text/csv", "buffer": CSV_BAD})
        # the file's preview: its errors by row, and no import (tests/test_browser_import.py)
        preview = host.locator("#csv-dialog")
        await preview.locator("#csv-errors").filter(has_text="第 2 行").wait_for()
        assert await preview.locator("#csv-publish").is_disabled()
        await preview.get_by_role("button", name="取消").click()
        await csv.set_input_files({"name": "ok.csv", "mimeType": "text/csv", "buffer": CSV_OK})
        await preview.get_by_role("button", name="导入", exact=True).click()
        await host.locator("#csv-result").filter(has_text="已导入 2 个岗位").wait_for()
        await host.locator("#lineup li").nth(1).wait_for()
        titles = await host.locator("#lineup .o-title").all_inner_texts()
        assert [t.strip() for t in titles] == ["焊工", "仓库管理员"]
        export = await host.request.get(f"/api/broadcasts/{bid}/openings.csv")
        assert "焊工" in (await export.body()).decode("utf-8-sig")

        v = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await v.goto(f"/b/{bid}")
        await v.locator("#openings .card").nth(1).wait_for()

        await host.get_by_role("button", name="下移 焊工").click()
        await v.locator("#openings .card-title").first.filter(has_text="仓库管理员").wait_for()
        await host.get_by_role("button", name="编辑 焊工").click()
        dlg = host.locator("#opening-dialog")
        await dlg.get_by_label("最高月薪（元）").fill("4000")
        await dlg.get_by_role("button", name="保存").click()
        await (
            dlg.locator('.field-error[data-field="salary_max"]')
            .filter(has_text="不能低于下限")
            .wait_for()
        )
        await dlg.get_by_label("最高月薪（元）").fill("9000")
        await dlg.get_by_role("button", name="保存").click()
        await dlg.wait_for(state="hidden")
        await (
            v.locator("#openings .card")
            .filter(has_text="焊工")
            .filter(has_text="5000–9000")
            .wait_for(timeout=3000)
        )

        # Tabs: arrow keys move between them; Home and End jump.
        await v.get_by_role("tab", name="岗位").focus()
        await v.keyboard.press("ArrowRight")
        assert await v.get_by_role("tab", name="聊天").get_attribute("aria-selected") == "true"
        assert await v.locator("#p-chat").is_visible()
        await v.keyboard.press("End")  # the last tab: the viewer's own applications
        assert await v.locator("#t-mine").get_attribute("aria-selected") == "true"
        await v.keyboard.press("ArrowLeft")
        assert await v.get_by_role("tab", name="问答").get_attribute("aria-selected") == "true"
        await v.keyboard.press("Home")
        assert await v.locator("#p-openings").is_visible()
        # The apply dialog is keyboard-usable and closes with Escape.
        await v.locator("#openings [data-apply]").first.focus()
        await v.keyboard.press("Enter")
        assert await v.evaluate("() => document.activeElement.id") == "a-name"
        assert await a11y_problems(v) == []
        await v.keyboard.press("Escape")
        await v.locator("#apply-dialog").wait_for(state="hidden")
        for p in (host, v):
            assert real_errors(p) == [], real_errors(p)


async def test_apply_retry_after_a_lost_answer_stores_one_application(client, host) -> None:
    """The answer to the first submit is lost on the way back (the server stored it); the page
    retries with the same Idempotency-Key and the server answers with the first result. And
    what a viewer types is shown as text, never as markup."""
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    bid = await host.create_broadcast("Retry fair")
    r = await host.post(
        f"/api/broadcasts/{bid}/openings",
        {
            "title": "电工",
            "employer": {"name": "鸡西电力"},
            "city": "鸡西",
            "salary_min": 5000,
            "salary_max": 7000,
            "status": "published",
        },
    )
    oid = (await r.json())["id"]
    await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": oid})
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE, lang="en")
        keys: list[str] = []

        async def lose_first_answer(route: Any) -> None:
            keys.append(route.request.headers.get("idempotency-key", ""))
            resp = await route.fetch()  # the server stores the application...
            if len(keys) == 1:
                await route.abort("connectionreset")  # ...but the phone never hears back
            else:
                await route.fulfill(response=resp)

        await v.route(f"**/api/openings/{oid}/applications", lose_first_answer)
        await v.goto(f"/b/{bid}")
        await v.locator("#pinned-slot").get_by_role("button", name="Apply").click()
        form = v.locator("#apply-form")
        await form.get_by_label("Name", exact=True).fill("<b>李雷</b>")
        await form.get_by_label("Mobile number").fill("13900139000")
        await form.locator("#a-consent").check()
        await form.get_by_role("button", name="Send application").click()
        await v.locator("#pinned-slot [data-applied]").wait_for(state="visible", timeout=10000)
        assert len(keys) == 2 and keys[0] == keys[1] and len(keys[0]) == 36
        r = await host.get(f"/api/broadcasts/{bid}/applications")
        body = await r.json()
        assert body["total"] == 1 and body["applications"][0]["name"] == "<b>李雷</b>"

        # The viewer picks a display name; it is used for the next messages and kept.
        await v.get_by_role("tab", name="Chat").click()
        await v.get_by_role("button", name="Change").click()
        await v.get_by_label("Your name").fill("小李")
        await v.get_by_role("button", name="Save").click()
        await v.locator("#my-name").filter(has_text="小李").wait_for()
        assert await v.evaluate("() => localStorage.getItem('jc_name')") == "小李"
        # Markup typed into the chat stays text on every page.
        await v.get_by_label("Message").fill('<img src=x onerror="window.__xss=1">hi')
        await v.get_by_role("button", name="Send").click()
        await v.locator("#chat .text").filter(has_text="<img src=x").wait_for()
        assert await v.locator("#chat li").last.locator(".who").inner_text() == "小李"
        assert await v.locator("#chat img").count() == 0
        assert await v.evaluate("() => window.__xss === undefined")
        assert real_errors(v) == []


async def test_without_a_socket_the_page_still_shows_the_card_and_applies(client, host) -> None:
    """A network that kills WebSockets: the page keeps its server-rendered card, says it is
    reconnecting (never blank), and applying still works over plain HTTP."""
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    bid = await host.create_broadcast("No-socket fair")
    r = await host.post(
        f"/api/broadcasts/{bid}/openings",
        {
            "title": "司机",
            "employer": {"name": "鸡西公交"},
            "city": "鸡西",
            "salary_min": 5000,
            "salary_max": 6000,
            "status": "published",
        },
    )
    oid = (await r.json())["id"]
    await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": oid})
    async with chromium() as browser:
        v = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await v.route_web_socket("**/ws/**", lambda ws: ws.close())
        await v.goto(f"/b/{bid}")
        await v.locator("#conn").wait_for(state="visible")
        assert await v.locator("#pinned-slot .card-title").inner_text() == "司机"
        await v.locator("#pinned-slot").get_by_role("button", name="投递").click()
        assert await v.locator("#apply-job").inner_text() == "司机"
        form = v.locator("#apply-form")
        await form.get_by_label("姓名", exact=True).fill("赵六")
        await form.get_by_label("手机号", exact=True).fill("13700137000")
        await form.locator("#a-consent").check()
        await form.get_by_role("button", name="提交投递").click()
        await v.locator("#pinned-slot [data-applied]").wait_for(state="visible")
        r = await host.get(f"/api/broadcasts/{bid}/applications")
        assert (await r.json())["total"] == 1
        # A reload keeps the applied state (rendered by the server from the viewer cookie).
        await v.reload()
        assert await v.locator("#pinned-slot [data-applied]").is_visible()
        assert await v.locator("#pinned-slot [data-apply]").is_hidden()
