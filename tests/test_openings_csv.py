"""CSV import and export: GBK and UTF-8-with-BOM files import identically, a bad row blocks the
whole import, a dry run reports row by row, the export round-trips and opens in Excel."""

from __future__ import annotations

import aiohttp
import pytest
from jobcast.openings import csvio
from jobcast.openings.models import deadline_end_ms

from tests.helpers import connect
from tests.openings_helpers import DATA, make_opening

COMPARED = (
    "title",
    "employer",
    "city",
    "address",
    "salary_min",
    "salary_max",
    "headcount",
    "education",
    "majors",
    "experience",
    "description",
    "benefits",
    "deadline",
    "deadline_ms",
    "tags",
    "status",
)


def _strip(items: list[dict]) -> list[dict]:
    return [{k: o[k] for k in COMPARED} for o in items]


async def _import(host, bid: str, data: bytes, query: str = "", multipart: bool = False):
    path = f"/api/broadcasts/{bid}/openings/import{query}"
    if multipart:
        form = aiohttp.FormData()
        form.add_field("file", data, filename="岗位.csv", content_type="text/csv")
        return await host.client.post(path, data=form, headers={"X-CSRF-Token": host.csrf})
    return await host.client.post(
        path, data=data, headers={"X-CSRF-Token": host.csrf, "Content-Type": "text/csv"}
    )


async def _listing(host, bid: str) -> list[dict]:
    r = await host.get(f"/api/broadcasts/{bid}/openings")
    return (await r.json())["openings"]


async def test_gbk_and_utf8_bom_import_identically(host):
    bid_utf8 = await host.create_broadcast("utf8")
    bid_gbk = await host.create_broadcast("gbk")
    utf8 = (DATA / "openings_utf8_bom.csv").read_bytes()
    gbk = (DATA / "openings_gbk.csv").read_bytes()
    assert utf8.startswith(b"\xef\xbb\xbf") and not gbk.startswith(b"\xef\xbb\xbf")
    r1 = await _import(host, bid_utf8, utf8)
    assert r1.status == 201, await r1.text()
    r2 = await _import(host, bid_gbk, gbk, multipart=True)
    assert r2.status == 201, await r2.text()
    rep1, rep2 = await r1.json(), await r2.json()
    assert rep1["encoding"] == "utf-8-sig" and rep2["encoding"] == "gbk"
    assert len(rep1["created"]) == len(rep2["created"]) == 5
    got1, got2 = await _listing(host, bid_utf8), await _listing(host, bid_gbk)
    assert _strip(got1) == _strip(got2)
    first = got1[0]
    assert first["title"] == "煤矿机电技术员"
    # An imported card carries the whole employer shape; no record is linked or checked yet.
    assert first["employer"] == {
        "id": "",
        "name": "鸡西矿业（集团）有限责任公司",
        "verified": False,
        "verified_note": "",
        "verified_on": "",
    }
    assert (first["salary_min"], first["salary_max"], first["headcount"]) == (5000, 8000, 20)
    assert first["education"] == "associate"
    assert first["majors"] == ["机电一体化", "电气自动化"]
    assert "\n" in first["description"]
    assert got1[2]["deadline"] == "2026-09-15"  # written 2026/9/15 in the file
    assert got1[3]["education"] == "high_school" and got1[3]["majors"] == []
    assert [o["status"] for o in got1] == ["published"] * 5


