"""The opening (job card): its fields, their limits, and validation into one normal form.

`Opening` is the card as stored and shown, `OpeningInput` what a host sends. Input comes from
the JSON API and from CSV rows (openings.csvio turns a row into the same dict), so both are
checked by `validate_opening`, which names every bad field at once. The models are also the
API document's schemas (web/api/openapi.py) and the CSV columns (openings/csvio.py).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

import orjson
from jobcast.core.contract import (
    Id,
    Input,
    Ms,
    Output,
    check,
    one_of,
    partial,
    refuse,
    text,
)
from jobcast.core.text import clean
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    computed_field,
    model_validator,
)

# `held`: taken off viewers' pages after viewer reports (openings/reports.py), until a host
# clears it (published) or closes it. Hosts never send it: STATUSES are the ones they may set.
Status = Literal["draft", "published", "closed", "held"]
STATUSES: tuple[str, ...] = ("draft", "published", "closed")

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


# -- the card ------------------------------------------------------------------------------

EducationCode = one_of(*EDUCATION)


class Employer(Output):
    name: str
    verified: bool
    # Set by the host's check of the employer (openings/employers.py), never by the card's input.
    id: str = Field("", description="the organization's employer record ('' : none yet)")
    verified_note: str = Field("", description="what was checked, by whom")
    verified_on: str = Field("", description="YYYY-MM-DD (China time) of the check, or ''")


class Opening(Output):
    """The card as stored and as viewers and hosts see it (openings carry no personal data)."""

    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    id: Id
    broadcast_id: Id
    title: str
    employer: Employer
    city: str
    address: str
    salary_min: int
    salary_max: int
    headcount: int
    education: Annotated[str, WithJsonSchema({"enum": list(EDUCATION), "type": "string"})]
    majors: list[str]
    experience: str
    description: str
    benefits: list[str]
    deadline: str = Field(description="YYYY-MM-DD (the last day, China time) or ''")
    tags: list[str]
    status: Status
    created_at: Ms
    updated_at: Ms
    deadline_ms: int = Field(0, description="end of the deadline day in unix ms (0: none)")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def education_label(self) -> str:
        return EDUCATION[self.education][1]

    def public(self) -> dict[str, Any]:
        return self.model_dump()

    def replace(self, **changes: Any) -> Opening:
        return Opening(**{**self.model_dump(exclude={"education_label"}), **changes})

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(exclude={"education_label"}))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Opening:
        return cls.model_validate_json(raw)

    def visible(self) -> bool:
        return self.status == "published"


class Pinned(Output):
    opening: Opening
    pinned_at: Ms


# -- what a host sends ---------------------------------------------------------------------

_LIST_SPLIT = re.compile(r"[,，、;；|/\n]+")
_YES = ("1", "true", "yes", "y", "是", "已认证")
_NO = ("", "0", "false", "no", "n", "否", "未认证")


def _whole(raw: Any, lo: int, hi: int) -> int:
    """A whole number from lo to hi: 8000, 8000.0, "8,000" or " 8000 "."""
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        raise refuse("required")
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
        raise refuse("must be a whole number")
    if not lo <= value <= hi:
        raise refuse(f"must be between {lo} and {hi}")
    return value


# The field message for a salary left out or written as "negotiable": the center publishes no
# job without a salary range (the pages show it in the reader's language, not as "required").
SALARY_REQUIRED = "enter a salary range; negotiable is not accepted"
_NEGOTIABLE = re.compile(
    r"面议|面谈|协商|商议|议定|详谈|待定|negotia|^\s*(tbd|n/?a)\s*$", re.IGNORECASE
)


def _salary(raw: Any) -> int:
    if raw is None or (isinstance(raw, str) and (not raw.strip() or _NEGOTIABLE.search(raw))):
        raise refuse(SALARY_REQUIRED)
    return _whole(raw, 1, SALARY_MAX)


def _salary_max(raw: Any, info: ValidationInfo) -> int:
    hi = _salary(raw)
    lo = info.data.get("salary_min")
    if lo is not None and lo > hi:
        raise refuse("must be at least salary_min")
    return hi


def _headcount(raw: Any) -> int:
    return 1 if raw is None or raw == "" else _whole(raw, 1, HEADCOUNT_MAX)


def _education(raw: Any) -> str:
    code = parse_education(raw) if raw is not None else "any"
    if code is None:
        raise refuse("unknown level: " + ", ".join(EDUCATION))
    return code


def _str_list(item_max: int, items_max: int) -> PlainValidator:
    """A list of short texts, or one cell of them separated by commas, 、 or newlines."""

    def parse(raw: Any) -> list[str]:
        if raw is None or raw == "":
            return []
        if isinstance(raw, str):
            items = _LIST_SPLIT.split(raw)
        elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
            items = raw
        else:
            raise refuse("must be a list of strings")
        out: list[str] = []
        for item in items:
            v = clean(item)
            if v and v not in out:
                out.append(v)
        if len(out) > items_max:
            raise refuse(f"at most {items_max} items")
        if any(len(v) > item_max for v in out):
            raise refuse(f"each item at most {item_max} characters")
        return out

    one_cell = Annotated[str, Field(description="items separated by , ， 、 ; ； | / or newlines")]
    item = Annotated[str, Field(max_length=item_max)]
    listed = Annotated[list[item], Field(max_length=items_max)]
    accepts = Annotated[
        listed | one_cell, Field(description=f"≤ {items_max} of ≤ {item_max} characters")
    ]
    return PlainValidator(parse, json_schema_input_type=accepts)


_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T].*)?")
Deadline = (
    date
    | Annotated[
        str, Field(pattern=f"^{_DATE.pattern}$", description="2026/9/15 and 2026年9月15日 too")
    ]
    | Literal[""]
    | None
)


def parse_deadline(raw: Any) -> str:
    """'2026-07-31', '2026/7/31', '2026年7月31日' or an ISO timestamp -> '2026-07-31'."""
    if raw is None or raw == "":
        return ""
    bad = refuse("must be a date like 2026-07-31")
    if not isinstance(raw, str):
        raise bad
    m = _DATE.fullmatch(clean(raw))
    try:
        if not m:
            raise ValueError
        d = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise bad from None
    if not 2000 <= d.year <= 2100:
        raise bad
    return d.isoformat()


def deadline_end_ms(day: str) -> int:
    """The last millisecond of `day` in China time (0 for no deadline)."""
    if not day:
        return 0
    d = date.fromisoformat(day)
    end = datetime(d.year, d.month, d.day, tzinfo=CST) + timedelta(days=1)
    return int(end.timestamp() * 1000) - 1


def _status(raw: Any, info: ValidationInfo) -> str:
    if raw == "held" and (info.context or {}).get("status") == "held":
        return raw  # an edit of a held card that leaves its status alone
    if raw not in STATUSES:
        raise refuse("one of " + ", ".join(STATUSES))
    return raw


def _verified(raw: Any) -> bool:
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _YES:
            return True
        if word in _NO:
            return False
    if not isinstance(raw, bool):
        raise refuse("must be true or false")
    return raw


def _employer(raw: Any, info: ValidationInfo) -> Any:
    """An employer's name alone stands for the employer; an update keeps what it leaves out."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        raise refuse("required" if raw is None else "must be an object with a name", at="name")
    current = (info.context or {}).get("employer")
    return raw if current is None else {**current, **raw}


