"""One settings object, built once from the environment (and an optional ``.env`` file).

Nothing else in TITAN reads ``os.environ``. Invalid values are collected and reported
one line per variable; secret values are never echoed, only the variable's name.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from titan_grpc.env import EnvReader
from titan_grpc.env import Secret as Secret  # re-exported: settings hold secrets
from titan_grpc.errors import ConfigError

SCOPES = frozenset({"read", "trade"})
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]{16,256}$")


@dataclass(frozen=True, slots=True)
class AuthGrant:
    """A bearer token and what it may do (``read``, ``trade``)."""

    token: Secret
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class VenueCredentials:
    api_key: Secret = field(default_factory=lambda: Secret(""))
    api_secret: Secret = field(default_factory=lambda: Secret(""))
    passphrase: Secret = field(default_factory=lambda: Secret(""))


@dataclass(frozen=True, slots=True)
class VenueBudget:
    """Per-API-plan overrides of a venue's documented limits; None keeps the default.

    Each venue reads the fields that apply to it (README, "Freshness and budgets").
    """

    weight_per_window: int | None = None  # Binance REQUEST_WEIGHT/min; KuCoin private pool/30 s
    public_weight_per_window: int | None = None  # KuCoin public pool/30 s
    orders_per_window: int | None = None  # Binance ORDERS/10 s
    public_rate_per_second: float | None = None  # Coinbase public requests/s
    private_rate_per_second: float | None = None  # Coinbase private requests/s


@dataclass(frozen=True, slots=True)
class VenueSettings:
    name: str
    credentials: VenueCredentials
    testnet: bool
    base_url: str
    ws_url: str
    # Whether the *_TESTNET/*_SANDBOX variable was set, rather than defaulted.
    testnet_explicit: bool = False
    budget: VenueBudget = field(default_factory=VenueBudget)
    # Binance's private feed is on its WebSocket API host (BINANCE_WS_API_URL, the full
    # URL including /ws-api/v3).
    ws_api_url: str = ""


VENUE_MODES = ("real", "simulated")
_VENUE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*(:[a-z0-9][a-z0-9_.-]*)?$")


@dataclass(frozen=True, slots=True)
class VenueChoice:
    """One ``TITAN_VENUES`` entry: a venue id and whether it is served real or simulated."""

    name: str
    simulated: bool


def venue_prefix(name: str) -> str:
    """The environment prefix a venue plugin reads: ``ccxt:okx`` -> ``CCXT_OKX_``."""
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") + "_"


class VenueEnvironment:
    """The environment as read once by ``load_settings``, for venue plugins: each factory is
    handed only the variables with its own prefix. Values never show in repr or logs."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def with_prefix(self, prefix: str) -> dict[str, str]:
        return {k: v for k, v in self._values.items() if k.startswith(prefix)}

    def __repr__(self) -> str:
        return f"VenueEnvironment({len(self._values)} variables)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VenueEnvironment) and other._values == self._values

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values)))


@dataclass(frozen=True, slots=True)
class ServerTuning:
    """gRPC transport settings operators tune (README, "Operate it"); built into server
    options by ``titan_grpc.server_options``."""

    keepalive_time_seconds: float = 60.0  # ping a connection with calls after this much quiet
    keepalive_timeout_seconds: float = 20.0  # no ping ack within this: close the connection
    min_client_ping_seconds: float = 10.0  # clients may ping this often without GOAWAY
    max_connection_idle_seconds: float = 0.0  # 0 = never close idle connections
    max_connection_age_seconds: float = 0.0  # 0 = no maximum age (for L4 load balancing)
    compression: str = "none"  # none, gzip or deflate for answers
    channelz: bool = False  # serve grpc.channelz.v1 (debugging)
    otel: bool = False  # OpenTelemetry tracing of every RPC (the otel extra)


