"""Live polls over real HTTP and sockets: a host starts, closes and removes a poll; viewers vote
once each (changing their choice while it is open) and everyone sees the totals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.chat_helpers import call, err, ok
from tests.helpers import Viewer, connect, fence, login, viewer_csrf
from tests.openings_helpers import make_opening

FREE = {"question": "你最关心哪方面？", "options": ["薪资", "地点", "五险一金"]}


def _results(pid: str, totals: list[int]) -> Callable[[dict[str, Any]], bool]:
    """A `poll.results` (or `poll.closed`) of poll `pid` with these totals."""
    return lambda e: (
        e["type"] in ("poll.results", "poll.closed")
        and e["data"]["id"] == pid
        and e["data"]["totals"] == totals
    )


def _snapshot(v: Viewer) -> dict[str, Any]:
    return v.of_type("snapshot")[0]["data"]


async def _create(host: Any, bid: str, body: dict[str, Any] = FREE) -> dict[str, Any]:
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.create", body)
    assert r.status == 200, await r.text()
    return await r.json()


async def test_create_vote_change_close_remove(client, client_b, host, bid, viewers):
    v1 = await viewers.open(client_b, bid)
    v2 = await viewers.open(client, bid)
    console = await connect(client, bid, host=True)

    poll = await _create(host, bid)
    pid = poll["id"]
    assert poll["status"] == "open" and poll["kind"] == "free"
    assert [o["text"] for o in poll["options"]] == FREE["options"]
    assert poll["totals"] == [0, 0, 0] and poll["voters"] == 0
    for v in (v1, v2, console):
        opened = await v.wait_for("poll.opened")
        assert opened["data"] == poll

    a = await ok(v1, "poll.vote", {"id": pid, "option": 0})
    assert a == {"id": pid, "choice": 0, "changed": True, "totals": [1, 0, 0], "voters": 1}
    await ok(v2, "poll.vote", {"id": pid, "option": 1})
    for v in (v1, v2, console):  # both votes reach everyone, throttled or not
        await v.wait_for(_results(pid, [1, 1, 0]))

    moved = await ok(v1, "poll.vote", {"id": pid, "option": 2})
    assert moved["changed"] and moved["totals"] == [0, 1, 1] and moved["voters"] == 2
    same = await ok(v1, "poll.vote", {"id": pid, "option": 2})
    assert not same["changed"] and same["totals"] == [0, 1, 1]
    for v in (v1, v2):
        await v.wait_for(_results(pid, [0, 1, 1]))

    closed = await ok(console, "poll.close", {"id": pid})
    assert closed["status"] == "closed" and closed["totals"] == [0, 1, 1]
    assert closed["closed_at"]
    e = await v2.wait_for("poll.closed")
    assert e["data"] == closed
    assert (await err(v2, "poll.vote", {"id": pid, "option": 0}))["code"] == "poll_closed"
    assert (await err(console, "poll.close", {"id": pid}))["code"] == "poll_closed"
    late = await viewers.open(client_b, bid)
    assert _snapshot(late)["poll"] == closed  # the results stay, marked closed

    # a closed poll can be replaced by the next one; an open one cannot
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.remove", {"id": pid})
    assert r.status == 200, await r.text()
    assert await r.json() == {"id": pid, "removed": True}
    for v in (v1, v2, late):
        assert (await v.wait_for("poll.removed"))["data"] == {"id": pid}
    gone = await viewers.open(client_b, bid)
    assert _snapshot(gone)["poll"] is None
    assert (await err(v1, "poll.vote", {"id": pid, "option": 0}))["code"] == "poll_not_found"
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.remove", {"id": pid})
    assert r.status == 404 and (await r.json())["error"]["code"] == "poll_not_found"


async def test_one_poll_at_a_time_and_a_closed_one_is_replaced(client, host, bid, viewers):
    v = await viewers.open(client, bid)
    first = await _create(host, bid)
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.create", FREE)
    assert r.status == 409 and (await r.json())["error"]["code"] == "poll_open"
    await ok(v, "poll.vote", {"id": first["id"], "option": 1})
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.close", {"id": first["id"]})
    assert r.status == 200
    second = await _create(host, bid, {"question": "Shift?", "options": ["Day", "Night"]})
    assert second["id"] != first["id"] and second["totals"] == [0, 0]
    await v.wait_for(lambda e: e["type"] == "poll.opened" and e["data"]["id"] == second["id"])
    # the old poll's votes went with it
    assert await ok(v, "poll.mine") == {"id": second["id"], "choice": None}
    assert (await err(v, "poll.vote", {"id": first["id"], "option": 0}))["code"] == (
        "poll_not_found"
    )


async def test_two_viewers_see_the_totals(client, client_b, host, bid, viewers):
    """Votes taken on two processes: each viewer's socket ends on the same totals."""
    pid = (await _create(host, bid))["id"]
    on_a = [await viewers.open(client, bid) for _ in range(3)]
    on_b = [await viewers.open(client_b, bid) for _ in range(2)]
    await asyncio.gather(
        *(ok(v, "poll.vote", {"id": pid, "option": i % 3}) for i, v in enumerate(on_a + on_b))
    )
    for v in on_a + on_b:
        await v.wait_for(_results(pid, [2, 2, 1]))
    r = await client.get(f"/api/broadcasts/{bid}/poll")
    assert (await r.json())["poll"]["totals"] == [2, 2, 1]