EmployerName = Annotated[str, text(EMPLOYER_MAX, required=True)]
Verified = Annotated[
    bool, PlainValidator(_verified, json_schema_input_type=bool | one_of(*_YES, *_NO))
]


class EmployerInput(Input):
    name: EmployerName
    verified: Verified = False


EmployerPatch = partial(EmployerInput, "EmployerPatch")


def _employer_of(model: type[EmployerInput]) -> BeforeValidator:
    accepts = model | Annotated[EmployerName, Field(description="the name")]
    return BeforeValidator(_employer, json_schema_input_type=accepts)


def _salary_min(raw: Any) -> int:
    return _salary(raw)


Salary = (
    Annotated[int, Field(ge=1, le=SALARY_MAX)]
    | Annotated[str, Field(pattern=r"^[0-9, ，]{1,12}(\.0+)?$")]
)
Headcount = (
    Annotated[int, Field(ge=1, le=HEADCOUNT_MAX)] | Annotated[str, Field(pattern=r"^[0-9]{1,6}$")]
) | None
Education = (
    EducationCode | Annotated[str, Field(description="a Chinese or English label (本科及以上)")]
)


def _read_only_properties(schema: dict[str, Any]) -> None:
    for name in sorted(READ_ONLY):
        schema["properties"][name] = {"description": "read-only: ignored"}


