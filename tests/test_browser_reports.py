"""Reports in a real browser (Debian's Chromium through Playwright): a phone viewer (390x844,
zh-CN) reports a card with a reason and sees it acknowledged; the host sees the report in the
console's review queue and clears it; the verified mark opens its date on a tap.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

import pytest

from tests.browserkit import (
    DESKTOP,
    PHONE_390,
    a11y_problems,
    chromium,
    host_console,
    new_page,
    real_errors,
    require_browser,
)
from tests.openings_helpers import applicant, application_body, make_opening

pytestmark = pytest.mark.browser


async def test_phone_viewer_reports_a_card_and_the_host_clears_it(client, host, bid):
    require_browser()
    o = await make_opening(host, bid, title="煤矿机电技术员")
    r = await host.post("/api/employers", {"name": o["employer"]["name"]})
    eid = (await r.json())["id"]
    r = await host.post(
        f"/api/employers/{eid}/verify", {"verified": True, "note": "营业执照已核验"}
    )
    assert r.status == 200, await r.text()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        console = await host_console(browser, base, bid)
        viewer = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await viewer.goto(f"/b/{bid}")
        await viewer.wait_for_function("() => document.documentElement.dataset.live === 'live'")
        card = viewer.locator(f'#openings [data-opening="{o["id"]}"]').first
        await card.wait_for()
        # the verified mark: its date and note on a tap
        mark = card.locator(".verified-check")
        await mark.get_by_text("已认证").tap()
        await mark.get_by_text("核验").wait_for()
        assert "营业执照已核验" in await mark.inner_text()
        # report it
        button = card.get_by_role("button", name="举报")
        size = await button.bounding_box()
        assert size is not None and size["height"] >= 44, size
        await button.tap()
        dialog = viewer.locator("#report-dialog")
        await dialog.get_by_label("收取费用").check()
        await dialog.get_by_label("补充说明（选填）").fill("面试前要求交培训费")
        await dialog.get_by_role("button", name="提交举报").tap()
        await dialog.get_by_text("已收到举报").wait_for()
        assert await a11y_problems(viewer) == []
        await dialog.get_by_role("button", name="关闭").tap()

        # the host's review queue shows it, with the reason and the note
        panel = console.locator("#rp-panel")
        item = panel.locator(f'li[data-oid="{o["id"]}"]')
        await item.wait_for()
        text = await item.inner_text()
        assert "Fees asked × 1" in text and "面试前要求交培训费" in text, text
        await item.get_by_role("button", name="Clear: show it again").click()
        await panel.get_by_text("No reports waiting.").wait_for()
        assert real_errors(viewer) == []
        assert real_errors(console) == []


async def test_host_verifies_an_employer_and_its_recruiter_updates_an_applicant(client, host, bid):
    require_browser()
    o = await make_opening(host, bid, title="护士", employer={"name": "鸡西市人民医院"})
    other = await make_opening(host, bid, title="电工", employer={"name": "鸡西矿业"})
    for oid, phone in ((o["id"], "13800138001"), (other["id"], "13800138002")):
        viewer = await applicant(client)
        r = await viewer.apply(oid, application_body(phone=phone))
        assert r.status == 201, await r.text()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await new_page(browser, base, viewport=DESKTOP, lang="en")
        await page.goto("/host")
        await page.get_by_label("Username").fill("host1")
        await page.get_by_label("Password").fill("s3cret-pass")
        await page.get_by_role("button", name="Log in").click()
        panel = page.locator("#employers-panel")
        await panel.get_by_label("Employer name").fill("鸡西市人民医院")
        await panel.get_by_role("button", name="Add employer").click()
        row = panel.locator("li.employer-item", has_text="鸡西市人民医院")
        await row.get_by_text("Not verified").wait_for()
        await row.get_by_label("What was checked (licence number, by whom)").fill(
            "营业执照 12230300MB0000000X"
        )
        await row.get_by_role("button", name="Mark verified").click()
        await row.get_by_text("营业执照 12230300MB0000000X").wait_for()
        await row.get_by_label("Recruiter username").fill("hospital-hr")
        await row.get_by_label("Recruiter password").fill("s3cret-pass")
        await row.get_by_role("button", name="Create recruiter account").click()
        await page.get_by_text("Recruiter account created").wait_for()
        assert real_errors(page) == []

        rec = await new_page(browser, base, viewport=PHONE_390, lang="zh-CN")
        await rec.goto("/host")
        await rec.locator("#username, [name=username]").first.fill("hospital-hr")
        await rec.locator("#password, [name=password]").first.fill("s3cret-pass")
        await rec.locator("form button[type=submit]").first.click()
        await rec.wait_for_url("**/recruiter")
        box = rec.locator(f'article[data-oid="{o["id"]}"]')
        await box.get_by_text("护士").wait_for()
        assert await rec.locator(f'article[data-oid="{other["id"]}"]').count() == 0
        await box.locator("select").select_option("contacted")
        await rec.get_by_text("已保存").wait_for()
        assert await a11y_problems(rec) == []
        assert real_errors(rec) == []
    r = await host.get(f"/api/broadcasts/{bid}/applications?opening_id={o['id']}")
    assert [a["status"] for a in (await r.json())["applications"]] == ["contacted"]
