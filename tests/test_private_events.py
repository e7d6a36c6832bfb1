"""Private events reach one viewer's sockets on every process, and nobody else's."""

from __future__ import annotations

import pytest
from jobcast.web.appkeys import REDIS
from jobcast.web.realtime.private import tell_viewer

from tests.chat_helpers import ok, wait_message
from tests.helpers import connect


async def test_a_private_event_reaches_that_viewer_alone_on_both_processes(
    client, client_b, bid, viewers
):
    jar = viewers.jar()
    mine_a = await viewers.open(client, bid, jar=jar)
    mine_b = await viewers.open(client_b, bid, jar=jar)  # the same viewer on the other process
    other = await viewers.open(client_b, bid)
    console = await connect(client, bid, host=True)
    vid = mine_a.of_type("hello")[0]["data"]["viewer_id"]
    assert mine_b.of_type("hello")[0]["data"]["viewer_id"] == vid
    data = {"id": "a1", "status": "viewed"}
    await tell_viewer(client.server.app[REDIS], vid, "application.mine", data)
    for sock in (mine_a, mine_b):
        ev = await sock.wait_for("application.mine")
        assert ev["data"] == data and "seq" not in ev
    # a fence: a later public event reaches the others, with nothing private before it
    await ok(other, "chat.send", {"text": "fence"})
    for sock in (other, console):
        await wait_message(sock, lambda m: m["text"] == "fence")
        assert not sock.of_type("application.mine")
    # never in a replay
    late = await viewers.open(client, bid, jar=jar, since=0)
    assert not late.of_type("application.mine")


async def test_only_socket_types_can_be_private(client):
    with pytest.raises(ValueError):
        await tell_viewer(client.server.app[REDIS], "v", "chat.messages", {})
