"""A minimal RESP2 pub/sub connection over asyncio streams.

The bus needs three things redis-py's PubSub hides: to know the moment the connection is lost
(so it can resync viewers), to wait for each SUBSCRIBE to be confirmed (so replay never leaves
a gap), and to hand payloads on as the raw bytes Redis sent (no decoding per message).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from redis.connection import parse_url


class PubSubClosed(ConnectionError):
    pass


def _encode(*args: bytes | str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class PubSubConnection:
    """One subscriber connection. `read()` yields (kind, channel, payload) tuples."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str, *, connect_timeout: float = 5.0) -> PubSubConnection:
        opts: dict[str, Any] = parse_url(url)
        async with asyncio.timeout(connect_timeout):
            if "path" in opts:
                reader, writer = await asyncio.open_unix_connection(opts["path"])
            else:
                ctx = ssl.create_default_context() if url.startswith("rediss://") else None
                reader, writer = await asyncio.open_connection(
                    opts.get("host", "localhost"), int(opts.get("port", 6379)), ssl=ctx
                )
            conn = cls(reader, writer)
            password = opts.get("password")
            if password:
                username = opts.get("username")
                args = ["AUTH", username, password] if username else ["AUTH", password]
                writer.write(_encode(*args))
                reply = await conn._read_reply()
                if isinstance(reply, Exception):
                    writer.close()
                    raise reply
        return conn

    def subscribe(self, *channels: str) -> None:
        if channels:
            self._writer.write(_encode("SUBSCRIBE", *channels))

    def unsubscribe(self, *channels: str) -> None:
        if channels:
            self._writer.write(_encode("UNSUBSCRIBE", *channels))

    def ping(self) -> None:
        self._writer.write(_encode("PING"))

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except (OSError, ConnectionError):
            pass

    async def _line(self) -> bytes:
        try:
            line = await self._reader.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
            raise PubSubClosed("redis pub/sub connection lost") from e
        return line[:-2]

    async def _read_reply(self) -> Any:
        line = await self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"*":
            n = int(rest)
            return [await self._read_reply() for _ in range(n)] if n >= 0 else None
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            try:
                data = await self._reader.readexactly(n + 2)
            except (asyncio.IncompleteReadError, ConnectionError, OSError) as e:
                raise PubSubClosed("redis pub/sub connection lost") from e
            return data[:-2]
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest
        if kind == b"-":
            return ConnectionError(rest.decode(errors="replace"))
        raise PubSubClosed(f"protocol error: {line[:40]!r}")

    async def read(self) -> tuple[bytes, bytes, Any]:
        """Next push: (b'message', channel, payload) or (b'subscribe', channel, count), ..."""
        reply = await self._read_reply()
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, list) and len(reply) == 3:
            return reply[0], reply[1], reply[2]
        if isinstance(reply, list) and reply and reply[0] == b"pong":
            return b"pong", b"", b""
        if reply == b"PONG":
            return b"pong", b"", b""
        return b"other", b"", reply
