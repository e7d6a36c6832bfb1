"""The event report: a scripted broadcast whose report equals a count made here, from the
stored events (XRANGE in this file) and from what the script did; the CSV carries the same
numbers; the page renders with its charts and no script; the caps lose nothing the report
needs, and a loss the archive could not prevent is reported, not hidden."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from jobcast.core import keys
from jobcast.openings.report import REPORT_TYPES
from jobcast.web.api.report import ARCHIVE, AUDIENCE
from jobcast.web.appkeys import EVENT_LOG, REDIS

from tests.chat_helpers import Viewers, ok
from tests.helpers import Host, connect
from tests.openings_helpers import applicant, application_body, make_opening

pytestmark = pytest.mark.app_settings(chat_review_questions=False)


def _sample_fast(*clients: TestClient) -> None:
    for c in clients:
        c.server.app[AUDIENCE].sample_every = 0.25


async def _stored(client: TestClient, bid: str) -> list[dict[str, Any]]:
    """Every event of the broadcast as stored in its two streams, in seq order."""
    redis = client.server.app[REDIS]
    out = []
    for key in (keys.events(bid), keys.host_events(bid)):
        for entry_id, fields in await redis.xrange(key):
            ev = orjson.loads(b"{" + fields[b"b"])
            ev["seq"] = entry_id.decode()
            out.append(ev)
    out.sort(key=lambda e: tuple(int(x) for x in e["seq"].split("-")))
    return out


def _count(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's figures, counted again here from the raw events (not the report code)."""
    of = lambda t: [e for e in events if e["type"] == t]  # noqa: E731
    samples = [(e["ts"], e["data"]["viewers"]) for e in of("audience.sample")]
    apps = {
        e["data"]["application_id"]: e["data"]["opening_id"] for e in of("application.received")
    }
    last_status: dict[str, str] = {}
    ever: dict[str, set[str]] = {}
    for e in of("application.status"):
        aid = e["data"]["application_id"]
        last_status[aid] = e["data"]["status"]
        ever.setdefault(aid, set()).add(e["data"]["status"])
    answered = {
        e["data"]["id"] for e in of("question.updated") if e["data"]["status"] == "answered"
    }
    hidden = {e["data"]["id"] for e in of("question.hidden")}
    pins = of("card.pinned")
    ended = next(e for e in of("broadcast.updated") if e["data"]["status"] == "ended")
    windows: dict[str, int] = {}
    peak_pinned: dict[str, int] = {}
    for k, p in enumerate(pins):
        start = p["data"]["pinned_at"]
        stop = pins[k + 1]["ts"] if k + 1 < len(pins) else ended["data"]["ended_at"]
        oid = p["data"]["opening"]["id"]
        windows[oid] = windows.get(oid, 0) + stop - start
        before = [n for ts, n in samples if ts <= start][-1:]
        inside = [n for ts, n in samples if start < ts <= stop]
        if before or inside:
            peak_pinned[oid] = max(before + inside)
    return {
        "peak": max(n for _, n in samples),
        "unique": max(e["data"]["unique"] for e in of("audience.sample")),
        "card": max(e["data"]["card"] for e in of("audience.sample")),
        "applications": {
            oid: sum(1 for a in apps.values() if a == oid) for oid in set(apps.values())
        },
        "interviews": sum(1 for a in apps if "interview" in ever.get(a, set())),
        "hires": sum(1 for a in apps if last_status.get(a) == "hired"),
        "asked": len(of("question.author")),
        "answered": len(answered),
        "hidden": len(hidden),
        "presented": windows,
        "peak_pinned": peak_pinned,
        "samples": samples,
    }


async def _sample(console: Any, pred: Any) -> dict[str, Any]:
    ev = await console.wait_for(lambda e: e["type"] == "audience.sample" and pred(e["data"]))
    return ev["data"]


