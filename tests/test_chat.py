"""Chat, questions and moderation across two app instances sharing one real Redis."""

from __future__ import annotations

import asyncio
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest
from jobcast.chat.reducer import chat_state, reduce
from jobcast.core import keys
from jobcast.web.api.chat import CHAT
from jobcast.web.appkeys import REDIS
from markupsafe import escape

from tests.chat_helpers import call, err, messages, ok, wait_message, wait_messages
from tests.helpers import connect, fence
from tests.waiting import wait_until


async def test_message_reaches_viewers_on_both_instances(client, client_b, bid, viewers):
    va = await viewers.open(client, bid, name="小王")
    vb = await viewers.open(client_b, bid)
    sent = await ok(va, "chat.send", {"text": "  请问\x00有夜班吗？ "})
    assert sent["text"] == "请问有夜班吗？"
    assert sent["name"] == "小王"
    for v in (va, vb):
        m = await wait_message(v)
        assert m == sent
        assert "vid" not in m and "viewer_id" not in m
    late = await viewers.open(client_b, bid)
    snap = late.of_type("snapshot")[0]["data"]
    assert snap["chat"] == [sent]


async def test_length_counted_in_characters(client, bid, viewers):
    v = await viewers.open(client, bid)
    assert (await ok(v, "chat.send", {"text": "岗" * 300}))["text"] == "岗" * 300  # 900 bytes
    e = await err(v, "chat.send", {"text": "岗" * 301})
    assert e["code"] == "too_long"
    assert e["max"] == 300
    assert (await err(v, "chat.send", {"text": " \u202e\x07 "}))["code"] == "invalid"


async def test_question_flow_reaches_both_instances(client, client_b, host, bid, viewers):
    console = await connect(client, bid, host=True)
    asker = await viewers.open(client, bid, name="小李")
    other = await viewers.open(client_b, bid)

    held = await err(asker, "question.ask", {"text": "包住宿吗？", "anonymous": True})
    assert held["code"] == "held"
    qid = held["question_id"]
    review = await console.wait_for("review.added")
    assert review["data"]["author"]["name"] == "小李"
    assert review["data"]["anonymous"] is True

    r = await host.post(
        f"/api/broadcasts/{bid}/chat/review.decide",
        {"kind": "question", "id": qid, "approve": True},
    )
    assert r.status == 200, await r.text()
    for v in (asker, other):
        q = (await v.wait_for("question.updated"))["data"]
        assert q["id"] == qid and q["name"] is None and q["anonymous"] is True
        assert q["votes"] == 0 and q["status"] == "open"
    author = await console.wait_for("question.author")
    assert author["data"]["name"] == "小李"
    assert not other.of_type("review.added", "question.author")

    assert (await ok(other, "question.vote", {"id": qid}))["votes"] == 1
    for v in (asker, other):
        ev = await v.wait_for("question.votes")
        assert ev["data"]["votes"] == {qid: 1}

    r = await host.post(
        f"/api/broadcasts/{bid}/chat/question.answer", {"id": qid, "answer": "包，四人间"}
    )
    assert r.status == 200
    for v in (asker, other):
        ev = await v.wait_for(
            lambda e: e["type"] == "question.updated" and e["data"]["status"] == "answered"
        )
        assert ev["data"]["answer"] == "包，四人间"

    await ok(console, "question.highlight", {"id": qid})
    for v in (asker, other):
        assert (await v.wait_for("question.highlighted"))["data"]["id"] == qid

    await ok(console, "question.hide", {"id": qid})
    for v in (asker, other):
        assert (await v.wait_for("question.hidden"))["data"]["id"] == qid
        await v.wait_for(lambda e: e["type"] == "question.highlighted" and e["data"]["id"] is None)
    fresh = await viewers.open(client_b, bid)
    assert fresh.of_type("snapshot")[0]["data"]["questions"] == []
    # A vote on a hidden question is refused.
    assert (await err(other, "question.vote", {"id": qid}))["code"] == "question_not_found"

    await ok(console, "question.restore", {"id": qid})
    for v in (asker, other):
        await v.wait_for(
            lambda e: (
                e["type"] == "question.updated" and e["seq"] > ev["seq"] and not e["data"]["hidden"]
            )
        )
    # Viewers may not moderate.
    assert (await err(other, "question.hide", {"id": qid}))["code"] == "staff_only"
    r = await other_post(client_b, f"/api/broadcasts/{bid}/chat/question.hide", {"id": qid})
    assert r == 401


