"""Each hook of web/realtime/aiohttp_internals.py against the aiohttp installed, on a real
server and a client reading the bytes off a bare socket: the version check, the connection's
transport, flow control and drain, the frames written by hand interleaved with aiohttp's own,
and the multipart error."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from jobcast.web.realtime import aiohttp_internals as ai

from tests.rawws import OP_CLOSE, OP_PING, OP_TEXT, open_raw_viewer, parse_frames, read_to_eof

OP_PONG = 0xA


def test_the_version_check_refuses_an_aiohttp_it_was_not_checked_against():
    ai.check_version()  # the installed one, as at import
    assert aiohttp.__version__.startswith(ai.PINNED_AIOHTTP)
    for other in ("3.13.2", "3.15.0", "4.0.0"):
        with pytest.raises(RuntimeError, match=r"aiohttp_internals\.py"):
            ai.check_version(other)


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, dict[str, Any]]]:
    """A socket endpoint that writes through the hooks and records what it saw."""
    seen: dict[str, Any] = {"paused_now": asyncio.Event()}

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, autoping=False)
        await ws.prepare(request)
        wire = ai.wire_of(request)
        assert wire.transport is not None
        seen["same_transport"] = wire.transport is request.transport
        seen["paused_at_start"] = wire.flow.writing_paused
        wire.transport.write(ai.text_frame(b"ours"))
        await ws.pong(b"theirs")  # aiohttp's own writer, between two frames of ours
        wire.transport.write(ai.text_frame(b"m" * 300))  # 16-bit length
        wire.transport.write(ai.text_frame(b"l" * 70_000))  # 64-bit length
        fill = 0
        while not wire.flow.writing_paused and fill < 2000:  # the peer isn't reading
            wire.transport.write(ai.text_frame(b"z" * 65_536))
            fill += 1
        seen["fill"] = fill
        seen["paused"] = wire.flow.writing_paused
        seen["paused_now"].set()
        await wire.drain()  # returns once the peer has read enough
        seen["paused_after_drain"] = wire.flow.writing_paused
        wire.transport.write(ai.PING_FRAME)
        wire.transport.write(ai.close_frame(4008, "too_slow"))
        wire.transport.close()
        return ws

    async def upload(request: web.Request) -> web.Response:
        reader = await request.multipart()
        try:
            async for part in reader:  # type: ignore[union-attr]
                await part.read()  # type: ignore[union-attr]
        except ai.MalformedRequest as e:
            return web.Response(text=f"malformed: {type(e).__name__}")
        return web.Response(text="read")

    app = web.Application()
    app.router.add_get("/ws", socket)
    app.router.add_post("/upload", upload)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield srv, seen
    await srv.close()


async def test_frames_written_to_the_wire_arrive_whole_and_in_order_with_flow_control(server):
    srv, seen = server
    s = open_raw_viewer(srv.port, "/ws", rcvbuf=4096)
    try:
        async with asyncio.timeout(20):
            await seen["paused_now"].wait()
        # Not reading: the transport paused writing, and drain() waits for the peer.
        assert seen["paused"] and seen["fill"] < 2000
        assert "paused_after_drain" not in seen
        frames = parse_frames(await read_to_eof(s))
    finally:
        s.close()
    assert seen["same_transport"] and not seen["paused_at_start"]
    assert seen["paused_after_drain"] is False
    expected = [
        (OP_TEXT, b"ours"),
        (OP_PONG, b"theirs"),
        (OP_TEXT, b"m" * 300),
        (OP_TEXT, b"l" * 70_000),
        *[(OP_TEXT, b"z" * 65_536)] * seen["fill"],
        (OP_PING, b""),
        (OP_CLOSE, struct.pack("!H", 4008) + b"too_slow"),
    ]
    assert [(op, len(p)) for op, p in frames] == [(op, len(p)) for op, p in expected]
    assert frames == expected


def test_a_close_reason_is_cut_to_what_a_close_frame_holds():
    frame = ai.close_frame(1001, "x" * 200)
    assert frame[:2] == bytes([0x88, 125]) and frame[2:4] == struct.pack("!H", 1001)
    assert len(frame) == 2 + 125


async def test_a_malformed_form_raises_the_error_the_adapter_names(server):
    srv, _ = server
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="x\x05y"\r\n\r\n1\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    async with aiohttp.ClientSession() as c:
        r = await c.post(
            srv.make_url("/upload"),
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert (await r.text()).startswith("malformed: ")
