"""The room around the messages: a pinned announcement, chat closing with the broadcast, and
an author told when a moderator rejects what they sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.chat_helpers import err, ok, wait_message
from tests.helpers import connect


def _is(type_: str, cond: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == type_ and cond(e)


async def test_a_pinned_message_reaches_everyone_and_goes_when_hidden(
    client, client_b, host, bid, viewers
):
    console = await connect(client, bid, host=True)
    v = await viewers.open(client_b, bid)
    notice = await ok(console, "chat.send", {"text": "投递后请留意短信通知"})
    assert notice["role"] == "host"
    r = await host.post(f"/api/broadcasts/{bid}/chat/chat.pin", {"id": notice["id"]})
    assert r.status == 200, await r.text()
    assert (await r.json())["message"]["text"] == "投递后请留意短信通知"
    pinned = (await v.wait_for("chat.pinned"))["data"]["message"]
    assert pinned == notice
    late = await viewers.open(client, bid)
    assert late.of_type("snapshot")[0]["data"]["chat_pinned"] == notice

    await ok(console, "chat.hide", {"id": notice["id"]})
    gone = await v.wait_for(_is("chat.pinned", lambda e: e["data"]["message"] is None))
    assert gone["data"] == {"message": None}
    again = await viewers.open(client, bid)
    assert again.of_type("snapshot")[0]["data"]["chat_pinned"] is None
    # a hidden or unknown message cannot be pinned; a viewer cannot pin at all
    assert (await err(console, "chat.pin", {"id": notice["id"]}))["code"] == "message_not_found"
    assert (await err(console, "chat.pin", {"id": "999"}))["code"] == "message_not_found"
    mine = await ok(v, "chat.send", {"text": "hello"})
    assert (await err(v, "chat.pin", {"id": mine["id"]}))["code"] == "staff_only"


async def test_chat_and_questions_close_with_the_broadcast_unless_kept_open(
    client, host, bid, viewers
):
    console = await connect(client, bid, host=True)
    v = await viewers.open(client, bid)
    qid = (await err(v, "question.ask", {"text": "有宿舍吗？"}))["question_id"]
    await ok(console, "review.decide", {"kind": "question", "id": qid, "approve": True})
    assert (await host.post(f"/api/broadcasts/{bid}/end", {})).status == 200
    await v.wait_for(_is("broadcast.updated", lambda e: e["data"]["status"] == "ended"))

    for action, data in (
        ("chat.send", {"text": "还能说话吗"}),
        ("question.ask", {"text": "还能提问吗"}),
        ("question.vote", {"id": qid}),
    ):
        e = await err(v, action, data)
        assert e["code"] == "chat_closed", (action, e)
    # the host still can (a closing word), and chooses to reopen the room
    await ok(console, "chat.send", {"text": "感谢观看"})
    r = await host.post(f"/api/broadcasts/{bid}/chat/mod.after_end", {"open": True})
    assert (await r.json()) == {"open_after_end": True}
    ev = await v.wait_for(_is("chat.settings", lambda e: "open_after_end" in e["data"]))
    assert ev["data"] == {"open_after_end": True}
    await ok(v, "chat.send", {"text": "谢谢"})
    await wait_message(v, lambda m: m["text"] == "谢谢")
    assert (await ok(v, "question.vote", {"id": qid}))["votes"] == 1
    r = await host.post(f"/api/broadcasts/{bid}/chat/mod.after_end", {"open": "yes"})
    assert r.status == 422
    await ok(console, "mod.after_end", {"open": False})
    assert (await err(v, "chat.send", {"text": "again"}))["code"] == "chat_closed"
    snap = (await viewers.open(client, bid)).of_type("snapshot")[0]["data"]
    assert snap["chat_settings"] == {"slow_mode": 0, "open_after_end": False}


async def test_the_author_alone_is_told_when_a_moderator_rejects_their_question(
    client, client_b, bid, viewers
):
    console = await connect(client, bid, host=True)
    author = await viewers.open(client_b, bid, name="小赵")
    other = await viewers.open(client, bid)
    qid = (await err(author, "question.ask", {"text": "加我微信详聊"}))["question_id"]
    await ok(console, "review.decide", {"kind": "question", "id": qid, "approve": False})
    told = await author.wait_for(_is("error", lambda e: e["data"]["code"] == "rejected"))
    assert told["data"]["item"] == "question" and told["data"]["id"] == qid
    assert "seq" not in told
    # a fence: a later event reaches the other viewer, and no rejection came before it
    await ok(console, "chat.send", {"text": "fence"})
    await wait_message(other, lambda m: m["text"] == "fence")
    assert not [e for e in other.of_type("error") if e["data"]["code"] == "rejected"]


async def test_an_answered_question_can_be_opened_again(client, bid, viewers):
    console = await connect(client, bid, host=True)
    v = await viewers.open(client, bid)
    qid = (await err(v, "question.ask", {"text": "几点下班？"}))["question_id"]
    await ok(console, "review.decide", {"kind": "question", "id": qid, "approve": True})
    answered = await ok(console, "question.answer", {"id": qid, "answer": "六点"})
    assert answered["status"] == "answered" and answered["answered_at"]
    reopened = await ok(console, "question.answer", {"id": qid, "answered": False})
    assert reopened["status"] == "open" and reopened["answered_at"] is None
    ev = await v.wait_for(_is("question.updated", lambda e: e["data"]["status"] == "open"))
    assert not ev["data"]["answer"]
