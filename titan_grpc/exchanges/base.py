"""The abstract exchange backend every venue adapter implements.

Methods return domain objects and raise the errors in ``titan_grpc.errors``; adapters
know nothing of gRPC or protobuf.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from titan_grpc.domain import (
    AuthCheck,
    Balance,
    BookDiff,
    BookSnapshot,
    ConnectionCheck,
    FeedInterrupted,
    Fill,
    LedgerEntry,
    Market,
    Order,
    OrderBook,
    OrderRequest,
    Quote,
    RecentTrades,
    Symbol,
    Ticker,
)
from titan_grpc.errors import FeatureUnavailable, UnknownSymbol
from titan_grpc.paging import Page, PageRequest


class BookFeed(Protocol):
    """A venue's raw L2 stream for one market; the market layer keeps the local book."""

    venue_symbol: str
    note: str  # set when a quote alias serves the market (see find_market)

    def updates(self) -> AsyncIterator[BookSnapshot | BookDiff | FeedInterrupted]:
        """Snapshots (when the venue sends them in-band), sequenced diffs, and
        FeedInterrupted when the connection dropped (the book must be rebuilt)."""
        ...

    async def resync(self) -> BookSnapshot | None:
        """A snapshot to realign with after a sequence gap; None when the venue will send
        a fresh one in-band instead (the feed re-subscribes)."""
        ...


class ExchangeBackend(abc.ABC):
    """One venue. ``name`` is its lower-case id; ``simulated`` marks paper venues."""

    name: str
    simulated: bool
    testnet: bool = False

    @property
    def credentials_configured(self) -> bool:
        return True

    async def ping(self) -> ConnectionCheck:
        """Reachability: a timed server-time request (venues with no ping endpoint too)."""
        started = time.perf_counter()
        venue_time = await self.server_time()
        return ConnectionCheck(time.perf_counter() - started, venue_time)

    @abc.abstractmethod
    async def server_time(self) -> datetime: ...

    @abc.abstractmethod
    async def check_auth(self) -> AuthCheck: ...

    @abc.abstractmethod
    async def markets(self) -> dict[Symbol, Market]: ...

    async def market(self, symbol: Symbol) -> Market:
        """The market for ``symbol``; raises UnknownSymbol when not listed."""
        markets = await self.markets()
        try:
            return markets[symbol]
        except KeyError:
            raise UnknownSymbol(
                f"{self.name} does not list {symbol.canonical}", exchange=self.name
            ) from None

    async def market_for_data(self, symbol: Symbol) -> Market:
        """The market that serves ``symbol``'s market data; may be a quote alias's."""
        return await self.market(symbol)

    async def refresh_fees(self) -> None:
        """Fetch the account's maker/taker rates from the venue (when keys are configured)
        so that ``markets()`` carries them; venues without an account fee endpoint keep
        their defaults. Called at start-up and periodically."""
        return None

    @abc.abstractmethod
    async def ticker(self, symbol: Symbol) -> Ticker: ...

    @abc.abstractmethod
    async def order_book(self, symbol: Symbol, depth: int) -> OrderBook: ...

    @abc.abstractmethod
    async def recent_trades(self, symbol: Symbol, limit: int) -> RecentTrades: ...

    @abc.abstractmethod
    async def balances(self) -> list[Balance]: ...

    @abc.abstractmethod
    async def place_order(self, request: OrderRequest) -> Order: ...

    @abc.abstractmethod
    async def cancel_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order: ...

    @abc.abstractmethod
    async def get_order(
        self, symbol: Symbol | None, *, order_id: str = "", client_order_id: str = ""
    ) -> Order: ...

    @abc.abstractmethod
    async def open_orders(self, symbol: Symbol | None) -> list[Order]: ...

    async def cancel_all_orders(self, symbol: Symbol | None) -> list[Order] | None:
        """Cancel every open order (of ``symbol``, or all) with the venue's own bulk cancel
        and return the orders cancelled; None when the venue has no bulk cancel (the
        caller then cancels one by one). Call it through ``OrderService.cancel_all``."""
        return None

    @abc.abstractmethod
    async def my_trades(
        self, symbol: Symbol | None, *, order_id: str = "", limit: int = 100
    ) -> list[Fill]: ...

    @abc.abstractmethod
    async def ledger(self, asset: str | None, limit: int) -> list[LedgerEntry]: ...

    async def trades_page(
        self, symbol: Symbol | None, order_id: str, page: PageRequest
    ) -> Page[Fill]:
        """One page of the account's fills on the venue's own paging (see ``paging``)."""
        raise FeatureUnavailable(f"{self.name}: paged trade history is not available")

    async def ledger_page(self, asset: str | None, page: PageRequest) -> Page[LedgerEntry]:
        """One page of the account's ledger on the venue's own paging."""
        raise FeatureUnavailable(f"{self.name}: paged ledger history is not available")

    @abc.abstractmethod
    def watch_quotes(self, symbol: Symbol) -> AsyncIterator[Quote | FeedInterrupted]:
        """Yields the current quote, then a new one whenever it changes; FeedInterrupted
        when data may have been lost (the next quote is current again)."""

    def watch_order_book(
        self, symbol: Symbol, depth: int
    ) -> AsyncIterator[OrderBook | FeedInterrupted]:
        """Yields the current book, then a new one whenever it changes, for venues that
        keep books themselves (simulated). Venues with a ``book_feed`` are served by the
        market layer's book keeper instead and need not implement this."""
        raise FeatureUnavailable(f"{self.name} serves live books through its book feed")

    async def book_feed(self, symbol: Symbol) -> BookFeed | None:
        """The venue's raw L2 stream for ``symbol``, or None when ``watch_order_book``
        serves books directly (simulated venues)."""
        return None

    def rate_budget_used(self) -> float | None:
        """Share (0-1) of the venue's request budget in use; None when not rate limited."""
        return None

    async def close(self) -> None:
        """Release connections and background tasks."""
        return None


def find_market(
    exchange: str,
    markets: dict[Symbol, Market],
    symbol: Symbol,
    quote_aliases: tuple[tuple[str, str], ...] = (),
) -> tuple[Market, str]:
    """The market for ``symbol``, or an opt-in quote alias's market with a note saying so.

    Aliases (``TITAN_QUOTE_ALIASES=USDT:USD``) apply only when the venue lacks the
    market itself, e.g. BTC-USDT served from BTC-USD.
    """
    market = markets.get(symbol)
    if market is not None:
        return market, ""
    for wanted, substitute in quote_aliases:
        if symbol.quote == wanted:
            aliased = markets.get(Symbol(symbol.base, substitute))
            if aliased is not None:
                note = (
                    f"quote alias {wanted}->{substitute}: {exchange} lists no "
                    f"{symbol.canonical}; served from {aliased.symbol.canonical}"
                )
                return aliased, note
    raise UnknownSymbol(f"{exchange} does not list {symbol.canonical}", exchange=exchange)
