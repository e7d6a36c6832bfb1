"""The typed `web.AppKey`s of what create_app builds for every feature: settings, Redis, the
event log, the bus, the hub and presence, metrics, the signer and sessions, broadcasts, and
the registries features add to (snapshot parts, socket actions).

A feature declares its own keys in its wiring module, next to the cleanup context that fills
them: `OPENINGS` and `APPLICATIONS` in web/api/openings.py, `CHAT` in web/api/chat.py, `MEDIA`
in web/api/media.py, `LOGIN_GUARD` in web/api/login.py, `JINJA` in web/pages/views.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from jobcast.core.actions import Action
from jobcast.core.broadcasts import BroadcastService
from jobcast.core.events import EventLog
from jobcast.web.access.auth import Sessions, Signer
from jobcast.web.realtime.bus import Bus
from jobcast.web.realtime.hub import Hub
from jobcast.web.realtime.presence import Presence
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
PRESENCE = web.AppKey("presence", Presence)
METRICS = web.AppKey("metrics", Metrics)
SIGNER = web.AppKey("signer", Signer)
SESSIONS = web.AppKey("sessions", Sessions)
BROADCASTS = web.AppKey("broadcasts", BroadcastService)
SNAPSHOT_PARTS = web.AppKey("snapshot_parts", list[SnapshotPart])
# Every socket action, by name (declared once: core/actions.py).
WS_ACTIONS = web.AppKey("ws_actions", dict[str, Action[Any]])
# Open sockets per client address on this process (the per-address limit).
WS_IP_COUNTS = web.AppKey("ws_ip_counts", dict[str, int])