async def test_one_viewer_counts_once_even_with_two_sockets(client, client_b, host, bid, viewers):
    pid = (await _create(host, bid))["id"]
    jar = viewers.jar()
    s1 = await viewers.open(client, bid, jar=jar)
    s2 = await viewers.open(client_b, bid, jar=jar)  # the same viewer on the other process
    other = await viewers.open(client, bid)
    replies = await asyncio.gather(
        ok(s1, "poll.vote", {"id": pid, "option": 0}),
        ok(s2, "poll.vote", {"id": pid, "option": 1}),
    )
    assert all(r["voters"] == 1 and sum(r["totals"]) == 1 for r in replies)
    last = replies[1] if replies[1]["totals"][1] else replies[0]
    assert (await ok(s1, "poll.mine"))["choice"] == (1 if last is replies[1] else 0)
    await ok(other, "poll.vote", {"id": pid, "option": 2})
    final = await ok(s2, "poll.vote", {"id": pid, "option": 2})
    assert final["totals"] == [0, 0, 2] and final["voters"] == 2
    await other.wait_for(_results(pid, [0, 0, 2]))


async def test_reconnecting_restores_the_poll_and_the_own_choice(client, host, bid, viewers):
    pid = (await _create(host, bid))["id"]
    jar = viewers.jar()
    v = await viewers.open(client, bid, jar=jar)
    assert await ok(v, "poll.mine") == {"id": pid, "choice": None}
    await ok(v, "poll.vote", {"id": pid, "option": 2})
    await v.close()

    again = await viewers.open(client, bid, jar=jar)  # a reload: no since, a snapshot
    shown = _snapshot(again)["poll"]
    assert shown["id"] == pid and shown["totals"] == [0, 0, 1] and shown["status"] == "open"
    assert await ok(again, "poll.mine") == {"id": pid, "choice": 2}
    # the same over HTTP, by the viewer cookie
    async with viewers.sessions[-1].get(client.make_url(f"/api/broadcasts/{bid}/poll")) as r:
        body = await r.json()
    assert body["choice"] == 2 and body["poll"]["id"] == pid
    # another viewer has no choice
    stranger = await viewers.open(client, bid)
    assert await ok(stranger, "poll.mine") == {"id": pid, "choice": None}


async def test_a_reconnect_with_since_replays_the_poll_events(client, host, bid, viewers):
    v = await viewers.open(client, bid)
    await fence(client, bid, v)
    since = v.seqs()[-1]
    pid = (await _create(host, bid))["id"]
    voter = await viewers.open(client, bid)
    await ok(voter, "poll.vote", {"id": pid, "option": 1})
    await voter.wait_for(_results(pid, [0, 1, 0]))
    back = await viewers.open(client, bid, since=since)
    assert back.of_type("synced")[0]["data"]["mode"] == "replay"
    await back.wait_for(lambda e: e["type"] == "poll.opened" and e["data"]["id"] == pid)
    await back.wait_for(_results(pid, [0, 1, 0]))


