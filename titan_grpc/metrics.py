"""Prometheus metrics on their own registry (no globals), served on TITAN_METRICS_ADDRESS."""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from titan_grpc.logs import current_rpc
from titan_grpc.net.ratelimit import Lane

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpc_requests = Counter(
            "titan_rpc_requests",
            "RPCs handled, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_latency = Histogram(
            "titan_rpc_duration_seconds",
            "RPC handling time, by method",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.active_streams = Gauge(
            "titan_active_streams",
            "Open server streams, by method",
            ["method"],
            registry=self.registry,
        )
        self.stream_subscriptions = Gauge(
            "titan_stream_subscriptions",
            "Per-venue symbol subscriptions held by open streams",
            ["exchange"],
            registry=self.registry,
        )
        self.feed_notices = Counter(
            "titan_feed_notices",
            "Upstream feed gaps and recoveries (each seen by every subscriber of the feed)",
            ["exchange", "kind"],
            registry=self.registry,
        )
        self.upstream_requests = Counter(
            "titan_upstream_requests",
            "Requests sent to venues, by venue, endpoint and HTTP status",
            ["exchange", "endpoint", "status"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "titan_upstream_duration_seconds",
            "Venue request time, by venue",
            ["exchange"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_budget_used = Gauge(
            "titan_rate_limit_budget_used_ratio",
            "Share of the venue's request budget in use (0-1)",
            ["exchange"],
            registry=self.registry,
        )
        self.budget_spent = Counter(
            "titan_rate_limit_weight_granted",
            "Venue request weight granted by the local budget, by venue and lane",
            ["exchange", "lane"],
            registry=self.registry,
        )
        self.read_cache = Counter(
            "titan_read_cache",
            "Market-data reads by how they were answered: feed (live feed), hit (cache), "
            "shared (joined an in-flight venue request), miss (sent one), stale (budget or "
            "venue trouble: older data, marked)",
            ["exchange", "kind", "result"],
            registry=self.registry,
        )
        self.upstream_by_rpc = Counter(
            "titan_upstream_requests_by_rpc",
            "Venue requests sent, by the RPC that caused them",
            ["rpc", "exchange"],
            registry=self.registry,
        )
        self.venue_healthy = Gauge(
            "titan_venue_healthy",
            "1 when the health monitor considers the venue healthy",
            ["exchange"],
            registry=self.registry,
        )
        self.journal_ambiguous = Gauge(
            "titan_journal_ambiguous_orders",
            "Journaled orders whose outcome is not known yet",
            registry=self.registry,
        )
        self._rpc_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        # labels() resolves a child under a lock; keep the children per method and code.
        key = (method, code)
        children = self._rpc_children.get(key)
        if children is None:
            children = (self.rpc_requests.labels(method, code), self.rpc_latency.labels(method))
            self._rpc_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_upstream(self, exchange: str, endpoint: str, status: str, seconds: float) -> None:
        self.upstream_requests.labels(exchange, endpoint, status).inc()
        self.upstream_latency.labels(exchange).observe(seconds)
        self.upstream_by_rpc.labels(current_rpc.get(), exchange).inc()

    def observe_budget(self, exchange: str, lane: Lane, weight: int) -> None:
        self.budget_spent.labels(exchange, lane.name.lower()).inc(weight)

    def observe_read(self, exchange: str, kind: str, result: str) -> None:
        self.read_cache.labels(exchange, kind, result).inc()

    def watch_gauge(self, gauge: Gauge, exchange: str, read: Callable[[], float]) -> None:
        """Let ``gauge{exchange}`` read its value at scrape time."""
        gauge.labels(exchange).set_function(read)

    def serve(self, address: str) -> int:
        host, _, port = address.rpartition(":")
        self._server, self._thread = start_http_server(
            int(port), addr=host.strip("[]"), registry=self.registry
        )
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
