"""The `watch` board shows a feed's gap on its row until the feed recovers."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator, Sequence

from rich.console import Console

from titan_grpc.cli_streams import watch as _watch
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb


class ScriptedClient:
    def __init__(self, messages: list[pb.StreamQuotesResponse]) -> None:
        self.messages = messages

    def stream_quotes(
        self, symbols: Sequence[str], exchanges: Sequence[str] = ()
    ) -> Iterator[pb.StreamQuotesResponse]:
        yield from self.messages


def notice(kind: int, exchange: str, message: str) -> pb.StreamQuotesResponse:
    return pb.StreamQuotesResponse(
        notice=pb.StreamNotice(kind=kind, exchange=exchange, symbol="BTC-USDT", message=message)
    )


def quote(exchange: str, bid: str) -> pb.StreamQuotesResponse:
    return pb.StreamQuotesResponse(
        quote=pb.Quote(exchange=exchange, symbol="BTC-USDT", bid=bid, ask="43001", last=bid)
    )


def board_after(messages: list[pb.StreamQuotesResponse], count: int) -> str:
    console = Console(file=io.StringIO(), width=160, record=True, force_terminal=False)
    args = argparse.Namespace(symbols=["BTC-USDT"], exchange=[], json=False, count=count)
    assert _watch(ScriptedClient(messages), args, console) == 0  # type: ignore[arg-type]
    return console.export_text()


def test_a_gap_marks_the_row_and_recovery_clears_it() -> None:
    refused = notice(pb.STREAM_NOTICE_KIND_GAP, "kucoin", "feed interrupted: refused")
    text = board_after([refused, quote("binance", "43000")], count=1)
    last_board = text.rsplit("TITAN live quotes", 1)[1]
    assert "kucoin" in last_board and "gap: feed interrupted: refused" in last_board
    recovered = notice(pb.STREAM_NOTICE_KIND_RECOVERED, "kucoin", "feed recovered")
    text = board_after([refused, recovered, quote("kucoin", "42999")], count=1)
    last_board = text.rsplit("TITAN live quotes", 1)[1]
    assert "gap" not in last_board and "live" in last_board and "simulated" not in last_board


def test_simulated_quotes_say_so_on_the_board() -> None:
    simulated = quote("binance", "43000")
    simulated.quote.source.simulated = True
    last_board = board_after([simulated], count=1).rsplit("TITAN live quotes", 1)[1]
    assert "simulated" in last_board
