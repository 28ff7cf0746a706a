"""Pure checks of an order against a market's rules (tick, step, minimums).

A failed check raises InvalidOrder naming the filter (Binance's names, which the other
venues' rules map onto) and the nearest valid values, so the caller can fix the order
without a round trip to the venue.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from titan_grpc.domain import MONEY_CONTEXT, Market, OrderRequest, format_decimal
from titan_grpc.errors import InvalidOrder


def floor_to(value: Decimal, increment: Decimal) -> Decimal:
    units = MONEY_CONTEXT.divide(value, increment).to_integral_value(rounding=ROUND_FLOOR)
    return MONEY_CONTEXT.multiply(units, increment)


def ceil_to(value: Decimal, increment: Decimal) -> Decimal:
    units = MONEY_CONTEXT.divide(value, increment).to_integral_value(rounding=ROUND_CEILING)
    return MONEY_CONTEXT.multiply(units, increment)


def is_multiple(value: Decimal, increment: Decimal) -> bool:
    return increment == 0 or MONEY_CONTEXT.remainder(value, increment) == 0


def check_order_filters(
    market: Market, request: OrderRequest, reference_price: Decimal | None
) -> None:
    """Raise InvalidOrder if ``request`` breaks ``market``'s rules.

    ``reference_price`` (e.g. the opposite best price) values market orders for the
    minimum-notional check; without it that check is skipped for market orders.
    """
    fmt = format_decimal
    exchange = market.exchange
    if not market.trading_enabled:
        raise InvalidOrder(
            f"{market.symbol.canonical} is not trading on {exchange}",
            field="symbol",
            exchange=exchange,
        )
    price = request.price
    for name, value in (("price", price), ("stop_price", request.stop_price)):
        if value is not None and not is_multiple(value, market.tick_size):
            low = floor_to(value, market.tick_size)
            high = low + market.tick_size
            raise InvalidOrder(
                f"PRICE_FILTER: {name} {fmt(value)} is not a multiple of the tick size "
                f"{fmt(market.tick_size)}; nearest valid prices {fmt(low)} and {fmt(high)}",
                field=name,
                exchange=exchange,
            )
    if request.quote_quantity is not None:
        # The venue derives the base quantity from the quote amount; only its size is ours.
        if request.quote_quantity < market.min_notional:
            raise InvalidOrder(
                f"NOTIONAL: quote_quantity {fmt(request.quote_quantity)} is below the "
                f"minimum notional {fmt(market.min_notional)}",
                field="quote_quantity",
                exchange=exchange,
            )
        if reference_price is not None and reference_price > 0:
            affordable = floor_to(
                MONEY_CONTEXT.divide(request.quote_quantity, reference_price), market.step_size
            )
            if affordable < market.min_quantity:
                raise InvalidOrder(
                    f"LOT_SIZE: quote_quantity {fmt(request.quote_quantity)} buys "
                    f"{fmt(affordable)} at {fmt(reference_price)}, below the minimum "
                    f"quantity {fmt(market.min_quantity)}",
                    field="quote_quantity",
                    exchange=exchange,
                )
        return
    quantity = request.quantity
    if not is_multiple(quantity, market.step_size):
        low = floor_to(quantity, market.step_size)
        high = low + market.step_size
        raise InvalidOrder(
            f"LOT_SIZE: quantity {fmt(quantity)} is not a multiple of the step size "
            f"{fmt(market.step_size)}; nearest valid quantities {fmt(low)} and {fmt(high)}",
            field="quantity",
            exchange=exchange,
        )
    if quantity < market.min_quantity:
        raise InvalidOrder(
            f"LOT_SIZE: quantity {fmt(quantity)} is below the minimum {fmt(market.min_quantity)}",
            field="quantity",
            exchange=exchange,
        )
    if market.max_quantity is not None and quantity > market.max_quantity:
        raise InvalidOrder(
            f"LOT_SIZE: quantity {fmt(quantity)} is above the maximum {fmt(market.max_quantity)}",
            field="quantity",
            exchange=exchange,
        )
    valuation_price = price if request.type.has_limit_price else reference_price
    if valuation_price is not None and valuation_price > 0 and market.min_notional > 0:
        notional = MONEY_CONTEXT.multiply(valuation_price, quantity)
        if notional < market.min_notional:
            smallest = ceil_to(
                MONEY_CONTEXT.divide(market.min_notional, valuation_price), market.step_size
            )
            raise InvalidOrder(
                f"NOTIONAL: order value {fmt(notional)} is below the minimum notional "
                f"{fmt(market.min_notional)}; smallest valid quantity at price "
                f"{fmt(valuation_price)} is {fmt(max(smallest, market.min_quantity))}",
                field="quantity",
                exchange=exchange,
            )
