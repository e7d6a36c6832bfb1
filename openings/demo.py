"""Sample openings for `jobcast serve --demo`: employers of Jixi, Heilongjiang, salaries in CNY."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from jobcast.core.events import EventLog
from jobcast.openings.models import CST, validate_opening
from jobcast.openings.service import OpeningService
from redis.asyncio import Redis

SAMPLES: list[dict[str, Any]] = [
    {
        "title": "煤矿机电技术员",
        "employer": {"name": "鸡西矿业（集团）有限责任公司", "verified": True},
        "city": "鸡西市",
        "address": "鸡西市鸡冠区中心大街",
        "salary_min": 5000,
        "salary_max": 8000,
        "headcount": 20,
        "education": "associate",
        "majors": ["机电一体化", "电气自动化", "矿山机电"],
        "experience": "不限，应届生可投",
        "description": "负责井下机电设备的日常维护与检修，参与新设备的安装调试；"
        "入职后由师傅带教，提供系统安全培训。",
        "benefits": ["五险一金", "餐补", "班车", "取暖补贴"],
        "deadline_days": 60,
        "tags": ["国企", "应届生"],
    },
    {
        "title": "石墨新材料研发工程师",
        "employer": {"name": "鸡西市石墨新材料科技有限公司", "verified": True},
        "city": "鸡西市",
        "address": "鸡西市麻山区石墨产业园",
        "salary_min": 6000,
        "salary_max": 10000,
        "headcount": 5,
        "education": "bachelor",
        "majors": ["材料科学与工程", "化学", "化学工程与工艺"],
        "experience": "1-3年",
        "description": "从事锂电负极材料与石墨深加工工艺研发、样品测试与数据分析。",
        "benefits": ["五险一金", "人才公寓", "带薪年假"],
        "deadline_days": 45,
        "tags": ["研发", "人才引进"],
    },
    {
        "title": "护士",
        "employer": {"name": "鸡西市人民医院", "verified": True},
        "city": "鸡西市",
        "address": "鸡西市鸡冠区",
        "salary_min": 4000,
        "salary_max": 6500,
        "headcount": 15,
        "education": "associate",
        "majors": ["护理学"],
        "experience": "不限",
        "description": "临床护理工作，需持有护士执业资格证或在应届取得。",
        "benefits": ["五险一金", "夜班补贴"],
        "deadline_days": 75,
        "tags": ["医疗"],
    },
    {
        "title": "电商运营专员",
        "employer": {"name": "密山市兴凯湖农产品电商有限公司", "verified": False},
        "city": "密山市",
        "address": "密山市兴凯湖乡",
        "salary_min": 3500,
        "salary_max": 6000,
        "headcount": 3,
        "education": "high_school",
        "majors": [],
        "experience": "不限",
        "description": "负责网店日常运营、直播带货选品与客服，推广兴凯湖大米、蜂蜜等特产。",
        "benefits": ["销售提成", "包住"],
        "deadline_days": 0,
        "tags": ["电商", "直播"],
    },
    {
        "title": "小学语文教师",
        "employer": {"name": "鸡西市恒山区实验学校", "verified": True},
        "city": "鸡西市",
        "address": "鸡西市恒山区",
        "salary_min": 4500,
        "salary_max": 6000,
        "headcount": 4,
        "education": "bachelor",
        "majors": ["汉语言文学", "小学教育"],
        "experience": "不限",
        "description": "承担小学语文教学及班主任工作，需具备相应教师资格证。",
        "benefits": ["寒暑假", "五险一金"],
        "deadline_days": 30,
        "tags": ["教育"],
    },
]


def as_sent(sample: dict[str, Any], today: date) -> dict[str, Any]:
    """A sample as a host would send it: published, its deadline counted from `today` (the
    first sample is also the API document's example of an opening)."""
    body = {k: v for k, v in sample.items() if k != "deadline_days"}
    days = sample["deadline_days"]
    body["deadline"] = (today + timedelta(days=days)).isoformat() if days else ""
    return {**body, "status": "published"}


async def seed_openings(redis: Redis, log: EventLog, bid: str) -> None:
    """Add the sample openings to the demo broadcast and pin the first one.

    Deadlines are counted from today, so the demo takes applications whenever it runs."""
    svc = OpeningService(redis, log)
    today = datetime.now(CST).date()
    made = await svc.create_many(bid, [validate_opening(as_sent(s, today)) for s in SAMPLES])
    await svc.pin(bid, made[0].id)
