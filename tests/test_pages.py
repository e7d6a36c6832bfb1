"""Pages: languages and the message catalogue, the viewer and host pages, QR codes, CSP."""

from __future__ import annotations

import gzip
import re

from jobcast.web.pages import i18n
from jobcast.web.pages.views import STATIC

from tests.helpers import login


def test_every_msgid_is_translated_in_both_languages() -> None:
    found = i18n.extract()
    assert len(found) > 100  # templates and scripts were both read
    assert "Apply" in found and "You are in slow mode, %(s)s s left" in found
    for lang in i18n.LANGS:
        assert i18n.missing(lang, found) == [], lang


def test_the_catalogues_hold_exactly_the_texts_the_code_uses() -> None:
    """`i18n update` rewrites both catalogues from what it extracts: a text the server picks
    from a table at run time (a notice's message, the report's funnel steps) is marked with
    N_ so that it is extracted, kept and checked like the rest."""
    from jobcast.web.api.report import FUNNEL_LABELS
    from jobcast.web.runtime import notice_text

    found = i18n.extract()
    server = i18n.extract("py")
    assert notice_text.msgids() <= set(server)
    assert set(FUNNEL_LABELS.values()) <= set(server)
    assert "The broadcast starts in 10 minutes" in server  # a literal gettext in web/ too
    assert all(p.startswith("web/") for places in found.values() for p in places)
    for lang in i18n.LANGS:
        assert {m.id for m in i18n.read_catalog(lang) if m.id} == set(found), lang


def test_js_dictionary_has_script_strings_only_and_translates() -> None:
    import orjson

    zh = orjson.loads(i18n.js_dictionary("zh-CN"))
    en = orjson.loads(i18n.js_dictionary("en"))
    assert zh["Application sent"] == "投递成功"
    assert "Application sent" not in en  # the same text as the msgid: the script falls back
    assert "Skip to content" not in zh  # a template-only string is not shipped to scripts
    viewer = orjson.loads(i18n.js_dictionary("zh-CN", ("common.js", "viewer.js")))
    assert viewer["Application sent"] == "投递成功"
    assert "Time out 10 min" not in viewer  # a console string stays out of the viewer page


def test_negotiate_language() -> None:
    assert i18n.negotiate(None) == "zh-CN"
    assert i18n.negotiate("en-US,en;q=0.9") == "en"
    assert i18n.negotiate("fr-FR, en;q=0.5, zh-CN;q=0.8") == "zh-CN"
    assert i18n.negotiate("de, fr") == "zh-CN"
    assert i18n.negotiate("zh-TW") == "zh-CN"
    assert i18n.negotiate("en;q=0, zh;q=0.1") == "zh-CN"
    assert i18n.negotiate("zh-CN", cookie="en") == "en"
    assert i18n.negotiate("en", cookie="xx") == "en"


async def test_page_language_follows_browser_and_switch(client) -> None:
    r = await client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    html = await r.text()
    assert '<html lang="en">' in html and "Live job fairs" in html
    assert r.headers["Content-Language"] == "en"
    r = await client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "直播招聘会" in await r.text()
    r = await client.get("/lang/en?next=/host", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/host"
    assert r.cookies[i18n.LANG_COOKIE].value == "en"
    r = await client.get("/", headers={"Accept-Language": "zh-CN"})
    assert "Live job fairs" in await r.text()  # the cookie wins over the browser
    r = await client.get("/lang/zh-CN?next=//evil.example/", allow_redirects=False)
    assert r.headers["Location"] == "/"


async def test_viewer_page_and_qr(client, host) -> None:
    bid = await host.create_broadcast("春季招聘会 <b>x</b>")
    r = await client.get(f"/b/{bid}", headers={"Accept-Language": "zh-CN"})
    html = await r.text()
    assert r.status == 200
    assert "春季招聘会 &lt;b&gt;x&lt;/b&gt;" in html  # escaped
    assert "尚未开播" in html and 'data-bid="' + bid + '"' in html
    assert re.search(r'data-csrf="[0-9a-f]{32}"', html)
    _no_inline_code(html)
    r = await client.get(f"/b/{bid}/qr.svg")
    assert r.status == 200 and r.content_type == "image/svg+xml"
    svg = await r.text()
    assert svg.startswith("<svg") and "<path" in svg
    r = await client.get(f"/b/{bid}/screen")
    assert f"/b/{bid}/qr.svg" in await r.text()
    assert (await client.get("/b/nosuch/qr.svg")).status == 404
    assert (await client.get("/b/nosuch")).status == 404


async def test_host_pages(client) -> None:
    r = await client.get("/host", headers={"Accept-Language": "en"})
    html = await r.text()
    assert 'id="login-form"' in html and "Host login" in html
    assert (await client.get("/host/")).status == 200  # the address the CLI prints
    host = await login(client)
    bid = await host.create_broadcast("Autumn fair")
    html = await (await client.get("/host", headers={"Accept-Language": "en"})).text()
    assert 'id="create-form"' in html and host.csrf in html
    _no_inline_code(html)
    html = await (await client.get(f"/host/b/{bid}", headers={"Accept-Language": "en"})).text()
    assert "Autumn fair" in html and f"/b/{bid}/qr.svg" in html and f"/whip/{bid}" in html
    _no_inline_code(html)
    assert (await client.get("/host/b/nosuch")).status == 404


async def test_static_files_are_versioned_gzipped_and_cached(client) -> None:
    html = await (await client.get("/")).text()
    m = re.search(r"/static/app\.css\?v=([0-9a-f]{12})", html)
    assert m
    raw = (STATIC / "app.css").read_bytes()
    r = await client.get(
        f"/static/app.css?v={m.group(1)}",
        headers={"Accept-Encoding": "gzip"},
        auto_decompress=False,
    )
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/css")
    assert r.headers["Content-Encoding"] == "gzip" and "immutable" in r.headers["Cache-Control"]
    body = await r.read()
    assert gzip.decompress(body) == raw and len(body) < len(raw) / 2
    r = await client.get("/static/app.css", headers={"Accept-Encoding": "identity"})
    assert await r.read() == raw and r.headers["Cache-Control"] == "no-cache"
    r = await client.get("/static/app.css", headers={"If-None-Match": r.headers["ETag"]})
    assert r.status == 304
    assert (await client.get("/static/nope.js")).status == 404
    assert (await client.get("/static/..%2Fpages.py")).status == 404


def _no_inline_code(html: str) -> None:
    """The CSP forbids inline scripts and styles: every script has a src, no style attributes."""
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    assert "<style" not in html
    assert not re.search(r"\sstyle=", html)
    assert not re.search(r"\son[a-z]+=", html)


async def test_viewer_page_while_redis_is_down_is_a_page(own_redis, client, host) -> None:
    bid = await host.create_broadcast("Fair")
    own_redis.kill()
    r = await client.get(f"/b/{bid}", headers={"Accept-Language": "zh-CN"})
    html = await r.text()
    assert r.status == 503 and r.content_type == "text/html"
    assert "服务繁忙" in html and 'http-equiv="refresh"' in html
    assert r.headers["Retry-After"] == "5"
    own_redis.start()
    r = await client.get(f"/b/{bid}")
    assert r.status == 200