async def _all_vote_counts_out(client, bid: str, *socks) -> None:
    """Wait until every vote count is published and has reached `socks`.

    A vote marks its question dirty; the flush that publishes the counts clears the mark in
    the same script, so with nothing dirty no further `question.votes` can come, and a fence
    after it shows that every one published has arrived."""
    redis = client.server.app[REDIS]
    await wait_until(
        lambda: _scard_is_zero(redis, keys.question_dirty(bid)), what="the vote counts to go out"
    )
    await fence(client, bid, *socks)


async def _scard_is_zero(redis, key: str) -> bool:
    return await redis.scard(key) == 0


async def other_post(client, path, body):
    r = await client.post(path, json=body)
    return r.status


@pytest.mark.app_settings(chat_review_questions=False)
async def test_one_vote_per_viewer(client, client_b, bid, viewers):
    console = await connect(client, bid, host=True)
    asker = await viewers.open(client, bid)
    q = await ok(asker, "question.ask", {"text": "几点下班"})
    jar = viewers.jar()
    same_a = await viewers.open(client, bid, jar=jar)
    same_b = await viewers.open(client_b, bid, jar=jar)  # the same viewer on the other instance
    replies = await asyncio.gather(
        *(call(v, "question.vote", {"id": q["id"]}) for v in (same_a, same_b, same_a, same_b))
    )
    assert sum(r["data"]["changed"] for r in replies) == 1
    room = client.server.app[CHAT]
    assert (await room.questions.listing(bid, host=False))["questions"][0]["votes"] == 1
    # Withdrawn, then given again.
    assert (await ok(same_b, "question.vote", {"id": q["id"], "up": False}))["votes"] == 0
    assert (await ok(same_a, "question.vote", {"id": q["id"], "up": False}))["changed"] is False
    assert (await ok(same_a, "question.vote", {"id": q["id"]}))["votes"] == 1
    await ok(asker, "question.vote", {"id": q["id"]})
    ev = await console.wait_for(
        lambda e: e["type"] == "question.votes" and e["data"]["votes"] == {q["id"]: 2}
    )
    assert ev


@pytest.mark.app_settings(chat_review_questions=False, qa_votes_per_address=1000)
async def test_votes_are_coalesced(client, client_b, bid, viewers):
    # All voters share 127.0.0.1 here: count them all (tests/test_vote_addresses.py has the cap).
    asker = await viewers.open(client, bid)
    q = await ok(asker, "question.ask", {"text": "实习转正吗"})
    voters = [await viewers.open(client if i % 2 else client_b, bid) for i in range(30)]
    await asyncio.gather(*(ok(v, "question.vote", {"id": q["id"]}) for v in voters))
    ev = await asker.wait_for(
        lambda e: e["type"] == "question.votes" and e["data"]["votes"][q["id"]] == 30
    )
    assert ev
    await _all_vote_counts_out(client, bid, asker)
    # 30 votes from two processes, but only a few events (at most two per second).
    n = len(asker.of_type("question.votes"))
    assert 1 <= n <= 4, n
    counts = [e["data"]["votes"][q["id"]] for e in asker.of_type("question.votes")]
    assert counts == sorted(counts)