@dataclass(frozen=True, slots=True)
class Settings:
    use_real_exchanges: bool = False
    grpc_address: str = "127.0.0.1:50051"
    log_level: str = "INFO"
    log_format: str = "text"
    fallback_to_mock: bool = False
    auth_grants: tuple[AuthGrant, ...] = ()
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    journal_path: str = "titan-journal.sqlite3"
    journal_url: Secret = field(default_factory=lambda: Secret(""))  # postgresql://...
    redis_url: Secret = field(default_factory=lambda: Secret(""))  # redis://...
    journal_retention_days: int = 30
    claim_lease_seconds: float = 15.0
    reconcile_concurrency: int = 8
    metrics_address: str = ""
    # HTTP/JSON transcoding of the same service (titan_grpc/http/); empty = off.
    http_address: str = ""
    # Browser origins (scheme://host[:port]) allowed to call the HTTP routes (CORS).
    http_cors_origins: tuple[str, ...] = ()
    # Host names besides loopback's that a loopback HTTP address answers to.
    http_allowed_hosts: tuple[str, ...] = ()
    # Bearer tokens over plaintext beyond loopback, for a TLS-terminating proxy in front.
    allow_plaintext_tokens: bool = False
    max_receive_message_bytes: int = 256 * 1024
    quote_aliases: tuple[tuple[str, str], ...] = ()
    sim_seed: int = 42
    sim_tick_ms: int = 500
    shutdown_grace_seconds: float = 5.0
    reconcile_settle_seconds: float = 30.0
    health_interval_seconds: float = 15.0
    tuning: ServerTuning = field(default_factory=ServerTuning)
    # The read path (README, "Freshness and budgets").
    read_max_age_ms: int = 1000
    trading_reserve: float = 0.2
    read_promote_reads: int = 20
    portfolio_interval_ms: int = 1000
    # TITAN_VENUES; empty keeps the default set (USE_REAL_EXCHANGES chooses for all).
    venues: tuple[VenueChoice, ...] = ()
    venue_environment: VenueEnvironment = field(default_factory=VenueEnvironment)
    binance: VenueSettings = field(
        default_factory=lambda: VenueSettings("binance", VenueCredentials(), True, "", "")
    )
    coinbase: VenueSettings = field(
        default_factory=lambda: VenueSettings("coinbase", VenueCredentials(), True, "", "")
    )
    kucoin: VenueSettings = field(
        default_factory=lambda: VenueSettings("kucoin", VenueCredentials(), True, "", "")
    )

    @property
    def grpc_host(self) -> str:
        host, _, _ = self.grpc_address.rpartition(":")
        return host.strip("[]")

    @property
    def binds_loopback_only(self) -> bool:
        return is_loopback_address(self.grpc_address)

    @property
    def metrics_loopback_only(self) -> bool:
        return is_loopback_address(self.metrics_address)


