"""Every use of aiohttp's internals, in this one module.

The hub writes each event's frame straight to the transport of every socket that is keeping
up, instead of awaiting aiohttp's `WebSocketResponse.send_*` once per socket (a coroutine per
viewer per event). aiohttp has no public API for what that needs, so it is done here, pinned to
the aiohttp version below (checked when this module is imported) and covered by
tests/test_aiohttp_internals.py:

1. `wire_of(request)`: the upgraded connection's transport, its flow control (the request
   handler's `writing_paused`, true while the peer is not reading and the transport's buffer
   is over its high-water mark) and a wait for it to drain (the response's payload writer's
   `drain()`).
2. `text_frame`, `close_frame`, `PING_FRAME`: RFC 6455 frames built here and written to that
   transport. They interleave safely with the frames aiohttp's own writer sends on the same
   connection (pongs, its reply to a close) because, with compression off, aiohttp writes each
   of its frames whole and synchronously (`WebSocketWriter.send_frame`), so neither can land
   inside the other.
3. `MalformedRequest`: the error aiohttp's multipart reader raises for a malformed form
   (`aiohttp.http_exceptions.HttpProcessingError`), which aiohttp does not export at the top.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

PINNED_AIOHTTP = "3.14."


def check_version(version: str = aiohttp.__version__) -> None:
    """Refuse to run against an aiohttp whose internals were not checked."""
    if not version.startswith(PINNED_AIOHTTP):
        raise RuntimeError(
            f"Jobcast's socket fan-out needs aiohttp {PINNED_AIOHTTP}x (found {version}):"
            " check web/realtime/aiohttp_internals.py against it"
        )


check_version()

MalformedRequest = HttpProcessingError


# -- 1. the connection under a WebSocket ---------------------------------------------------------


class Flow(Protocol):
    """What the hub reads of a connection's flow control, on every write."""

    @property
    def writing_paused(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Wire:
    """An upgraded connection: write frames to `transport` while `flow.writing_paused` is
    false; `drain()` returns once the transport takes data again."""

    transport: asyncio.Transport | None
    flow: Flow
    drain: Callable[[], Awaitable[None]]


def wire_of(request: web.BaseRequest) -> Wire:
    """The connection of `request`, after `WebSocketResponse.prepare(request)`."""
    return Wire(request.transport, request.protocol, request.writer.drain)


# -- 2. frames written by hand -------------------------------------------------------------------

PING_FRAME = b"\x89\x00"  # final, ping, unmasked, empty
_LEN1 = struct.Struct("!BB").pack
_LEN2 = struct.Struct("!BBH").pack
_LEN3 = struct.Struct("!BBQ").pack


def text_frame(payload: bytes) -> bytes:
    """An RFC 6455 text frame as a server sends it: final, unmasked, uncompressed."""
    n = len(payload)
    if n < 126:
        return _LEN1(0x81, n) + payload
    if n < 65536:
        return _LEN2(0x81, 126, n) + payload
    return _LEN3(0x81, 127, n) + payload


def close_frame(code: int, reason: str) -> bytes:
    """An RFC 6455 close frame with `code` and as much of `reason` as fits (123 bytes)."""
    payload = struct.pack("!H", code) + reason.encode()[:123]
    return _LEN1(0x88, len(payload)) + payload
