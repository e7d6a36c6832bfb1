"""What an applicant sends: validation of each field, phone numbers, and the consent text.

Phone numbers are stored in one normal form so that the same person typing "138 0013 8000",
"+86 13800138000" or "008613800138000" is recognised as one applicant per opening:
mainland mobiles become "+86" + 11 digits; other numbers are E.164 ("+" and 8 to 15 digits).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from jobcast.core.errors import Invalid
from jobcast.core.text import clean, raise_if, text_field
from jobcast.openings.models import CST, EDUCATION, parse_education

NAME_MAX = 40
EMAIL_MAX = 254
SCHOOL_MAX = 80
MAJOR_MAX = 60
NOTE_MAX = 500
PHONE_RAW_MAX = 32

# The consent an applicant gives, by version. A new wording gets a new version; stored
# applications keep the version they were given under.
CONSENT_VERSION = "2026-01"
CONSENT_TEXTS: dict[str, dict[str, str]] = {
    "2026-01": {
        "zh": (
            "我同意将以上个人信息（姓名、手机号、邮箱、学校、专业、学历、毕业年份和留言）"
            "提供给本场直播的主办就业服务中心及该岗位的招聘单位，仅用于本次招聘联系。"
            "我可以随时联系主办方删除这些信息。"
        ),
        "en": (
            "I agree that the details above (name, mobile, email, school, major, degree, "
            "graduation year and note) are shared with the employment service center hosting "
            "this broadcast and with the employer of this opening, only to contact me about "
            "this job. I can ask the host to delete them at any time."
        ),
    }
}

APPLICATION_FIELDS = (
    "name",
    "phone",
    "email",
    "school",
    "major",
    "degree",
    "graduation_year",
    "note",
    "consent",
    "consent_version",
)
DEGREES = tuple(code for code in EDUCATION if code != "any")

_MAINLAND = re.compile(r"1[3-9]\d{9}")
_E164 = re.compile(r"\+[1-9]\d{7,14}")
_PHONE_SEPARATORS = re.compile(r"[\s\-().·]")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


def normalize_phone(raw: str) -> str | None:
    """'+8613800138000' for a mainland mobile, '+4915112345678' for others; None if invalid."""
    s = _PHONE_SEPARATORS.sub("", clean(raw)).replace("＋", "+")
    if len(s) > PHONE_RAW_MAX:
        return None
    if s.startswith("00"):
        s = "+" + s[2:]
    if _MAINLAND.fullmatch(s):
        return "+86" + s
    if s.startswith("86") and _MAINLAND.fullmatch(s[2:]):
        return "+" + s
    if s.startswith("+86"):
        return s if _MAINLAND.fullmatch(s[3:]) else None
    return s if _E164.fullmatch(s) else None


def mask_phone(phone: str) -> str:
    """'+86138****8000': enough for a host to recognise a number on screen, not to dial it."""
    if len(phone) < 8:
        return "****"
    return phone[:-8] + "****" + phone[-4:]


def validate_application(data: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """Clean and check an application; raises Invalid naming every bad field."""
    if not isinstance(data, dict):
        raise Invalid("expected a JSON object", fields={"body": "must be an object"})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    out["name"] = text_field(data, "name", errors, max_len=NAME_MAX)
    raw_phone = data.get("phone")
    if raw_phone is None or raw_phone == "":
        errors["phone"] = "required"
        out["phone"] = ""
    elif not isinstance(raw_phone, str):
        errors["phone"] = "must be a string"
        out["phone"] = ""
    else:
        phone = normalize_phone(raw_phone)
        if phone is None:
            errors["phone"] = "a mainland mobile (1[3-9] and 9 digits) or +country number"
        out["phone"] = phone or ""
    email = text_field(data, "email", errors, max_len=EMAIL_MAX, required=False)
    if email and "email" not in errors and not _EMAIL.fullmatch(email):
        errors["email"] = "not an email address"
    out["email"] = email
    out["school"] = text_field(data, "school", errors, max_len=SCHOOL_MAX, required=False)
    out["major"] = text_field(data, "major", errors, max_len=MAJOR_MAX, required=False)
    degree = data.get("degree")
    if degree is None or degree == "":
        out["degree"] = ""
    else:
        code = parse_education(degree) if isinstance(degree, str) else None
        if code is None or code == "any":
            errors["degree"] = "one of " + ", ".join(DEGREES)
            code = ""
        out["degree"] = code
    year = data.get("graduation_year")
    this_year = (now or datetime.now(CST)).year
    if year is None or year == "":
        out["graduation_year"] = 0
    else:
        y = year if isinstance(year, int) and not isinstance(year, bool) else None
        if isinstance(year, str) and re.fullmatch(r"[0-9]{1,4}", year.strip()):
            y = int(year.strip())
        if y is None or not 1950 <= y <= this_year + 6:
            errors["graduation_year"] = f"a year between 1950 and {this_year + 6}"
            y = 0
        out["graduation_year"] = y
    out["note"] = text_field(data, "note", errors, max_len=NOTE_MAX, required=False, multiline=True)
    if data.get("consent") is not True:
        errors["consent"] = "must be true: the applicant agrees to share these details"
    version = data.get("consent_version")
    if version is None or version == "":
        errors["consent_version"] = "required: the version of the consent text shown"
    elif not isinstance(version, str) or version not in CONSENT_TEXTS:
        errors["consent_version"] = "unknown consent text version; reload the page"
    out["consent_version"] = version if isinstance(version, str) else ""
    for name in data:
        if name not in APPLICATION_FIELDS:
            errors[str(name)[:40]] = "unknown field"
    raise_if(errors)
    return out