def is_loopback_address(address: str) -> bool:
    """Whether HOST:PORT binds a loopback interface only (localhost, 127/8, ::1)."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_LOG_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}

# Every variable TITAN reads; anything else in the environment is ignored.
KNOWN_VARIABLES = (
    "USE_REAL_EXCHANGES",
    "BINANCE_API_KEY",
    "BINANCE_API_SECRET",
    "BINANCE_TESTNET",
    "BINANCE_BASE_URL",
    "BINANCE_WS_URL",
    "COINBASE_API_KEY",
    "COINBASE_API_SECRET",
    "COINBASE_PASSPHRASE",
    "COINBASE_SANDBOX",
    "COINBASE_BASE_URL",
    "COINBASE_WS_URL",
    "KUCOIN_API_KEY",
    "KUCOIN_API_SECRET",
    "KUCOIN_PASSPHRASE",
    "KUCOIN_SANDBOX",
    "KUCOIN_BASE_URL",
    "TITAN_GRPC_ADDRESS",
    "TITAN_AUTH_TOKENS",
    "TITAN_TLS_CERT",
    "TITAN_TLS_KEY",
    "TITAN_TLS_CLIENT_CA",
    "TITAN_JOURNAL_PATH",
    "TITAN_JOURNAL_URL",
    "TITAN_REDIS_URL",
    "TITAN_JOURNAL_RETENTION_DAYS",
    "TITAN_CLAIM_LEASE_SECONDS",
    "TITAN_RECONCILE_CONCURRENCY",
    "TITAN_METRICS_ADDRESS",
    "TITAN_HTTP_ADDRESS",
    "TITAN_HTTP_CORS_ORIGINS",
    "TITAN_HTTP_ALLOWED_HOSTS",
    "TITAN_ALLOW_PLAINTEXT_TOKENS",
    "TITAN_MAX_RECEIVE_MESSAGE_BYTES",
    "TITAN_LOG_LEVEL",
    "TITAN_LOG_FORMAT",
    "TITAN_FALLBACK_TO_MOCK",
    "TITAN_QUOTE_ALIASES",
    "TITAN_SIM_SEED",
    "TITAN_SIM_TICK_MS",
    "TITAN_SHUTDOWN_GRACE_SECONDS",
    "TITAN_RECONCILE_SETTLE_SECONDS",
    "TITAN_HEALTH_INTERVAL_SECONDS",
    "TITAN_KEEPALIVE_TIME_SECONDS",
    "TITAN_KEEPALIVE_TIMEOUT_SECONDS",
    "TITAN_MIN_CLIENT_PING_SECONDS",
    "TITAN_MAX_CONNECTION_IDLE_SECONDS",
    "TITAN_MAX_CONNECTION_AGE_SECONDS",
    "TITAN_COMPRESSION",
    "TITAN_CHANNELZ",
    "TITAN_OTEL",
    "TITAN_READ_MAX_AGE_MS",
    "TITAN_TRADING_RESERVE",
    "TITAN_READ_PROMOTE_READS",
    "TITAN_VENUES",
    "BINANCE_REQUEST_WEIGHT_PER_MINUTE",
    "BINANCE_ORDERS_PER_10S",
    "COINBASE_PUBLIC_REQUESTS_PER_SECOND",
    "COINBASE_PRIVATE_REQUESTS_PER_SECOND",
    "KUCOIN_PUBLIC_WEIGHT_PER_30S",
    "KUCOIN_PRIVATE_WEIGHT_PER_30S",
)


_ORIGIN_RE = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
_ORIGIN_HINT = "an origin such as https://dash.example.com or http://localhost:8080"
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
_HOST_HINT = "a host name such as titan.internal (no port)"


def _listed(reader: EnvReader, name: str, pattern: re.Pattern[str], hint: str) -> tuple[str, ...]:
    """A comma-separated list of values that each match ``pattern``."""
    values = tuple(item.strip() for item in reader.raw(name).split(",") if item.strip())
    for value in values:
        if not pattern.match(value):
            reader.problems.append(f"{name}: expected {hint}, got {value!r}")
            return ()
    return values


def _quote_aliases(reader: EnvReader) -> tuple[tuple[str, str], ...]:
    value = reader.raw("TITAN_QUOTE_ALIASES")
    if not value:
        return ()
    aliases: list[tuple[str, str]] = []
    for item in value.split(","):
        wanted, sep, substitute = item.strip().partition(":")
        if not sep or not wanted.isalnum() or not substitute.isalnum():
            reader.problems.append(
                "TITAN_QUOTE_ALIASES: expected QUOTE:SUBSTITUTE pairs (e.g. USDT:USD), "
                f"got {item!r}"
            )
            return ()
        aliases.append((wanted.upper(), substitute.upper()))
    return tuple(aliases)


def _venues(reader: EnvReader, use_real: bool) -> tuple[VenueChoice, ...]:
    """``binance,coinbase=simulated,ccxt:okx=real``; a plain name takes USE_REAL_EXCHANGES."""
    value = reader.raw("TITAN_VENUES")
    if not value:
        return ()
    choices: list[VenueChoice] = []
    for item in value.split(","):
        name, sep, mode = (part.strip().lower() for part in item.partition("="))
        if not _VENUE_NAME_RE.match(name) or (sep and mode not in VENUE_MODES):
            reader.problems.append(
                "TITAN_VENUES: expected comma-separated NAME, NAME=simulated or NAME=real "
                f"(e.g. binance,coinbase=simulated,ccxt:okx), got {item.strip()!r}"
            )
            return ()
        if any(choice.name == name for choice in choices):
            reader.problems.append(f"TITAN_VENUES: {name!r} is listed twice")
            return ()
        choices.append(VenueChoice(name, mode == "simulated" if sep else not use_real))
    return tuple(choices)


def _auth_grants(reader: EnvReader) -> tuple[AuthGrant, ...]:
    """``token1:read+trade,token2:read``; problems name the entry's position, never the token."""
    value = reader.raw("TITAN_AUTH_TOKENS")
    if not value:
        return ()
    grants: list[AuthGrant] = []
    seen: set[str] = set()
    for index, item in enumerate(value.split(","), start=1):
        token, sep, scopes_text = item.strip().rpartition(":")
        scopes = frozenset(scope.strip().lower() for scope in scopes_text.split("+"))
        where = f"TITAN_AUTH_TOKENS: entry {index}"
        if not sep or not token:
            reader.problems.append(f"{where}: expected TOKEN:SCOPES (e.g. <token>:read+trade)")
        elif not _TOKEN_RE.match(token):
            reader.problems.append(
                f"{where}: a token must be 16-256 characters of letters, digits and ._~-"
            )
        elif not scopes or not scopes <= SCOPES:
            reader.problems.append(f"{where}: scopes must be read, trade or read+trade")
        elif token in seen:
            reader.problems.append(f"{where}: the same token appears twice")
        else:
            seen.add(token)
            grants.append(AuthGrant(Secret(token), scopes))
    return tuple(grants)


