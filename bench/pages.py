"""Viewer page benchmark: what a phone downloads before video, and how fast a pinned card shows.

    python bench/pages.py --pages 10 --pins 30

Against a real `jobcast serve` subprocess and redis-server (bench/fanout.py's helpers), with
Debian's Chromium driven by Playwright:

  1. Weight: the viewer page of a broadcast with 20 openings, one pinned, is loaded at
     360x740; the bytes transferred (headers and bodies of the page and every script and
     style, before any video) are summed, once as served (gzip) and once with the browser
     asking for `Accept-Encoding: identity` (the baseline: nothing compressed). Also the first
     contentful paint as the browser reports it (on loopback: no network delay in it), after
     one discarded warm-up load.
  2. Pin latency: N viewer pages at 360x740 are open; the host pins a card K times (HTTP
     `POST /api/broadcasts/{id}/pin`, alternating two openings, 400 ms apart). Each page
     records when its pinned card's title changes in the DOM (a MutationObserver); the
     baseline is a bare WebSocket client recording when the `card.pinned` event arrives.
     Latency = that moment minus the moment the pin request was sent.

Everything listens and connects on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from redis.asyncio import Redis

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
sys.path.append(str(HERE))

from fanout import RedisServer, Server, load  # noqa: E402
from jobcast.web.access.auth import add_user  # noqa: E402

from tests.browserkit import PHONE, chromium  # noqa: E402

OBSERVE = """() => {
  window.__pins = [];
  const slot = document.getElementById("pinned-slot");
  new MutationObserver(() => {
    const t = slot.querySelector(".card-title");
    if (t) window.__pins.push([t.textContent, Date.now()]);
  }).observe(slot, { childList: true, subtree: true });
}"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def setup(base: str, redis_url: str) -> tuple[aiohttp.ClientSession, str, str, list[str]]:
    redis = Redis.from_url(redis_url)
    await add_user(redis, "bench", "bench-pass-1", "host")
    await redis.aclose()
    http = aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
    r = await http.post("/api/login", json={"username": "bench", "password": "bench-pass-1"})
    csrf = (await r.json())["csrf"]
    h = {"X-CSRF-Token": csrf}
    r = await http.post(
        "/api/broadcasts",
        json={"title": "鸡西市就业服务中心 · 2026 届毕业生直播招聘会", "description": "d" * 200},
        headers=h,
    )
    bid = (await r.json())["id"]
    ids = []
    for i in range(20):
        r = await http.post(
            f"/api/broadcasts/{bid}/openings",
            json={
                "title": f"岗位{i} 机电一体化技术员",
                "employer": {"name": f"鸡西第{i}机械制造有限责任公司", "verified": True},
                "city": ["鸡西", "哈尔滨", "牡丹江"][i % 3],
                "salary_min": 4000,
                "salary_max": 6000,
                "education": "associate",
                "majors": ["机械设计制造及其自动化", "电气工程"],
                "benefits": ["五险一金", "包住宿"],
                "description": "负责设备的日常维护与保养，参与生产线改造。" * 4,
                "status": "published",
            },
            headers=h,
        )
        ids.append((await r.json())["id"])
    await http.post(f"/api/broadcasts/{bid}/pin", json={"opening_id": ids[0]}, headers=h)
    return http, csrf, bid, ids


async def weight(browser: Any, base: str, bid: str, encoding: str | None) -> dict[str, Any]:
    headers = {"Accept-Language": "zh-CN"}
    if encoding:
        headers["Accept-Encoding"] = encoding
    ctx = await browser.new_context(base_url=base, viewport=PHONE, extra_http_headers=headers)
    page = await ctx.new_page()
    done: list[Any] = []
    page.on("requestfinished", lambda req: done.append(req))
    await page.goto(f"/b/{bid}", wait_until="load")
    await page.wait_for_function("() => document.documentElement.dataset.live === 'live'")
    total = 0
    for req in done:
        if "/whep/" in req.url:
            continue
        s = await req.sizes()
        total += s["responseBodySize"] + s["responseHeadersSize"]
    fcp = await page.evaluate(
        "() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0"
    )
    await ctx.close()
    return {"bytes": total, "requests": len(done), "fcp_ms": fcp}


