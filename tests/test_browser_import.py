"""The host's CSV import in a real browser (Debian's Chromium through Playwright): both
templates download with Chinese headers, choosing a file shows its dry run row by row before
anything is stored, a bad row names the file's own column and blocks the import, and during a
live broadcast the first choice is drafts, which viewers never see.

Run inside a loopback-only network namespace like CI does (scripts/test.sh).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.browserkit import (
    PHONE,
    chromium,
    host_console,
    new_page,
    real_errors,
    require_browser,
)
from tests.openings_helpers import make_opening

pytestmark = pytest.mark.browser

TEMPLATE_HEADERS = "岗位名称,单位名称,工作地点,工作地址,薪资下限,薪资上限,招聘人数,学历要求"

# Row 3 says 面议 instead of a salary; row 4's deadline has passed (it may be imported).
BAD = (
    "岗位名称,单位名称,工作地点,薪资下限（元/月）,薪资上限（元/月）,截止日期\n"
    "数控车工,鸡西机械厂,鸡西市,4500,7000,2099-12-31\n"
    "仓库管理员,鸡西物流公司,鸡西市,面议,面议,2099-12-31\n"
    "往届岗位,鸡西旧厂,鸡西市,3000,4000,2020-03-31\n"
).encode("gbk")
# Good rows whose 状态 column says 发布: imported as drafts all the same.
GOOD = (
    "\ufeff岗位名称,单位名称,工作地点,薪资下限,薪资上限,截止日期,状态\n"
    "导入草稿甲,鸡西示例公司,鸡西市,4000,6000,2099-12-31,发布\n"
    "导入草稿乙,鸡西示例公司,密山市,3500,5000,2099-12-31,发布\n"
).encode("utf-8")


async def _download(page: Any, link: str) -> tuple[str, bytes]:
    async with page.expect_download() as info:
        await page.get_by_role("link", name=link).click()
    download = await info.value
    path = Path(await download.path())
    return download.suggested_filename, await asyncio.to_thread(path.read_bytes)


async def _choose(page: Any, name: str, data: bytes) -> None:
    await page.locator("#csv-file").set_input_files(
        files=[{"name": name, "mimeType": "text/csv", "buffer": data}]
    )


async def _titles(host: Any, bid: str) -> dict[str, str]:
    r = await host.get(f"/api/broadcasts/{bid}/openings")
    return {o["title"]: o["status"] for o in (await r.json())["openings"]}


async def test_the_host_downloads_the_templates_previews_and_imports_drafts(client, host, bid):
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await host_console(browser, base, bid, lang="zh-CN", ready="#lineup li.empty")

        # both templates: a file with the Chinese headers, GBK for Excel and UTF-8 with a BOM
        name, gbk = await _download(page, "模板 (Excel/GBK)")
        assert name == "岗位导入模板-Excel.csv"
        assert not gbk.startswith(b"\xef\xbb\xbf")
        assert gbk.decode("gbk").startswith(TEMPLATE_HEADERS)
        name, utf8 = await _download(page, "模板 (UTF-8)")
        assert name == "岗位导入模板-UTF-8.csv"
        assert utf8.startswith(b"\xef\xbb\xbf")
        assert utf8.decode("utf-8-sig").startswith(TEMPLATE_HEADERS)
        assert utf8.decode("utf-8-sig") == gbk.decode("gbk")

        # a file with a bad row: its preview, the error under the file's own column name, and
        # no way to import it
        await _choose(page, "岗位.csv", BAD)
        dialog = page.locator("#csv-dialog")
        await dialog.get_by_role("heading", name="导入前请核对").wait_for()
        rows = dialog.locator("#csv-rows tr")
        assert await rows.count() == 3
        bad = dialog.locator('#csv-rows tr[data-row="3"]')
        assert "bad" in (await bad.get_attribute("class") or "")
        assert "薪资下限（元/月）：请填写薪资范围，不接受面议" in await bad.inner_text()
        assert "仓库管理员" in await bad.inner_text()
        good = dialog.locator('#csv-rows tr[data-row="2"]')
        for shown in ("数控车工", "鸡西机械厂", "鸡西市", "4500-7000", "2099-12-31"):
            assert shown in await good.inner_text()
        late = dialog.locator('#csv-rows tr[data-row="4"]')
        assert "已过截止日期" in await late.inner_text()
        errors = dialog.locator("#csv-errors li")
        assert await errors.count() == 1
        assert (await errors.inner_text()).startswith("第 3 行")
        assert "1 行有错误" in await dialog.locator("#csv-summary").inner_text()
        assert await dialog.locator("#csv-publish").is_disabled()
        assert await dialog.locator("#csv-drafts").is_disabled()
        await dialog.get_by_role("button", name="取消").click()
        await dialog.wait_for(state="hidden")
        assert await _titles(host, bid) == {}  # a preview stores nothing

        # live: the first choice is drafts, and the host is told why
        assert (await host.post(f"/api/broadcasts/{bid}/start", {})).status == 200
        await page.locator("#b-end").wait_for()  # the console knows it is live
        await _choose(page, "岗位2.csv", GOOD)
        await dialog.locator("#csv-live-hint").wait_for()
        assert "发布的岗位会立即显示给观众" in await dialog.locator("#csv-live-hint").inner_text()
        primary = dialog.locator("button.primary")
        assert await primary.count() == 1
        assert await primary.inner_text() == "以草稿导入"
        assert await primary.evaluate("(b) => b === document.activeElement")
        assert await dialog.locator("#csv-publish").is_enabled()
        await primary.click()
        await dialog.wait_for(state="hidden")
        await page.locator("#csv-result").get_by_text("已以草稿导入 2 个岗位").wait_for()
        for title in ("导入草稿甲", "导入草稿乙"):
            row = page.locator("#lineup li[data-opening]").filter(has_text=title)
            await row.get_by_text("草稿").wait_for()
        assert await _titles(host, bid) == {"导入草稿甲": "draft", "导入草稿乙": "draft"}
        assert real_errors(page) == []

        # a viewer sees none of them: an opening published afterwards arrives, they do not
        viewer = await new_page(browser, base, viewport=PHONE, lang="zh-CN")
        await viewer.goto(f"/b/{bid}")
        await make_opening(host, bid, title="公开岗位")
        await viewer.locator("#openings").get_by_text("公开岗位").wait_for()
        text = await viewer.locator("main").inner_text()
        assert "导入草稿甲" not in text and "导入草稿乙" not in text
        assert real_errors(viewer) == []


async def test_a_file_that_cannot_be_read_says_why_and_opens_no_preview(client, host, bid):
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await host_console(browser, base, bid, lang="zh-CN", ready="#lineup li.empty")
        await _choose(page, "名单.csv", "姓名,电话\n王芳,13800138000\n".encode("gbk"))
        out = page.locator("#csv-result")
        await out.get_by_text("无法导入此文件").wait_for()
        assert "缺少列：岗位名称" in await out.inner_text()
        assert not await page.locator("#csv-dialog").is_visible()
        assert real_errors(page) == []


async def test_the_editor_says_a_salary_range_is_required(client, host, bid):
    """The same message as the import, in the host's language, under the salary field."""
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await host_console(browser, base, bid, lang="zh-CN", ready="#lineup li.empty")
        await page.get_by_role("button", name="新增岗位").click()
        dialog = page.locator("#opening-dialog")
        await dialog.locator("#of-title").fill("司机")
        await dialog.locator("#of-employer").fill("鸡西运输公司")
        await dialog.locator("#of-city").fill("鸡西市")
        # (a number field: 面议 cannot be typed; left empty, it is the same message)
        await dialog.locator("#of-salary-max").fill("6000")
        await dialog.get_by_role("button", name="保存").click()
        error = dialog.locator('.field-error[data-field="salary_min"]')
        await error.filter(has_text="请填写薪资范围，不接受面议").wait_for()
        assert await _titles(host, bid) == {}
        assert real_errors(page) == []


