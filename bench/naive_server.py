"""The naive fan-out, as a baseline for bench/fanout.py: one aiohttp process whose pub/sub
listener, for every message, loops over the viewers, decodes and re-encodes the event for each
one and awaits each send in turn. Same wire format as Jobcast's `/ws/b/{bid}` (text frames
holding a JSON array), same event loop (uvloop when installed), nothing else.

    python bench/naive_server.py --port 8090 --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal

from aiohttp import web
from jobcast.core import keys
from redis.asyncio import Redis

VIEWERS: web.AppKey[dict[str, set[web.WebSocketResponse]]] = web.AppKey("viewers", dict)


async def viewer(request: web.Request) -> web.WebSocketResponse:
    bid = request.match_info["bid"]
    ws = web.WebSocketResponse(heartbeat=30.0, compress=False)
    await ws.prepare(request)
    hello = [
        {"type": "hello", "data": {"role": "viewer"}},
        {"type": "snapshot", "seq": "0-0", "data": {}},
        {"type": "synced", "data": {"mode": "snapshot"}},
    ]
    await ws.send_str(json.dumps(hello))
    room = request.app[VIEWERS].setdefault(keys.channel(bid, "p"), set())
    room.add(ws)
    try:
        async for _ in ws:
            pass
    finally:
        room.discard(ws)
    return ws


async def listen(app: web.Application, redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.psubscribe(keys.channel("*", "p"))
    try:
        async for msg in pubsub.listen():
            if msg["type"] != "pmessage":
                continue
            for ws in list(app[VIEWERS].get(msg["channel"].decode(), ())):
                event = json.loads(msg["data"])
                try:
                    await ws.send_str(json.dumps([event]))
                except ConnectionError:
                    pass
    finally:
        await pubsub.aclose()
        await redis.aclose()


async def main(port: int, redis_url: str) -> None:
    app = web.Application()
    app[VIEWERS] = {}
    app.router.add_get("/ws/b/{bid}", viewer)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, reuse_port=True, backlog=4096)
    await site.start()
    listener = asyncio.create_task(listen(app, redis_url))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.cancel()
    await runner.cleanup()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--redis-url", required=True)
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(a.port, a.redis_url))
