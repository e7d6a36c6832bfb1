"""Applying the events a socket received to its first snapshot gives the snapshot a new socket
gets: for viewers (published cards, the lineup, the pinned card) and hosts (every card, counts).
Events are applied idempotently, as docs/protocol.md tells clients to."""

from __future__ import annotations

import copy
from typing import Any

from tests.helpers import connect
from tests.openings_helpers import DATA, applicant, application_body, make_opening

VIEWER_VIEW = ("opening.updated", "opening.removed", "openings.added", "lineup.updated")
HOST_VIEW = ("opening.saved", "opening.deleted", "openings.imported", "lineup.saved")


def reduce(state: dict[str, Any], ev: dict[str, Any], host: bool) -> None:
    """A client's reducer: a host console keeps every card (host-only events) and skips the
    events that describe the viewers' list; a viewer never gets the host-only ones."""
    d = ev["data"]
    cards: dict[str, Any] = state["cards"]
    t = ev["type"]
    if t in (VIEWER_VIEW if host else HOST_VIEW):
        return
    if t == "card.pinned":
        state["pinned"] = d
    elif t == "card.unpinned":
        if state["pinned"] and state["pinned"]["opening"]["id"] == d["opening_id"]:
            state["pinned"] = None
    elif t in ("opening.updated", "opening.saved"):
        cards[d["opening"]["id"]] = d["opening"]
    elif t in ("opening.removed", "opening.deleted"):
        cards.pop(d["opening_id"], None)
    elif t in ("openings.added", "openings.imported"):
        for o in d["openings"]:
            cards[o["id"]] = o
    elif t in ("lineup.updated", "lineup.saved"):
        state["order"] = d["order"]
    elif t in ("application.received", "application.deleted"):
        state["counts"][d["opening_id"]] = d["count"]
        state["total"] = d["total"]


def from_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
    return {
        "pinned": snap["pinned"],
        "cards": {o["id"]: o for o in snap["openings"]},
        "order": snap["lineup"],
        "counts": dict(snap.get("application_counts", {})),
        "total": snap.get("applications_total", 0),
    }


def view(state: dict[str, Any], host: bool) -> dict[str, Any]:
    cards = state["cards"]
    out = {
        "pinned": state["pinned"],
        "openings": [cards[i] for i in state["order"] if i in cards],
    }
    assert set(cards) == set(state["order"]), (sorted(cards), state["order"])
    if host:
        out["counts"] = {k: state["counts"].get(k, 0) for k in cards}  # new cards: 0
        out["total"] = state["total"]
    return out


async def test_events_applied_to_an_old_snapshot_give_the_new_one(client, client_b, host, bid):
    first = await make_opening(host, bid, title="已有岗位")
    viewer = await connect(client_b, bid)
    console = await connect(client, bid, host=True)
    states = {
        False: from_snapshot(viewer.of_type("snapshot")[0]["data"]),
        True: from_snapshot(console.of_type("snapshot")[0]["data"]),
    }
    base = {k: copy.deepcopy(v) for k, v in states.items()}

    p = await make_opening(host, bid, title="公开岗位")
    d = await make_opening(host, bid, title="草稿岗位", status="draft")
    await host.patch(f"/api/broadcasts/{bid}/openings/{d['id']}", {"status": "published"})
    await host.client.put(
        f"/api/broadcasts/{bid}/lineup",
        json={"order": [d["id"], p["id"]]},
        headers={"X-CSRF-Token": host.csrf},
    )
    await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": d["id"]})
    await host.post(f"/api/broadcasts/{bid}/pin/next")
    await host.patch(f"/api/broadcasts/{bid}/openings/{p['id']}", {"salary_max": 9999})
    await host.client.post(
        f"/api/broadcasts/{bid}/openings/import",
        data=(DATA / "openings_gbk.csv").read_bytes(),
        headers={"X-CSRF-Token": host.csrf, "Content-Type": "text/csv"},
    )
    await host.patch(f"/api/broadcasts/{bid}/openings/{p['id']}", {"status": "closed"})
    hidden = await make_opening(host, bid, title="另一草稿", status="draft")
    await host.delete(f"/api/broadcasts/{bid}/openings/{first['id']}")
    await host.post(f"/api/broadcasts/{bid}/pin", {"opening_id": d["id"]})
    v = await applicant(client_b)
    for i in range(3):
        await v.apply(d["id"], application_body(phone=f"1380000000{i}"))
    await host.patch(f"/api/broadcasts/{bid}/openings/{hidden['id']}", {"title": "改名草稿"})
    # the last event of the sequence, for both sockets
    await host.post(f"/api/broadcasts/{bid}/pin/next")
    for sock in (viewer, console):
        await sock.wait_count("card.pinned", 5)  # d, p, p edited, d again, the next

    late_viewer = await connect(client_b, bid)
    late_console = await connect(client, bid, host=True)
    for host_side, sock, late in ((False, viewer, late_viewer), (True, console, late_console)):
        state = states[host_side]
        events = [e for e in sock.events if e.get("seq") and e["type"] != "snapshot"]
        for ev in events:
            reduce(state, ev, host_side)
        want = from_snapshot(late.of_type("snapshot")[0]["data"])
        assert view(state, host_side) == view(want, host_side)
        # a snapshot that already showed events up to k, then delivered again from j < k
        k = 2 * len(events) // 3
        again = copy.deepcopy(base[host_side])
        for ev in events[:k] + events[k // 2 :]:
            reduce(again, ev, host_side)
        assert view(again, host_side) == view(want, host_side)
    assert "application_counts" not in late_viewer.of_type("snapshot")[0]["data"]
    assert view(states[True], True)["counts"][d["id"]] == 3
    assert hidden["id"] not in str(viewer.events)
