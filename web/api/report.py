"""The event report (JSON, CSV, a printable page with charts) and each opening's FAQ and page.

The report is counted from the broadcast's events (openings/report.py says which and how);
this module adds the one figure the log did not hold, the audience: `Audience` runs in every
process, every presence interval, and for each broadcast with local sockets

- adds the viewer ids of its sockets to the broadcast's seen set (and to the card set while a
  card is pinned), each id once per process, so `unique` and `card` count people, not sockets;
- copies the new report events into the uncapped report stream (openings/report.Archive);
- while the broadcast is live, tries to take the sample lock (SET NX PX, one minute): the
  process that gets it publishes one host-only `audience.sample` {viewers, unique, card}, the
  viewer sockets across every process (Presence.total) and the two set sizes then.

A viewer whose socket opens and closes between two presence ticks is not seen; watch time is
estimated from the samples (openings/report.py). Nothing of this reaches viewers.

The FAQ of an opening is read from the questions themselves: approved (in the votes zset),
answered, not hidden, tied to that opening; only the question, the answer, its time and the
votes, never who asked.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from jobcast.chat.questions import decode as decode_question
from jobcast.core import keys, tasks
from jobcast.core.errors import NotFound
from jobcast.core.events import HOST, EventLog
from jobcast.core.ids import is_valid_id
from jobcast.openings import csvio
from jobcast.openings import report as counting
from jobcast.web.access import orgs
from jobcast.web.access.requests import host_user, require_host
from jobcast.web.api.openings import OPENINGS
from jobcast.web.appkeys import BROADCASTS, EVENT_LOG, HUB, PRESENCE, REDIS, SETTINGS
from jobcast.web.jsonutil import json_response
from jobcast.web.pages import charts, i18n
from jobcast.web.pages.i18n import N_
from jobcast.web.realtime.hub import Hub
from jobcast.web.realtime.presence import Presence
from redis.asyncio import Redis

log = logging.getLogger("jobcast.report")
routes = web.RouteTableDef()

SAMPLE_EVERY = 60.0  # seconds between audience samples of a live broadcast


@dataclass(eq=False)
class Audience:
    redis: Redis
    log: EventLog
    hub: Hub
    presence: Presence
    archive: counting.Archive
    sample_every: float = SAMPLE_EVERY
    _seen: dict[str, set[str]] = field(default_factory=dict)
    _card: dict[str, set[str]] = field(default_factory=dict)

    async def tick(self) -> None:
        for bid in list(self.hub.sockets):
            await self.tick_one(bid)
        for gone in set(self._seen) - set(self.hub.sockets):
            self._seen.pop(gone, None)
            self._card.pop(gone, None)

    async def tick_one(self, bid: str) -> None:
        vids: set[str] = set()
        for sock in list(self.hub.sockets.get(bid, ())):
            ctx = sock.meta.get("ctx")
            if ctx is not None and not ctx.is_staff and ctx.viewer_id:
                vids.add(ctx.viewer_id)
        seen = self._seen.setdefault(bid, set())
        card = self._card.setdefault(bid, set())
        new = vids - seen
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.pinned(bid))
            pipe.hget(keys.broadcast(bid), "status")
            if new:
                pipe.sadd(keys.audience_seen(bid), *new)
            pinned, status, *_ = await pipe.execute()
        seen |= new
        new_card = vids - card if pinned else set()
        if new_card:
            await self.redis.sadd(keys.audience_card(bid), *new_card)
            card |= new_card
        await self.archive.copy(bid)
        if status != b"live":
            return
        took = await self.redis.set(
            keys.audience_tick(bid), "1", nx=True, px=max(1, int(self.sample_every * 1000))
        )
        if not took:
            return
        viewers = await self.presence.total(bid)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.scard(keys.audience_seen(bid))
            pipe.scard(keys.audience_card(bid))
            unique, card_n = await pipe.execute()
        data = {"viewers": viewers, "unique": int(unique), "card": int(card_n)}
        await self.log.publish(bid, "audience.sample", data, audience=HOST)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except Exception as e:  # Redis down: the next tick tries again
                log.warning("audience tick failed", extra={"error": str(e)})


AUDIENCE = web.AppKey("audience", Audience)
ARCHIVE = web.AppKey("report_archive", counting.Archive)


async def _ctx(app: web.Application) -> AsyncIterator[None]:
    archive = counting.Archive(app[REDIS])
    app[ARCHIVE] = archive
    audience = Audience(app[REDIS], app[EVENT_LOG], app[HUB], app[PRESENCE], archive)
    app[AUDIENCE] = audience
    task = asyncio.create_task(
        audience.run(app[SETTINGS].presence_interval), name="jobcast-audience"
    )
    yield
    await tasks.stop(task)


# -- the report --------------------------------------------------------------------------------


async def build(app: web.Application, bid: str) -> dict[str, Any]:
    """The report of `bid` now (NotFound for an unknown broadcast)."""
    b = await app[BROADCASTS].get(bid)
    events, gap = await app[ARCHIVE].read(bid)
    return counting.compute(events, b.public(), gap=gap)


@routes.get("/api/broadcasts/{bid}/report")
async def report_json(request: web.Request) -> web.Response:
    await require_host(request)
    return json_response(await build(request.app, request.match_info["bid"]))


def minutes(ms: int | None) -> str:
    return "" if ms is None else f"{ms / 60000:.1f}"


def report_csv(r: dict[str, Any]) -> bytes:
    """The report as one CSV file (UTF-8 with BOM, Chinese headers, formula-safe cells): the
    summary, then one row per opening, then the viewer samples."""
    buf = io.StringIO()
    buf.write(csvio.BOM)
    w = csv.writer(buf, lineterminator="\r\n")

    def row(*cells: Any) -> None:
        w.writerow([csvio._safe(c) for c in cells])

    q = r["questions"]
    v = r["viewers"]
    row("指标", "数值")
    for label, value in (
        ("直播", r["broadcast"]["title"]),
        ("数据完整", "是" if r["complete"] else "否"),
        ("用人单位数", r["employers"]),
        ("岗位数", r["openings"]),
        ("最高同时在线", v["peak"]),
        ("累计观看人数", v["unique"]),
        ("观看时长（人·分钟，估算）", minutes(v["watch_ms"])),
        ("投递数", r["applications"]),
        ("面试数", r["interviews"]),
        ("录用数", r["hires"]),
        ("提问数", q["asked"]),
        ("已回答", q["answered"]),
        ("已隐藏", q["hidden"]),
    ):
        row(label, value)
    for step in r["funnel"]:
        row("漏斗：" + FUNNEL_ZH[step["step"]], step["count"])
    row()
    row(
        "岗位ID",
        "岗位名称",
        "用人单位",
        "讲解时长（分钟）",
        "讲解次数",
        "讲解时在线人数",
        "投递数",
        "面试数",
        "录用数",
        "提问数",
    )
    for o in r["per_opening"]:
        row(
            o["id"],
            o["title"],
            o["employer"],
            minutes(o["presented_ms"]),
            o["pins"],
            "" if o["viewers_pinned"] is None else o["viewers_pinned"],
            o["applications"],
            o["interviews"],
            o["hires"],
            o["questions"],
        )
    row()
    row("时间", "在线人数")
    for s in v["samples"]:
        row(charts.hhmm(s["ts"]), s["viewers"])
    return buf.getvalue().encode("utf-8")


FUNNEL_ZH = {
    "views": "观看",
    "card": "看到岗位卡片",
    "apply": "投递",
    "interview": "面试",
    "hired": "录用",
}


@routes.get("/api/broadcasts/{bid}/report.csv")
async def report_csv_route(request: web.Request) -> web.Response:
    await require_host(request)
    bid = request.match_info["bid"]
    body = report_csv(await build(request.app, bid))
    return web.Response(
        body=body,
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="report-{bid}.csv"'},
    )


# -- the FAQ -----------------------------------------------------------------------------------


async def faq(redis: Redis, bid: str, oid: str) -> list[dict[str, Any]]:
    """The answered, approved, visible questions about opening `oid`, most votes first; no
    names and no viewer ids."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrange(keys.question_votes(bid), 0, -1, withscores=True)
        pipe.smembers(keys.question_hidden(bid))
        scored, hidden_raw = await pipe.execute()
    hidden = {h.decode() for h in hidden_raw}
    rows = [(m.decode(), int(s)) for m, s in scored if m.decode() not in hidden]
    async with redis.pipeline(transaction=False) as pipe:
        for qid, _ in rows:
            pipe.hgetall(keys.question(bid, qid))
        hashes = await pipe.execute()
    out = []
    for (_qid, votes), h in zip(rows, hashes, strict=True):
        if not h:
            continue
        q = decode_question(h)
        if q["status"] != "answered" or q["opening_id"] != oid or not q["answer"]:
            continue
        out.append(
            {
                "id": q["id"],
                "text": q["text"],
                "answer": q["answer"],
                "answered_at": q["answered_at"],
                "votes": votes,
            }
        )
    out.sort(key=lambda x: (-x["votes"], int(x["id"])))
    return out


