"""Composition root: builds every object from Settings and runs the grpc.aio server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from titan_grpc import __version__, server_options
from titan_grpc.auth import AuthInterceptor
from titan_grpc.config import Settings, is_loopback_address
from titan_grpc.errors import ConfigError, StoreUnavailable
from titan_grpc.exchanges import ExchangeBackend, ExchangeRegistry
from titan_grpc.exchanges.fees import keep_fees_fresh, refresh_venue_fees
from titan_grpc.exchanges.plugins import build_venues
from titan_grpc.exchanges.simulated import SimulatedWorld
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.http import HttpServer, server_ssl_context, start_http_server
from titan_grpc.http.origins import OriginPolicy
from titan_grpc.market.fallback import FallbackExchange
from titan_grpc.market.health import HealthMonitor
from titan_grpc.market.state import ReadPolicy
from titan_grpc.metrics import Metrics
from titan_grpc.net.ratelimit import BudgetFactory, Budgets, LaneShares
from titan_grpc.service import ExchangeService, GatewayInfo
from titan_grpc.service.handlers import GenericHandlersOnly, add_to_server
from titan_grpc.startup import plaintext_token_warnings, startup_problems
from titan_grpc.stores import Claims, JournalStore, Stores, open_stores
from titan_grpc.stores.redis_budget import open_redis_budgets
from titan_grpc.trading.journal import JournalState
from titan_grpc.trading.orders import OrderService

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ExchangeService"].full_name
TRADING_HEALTH_NAME = f"{SERVICE_NAME}/trading"
JOURNAL_GAUGE_SECONDS = 5.0
PRUNE_INTERVAL_SECONDS = 3600.0
FEE_REFRESH_SECONDS = 900.0  # the account's fee tier changes at most daily on every venue
FEE_REQUEST_SECONDS = 5.0


def check_startup_rules(settings: Settings) -> None:
    """Refuse configurations this build cannot serve safely, listing every problem."""
    problems = startup_problems(settings)
    if problems:
        raise ConfigError(problems)


def build_backends(
    settings: Settings,
    world: SimulatedWorld,
    metrics: Metrics | None = None,
    *,
    budgets: BudgetFactory | None = None,
) -> dict[str, ExchangeBackend]:
    """The venues TITAN_VENUES selects (default: the three built-in venues in the mode
    USE_REAL_EXCHANGES picks), each built by its entry-point factory, plus "mock"."""
    budgets = budgets or Budgets(
        LaneShares.from_reserve(settings.trading_reserve),
        on_grant=metrics.observe_budget if metrics is not None else None,
    )
    return build_venues(
        settings,
        world,
        budgets=budgets,
        request_observer=metrics.observe_upstream if metrics is not None else None,
        wrap_real=FallbackExchange if settings.fallback_to_mock else None,
    )


def _describe(backend: ExchangeBackend) -> str:
    if isinstance(backend, FallbackExchange):
        return f"{backend.name} ({'testnet' if backend.testnet else 'LIVE'}, simulated fallback)"
    if backend.simulated:
        return f"{backend.name} (simulated)"
    return f"{backend.name} ({'testnet' if backend.testnet else 'LIVE'})"


@dataclass
class Gateway:
    """A running server and the objects it owns."""

    server: grpc.aio.Server
    port: int
    registry: ExchangeRegistry
    world: SimulatedWorld
    health: HealthServicer
    shutdown: asyncio.Event
    journal: JournalStore
    monitor: HealthMonitor
    metrics: Metrics
    stores: Stores
    orders: OrderService
    reconciled: asyncio.Event = field(default_factory=asyncio.Event)
    metrics_port: int = 0
    http: HttpServer | None = None
    budgets: BudgetFactory | None = None
    end_streams: Callable[[], None] = lambda: None
    service: ExchangeService | None = None  # the servicer (benchmarks call it in-process)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopped: bool = False

    async def stop(self, grace: float) -> None:
        """Health NOT_SERVING, end open streams, let in-flight calls finish, release."""
        if self._stopped:
            return
        self._stopped = True
        log.info("shutting down (grace %.1fs)", grace)
        await self.health.enter_graceful_shutdown()
        self.shutdown.set()
        self.end_streams()
        stopping = [self.server.stop(grace)]
        if self.http is not None:
            stopping.append(self.http.stop())  # stops accepting now, like the gRPC server
        await asyncio.gather(*stopping)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.monitor.close()
        await self.registry.close()
        if self.budgets is not None:
            await self.budgets.close()
        await self.stores.close()
        self.metrics.close()
        log.info("stopped")


async def start_gateway(
    settings: Settings,
    *,
    world: SimulatedWorld | None = None,
    backends: Mapping[str, ExchangeBackend] | None = None,
    share_port: bool = False,
    budget_split: int = 1,
) -> Gateway:
    """Build and start the server on ``settings.grpc_address`` (port 0 picks a free one).

    ``world`` and ``backends`` replace what ``settings`` would build (tests use them).
    """
    check_startup_rules(settings)
    if share_port and settings.journal_path == ":memory:" and not settings.journal_url:
        # Workers must share one journal (and its claims), or each would send on its own.
        raise ConfigError(
            ["TITAN_JOURNAL_PATH: :memory: cannot be shared by --workers processes; use a file"]
        )
    world = world or SimulatedWorld(settings.sim_seed)
    metrics = Metrics()
    budgets = await _open_budgets(settings, metrics, budget_split) if not backends else None
    registry = ExchangeRegistry(
        backends or build_backends(settings, world, metrics, budgets=budgets)
    )
    stores = await _open_stores(settings)
    orders = OrderService(
        stores.journal,
        Claims(stores.claims, lease_seconds=settings.claim_lease_seconds),
        registry,
        settle_seconds=settings.reconcile_settle_seconds,
        reconcile_concurrency=settings.reconcile_concurrency,
    )
    shutdown = asyncio.Event()
    info = GatewayInfo(
        version=__version__,
        real_mode=any(not backend.simulated for backend in registry.all()),
        quote_aliases=tuple(f"{a}:{b}" for a, b in settings.quote_aliases),
        read_policy=ReadPolicy(
            default_max_age_seconds=settings.read_max_age_ms / 1000,
            promote_reads=settings.read_promote_reads,
        ),
        portfolio_interval_seconds=settings.portfolio_interval_ms / 1000,
    )
    # so_reuseport=0 unless workers share the port on purpose: a second server must fail
    # to bind rather than silently share it.
    # The servicer's decorators count the calls it handles; auth counts its refusals.
    auth = (
        AuthInterceptor(settings.auth_grants, observe=metrics.observe_rpc)
        if settings.auth_grants
        else None
    )
    interceptors = [auth] if auth is not None else []
    for warning in plaintext_token_warnings(settings):
        log.warning(warning)
    reuse = 1 if share_port else 0
    server = grpc.aio.server(
        interceptors=[*server_options.tracing_interceptors(settings), *interceptors],
        options=[
            ("grpc.so_reuseport", reuse),
            # A larger request is refused RESOURCE_EXHAUSTED before it is read into memory.
            ("grpc.max_receive_message_length", settings.max_receive_message_bytes),
            *server_options.channel_args(settings),
        ],
        compression=server_options.compression(settings),
    )
    health = HealthServicer()
    monitor = HealthMonitor(registry.all(), on_change=_venue_health_setter(health))
    service = ExchangeService(registry, orders, monitor, info, shutdown, metrics)
    add_to_server(service, server)  # first: grpc asks the services in the order added
    add_support_services(server, health, settings)
    _watch_venues(metrics, registry, monitor)
    try:
        port = _bind(server, settings)
    except ConfigError:
        await stores.close()
        raise
    # Trading waits for start-up reconciliation; everything else serves at once.
    await health.set(TRADING_HEALTH_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    for name in ("", SERVICE_NAME, *(f"{SERVICE_NAME}/{venue}" for venue in registry.names)):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    # The account's fee tiers, fetched while already serving (the standard tier until
    # then; at most FEE_REQUEST_SECONDS per venue, venues in parallel).
    await refresh_venue_fees(registry.all(), FEE_REQUEST_SECONDS)
    gateway = Gateway(
        server,
        port,
        registry,
        world,
        health,
        shutdown,
        stores.journal,
        monitor,
        metrics,
        stores,
        orders,
        budgets=budgets,
    )
    gateway._tasks.append(
        asyncio.create_task(_reconcile_then_trade(gateway, settings.journal_retention_days))
    )
    gateway.end_streams = service.end_streams
    gateway.service = service
    if settings.http_address:
        try:
            gateway.http = await _start_http(settings, service, auth)
        except ConfigError:
            await gateway.stop(0)
            raise
    if settings.metrics_address:
        gateway.metrics_port = _serve_metrics(metrics, settings, auth)
    gateway._tasks.append(asyncio.create_task(_refresh_journal_gauge(metrics, stores.journal)))
    gateway._tasks.append(asyncio.create_task(service.run_upkeep()))
    gateway._tasks.append(
        asyncio.create_task(
            keep_fees_fresh(registry.all(), FEE_REFRESH_SECONDS, FEE_REQUEST_SECONDS)
        )
    )
    if settings.health_interval_seconds > 0:
        gateway._tasks.append(asyncio.create_task(monitor.run(settings.health_interval_seconds)))
    if settings.sim_tick_ms > 0:
        gateway._tasks.append(asyncio.create_task(world.run(settings.sim_tick_ms / 1000)))
    log.info(
        "TITAN %s serving titan.v1.ExchangeService on %s (port %d, %s, venues: %s; %s)",
        __version__,
        settings.grpc_address,
        port,
        ("mTLS" if settings.tls_client_ca else "TLS") if settings.tls_cert else "plaintext",
        ", ".join(_describe(b) for b in registry.all()),
        stores.engines,
    )
    return gateway


def _serve_metrics(metrics: Metrics, settings: Settings, auth: AuthInterceptor | None) -> int:
    """Open on loopback; beyond it (startup rules) a read token, over TLS when configured."""
    guarded = not settings.metrics_loopback_only and auth is not None
    tls = (settings.tls_cert, settings.tls_key) if guarded and settings.tls_cert else None
    authorize = (lambda token: auth.allows(token, "read")) if guarded and auth else None
    try:
        port = metrics.serve(settings.metrics_address, authorize=authorize, tls=tls)
    except OSError as error:
        address = settings.metrics_address
        raise ConfigError([f"TITAN_METRICS_ADDRESS: cannot bind {address}: {error}"]) from None
    scheme = "https" if tls else "http"
    note = " (bearer token with the read scope required)" if authorize else ""
    log.info("metrics on %s://%s/metrics%s", scheme, settings.metrics_address, note)
    return port


def _watch_venues(metrics: Metrics, registry: ExchangeRegistry, monitor: HealthMonitor) -> None:
    for backend in registry.all():
        metrics.watch_gauge(
            metrics.venue_healthy, backend.name, _health_reader(monitor, backend.name)
        )
        metrics.watch_gauge(metrics.rate_budget_used, backend.name, _budget_reader(backend))


def _health_reader(monitor: HealthMonitor, name: str) -> Callable[[], float]:
    return lambda: float(monitor.is_healthy(name))


def _budget_reader(backend: ExchangeBackend) -> Callable[[], float]:
    return lambda: backend.rate_budget_used() or 0.0


async def _open_budgets(settings: Settings, metrics: Metrics, split: int) -> BudgetFactory:
    """Venue budgets: in Redis for every process and host with TITAN_REDIS_URL,
    else in this process (``split`` processes on this host each spend 1/split of them)."""
    shares = LaneShares.from_reserve(settings.trading_reserve)
    if not settings.redis_url:
        return Budgets(shares, split=split, on_grant=metrics.observe_budget)
    keys = {
        venue.name: venue.credentials.api_key.reveal()
        for venue in (settings.binance, settings.coinbase, settings.kucoin)
    }
    try:
        return await open_redis_budgets(
            settings.redis_url.reveal(), shares, api_keys=keys, on_grant=metrics.observe_budget
        )
    except StoreUnavailable as error:
        raise ConfigError([f"TITAN_REDIS_URL: {error.message}"]) from None


async def _open_stores(settings: Settings) -> Stores:
    try:
        return await open_stores(
            journal_path=settings.journal_path,
            journal_url=settings.journal_url.reveal(),
            redis_url=settings.redis_url.reveal(),
        )
    except sqlite3.Error as error:
        problem = f"TITAN_JOURNAL_PATH: cannot open {settings.journal_path}: {error}"
        raise ConfigError([problem]) from None
    except StoreUnavailable as error:
        variable = "TITAN_REDIS_URL" if "Redis" in error.message else "TITAN_JOURNAL_URL"
        raise ConfigError([f"{variable}: {error.message}"]) from None


async def _reconcile_then_trade(gateway: Gateway, retention_days: int) -> None:
    """Start-up reconciliation in the background, then trading health SERVING; then
    journal retention every hour (first after reconciliation, so it never races it)."""
    delay = 1.0
    while True:
        try:
            await gateway.orders.reconcile_pending()
            break
        except (StoreUnavailable, sqlite3.Error) as error:
            log.warning("start-up reconciliation: journal unavailable (%s); retrying", error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
    gateway.reconciled.set()
    await gateway.health.set(TRADING_HEALTH_NAME, health_pb2.HealthCheckResponse.SERVING)
    if retention_days <= 0:
        return
    while True:
        try:
            await gateway.orders.prune(timedelta(days=retention_days))
        except (StoreUnavailable, sqlite3.Error) as error:
            log.warning("journal retention deferred: %s", error)
        await asyncio.sleep(PRUNE_INTERVAL_SECONDS)


async def _refresh_journal_gauge(metrics: Metrics, journal: JournalStore) -> None:
    while True:
        try:
            counts = await journal.count_by_state()
        except (StoreUnavailable, sqlite3.Error) as error:
            log.warning("journal gauge not refreshed: %s", error)
        else:
            metrics.journal_ambiguous.set(counts.get(JournalState.AMBIGUOUS, 0))
        await asyncio.sleep(JOURNAL_GAUGE_SECONDS)


def add_support_services(
    server: grpc.aio.Server, health: HealthServicer, settings: Settings
) -> None:
    """Health, reflection and (when on) channelz, as generic handlers only."""
    generic_only = GenericHandlersOnly(server)
    debug_services = server_options.add_channelz(settings, generic_only)
    health_pb2_grpc.add_HealthServicer_to_server(health, generic_only)
    reflected = (
        SERVICE_NAME,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
        *debug_services,
    )
    # What reflection.enable_server_reflection adds for a grpc.aio server.
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer(reflected), generic_only
    )


def _venue_health_setter(health: HealthServicer) -> Callable[[str, bool], None]:
    """Mirror the monitor's verdicts into grpc.health.v1 as titan.v1.ExchangeService/<venue>."""

    def update(venue: str, healthy: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if healthy
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        asyncio.get_running_loop().create_task(health.set(f"{SERVICE_NAME}/{venue}", status))

    return update


async def _start_http(
    settings: Settings, service: ExchangeService, auth: AuthInterceptor | None
) -> HttpServer:
    """The same servicer over HTTP/JSON: same auth check, same TLS, no second hop."""
    address = settings.http_address
    tls = (
        server_ssl_context(settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        if settings.tls_cert
        else None
    )
    try:
        http = await start_http_server(
            address,
            pb.DESCRIPTOR.services_by_name["ExchangeService"],
            service,
            auth,
            origins=OriginPolicy.for_address(
                is_loopback_address(address),
                settings.http_cors_origins,
                settings.http_allowed_hosts,
            ),
            ssl_context=tls,
            shutdown_timeout=settings.shutdown_grace_seconds,
        )
    except OSError as error:
        raise ConfigError([f"TITAN_HTTP_ADDRESS: cannot bind {address}: {error}"]) from None
    log.info("HTTP/JSON on %s (port %d, OpenAPI at /openapi.json)", address, http.port)
    return http


def _bind(server: grpc.aio.Server, settings: Settings) -> int:
    address = settings.grpc_address
    try:
        if settings.tls_cert:
            client_ca = (
                Path(settings.tls_client_ca).read_bytes() if settings.tls_client_ca else None
            )
            credentials = grpc.ssl_server_credentials(
                [(Path(settings.tls_key).read_bytes(), Path(settings.tls_cert).read_bytes())],
                root_certificates=client_ca,
                require_client_auth=client_ca is not None,  # mTLS when a client CA is given
            )
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise ConfigError([f"TITAN_GRPC_ADDRESS: cannot bind {address}: {error}"]) from None
    if port == 0:
        raise ConfigError([f"TITAN_GRPC_ADDRESS: cannot bind {address} (in use?)"])
    return port


def settle_heap() -> None:
    """Move everything built at start-up (modules, descriptors, markets) out of the
    collector's reach. Without it each full collection rescans them all, and those pauses
    were the tail of stream latency: p99 50 ms -> 38 ms at 10,000 msgs/s (bench/NOTES.md).
    """
    gc.collect()
    gc.freeze()


async def serve(
    settings: Settings,
    *,
    share_port: bool = False,
    budget_split: int = 1,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM, then shut down gracefully; ``on_ready`` is called once
    the server is serving (the ``--workers`` supervisor's sign that a worker started)."""
    gateway = await start_gateway(settings, share_port=share_port, budget_split=budget_split)
    if on_ready is not None:
        on_ready()
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await gateway.stop(settings.shutdown_grace_seconds)
