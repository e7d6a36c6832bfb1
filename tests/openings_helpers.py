"""Helpers for the openings and applications tests."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers import Host, viewer_csrf

# the consent text that names every detail the API takes (the page's names fewer)
FULL_CONSENT = "2026-01"

DATA = Path(__file__).parent / "data"


def opening_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "煤矿机电技术员",
        "employer": {"name": "鸡西矿业（集团）有限责任公司", "verified": True},
        "city": "鸡西市",
        "address": "鸡西市鸡冠区中心大街",
        "salary_min": 5000,
        "salary_max": 8000,
        "headcount": 20,
        "education": "大专",
        "majors": ["机电一体化", "电气自动化"],
        "experience": "不限",
        "description": "负责井下机电设备的日常维护与检修。",
        "benefits": ["五险一金", "餐补"],
        "deadline": "2099-08-31",
        "tags": ["国企"],
        "status": "published",
    }
    body.update(over)
    return body


async def make_opening(host: Host, bid: str, **over: Any) -> dict[str, Any]:
    r = await host.post(f"/api/broadcasts/{bid}/openings", opening_body(**over))
    assert r.status == 201, await r.text()
    return await r.json()


def application_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "张伟",
        "phone": "13800138000",
        "email": "zhangwei@example.com",
        "school": "黑龙江工业学院",
        "major": "机电一体化",
        "degree": "associate",
        "graduation_year": 2026,
        "note": "可以随时到岗。",
        "consent": True,
        "consent_version": FULL_CONSENT,
    }
    body.update(over)
    return body


class Applicant:
    """A viewer (signed cookie on its own client session) that applies."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf

    async def apply(self, oid: str, body: dict[str, Any], key: str | None = None) -> Any:
        headers = {"X-CSRF-Token": self.csrf, "Idempotency-Key": key or uuid.uuid4().hex}
        return await self.client.post(
            f"/api/openings/{oid}/applications", json=body, headers=headers
        )

    async def applied(self, bid: str) -> list[str]:
        r = await self.client.get(f"/api/broadcasts/{bid}/applied")
        assert r.status == 200, await r.text()
        return (await r.json())["opening_ids"]


async def applicant(client: TestClient) -> Applicant:
    return Applicant(client, await viewer_csrf(client))