async def test_scripted_broadcast_report_equals_an_independent_count(
    client: TestClient, client_b: TestClient, host: Host, bid: str, viewers: Viewers
) -> None:
    _sample_fast(client, client_b)
    a = await make_opening(host, bid, title="井下电工", employer={"name": "鸡西矿业"})
    b = await make_opening(host, bid, title="护士", employer={"name": "鸡西市人民医院"})
    assert (await host.post(f"/api/broadcasts/{bid}/start")).status == 200
    console = await connect(client, bid, host=True)
    v1 = await viewers.open(client, bid)
    v2 = await viewers.open(client, bid)
    v3 = await viewers.open(client_b, bid)  # the other process
    await _sample(console, lambda d: d["viewers"] == 3 and d["unique"] == 3)

    r = await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": a["id"]})
    assert r.status == 200, await r.text()
    await _sample(console, lambda d: d["card"] == 3)
    await ok(v1, "chat.send", {"text": "有宿舍吗"})
    await ok(v2, "chat.send", {"text": "几班倒"})
    q1 = await ok(v1, "question.ask", {"text": "井下补贴多少？", "opening_id": a["id"]})
    q2 = await ok(v2, "question.ask", {"text": "要护士证吗？", "opening_id": b["id"]})
    await ok(v3, "question.ask", {"text": "下一场什么时候？"})
    for qid, text in ((q1["id"], "每月800元"), (q2["id"], "需要")):
        r = await host.post(
            f"/api/broadcasts/{bid}/chat/question.answer", {"id": qid, "answer": text}
        )
        assert r.status == 200, await r.text()
    await ok(console, "question.hide", {"id": q2["id"]})

    ids = []
    for oid, phone in (
        (a["id"], "13800138001"),
        (a["id"], "13800138002"),
        (b["id"], "13800138003"),
    ):
        r = await (await applicant(client)).apply(oid, application_body(phone=phone))
        assert r.status == 201, await r.text()
        ids.append((await r.json())["application_id"])
    for aid, status in ((ids[0], "interview"), (ids[0], "hired"), (ids[1], "contacted")):
        r = await host.patch(f"/api/broadcasts/{bid}/applications/{aid}", {"status": status})
        assert r.status == 200, await r.text()

    r = await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": b["id"]})
    assert r.status == 200
    await v3.close()
    await _sample(console, lambda d: d["viewers"] == 2)
    assert (await host.post(f"/api/broadcasts/{bid}/end")).status == 200

    r = await host.get(f"/api/broadcasts/{bid}/report")
    assert r.status == 200, await r.text()
    rep = await r.json()
    mine = _count(await _stored(client, bid))

    # What the script did.
    assert rep["complete"] is True
    assert (rep["employers"], rep["openings"]) == (2, 2)
    assert rep["viewers"]["peak"] == 3 and rep["viewers"]["unique"] == 3
    assert rep["viewers"]["card"] == 3
    assert (rep["applications"], rep["interviews"], rep["hires"]) == (3, 1, 1)
    assert rep["questions"] == {"asked": 3, "answered": 2, "hidden": 1}
    by_id = {o["id"]: o for o in rep["per_opening"]}
    assert (by_id[a["id"]]["applications"], by_id[b["id"]]["applications"]) == (2, 1)
    assert (by_id[a["id"]]["hires"], by_id[b["id"]]["hires"]) == (1, 0)
    assert by_id[a["id"]]["pins"] == by_id[b["id"]]["pins"] == 1
    assert by_id[a["id"]]["questions"] == 1 and by_id[b["id"]]["questions"] == 1
    assert [f["count"] for f in rep["funnel"]] == [3, 3, 3, 1, 1]

    # The count made here from the stored events.
    assert rep["viewers"]["peak"] == mine["peak"]
    assert rep["viewers"]["unique"] == mine["unique"]
    assert rep["viewers"]["card"] == mine["card"]
    assert [(s["ts"], s["viewers"]) for s in rep["viewers"]["samples"]] == mine["samples"]
    assert {o["id"]: o["applications"] for o in rep["per_opening"]} == mine["applications"]
    assert (rep["interviews"], rep["hires"]) == (mine["interviews"], mine["hires"])
    assert rep["questions"] == {
        "asked": mine["asked"],
        "answered": mine["answered"],
        "hidden": mine["hidden"],
    }
    assert {o["id"]: o["presented_ms"] for o in rep["per_opening"]} == mine["presented"]
    assert {o["id"]: o["viewers_pinned"] for o in rep["per_opening"]} == mine["peak_pinned"]
    assert by_id[a["id"]]["viewers_pinned"] == 3

    # The CSV has the same numbers.
    r = await host.get(f"/api/broadcasts/{bid}/report.csv")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    raw = await r.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    summary = {row[0]: row[1] for row in rows if len(row) == 2 and row[0]}
    assert summary["最高同时在线"] == "3" and summary["累计观看人数"] == "3"
    assert (summary["投递数"], summary["面试数"], summary["录用数"]) == ("3", "1", "1")
    assert (summary["提问数"], summary["已回答"], summary["已隐藏"]) == ("3", "2", "1")
    head = rows.index(next(row for row in rows if row and row[0] == "岗位ID"))
    table = {row[0]: row for row in rows[head + 1 :] if row and row[0] in by_id}
    assert table[a["id"]][1] == "井下电工" and table[a["id"]][6] == "2"
    assert table[b["id"]][6] == "1"
    assert float(table[a["id"]][3]) == round(mine["presented"][a["id"]] / 60000, 1)

    # The page, without any script: the figures and the charts are in the HTML.
    r = await host.get(f"/host/b/{bid}/report")
    assert r.status == 200
    html = await r.text()
    assert html.count("<svg") == 4 and "<path" in html
    assert 'data-figure="applications">3<' in html and 'data-figure="peak">3<' in html
    assert "井下电工" in html
    # A caller without a session gets no report.
    assert (await client_b.get(f"/api/broadcasts/{bid}/report")).status == 401


