"""Prometheus metrics, one registry per app (no module globals, so test apps don't collide).

Counters never carry personal data: no names, phones or free text in any label.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
disable_created_metrics()  # the _created series only add noise to every counter


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.viewers = Gauge(
            "jobcast_viewers", "Viewer WebSocket connections open on this process", registry=r
        )
        self.host_sockets = Gauge(
            "jobcast_host_sockets",
            "Host console WebSocket connections on this process",
            registry=r,
        )
        self.bus_messages = Counter(
            "jobcast_bus_messages", "Pub/sub messages received from Redis", registry=r
        )
        self.events_delivered = Counter(
            "jobcast_events_delivered", "Events queued to local sockets", registry=r
        )
        self.frames_sent = Counter(
            "jobcast_frames_sent",
            "WebSocket frames written (each may coalesce events)",
            registry=r,
        )
        self.slow_dropped = Counter(
            "jobcast_slow_viewers_dropped",
            "Sockets closed for falling too far behind",
            registry=r,
        )
        self.redis_reconnects = Counter(
            "jobcast_redis_reconnects", "Times the bus reconnected to Redis", registry=r
        )
        self.replays = Counter(
            "jobcast_replays", "Reconnects served from the event stream", registry=r
        )
        self.snapshots = Counter("jobcast_snapshots", "Full snapshots sent", registry=r)
        self.ws_errors = Counter(
            "jobcast_ws_errors", "Error events sent to clients", ["code"], registry=r
        )
        self.redis_refusals = Counter(
            "jobcast_redis_refusals",
            "Requests, socket actions and joins answered unavailable as Redis refused, by kind",
            ["kind"],
            registry=r,
        )
        self.http_errors = Counter(
            "jobcast_http_errors", "HTTP error responses", ["status"], registry=r
        )

    def attach_event_log(self, log: object) -> None:
        self.registry.register(_EventLogCollector(log))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _EventLogCollector:
    """Reads the event log's own counter at scrape time (core/ has no Prometheus)."""

    def __init__(self, log: object) -> None:
        self.log = log

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        c = CounterMetricFamily(
            "jobcast_events_published", "Events appended and published by this process"
        )
        c.add_metric([], float(getattr(self.log, "published", 0)))
        yield c