def _budget(reader: EnvReader, name: str) -> VenueBudget:
    if name == "binance":
        return VenueBudget(
            weight_per_window=reader.optional_integer(
                "BINANCE_REQUEST_WEIGHT_PER_MINUTE", 10, 1_000_000
            ),
            orders_per_window=reader.optional_integer("BINANCE_ORDERS_PER_10S", 1, 100_000),
        )
    if name == "coinbase":
        return VenueBudget(
            public_rate_per_second=reader.optional_rate(
                "COINBASE_PUBLIC_REQUESTS_PER_SECOND", 1000
            ),
            private_rate_per_second=reader.optional_rate(
                "COINBASE_PRIVATE_REQUESTS_PER_SECOND", 1000
            ),
        )
    return VenueBudget(
        weight_per_window=reader.optional_integer("KUCOIN_PRIVATE_WEIGHT_PER_30S", 10, 1_000_000),
        public_weight_per_window=reader.optional_integer(
            "KUCOIN_PUBLIC_WEIGHT_PER_30S", 10, 1_000_000
        ),
    )


def _venue(reader: EnvReader, name: str, testnet_var: str, testnet_default: bool) -> VenueSettings:
    prefix = name.upper()
    return VenueSettings(
        name=name,
        credentials=VenueCredentials(
            api_key=reader.secret(f"{prefix}_API_KEY"),
            api_secret=reader.secret(f"{prefix}_API_SECRET"),
            passphrase=reader.secret(f"{prefix}_PASSPHRASE"),
        ),
        testnet=reader.boolean(testnet_var, testnet_default),
        base_url=reader.url(f"{prefix}_BASE_URL"),
        ws_url=reader.url(f"{prefix}_WS_URL"),
        testnet_explicit=bool(reader.raw(testnet_var)),
        budget=_budget(reader, name),
        ws_api_url=reader.url(f"{prefix}_WS_API_URL") if name == "binance" else "",
    )


def _server_tuning(reader: EnvReader) -> ServerTuning:
    compression = reader.text("TITAN_COMPRESSION", "none").lower()
    if compression not in ("none", "gzip", "deflate"):
        reader.problems.append(
            f"TITAN_COMPRESSION: expected none, gzip or deflate, got {compression!r}"
        )
        compression = "none"
    day = 86_400.0
    return ServerTuning(
        keepalive_time_seconds=reader.seconds("TITAN_KEEPALIVE_TIME_SECONDS", 60.0, day),
        keepalive_timeout_seconds=reader.seconds("TITAN_KEEPALIVE_TIMEOUT_SECONDS", 20.0, 3600.0),
        min_client_ping_seconds=reader.seconds("TITAN_MIN_CLIENT_PING_SECONDS", 10.0, day),
        max_connection_idle_seconds=reader.seconds("TITAN_MAX_CONNECTION_IDLE_SECONDS", 0.0, day),
        max_connection_age_seconds=reader.seconds("TITAN_MAX_CONNECTION_AGE_SECONDS", 0.0, day),
        compression=compression,
        channelz=reader.boolean("TITAN_CHANNELZ", False),
        otel=reader.boolean("TITAN_OTEL", False),
    )


