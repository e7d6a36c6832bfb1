"""CSV import and export as employment centers keep their lists in Excel.

Import reads UTF-8 (with or without BOM), GBK/GB18030 (what Excel writes on Chinese Windows)
and UTF-16 ("Unicode text"), comma, tab or semicolon separated, with Chinese or English
headers. Every row is validated like an API request; the caller stores all rows or none.

`template_openings` is an empty list to fill in: the Chinese headers import reads and two
example rows, as UTF-8 with a BOM or as GBK (for Excel on Chinese Windows); it imports as is.

Export writes UTF-8 with a BOM (so Excel shows Chinese intact) and defuses cells that Excel
would run as formulas (a leading = + - @, in any width, gets a ' in front; import takes it
off again).
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from jobcast.core.errors import Invalid, TooLarge
from jobcast.openings.models import (
    CST,
    EDUCATION,
    SALARY_REQUIRED,
    STATUSES,
    WRITABLE,
    Opening,
    deadline_end_ms,
    parse_deadline,
    validate_opening,
)

MAX_ROWS = 2000
BOM = "\ufeff"

# Canonical field -> header spellings (compared after `_norm_header`).
HEADERS: dict[str, tuple[str, ...]] = {
    "title": ("岗位名称", "职位名称", "岗位", "职位", "招聘岗位", "title", "jobtitle", "position"),
    "employer": (
        "单位名称",
        "企业名称",
        "用人单位",
        "公司名称",
        "招聘单位",
        "单位",
        "employer",
        "company",
        "employername",
    ),
    "employer_verified": ("已认证", "认证", "单位认证", "verified", "employerverified"),
    "city": ("工作地点", "工作城市", "城市", "所在城市", "工作地区", "city", "location"),
    "address": ("工作地址", "详细地址", "地址", "address", "workaddress"),
    "salary_min": ("薪资下限", "最低薪资", "月薪下限", "工资下限", "salarymin", "minsalary"),
    "salary_max": ("薪资上限", "最高薪资", "月薪上限", "工资上限", "salarymax", "maxsalary"),
    "salary": ("薪资", "薪资范围", "月薪", "薪资待遇", "工资", "salary", "salaryrange"),
    "headcount": ("招聘人数", "人数", "需求人数", "headcount", "openings", "vacancies"),
    "education": ("学历要求", "学历", "最低学历", "education"),
    "majors": ("专业要求", "专业", "majors", "major"),
    "experience": ("工作经验", "经验要求", "经验", "experience"),
    "description": (
        "岗位职责",
        "岗位描述",
        "职位描述",
        "岗位要求",
        "任职要求",
        "岗位介绍",
        "description",
    ),
    "benefits": ("福利待遇", "福利", "benefits"),
    "deadline": ("截止日期", "报名截止", "截止时间", "报名截止日期", "deadline"),
    "tags": ("标签", "tags"),
    "status": ("状态", "status"),
    "id": ("岗位编号", "编号", "序号", "id", "no"),  # read and ignored
}
_BY_HEADER = {alias: name for name, aliases in HEADERS.items() for alias in aliases}
REQUIRED_COLUMNS = ("title", "employer", "city")
_STATUS_WORDS = {
    "草稿": "draft",
    "未发布": "draft",
    "发布": "published",
    "已发布": "published",
    "招聘中": "published",
    "关闭": "closed",
    "已关闭": "closed",
    "停止招聘": "closed",
    "已结束": "closed",
}
STATUS_LABELS = {"draft": "草稿", "published": "已发布", "closed": "已关闭"}

# The opening's fields (the model's, in its order) as columns: the employer takes two, its name
# and whether it is verified; the import's `status` and `id` columns are read by name.
FIELD_COLUMNS = tuple(
    c
    for name in WRITABLE
    for c in (("employer", "employer_verified") if name == "employer" else (name,))
)
# Export columns, in order: (header, field). Headers are ones the importer reads back.
EXPORT_COLUMNS = tuple((HEADERS[f][0], f) for f in ("id", *FIELD_COLUMNS))
# Columns that go into the opening as written (the others are read below).
_PLAIN = tuple(c for c in FIELD_COLUMNS if c not in ("employer", "employer_verified", "status"))

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Spreadsheets read the full-width and small forms (＝＋－＠, ﹦﹢﹣﹫) and the minus sign as
# the ASCII ones, so those start formulas too.
_FORMULA_ALSO = ("\u2212",)


def _formula_char(c: str) -> bool:
    return c in _FORMULA_ALSO or unicodedata.normalize("NFKC", c) in _FORMULA_START


@dataclass
class ImportReport:
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per data row
    valid: list[dict[str, Any]] = field(default_factory=list)  # validated openings
    ignored_columns: list[str] = field(default_factory=list)
    encoding: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # field -> its header in the file

    @property
    def errors(self) -> int:
        return sum(1 for r in self.rows if not r["ok"])

    def public(self, *, dry_run: bool, created: list[Opening] | None = None) -> dict[str, Any]:
        return {
            "dry_run": dry_run,
            "ok": self.errors == 0,
            "encoding": self.encoding,
            "total": len(self.rows),
            "valid": len(self.rows) - self.errors,
            "invalid": self.errors,
            "ignored_columns": self.ignored_columns,
            # the column each field of `rows[].errors` came from, as the file spells it (or
            # its usual Chinese name): errors are shown by column, not by internal name
            "columns": {**{f: a[0] for f, a in HEADERS.items()}, **self.headers},
            "rows": self.rows,
            "created": [o.id for o in created] if created is not None else [],
        }


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name) for UTF-8 with or without BOM, UTF-16 with BOM, or GB18030."""
    try:
        if data.startswith(b"\xef\xbb\xbf"):
            return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16"), "utf-16"
    except UnicodeDecodeError:  # a BOM, then bytes that are not that encoding (or cut short)
        raise Invalid(
            "the file is not the text its byte-order mark announces",
            fields={"file": "unknown encoding"},
        ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is a superset of GBK and GB2312, which Excel uses for "CSV" on Chinese Windows.
        return data.decode("gb18030"), "gbk"
    except UnicodeDecodeError:
        raise Invalid(
            "the file is neither UTF-8 nor GBK text", fields={"file": "unknown encoding"}
        ) from None


def _norm_header(h: str) -> str:
    h = h.replace(BOM, "").strip().lower()
    h = re.sub(r"[（(【\[].*?[)）】\]]", "", h)  # "薪资下限（元/月）" -> "薪资下限"
    return re.sub(r"[\s_*:：\-]", "", h)


def _cell(value: str) -> str:
    v = value.strip()
    if len(v) > 1 and v[0] == "'" and _formula_char(v[1]):
        return v[1:]
    return v


def _split_salary(value: str) -> tuple[str, str] | None:
    """'4000-6000', '4000～6000元/月', '4k-6k' -> ('4000', '6000')."""
    s = value.replace(",", "").replace("，", "").replace(" ", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kK千])?[-~～至到—]+(\d+(?:\.\d+)?)([kK千])?(元.*)?", s)
    if not m:
        return None

    def amount(n: str, k: str | None) -> str:
        v = float(n) * (1000 if k else 1)
        return str(int(v)) if v.is_integer() else n

    return amount(m.group(1), m.group(2) or m.group(4)), amount(m.group(3), m.group(4))


