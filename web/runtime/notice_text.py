"""The text of a notice, the message the gateway sends to the applicant (an SMS, a WeChat
template message), in the notice's language from the pages' catalogue (web/pages/i18n.py).

Each kind has an English msgid with `%(name)s` fields, translated in both .po files like
the pages' strings (tests/test_notifier.py checks that every one is). Fields come from the
notice's `data` (docs/protocol.md, "Notifier"); one that is missing is left empty, so a
producer adding a field never breaks the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobcast.openings.models import CST
from jobcast.web.pages.i18n import DEFAULT_LANG, LANGS, N_, translations

# application.status: one message per status the applicant can see (the words before
# "submitted" and "not_selected" were "new" and "rejected"; both are read).
STATUS_MESSAGES: dict[str, str] = {
    "submitted": N_("Your application for %(title)s at %(employer)s has been received."),
    "viewed": N_("%(employer)s has viewed your application for %(title)s."),
    "contacted": N_("%(employer)s will contact you about your application for %(title)s."),
    "interview": N_(
        "%(employer)s invites you to an interview for %(title)s. Choose a time on the Jobcast page."
    ),
    "hired": N_("Congratulations: %(employer)s offers you the job %(title)s."),
    "not_selected": N_(
        "%(employer)s did not select your application for %(title)s this time."
        " Thank you for applying."
    ),
}
OLD_STATUSES = {"new": "submitted", "rejected": "not_selected"}
# The invitation when the host gave the interview's time.
INTERVIEW_AT = N_("%(employer)s invites you to an interview for %(title)s on %(when)s.")
# Every other kind, and a status without a message of its own.
KIND_MESSAGES: dict[str, str] = {
    "application.status": N_(
        "The status of your application for %(title)s at %(employer)s changed."
    ),
    "interview.booked": N_("Interview booked: %(title)s at %(employer)s, %(when)s."),
    "interview.cancelled": N_(
        "Your interview for %(title)s at %(employer)s on %(when)s is cancelled."
    ),
    "interview.reminder": N_(
        "Reminder: your interview for %(title)s at %(employer)s is at %(when)s."
    ),
}
OTHER = N_("There is news about your application on Jobcast.")
PLACE = N_("Place: %(place)s")
LINK = N_("Link: %(link)s")


def msgids() -> set[str]:
    """Every msgid a notice's text can use (each must be in both catalogues)."""
    return {*STATUS_MESSAGES.values(), *KIND_MESSAGES.values(), INTERVIEW_AT, OTHER, PLACE, LINK}


class _Fields(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def when(ms: Any) -> str:
    """An interview time as 2026-03-20 09:00, China time (empty if not a time)."""
    try:
        return datetime.fromtimestamp(int(ms) / 1000, CST).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def render(notice: Mapping[str, Any]) -> str:
    """The message for `notice` in its `lang` (zh-CN when that is not a page language)."""
    lang = notice.get("lang")
    t = translations()[lang if lang in LANGS else DEFAULT_LANG]
    data = notice.get("data") or {}
    if not isinstance(data, Mapping):
        data = {}
    kind = notice.get("kind")
    fields = _Fields({k: str(v) for k, v in data.items() if isinstance(v, (str, int, float))})
    fields.setdefault("title", str(data.get("opening_title") or ""))
    fields.setdefault("employer", str(data.get("employer_name") or ""))
    fields["when"] = when(data.get("start") or data.get("starts_at"))
    msgid = KIND_MESSAGES.get(str(kind), OTHER)
    status = str(data.get("status"))
    status = OLD_STATUSES.get(status, status)
    if kind == "application.status":
        msgid = STATUS_MESSAGES.get(status, msgid)
        if status == "interview" and fields["when"]:
            msgid = INTERVIEW_AT
    parts = [t.gettext(msgid) % fields]
    if kind in ("interview.booked", "interview.reminder") or msgid == INTERVIEW_AT:
        if fields.get("place"):
            parts.append(t.gettext(PLACE) % fields)
        if fields.get("link"):
            parts.append(t.gettext(LINK) % fields)
    sep = "" if t.lang == "zh-CN" else " "
    return sep.join(parts)
