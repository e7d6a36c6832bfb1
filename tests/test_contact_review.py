"""The contact/link review sees through the usual disguises (Chinese numerals, lookalike letters,
spacing, hearts and plus signs, bracketed or spelt-out dots) and leaves ordinary job talk with
numbers alone; on a real app, such messages wait for a moderator."""

from __future__ import annotations

import pytest
from jobcast.chat.filters import hold_reason

from tests.chat_helpers import err, ok
from tests.helpers import connect

DISGUISED = [
    ("一三八零零一三八零零零", "phone"),
    ("壹叁捌零零壹叁捌零零零", "phone"),
    ("幺三八 零零幺三 八零零零", "phone"),
    ("l38OOl38OOO", "phone"),
    ("138 oo13 8ooo", "phone"),
    ("电话 l3800l38000 找我", "phone"),
    ("加威❤", "contact"),
    ("➕V", "contact"),
    ("薇❤", "contact"),
    ("+v 了解一下", "contact"),
    ("evil[.]com", "link"),
    ("evil(.)cn", "link"),
    ("evil【.】com", "link"),
    ("e v i l . c o m", "link"),
    ("evil dot com", "link"),
    ("evil [dot] com", "link"),
    ("evil.co", "link"),
    ("evil.co/jobs", "link"),
]
ORDINARY = [
    "3年经验",
    "五险一金",
    "五险一金，双休，年终奖",
    "月薪8000-12000元",
    "薪资4k-6k",
    "招聘三十人，要求一年以上经验",
    "我今年二十三岁",
    "第一轮面试在三月八日",
    "一二年毕业的可以吗",
    "2026届毕业生",
    "招聘人数：20人",
    "会Vue和C++吗",
    "good 2024 google",
    "Is it ok. Come here",
    "e.g. co-op",
    "开心",
    "这个岗位要求本科吗？",
    "鸡西市鸡冠区中心大街8号",
]


@pytest.mark.parametrize(("text", "reason"), DISGUISED)
def test_disguised_contacts_are_recognised(text, reason):
    assert hold_reason(text) == reason


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_sentences_with_numbers_pass(text):
    assert hold_reason(text) is None


@pytest.mark.app_settings(chat_burst=100, chat_rate=100.0, ws_burst=200, ws_messages_per_second=200)
async def test_disguised_contacts_wait_for_a_moderator(client, bid, viewers):
    console = await connect(client, bid, host=True)
    v = await viewers.open(client, bid)
    for text, reason in DISGUISED:
        e = await err(v, "chat.send", {"text": text})
        assert e["code"] == "held" and e["reason"] == reason, (text, e)
    held = await console.wait_count("review.added", len(DISGUISED))
    assert [h["data"]["text"] for h in held] == [t for t, _ in DISGUISED]
    for text in ORDINARY:
        assert (await ok(v, "chat.send", {"text": text}))["text"] == text