@pytest.mark.app_settings(
    chat_review_questions=False, qa_votes_interval=0, qa_votes_per_address=1000
)
async def test_one_event_per_vote_when_coalescing_is_off(client, bid, viewers):
    asker = await viewers.open(client, bid)
    q = await ok(asker, "question.ask", {"text": "有五险一金吗"})
    for _ in range(5):
        await ok(await viewers.open(client, bid), "question.vote", {"id": q["id"]})
    got = await asker.wait_count("question.votes", 5)
    assert sorted(e["data"]["votes"][q["id"]] for e in got) == [1, 2, 3, 4, 5]


async def test_timed_out_viewer_refused_until_the_time_passes(client, client_b, host, bid, viewers):
    v = await viewers.open(client_b, bid)
    msg = await ok(v, "chat.send", {"text": "刷屏"})
    r = await host.post(f"/api/broadcasts/{bid}/chat/mod.timeout", {"seconds": 30})
    assert r.status == 422  # at least a minute
    r = await host.post(
        f"/api/broadcasts/{bid}/chat/mod.timeout", {"message_id": msg["id"], "seconds": 60}
    )
    assert r.status == 200, await r.text()
    until = (await r.json())["until"]
    told = await v.wait_for(lambda e: e["type"] == "error" and e["data"]["code"] == "muted")
    assert told["data"]["until"] == until
    e = await err(v, "chat.send", {"text": "还在吗"})
    assert e["code"] == "muted" and e["until"] == until and e["retry_after"] > 50
    assert (await err(v, "question.ask", {"text": "问题"}))["code"] == "muted"
    # The time-out's end is read against Redis's clock: rewrite it to just ahead of that
    # clock (still muted), then to just behind it (the time has passed).
    redis = client.server.app[REDIS]
    vid = orjson.loads(await r.read())["viewer_id"]

    async def mute_ends_in(ms: int) -> None:
        sec, usec = await redis.time()
        await redis.hset(keys.mod_mutes(bid), vid, sec * 1000 + usec // 1000 + ms)

    await mute_ends_in(1500)
    assert (await err(v, "chat.send", {"text": "还在吗"}))["code"] == "muted"
    await mute_ends_in(-1)
    assert (await ok(v, "chat.send", {"text": "好了"}))["text"] == "好了"
    # Lifting works too.
    await host.post(
        f"/api/broadcasts/{bid}/chat/mod.timeout", {"message_id": msg["id"], "seconds": 600}
    )
    assert (await err(v, "chat.send", {"text": "x"}))["code"] == "muted"
    r = await host.post(f"/api/broadcasts/{bid}/chat/mod.untimeout", {"message_id": msg["id"]})
    assert r.status == 200
    await ok(v, "chat.send", {"text": "y"})


async def test_slow_mode_refuses_viewers_not_moderators(client, client_b, bid, moderator, viewers):
    r = await moderator.post(f"/api/broadcasts/{bid}/chat/mod.slow_mode", {"seconds": 30})
    assert r.status == 200
    v = await viewers.open(client, bid)
    other = await viewers.open(client_b, bid)
    assert v.of_type("snapshot")[0]["data"]["chat_settings"]["slow_mode"] == 30
    await ok(v, "chat.send", {"text": "第一条"})
    e = await err(v, "chat.send", {"text": "第二条"})
    assert e["code"] == "slow_mode" and 0 < e["retry_after"] <= 30
    await ok(other, "chat.send", {"text": "别人的第一条"})  # per viewer
    console = await connect(moderator.client, bid, host=True)
    await ok(console, "chat.send", {"text": "主持人一"})
    m2 = await ok(console, "chat.send", {"text": "主持人二"})
    assert m2["role"] == "moderator"
    await moderator.post(f"/api/broadcasts/{bid}/chat/mod.slow_mode", {"seconds": 0})
    await v.wait_for(lambda e: e["type"] == "chat.settings" and e["data"]["slow_mode"] == 0)
    await ok(v, "chat.send", {"text": "第二条"})


async def test_blocked_word_refused_with_its_code(client_b, host, bid, viewers):
    r = await host.post(f"/api/broadcasts/{bid}/chat/mod.words", {"add": ["骗子", "Scam"]})
    assert (await r.json())["words"] == ["scam", "骗子"]
    v = await viewers.open(client_b, bid)
    e = await err(v, "chat.send", {"text": "这家公司是骗 子"})
    assert e["code"] == "blocked_word" and e["word"] == "骗子"
    assert (await err(v, "chat.send", {"text": "total SCAM"}))["code"] == "blocked_word"
    assert (await err(v, "question.ask", {"text": "是不是scam"}))["code"] == "blocked_word"
    await ok(v, "chat.send", {"text": "这家公司不错"})
    await host.post(f"/api/broadcasts/{bid}/chat/mod.words", {"remove": ["骗子"]})
    await ok(v, "chat.send", {"text": "骗子"})


async def test_message_with_phone_held_until_approved(client, client_b, bid, viewers):
    console = await connect(client, bid, host=True)
    author = await viewers.open(client_b, bid, name="招聘小张")
    other = await viewers.open(client_b, bid)
    other_a = await viewers.open(client, bid)
    held = await err(author, "chat.send", {"text": "高薪日结 加我 138-1234-5678"})
    assert held["code"] == "held" and held["reason"] == "phone"
    spam = await err(author, "chat.send", {"text": "加微信 abc888"})
    assert spam["reason"] == "contact"
    item = (await console.wait_for("review.added"))["data"]
    assert item["kind"] == "message" and item["author"]["name"] == "招聘小张"
    assert item["text"] == "高薪日结 加我 138-1234-5678"
    await ok(author, "chat.send", {"text": "普通消息"})
    await wait_message(other, lambda m: m["text"] == "普通消息")
    assert [m["text"] for m in messages(other)] == ["普通消息"]
    assert len(messages(author)) == 1

    await ok(
        console, "review.decide", {"kind": "message", "id": held["message_id"], "approve": True}
    )
    await ok(
        console, "review.decide", {"kind": "message", "id": spam["message_id"], "approve": False}
    )
    e = await err(
        console, "review.decide", {"kind": "message", "id": spam["message_id"], "approve": True}
    )
    assert e["code"] == "review_not_found"
    for v in (other, other_a, author):
        m = await wait_message(v, lambda m: "138" in m["text"])
        assert m["name"] == "招聘小张"
    await console.wait_count("review.removed", 2)
    await fence(client, bid, other)
    assert all("abc888" not in m["text"] for m in messages(other))
    snap = (await viewers.open(client, bid)).of_type("snapshot")[0]["data"]
    assert [m["text"] for m in snap["chat"]] == ["普通消息", "高薪日结 加我 138-1234-5678"]


async def test_ban_closes_sockets_and_refuses(client, client_b, host, bid, viewers):
    jar = viewers.jar()
    bad_a = await viewers.open(client, bid, jar=jar)
    bad_b = await viewers.open(client_b, bid, jar=jar)
    bystander = await viewers.open(client_b, bid)
    msg = await ok(bad_a, "chat.send", {"text": "广告"})
    r = await host.post(
        f"/api/broadcasts/{bid}/chat/mod.ban", {"message_id": msg["id"], "ip": False}
    )
    assert r.status == 200, await r.text()
    vid = (await r.json())["viewer_id"]
    for v in (bad_a, bad_b):
        told = await v.wait_for(lambda e: e["type"] == "error" and e["data"]["code"] == "banned")
        assert told
        async with asyncio.timeout(5):
            await v.closed.wait()
        assert v.ws.close_code == 4003
    assert not bystander.closed.is_set()
    await ok(bystander, "chat.send", {"text": "我没事"})
    again = await viewers.open(client, bid, jar=jar)
    assert (await err(again, "chat.send", {"text": "再来"}))["code"] == "banned"
    assert (await err(again, "question.ask", {"text": "再来"}))["code"] == "banned"
    # An address ban refuses everyone posting from it (here every test viewer is 127.0.0.1).
    r = await host.post(f"/api/broadcasts/{bid}/chat/mod.ban", {"viewer_id": vid, "ip": True})
    assert (await r.json())["ip_banned"] is True
    assert (await err(bystander, "chat.send", {"text": "同一个网"}))["code"] == "banned"
    r = await host.post(f"/api/broadcasts/{bid}/chat/mod.unban", {"viewer_id": vid})
    assert r.status == 200
    await ok(bystander, "chat.send", {"text": "恢复了"})
    await again.closed.wait()  # the second ban closed this socket too
    await ok(await viewers.open(client_b, bid, jar=jar), "chat.send", {"text": "我也恢复了"})


@pytest.mark.app_settings(chat_burst=3, chat_rate=0.2)
async def test_rate_limit_holds_across_processes(client, client_b, bid, viewers):
    jar = viewers.jar()
    va = await viewers.open(client, bid, jar=jar)
    vb = await viewers.open(client_b, bid, jar=jar)
    await ok(va, "chat.send", {"text": "1"})
    await ok(vb, "chat.send", {"text": "2"})
    await ok(va, "chat.send", {"text": "3"})
    e = await err(vb, "chat.send", {"text": "4"})
    assert e["code"] == "rate_limited" and 0 < e["retry_after"] <= 5
    await ok(await viewers.open(client_b, bid), "chat.send", {"text": "someone else"})


async def test_snapshot_after_reconnect_equals_live_state(client, client_b, bid, viewers):
    await ok(await viewers.open(client, bid), "chat.send", {"text": "before"})
    console = await connect(client, bid, host=True)
    watcher = await viewers.open(client_b, bid)
    host_snap0 = console.of_type("snapshot")[0]
    view_snap0 = watcher.of_type("snapshot")[0]

    v1 = await viewers.open(client, bid, name="甲")
    v2 = await viewers.open(client_b, bid, name="乙")
    m1 = await ok(v1, "chat.send", {"text": "<b>hi</b>"})
    await ok(v2, "chat.send", {"text": "hello"})
    held = await err(v2, "chat.send", {"text": "www.example.com 招人"})
    q1 = (await err(v1, "question.ask", {"text": "Q1", "anonymous": True}))["question_id"]
    q2 = (await err(v2, "question.ask", {"text": "Q2"}))["question_id"]
    q3 = (await err(v2, "question.ask", {"text": "Q3"}))["question_id"]
    for qid in (q1, q2):
        await ok(console, "review.decide", {"kind": "question", "id": qid, "approve": True})
    for v in (v1, v2):
        await ok(v, "question.vote", {"id": q2})
    await ok(v1, "question.vote", {"id": q1})
    await ok(v1, "question.vote", {"id": q1, "up": False})
    await ok(console, "question.answer", {"id": q2, "answer": "是的"})
    await ok(console, "question.highlight", {"id": q1})
    await ok(console, "question.hide", {"id": q1})
    await ok(console, "chat.hide", {"id": m1["id"]})
    await ok(console, "mod.words", {"set": ["坏词"]})
    await ok(console, "mod.slow_mode", {"seconds": 5})
    notice = await ok(console, "chat.send", {"text": "欢迎来到招聘直播"})
    await ok(console, "chat.pin", {"id": notice["id"]})
    await ok(console, "mod.after_end", {"open": True})
    await ok(console, "mod.timeout", {"question_id": q3, "seconds": 120})
    await ok(console, "mod.ban", {"message_id": m1["id"], "ip": False})
    await ok(
        console, "review.decide", {"kind": "message", "id": held["message_id"], "approve": True}
    )
    await ok(console, "question.restore", {"id": q1})
    await ok(v2, "question.vote", {"id": q1})
    await _all_vote_counts_out(client, bid, console, watcher)

    for sock, snap0, is_host in ((console, host_snap0, True), (watcher, view_snap0, False)):
        live = [e for e in sock.events if "seq" in e and e["type"] != "snapshot"]
        state = reduce(snap0["data"], live, host=is_host)
        fresh = await (connect(client, bid, host=True) if is_host else viewers.open(client_b, bid))
        snap = fresh.of_type("snapshot")[0]["data"]
        assert chat_state(state, host=is_host) == chat_state(snap, host=is_host)
        # Replay from the old snapshot's seq gives the same state too.
        since = snap0["seq"]
        replayed = await (
            connect(client, bid, host=True, since=since)
            if is_host
            else viewers.open(client, bid, since=since)
        )
        assert replayed.of_type("synced")[0]["data"]["mode"] == "replay"
        events = [e for e in replayed.events if "seq" in e and e["type"] != "snapshot"]
        assert chat_state(reduce(snap0["data"], events, host=is_host), host=is_host) == chat_state(
            snap, host=is_host
        )
    # The state has what happened: a sanity check that the comparison is not empty.
    qs = {q["id"]: q for q in snap["questions"]}
    assert qs[q2]["status"] == "answered" and qs[q2]["votes"] == 2
    assert qs[q1]["votes"] == 1 and qs[q1]["hidden"] is False
    texts = ["before", "hello", "欢迎来到招聘直播", "www.example.com 招人"]
    assert [m["text"] for m in snap["chat"]] == texts
    assert snap["chat_settings"] == {"slow_mode": 5, "open_after_end": True}
    assert snap["chat_pinned"]["text"] == "欢迎来到招聘直播"


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.in_chat = 0
        self.chat_tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))
        if self.in_chat:
            self.chat_tags.append((tag, attrs))
            if tag == "ol":
                self.in_chat += 1
        elif tag == "ol" and ("id", "chat") in attrs:
            self.in_chat = 1

    def handle_endtag(self, tag):
        if self.in_chat and tag == "ol":
            self.in_chat -= 1