async def _public_opening(request: web.Request) -> tuple[str, Any]:
    bid, oid = request.match_info["bid"], request.match_info["oid"]
    await request.app[BROADCASTS].get(bid)
    if not is_valid_id(oid):
        raise NotFound("no such opening", code="opening_not_found")
    o = await request.app[OPENINGS].get(bid, oid)  # published ones only
    return bid, o


@routes.get("/api/broadcasts/{bid}/openings/{oid}/faq")
async def faq_json(request: web.Request) -> web.Response:
    bid, o = await _public_opening(request)
    items = await faq(request.app[REDIS], bid, o.id)
    return json_response({"opening_id": o.id, "questions": items})


# -- pages -------------------------------------------------------------------------------------


@routes.get("/b/{bid}/o/{oid}")
async def opening_page(request: web.Request) -> web.Response:
    """One opening: its card, a way to apply, and its FAQ; works without scripts."""
    from jobcast.web.pages import views

    try:
        bid, o = await _public_opening(request)
        b = await request.app[BROADCASTS].get(bid)
    except NotFound:
        return views.render(request, "not_found.html", status=404)
    items = await faq(request.app[REDIS], bid, o.id)
    return views.render(
        request,
        "opening.html",
        broadcast=b.public(),
        o=o.public(),
        faq=items,
        viewer_url=f"/b/{bid}",
    )


