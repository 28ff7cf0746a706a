"""``titan-grpc``: run the server, or talk to one (tables by default, ``--json`` for scripts).

``--json`` prints the proto3 JSON mapping (lowerCamel names, enums by name, decimals as
strings), exactly as ``buf curl`` prints it; grpcurl prints the proto field names, which
every proto3 JSON parser also reads, so one parser reads all three.
rich (tables, the live board) is imported only here, and only when a table is drawn.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from titan_grpc.cli_streams import make_console as _console
from titan_grpc.cli_streams import orders_watch as _orders_watch
from titan_grpc.cli_streams import portfolio_watch as _portfolio_watch
from titan_grpc.cli_streams import watch as _watch
from titan_grpc.client import TitanClient
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

SIDES = {"buy": pb.SIDE_BUY, "sell": pb.SIDE_SELL}
TYPES = {
    "limit": pb.ORDER_TYPE_LIMIT,
    "market": pb.ORDER_TYPE_MARKET,
    "stop-limit": pb.ORDER_TYPE_STOP_LIMIT,
    "stop-market": pb.ORDER_TYPE_STOP_MARKET,
}
TIFS = {
    "gtc": pb.TIME_IN_FORCE_GTC,
    "ioc": pb.TIME_IN_FORCE_IOC,
    "fok": pb.TIME_IN_FORCE_FOK,
}


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column[:1].islower() else "left")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def _status(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    answer = client.status()
    rows = [
        (
            v.exchange,
            "yes" if v.simulated else "no",
            "yes" if v.healthy else "NO",
            v.market_count,
            v.last_error,
        )
        for v in answer.venues
    ]
    title = f"TITAN {answer.version} — {pb.Mode.Name(answer.mode)}"
    return answer, _table(title, ["Venue", "Simulated", "Healthy", "markets", "Last error"], rows)


def _quote(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    if args.exchange:
        ticker = client.market_data(args.symbol, args.exchange).ticker
        rows = [(ticker.source.exchange, ticker.bid, ticker.ask, ticker.last, ticker.volume_24h)]
        return ticker, _table(ticker.symbol, ["Venue", "bid", "ask", "last", "volume_24h"], rows)
    answer = client.aggregated(args.symbol)
    rows = [(t.source.exchange, t.bid, t.ask, t.last, t.volume_24h) for t in answer.tickers]
    rows += [(f"error: {e.exchange}", e.code, "", "", "") for e in answer.errors]
    title = (
        f"{answer.symbol}: best bid {answer.best_bid.price} @{answer.best_bid.exchange}, best ask "
        f"{answer.best_ask.price} @{answer.best_ask.exchange}, spread {answer.spread_bps} bps"
    )
    return answer, _table(title, ["Venue", "bid", "ask", "last", "volume_24h"], rows)


def _book(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    book = client.order_book(args.symbol, args.exchange, args.depth).book
    rows = [
        (
            b.quantity if b else "",
            b.price if b else "",
            a.price if a else "",
            a.quantity if a else "",
        )
        for b, a in _zip_longest(book.bids, book.asks)
    ]
    title = f"{book.symbol} on {book.source.exchange}"
    return book, _table(title, ["bid size", "bid", "ask", "ask size"], rows)


def _zip_longest(left: Sequence[Any], right: Sequence[Any]) -> Iterable[tuple[Any, Any]]:
    for index in range(max(len(left), len(right))):
        yield (
            left[index] if index < len(left) else None,
            right[index] if index < len(right) else None,
        )


def _best_price(client: TitanClient, args: argparse.Namespace) -> tuple[Message, RenderableType]:
    from rich.console import Group

    answer = client.best_price(args.symbol, SIDES[args.side], args.quantity or "")
    rows = [(q.exchange, q.price, q.price_after_fees, q.available_quantity) for q in answer.quotes]
    rows += [(f"error: {e.exchange}", e.code, e.message, "") for e in answer.errors]
    best = answer.best
    title = (
        f"{args.side} {answer.symbol}: best {best.exchange} at {best.price_after_fees} after fees"
    )
    prices = _table(title, ["Venue", "price", "after fees", "available"], rows)
    arbitrage = [
        (a.buy_exchange, a.buy_price, a.sell_exchange, a.sell_price, a.quantity, a.net_profit)
        for a in answer.arbitrage
    ]
    if not arbitrage:
        return answer, Group(prices, "Arbitrage: none pays after both venues' fees")
    columns = ["Buy on", "buy price", "Sell on", "sell price", "quantity", "net profit"]
    return answer, Group(prices, _table("Arbitrage (after fees)", columns, arbitrage))


def _route(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    request = pb.PlanRouteRequest(
        symbol=args.symbol,
        side=SIDES[args.side],
        type=TYPES["limit" if args.price else "market"],
        quantity=args.quantity,
        price=args.price or "",
    )
    plan = client.plan_route(request)
    rows = [(leg.exchange, leg.quantity, leg.average_price, leg.fee) for leg in plan.legs]
    title = (
        f"filled {plan.filled_quantity} (unfilled {plan.unfilled_quantity}) "
        f"avg {plan.average_price}; saves {plan.saving_vs_best_single} "
        f"vs {plan.best_single_exchange}"
    )
    return plan, _table(title, ["Venue", "quantity", "avg price", "fee"], rows)


def _order_table(order: pb.Order) -> Table:
    row = (
        order.exchange,
        order.order_id,
        order.client_order_id,
        pb.OrderStatus.Name(order.status),
        order.filled_quantity,
        order.average_fill_price,
    )
    return _table(
        order.symbol, ["Venue", "Order id", "Client id", "Status", "filled", "avg price"], [row]
    )


def _order(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    if args.action == "place":
        order = client.place_order(
            pb.PlaceOrderRequest(
                exchange=args.exchange,
                symbol=args.symbol,
                side=SIDES[args.side],
                type=TYPES[args.type],
                quantity=args.quantity,
                price=args.price,
                time_in_force=TIFS[args.tif] if args.tif else pb.TIME_IN_FORCE_UNSPECIFIED,
                client_order_id=args.client_order_id,
                post_only=args.post_only,
                quote_quantity=args.quote_quantity,
                stop_price=args.stop_price,
            )
        ).order
    elif args.action == "cancel":
        order = client.cancel_order(
            pb.CancelOrderRequest(
                exchange=args.exchange,
                symbol=args.symbol,
                order_id=args.order_id,
                client_order_id=args.client_order_id,
            )
        ).order
    else:
        order = client.order_status(
            pb.GetOrderStatusRequest(
                exchange=args.exchange,
                symbol=args.symbol,
                order_id=args.order_id,
                client_order_id=args.client_order_id,
            )
        ).order
    return order, _order_table(order)


def _markets(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    answer = client.markets(args.exchange or (), args.symbol or ())
    rows = [
        (
            m.exchange,
            m.symbol,
            m.venue_symbol,
            pb.MarketStatus.Name(m.status).removeprefix("MARKET_STATUS_").lower(),
            m.tick_size,
            m.step_size,
            m.min_notional,
            m.maker_fee_rate,
            m.taker_fee_rate,
            pb.FeeSource.Name(m.fee_source).removeprefix("FEE_SOURCE_").lower(),
        )
        for m in answer.markets
    ]
    rows += [
        (e.exchange, f"error: {e.code}", e.message, "", "", "", "", "", "", "")
        for e in answer.errors
    ]
    columns = ["Venue", "Symbol", "Venue symbol", "Status", "tick", "step", "min notional"]
    return answer, _table("Markets", [*columns, "maker", "taker", "Fee source"], rows)


def _order_rows(orders: Iterable[pb.Order]) -> list[tuple[object, ...]]:
    return [
        (
            o.exchange,
            o.symbol,
            o.order_id,
            o.client_order_id,
            pb.Side.Name(o.side).removeprefix("SIDE_").lower(),
            pb.OrderType.Name(o.type).removeprefix("ORDER_TYPE_").lower(),
            o.quantity,
            o.price,
            o.stop_price,
            "yes" if o.placed_by_gateway else "no",
        )
        for o in orders
    ]


ORDER_COLUMNS = ["Venue", "Symbol", "Order id", "Client id", "Side", "Type", "quantity"]
ORDER_COLUMNS += ["price", "stop", "Via TITAN"]


def _open_orders(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    answer = client.open_orders(args.exchange or (), args.symbol or "")
    rows = _order_rows(answer.orders)
    rows += [(e.exchange, f"error: {e.code}", e.message, *[""] * 7) for e in answer.errors]
    return answer, _table("Open orders", ORDER_COLUMNS, rows)


def _cancel_all(client: TitanClient, args: argparse.Namespace) -> int:
    """The kill switch; unless --yes it shows what is open and asks (on stderr, so that
    stdout keeps only the answer)."""
    venues = args.exchange or ()
    where = ", ".join(venues) if venues else "every venue"
    if not args.yes:
        from rich.console import Console

        listed = client.open_orders(venues, args.symbol)
        Console(stderr=True).print(_table("Open orders", ORDER_COLUMNS, _order_rows(listed.orders)))
        scope = f"{args.symbol} on {where}" if args.symbol else where
        prompt = f"Cancel every open order ({len(listed.orders)} listed) for {scope}? [y/N] "
        print(prompt, end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("titan-grpc: nothing cancelled", file=sys.stderr)
            return 1
    result = client.cancel_all(venues, args.symbol)
    if args.json:
        print(json_format.MessageToJson(result))
    else:
        rows: list[tuple[object, ...]] = [
            (
                r.exchange,
                len(r.canceled_orders),
                len(r.failures),
                "bulk" if r.bulk else "one by one",
            )
            for r in result.results
        ]
        rows += [(e.exchange, f"error: {e.code}", e.message, "") for e in result.errors]
        _console().print(_table("Cancelled", ["Venue", "cancelled", "failed", "How"], rows))
    failed = any(r.failures for r in result.results) or bool(result.errors)
    return 1 if failed else 0


def _balances(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    answer = client.balances(args.exchange or ())
    rows = [
        (v.exchange, b.asset, b.free, b.locked, b.total) for v in answer.venues for b in v.balances
    ]
    rows += [(e.exchange, f"error: {e.code}", e.message, "", "") for e in answer.errors]
    return answer, _table("Balances", ["Venue", "Asset", "free", "locked", "total"], rows)


def _portfolio(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    answer = client.portfolio(args.quote or "", args.exchange or ())
    rows = [
        (a.exchange, a.asset, a.quantity, a.price, a.value, a.price_path) for a in answer.assets
    ]
    rows += [(u.exchange, u.asset, u.quantity, "", "unpriced", u.reason) for u in answer.unpriced]
    title = f"Portfolio: {answer.total_value} {answer.quote_asset}"
    return answer, _table(
        title, ["Venue", "Asset", "quantity", "price", "value", "Price path"], rows
    )


Command = Callable[[TitanClient, argparse.Namespace], tuple[Message, "RenderableType"]]
COMMANDS: dict[str, Command] = {
    "status": _status,
    "quote": _quote,
    "book": _book,
    "best-price": _best_price,
    "route": _route,
    "order": _order,
    "balances": _balances,
    "portfolio": _portfolio,
    "markets": _markets,
    "open-orders": _open_orders,
}


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        default=os.environ.get("TITAN_ADDRESS", "127.0.0.1:50051"),
        help="server HOST:PORT (default: $TITAN_ADDRESS or 127.0.0.1:50051)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TITAN_TOKEN", ""),
        help="bearer token (default: $TITAN_TOKEN)",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="deadline per call in seconds (default: 10)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the proto3 JSON mapping (as buf curl/grpcurl do) instead of a table",
    )


def _order_options(parser: argparse.ArgumentParser, *, place: bool) -> None:
    parser.add_argument(
        "--exchange", required=True, help="venue: binance, coinbase, kucoin or mock"
    )
    parser.add_argument(
        "--symbol",
        required=place,
        default="",
        help="market, e.g. BTC-USDT" + ("" if place else " (some venues need it)"),
    )
    parser.add_argument(
        "--client-order-id",
        default="",
        help="your own id: an idempotency key; repeating a place with it never sends twice"
        + (" (default: a generated UUID)" if place else ""),
    )
    if not place:
        parser.add_argument(
            "--order-id", default="", help="the venue's order id (or give --client-order-id)"
        )


def add_client_commands(commands: Any) -> None:
    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(
            name, help=help_text, description=help_text
        )
        _connection_options(parser)
        return parser

    command("status", "gateway mode and venues")
    quote = command("quote", "ticker on one venue, or across venues")
    quote.add_argument("symbol", help="market, e.g. BTC-USDT (also BTCUSDT, btc/usdt)")
    quote.add_argument("--exchange", default="", help="one venue (default: all, aggregated)")
    book = command("book", "order book")
    book.add_argument("symbol", help="market, e.g. BTC-USDT")
    book.add_argument("--exchange", required=True, help="venue: binance, coinbase, kucoin, mock")
    book.add_argument("--depth", type=int, default=10, help="levels per side (default: 10)")
    best = command(
        "best-price", "best venue for a side, net of fees, and cross-venue arbitrage after fees"
    )
    best.add_argument("symbol", help="market, e.g. BTC-USDT")
    best.add_argument("--side", choices=sorted(SIDES), required=True, help="buy or sell")
    best.add_argument(
        "--quantity", default="", help="walk each book for this size (default: top of book)"
    )
    route = command("route", "smart order routing plan across venues")
    route.add_argument("symbol", help="market, e.g. BTC-USDT")
    route.add_argument("--side", choices=sorted(SIDES), required=True, help="buy or sell")
    route.add_argument("--quantity", required=True, help="base quantity to route")
    route.add_argument("--price", default="", help="limit price (limit order); empty = market")
    order_help = "place, cancel or query an order"
    # Connection options go on place/cancel/status only: a sub-command's defaults would
    # overwrite the same options given before it.
    order = commands.add_parser("order", help=order_help, description=order_help)
    actions = order.add_subparsers(dest="action", required=True, metavar="{place,cancel,status}")
    place = actions.add_parser(
        "place",
        help="place an order (side and type are required: nothing is guessed)",
        description="Place an order. --side and --type are required; a limit order needs "
        "--price. Repeat with the same --client-order-id to retry safely.",
    )
    _order_options(place, place=True)
    place.add_argument("--side", choices=sorted(SIDES), required=True, help="buy or sell")
    place.add_argument(
        "--type",
        choices=sorted(TYPES),
        required=True,
        help="limit, market, stop-limit or stop-market (stops need --stop-price)",
    )
    place.add_argument(
        "--quantity", default="", help="base quantity, a decimal (0.001); or --quote-quantity"
    )
    place.add_argument(
        "--quote-quantity",
        default="",
        help="market orders: spend (buy) or receive (sell) this much quote asset instead",
    )
    place.add_argument(
        "--price", default="", help="limit price (required for --type limit and stop-limit)"
    )
    place.add_argument(
        "--stop-price", default="", help="stop orders: the last price that triggers them"
    )
    place.add_argument(
        "--tif",
        choices=sorted(TIFS),
        default=None,
        help="time in force: gtc (rest until cancelled), ioc (fill now, cancel the rest), "
        "fok (fill completely or not at all); default: the venue's (gtc)",
    )
    place.add_argument(
        "--post-only",
        action="store_true",
        help="maker only: rejected instead of taking liquidity",
    )
    for action, text in (("cancel", "cancel an order"), ("status", "an order's state")):
        sub = actions.add_parser(
            action, help=text, description=f"{text[0].upper()}{text[1:]}, by either id."
        )
        _order_options(sub, place=False)
    for sub in (place, *(actions.choices[name] for name in ("cancel", "status"))):
        _connection_options(sub)
    markets = command("markets", "markets: tick, step, minimums and the account's fees")
    markets.add_argument(
        "--exchange", action="append", help="only this venue (repeat for more; default: all)"
    )
    markets.add_argument(
        "--symbol", action="append", help="only this market (repeat for more; default: all)"
    )
    open_orders = command("open-orders", "the venues' open orders (also those not placed here)")
    open_orders.add_argument(
        "--exchange", action="append", help="only this venue (repeat for more; default: all)"
    )
    open_orders.add_argument("--symbol", default="", help="only this market (default: all)")
    cancel_all = command(
        "cancel-all", "cancel every open order: the kill switch (asks first unless --yes)"
    )
    cancel_all.add_argument(
        "--exchange", action="append", help="only this venue (repeat for more; default: all)"
    )
    cancel_all.add_argument("--symbol", default="", help="only this market (default: all)")
    cancel_all.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    balances = command("balances", "balances per venue")
    balances.add_argument(
        "--exchange", action="append", help="only this venue (repeat for more; default: all)"
    )
    portfolio = command("portfolio", "portfolio value in one quote asset ('watch': live)")
    portfolio.add_argument("action", nargs="?", choices=["watch"], help="follow it live")
    portfolio.add_argument("--quote", default="", help="value in this asset (default: USDT)")
    portfolio.add_argument(
        "--exchange", action="append", help="only this venue (repeat for more; default: all)"
    )
    portfolio.add_argument("--count", type=int, default=0, help="watch: stop after N values")
    orders = command("orders", "the account's order changes and fills, live")
    orders.add_argument("action", choices=["watch"], help="follow them live")
    orders.add_argument(
        "--exchange", action="append", help="only this venue (repeat for more; default: all)"
    )
    orders.add_argument(
        "--symbol", action="append", help="only this market (repeat for more; default: all)"
    )
    orders.add_argument("--count", type=int, default=0, help="stop after N updates (0 = never)")
    watch = command("watch", "live quote board (NDJSON with --json)")
    watch.add_argument("symbols", nargs="+", help="markets, e.g. BTC-USDT ETH-USDT")
    watch.add_argument(
        "--exchange", action="append", help="only this venue (repeat for more; default: all)"
    )
    watch.add_argument("--count", type=int, default=0, help="stop after N quotes (0 = never)")


def run_client_command(args: argparse.Namespace) -> int:
    with TitanClient(args.address, token=args.token, timeout=args.timeout) as client:
        try:
            if args.command == "watch":
                return _watch(client, args, None if args.json else _console())
            if args.command == "cancel-all":
                return _cancel_all(client, args)
            if args.command == "orders":
                return _orders_watch(client, args)
            if args.command == "portfolio" and args.action == "watch":
                return _portfolio_watch(client, args)
            message, renderable = COMMANDS[args.command](client, args)
        except grpc.RpcError as error:
            code = error.code().name if isinstance(error, grpc.Call) else "ERROR"
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            print(f"titan-grpc: {code}: {details}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    if args.json:
        print(json_format.MessageToJson(message))
    else:
        _console().print(renderable)
    return 0