@pytest.mark.app_settings(chat_review_contacts=False, chat_burst=100, ws_burst=100)
async def test_xss_corpus_stored_verbatim_and_rendered_inert(client, bid, viewers):
    payloads = [
        line
        for line in (Path(__file__).parent / "data" / "xss.txt").read_text("utf-8").splitlines()
        if line.strip()
    ]
    assert len(payloads) >= 20
    evil = await viewers.open(client, bid, name="<svg onload=alert(1)>")
    watcher = await viewers.open(client, bid)
    for p in payloads:
        await ok(evil, "chat.send", {"text": p})
    got = await wait_messages(watcher, len(payloads))
    assert [m["text"] for m in got] == payloads  # stored and sent as typed
    assert {m["name"] for m in got} == {"<svg onload=alert(1)>"}

    r = await client.get(f"/b/{bid}")
    assert r.status == 200
    html = await r.text()
    parser = _Tags()
    parser.feed(html)
    # Inside the chat list only the list's own markup, with no handlers or script URLs.
    assert {t for t, _ in parser.chat_tags} == {"li", "span"}
    for _tag, attrs in parser.chat_tags:
        assert {k for k, _ in attrs} <= {"class", "data-id"}
    assert len([t for t, _ in parser.chat_tags if t == "li"]) == len(payloads)
    # Nowhere on the page: an inline script, an event handler attribute, a javascript: URL.
    for tag, attrs in parser.tags:
        assert not any(k.startswith("on") for k, _ in attrs), (tag, attrs)
        assert not any(v and "javascript:" in v.lower() for _, v in attrs), (tag, attrs)
        if tag == "script":
            assert dict(attrs).get("src", "").startswith("/static/")
    for p in payloads:
        assert str(escape(p)) in html