async def test_the_jobs_poll_uses_the_published_openings(client, host, bid, viewers):
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.jobs", {})
    assert r.status == 409 and (await r.json())["error"]["code"] == "not_enough_openings"
    made = [await make_opening(host, bid, title=f"岗位{i}") for i in range(8)]
    draft = await make_opening(host, bid, title="草稿岗位", status="draft")
    # the lineup decides the order: the last card first
    order = [made[7]["id"], *[o["id"] for o in made[:7]], draft["id"]]
    r = await host.client.put(
        f"/api/broadcasts/{bid}/lineup", json={"order": order}, headers={"X-CSRF-Token": host.csrf}
    )
    assert r.status == 200, await r.text()
    v = await viewers.open(client, bid)

    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.jobs", {})
    assert r.status == 200, await r.text()
    poll = await r.json()
    assert poll["kind"] == "jobs" and poll["question"] == ""
    assert [o["opening_id"] for o in poll["options"]] == order[:6]
    assert poll["options"][0]["text"] == "岗位7 · 鸡西矿业（集团）有限责任公司"
    assert all(len(o["text"]) <= 80 for o in poll["options"])
    assert len(poll["totals"]) == 6
    opened = await v.wait_for("poll.opened")
    assert opened["data"]["options"] == poll["options"]
    vote = await ok(v, "poll.vote", {"id": poll["id"], "option": 5})
    assert vote["totals"] == [0, 0, 0, 0, 0, 1]
    assert (await err(v, "poll.vote", {"id": poll["id"], "option": 6}))["code"] == "bad_option"


async def test_only_hosts_and_moderators_run_polls(
    app_factory, redis_url, client, host, bid, moderator, viewers
):
    v = await viewers.open(client, bid)
    assert (await err(v, "poll.create", FREE))["code"] == "staff_only"
    assert (await err(v, "poll.jobs", {}))["code"] == "staff_only"
    assert (await err(v, "poll.close", {"id": "1"}))["code"] == "staff_only"
    assert (await err(v, "poll.remove", {"id": "1"}))["code"] == "staff_only"
    # over HTTP: a viewer (its cookie and CSRF token, no session) 401; a session without the
    # CSRF token 403; a host of another organization does not see the broadcast (404)
    anonymous = await app_factory(redis_url)
    csrf = await viewer_csrf(anonymous)
    r = await anonymous.post(
        f"/api/broadcasts/{bid}/polls/poll.create", json=FREE, headers={"X-CSRF-Token": csrf}
    )
    assert r.status == 401 and (await r.json())["error"]["code"] == "login_required"
    r = await host.client.post(f"/api/broadcasts/{bid}/polls/poll.create", json=FREE)
    assert r.status == 403, await r.text()
    stranger = await login(await app_factory(redis_url), "host2", org="harbin")
    for name, body in (("poll.create", FREE), ("poll.close", {"id": "1"})):
        r = await stranger.post(f"/api/broadcasts/{bid}/polls/{name}", body)
        assert r.status == 404, (name, await r.text())
    assert (await client.get(f"/api/broadcasts/{bid}/poll")).status == 200
    # a moderator has the hosts' access
    poll = await _create(moderator, bid)
    r = await moderator.post(f"/api/broadcasts/{bid}/polls/poll.close", {"id": poll["id"]})
    assert r.status == 200, await r.text()


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"options": ["a", "b"]}, "invalid", "question"),
        ({"question": "q" * 141, "options": ["a", "b"]}, "invalid", "question"),
        ({"question": "   ", "options": ["a", "b"]}, "invalid", "question"),
        ({"question": "q", "options": ["a"]}, "bad_options", "options"),
        ({"question": "q", "options": [str(i) for i in range(7)]}, "bad_options", "options"),
        ({"question": "q", "options": "a,b"}, "bad_options", "options"),
        ({"question": "q", "options": ["a", "A"]}, "bad_options", "options"),
        ({"question": "q", "options": ["a", "b" * 81]}, "invalid", "options"),
        ({"question": "q", "options": ["a", 3]}, "invalid", "options"),
        ({"question": "q", "options": ["a", ""]}, "invalid", "options"),
    ],
)
async def test_bad_polls_are_refused_with_codes(host, bid, body, code, field):
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.create", body)
    assert r.status == 422, await r.text()
    e = (await r.json())["error"]
    assert e["code"] == code and field in e["fields"], e


