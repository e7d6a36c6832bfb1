"""The CSV import template: Chinese headers import reads, UTF-8 with a BOM or GBK, a download
with a Chinese file name, and it imports as it is (the host fills it in from its examples)."""

from __future__ import annotations

from datetime import date
from urllib.parse import unquote

from jobcast.openings import csvio

from tests.test_openings_csv import _import, _listing

HEADERS = [
    "岗位名称",
    "单位名称",
    "工作地点",
    "工作地址",
    "薪资下限",
    "薪资上限",
    "招聘人数",
    "学历要求",
    "专业要求",
    "工作经验",
    "岗位职责",
    "福利待遇",
    "截止日期",
    "标签",
]


async def _template(host, bid: str, encoding: str | None):
    query = f"?encoding={encoding}" if encoding else ""
    return await host.get(f"/api/broadcasts/{bid}/openings/template.csv{query}")


async def test_both_templates_have_the_chinese_headers_and_download_as_files(host, bid):
    texts = {}
    for encoding, name in (("utf-8", "岗位导入模板-UTF-8.csv"), ("gbk", "岗位导入模板-Excel.csv")):
        r = await _template(host, bid, encoding)
        assert r.status == 200, await r.text()
        assert r.content_type == "text/csv" and r.charset == encoding
        disposition = r.headers["Content-Disposition"]
        assert disposition.startswith('attachment; filename="jobcast-openings-template-')
        assert disposition.split("filename=", 1)[1].split(";")[0].isascii()
        star = disposition.split("filename*=", 1)[1]
        assert star.startswith("UTF-8''") and unquote(star[len("UTF-8''") :]) == name
        body = await r.read()
        if encoding == "gbk":
            assert not body.startswith(b"\xef\xbb\xbf")
            text = body.decode("gbk")
        else:
            assert body.startswith(b"\xef\xbb\xbf")
            text = body.decode("utf-8-sig")
        assert text.split("\r\n", 1)[0].split(",") == HEADERS
        texts[encoding] = text
    assert texts["utf-8"] == texts["gbk"]  # the same table in both
    # without ?encoding it is UTF-8; utf8 is understood; other encodings are refused
    assert (await (await _template(host, bid, None)).read()).startswith(b"\xef\xbb\xbf")
    assert (await _template(host, bid, "UTF8")).charset == "utf-8"
    r = await _template(host, bid, "latin-1")
    assert r.status == 422 and "encoding" in (await r.json())["error"]["fields"]


async def test_the_template_imports_as_it_is(host, bid):
    for encoding in ("utf-8", "gbk"):
        body = await (await _template(host, bid, encoding)).read()
        dry = await (await _import(host, bid, body, "?dry_run=1")).json()
        assert dry["ok"] is True and dry["ignored_columns"] == [], dry
        assert dry["encoding"] == ("utf-8-sig" if encoding == "utf-8" else "gbk")
        # every column is one the import reads, named as the template names it
        assert set(HEADERS) <= set(dry["columns"].values())
    before = len(await _listing(host, bid))
    r = await _import(host, bid, body, "?status=draft")
    assert r.status == 201, await r.text()
    made = (await _listing(host, bid))[before:]
    assert len(made) == len(csvio._TEMPLATE_ROWS) == 2
    assert {o["status"] for o in made} == {"draft"}
    first = made[0]
    assert first["title"] == "数控车床操作工" and first["employer"]["name"]
    assert first["salary_min"] < first["salary_max"]
    assert first["education"] == "vocational" and len(first["majors"]) == 2
    assert "\n" in first["description"]  # a cell over two lines survives Excel's quoting
    assert first["deadline"]  # counted from today, so open to applications


def test_the_template_deadlines_follow_the_day_it_is_made():
    text = csvio.template_openings("utf-8", date(2026, 3, 1)).decode("utf-8-sig")
    assert "2026-03-31" in text and "2026-04-15" in text
    assert csvio.template_openings("gbk", date(2026, 3, 1)).decode("gbk") == text


async def test_the_template_is_for_hosts_of_the_broadcast(
    client_b, host, bid, moderator, other_org_host
):
    path = f"/api/broadcasts/{bid}/openings/template.csv"
    assert (await client_b.get(path)).status in (401, 403)
    assert (await moderator.get(path)).status == 403
    assert (await other_org_host.get(path)).status == 404
    assert (await host.get("/api/broadcasts/nosuchbid/openings/template.csv")).status == 404
