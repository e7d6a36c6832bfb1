"""Every object the app shares, as a typed `web.AppKey`, declared here and nowhere else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from jobcast.core.actions import Action
from jobcast.core.broadcasts import BroadcastService
from jobcast.core.events import EventLog
from jobcast.web.access.auth import LoginGuard, Sessions, Signer
from jobcast.web.realtime.bus import Bus
from jobcast.web.realtime.hub import Hub
from jobcast.web.runtime.metrics import Metrics
from jobcast.web.runtime.settings import Settings
from redis.asyncio import Redis

# A snapshot part: (broadcast id, is_host) -> dict merged into the snapshot's data.
SnapshotPart = Callable[[str, bool], Awaitable[dict[str, Any]]]

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
EVENT_LOG = web.AppKey("event_log", EventLog)
BUS = web.AppKey("bus", Bus)
HUB = web.AppKey("hub", Hub)
METRICS = web.AppKey("metrics", Metrics)
SIGNER = web.AppKey("signer", Signer)
SESSIONS = web.AppKey("sessions", Sessions)
LOGIN_GUARD = web.AppKey("login_guard", LoginGuard)
BROADCASTS = web.AppKey("broadcasts", BroadcastService)
SNAPSHOT_PARTS = web.AppKey("snapshot_parts", list[SnapshotPart])
# Every socket action, by name (declared once: core/actions.py).
WS_ACTIONS = web.AppKey("ws_actions", dict[str, Action[Any]])

from jobcast.web.realtime.presence import Presence  # noqa: E402

PRESENCE = web.AppKey("presence", Presence)
WS_IP_COUNTS = web.AppKey("ws_ip_counts", dict[str, int])

from jobcast.openings.applications import ApplicationService  # noqa: E402
from jobcast.openings.service import OpeningService  # noqa: E402

OPENINGS = web.AppKey("openings", OpeningService)
APPLICATIONS = web.AppKey("applications", ApplicationService)

from jobcast.chat.service import ChatRoom  # noqa: E402

CHAT = web.AppKey("chat", ChatRoom)

from jobcast.stream.service import MediaService  # noqa: E402

MEDIA = web.AppKey("media", MediaService)
