"""The event report of one broadcast, for the employment center, counted from its events.

Every figure comes from the events the broadcast already logged (core/events.py), never from a
counter kept beside them: a counter and the log can drift apart, while a count over the log is
the log. The figures and where each comes from:

    employers, openings     distinct employers and openings ever published (opening.updated,
                            openings.added, card.pinned)
    viewers over time       audience.sample, one per sample interval (a minute) per live
                            broadcast: the viewer sockets across every process at that moment
    peak viewers            the highest sample
    total viewers           the last sample's `unique`: distinct viewer ids seen on a socket
    watch time              an estimate: each sample's viewers times the time to the next
                            sample (the last one: to the end), so viewer-minutes at the
                            samples' resolution, not a sum of sessions
    presented               per opening, the time from its card.pinned to the next pin of
                            another card, its card.unpinned, or the end of the broadcast
    viewers while pinned    per opening, the highest sample in effect while it was pinned
                            (the sample before the pin counts: it is the audience then)
    applications            application.received minus application.deleted (deleted on the
                            applicant's request are not counted)
    interviews, hires       per application, from its application.status events (and an
                            interview.booked counts as reaching interview): interviews
                            are applications that reached `interview` at some point or are
                            hired now; hires are those whose last status is `hired`
    questions               asked: distinct question ids published or held for review
                            (question.author, review.added); answered: whose last state is
                            answered; hidden: whose last state is hidden
    funnel                  views (distinct viewers) -> card (distinct viewers connected while a
                            card was pinned; audience.sample `card`) -> apply -> interview -> hired

The caps. A broadcast's two streams are capped (`event_history`, `host_event_history`, 2000
each by default) so that reconnecting sockets replay a bounded history; a busy broadcast's
chat batches alone pass 2000 public events in well under an hour, so the early pins would be
gone by the end. The report therefore reads its own stream, `keys.report_events`: an uncapped
copy of the few types it needs (REPORT_TYPES), with the same entry ids (seqs), made by
`ARCHIVE_LUA` from both capped streams. The copy is made by every process that holds sockets
of the broadcast, every presence interval (a few seconds), and before every report read; it
is one atomic script, so processes copying at once neither skip nor double an entry. It is
lossless as long as fewer than a cap's worth of events arrive between two copies; should that
ever fail (no process held a socket while a cap's worth of events went by), the script sees
that a stream was trimmed past its cursor and records where, and the report says it is
incomplete instead of quietly counting less. Its size is bounded by the broadcast's activity
in these types (pins, opening edits, applications, status changes, questions, one sample a
minute), not by chat.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from jobcast.core import keys
from redis.asyncio import Redis

# The event types the report counts; the archive copies these and no others.
REPORT_TYPES: tuple[str, ...] = (
    "broadcast.updated",
    "opening.updated",
    "openings.added",
    "card.pinned",
    "card.unpinned",
    "application.received",
    "application.status",
    "application.deleted",
    "question.author",
    "question.updated",
    "question.hidden",
    "review.added",
    "audience.sample",
    "interview.booked",
)

# Status words: the first set is today's, the second the applicant-facing one; both are read.
INTERVIEW_STATUSES = frozenset({"interview"})
HIRED_STATUSES = frozenset({"hired"})

# KEYS: 1 public stream, 2 host stream, 3 the broadcast's last seq, 4 report stream,
#       5 report state hash {cursor, gap, added:1, added:2}
# ARGV: the types to copy
# Copies every entry after the cursor, up to the last seq, whose body's type is one of ARGV,
# into the report stream under the same id, in seq order; then moves the cursor to the last
# seq. Every entry at or below the last seq is already in its stream (an id is drawn and
# appended in one script), so nothing between the cursor and it can arrive later. The state
# keeps each stream's `entries-added` (XINFO) at the last copy: when more entries were added
# since than the range holds, the cap removed some before they were copied, and the first
# seq kept after them is recorded as `gap` (exact: no false alarm when the cap only removed
# entries already copied).
ARCHIVE_LUA = """
local last = redis.call('GET', KEYS[3])
if not last then return 0 end
local cur = redis.call('HGET', KEYS[5], 'cursor') or '0-0'
if cur == last then return 0 end
local function parse(s)
  local ms, n = string.match(s, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(n)
end
local function before(a, b)
  local am, an = parse(a)
  local bm, bn = parse(b)
  return am < bm or (am == bm and an < bn)
end
if before(last, cur) then return 0 end
local wanted = {}
for i = 1, #ARGV do wanted[ARGV[i]] = true end
local a = redis.call('XRANGE', KEYS[1], '(' .. cur, last)
local b = redis.call('XRANGE', KEYS[2], '(' .. cur, last)
-- Every entry added to a stream since the last copy is after the cursor and at most the last
-- seq; when the range holds fewer, the cap removed some before they were copied.
local read = {#a, #b}
for s = 1, 2 do
  local added = 0
  local info = redis.pcall('XINFO', 'STREAM', KEYS[s])
  if type(info) == 'table' and not info['err'] then
    for i = 1, #info, 2 do
      if info[i] == 'entries-added' then added = info[i + 1] end
    end
  end
  local before_n = tonumber(redis.call('HGET', KEYS[5], 'added:' .. s) or '0')
  if added - before_n > read[s] then
    local kept = nil
    if s == 1 and #a > 0 then kept = a[1][1] end
    if s == 2 and #b > 0 then kept = b[1][1] end
    kept = kept or last
    local gap = redis.call('HGET', KEYS[5], 'gap')
    if not gap or before(kept, gap) then redis.call('HSET', KEYS[5], 'gap', kept) end
  end
  redis.call('HSET', KEYS[5], 'added:' .. s, added)
end
local i, j, copied = 1, 1, 0
local function copy(entry)
  local f = entry[2]
  local body = nil
  for k = 1, #f, 2 do if f[k] == 'b' then body = f[k + 1] end end
  if body then
    local t = string.match(body, '^"type":"([^"]+)"')
    if t and wanted[t] then
      local ok = redis.pcall('XADD', KEYS[4], entry[1], 'b', body)
      if type(ok) ~= 'table' or not ok['err'] then copied = copied + 1 end
    end
  end
end
while i <= #a or j <= #b do
  if j > #b or (i <= #a and before(a[i][1], b[j][1])) then
    copy(a[i]); i = i + 1
  else
    copy(b[j]); j = j + 1
  end
end
redis.call('HSET', KEYS[5], 'cursor', last)
return copied
"""


class Archive:
    """Copies a broadcast's report types into its uncapped report stream (ARCHIVE_LUA)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._script = redis.register_script(ARCHIVE_LUA)

    async def copy(self, bid: str) -> int:
        """Copy what arrived since the last copy; returns how many entries were copied."""
        return int(
            await self._script(
                keys=[
                    keys.events(bid),
                    keys.host_events(bid),
                    keys.event_last(bid),
                    keys.report_events(bid),
                    keys.report_state(bid),
                ],
                args=list(REPORT_TYPES),
            )
        )

    async def read(self, bid: str) -> tuple[list[dict[str, Any]], str | None]:
        """Copy, then every archived event (decoded, with its seq) and the gap (the first seq
        kept after events were lost to a cap before they were copied; None: nothing lost)."""
        await self.copy(bid)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xrange(keys.report_events(bid))
            pipe.hget(keys.report_state(bid), "gap")
            entries, gap = await pipe.execute()
        out = []
        for entry_id, fields in entries:
            ev = orjson.loads(b"{" + fields[b"b"])
            ev["seq"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            out.append(ev)
        return out, (gap.decode() if isinstance(gap, bytes) else gap)


@dataclass
class _Pin:
    oid: str
    start: int


def _status_of(ev: dict[str, Any]) -> str:
    return str(ev["data"].get("status") or "")


def _in_effect(samples: Sequence[tuple[int, int]], start: int, end: int) -> int | None:
    """The highest sampled viewer count in effect during [start, end]: the last sample at or
    before `start` and every sample inside (None: no sample covers any of it)."""
    best: int | None = None
    before: int | None = None
    for ts, n in samples:
        if ts <= start:
            before = n
        elif ts <= end:
            best = n if best is None else max(best, n)
    if before is not None:
        best = before if best is None else max(best, before)
    return best


def compute(
    events: Iterable[dict[str, Any]],
    broadcast: dict[str, Any],
    *,
    gap: str | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """The report of one broadcast from its archived events, in seq order. `broadcast` is its
    public form (title, started_at, ended_at, status)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    openings: dict[str, dict[str, Any]] = {}  # oid -> latest published form
    order: list[str] = []
    presented: dict[str, int] = {}
    pins: dict[str, int] = {}
    intervals: list[tuple[str, int, int]] = []
    apps: dict[str, dict[str, Any]] = {}  # aid -> {opening, statuses, deleted}
    questions: dict[str, dict[str, Any]] = {}
    samples: list[tuple[int, int]] = []
    unique = card = 0
    pin: _Pin | None = None
    ended_at = broadcast.get("ended_at")

    def seen(o: dict[str, Any]) -> None:
        oid = o["id"]
        if oid not in openings:
            order.append(oid)
        openings[oid] = o

    def close(at: int) -> None:
        nonlocal pin
        if pin is not None:
            spent = max(0, at - pin.start)
            presented[pin.oid] = presented.get(pin.oid, 0) + spent
            intervals.append((pin.oid, pin.start, at))
            pin = None

    def question(qid: str) -> dict[str, Any]:
        return questions.setdefault(qid, {"opening_id": None, "answered": False, "hidden": False})

    for ev in events:
        t, d, ts = ev["type"], ev.get("data") or {}, int(ev.get("ts") or 0)
        if t in ("opening.updated",):
            seen(d["opening"])
        elif t == "openings.added":
            for o in d.get("openings", []):
                seen(o)
        elif t == "card.pinned":
            o = d["opening"]
            seen(o)
            if pin is None or pin.oid != o["id"]:  # the same card again is an edit of it
                close(ts)
                pin = _Pin(o["id"], int(d.get("pinned_at") or ts))
                pins[o["id"]] = pins.get(o["id"], 0) + 1
        elif t == "card.unpinned":
            if pin is not None and pin.oid == d.get("opening_id"):
                close(ts)
        elif t == "broadcast.updated":
            if d.get("status") == "ended":
                close(int(d.get("ended_at") or ts))
                ended_at = d.get("ended_at") or ts
        elif t == "application.received":
            apps[d["application_id"]] = {
                "opening_id": d["opening_id"],
                "statuses": [],
                "deleted": False,
            }
        elif t == "application.status":
            a = apps.setdefault(
                d["application_id"],
                {"opening_id": d.get("opening_id"), "statuses": [], "deleted": False},
            )
            a["statuses"].append(_status_of(ev))
        elif t == "interview.booked":
            booked = apps.get(str(d.get("application_id")))
            if booked is not None:
                booked["statuses"].append("interview")
        elif t == "application.deleted":
            if d["application_id"] in apps:
                apps[d["application_id"]]["deleted"] = True
        elif t == "question.author":
            question(str(d["id"]))
        elif t == "review.added":
            if d.get("kind") == "question" and d.get("id") is not None:
                question(str(d["id"]))
        elif t == "question.updated":
            q = question(str(d["id"]))
            q["opening_id"] = d.get("opening_id") or q["opening_id"]
            q["answered"] = d.get("status") == "answered"
            q["hidden"] = bool(d.get("hidden"))
        elif t == "question.hidden":
            question(str(d["id"]))["hidden"] = True
        elif t == "audience.sample":
            samples.append((ts, int(d.get("viewers") or 0)))
            unique = max(unique, int(d.get("unique") or 0))
            card = max(card, int(d.get("card") or 0))
    end = int(ended_at) if ended_at else now
    close(end)

    # Watch time: each sample's viewers until the next sample (the last: until the end).
    watch_ms = 0
    for k, (ts, n) in enumerate(samples):
        nxt = samples[k + 1][0] if k + 1 < len(samples) else max(ts, end)
        watch_ms += n * max(0, nxt - ts)

    live = [a for a in apps.values() if not a["deleted"]]

    def interviewed(a: dict[str, Any]) -> bool:
        st = a["statuses"]
        return bool(INTERVIEW_STATUSES & set(st)) or bool(st and st[-1] in HIRED_STATUSES)

    def hired(a: dict[str, Any]) -> bool:
        return bool(a["statuses"]) and a["statuses"][-1] in HIRED_STATUSES

    per_opening = []
    for oid in order:
        o = openings[oid]
        mine = [a for a in live if a["opening_id"] == oid]
        peak: int | None = None
        for p_oid, start, stop in intervals:
            if p_oid == oid:
                v = _in_effect(samples, start, stop)
                if v is not None:
                    peak = v if peak is None else max(peak, v)
        per_opening.append(
            {
                "id": oid,
                "title": o.get("title", ""),
                "employer": (o.get("employer") or {}).get("name", ""),
                "presented_ms": presented.get(oid, 0),
                "pins": pins.get(oid, 0),
                "viewers_pinned": peak,
                "applications": len(mine),
                "interviews": sum(1 for a in mine if interviewed(a)),
                "hires": sum(1 for a in mine if hired(a)),
                "questions": sum(1 for q in questions.values() if q["opening_id"] == oid),
            }
        )
    employers = {p["employer"] for p in per_opening if p["employer"]}
    n_apps = len(live)
    n_interviews = sum(1 for a in live if interviewed(a))
    n_hires = sum(1 for a in live if hired(a))
    return {
        "broadcast": {
            "id": broadcast.get("id"),
            "title": broadcast.get("title", ""),
            "status": broadcast.get("status"),
            "started_at": broadcast.get("started_at"),
            "ended_at": ended_at,
        },
        "complete": gap is None,
        "gap_at": gap,
        "employers": len(employers),
        "openings": len(per_opening),
        "viewers": {
            "peak": max((n for _, n in samples), default=0),
            "unique": unique,
            "card": card,
            "samples": [{"ts": ts, "viewers": n} for ts, n in samples],
            "watch_ms": watch_ms,
            "watch_estimated": True,
        },
        "applications": n_apps,
        "interviews": n_interviews,
        "hires": n_hires,
        "questions": {
            "asked": len(questions),
            "answered": sum(1 for q in questions.values() if q["answered"]),
            "hidden": sum(1 for q in questions.values() if q["hidden"]),
        },
        "funnel": [
            {"step": "views", "count": unique},
            {"step": "card", "count": card},
            {"step": "apply", "count": n_apps},
            {"step": "interview", "count": n_interviews},
            {"step": "hired", "count": n_hires},
        ],
        "per_opening": per_opening,
    }
