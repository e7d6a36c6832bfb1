"""`create_app(settings)` builds the whole application; tests call it directly.

Every shared object is a typed AppKey (the core ones in web/appkeys.py, a feature's in its
module) and every resource opens and closes in a cleanup context, in dependency order: Redis
pool, event log, bus, hub, presence, then the kicks channel on the bus.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from jobcast.core.broadcasts import BroadcastService
from jobcast.core.events import EventLog
from jobcast.web.access import orgs
from jobcast.web.access.auth import Sessions, Signer
from jobcast.web.access.security import (
    headers_middleware,
    origin_middleware,
    viewer_cookie_middleware,
)
from jobcast.web.api import broadcasts as broadcasts_api
from jobcast.web.api import chat, hls, login, media, notifier, openapi, polls
from jobcast.web.api import employers as employers_api
from jobcast.web.api import interviews as interviews_api
from jobcast.web.api import me as me_api
from jobcast.web.api import openings as openings_api
from jobcast.web.api import report as report_api
from jobcast.web.api import reports as reports_api
from jobcast.web.appkeys import (
    BROADCASTS,
    BUS,
    EVENT_LOG,
    HUB,
    METRICS,
    PRESENCE,
    REDIS,
    SESSIONS,
    SETTINGS,
    SIGNER,
    SNAPSHOT_PARTS,
    WS_ACTIONS,
    WS_IP_COUNTS,
)
from jobcast.web.errors import error_middleware
from jobcast.web.pages import views as pages
from jobcast.web.realtime.bus import Bus
from jobcast.web.realtime.hub import Hub
from jobcast.web.realtime.kicks import kicks_ctx
from jobcast.web.realtime.presence import Presence
from jobcast.web.realtime.private import private_ctx
from jobcast.web.realtime.snapshot import make_snapshot
from jobcast.web.realtime.ws import host_socket, viewer_socket
from jobcast.web.runtime import health
from jobcast.web.runtime.metrics import Metrics
from jobcast.web.runtime.secret import ensure_secret
from jobcast.web.runtime.settings import Settings
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

# Feature wiring: each entry adds its routes, snapshot parts (SNAPSHOT_PARTS), socket actions
# (WS_ACTIONS) and cleanup contexts to the app. Runs after the core contexts are registered,
# so a feature's cleanup context can use REDIS, EVENT_LOG and HUB.
FEATURES: list[Callable[[web.Application], None]] = [
    login.setup,
    openings_api.setup,
    me_api.setup,
    interviews_api.setup,
    chat.setup,
    polls.setup,
    report_api.setup,
    reports_api.setup,
    employers_api.setup,
    media.setup,
    hls.setup,
    notifier.setup,
    openapi.setup,
]


def redis_client(url: str) -> Redis:
    """A pooled client that fails fast (so requests get 503 quickly) and retries briefly.

    When all connections are busy (thousands of viewers reconnecting at once) a request waits
    up to 2 s for one instead of failing at once with "Too many connections".
    """
    pool = BlockingConnectionPool.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=2,
        health_check_interval=0,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionRefusedError],
        max_connections=200,
        timeout=2,
    )
    return Redis.from_pool(pool)


def create_app(settings: Settings) -> web.Application:
    if not settings.redis_url:
        raise ValueError("create_app needs settings.redis_url (the CLI starts one if absent)")
    app = web.Application(
        middlewares=[
            headers_middleware,
            error_middleware,
            origin_middleware,
            viewer_cookie_middleware,
            orgs.make_middleware(),  # a host reaches only its organization's broadcasts
        ],
        client_max_size=settings.max_upload_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[SIGNER] = Signer(_secret(settings))
    app[SNAPSHOT_PARTS] = []
    app[WS_ACTIONS] = {}
    app[WS_IP_COUNTS] = {}
    app[pages.JINJA] = pages.make_env()
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_bus_ctx)
    app.cleanup_ctx.append(kicks_ctx)
    app.cleanup_ctx.append(private_ctx)
    app.on_shutdown.append(_close_sockets)

    app.router.add_routes(broadcasts_api.routes)
    app.router.add_routes(pages.routes)
    app.router.add_routes(health.routes)
    app.router.add_get("/ws/b/{bid}", viewer_socket)
    app.router.add_get("/ws/host/b/{bid}", host_socket)
    for feature in FEATURES:
        feature(app)
    app.router.add_static("/static/", pages.STATIC, append_version=True)
    return app


def _secret(settings: Settings) -> bytes:
    if settings.secret_key:
        return settings.secret_key.encode()
    return ensure_secret(settings.data_path).encode()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    redis = redis_client(settings.redis_url)
    app[REDIS] = redis
    log = EventLog(redis, maxlen=settings.event_history, host_maxlen=settings.host_event_history)
    app[EVENT_LOG] = log
    app[BROADCASTS] = BroadcastService(redis, log)
    app[SESSIONS] = Sessions(redis, app[SIGNER], settings)
    yield
    await redis.aclose()


async def _close_sockets(app: web.Application) -> None:
    """Before the server waits for its handlers: every socket gets 1001 now (Hub.shutdown),
    so the socket handlers end within about a second instead of holding that wait until its
    timeout."""
    hub = app.get(HUB)
    if hub is not None:
        await hub.shutdown()


async def _bus_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    metrics = app[METRICS]
    process = settings.process_name or f"{socket.gethostname()}:{os.getpid()}:{id(app):x}"
    bus = Bus(settings.redis_url, metrics)
    hub = Hub(
        app[EVENT_LOG],
        metrics,
        bus,
        make_snapshot(app),
        frame_max=settings.ws_send_frame_bytes,
    )
    presence = Presence(app[REDIS], hub, process, settings.presence_interval)
    app[HUB] = hub
    app[BUS] = bus
    app[PRESENCE] = presence
    metrics.attach_event_log(app[EVENT_LOG])
    await bus.start()
    await presence.start()
    yield
    await hub.close_all()
    await presence.close()
    await bus.close()
