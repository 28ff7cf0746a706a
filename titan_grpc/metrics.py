"""Prometheus metrics on their own registry (no globals), served on TITAN_METRICS_ADDRESS.

Beyond loopback every scrape must carry ``Authorization: Bearer <token>`` with the
``read`` scope (Prometheus: ``authorization: {credentials: ...}``), over HTTPS when TLS
is configured (``titan_grpc.startup`` holds the rule).
"""

from __future__ import annotations

import math
import socket
import ssl
import threading
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer

from titan_grpc.logs import current_call
from titan_grpc.net.ratelimit import Lane

RPC_TALLY_BATCH = 512
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Per-call figures are tallied in plain dicts on the event loop (no locks, no
        # label look-ups per call) and exported when Prometheus scrapes (_Tallies).
        self._tallies = _Tallies()
        self.registry.register(self._tallies)
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
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        """One finished RPC: recorded with one append, tallied in batches."""
        pending = self._tallies.pending_rpcs
        pending.append((method, code, seconds))
        if len(pending) >= RPC_TALLY_BATCH:
            self._tallies.tally_rpcs()

    def observe_upstream(self, exchange: str, endpoint: str, status: str, seconds: float) -> None:
        self.upstream_requests.labels(exchange, endpoint, status).inc()
        self.upstream_latency.labels(exchange).observe(seconds)
        key = (current_call.get()[1], exchange)
        by_rpc = self._tallies.upstream_by_rpc
        by_rpc[key] = by_rpc.get(key, 0) + 1

    def observe_budget(self, exchange: str, lane: Lane, weight: int) -> None:
        key = (exchange, lane.name.lower())
        spent = self._tallies.budget_spent
        spent[key] = spent.get(key, 0) + weight

    def observe_read(self, exchange: str, kind: str, result: str) -> None:
        key = (exchange, kind, result)
        reads = self._tallies.read_cache
        reads[key] = reads.get(key, 0) + 1

    def watch_gauge(self, gauge: Gauge, exchange: str, read: Callable[[], float]) -> None:
        """Let ``gauge{exchange}`` read its value at scrape time."""
        gauge.labels(exchange).set_function(read)

    def serve(
        self,
        address: str,
        *,
        authorize: Callable[[str], bool] | None = None,
        tls: tuple[str, str] | None = None,
    ) -> int:
        """Serve /metrics on ``address``; ``authorize`` checks each scrape's bearer token,
        ``tls`` is (certificate, key) files for HTTPS. Returns the port."""
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        app = make_wsgi_app(self.registry)
        if authorize is not None:
            app = _bearer_required(app, authorize)

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        server = make_server(host, int(port), app, Server, handler_class=_QuietHandler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls[0], tls[1])
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Tallies:
    """Counters kept as plain dicts by the event loop and exported at scrape time.

    A scrape runs in the metrics server's thread: it copies each dict first (one C-level
    copy under the GIL), so it never sees a dict change size mid-iteration.
    """

    def __init__(self) -> None:
        # Finished RPCs not tallied yet: appended by the event loop, tallied by it every
        # RPC_TALLY_BATCH calls and by a scrape (deque appends and pops are atomic; the
        # lock keeps two tallies from interleaving).
        self.pending_rpcs: deque[tuple[str, str, float]] = deque()
        self._tally_lock = threading.Lock()
        self.rpc_requests: dict[tuple[str, str], int] = {}
        # method -> [sum of seconds, count per bucket..., count above the last bucket]
        self.rpc_latency: dict[str, list[float]] = {}
        self.upstream_by_rpc: dict[tuple[str, str], int] = {}
        self.budget_spent: dict[tuple[str, str], int] = {}
        self.read_cache: dict[tuple[str, str, str], int] = {}

    def tally_rpcs(self) -> None:
        pending, requests, latencies = self.pending_rpcs, self.rpc_requests, self.rpc_latency
        with self._tally_lock:
            while pending:
                method, code, seconds = pending.popleft()
                key = (method, code)
                requests[key] = requests.get(key, 0) + 1
                latency = latencies.get(method)
                if latency is None:
                    latency = latencies[method] = [0.0] + [0] * (len(LATENCY_BUCKETS) + 1)
                latency[0] += seconds
                latency[1 + bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def collect(self) -> Iterator[Metric]:
        self.tally_rpcs()
        yield _counter(
            "titan_rpc_requests",
            "RPCs handled, by method and status code",
            ["method", "code"],
            self.rpc_requests,
        )
        latency = HistogramMetricFamily(
            "titan_rpc_duration_seconds", "RPC handling time, by method", labels=["method"]
        )
        for method, counts in list(self.rpc_latency.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip((*LATENCY_BUCKETS, math.inf), counts[1:], strict=True):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            latency.add_metric([method], buckets, counts[0])
        yield latency
        yield _counter(
            "titan_upstream_requests_by_rpc",
            "Venue requests sent, by the RPC that caused them",
            ["rpc", "exchange"],
            self.upstream_by_rpc,
        )
        yield _counter(
            "titan_rate_limit_weight_granted",
            "Venue request weight granted by the local budget, by venue and lane",
            ["exchange", "lane"],
            self.budget_spent,
        )
        yield _counter(
            "titan_read_cache",
            "Market-data reads by how they were answered: feed (live feed), hit (cache), "
            "shared (joined an in-flight venue request), miss (sent one), stale (held data, "
            "marked, when the venue could not be asked)",
            ["exchange", "kind", "result"],
            self.read_cache,
        )


def _counter(
    name: str, documentation: str, labels: list[str], values: dict[Any, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in list(values.items()):
        family.add_metric(list(key), value)
    return family


def _bound(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


class _QuietHandler(WSGIRequestHandler):
    """No access line on stderr for every scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _bearer_required(app: WsgiApp, authorize: Callable[[str], bool]) -> WsgiApp:
    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        kind, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).strip().partition(" ")
        if kind.lower() != "bearer" or not authorize(token.strip()):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")],
            )
            return [b"a bearer token with the read scope is required\n"]
        return app(environ, start_response)

    return guarded
