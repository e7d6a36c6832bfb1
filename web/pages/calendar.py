"""A broadcast as a calendar file (RFC 5545), for viewers who want to be reminded (预约).

One VEVENT at the broadcast's scheduled time, an hour long (broadcasts have no planned end),
with the viewer link and a reminder ten minutes before. The UID is stable per broadcast, so
adding the file again after the host moves the time updates the same entry instead of adding
a second one; SEQUENCE follows the broadcast's last change for the same reason.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jobcast.core.broadcasts import Broadcast

DURATION = "PT1H"
REMINDER = "-PT10M"


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")


def escape_text(value: str) -> str:
    """TEXT value escaping (RFC 5545 3.3.11): backslash, semicolon, comma, line breaks."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def fold(line: str) -> str:
    """Lines longer than 75 octets continue on the next line after a space (3.1), cut
    between characters, never inside a UTF-8 sequence."""
    out: list[str] = []
    cur, size, limit = "", 0, 75
    for ch in line:
        n = len(ch.encode())
        if size + n > limit:
            out.append(cur)
            cur, size, limit = "", 0, 74  # continuation lines start with one space
        cur += ch
        size += n
    out.append(cur)
    return "\r\n ".join(out)


def broadcast_ics(
    b: Broadcast, url: str, host: str, *, description: str, reminder: str, now_ms: int
) -> str:
    """The calendar file of a scheduled broadcast (b.scheduled_at must be set)."""
    assert b.scheduled_at is not None
    text = f"{b.description}\n\n{description}\n{url}" if b.description else f"{description}\n{url}"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Jobcast//Broadcasts//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:broadcast-{b.id}@{host}",
        f"DTSTAMP:{_stamp(now_ms)}",
        f"SEQUENCE:{b.updated_at // 1000}",
        f"DTSTART:{_stamp(b.scheduled_at)}",
        f"DURATION:{DURATION}",
        f"SUMMARY:{escape_text(b.title)}",
        f"DESCRIPTION:{escape_text(text)}",
        f"URL:{url}",
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        f"TRIGGER:{REMINDER}",
        f"DESCRIPTION:{escape_text(reminder)}",
        "END:VALARM",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return "".join(fold(line) + "\r\n" for line in lines)