def _row_to_input(row: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {name: row[name] for name in _PLAIN if name in row}
    if "salary" in row and not row.get("salary_min") and not row.get("salary_max"):
        parts = _split_salary(row["salary"])
        if parts is not None:
            data["salary_min"], data["salary_max"] = parts
        elif row["salary"]:
            data["salary_min"] = data["salary_max"] = row["salary"]
    data["employer"] = {
        "name": row.get("employer", ""),
        "verified": row.get("employer_verified", "") or False,
    }
    status = row.get("status", "")
    if status:
        data["status"] = _STATUS_WORDS.get(status, status.lower())
    return data


def _preview(row: dict[str, str], inp: dict[str, Any], valid: dict[str, Any] | None) -> dict:
    """What the host checks before importing a row: the card's main fields as they will be
    stored (a valid row) or as the file has them (a bad one)."""
    if valid is not None:
        return {
            "employer": valid["employer"]["name"],
            "city": valid["city"],
            "salary": f"{valid['salary_min']}-{valid['salary_max']}",
            "deadline": valid["deadline"],
            "deadline_ms": valid["deadline_ms"],
            "status": valid["status"],
        }
    salary = row.get("salary", "")
    if row.get("salary_min") or row.get("salary_max"):
        salary = f"{row.get('salary_min', '')}-{row.get('salary_max', '')}"
    status = inp.get("status", "")
    deadline, deadline_ms = row.get("deadline", "")[:40], 0
    with contextlib.suppress(ValueError):  # pydantic's errors are ValueErrors
        deadline = parse_deadline(deadline)
        deadline_ms = deadline_end_ms(deadline)
    return {
        "employer": row.get("employer", "")[:100],
        "city": row.get("city", "")[:40],
        "salary": salary[:40],
        "deadline": deadline,
        "deadline_ms": deadline_ms,
        "status": status if status in STATUSES else "",
    }


def _salary_errors(errors: dict[str, str], one_column: bool) -> dict[str, str]:
    """One salary error per row: a range written in one column (薪资 4000-6000) is that
    column's fault, and a range left out is said once, not for each end."""
    lo, hi = errors.get("salary_min"), errors.get("salary_max")
    if one_column:
        merged = {"salary": lo if lo is not None else hi}
    elif lo == hi == SALARY_REQUIRED:
        merged = {"salary_min": lo}
    else:
        return errors
    out: dict[str, str] = {}
    for k, v in errors.items():
        if k in ("salary_min", "salary_max"):
            out.update(merged)  # type: ignore[arg-type]
        else:
            out[k] = v
    return out


def parse_openings(
    data: bytes,
    *,
    default_status: str = "published",
    status: str | None = None,
    max_bytes: int | None = None,
) -> ImportReport:
    """Decode, read and validate every row. Raises Invalid for an unreadable file.

    A row's status is its 状态 cell, else `default_status`; `status` given overrides every
    row's (an import as drafts during a broadcast must not publish a row whose cell says 发布).
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise TooLarge(f"file larger than {max_bytes} bytes", extra={"limit": max_bytes})
    text, encoding = decode(data)
    report = ImportReport(encoding=encoding)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    first = text.split("\n", 1)[0]
    delimiter = max((",", "\t", ";"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise Invalid("the file is empty", fields={"file": "no header row"}) from None
    except csv.Error as e:
        raise Invalid(f"not a CSV file: {e}", fields={"file": "unreadable"}) from None
    columns: list[str | None] = []
    for h in header:
        name = _BY_HEADER.get(_norm_header(h))
        if name is None and h.strip():
            report.ignored_columns.append(h.strip())
        if name is not None and name not in columns:
            report.headers[name] = h.strip()
        columns.append(name if name not in columns else None)
    missing = [HEADERS[c][0] for c in REQUIRED_COLUMNS if c not in columns]
    if not ({"salary_min", "salary_max"} <= set(columns) or "salary" in columns):
        missing.append(
            f"{HEADERS['salary'][0]} ({HEADERS['salary_min'][0]}/{HEADERS['salary_max'][0]})"
        )
    if missing:
        raise Invalid(
            "the file lacks required columns",
            fields={"columns": "missing: " + ", ".join(missing)},
            extra={"ignored_columns": report.ignored_columns},
        )
    line = 1
    try:
        for cells in reader:
            line += 1
            if not any(c.strip() for c in cells):
                continue
            if len(report.rows) >= MAX_ROWS:
                raise Invalid(
                    f"at most {MAX_ROWS} rows per import", fields={"file": "too many rows"}
                )
            row = {col: _cell(v) for col, v in zip(columns, cells, strict=False) if col is not None}
            entry: dict[str, Any] = {"row": line, "title": row.get("title", "")[:60]}
            inp = _row_to_input(row)
            if status is not None:
                inp["status"] = status
            inp.setdefault("status", default_status)
            valid: dict[str, Any] | None = None
            try:
                valid = validate_opening(inp)
            except Invalid as e:
                one_column = "salary" in row and not (
                    row.get("salary_min") or row.get("salary_max")
                )
                entry.update(ok=False, errors=_salary_errors(e.fields, one_column))
            else:
                entry["ok"] = True
                report.valid.append(valid)
            entry.update(_preview(row, inp, valid))
            if any(c.strip() for c in cells[len(columns) :]):
                if entry["ok"]:
                    report.valid.pop()
                entry.update(ok=False, errors={**entry.get("errors", {}), "row": "extra cells"})
            report.rows.append(entry)
    except csv.Error as e:
        raise Invalid(f"line {line}: {e}", fields={"file": f"unreadable at line {line}"}) from None
    if not report.rows:
        raise Invalid("the file has no data rows", fields={"file": "no rows"})
    return report


# The template's columns: every field a host fills in, by the header import reads first.
TEMPLATE_COLUMNS = tuple(
    (HEADERS[f][0], f)
    for f in FIELD_COLUMNS
    if f not in ("employer_verified", "status")  # the center verifies; the import decides
)
TEMPLATE_ENCODINGS = {"utf-8": "utf-8-sig", "gbk": "gbk"}
# Two example rows (deadline: days from today, so that the template imports as it is).
_TEMPLATE_ROWS: tuple[dict[str, Any], ...] = (
    {
        "title": "数控车床操作工",
        "employer": "鸡西市示例机械制造有限公司",
        "city": "鸡西市",
        "address": "鸡西市鸡冠区示例路1号",
        "salary_min": 4500,
        "salary_max": 7000,
        "headcount": 10,
        "education": "中专及以上",
        "majors": "数控技术、机电一体化",
        "experience": "1年以上",
        "description": "按图纸操作数控车床加工零件；\n做好设备日常保养。",
        "benefits": "五险一金、包食宿、年终奖",
        "deadline": 30,
        "tags": "急招、技能岗",
    },
    {
        "title": "幼儿教师",
        "employer": "鸡西市示例幼儿园",
        "city": "鸡西市",
        "address": "",
        "salary_min": 3500,
        "salary_max": 5000,
        "headcount": 3,
        "education": "大专",
        "majors": "学前教育",
        "experience": "不限",
        "description": "负责幼儿日常保育与教学活动。",
        "benefits": "五险、寒暑假",
        "deadline": 45,
        "tags": "应届生",
    },
)


def template_openings(encoding: str, today: date) -> bytes:
    """The import template in `encoding` ("utf-8": with a BOM, or "gbk"); its example rows'
    deadlines are counted from `today` (China time), so re-importing it as is works."""
    codec = TEMPLATE_ENCODINGS[encoding]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([h for h, _ in TEMPLATE_COLUMNS])
    for example in _TEMPLATE_ROWS:
        values = {**example, "deadline": (today + timedelta(days=example["deadline"])).isoformat()}
        w.writerow([_safe(values[f]) for _, f in TEMPLATE_COLUMNS])
    return buf.getvalue().encode(codec)


def _safe(value: Any) -> str:
    s = "" if value is None else str(value)
    return "'" + s if s and _formula_char(s[0]) else s


def _writer() -> tuple[io.StringIO, Any]:
    buf = io.StringIO()
    buf.write(BOM)
    return buf, csv.writer(buf, lineterminator="\r\n")


def export_openings(items: Iterable[Opening]) -> bytes:
    buf, w = _writer()
    w.writerow([h for h, _ in EXPORT_COLUMNS])
    for o in items:
        values = {
            **o.public(),
            "employer": o.employer.name,
            "employer_verified": "是" if o.employer.verified else "否",
            "education": EDUCATION[o.education][1],
            "majors": "、".join(o.majors),
            "benefits": "、".join(o.benefits),
            "tags": "、".join(o.tags),
            "status": STATUS_LABELS[o.status],
        }
        w.writerow([_safe(values[f]) for _, f in EXPORT_COLUMNS])
    return buf.getvalue().encode("utf-8")


APPLICATION_COLUMNS = (
    ("申请编号", "id"),
    ("岗位编号", "opening_id"),
    ("岗位名称", "opening_title"),
    ("单位名称", "employer"),
    ("姓名", "name"),
    ("手机号", "phone"),
    ("邮箱", "email"),
    ("学校", "school"),
    ("专业", "major"),
    ("学历", "degree_label"),
    ("毕业年份", "graduation_year"),
    ("留言", "note"),
    ("状态", "status"),
    ("申请时间", "created_at"),
    ("同意书版本", "consent_version"),
    ("同意时间", "consented_at"),
    # Every submission is stored: these name the others to the same opening from this number.
    ("同号其他申请数", "same_phone"),
    ("同号其他申请编号", "same_phone_ids"),
)


def _cst(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, CST).strftime("%Y-%m-%d %H:%M:%S") if ms else ""


def export_applications(items: Iterable[dict[str, Any]]) -> bytes:
    buf, w = _writer()
    w.writerow([h for h, _ in APPLICATION_COLUMNS])
    for a in items:
        phone = a["phone"]
        values = {
            **a,
            # Mainland numbers as the 11 digits people dial; others keep their +country.
            "phone": phone[3:] if phone.startswith("+86") else phone,
            "graduation_year": a["graduation_year"] or "",
            "created_at": _cst(a["created_at"]),
            "consented_at": _cst(a["consented_at"]),
            "same_phone": a.get("same_phone", 0),
            "same_phone_ids": " ".join(a.get("same_phone_ids", ())),
        }
        w.writerow([_safe(values[f]) for _, f in APPLICATION_COLUMNS])
    return buf.getvalue().encode("utf-8")
