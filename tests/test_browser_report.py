"""The event report in a real browser (Debian's Chromium through Playwright): the host opens
it from the console, it renders without scripts, and printing it to PDF (`page.pdf`) keeps
the charts: their titles as text and their lines and bars as vector paths.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from jobcast.web.api.report import AUDIENCE

from tests.browserkit import DESKTOP, chromium, log_in, new_page, real_errors, require_browser
from tests.openings_helpers import applicant, application_body, make_opening
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

TITLES = ("在线人数变化", "从观看到录用", "各岗位投递数", "各岗位讲解时长")


def _streams(pdf: bytes) -> bytes:
    """Every page's content streams, decompressed (pypdf)."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    out = b""
    for page in reader.pages:
        contents = page.get_contents()
        if contents is not None:
            out += contents.get_data()
    return out


def _text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return "".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages)


async def test_the_host_prints_the_report_with_its_charts(client, host, bid, viewers):
    require_browser()
    pytest.importorskip("pypdf")
    client.server.app[AUDIENCE].sample_every = 0.3
    base = str(client.make_url("/")).rstrip("/")
    a = await make_opening(host, bid, title="井下电工", employer={"name": "鸡西矿业"})
    await make_opening(host, bid, title="护士", employer={"name": "鸡西市人民医院"})
    assert (await host.post(f"/api/broadcasts/{bid}/start")).status == 200
    assert (await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": a["id"]})).status == 200
    r = await (await applicant(client)).apply(a["id"], application_body(phone="13800138009"))
    assert r.status == 201

    async with chromium() as browser:
        await viewers.open(client, bid)  # a viewer's socket, as the viewer page opens

        async def sampled() -> bool:
            rep = await (await host.get(f"/api/broadcasts/{bid}/report")).json()
            return len(rep["viewers"]["samples"]) >= 2 and rep["viewers"]["peak"] >= 1

        await wait_until(sampled, what="two audience samples with the browser's viewer")
        assert (await host.post(f"/api/broadcasts/{bid}/end")).status == 200

        page = await new_page(browser, base, viewport=DESKTOP)
        await log_in(page)
        await page.goto(f"/host/b/{bid}")
        await page.get_by_role("link", name="活动报告").click()
        await page.get_by_role("heading", name=re.compile("活动报告")).wait_for()
        assert page.url.endswith(f"/host/b/{bid}/report")
        assert await page.locator("svg.chart").count() == 4
        assert await page.locator('[data-figure="applications"]').inner_text() == "1"
        assert await page.locator('[data-figure="peak"]').inner_text() == "1"
        assert await page.locator("svg.chart path.series").count() == 1  # viewers over time
        assert await page.locator("svg.chart path.bar").count() >= 5
        assert real_errors(page) == []

        await page.emulate_media(media="print")
        assert not await page.locator("header.top").is_visible()  # the print stylesheet
        pdf = await page.pdf(format="A4", print_background=True)
        assert pdf.startswith(b"%PDF-")
        text = _text(pdf)
        for title in TITLES:
            assert title in text, title
        assert "井下电工" in text
        ops = _streams(pdf)
        # The charts are vector drawing: move-to, line-to and fill or stroke operators.
        assert len(re.findall(rb"[\d.]+ [\d.]+ m\b", ops)) >= 5
        assert len(re.findall(rb"[\d.]+ [\d.]+ l\b", ops)) >= 5
        assert re.search(rb"\b[Sf]\b", ops)

        # The same page without scripts shows the same figures and charts.
        nojs = await new_page(browser, base, viewport=DESKTOP, javascript=False)
        await _login_cookies(nojs, page)
        await nojs.goto(f"/host/b/{bid}/report")
        assert await nojs.locator("svg.chart").count() == 4
        assert await nojs.locator('[data-figure="applications"]').inner_text() == "1"


async def _login_cookies(target: Any, source: Any) -> None:
    """Give `target` the host session of `source` (logging in needs the login page's script)."""
    await target.context.add_cookies(await source.context.cookies())
