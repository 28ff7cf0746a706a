"""Account streams: order updates, balances and the live portfolio value, from the
venues' private feeds (one per venue account, shared by every subscriber)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from titan_grpc import answers, convert
from titan_grpc.domain import MONEY_CONTEXT, Balance, BalanceUpdate, OrderUpdate, Quote, Symbol
from titan_grpc.exchanges import ExchangeBackend
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.market.hub import Notice, NoticeKind, Subscription
from titan_grpc.market.portfolio import (
    MarketPrice,
    Valuation,
    market_price,
    portfolio_symbols,
    value_portfolio,
)
from titan_grpc.service.base import ServiceBase, streaming

_NOTICE_KINDS = {
    NoticeKind.GAP: pb.STREAM_NOTICE_KIND_GAP,
    NoticeKind.RECOVERED: pb.STREAM_NOTICE_KIND_RECOVERED,
}


def _notice(notice: Notice, exchange: str) -> pb.StreamNotice:
    return pb.StreamNotice(
        kind=_NOTICE_KINDS[notice.kind], exchange=exchange, message=notice.message
    )


def _shutdown_notice() -> pb.StreamNotice:
    return pb.StreamNotice(
        kind=pb.STREAM_NOTICE_KIND_SHUTDOWN, message="server shutting down; reconnect"
    )


def _quote_price(quote: Quote) -> Decimal | None:
    if quote.bid is not None and quote.ask is not None:
        return MONEY_CONTEXT.divide(quote.bid + quote.ask, 2)
    return quote.last


class AccountStreamRpcs(ServiceBase):
    def _account_backends(self, exchanges: Sequence[str]) -> list[ExchangeBackend]:
        """The venues asked for (empty: every venue with a private feed); a venue named
        explicitly that cannot stream its account is refused with the reason."""
        backends = self._registry.resolve_many(exchanges)
        usable = []
        for backend in backends:
            problem = backend.account_feed_error()
            if problem is None:
                usable.append(backend)
            elif exchanges:
                raise problem
        if not usable:
            raise self._no_feed_error(backends)
        return usable

    @staticmethod
    def _no_feed_error(backends: Sequence[ExchangeBackend]) -> Exception:
        for backend in backends:
            problem = backend.account_feed_error()
            if problem is not None:
                return problem
        raise AssertionError("unreachable")  # pragma: no cover

    @streaming
    async def StreamOrderUpdates(
        self, request: pb.StreamOrderUpdatesRequest, context: Any
    ) -> AsyncIterator[pb.StreamOrderUpdatesResponse]:
        wanted = set(convert.symbols_from_proto(request.symbols)) if request.symbols else None
        backends = self._account_backends(request.exchanges)
        subscription = self._accounts.subscribe([b.name for b in backends])
        if self._shutdown.is_set():
            subscription.end()
        try:
            async for event in subscription:
                if event.notice is not None:
                    yield pb.StreamOrderUpdatesResponse(notice=_notice(event.notice, event.key))
                    continue
                update = event.item
                if isinstance(update, OrderUpdate) and (
                    wanted is None or update.order.symbol in wanted
                ):
                    yield self._update_message(update)
        finally:
            subscription.close()
        if self._shutdown.is_set():
            yield pb.StreamOrderUpdatesResponse(notice=_shutdown_notice())

    def _update_message(self, update: OrderUpdate) -> pb.StreamOrderUpdatesResponse:
        """Built once per update and shared by every subscriber it reaches."""
        cached = self._last_update_message
        if cached is not None and cached[0] is update:
            return cached[1]
        message = pb.StreamOrderUpdatesResponse(update=answers.order_update_to_proto(update))
        self._last_update_message = (update, message)
        return message

    @streaming
    async def StreamBalances(
        self, request: pb.StreamBalancesRequest, context: Any
    ) -> AsyncIterator[pb.StreamBalancesResponse]:
        backends = self._account_backends(request.exchanges)
        simulated = {b.name: b.simulated for b in backends}
        subscription = self._accounts.subscribe(list(simulated))
        if self._shutdown.is_set():
            subscription.end()
        try:
            async for event in subscription:
                if event.notice is not None:
                    yield pb.StreamBalancesResponse(notice=_notice(event.notice, event.key))
                elif isinstance(event.item, BalanceUpdate):
                    balances = answers.balance_update_to_proto(event.item, simulated[event.key])
                    yield pb.StreamBalancesResponse(balances=balances)
        finally:
            subscription.close()
        if self._shutdown.is_set():
            yield pb.StreamBalancesResponse(notice=_shutdown_notice())

    @streaming
    async def StreamPortfolioValue(
        self, request: pb.StreamPortfolioValueRequest, context: Any
    ) -> AsyncIterator[pb.StreamPortfolioValueResponse]:
        quote = convert.optional_asset_from_proto(request.quote_asset, "quote_asset") or "USDT"
        backends = self._account_backends(request.exchanges)
        simulated = {b.name: b.simulated for b in backends}
        account = self._accounts.subscribe(list(simulated))
        if self._shutdown.is_set():
            account.end()
        # Balances as the live feed knows them (else asked once), then kept current.
        balances: dict[str, dict[str, Balance]] = {}
        asking = []
        for backend in backends:
            tracker = self._accounts.tracker(backend.name)
            if tracker.live:
                balances[backend.name] = {b.asset: b for b in tracker.balances()}
            else:
                asking.append(backend)
        held, _ = await self._per_venue(asking, lambda b: b.balances(), context)
        balances.update({backend.name: {b.asset: b for b in found} for backend, found in held})
        prices: dict[tuple[str, Symbol], Decimal] = {}
        priced_assets: set[str] = set()
        changed, ended = asyncio.Event(), asyncio.Event()
        notices: list[pb.StreamNotice] = []

        async def price_new_assets() -> None:
            """Prices (read path) of the markets that could value assets not seen yet."""
            assets = {asset for found in balances.values() for asset in found}
            if assets <= priced_assets:
                return
            wanted = portfolio_symbols(assets - priced_assets, quote)
            priced_assets.update(assets)
            pairs = []
            for backend in backends:
                listed = await backend.markets()
                pairs += [(backend, s) for s in wanted if s in listed]
            freshness = self._market.freshness(None)
            tickers = await asyncio.gather(
                *(self._market.ticker(b, s, freshness) for b, s in pairs), return_exceptions=True
            )
            for ticker in tickers:
                if not isinstance(ticker, BaseException) and (found := market_price(ticker)):
                    prices.setdefault((found.exchange, found.symbol), found.price)

        async def follow_account() -> None:
            try:
                async for event in account:
                    if event.notice is not None:
                        notices.append(_notice(event.notice, event.key))
                    elif isinstance(event.item, BalanceUpdate):
                        venue = balances.setdefault(event.key, {})
                        for balance in event.item.balances:
                            venue[balance.asset] = balance
                    else:
                        continue
                    changed.set()
            finally:
                ended.set()
                changed.set()

        async def follow_prices(subscription: Subscription[tuple[str, Symbol], Quote]) -> None:
            async for event in subscription:
                price = _quote_price(event.item) if event.item is not None else None
                if price is not None and prices.get(event.key) != price:
                    prices[event.key] = price
                    changed.set()

        interval = self._info.portfolio_interval_seconds
        account_task = asyncio.create_task(follow_account())
        watched: set[tuple[str, Symbol]] = set()
        quotes: Subscription[tuple[str, Symbol], Quote] | None = None
        price_task: asyncio.Task[None] | None = None
        last: tuple[object, ...] | None = None
        try:
            while True:
                while notices:
                    yield pb.StreamPortfolioValueResponse(notice=notices.pop(0))
                await price_new_assets()
                valuation = value_portfolio(
                    {venue: list(found.values()) for venue, found in balances.items()},
                    [MarketPrice(v, s, p) for (v, s), p in prices.items()],
                    quote,
                )
                used = markets_used(valuation)
                if used != watched:  # follow exactly the prices the value depends on
                    if price_task is not None:
                        price_task.cancel()
                    if quotes is not None:
                        quotes.close()
                    watched, quotes, price_task = used, None, None
                    if used:
                        quotes = self._quote_hub.subscribe(*sorted(used, key=str))
                        price_task = asyncio.create_task(follow_prices(quotes))
                current = (valuation.total, valuation.assets, valuation.unpriced)
                if current != last:
                    last = current
                    now = datetime.now(UTC)
                    value = answers.portfolio_value_to_proto(valuation, simulated, now)
                    yield pb.StreamPortfolioValueResponse(value=value)
                    if interval > 0:  # at most one value per interval; changes conflate
                        await asyncio.sleep(interval)
                if ended.is_set():
                    break
                await changed.wait()
                changed.clear()
        finally:
            account.close()
            if quotes is not None:
                quotes.close()
            tasks = [t for t in (account_task, price_task) if t is not None]
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
        if self._shutdown.is_set():
            yield pb.StreamPortfolioValueResponse(notice=_shutdown_notice())


def markets_used(valuation: Valuation) -> set[tuple[str, Symbol]]:
    """The (venue, market) prices a valuation rests on, read from its price paths
    (``BTC-USDT@binance``, ``1/...``, bridged ``a*b``: market/portfolio.py's labels)."""
    used: set[tuple[str, Symbol]] = set()
    for asset in valuation.assets:
        for part in asset.price_path.split("*"):
            label, at, venue = part.removeprefix("1/").rpartition("@")
            base, dash, quote = label.partition("-")
            if at and dash:
                used.add((venue, Symbol(base, quote)))
    return used
