"""Votes count per address: thirty cookie-less sockets from one address cannot move a question
by thirty, and hosts see every vote and how many addresses it came from (a burst)."""

from __future__ import annotations

import aiohttp
import pytest
from jobcast.chat.reducer import chat_state, reduce
from jobcast.chat.votes import vote_address

from tests.chat_helpers import call, ok
from tests.helpers import Viewer, connect

CAP = 3


@pytest.fixture
async def sessions():
    opened: list[aiohttp.ClientSession] = []

    def new() -> aiohttp.ClientSession:
        s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        opened.append(s)
        return s

    yield new
    for s in opened:
        await s.close()


async def _socket(new_session, client, bid: str, address: str) -> Viewer:
    """A socket that never loaded the page (no cookie: the handshake mints a viewer id),
    seen by the server as coming from `address`."""
    ws = await new_session().ws_connect(
        client.make_url(f"/ws/b/{bid}"), headers={"X-Forwarded-For": address}
    )
    v = Viewer(ws)
    await v.wait_for("synced")
    return v


pytestmark = pytest.mark.app_settings(
    trust_proxy=True,
    chat_review_questions=False,
    qa_votes_per_address=CAP,
    ws_connections_per_ip=100,
)


@pytest.mark.parametrize(
    "interval",
    [pytest.param(i, marks=pytest.mark.app_settings(qa_votes_interval=i)) for i in (0.5, 0.0)],
)
async def test_thirty_sockets_from_one_address_add_at_most_the_cap(client, bid, sessions, interval):
    console = await connect(client, bid, host=True)
    asker = await _socket(sessions, client, bid, "203.0.113.9")
    q = await ok(asker, "question.ask", {"text": "宿舍是几人间？"})
    assert (await ok(asker, "question.vote", {"id": q["id"]}))["votes"] == 1
    flood = [await _socket(sessions, client, bid, "198.51.100.7") for _ in range(30)]
    ids = {s.of_type("hello")[0]["data"]["viewer_id"] for s in flood}
    assert len(ids) == 30  # thirty viewer ids, one address
    for s in flood:
        reply = await ok(s, "question.vote", {"id": q["id"]})
        assert reply["changed"] is True and reply["voted"] is True
    assert reply["votes"] == 1 + CAP
    # every screen converges on the capped count; hosts see the burst
    await asker.wait_for(
        lambda e: e["type"] == "question.votes" and e["data"]["votes"].get(q["id"]) == 1 + CAP
    )
    sources = await console.wait_for(
        lambda e: (
            e["type"] == "question.voters"
            and e["data"]["voters"].get(q["id"]) == {"voters": 31, "addresses": 2}
        )
    )
    assert sources["data"]["voters"][q["id"]] == {"voters": 31, "addresses": 2}
    assert not asker.of_type("question.voters")  # for hosts only
    late = await connect(client, bid, host=True)
    snap_q = late.of_type("snapshot")[0]["data"]["questions"][0]
    assert (snap_q["votes"], snap_q["voters"], snap_q["addresses"]) == (1 + CAP, 31, 2)
    viewer_q = (await _socket(sessions, client, bid, "192.0.2.1")).of_type("snapshot")[0]["data"]
    assert "voters" not in viewer_q["questions"][0]
    # withdrawing: the count falls only once the address is back within the cap
    for s in flood[:27]:
        assert (await ok(s, "question.vote", {"id": q["id"], "up": False}))["votes"] == 1 + CAP
    reply = await ok(flood[27], "question.vote", {"id": q["id"], "up": False})
    assert reply["votes"] == CAP
    for s in flood[28:]:
        await ok(s, "question.vote", {"id": q["id"], "up": False})
    assert (await ok(asker, "question.vote", {"id": q["id"]}))["votes"] == 1  # unchanged


async def test_ipv6_voters_count_by_their_slash_64(client, bid, sessions):
    asker = await _socket(sessions, client, bid, "203.0.113.9")
    q = await ok(asker, "question.ask", {"text": "有没有夜班？"})
    for i in range(1, 8):
        s = await _socket(sessions, client, bid, f"2001:db8:1:2::{i:x}")
        reply = await ok(s, "question.vote", {"id": q["id"]})
    assert reply["votes"] == CAP
    other = await _socket(sessions, client, bid, "2001:db8:1:3::1")  # another /64
    assert (await ok(other, "question.vote", {"id": q["id"]}))["votes"] == CAP + 1


def test_vote_address():
    assert vote_address("198.51.100.7") == "198.51.100.7"
    assert vote_address("2001:db8:1:2::5") == vote_address("2001:db8:1:2:ffff::1")
    assert vote_address("2001:db8:1:2::5") != vote_address("2001:db8:1:3::5")
    assert vote_address("::ffff:198.51.100.7") == "198.51.100.7"


async def test_host_reducer_matches_a_fresh_snapshot_with_vote_sources(client, bid, sessions):
    console = await connect(client, bid, host=True)
    snap0 = console.of_type("snapshot")[0]
    asker = await _socket(sessions, client, bid, "203.0.113.9")
    q1 = await ok(asker, "question.ask", {"text": "问题一"})
    q2 = await ok(asker, "question.ask", {"text": "问题二"})
    for i in range(5):
        s = await _socket(sessions, client, bid, "198.51.100.7" if i < 4 else "192.0.2.1")
        await ok(s, "question.vote", {"id": q1["id"]})
        if i == 4:
            await ok(s, "question.vote", {"id": q2["id"]})
    await call(asker, "question.vote", {"id": q2["id"]})
    await console.wait_for(
        lambda e: (
            e["type"] == "question.voters"
            and e["data"]["voters"].get(q2["id"], {}).get("voters") == 2
        )
    )
    late = await connect(client, bid, host=True)
    fresh = late.of_type("snapshot")[0]["data"]
    live = [e for e in console.events if "seq" in e and e["type"] != "snapshot"]
    assert chat_state(reduce(snap0["data"], live, host=True), host=True) == chat_state(
        fresh, host=True
    )
    votes = {x["id"]: (x["votes"], x["voters"], x["addresses"]) for x in fresh["questions"]}
    assert votes == {q1["id"]: (4, 5, 2), q2["id"]: (2, 2, 2)}
