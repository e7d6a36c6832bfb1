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

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"jobcast_{name}", doc, labels, registry=self.registry)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(f"jobcast_{name}", doc, registry=self.registry)

        self.viewers = gauge("viewers", "Viewer WebSocket connections open on this process")
        self.host_sockets = gauge(
            "host_sockets", "Host console WebSocket connections on this process"
        )
        self.bus_messages = counter("bus_messages", "Pub/sub messages received from Redis")
        self.events_delivered = counter("events_delivered", "Events queued to local sockets")
        self.frames_sent = counter(
            "frames_sent", "WebSocket frames written (each may coalesce events)"
        )
        self.slow_dropped = counter(
            "slow_viewers_dropped", "Sockets closed for falling too far behind"
        )
        self.redis_reconnects = counter("redis_reconnects", "Times the bus reconnected to Redis")
        self.replays = counter("replays", "Reconnects served from the event stream")
        self.snapshots = counter("snapshots", "Full snapshots sent")
        self.ws_errors = counter("ws_errors", "Error events sent to clients", "code")
        self.redis_refusals = counter(
            "redis_refusals",
            "Requests, socket actions and joins answered unavailable as Redis refused, by kind",
            "kind",
        )
        self.http_errors = counter("http_errors", "HTTP error responses", "status")

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
