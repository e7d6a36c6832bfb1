"""Display names on a real app and Redis: the same contact and blocked-word rules as messages,
staff names reserved by confusable skeleton, invisible names refused; from `set_name` and from
the socket's `name` query parameter alike."""

from __future__ import annotations

import pytest
from jobcast.chat.names import check_shape, clean_name
from jobcast.core.errors import Invalid

from tests.chat_helpers import err, messages, ok, wait_message
from tests.helpers import connect

# Room for the many names each test tries; the host is the account "host1".
pytestmark = pytest.mark.app_settings(ws_burst=200, ws_messages_per_second=200)

CONTACTS = [
    "加微信 vx13800138000",
    "apply at evil.example",
    "一三八零零一三八零零零",
    "l38OOl38OOO",
    "薇❤ abc123",
    "QQ 12345678",
    "evil dot com",
]
RESERVED = [
    "主持人 demo",
    "主持⼈",  # a Kangxi radical for 人
    "官方客服",
    "管理员小王",
    "Ноst",  # Cyrillic Н and о
    "H0ST",
    "ｍｏｄｅｒａｔｏｒ",
    "rnoderator",
    "admin123",
    "h.o.s.t",
    "Official",
    "ｈｏｓｔ１",  # the host's account name, full width
    "HOSTl",
]
INVISIBLE = [
    "\u3164",  # Hangul filler
    "\u2800\u2800",  # braille blanks
    "\u061c",  # Arabic letter mark
    "\U000e0041\U000e0042",  # tag characters
    "\u00ad",  # soft hyphen
    "\u034f",  # combining grapheme joiner
    "\u200b\u2060\ufeff",
    "\u115f\u1160\uffa0",
    "\u0301\u0301",  # marks on nothing
    "   ",
]


async def test_set_name_refuses_contacts_staff_lookalikes_and_invisible_names(client, bid, viewers):
    v = await viewers.open(client, bid)
    for name in CONTACTS:
        e = await err(v, "set_name", {"name": name})
        assert e["code"] == "name_contact", (name, e)
        assert e["reason"] in ("phone", "contact", "link") and "name" in e["fields"]
    for name in RESERVED:
        e = await err(v, "set_name", {"name": name})
        assert e["code"] == "name_reserved", (name, e)
    for name in INVISIBLE:
        e = await err(v, "set_name", {"name": name})
        assert e["code"] == "name_invalid", (repr(name), e)
    e = await err(v, "set_name", {"name": "张" + "\u0301" * 5})
    assert e["code"] == "name_invalid"
    e = await err(v, "set_name", {"name": "名" * 25})
    assert e["code"] == "name_invalid"
    e = await err(v, "set_name", {"name": 42})
    assert e["code"] == "invalid"
    # nothing was taken: the viewer still posts under the default name
    sent = await ok(v, "chat.send", {"text": "你好"})
    assert sent["name"].startswith("观众")


async def test_ordinary_names_are_kept_as_typed_less_invisible_characters(client, bid, viewers):
    v = await viewers.open(client, bid)
    for name, shown in (
        ("小王", "小王"),
        ("ghost", "ghost"),  # "host" inside a word is not a role word
        ("管理学院 李雷", "管理学院 李雷"),
        ("Zoë", "Zoë"),
        ("李\u00ad雷\u200b", "李雷"),
        ("王\u3000\u3000芳", "王 芳"),
        ("2026届 小张", "2026届 小张"),
        ("\U0001f600 Ana", "\U0001f600 Ana"),
    ):
        assert (await ok(v, "set_name", {"name": name}))["name"] == shown, name
    sent = await ok(v, "chat.send", {"text": "你好"})
    assert sent["name"] == "\U0001f600 Ana"


async def test_blocked_words_apply_to_names(client, host, bid, viewers):
    r = await host.post(f"/api/broadcasts/{bid}/chat/mod.words", {"add": ["骗子"]})
    assert r.status == 200, await r.text()
    v = await viewers.open(client, bid)
    e = await err(v, "set_name", {"name": "大 骗 子"})
    assert e["code"] == "blocked_word" and e["word"] == "骗子"


async def test_names_staff_choose_are_reserved_for_them(client, client_b, bid, viewers):
    console = await connect(client, bid, host=True)
    # staff may use role words and then own the name they chose
    assert (await ok(console, "set_name", {"name": "主持人 小王老师"}))["name"] == "主持人 小王老师"
    assert (await ok(console, "set_name", {"name": "小王老师"}))["name"] == "小王老师"
    v = await viewers.open(client, bid)
    for name in ("小王老师", "小王 老师", "小王·老师"):
        e = await err(v, "set_name", {"name": name})
        assert e["code"] == "name_reserved", name
    # staff names hold on every process
    other = await viewers.open(client_b, bid)
    assert (await err(other, "set_name", {"name": "小王老师"}))["code"] == "name_reserved"
    # a staff member may still pick a contact-free, visible name only
    assert (await err(console, "set_name", {"name": "\u3164"}))["code"] == "name_invalid"
    e = await err(console, "set_name", {"name": "vx13800138000"})
    assert e["code"] == "name_contact"


async def test_name_query_parameter_passes_the_same_rules(client, bid, viewers):
    for name in ("主持人 demo", "加微信 vx13800138000", "\u3164", "Ноst"):
        v = await viewers.open(client, bid, name=name)
        hello = v.of_type("hello")[0]["data"]
        assert hello["chosen"] is False and hello["name"].startswith("观众 "), (name, hello)
        sent = await ok(v, "chat.send", {"text": "大家好"})
        assert sent["name"] == hello["name"], (name, sent)  # the page shows the name used
    watcher = await viewers.open(client, bid)
    good = await viewers.open(client, bid, name="小\u200b李")
    assert good.of_type("hello")[0]["data"]["name"] == "小李"
    sent = await ok(good, "chat.send", {"text": "请问"})
    m = await wait_message(watcher, lambda m: m["text"] == "请问")
    assert m["name"] == "小李" == sent["name"]
    assert all(not x["name"].startswith("主持人") for x in messages(watcher))


def test_clean_name_and_shape_without_redis():
    assert clean_name(" 李\u2800\u00ad雷 ") == "李雷"
    assert clean_name("a\u2003\u2003b") == "a b"
    for raw in INVISIBLE:
        with pytest.raises(Invalid) as e:
            check_shape(raw)
        assert e.value.code == "name_invalid"


async def test_default_names_are_readable_stable_and_in_the_viewers_language(client, bid, viewers):
    import re

    jar = viewers.jar()
    zh = await viewers.open(client, bid, jar=jar)
    name = zh.of_type("hello")[0]["data"]["name"]
    assert re.fullmatch(r"观众 \d{4}", name), name
    assert (await ok(zh, "chat.send", {"text": "你好"}))["name"] == name
    again = await viewers.open(client, bid, jar=jar)  # a second socket of the same viewer
    assert again.of_type("hello")[0]["data"]["name"] == name
    en = await viewers.open(client, bid, headers={"Accept-Language": "en-US,en;q=0.9"})
    en_name = en.of_type("hello")[0]["data"]["name"]
    assert re.fullmatch(r"Viewer \d{4}", en_name), en_name
    assert (await ok(en, "chat.send", {"text": "hello"}))["name"] == en_name