async def test_a_bad_row_blocks_the_import_and_the_dry_run_names_it(host, bid):
    bad = (DATA / "openings_bad_row.csv").read_bytes()
    r = await _import(host, bid, bad, "?dry_run=1")
    assert r.status == 200, await r.text()
    rep = await r.json()
    assert rep["dry_run"] is True and rep["ok"] is False
    assert (rep["total"], rep["valid"], rep["invalid"]) == (5, 4, 1)
    bad_rows = [row for row in rep["rows"] if not row["ok"]]
    assert bad_rows == [
        {
            "row": 4,
            "title": "护士",
            "ok": False,
            "errors": {"salary_max": bad_rows[0]["errors"]["salary_max"]},
            # what the preview shows of the row, as the file has it
            "employer": "鸡西市人民医院",
            "city": "鸡西市",
            "salary": "9000-6500",
            "deadline": "2026-09-15",
            "deadline_ms": deadline_end_ms("2026-09-15"),
            "status": "published",
        }
    ]
    good = rep["rows"][0]
    assert (good["employer"], good["salary"], good["deadline"]) == (
        "鸡西矿业（集团）有限责任公司",
        "5000-8000",
        "2026-08-31",
    )
    assert good["deadline_ms"] == deadline_end_ms("2026-08-31")
    # each error's column as the file names it, so that the page can say which column
    header = bad.decode("utf-8-sig").splitlines()[0].split(",")
    assert rep["columns"]["salary_max"] in header
    assert rep["columns"]["city"] in header and rep["columns"]["tags"] == "标签"
    assert await _listing(host, bid) == []  # a dry run stores nothing
    r = await _import(host, bid, bad)
    assert r.status == 422
    err = (await r.json())["error"]
    assert err["code"] == "import_invalid" and "file" in err["fields"]
    assert err["report"]["rows"][2]["errors"]["salary_max"]
    assert await _listing(host, bid) == []  # all rows or none
    # the good file in a dry run: every row ok
    r = await _import(host, bid, (DATA / "openings_gbk.csv").read_bytes(), "?dry_run=1")
    rep = await r.json()
    assert rep["ok"] is True and all(row["ok"] for row in rep["rows"])


async def test_export_round_trips_and_keeps_chinese_for_excel(host, bid):
    await _import(host, bid, (DATA / "openings_utf8_bom.csv").read_bytes())
    await make_opening(
        host,
        bid,
        title="=HYPERLINK(1)",
        description="- 第一条\n- 第二条",
        employer={"name": "@鸡西单位", "verified": True},
        status="draft",
    )
    r = await host.get(f"/api/broadcasts/{bid}/openings.csv")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in r.headers["Content-Disposition"]
    body = await r.read()
    assert body.startswith(b"\xef\xbb\xbf")
    text = body.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("岗位编号,岗位名称,单位名称")
    assert "'=HYPERLINK(1)" in text and "'@鸡西单位" in text  # no formula runs in Excel
    before = await _listing(host, bid)
    bid2 = await host.create_broadcast("copy")
    r = await _import(host, bid2, body)
    assert r.status == 201, await r.text()
    after = await _listing(host, bid2)
    assert _strip(after) == _strip(before)
    assert after[-1]["title"] == "=HYPERLINK(1)" and after[-1]["status"] == "draft"
    # The host's own verified mark travels through the file; no record's check does.
    assert after[-1]["employer"] == {
        "id": "",
        "name": "@鸡西单位",
        "verified": True,
        "verified_note": "",
        "verified_on": "",
    }


async def test_import_publishes_one_event_for_viewers(client_b, host, bid):
    v = await connect(client_b, bid)
    r = await _import(host, bid, (DATA / "openings_gbk.csv").read_bytes())
    assert r.status == 201
    ev = await v.wait_for("openings.added")
    assert [o["title"] for o in ev["data"]["openings"]][:1] == ["煤矿机电技术员"]
    lineup = await v.wait_for("lineup.updated")
    assert len(lineup["data"]["order"]) == 5


@pytest.mark.app_settings(max_upload_bytes=2000)
async def test_upload_limits_and_bad_files(client_b, host, bid):
    big = (DATA / "openings_utf8_bom.csv").read_bytes() * 3
    r = await _import(host, bid, big)
    assert r.status == 413
    r = await _import(host, bid, big, multipart=True)
    assert r.status == 413
    r = await _import(host, bid, "名称,地点\n一,二\n".encode())
    assert r.status == 422
    assert "columns" in (await r.json())["error"]["fields"]
    r = await _import(host, bid, b"\xff\x00\xfe" * 10)
    assert r.status == 422
    r = await client_b.post(
        f"/api/broadcasts/{bid}/openings/import", data=b"x", headers={"Content-Type": "text/csv"}
    )
    assert r.status in (401, 403)