async def test_labels_are_escaped_in_the_charts(host: Host, bid: str) -> None:
    await make_opening(host, bid, title="<script>x</script>", employer={"name": 'A"&B'})
    r = await host.get(f"/host/b/{bid}/report")
    html = await r.text()
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.app_settings(event_history=20, host_event_history=20, chat_review_questions=False)
async def test_the_caps_lose_nothing_the_report_counts(
    client: TestClient, host: Host, bid: str
) -> None:
    """The public stream is trimmed far past the first pin; the report still counts it, from
    its own stream (copied between the bursts, as every process with sockets does). A burst
    that passes the cap before any copy is reported as a gap."""
    log = client.server.app[EVENT_LOG]
    redis = client.server.app[REDIS]
    archive = client.server.app[ARCHIVE]
    a = await make_opening(host, bid, title="A")
    b = await make_opening(host, bid, title="B")
    await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": a["id"]})
    for n in range(400):  # copied every few events, as the presence tick does
        if n % 10 == 0:
            await archive.copy(bid)
        await log.publish(bid, "test.tick", {"n": n})
    stored = [orjson.loads(b"{" + f[b"b"])["type"] for _, f in await redis.xrange(keys.events(bid))]
    assert "card.pinned" not in stored  # trimmed by the cap
    rep = await (await host.get(f"/api/broadcasts/{bid}/report")).json()
    assert rep["complete"] is True
    assert {o["id"]: o["pins"] for o in rep["per_opening"]}[a["id"]] == 1
    copied = await redis.xrange(keys.report_events(bid))
    types = {orjson.loads(b"{" + f[b"b"])["type"] for _, f in copied}
    assert types <= set(REPORT_TYPES) and "test.tick" not in types

    await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": b["id"]})
    for n in range(400):  # no copy in between: the pin of B is gone before it is kept
        await log.publish(bid, "test.tick", {"n": n})
    rep = await (await host.get(f"/api/broadcasts/{bid}/report")).json()
    assert rep["complete"] is False and rep["gap_at"]
    r = await host.get(f"/host/b/{bid}/report")
    assert 'id="report-incomplete"' in await r.text()


def test_counting_reads_old_and_new_status_words_and_estimates_watch_time() -> None:
    from jobcast.openings.report import compute

    def ev(t: str, ts: int, **data: Any) -> dict[str, Any]:
        return {"type": t, "ts": ts, "data": data}

    o = {"id": "a", "title": "A", "employer": {"name": "E"}}
    events = [
        ev("audience.sample", 0, viewers=2, unique=2, card=0),
        ev("card.pinned", 1000, opening=o, pinned_at=1000),
        ev("audience.sample", 60_000, viewers=4, unique=5, card=4),
        ev("card.pinned", 90_000, opening=o, pinned_at=1000),  # an edit: the same pin goes on
        ev("application.received", 100_000, opening_id="a", application_id="x1"),
        ev("application.received", 100_001, opening_id="a", application_id="x2"),
        ev("application.received", 100_002, opening_id="a", application_id="x3"),
        ev("application.received", 100_003, opening_id="a", application_id="x4"),
        ev("application.status", 100_010, application_id="x1", opening_id="a", status="interview"),
        ev("application.status", 100_011, application_id="x1", opening_id="a", status="rejected"),
        ev("application.status", 100_012, application_id="x2", opening_id="a", status="interview"),
        ev("application.status", 100_013, application_id="x2", opening_id="a", status="hired"),
        ev("application.status", 100_014, application_id="x3", opening_id="a", status="new"),
        ev("application.status", 100_015, application_id="x3", opening_id="a", status="hired"),
        ev("application.deleted", 100_020, application_id="x4", opening_id="a"),
        ev("card.unpinned", 120_000, opening_id="a"),
        ev("broadcast.updated", 180_000, status="ended", ended_at=180_000),
    ]
    rep = compute(events, {"id": "b", "title": "t", "status": "ended"})
    assert (rep["applications"], rep["interviews"], rep["hires"]) == (3, 3, 2)
    per = rep["per_opening"][0]
    assert per["pins"] == 1 and per["presented_ms"] == 119_000
    assert per["viewers_pinned"] == 4  # the sample before the pin (2) and the one inside (4)
    # 2 viewers for 60 s, then 4 until the end (120 s): viewer-ms
    assert rep["viewers"]["watch_ms"] == 2 * 60_000 + 4 * 120_000
    assert rep["viewers"]["peak"] == 4 and rep["viewers"]["unique"] == 5
    assert [f["count"] for f in rep["funnel"]] == [5, 4, 3, 3, 2]