def load_settings(
    environ: Mapping[str, str] | None = None,
    env_file: str | None = ".env",
    checks: Callable[[Settings], list[str]] | None = None,
) -> Settings:
    """Build Settings from ``environ`` (default ``os.environ``) over an optional .env file.

    ``checks`` adds the start-up rules (``titan_grpc.startup.startup_problems``), so that
    one ConfigError lists every problem at once: bad values and refused combinations.
    Raises ConfigError listing every invalid variable.
    """
    values: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ if environ is None else environ)
    reader = EnvReader(values)

    log_level = reader.text("TITAN_LOG_LEVEL", "INFO").upper()
    if log_level not in _LOG_LEVELS:
        reader.problems.append(
            f"TITAN_LOG_LEVEL: expected one of {', '.join(sorted(_LOG_LEVELS))}, got {log_level!r}"
        )
        log_level = "INFO"

    log_format = reader.text("TITAN_LOG_FORMAT", "text").lower()
    if log_format not in ("text", "json"):
        reader.problems.append(f"TITAN_LOG_FORMAT: expected text or json, got {log_format!r}")
        log_format = "text"

    tls_cert = reader.file_path("TITAN_TLS_CERT")
    tls_key = reader.file_path("TITAN_TLS_KEY")
    if bool(tls_cert) != bool(tls_key):
        reader.problems.append("TITAN_TLS_CERT and TITAN_TLS_KEY must be set together")
    tls_client_ca = reader.file_path("TITAN_TLS_CLIENT_CA")
    if tls_client_ca and not tls_cert:
        reader.problems.append("TITAN_TLS_CLIENT_CA needs TITAN_TLS_CERT and TITAN_TLS_KEY")

    use_real = reader.boolean("USE_REAL_EXCHANGES", False)
    settings = Settings(
        use_real_exchanges=use_real,
        grpc_address=reader.address("TITAN_GRPC_ADDRESS", "127.0.0.1:50051"),
        log_level=log_level,
        log_format=log_format,
        fallback_to_mock=reader.boolean("TITAN_FALLBACK_TO_MOCK", False),
        auth_grants=_auth_grants(reader),
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_client_ca=tls_client_ca,
        journal_path=reader.text("TITAN_JOURNAL_PATH", "titan-journal.sqlite3"),
        journal_url=reader.store_url("TITAN_JOURNAL_URL", ("postgresql", "postgres")),
        redis_url=reader.store_url("TITAN_REDIS_URL", ("redis", "rediss", "unix")),
        journal_retention_days=reader.integer("TITAN_JOURNAL_RETENTION_DAYS", 30, 0, 36_500),
        claim_lease_seconds=max(reader.seconds("TITAN_CLAIM_LEASE_SECONDS", 15.0, 3600.0), 0.1),
        reconcile_concurrency=reader.integer("TITAN_RECONCILE_CONCURRENCY", 8, 1, 256),
        metrics_address=reader.address("TITAN_METRICS_ADDRESS", "", optional=True),
        http_address=reader.address("TITAN_HTTP_ADDRESS", "", optional=True),
        http_cors_origins=_listed(reader, "TITAN_HTTP_CORS_ORIGINS", _ORIGIN_RE, _ORIGIN_HINT),
        http_allowed_hosts=_listed(reader, "TITAN_HTTP_ALLOWED_HOSTS", _HOST_RE, _HOST_HINT),
        allow_plaintext_tokens=reader.boolean("TITAN_ALLOW_PLAINTEXT_TOKENS", False),
        max_receive_message_bytes=reader.integer(
            "TITAN_MAX_RECEIVE_MESSAGE_BYTES", 256 * 1024, 1024, 64 * 1024 * 1024
        ),
        quote_aliases=_quote_aliases(reader),
        sim_seed=reader.integer("TITAN_SIM_SEED", 42, 0, 2**63 - 1),
        sim_tick_ms=reader.integer("TITAN_SIM_TICK_MS", 500, 0, 3_600_000),
        shutdown_grace_seconds=reader.seconds("TITAN_SHUTDOWN_GRACE_SECONDS", 5.0, 300.0),
        reconcile_settle_seconds=reader.seconds("TITAN_RECONCILE_SETTLE_SECONDS", 30.0, 3600.0),
        health_interval_seconds=reader.seconds("TITAN_HEALTH_INTERVAL_SECONDS", 15.0, 3600.0),
        tuning=_server_tuning(reader),
        read_max_age_ms=reader.integer("TITAN_READ_MAX_AGE_MS", 1000, 0, 3_600_000),
        trading_reserve=reader.share("TITAN_TRADING_RESERVE", 0.2, 0.9),
        read_promote_reads=reader.integer("TITAN_READ_PROMOTE_READS", 20, 0, 1_000_000),
        portfolio_interval_ms=reader.integer("TITAN_PORTFOLIO_INTERVAL_MS", 1000, 0, 3_600_000),
        venues=_venues(reader, use_real),
        venue_environment=VenueEnvironment(values),
        binance=_venue(reader, "binance", "BINANCE_TESTNET", True),
        coinbase=_venue(reader, "coinbase", "COINBASE_SANDBOX", True),
        kucoin=_venue(reader, "kucoin", "KUCOIN_SANDBOX", True),
    )
    if checks is not None:
        reader.problems.extend(checks(settings))
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings
