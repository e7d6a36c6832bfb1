"""The opening (job card): its fields, their limits, and validation into one normal form.

Input comes from the JSON API and from CSV rows (openings.csvio turns a row into the same
dict), so both are checked by `validate_opening`, which names every bad field at once.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
from jobcast.core.errors import Invalid
from jobcast.core.text import clean, raise_if, text_field

STATUSES = ("draft", "published", "closed")

# Employment centers publish in China Standard Time; deadlines are whole days there.
CST = timezone(timedelta(hours=8))

TITLE_MAX = 60
EMPLOYER_MAX = 100
CITY_MAX = 40
ADDRESS_MAX = 200
EXPERIENCE_MAX = 40
DESCRIPTION_MAX = 4000
LIST_ITEMS_MAX = 20
MAJOR_MAX = 40
BENEFIT_MAX = 30
TAG_MAX = 16
TAGS_MAX = 10
SALARY_MAX = 1_000_000
HEADCOUNT_MAX = 100_000

# Education levels, lowest first. A filter for `bachelor` lists openings that ask for at most
# a bachelor's degree (what a person holding one can apply to).
EDUCATION: dict[str, tuple[int, str, str]] = {
    "any": (0, "不限", "Any"),
    "junior_high": (1, "初中", "Junior high school"),
    "high_school": (2, "高中", "High school"),
    "vocational": (2, "中专/中职", "Vocational school"),
    "associate": (3, "大专", "Associate (junior college)"),
    "bachelor": (4, "本科", "Bachelor"),
    "master": (5, "硕士", "Master"),
    "doctorate": (6, "博士", "Doctorate"),
}
_EDUCATION_ALIASES = {
    "不限": "any",
    "无": "any",
    "无要求": "any",
    "学历不限": "any",
    "none": "any",
    "初中": "junior_high",
    "junior high": "junior_high",
    "高中": "high_school",
    "high school": "high_school",
    "中专": "vocational",
    "中职": "vocational",
    "技校": "vocational",
    "中专/中职": "vocational",
    "高中/中专": "high_school",
    "中专/高中": "high_school",
    "vocational school": "vocational",
    "大专": "associate",
    "专科": "associate",
    "高职": "associate",
    "junior college": "associate",
    "college": "associate",
    "本科": "bachelor",
    "大学本科": "bachelor",
    "学士": "bachelor",
    "bachelor's": "bachelor",
    "undergraduate": "bachelor",
    "硕士": "master",
    "研究生": "master",
    "硕士研究生": "master",
    "master's": "master",
    "postgraduate": "master",
    "博士": "doctorate",
    "博士研究生": "doctorate",
    "phd": "doctorate",
    "ph.d.": "doctorate",
    "doctor": "doctorate",
}
_AT_LEAST = re.compile(r"(及以上|以上学历|以上|或以上|and above|or above|\+)$", re.IGNORECASE)
_LIST_SPLIT = re.compile(r"[,，、;；|/\n]+")


def parse_education(value: Any) -> str | None:
    """A code from EDUCATION for a code, a Chinese or English label ("本科及以上"), or None."""
    if not isinstance(value, str):
        return None
    v = clean(value).strip().lower()
    v = _AT_LEAST.sub("", v).strip()
    if v == "":
        return "any"
    if v in EDUCATION:
        return v
    return _EDUCATION_ALIASES.get(v)


def education_rank(code: str) -> int:
    return EDUCATION[code][0]


@dataclass(frozen=True)
class Opening:
    id: str
    broadcast_id: str
    title: str
    employer: dict[str, Any]  # {"name": str, "verified": bool}
    city: str
    address: str
    salary_min: int
    salary_max: int
    headcount: int
    education: str
    majors: list[str]
    experience: str
    description: str
    benefits: list[str]
    deadline: str  # "YYYY-MM-DD" (last day, China time) or ""
    tags: list[str]
    status: str
    created_at: int
    updated_at: int
    deadline_ms: int = 0  # end of the deadline day in unix ms (0: none)

    def public(self) -> dict[str, Any]:
        """The card as viewers and hosts see it (openings carry no personal data)."""
        d = asdict(self)
        d["education_label"] = EDUCATION[self.education][1]
        return d

    def replace(self, **changes: Any) -> Opening:
        return Opening(**{**asdict(self), **changes})

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Opening:
        d = orjson.loads(raw)
        return cls(**{k: v for k, v in d.items() if k in _FIELDS})

    def visible(self) -> bool:
        return self.status == "published"


_FIELDS = frozenset(Opening.__dataclass_fields__)

# Fields a client may send back unchanged (they are ignored, not rejected).
READ_ONLY = frozenset(
    {"id", "broadcast_id", "created_at", "updated_at", "deadline_ms", "education_label"}
)
WRITABLE = (
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
    "tags",
    "status",
)


def _int_field(
    data: dict, name: str, errors: dict[str, str], *, lo: int, hi: int, required: bool = True
) -> int | None:
    raw = data.get(name)
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        if required:
            errors[name] = "required"
        return None
    value: int | None = None
    if isinstance(raw, bool):
        value = None
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():
        value = int(raw)
    elif isinstance(raw, str):
        s = clean(raw).replace(",", "").replace("，", "").replace(" ", "")
        if re.fullmatch(r"\d{1,9}(\.0+)?", s):
            value = int(s.split(".")[0])
    if value is None:
        errors[name] = "must be a whole number"
        return None
    if not lo <= value <= hi:
        errors[name] = f"must be between {lo} and {hi}"
        return None
    return value


def _list_field(
    data: dict, name: str, errors: dict[str, str], *, item_max: int, items_max: int
) -> list[str]:
    raw = data.get(name)
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        items = _LIST_SPLIT.split(raw)
    elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        items = raw
    else:
        errors[name] = "must be a list of strings"
        return []
    out: list[str] = []
    for item in items:
        v = clean(item)
        if v and v not in out:
            out.append(v)
    if len(out) > items_max:
        errors[name] = f"at most {items_max} items"
    elif any(len(v) > item_max for v in out):
        errors[name] = f"each item at most {item_max} characters"
    return out


def parse_deadline(raw: Any, errors: dict[str, str], name: str = "deadline") -> tuple[str, int]:
    """'2026-07-31', '2026/7/31' or an ISO timestamp -> ('2026-07-31', end of that day)."""
    if raw is None or raw == "":
        return "", 0
    if not isinstance(raw, str):
        errors[name] = "must be a date like 2026-07-31"
        return "", 0
    s = clean(raw)
    m = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T].*)?", s)
    try:
        if not m:
            raise ValueError
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        errors[name] = "must be a date like 2026-07-31"
        return "", 0
    if not 2000 <= d.year <= 2100:
        errors[name] = "must be a date like 2026-07-31"
        return "", 0
    end = datetime(d.year, d.month, d.day, tzinfo=CST) + timedelta(days=1)
    return d.isoformat(), int(end.timestamp() * 1000) - 1


def _employer(data: dict, errors: dict[str, str], current: dict | None) -> dict[str, Any]:
    raw = data.get("employer")
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        errors["employer.name"] = "required" if raw is None else "must be an object with a name"
        return {"name": "", "verified": False}
    name_src = raw if "name" in raw or current is None else {"name": current.get("name")}
    name = text_field(name_src, "name", errors, max_len=EMPLOYER_MAX)
    if "name" in errors:
        errors["employer.name"] = errors.pop("name")
    verified = raw.get("verified", (current or {}).get("verified", False))
    if isinstance(verified, str):
        word = verified.strip().lower()
        if word in ("1", "true", "yes", "y", "是", "已认证"):
            verified = True
        elif word in ("", "0", "false", "no", "n", "否", "未认证"):
            verified = False
    if not isinstance(verified, bool):
        errors["employer.verified"] = "must be true or false"
        verified = False
    for k in raw:
        if k not in ("name", "verified"):
            errors[f"employer.{str(k)[:30]}"] = "unknown field"
    return {"name": name, "verified": verified}


def validate_opening(data: Any, *, current: Opening | None = None) -> dict[str, Any]:
    """Check a full opening (create) or changes to `current` (update); returns the new fields.

    Raises Invalid with every bad field named. The salary range is always required: a job
    without a salary is not published by the center.
    """
    if not isinstance(data, dict):
        raise Invalid("expected a JSON object", fields={"body": "must be an object"})
    merged: dict[str, Any] = {}
    if current is not None:
        merged = {k: v for k, v in current.public().items() if k in WRITABLE}
    merged.update({k: v for k, v in data.items() if k not in READ_ONLY})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    out["title"] = text_field(merged, "title", errors, max_len=TITLE_MAX)
    out["employer"] = _employer(merged, errors, current.employer if current else None)
    out["city"] = text_field(merged, "city", errors, max_len=CITY_MAX)
    out["address"] = text_field(merged, "address", errors, max_len=ADDRESS_MAX, required=False)
    lo = _int_field(merged, "salary_min", errors, lo=1, hi=SALARY_MAX)
    hi = _int_field(merged, "salary_max", errors, lo=1, hi=SALARY_MAX)
    if lo is not None and hi is not None and lo > hi:
        errors["salary_max"] = "must be at least salary_min"
    out["salary_min"], out["salary_max"] = lo or 0, hi or 0
    if merged.get("headcount") in (None, ""):
        out["headcount"] = 1
    else:
        out["headcount"] = _int_field(merged, "headcount", errors, lo=1, hi=HEADCOUNT_MAX) or 0
    edu = merged.get("education")
    code = parse_education(edu) if edu is not None else "any"
    if code is None:
        errors["education"] = "unknown level: " + ", ".join(EDUCATION)
        code = "any"
    out["education"] = code
    out["majors"] = _list_field(
        merged, "majors", errors, item_max=MAJOR_MAX, items_max=LIST_ITEMS_MAX
    )
    out["experience"] = text_field(
        merged, "experience", errors, max_len=EXPERIENCE_MAX, required=False
    )
    out["description"] = text_field(
        merged, "description", errors, max_len=DESCRIPTION_MAX, required=False, multiline=True
    )
    out["benefits"] = _list_field(
        merged, "benefits", errors, item_max=BENEFIT_MAX, items_max=LIST_ITEMS_MAX
    )
    out["deadline"], out["deadline_ms"] = parse_deadline(merged.get("deadline"), errors)
    out["tags"] = _list_field(merged, "tags", errors, item_max=TAG_MAX, items_max=TAGS_MAX)
    status = merged.get("status", "draft")
    if status not in STATUSES:
        errors["status"] = "one of " + ", ".join(STATUSES)
    out["status"] = status
    for name in data:
        if name not in WRITABLE and name not in READ_ONLY:
            errors[str(name)[:40]] = "unknown field"
    raise_if(errors)
    return out
