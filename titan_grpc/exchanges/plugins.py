"""Venue plugins: factories registered under the entry-point group ``titan_grpc.exchanges``.

Every venue TITAN serves comes from a factory found there, the built-in ones included
(``pyproject.toml`` registers ``binance``, ``coinbase``, ``kucoin``, ``simulated`` and
``ccxt``), so the server keeps no venue list of its own. A venue id ``family:detail``
(``ccxt:okx``) is served by the factory named ``family`` when none is named after the id
itself. A factory receives a ``VenueContext`` and returns an ``ExchangeBackend``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from titan_grpc.config import Settings, VenueChoice, venue_prefix
from titan_grpc.errors import ConfigError, TitanError
from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.simulated import SimulatedExchange, SimulatedWorld
from titan_grpc.net.ratelimit import UNSHARED, BudgetFactory
from titan_grpc.net.rest import RequestObserver

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "titan_grpc.exchanges"
SIMULATOR = "simulated"  # the factory that serves NAME=simulated
# What TITAN_VENUES means when unset: these three in the mode USE_REAL_EXCHANGES picks.
DEFAULT_VENUES = ("binance", "coinbase", "kucoin")
# Always served, simulated: a duplicate of simulated Binance that requests naming no venue
# leave out (registry.EXCLUDED_FROM_ALL).
MOCK_VENUE = "mock"


@dataclass(frozen=True)
class VenueContext:
    """What a venue factory is given.

    ``env`` holds only the environment variables with the venue's own prefix
    (``venue_prefix``: ``ccxt:okx`` -> ``CCXT_OKX_``), read once by ``load_settings``;
    a factory never reads ``os.environ``. ``budgets`` builds the venue's rate limiters
    with TITAN's lanes; ``request_observer`` feeds the upstream metrics.
    """

    name: str
    env: Mapping[str, str]
    settings: Settings = field(default_factory=Settings)
    world: SimulatedWorld | None = None
    budgets: BudgetFactory = UNSHARED
    request_observer: RequestObserver | None = None

    @property
    def prefix(self) -> str:
        return venue_prefix(self.name)


VenueFactory = Callable[[VenueContext], ExchangeBackend]


def default_choices(settings: Settings) -> tuple[VenueChoice, ...]:
    if settings.venues:
        return settings.venues
    return tuple(VenueChoice(name, not settings.use_real_exchanges) for name in DEFAULT_VENUES)


class PluginIndex:
    """The installed factories, loaded on first use; a plugin that fails to load is
    reported by name (its entry point and the error) instead of served."""

    def __init__(self, found: Iterable[EntryPoint] | None = None) -> None:
        listed = entry_points(group=ENTRY_POINT_GROUP) if found is None else found
        self._entry_points: dict[str, EntryPoint] = {}
        for point in listed:
            self._entry_points.setdefault(point.name.lower(), point)
        self._loaded: dict[str, VenueFactory] = {}

    @property
    def names(self) -> list[str]:
        return sorted(self._entry_points)

    def family(self, venue: str) -> str | None:
        """The entry-point name that serves ``venue``, or None."""
        if venue in self._entry_points:
            return venue
        family, sep, _ = venue.partition(":")
        return family if sep and family in self._entry_points else None

    def factory(self, name: str) -> VenueFactory:
        if name not in self._loaded:
            point = self._entry_points[name]
            try:
                loaded = point.load()
            except Exception as error:  # a broken plugin must not look like a TITAN bug
                raise ConfigError(
                    [
                        f"venue plugin {name!r} ({point.value}) failed to load: "
                        f"{type(error).__name__}: {error}"
                    ]
                ) from None
            if not callable(loaded):
                raise ConfigError(
                    [f"venue plugin {name!r} ({point.value}) is not a callable factory"]
                )
            self._loaded[name] = loaded
        return self._loaded[name]

    def report_broken(self) -> list[str]:
        """Load every installed factory not loaded yet; log and return each failure (a
        plugin nobody selected is still reported by name at start-up)."""
        problems = []
        for name in self.names:
            try:
                self.factory(name)
            except ConfigError as error:
                problems.extend(error.problems)
        for problem in problems:
            log.warning("%s (not selected in TITAN_VENUES, so nothing is lost)", problem)
        return problems


def build_venues(
    settings: Settings,
    world: SimulatedWorld,
    *,
    budgets: BudgetFactory = UNSHARED,
    request_observer: RequestObserver | None = None,
    plugins: PluginIndex | None = None,
    wrap_real: Callable[[ExchangeBackend, ExchangeBackend], ExchangeBackend] | None = None,
) -> dict[str, ExchangeBackend]:
    """The venues ``settings`` select, each built by its factory, plus "mock".

    ``wrap_real(real, simulated)`` (the simulated fallback) wraps each real venue the
    simulator also knows. Raises ConfigError naming the entry that cannot be served.
    """
    index = plugins or PluginIndex()
    if index.family(SIMULATOR) is None:
        raise ConfigError([f"no venue plugin named {SIMULATOR!r} is installed (reinstall TITAN)"])
    # Backends open connections on first use, so a later entry failing leaves none open.
    built: dict[str, ExchangeBackend] = {}
    for choice in default_choices(settings):
        built[choice.name] = _build_one(choice, settings, world, budgets, request_observer, index)
        if wrap_real is not None and not built[choice.name].simulated:
            if choice.name in world.venue_names:
                simulated = SimulatedExchange(choice.name, world)
                built[choice.name] = wrap_real(built[choice.name], simulated)
            else:
                log.info("%s: no simulated fallback (the simulator has no such venue)", choice.name)
    index.report_broken()
    if MOCK_VENUE not in built:
        built[MOCK_VENUE] = _build_one(
            VenueChoice(MOCK_VENUE, True), settings, world, budgets, request_observer, index
        )
    return built


def _build_one(
    choice: VenueChoice,
    settings: Settings,
    world: SimulatedWorld,
    budgets: BudgetFactory,
    request_observer: RequestObserver | None,
    index: PluginIndex,
) -> ExchangeBackend:
    where = f"TITAN_VENUES: {choice.name}"
    if choice.simulated:
        if choice.name not in world.venue_names:
            raise ConfigError(
                [
                    f"{where}=simulated: the simulator has no venue {choice.name!r} "
                    f"(it simulates {', '.join(world.venue_names)}); write {choice.name}=real "
                    "to serve it through its plugin (a plain name is simulated unless "
                    "USE_REAL_EXCHANGES=true)"
                ]
            )
        family: str | None = SIMULATOR
    else:
        if choice.name == MOCK_VENUE:
            raise ConfigError([f"{where}: mock is always simulated"])
        family = index.family(choice.name)
        if family is None or family == SIMULATOR:
            raise ConfigError(
                [
                    f"{where}: no installed venue plugin serves {choice.name!r} "
                    f"(installed: {', '.join(n for n in index.names if n != SIMULATOR)})"
                ]
            )
    assert family is not None
    context = VenueContext(
        name=choice.name,
        env=settings.venue_environment.with_prefix(venue_prefix(choice.name)),
        settings=settings,
        world=world,
        budgets=budgets,
        request_observer=request_observer,
    )
    factory = index.factory(family)
    try:
        backend = factory(context)
    except ConfigError:
        raise  # its problems already name the variables at fault
    except TitanError as error:
        raise ConfigError([f"{where}: {error.message}"]) from None
    if not isinstance(backend, ExchangeBackend):
        raise ConfigError(
            [
                f"{where}: plugin {family!r} returned {type(backend).__name__}, "
                "not an ExchangeBackend"
            ]
        )
    if backend.name != choice.name:
        raise ConfigError([f"{where}: plugin {family!r} built a venue named {backend.name!r}"])
    return backend