def test_header_and_cell_forms():
    data = (
        "岗位名称*,企业名称,城市,薪资范围,学历,状态\n"
        "司机,鸡西运输公司,鸡西,4k-6k,初中,草稿\n"
        "会计,鸡西财务公司,鸡西,3500～5000元/月,本科以上,\n"
    ).encode("gbk")
    rep = csvio.parse_openings(data)
    assert rep.errors == 0, rep.rows
    assert [(v["salary_min"], v["salary_max"]) for v in rep.valid] == [(4000, 6000), (3500, 5000)]
    assert [v["education"] for v in rep.valid] == ["junior_high", "bachelor"]
    assert [v["status"] for v in rep.valid] == ["draft", "published"]
    tab = "岗位名称\t单位名称\t工作地点\t薪资下限\t薪资上限\n司机\t单位\t鸡西\t1\t2\n"
    rep = csvio.parse_openings(b"\xff\xfe" + tab.encode("utf-16-le"))
    assert rep.encoding == "utf-16" and rep.valid[0]["title"] == "司机"


async def test_status_draft_makes_every_row_a_draft_whatever_the_file_says(host, bid):
    data = (
        "岗位名称,单位名称,工作地点,薪资下限,薪资上限,状态\n"
        "司机,鸡西运输公司,鸡西市,4000,6000,发布\n"
        "会计,鸡西财务公司,鸡西市,3500,5000,已关闭\n"
        "电工,鸡西矿业,鸡西市,5000,8000,\n"
    ).encode("gbk")
    r = await _import(host, bid, data, "?dry_run=1&status=draft")
    assert [row["status"] for row in (await r.json())["rows"]] == ["draft"] * 3
    r = await _import(host, bid, data, "?status=draft")
    assert r.status == 201, await r.text()
    assert [o["status"] for o in await _listing(host, bid)] == ["draft"] * 3
    # without ?status the file's column decides, and an empty cell is published
    bid2 = await host.create_broadcast("as the file says")
    r = await _import(host, bid2, data)
    assert r.status == 201, await r.text()
    assert [o["status"] for o in await _listing(host, bid2)] == ["published", "closed", "published"]
    r = await _import(host, bid2, data, "?status=live")
    assert r.status == 422 and "status" in (await r.json())["error"]["fields"]


SALARY_REQUIRED = "enter a salary range; negotiable is not accepted"


async def test_a_salary_left_out_or_negotiable_is_refused_as_required(host, bid):
    data = (
        "岗位名称,单位名称,工作地点,薪资下限,薪资上限\n"
        "司机,鸡西运输公司,鸡西市,,\n"
        "会计,鸡西财务公司,鸡西市,面议,面议\n"
        "电工,鸡西矿业,鸡西市,5000,\n"
        "焊工,鸡西矿业,鸡西市,4000,5000\n"
    ).encode("gbk")
    r = await _import(host, bid, data, "?dry_run=1")
    rep = await r.json()
    errors = [row.get("errors") for row in rep["rows"]]
    # once per row: the range's first column, as the file names it
    assert errors == [
        {"salary_min": SALARY_REQUIRED},
        {"salary_min": SALARY_REQUIRED},
        {"salary_max": SALARY_REQUIRED},
        None,
    ]
    assert (rep["columns"]["salary_min"], rep["columns"]["salary_max"]) == ("薪资下限", "薪资上限")
    r = await _import(host, bid, data)
    assert r.status == 422 and (await r.json())["error"]["code"] == "import_invalid"
    # one salary column: its own name, whatever it says instead of a range
    one = "职位名称,公司名称,城市,薪资待遇\n司机,鸡西运输公司,鸡西市,薪资面议\n会计,鸡西,鸡西市,x\n"
    rep = await (await _import(host, bid, one.encode(), "?dry_run=1")).json()
    assert [row["errors"] for row in rep["rows"]] == [
        {"salary": SALARY_REQUIRED},
        {"salary": "must be a whole number"},
    ]
    assert rep["columns"]["salary"] == "薪资待遇"
    # the JSON API says the same, with the same error code as before
    for salary in ({"salary_min": None}, {"salary_min": "面议"}, {"salary_max": "Negotiable"}):
        r = await host.post(
            f"/api/broadcasts/{bid}/openings",
            {
                "title": "司机",
                "employer": "鸡西",
                "city": "鸡西市",
                "salary_min": 1,
                "salary_max": 2,
            }
            | salary,
        )
        err = (await r.json())["error"]
        assert r.status == 422 and err["code"] == "invalid"
        assert list(err["fields"].values()) == [SALARY_REQUIRED], err
