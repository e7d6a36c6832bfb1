"""The operator's probes: `/healthz` (does Redis take writes) and `/metrics` (Prometheus)."""

from __future__ import annotations

import logging

from aiohttp import web
from jobcast.core import keys
from jobcast.web.appkeys import METRICS, REDIS
from jobcast.web.jsonutil import json_response
from jobcast.web.redis_errors import health_kind, refusal_kind
from jobcast.web.runtime.metrics import CONTENT_TYPE

log = logging.getLogger("jobcast.health")
routes = web.RouteTableDef()

# The health probe's key. SET NX is flagged write and deny-oom, so it is refused exactly when
# writes are (out of memory, disk errors, read-only replica, loading, busy); once the key
# exists it changes nothing and is not written to the AOF.
HEALTHZ_KEY = f"{keys.PREFIX}:healthz"


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 `{"ok": true, "redis": "up"}` when Redis takes writes, else 503 with the kind."""
    try:
        await request.app[REDIS].set(HEALTHZ_KEY, 1, nx=True)
    except Exception as e:
        if refusal_kind(e) is None:
            log.warning("health probe failed", extra={"error": str(e)})
        return json_response({"ok": False, "redis": health_kind(e)}, status=503)
    return json_response({"ok": True, "redis": "up"})


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
