"""What an applicant sends: validation of each field, phone numbers, and the consent text.

Phone numbers are stored in one normal form so that the same person typing "138 0013 8000",
"+86 13800138000" or "008613800138000" is recognised as one applicant per opening:
mainland mobiles become "+86" + 11 digits; other numbers are E.164 ("+" and 8 to 15 digits).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from jobcast.core.contract import (
    Input,
    Output,
    check,
    no_default,
    one_of,
    plain_text,
    refuse,
    text,
)
from jobcast.core.errors import Invalid
from jobcast.core.text import clean
from jobcast.openings.models import CST, EDUCATION, parse_education
from pydantic import Field, PlainValidator, ValidationInfo, model_validator

NAME_MAX = 40
EMAIL_MAX = 254
SCHOOL_MAX = 80
MAJOR_MAX = 60
NOTE_MAX = 500
PHONE_RAW_MAX = 32

# The consent an applicant gives, by version. A new wording gets a new version; stored
# applications keep the version they were given under.
CONSENT_VERSION = "2026-12"
CONSENT_TEXTS: dict[str, dict[str, str]] = {
    # the viewer page's form: what it asks, and nothing else
    "2026-12": {
        "zh": (
            "我同意将以上个人信息（姓名、手机号、学历和专业）提供给本场直播的主办就业服务中心"
            "及该岗位的招聘单位，仅用于本次招聘联系。我可以随时联系主办方删除这些信息。"
        ),
        "en": (
            "I agree that the details above (name, mobile, education and major) are shared with"
            " the employment service center hosting this broadcast and with the employer of this"
            " opening, only to contact me about this job. I can ask the host to delete them at"
            " any time."
        ),
    },
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
    },
}

# The details each consent text names: an application may carry only those (a detail the
# applicant was not told about is not consented to).
CONSENT_FIELDS: dict[str, frozenset[str]] = {
    "2026-12": frozenset({"name", "phone", "degree", "major"}),
    "2026-01": frozenset(
        {"name", "phone", "email", "school", "major", "degree", "graduation_year", "note"}
    ),
}

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


def _phone(raw: Any) -> str:
    if raw is None or raw == "":
        raise refuse("required")
    if not isinstance(raw, str):
        raise refuse("must be a string")
    phone = normalize_phone(raw)
    if phone is None:
        raise refuse("a mainland mobile (1[3-9] and 9 digits) or +country number")
    return phone


def _email(raw: Any) -> str:
    email = plain_text(raw, EMAIL_MAX)
    if email and not _EMAIL.fullmatch(email):
        raise refuse("not an email address")
    return email


def _degree(raw: Any) -> str:
    if raw is None or raw == "":
        return ""
    code = parse_education(raw) if isinstance(raw, str) else None
    if code is None or code == "any":
        raise refuse("one of " + ", ".join(DEGREES))
    return code


def _graduation_year(raw: Any, info: ValidationInfo) -> int:
    if raw is None or raw == "":
        return 0
    this_year = ((info.context or {}).get("now") or datetime.now(CST)).year
    y = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if isinstance(raw, str) and re.fullmatch(r"[0-9]{1,4}", raw.strip()):
        y = int(raw.strip())
    if y is None or not 1950 <= y <= this_year + 6:
        raise refuse(f"a year between 1950 and {this_year + 6}")
    return y


def _consent(raw: Any) -> bool:
    if raw is not True:
        raise refuse("must be true: the applicant agrees to share these details")
    return raw


def _consent_version(raw: Any) -> str:
    if raw is None or raw == "":
        raise refuse("required: the version of the consent text shown")
    if not isinstance(raw, str) or raw not in CONSENT_TEXTS:
        raise refuse("unknown consent text version; reload the page")
    return raw


Phone = Annotated[
    str,
    Field(
        min_length=1,
        description="a mainland mobile (1[3-9] + 9 digits, optionally +86/0086) or E.164; spaces,"
        f" dashes and brackets allowed; at most {PHONE_RAW_MAX} characters without them",
    ),
]
Email = (
    Annotated[str, Field(max_length=EMAIL_MAX, json_schema_extra={"format": "email"})]
    | Literal[""]
    | None
)
Degree = (
    one_of(*DEGREES, "") | Annotated[str, Field(description="a Chinese label such as 本科")] | None
)
Year = Annotated[int, Field(ge=1950)] | Annotated[str, Field(pattern="^[0-9]{4}$")] | None


class ApplicationInput(Input):
    """What an applicant sends with the form; `consent` must be given for `consent_version`."""

    name: Annotated[str, text(NAME_MAX, required=True)]
    phone: Annotated[str, PlainValidator(_phone, json_schema_input_type=Phone)]
    email: Annotated[str, PlainValidator(_email, json_schema_input_type=Email)] = ""
    school: Annotated[str, text(SCHOOL_MAX)] = ""
    major: Annotated[str, text(MAJOR_MAX)] = ""
    degree: Annotated[str, PlainValidator(_degree, json_schema_input_type=Degree)] = ""
    graduation_year: Annotated[
        int, PlainValidator(_graduation_year, json_schema_input_type=Year)
    ] = Field(0, description="1950 to this year + 6", json_schema_extra=no_default)
    note: Annotated[str, text(NOTE_MAX, multiline=True)] = ""
    consent: Annotated[bool, PlainValidator(_consent, json_schema_input_type=Literal[True])] = (
        Field(exclude=True)
    )
    consent_version: Annotated[
        str, PlainValidator(_consent_version, json_schema_input_type=one_of(*CONSENT_TEXTS))
    ]

    @model_validator(mode="after")
    def _consented(self) -> ApplicationInput:
        allowed = CONSENT_FIELDS[self.consent_version]
        given = {k for k, v in self.model_dump(exclude={"consent_version"}).items() if v}
        extra = sorted(given - allowed)
        if extra:
            raise refuse(
                f"consent text {self.consent_version} does not name {', '.join(extra)}:"
                " leave it out, or show the text that does (consent_version)",
                at=extra[0],
            )
        return self


APPLICATION_FIELDS = tuple(ApplicationInput.model_fields)


def validate_application(data: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """Clean and check an application; raises Invalid naming every bad field. The result is
    what is stored (the consent itself is the time it was given, stored beside it)."""
    return check(ApplicationInput, data, context={"now": now}).model_dump()


# -- what the applicant sees of their applications (openings/mine.py) -------------------------

# The statuses the applicant sees, in their order (openings/applications.py STATUSES).
StatusWord = Literal["submitted", "viewed", "contacted", "interview", "hired", "not_selected"]
OldStatusWord = Literal["new", "rejected"]
PLACE_MAX = 200
LINK_MAX = 500
INTERVIEW_NOTE_MAX = 300
_LINK = re.compile(r"https?://[^\s<>\"']+")


def _starts_at(raw: Any) -> int | None:
    """Unix ms, or ISO 8601 with a timezone (as broadcasts' times); none when empty."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        if 0 <= raw < 10**14:
            return raw
        raise refuse("out of range")
    if isinstance(raw, str):
        try:
            dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise refuse("must be ISO 8601 or unix milliseconds") from None
        if dt.tzinfo is None:
            raise refuse("needs a timezone")
        return int(dt.timestamp() * 1000)
    raise refuse("must be ISO 8601 or unix milliseconds")


def _link(raw: Any) -> str:
    link = plain_text(raw, LINK_MAX)
    if link and not _LINK.fullmatch(link):
        raise refuse("a link starting with https:// or http://")
    return link


When = (
    Annotated[int, Field(ge=0, le=10**14 - 1)]
    | Annotated[str, Field(json_schema_extra={"format": "date-time"})]
    | None
)
Link = Annotated[str, Field(max_length=LINK_MAX, pattern="^https?://")] | Literal[""] | None


class Interview(Input):
    """An interview invitation's details, set by the host with the interview status."""

    starts_at: Annotated[int | None, PlainValidator(_starts_at, json_schema_input_type=When)] = (
        Field(None, description="unix ms, or ISO 8601 with a timezone")
    )
    place: Annotated[str, text(PLACE_MAX)] = ""
    link: Annotated[str, PlainValidator(_link, json_schema_input_type=Link)] = ""
    note: Annotated[str, text(INTERVIEW_NOTE_MAX, multiline=True)] = ""


def validate_interview(data: Any) -> dict[str, Any]:
    """Clean and check interview details; raises Invalid naming each bad field (under
    `interview.`)."""
    try:
        return check(Interview, data).model_dump()
    except Invalid as e:
        raise Invalid(
            "check the interview details",
            fields={f"interview.{k}": v for k, v in (e.fields or {}).items()},
        ) from None


class StatusUpdate(Input):
    """A host's status change: `interview` only with status interview. The old words new
    (submitted) and rejected (not_selected) are still taken."""

    status: StatusWord | OldStatusWord
    interview: Interview | None = None


class InterviewDetails(Output):
    starts_at: int | None
    place: str
    link: str
    note: str


class MyApplication(Output):
    """One of the viewer's own applications, as they see it (no personal data)."""

    id: str
    broadcast_id: str
    opening_id: str
    opening_title: str
    employer: str
    applied_at: int
    status: StatusWord
    status_at: int
    interview: InterviewDetails | None


class MyApplications(Output):
    applications: list[MyApplication]
    phones: list[str] = Field(description="the numbers this device confirmed, masked")


class PhoneStart(Input):
    phone: Annotated[str, Field(max_length=PHONE_RAW_MAX)]


class PhoneVerify(Input):
    phone: Annotated[str, Field(max_length=PHONE_RAW_MAX)]
    code: Annotated[str, Field(pattern="^[0-9]{6}$")]


class PhoneCodeSent(Output):
    sent: Literal[True] = Field(description="the same answer whether or not the number applied")
