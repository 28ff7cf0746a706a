"""The CLI's live views of server streams (``watch``, ``orders watch``,
``portfolio watch``) and the output helpers every command shares.

rich is imported only when something is drawn.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from google.protobuf.message import Message

from titan_grpc.client import TitanClient
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Iterator

    from rich.console import Console


def as_dict(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping, as buf curl prints it."""
    return json_format.MessageToDict(message)


def ndjson(message: Message) -> str:
    return json.dumps(as_dict(message), separators=(",", ":"))


def make_console() -> Console:
    from rich.console import Console

    return Console()


def watch(client: TitanClient, args: argparse.Namespace, console: Console | None) -> int:
    """A live board: one row per venue and symbol, best bid/ask highlighted, quote age,
    and the feed's state (a GAP notice marks the row until the feed recovers).

    With ``--json``: one JSON object per line (NDJSON), each a ``StreamQuotesResponse`` as
    buf curl prints it, and nothing else. The first message is read before anything is
    drawn, so a bad symbol is reported at once (``INVALID_ARGUMENT: symbols[1]: ...``).
    """
    stream = client.stream_quotes(args.symbols, args.exchange or ())
    first = next(iter(stream), None)
    if first is None:
        return 0
    messages = itertools.chain([first], stream)
    if args.json:
        return _watch_json(messages, args.count)
    assert console is not None
    return _watch_board(messages, args.count, console)


def _watch_json(messages: Iterator[pb.StreamQuotesResponse], count: int) -> int:
    received = 0
    for message in messages:
        print(ndjson(message), flush=True)
        received += message.HasField("quote")
        if count and received >= count:
            break
    return 0


def _watch_board(messages: Iterator[pb.StreamQuotesResponse], count: int, console: Console) -> int:
    from rich.live import Live
    from rich.table import Table

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
        for message in messages:
            if message.HasField("notice"):
                notice = message.notice
                key = (notice.exchange, notice.symbol)
                if notice.kind == pb.STREAM_NOTICE_KIND_GAP:
                    feed_state[key] = f"[bold yellow]gap: {notice.message}[/]"
                elif notice.kind == pb.STREAM_NOTICE_KIND_RECOVERED:
                    feed_state.pop(key, None)
                live.update(board())
            if message.HasField("quote"):
                quote = message.quote
                latest[(quote.exchange, quote.symbol)] = (quote, time.monotonic())
                received += 1
                live.update(board())
            if count and received >= count:
                break
    return 0


_UPDATE_KINDS = {pb.ORDER_UPDATE_KIND_STATE: "state", pb.ORDER_UPDATE_KIND_FILL: "fill"}


def _notice_line(notice: pb.StreamNotice) -> str:
    kind = pb.StreamNoticeKind.Name(notice.kind).removeprefix("STREAM_NOTICE_KIND_").lower()
    return f"[bold yellow]{notice.exchange or 'server'} {kind}: {notice.message}[/]"


def _order_update_line(update: pb.OrderUpdate) -> str:
    order = update.order
    fill = (
        f" fill {update.fill.quantity} @ {update.fill.price} fee {update.fill.fee}"
        if update.HasField("fill")
        else ""
    )
    status = pb.OrderStatus.Name(order.status).removeprefix("ORDER_STATUS_").lower()
    mine = "" if order.placed_by_gateway else " (not placed by TITAN)"
    return (
        f"{order.exchange} {order.symbol} {order.client_order_id or order.order_id} "
        f"{_UPDATE_KINDS.get(update.kind, '?')} {status} filled {order.filled_quantity}"
        f"/{order.quantity}{fill}{mine}"
    )


def orders_watch(client: TitanClient, args: argparse.Namespace) -> int:
    """One line per order change or fill, as the venues' private feeds report them
    (``--json``: each StreamOrderUpdatesResponse as one JSON line)."""
    console = None if args.json else make_console()
    received = 0
    for message in client.stream_order_updates(args.exchange or (), args.symbol or ()):
        if args.json:
            print(ndjson(message), flush=True)
        elif message.HasField("notice"):
            assert console is not None
            console.print(_notice_line(message.notice))
        else:
            assert console is not None
            console.print(_order_update_line(message.update))
        received += message.HasField("update")
        if args.count and received >= args.count:
            break
    return 0


def portfolio_watch(client: TitanClient, args: argparse.Namespace) -> int:
    """The portfolio's value each time a balance or a price it uses moves."""
    console = None if args.json else make_console()
    received = 0
    for message in client.stream_portfolio_value(args.quote or "", args.exchange or ()):
        if args.json:
            print(ndjson(message), flush=True)
        elif message.HasField("notice"):
            assert console is not None
            console.print(_notice_line(message.notice))
        else:
            assert console is not None
            value = message.value
            venues = ", ".join(f"{v.exchange} {v.value}" for v in value.venues)
            console.print(f"{value.total_value} {value.quote_asset}  ({venues})")
        received += message.HasField("value")
        if args.count and received >= args.count:
            break
    return 0