async def test_bad_votes_are_refused_with_codes(client, host, bid, viewers):
    v = await viewers.open(client, bid)
    assert (await err(v, "poll.vote", {"id": "1", "option": 0}))["code"] == "poll_not_found"
    pid = (await _create(host, bid))["id"]
    for option in (3, -1, "1", None, True, 1.5):
        e = await err(v, "poll.vote", {"id": pid, "option": option})
        assert e["code"] == "bad_option" and "option" in e["fields"], (option, e)
    for id_ in ("x", None, "-1", ""):
        e = await err(v, "poll.vote", {"id": id_, "option": 0})
        assert e["code"] == "invalid" and "id" in e["fields"], (id_, e)
    assert (await err(v, "poll.vote", {"id": "999", "option": 0}))["code"] == "poll_not_found"
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.close", {"id": "999"})
    assert r.status == 404 and (await r.json())["error"]["code"] == "poll_not_found"
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.nope", {})
    assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_action"
    assert (await ok(v, "poll.mine"))["choice"] is None  # nothing was counted


async def test_no_voting_once_the_broadcast_has_ended(client, host, bid, viewers):
    v = await viewers.open(client, bid)
    pid = (await _create(host, bid))["id"]
    await ok(v, "poll.vote", {"id": pid, "option": 0})
    assert (await host.post(f"/api/broadcasts/{bid}/end", {})).status == 200
    await v.wait_for(lambda e: e["type"] == "broadcast.updated" and e["data"]["status"] == "ended")
    assert (await err(v, "poll.vote", {"id": pid, "option": 1}))["code"] == "broadcast_ended"
    assert await ok(v, "poll.mine") == {"id": pid, "choice": 0}
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.close", {"id": pid})
    assert r.status == 200  # the host can still close it for the record
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.create", FREE)
    assert r.status == 409 and (await r.json())["error"]["code"] == "broadcast_ended"


async def test_many_votes_are_coalesced_into_few_results_events(client, host, bid, viewers):
    """The results event carries the totals: however many arrive, the last one is right, and
    a burst of votes does not cost one event each."""
    voters = [await viewers.open(client, bid) for _ in range(24)]
    watcher = await viewers.open(client, bid)
    pid = (await _create(host, bid))["id"]
    await asyncio.gather(
        *(ok(v, "poll.vote", {"id": pid, "option": i % 2}) for i, v in enumerate(voters))
    )
    await watcher.wait_for(_results(pid, [12, 12, 0]))
    await fence(client, bid, watcher)
    results = watcher.of_type("poll.results")
    assert results[-1]["data"] == {"id": pid, "totals": [12, 12, 0], "voters": 24}
    assert len(results) < len(voters)


@pytest.mark.app_settings(qa_votes_interval=0)
async def test_without_an_interval_each_vote_publishes(client, host, bid, viewers):
    v = await viewers.open(client, bid)
    pid = (await _create(host, bid))["id"]
    for option in (0, 1, 2):
        await ok(v, "poll.vote", {"id": pid, "option": option})
    await fence(client, bid, v)
    assert [e["data"]["totals"] for e in v.of_type("poll.results")] == [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
    ]