@routes.get("/host/b/{bid}/report")
async def report_page(request: web.Request) -> web.Response:
    """The report with its charts; prints as it shows (the print stylesheet drops the rest)."""
    from jobcast.web.pages import views

    user = await host_user(request)
    if user is None:
        return views.render(request, "host_login.html", user=None)
    bid = request.match_info["bid"]
    try:
        if user.role != "host":
            raise NotFound("the report is for hosts", code="broadcast_not_found")
        await request.app[BROADCASTS].get(bid)
        await orgs.check_broadcast(request, bid)
    except NotFound:
        return views.render(request, "not_found.html", status=404)
    r = await build(request.app, bid)
    tr = i18n.translations()[views.page_lang(request)]
    _ = tr.gettext
    per = r["per_opening"]
    figures = {
        "viewers": charts.line_chart(
            [(s["ts"], s["viewers"]) for s in r["viewers"]["samples"]],
            title=_("Viewers over time"),
            empty=_("No viewer samples yet"),
        ),
        "funnel": charts.bar_chart(
            [(_(FUNNEL_LABELS[f["step"]]), f["count"]) for f in r["funnel"]],
            title=_("From viewing to hiring"),
            empty=_("No data yet"),
        ),
        "applications": charts.bar_chart(
            [(o["title"], o["applications"]) for o in per],
            title=_("Applications per opening"),
            empty=_("No openings yet"),
        ),
        "presented": charts.bar_chart(
            [(o["title"], round(o["presented_ms"] / 60000, 1)) for o in per],
            title=_("Minutes presented per opening"),
            empty=_("No openings yet"),
            unit=" " + _("min"),
        ),
    }
    return views.render(
        request,
        "report.html",
        user=user,
        r=r,
        figures=figures,
        minutes=minutes,
        hhmm=charts.hhmm,
        funnel_labels=FUNNEL_LABELS,
    )


FUNNEL_LABELS = {
    "views": N_("Viewers"),
    "card": N_("Saw a card"),
    "apply": N_("Applied"),
    "interview": N_("Interview"),
    "hired": N_("Hired"),
}


def setup(app: web.Application) -> None:
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_ctx)
