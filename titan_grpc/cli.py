"""``titan-grpc``: run the server, or talk to one (tables by default, ``--json`` for scripts)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.live import Live
from rich.table import Table

from titan_grpc.client import TitanClient
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

SIDES = {"buy": pb.SIDE_BUY, "sell": pb.SIDE_SELL}
TYPES = {"limit": pb.ORDER_TYPE_LIMIT, "market": pb.ORDER_TYPE_MARKET}
TIFS = {
    "": pb.TIME_IN_FORCE_UNSPECIFIED,
    "gtc": pb.TIME_IN_FORCE_GTC,
    "ioc": pb.TIME_IN_FORCE_IOC,
    "fok": pb.TIME_IN_FORCE_FOK,
}


def _as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
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


def _best_price(client: TitanClient, args: argparse.Namespace) -> tuple[Message, Table]:
    answer = client.best_price(args.symbol, SIDES[args.side], args.quantity or "")
    rows = [(q.exchange, q.price, q.price_after_fees, q.available_quantity) for q in answer.quotes]
    best = answer.best
    title = (
        f"{args.side} {answer.symbol}: best {best.exchange} at {best.price_after_fees} after fees"
    )
    return answer, _table(title, ["Venue", "price", "after fees", "available"], rows)


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
                price=args.price or "",
                time_in_force=TIFS[args.tif],
                client_order_id=args.client_order_id or "",
            )
        ).order
    elif args.action == "cancel":
        order = client.cancel_order(
            pb.CancelOrderRequest(
                exchange=args.exchange,
                symbol=args.symbol or "",
                order_id=args.order_id or "",
                client_order_id=args.client_order_id or "",
            )
        ).order
    else:
        order = client.order_status(
            pb.GetOrderStatusRequest(
                exchange=args.exchange,
                symbol=args.symbol or "",
                order_id=args.order_id or "",
                client_order_id=args.client_order_id or "",
            )
        ).order
    return order, _order_table(order)


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


def _watch(client: TitanClient, args: argparse.Namespace, console: Console) -> int:
    """A live board: one row per venue and symbol, best bid/ask highlighted, quote age,
    and the feed's state (a GAP notice marks the row until the feed recovers)."""
    latest: dict[tuple[str, str], tuple[pb.Quote, float]] = {}
    feed_state: dict[tuple[str, str], str] = {}

    def board() -> Table:
        table = Table(title="TITAN live quotes")
        for column in ("Symbol", "Venue", "bid", "ask", "spread", "last", "age", "Feed"):
            table.add_column(column, justify="left" if column[0].isupper() else "right")
        now = time.monotonic()
        for symbol in sorted({key[1] for key in latest}):
            rows = [(key, value) for key, value in latest.items() if key[1] == symbol]
            best_bid = max((Decimal(q.bid) for (_, (q, _)) in rows if q.bid), default=None)
            best_ask = min((Decimal(q.ask) for (_, (q, _)) in rows if q.ask), default=None)
            for (venue, _), (quote, seen) in sorted(rows, key=lambda row: row[0]):
                bid, ask = quote.bid, quote.ask
                if bid and Decimal(bid) == best_bid:
                    bid = f"[bold green]{bid}[/]"
                if ask and Decimal(ask) == best_ask:
                    ask = f"[bold red]{ask}[/]"
                spread = (
                    str(Decimal(quote.ask) - Decimal(quote.bid)) if quote.bid and quote.ask else ""
                )
                state = feed_state.get(
                    (venue, symbol), "simulated" if quote.source.simulated else "live"
                )
                table.add_row(
                    symbol, venue, bid, ask, spread, quote.last, f"{now - seen:.1f}s", state
                )
        for venue, symbol in sorted(set(feed_state) - set(latest)):  # no quote yet
            table.add_row(symbol, venue, "", "", "", "", "", feed_state[(venue, symbol)])
        return table

    received = 0
    with Live(board(), console=console, refresh_per_second=4, transient=False) as live:
        for message in client.stream_quotes(args.symbols, args.exchange or ()):
            if message.HasField("notice"):
                notice = message.notice
                key = (notice.exchange, notice.symbol)
                if notice.kind == pb.STREAM_NOTICE_KIND_GAP:
                    feed_state[key] = f"[bold yellow]gap: {notice.message}[/]"
                elif notice.kind == pb.STREAM_NOTICE_KIND_RECOVERED:
                    feed_state.pop(key, None)
                if args.json:
                    console.print_json(json.dumps(_as_dict(notice)))
                live.update(board())
            if message.HasField("quote"):
                quote = message.quote
                latest[(quote.exchange, quote.symbol)] = (quote, time.monotonic())
                received += 1
                if args.json:
                    console.print_json(json.dumps(_as_dict(quote)))
                live.update(board())
            if args.count and received >= args.count:
                break
    return 0


_UPDATE_KINDS = {pb.ORDER_UPDATE_KIND_STATE: "state", pb.ORDER_UPDATE_KIND_FILL: "fill"}


def _notice_line(notice: pb.StreamNotice) -> str:
    kind = pb.StreamNoticeKind.Name(notice.kind).removeprefix("STREAM_NOTICE_KIND_").lower()
    return f"[bold yellow]{notice.exchange or 'server'} {kind}: {notice.message}[/]"