async def test_the_socket_rate_limit_applies_to_votes(app_factory, redis_url, viewers):
    client = await app_factory(redis_url, ws_messages_per_second=1.0, ws_burst=3)
    host = await login(client)
    bid = await host.create_broadcast()
    pid = (await _create(host, bid))["id"]
    v = await viewers.open(client, bid)
    for i in range(6):  # past the burst of 3 (a refusal names no frame id)
        await v.send("poll.vote", {"id": pid, "option": i % 3}, f"v{i}")
    limited = await v.wait_for(
        lambda e: e["type"] == "error" and e["data"]["code"] == "rate_limited"
    )
    assert limited["data"]["retry_after"] > 0
    acks = [e for e in v.events if e["type"] == "ack" and str(e.get("id", "")).startswith("v")]
    assert 1 <= len(acks) < 6


async def test_closing_while_votes_pour_in_counts_exactly_the_votes_taken(
    client, client_b, host, bid, viewers
):
    """Closing is atomic with the votes: every vote acknowledged is in the final totals, every
    later one is refused, and closing does not fail while viewers keep voting."""
    pid = (await _create(host, bid))["id"]
    crowd = [await viewers.open(client if i % 2 else client_b, bid) for i in range(30)]
    console = await connect(client, bid, host=True)

    async def vote(i: int, v: Viewer) -> bool:
        reply = await call(v, "poll.vote", {"id": pid, "option": i % 3})
        if reply["type"] == "error":
            assert reply["data"]["code"] == "poll_closed", reply
            return False
        return True

    votes = [vote(i, v) for i, v in enumerate(crowd)]
    done = await asyncio.gather(*votes[:15], ok(console, "poll.close", {"id": pid}), *votes[15:])
    closed = done[15]
    taken = [i for i, d in enumerate(done[:15] + done[16:]) if d is True]
    assert closed["status"] == "closed"
    assert sum(closed["totals"]) == len(taken) == closed["voters"]
    assert closed["totals"] == [sum(1 for i in taken if i % 3 == k) for k in range(3)]


def _apply(poll: dict[str, Any] | None, e: dict[str, Any]) -> dict[str, Any] | None:
    """What a client does with each poll event (polls.js applyEvent)."""
    d = e["data"]
    if e["type"] in ("poll.opened", "poll.closed"):
        return d
    if e["type"] == "poll.results" and poll is not None and poll["id"] == d["id"]:
        return {**poll, "totals": d["totals"], "voters": d["voters"]}
    if e["type"] == "poll.removed" and poll is not None and poll["id"] == d["id"]:
        return None
    return poll


@pytest.mark.parametrize("interval", [0, 0.5])
async def test_the_events_after_a_snapshot_bring_it_to_the_next_one(
    app_factory, redis_url, viewers, interval
):
    client = await app_factory(redis_url, qa_votes_interval=interval)
    host = await login(client)
    bid = await host.create_broadcast()
    for i in range(3):
        await make_opening(host, bid, title=f"岗位{i}")
    watcher = await viewers.open(client, bid)
    crowd = [await viewers.open(client, bid) for _ in range(5)]
    poll = _snapshot(watcher)["poll"]
    assert poll is None

    first = await _create(host, bid)
    for i, v in enumerate(crowd):
        await ok(v, "poll.vote", {"id": first["id"], "option": i % 3})
    await ok(crowd[0], "poll.vote", {"id": first["id"], "option": 2})
    await host.post(f"/api/broadcasts/{bid}/polls/poll.close", {"id": first["id"]})
    r = await host.post(f"/api/broadcasts/{bid}/polls/poll.jobs", {})
    jobs = await r.json()
    for i, v in enumerate(crowd[:4]):
        await ok(v, "poll.vote", {"id": jobs["id"], "option": i % 2})
    final = await ok(crowd[4], "poll.vote", {"id": jobs["id"], "option": 2})
    await watcher.wait_for(_results(jobs["id"], final["totals"]))
    await fence(client, bid, watcher)

    for e in watcher.events:
        if e["type"].startswith("poll."):
            poll = _apply(poll, e)
    later = await viewers.open(client, bid)
    assert poll == _snapshot(later)["poll"]
    assert poll is not None and poll["totals"] == [2, 2, 1] and poll["voters"] == 5
