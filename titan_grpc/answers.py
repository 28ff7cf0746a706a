"""Answers assembled from several venues or several orders: best prices, routes,
portfolio values, account stream updates and cancel-all results. ``convert`` holds the
single-item conversions (and request validation) they are built from."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from titan_grpc.convert import (
    balance_to_proto,
    dec,
    fill_to_proto,
    order_to_proto,
    side_to_proto,
    timestamp,
)
from titan_grpc.domain import BalanceUpdate, OrderUpdate, Symbol
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.market.aggregate import Best
from titan_grpc.market.portfolio import Valuation
from titan_grpc.market.pricing import Opportunity, VenuePrice
from titan_grpc.status import venue_error_to_proto
from titan_grpc.trading.orders import CancelAllResult
from titan_grpc.trading.router import RoutePlan


def best_level_to_proto(best: Best | None) -> pb.BestLevel | None:
    if best is None:
        return None
    return pb.BestLevel(exchange=best.exchange, price=dec(best.price), size=dec(best.size))


def venue_price_to_proto(price: VenuePrice) -> pb.VenueQuote:
    return pb.VenueQuote(
        exchange=price.exchange,
        price=dec(price.price),
        price_after_fees=dec(price.price_after_fees),
        taker_fee_rate=dec(price.taker_fee_rate),
        available_quantity=dec(price.available_quantity),
        simulated=price.simulated,
    )


def opportunity_to_proto(item: Opportunity) -> pb.ArbitrageOpportunity:
    return pb.ArbitrageOpportunity(
        buy_exchange=item.buy_exchange,
        sell_exchange=item.sell_exchange,
        buy_price=dec(item.buy_price),
        sell_price=dec(item.sell_price),
        quantity=dec(item.quantity),
        gross_profit=dec(item.gross_profit),
        net_profit=dec(item.net_profit),
    )


def route_plan_to_proto(symbol: Symbol, plan: RoutePlan) -> pb.PlanRouteResponse:
    return pb.PlanRouteResponse(
        symbol=symbol.canonical,
        side=side_to_proto(plan.side),
        legs=[
            pb.RouteLeg(
                exchange=leg.exchange,
                quantity=dec(leg.quantity),
                average_price=dec(leg.average_price),
                fee=dec(leg.fee),
                notional=dec(leg.notional),
            )
            for leg in plan.legs
        ],
        filled_quantity=dec(plan.filled),
        unfilled_quantity=dec(plan.unfilled),
        average_price=dec(plan.average_price),
        total_fee=dec(plan.total_fee),
        total_notional_after_fees=dec(plan.net_notional),
        best_single_exchange=plan.best_single_exchange,
        saving_vs_best_single=dec(plan.saving_vs_best_single),
    )


def valuation_to_proto(
    valuation: Valuation, simulated: dict[str, bool]
) -> pb.GetPortfolioValueResponse:
    return pb.GetPortfolioValueResponse(
        quote_asset=valuation.quote_asset,
        total_value=dec(valuation.total),
        venues=[
            pb.VenueValue(exchange=name, value=dec(value), simulated=simulated.get(name, False))
            for name, value in valuation.by_venue().items()
        ],
        assets=[
            pb.AssetValue(
                exchange=a.exchange,
                asset=a.asset,
                quantity=dec(a.quantity),
                price=dec(a.price),
                value=dec(a.value),
                price_path=a.price_path,
            )
            for a in valuation.assets
        ],
        unpriced=[
            pb.UnpricedAsset(
                exchange=u.exchange, asset=u.asset, quantity=dec(u.quantity), reason=u.reason
            )
            for u in valuation.unpriced
        ],
    )


def order_update_to_proto(update: OrderUpdate) -> pb.OrderUpdate:
    return pb.OrderUpdate(
        kind=pb.ORDER_UPDATE_KIND_FILL if update.fill else pb.ORDER_UPDATE_KIND_STATE,
        order=order_to_proto(replace(update.order, fills=())),
        fill=fill_to_proto(update.fill) if update.fill else None,
        venue_time=timestamp(update.venue_time),
    )


def balance_update_to_proto(update: BalanceUpdate, simulated: bool) -> pb.BalanceUpdate:
    return pb.BalanceUpdate(
        exchange=update.exchange,
        simulated=simulated,
        balances=[balance_to_proto(balance) for balance in update.balances],
        venue_time=timestamp(update.venue_time),
    )


def portfolio_value_to_proto(
    valuation: Valuation, simulated: dict[str, bool], time: datetime
) -> pb.PortfolioValue:
    answer = valuation_to_proto(valuation, simulated)
    return pb.PortfolioValue(
        quote_asset=answer.quote_asset,
        total_value=answer.total_value,
        venues=answer.venues,
        assets=answer.assets,
        unpriced=answer.unpriced,
        time=timestamp(time),
    )


def cancel_all_to_proto(result: CancelAllResult, simulated: bool) -> pb.VenueCancelResult:
    return pb.VenueCancelResult(
        exchange=result.exchange,
        simulated=simulated,
        canceled_orders=[order_to_proto(order) for order in result.canceled],
        failures=[
            pb.CancelFailure(
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol.canonical,
                error=venue_error_to_proto(result.exchange, error),
            )
            for order, error in result.failures
        ],
        bulk=result.bulk,
    )