async def test_a_file_chosen_right_after_cancelling_a_preview_still_imports(client, host, bid):
    """The dialog's close event comes a task after Cancel: the next file, chosen before it
    arrives, must still be the one 导入 sends (under load CI clicked 导入 and nothing came)."""
    require_browser()
    base = str(client.make_url("/")).rstrip("/")
    async with chromium() as browser:
        page = await host_console(browser, base, bid, lang="zh-CN", ready="#lineup li.empty")
        await _choose(page, "bad.csv", BAD)
        dialog = page.locator("#csv-dialog")
        await dialog.locator("#csv-errors").filter(has_text="第 3 行").wait_for()
        # Cancel, then the next file in the same task: its change runs before the close event
        await page.evaluate(
            """(text) => {
                document.getElementById("csv-cancel").click();
                const input = document.getElementById("csv-file");
                const dt = new DataTransfer();
                dt.items.add(new File([text], "good.csv", { type: "text/csv" }));
                input.files = dt.files;
                input.dispatchEvent(new Event("change", { bubbles: true }));
            }""",
            GOOD.decode("utf-8"),
        )
        await dialog.locator("#csv-rows tr").filter(has_text="导入草稿乙").wait_for()
        await dialog.get_by_role("button", name="导入", exact=True).click()
        await page.locator("#csv-result").filter(has_text="已导入 2 个岗位").wait_for()
        assert await _titles(host, bid) == {"导入草稿甲": "published", "导入草稿乙": "published"}
        assert real_errors(page) == []