class OpeningInput(Input):
    """An opening as a host sends it (the JSON API, or a CSV row). Read-only fields of the card
    (`id`, `created_at`...) may be sent back; they are ignored. The salary range is always
    required: a job without a salary is not published by the center."""

    model_config = ConfigDict(json_schema_extra=_read_only_properties)

    title: Annotated[str, text(TITLE_MAX, required=True)]
    employer: Annotated[EmployerInput, _employer_of(EmployerInput)]
    city: Annotated[str, text(CITY_MAX, required=True)]
    address: Annotated[str, text(ADDRESS_MAX)] = ""
    salary_min: Annotated[int, PlainValidator(_salary_min, json_schema_input_type=Salary)]
    salary_max: Annotated[int, PlainValidator(_salary_max, json_schema_input_type=Salary)]
    headcount: Annotated[int, PlainValidator(_headcount, json_schema_input_type=Headcount)] = 1
    education: Annotated[str, PlainValidator(_education, json_schema_input_type=Education)] = "any"
    majors: Annotated[list[str], _str_list(MAJOR_MAX, LIST_ITEMS_MAX)] = Field(default_factory=list)
    experience: Annotated[str, text(EXPERIENCE_MAX)] = ""
    description: Annotated[str, text(DESCRIPTION_MAX, multiline=True)] = ""
    benefits: Annotated[list[str], _str_list(BENEFIT_MAX, LIST_ITEMS_MAX)] = Field(
        default_factory=list
    )
    deadline: Annotated[str, PlainValidator(parse_deadline, json_schema_input_type=Deadline)] = (
        Field("", description="the last day (China time)")
    )
    tags: Annotated[list[str], _str_list(TAG_MAX, TAGS_MAX)] = Field(default_factory=list)
    status: Annotated[str, PlainValidator(_status, json_schema_input_type=one_of(*STATUSES))] = (
        "draft"
    )

    @model_validator(mode="before")
    @classmethod
    def _ignore_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY}
        return data

    def fields(self) -> dict[str, Any]:
        """The card's new fields (with `deadline_ms`, from the deadline)."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            out[name] = value
            if name == "deadline":
                out["deadline_ms"] = deadline_end_ms(value)
        return out


OpeningPatch = partial(
    OpeningInput, "OpeningPatch", employer=Annotated[EmployerPatch, _employer_of(EmployerPatch)]
)
WRITABLE = tuple(OpeningInput.model_fields)
# Fields of the card a client may send back unchanged (they are ignored, not rejected).
READ_ONLY = frozenset({*Opening.model_fields, *Opening.model_computed_fields}) - set(WRITABLE)


def validate_opening(data: Any, *, current: Opening | None = None) -> dict[str, Any]:
    """Check a full opening (create) or changes to `current` (update); returns the new fields.

    An update is checked as the whole card it makes. Raises Invalid with every bad field named.
    """
    employer = None
    if current is not None:
        employer = current.employer.model_dump(include={"name", "verified"})
        if isinstance(data, dict):
            data = {**current.model_dump(include=set(WRITABLE)), **data}
            emp = data["employer"]
            if isinstance(emp, dict):  # a card sent back whole: its record's fields are ours
                data["employer"] = {k: v for k, v in emp.items() if k in ("name", "verified")}
    status = current.status if current is not None else ""
    out = check(OpeningInput, data, context={"employer": employer, "status": status}).fields()
    emp = out.get("employer")
    if current is not None and isinstance(emp, dict) and emp.get("name") == current.employer.name:
        # The employer record's link and check stay with the same employer (openings/employers.py).
        kept = current.employer.model_dump(include={"id", "verified_note", "verified_on"})
        out["employer"] = {**kept, **emp}
    return out