def _orders_watch(client: TitanClient, args: argparse.Namespace, console: Console) -> int:
    """One line per order change or fill, as the venues' private feeds report them."""
    received = 0
    for message in client.stream_order_updates(args.exchange or (), args.symbol or ()):
        if message.HasField("notice"):
            console.print(_notice_line(message.notice))
            continue
        update = message.update
        received += 1
        if args.json:
            console.print_json(json.dumps(_as_dict(update)))
        else:
            order = update.order
            fill = (
                f" fill {update.fill.quantity} @ {update.fill.price} fee {update.fill.fee}"
                if update.HasField("fill")
                else ""
            )
            status = pb.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_").lower()
            mine = "" if order.placed_by_gateway else " (not placed by TITAN)"
            console.print(
                f"{order.exchange} {order.symbol} {order.client_order_id or order.order_id} "
                f"{_UPDATE_KINDS.get(update.kind, '?')} {status} filled {order.filled_quantity}"
                f"/{order.quantity}{fill}{mine}"
            )
        if args.count and received >= args.count:
            break
    return 0


def _portfolio_watch(client: TitanClient, args: argparse.Namespace, console: Console) -> int:
    """The portfolio's value each time a balance or a price it uses moves."""
    received = 0
    for message in client.stream_portfolio_value(args.quote or "", args.exchange or ()):
        if message.HasField("notice"):
            console.print(_notice_line(message.notice))
            continue
        value = message.value
        received += 1
        if args.json:
            console.print_json(json.dumps(_as_dict(value)))
        else:
            venues = ", ".join(f"{v.exchange} {v.value}" for v in value.venues)
            console.print(f"{value.total_value} {value.quote_asset}  ({venues})")
        if args.count and received >= args.count:
            break
    return 0


Command = Callable[[TitanClient, argparse.Namespace], tuple[Message, Table]]
COMMANDS: dict[str, Command] = {
    "status": _status,
    "quote": _quote,
    "book": _book,
    "best-price": _best_price,
    "route": _route,
    "order": _order,
    "balances": _balances,
    "portfolio": _portfolio,
}


def add_client_commands(commands: Any) -> None:
    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
        parser.add_argument("--address", default=os.environ.get("TITAN_ADDRESS", "127.0.0.1:50051"))
        parser.add_argument(
            "--token", default=os.environ.get("TITAN_TOKEN", ""), help="bearer token"
        )
        parser.add_argument("--timeout", type=float, default=10.0)
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        return parser

    command("status", "gateway mode and venues")
    quote = command("quote", "ticker on one venue, or across venues")
    quote.add_argument("symbol")
    quote.add_argument("--exchange", default="")
    book = command("book", "order book")
    book.add_argument("symbol")
    book.add_argument("--exchange", required=True)
    book.add_argument("--depth", type=int, default=10)
    best = command("best-price", "best venue for a side, net of fees, plus arbitrage")
    best.add_argument("symbol")
    best.add_argument("--side", choices=sorted(SIDES), required=True)
    best.add_argument("--quantity", default="")
    route = command("route", "smart order routing plan")
    route.add_argument("symbol")
    route.add_argument("--side", choices=sorted(SIDES), required=True)
    route.add_argument("--quantity", required=True)
    route.add_argument("--price", default="", help="limit price (limit order); empty = market")
    order = command("order", "place, cancel or query an order")
    order.add_argument("action", choices=["place", "cancel", "status"])
    order.add_argument("--exchange", required=True)
    order.add_argument("--symbol", default="")
    order.add_argument("--side", choices=sorted(SIDES), default="buy")
    order.add_argument("--type", choices=sorted(TYPES), default="limit")
    order.add_argument("--quantity", default="")
    order.add_argument("--price", default="")
    order.add_argument("--tif", choices=sorted(TIFS), default="")
    order.add_argument("--order-id", default="")
    order.add_argument("--client-order-id", default="")
    balances = command("balances", "balances per venue")
    balances.add_argument("--exchange", action="append")
    portfolio = command("portfolio", "portfolio value in one quote asset ('watch': live)")
    portfolio.add_argument("action", nargs="?", choices=["watch"])
    portfolio.add_argument("--quote", default="")
    portfolio.add_argument("--exchange", action="append")
    portfolio.add_argument("--count", type=int, default=0, help="watch: stop after N values")
    orders = command("orders", "the account's order changes and fills, live")
    orders.add_argument("action", choices=["watch"])
    orders.add_argument("--exchange", action="append")
    orders.add_argument("--symbol", action="append")
    orders.add_argument("--count", type=int, default=0, help="stop after N updates (0 = never)")
    watch = command("watch", "live quote board")
    watch.add_argument("symbols", nargs="+")
    watch.add_argument("--exchange", action="append")
    watch.add_argument("--count", type=int, default=0, help="stop after N quotes (0 = never)")


def run_client_command(args: argparse.Namespace) -> int:
    console = Console()
    with TitanClient(args.address, token=args.token, timeout=args.timeout) as client:
        try:
            if args.command == "watch":
                return _watch(client, args, console)
            if args.command == "orders":
                return _orders_watch(client, args, console)
            if args.command == "portfolio" and args.action == "watch":
                return _portfolio_watch(client, args, console)
            message, table = COMMANDS[args.command](client, args)
        except grpc.RpcError as error:
            code = error.code().name if isinstance(error, grpc.Call) else "ERROR"
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            print(f"titan-grpc: {code}: {details}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    if args.json:
        print(json.dumps(_as_dict(message), indent=2))
    else:
        console.print(table)
    return 0
