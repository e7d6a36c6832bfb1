"""CSV exports defuse cells a spreadsheet would run as a formula, in every width: full-width
`＝＋－＠`, the small forms and the minus sign as well as ASCII `= + - @`; the importer takes
the mark off again."""

from __future__ import annotations

import csv
import io

import pytest
from jobcast.openings import csvio

from tests.openings_helpers import applicant, application_body, make_opening

STARTS = ["=", "+", "-", "@", "＝", "＋", "－", "＠", "﹦", "﹢", "﹣", "﹫", "\u2212"]


def _rows(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


@pytest.mark.parametrize("start", STARTS)
def test_every_formula_start_is_defused_and_imports_back(start):
    value = start + 'HYPERLINK("http://evil.example","点我")'
    assert csvio._safe(value) == "'" + value
    assert csvio._cell("'" + value) == value


async def test_exports_defuse_full_width_formula_starts(client_b, host, bid):
    o = await make_opening(
        host, bid, title='＝HYPERLINK("http://evil.example")', experience="＠SUM(1)"
    )
    v = await applicant(client_b)
    for i, start in enumerate(STARTS):
        body = application_body(phone=f"1390000{i:04d}", note=start + "cmd|' /C calc'!A0")
        r = await v.apply(o["id"], body)
        assert r.status == 201, await r.text()
    rows = _rows(await (await host.get(f"/api/broadcasts/{bid}/applications.csv")).read())
    header = rows[0]
    notes = sorted(r[header.index("留言")] for r in rows[1:])
    assert notes == sorted("'" + s + "cmd|' /C calc'!A0" for s in STARTS)
    rows = _rows(await (await host.get(f"/api/broadcasts/{bid}/openings.csv")).read())
    header = rows[0]
    assert rows[1][header.index("岗位名称")] == '\'＝HYPERLINK("http://evil.example")'
    assert rows[1][header.index("工作经验")] == "'＠SUM(1)"
    # the export imports back as the same text
    report = csvio.parse_openings(
        await (await host.get(f"/api/broadcasts/{bid}/openings.csv")).read()
    )
    assert report.valid[0]["title"] == '＝HYPERLINK("http://evil.example")'
