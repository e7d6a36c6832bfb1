"""A WebSocket viewer on a bare TCP socket, for tests that control reading byte by byte: it
can stop reading (a tiny receive buffer, nothing read), then read everything the server sent
and split it into the frames as they were on the wire."""

from __future__ import annotations

import asyncio
import socket
import struct

import orjson

OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9


def open_raw_viewer(port: int, path: str, *, rcvbuf: int | None = None) -> socket.socket:
    """Connect and send the upgrade request; the answer is left unread."""
    s = socket.socket()
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
    s.connect(("127.0.0.1", port))
    s.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    s.setblocking(False)
    return s


async def read_to_eof(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    loop = asyncio.get_running_loop()
    chunks = []
    while True:
        try:
            chunk = await loop.sock_recv(s, 1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each frame after the HTTP 101 answer. Server frames are unmasked
    and, here, never fragmented or compressed; a truncated last frame is left out."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 101"), head[:200]
    return split_frames(rest)[0]


class FrameReader:
    """Frames from a stream read piece by piece (the 101 answer first)."""

    def __init__(self) -> None:
        self._buf = b""
        self._upgraded = False
        self.frames: list[tuple[int, bytes]] = []

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add what was read; returns the frames it completed."""
        self._buf += data
        if not self._upgraded:
            head, sep, rest = self._buf.partition(b"\r\n\r\n")
            if not sep:
                return []
            assert head.startswith(b"HTTP/1.1 101"), head[:200]
            self._upgraded = True
            self._buf = rest
        new, used = split_frames(self._buf)
        self._buf = self._buf[used:]
        self.frames.extend(new)
        return new


def split_frames(rest: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """The whole frames at the start of `rest`, and how many bytes they took."""
    frames = []
    i = 0
    while i + 2 <= len(rest):
        b0, b1 = rest[i], rest[i + 1]
        assert b0 & 0x80, "a fragmented frame"
        assert not b1 & 0x80, "a masked frame from the server"
        n = b1 & 0x7F
        j = i + 2
        if n == 126:
            if j + 2 > len(rest):
                break
            (n,) = struct.unpack_from("!H", rest, j)
            j += 2
        elif n == 127:
            if j + 8 > len(rest):
                break
            (n,) = struct.unpack_from("!Q", rest, j)
            j += 8
        if j + n > len(rest):
            break
        frames.append((b0 & 0x0F, rest[j : j + n]))
        i = j + n
    return frames, i


def close_code(payload: bytes) -> int:
    return struct.unpack_from("!H", payload)[0]


def events_of(frames: list[tuple[int, bytes]]) -> list[dict]:
    """Every event of the text frames, in order."""
    out: list[dict] = []
    for op, payload in frames:
        if op == OP_TEXT:
            out.extend(orjson.loads(payload))
    return out
