"""The per-opening FAQ: only approved, answered, visible questions about that opening, without
who asked; the opening's own page shows them in its HTML, with no script."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.chat_helpers import Viewers, err, ok
from tests.helpers import Host, connect
from tests.openings_helpers import make_opening


async def _answer(host: Host, bid: str, qid: str, text: str) -> None:
    r = await host.post(f"/api/broadcasts/{bid}/chat/question.answer", {"id": qid, "answer": text})
    assert r.status == 200, await r.text()


async def _faq(client: TestClient, bid: str, oid: str) -> dict[str, Any]:
    r = await client.get(f"/api/broadcasts/{bid}/openings/{oid}/faq")
    assert r.status == 200, await r.text()
    return await r.json()


@pytest.mark.app_settings(chat_review_questions=False)
async def test_only_answered_visible_questions_of_the_opening(
    client: TestClient, client_b: TestClient, host: Host, bid: str, viewers: Viewers
) -> None:
    a = await make_opening(host, bid, title="井下电工")
    b = await make_opening(host, bid, title="护士")
    console = await connect(client, bid, host=True)
    v = await viewers.open(client_b, bid, name="小王")
    shown = await ok(v, "question.ask", {"text": "井下补贴多少？", "opening_id": a["id"]})
    hidden = await ok(v, "question.ask", {"text": "加班多吗？", "opening_id": a["id"]})
    open_q = await ok(v, "question.ask", {"text": "几点上班？", "opening_id": a["id"]})
    other = await ok(v, "question.ask", {"text": "要护士证吗？", "opening_id": b["id"]})
    loose = await ok(v, "question.ask", {"text": "下一场什么时候？"})
    await _answer(host, bid, shown["id"], "每月800元")
    await _answer(host, bid, hidden["id"], "偶尔")
    await _answer(host, bid, other["id"], "需要")
    await _answer(host, bid, loose["id"], "下周")
    await ok(console, "question.hide", {"id": hidden["id"]})

    body = await _faq(client_b, bid, a["id"])  # anyone, on either process
    assert body["opening_id"] == a["id"]
    assert [q["id"] for q in body["questions"]] == [shown["id"]]
    q = body["questions"][0]
    assert set(q) == {"id", "text", "answer", "answered_at", "votes"}  # no name, no viewer id
    assert (q["text"], q["answer"]) == ("井下补贴多少？", "每月800元")
    assert [q["id"] for q in (await _faq(client, bid, b["id"]))["questions"]] == [other["id"]]

    r = await client_b.get(f"/b/{bid}/o/{a['id']}")
    assert r.status == 200
    html = await r.text()
    assert "每月800元" in html and "井下补贴多少？" in html
    for absent in ("偶尔", "加班多吗", "几点上班", "需要", "下周", "小王"):
        assert absent not in html, absent
    assert "<script" not in html.split("</main>")[0]  # the content needs no script
    assert f'href="/b/{bid}' in html  # the way to apply

    # Restoring the hidden one brings it in; the unanswered one stays out.
    await ok(console, "question.restore", {"id": hidden["id"]})
    ids = [q["id"] for q in (await _faq(client, bid, a["id"]))["questions"]]
    assert sorted(ids) == sorted([shown["id"], hidden["id"]]) and open_q["id"] not in ids


async def test_held_questions_never_show(
    client: TestClient, host: Host, bid: str, viewers: Viewers
) -> None:
    a = await make_opening(host, bid)
    v = await viewers.open(client, bid)
    held = await err(v, "question.ask", {"text": "包吃住吗？", "opening_id": a["id"]})
    assert held["code"] == "held"
    assert (await _faq(client, bid, a["id"]))["questions"] == []
    assert "包吃住吗" not in await (await client.get(f"/b/{bid}/o/{a['id']}")).text()


async def test_unpublished_or_unknown_openings_are_not_found(
    client: TestClient, host: Host, bid: str
) -> None:
    draft = await make_opening(host, bid, status="draft")
    assert (await client.get(f"/api/broadcasts/{bid}/openings/{draft['id']}/faq")).status == 404
    assert (await client.get(f"/b/{bid}/o/{draft['id']}")).status == 404
    assert (await client.get(f"/b/{bid}/o/nosuch23")).status == 404
    assert (await client.get(f"/api/broadcasts/nosuch23/openings/{draft['id']}/faq")).status == 404
    shown = await make_opening(host, bid, title="仓库管理员")
    r = await client.get(f"/b/{bid}/o/{shown['id']}")
    assert r.status == 200 and "仓库管理员" in await r.text()