async def ws_baseline(base: str, bid: str, out: list[tuple[str, float]], ready: asyncio.Event):
    async with aiohttp.ClientSession() as s, s.ws_connect(f"{base}/ws/b/{bid}") as ws:
        async for msg in ws:
            for ev in orjson.loads(msg.data):
                if ev["type"] == "synced":
                    ready.set()
                if ev["type"] == "card.pinned":
                    out.append((ev["data"]["opening"]["title"], time.time() * 1000))


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="jobcast-bench-pages-"))
    redis = RedisServer(tmp)
    server = Server("jobcast", redis.url, 1, tmp)
    base = f"http://127.0.0.1:{server.port}"
    try:
        http, csrf, bid, ids = await setup(base, redis.url)
        async with chromium() as browser:
            await weight(browser, base, bid, None)  # warm-up: the browser's first start-up
            gz = await weight(browser, base, bid, None)
            plain = await weight(browser, base, bid, "identity")
            print(f"load average: {load()}")
            print(
                f"viewer page weight, served (gzip): {gz['bytes']} B in {gz['requests']} "
                f"requests, first contentful paint {gz['fcp_ms']:.0f} ms"
            )
            print(
                f"baseline, uncompressed (identity): {plain['bytes']} B in {plain['requests']} "
                f"requests, first contentful paint {plain['fcp_ms']:.0f} ms"
            )

            pages = []
            for _ in range(args.pages):
                ctx = await browser.new_context(base_url=base, viewport=PHONE)
                p = await ctx.new_page()
                await p.goto(f"/b/{bid}")
                await p.wait_for_function("() => document.documentElement.dataset.live === 'live'")
                await p.evaluate(OBSERVE)
                pages.append(p)
            ws_events: list[tuple[str, float]] = []
            ready = asyncio.Event()
            ws_task = asyncio.create_task(ws_baseline(base, bid, ws_events, ready))
            await asyncio.wait_for(ready.wait(), 10)

            sent: list[tuple[str, float]] = []
            titles = {}
            for i in range(args.pins):
                oid = ids[1 + i % 2]
                t0 = time.time() * 1000
                r = await http.post(
                    f"/api/broadcasts/{bid}/pin",
                    json={"opening_id": oid},
                    headers={"X-CSRF-Token": csrf},
                )
                body = await r.json()
                titles[oid] = body["pinned"]["opening"]["title"]
                sent.append((titles[oid], t0))
                await asyncio.sleep(0.4)
            await asyncio.sleep(1.0)
            ws_task.cancel()

            def latencies(events: list[tuple[str, float]]) -> list[float]:
                out = []
                for k, (title, t0) in enumerate(sent):
                    t1 = sent[k + 1][1] if k + 1 < len(sent) else float("inf")
                    got = [t for name, t in events if name == title and t0 <= t < t1]
                    if got:
                        out.append(got[0] - t0)
                return out

            browser_lat: list[float] = []
            missed = 0
            for p in pages:
                events = [(a, b) for a, b in await p.evaluate("() => window.__pins")]
                lat = latencies(events)
                missed += len(sent) - len(lat)
                browser_lat += lat
            ws_lat = latencies(ws_events)
            print(f"load average: {load()}")
            print(
                f"pin -> card in the DOM, {args.pages} pages x {args.pins} pins: "
                f"p50 {statistics.median(browser_lat):.1f} ms, p95 {pct(browser_lat, 0.95):.1f} "
                f"ms, max {max(browser_lat):.1f} ms, missed {missed}"
            )
            print(
                f"baseline, bare WebSocket client (event arrival), {args.pins} pins: "
                f"p50 {statistics.median(ws_lat):.1f} ms, p95 {pct(ws_lat, 0.95):.1f} ms, "
                f"max {max(ws_lat):.1f} ms, missed {len(sent) - len(ws_lat)}"
            )
        await http.close()
    finally:
        server.stop()
        redis.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=10, help="viewer pages open at once")
    ap.add_argument("--pins", type=int, default=30, help="pins to time")
    args = ap.parse_args()
    args.pages = max(1, min(args.pages, 40))
    args.pins = max(2, min(args.pins, 200))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
