"""Connections that never finish their request headers (slowloris) are closed, against a
real `jobcast serve`; a normal client is served meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.servekit import Client, Server


async def test_connections_that_never_finish_their_headers_are_closed(tmp_path: Path):
    server = Server(tmp_path, JOBCAST_HTTP_IDLE_TIMEOUT="1").start()
    try:
        conns = []
        for _ in range(100):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            await writer.drain()
            conns.append((reader, writer))
        async with Client(server.base) as c:  # served meanwhile
            r = await c.session.get(f"{server.base}/healthz")
            assert r.status == 200
        # Each half-open connection is closed by the server: its read ends (EOF or reset).
        async with asyncio.timeout(60):
            for reader, _ in conns:
                try:
                    assert await reader.read() == b""
                except ConnectionResetError:
                    pass
        for _, writer in conns:
            writer.close()
    finally:
        server.stop()
