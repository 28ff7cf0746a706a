"""The CLI's parser and renderers, without a server."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest
from rich.console import Console

from titan_grpc.__main__ import _parser
from titan_grpc.cli import _best_price
from titan_grpc.cli_streams import as_dict as _as_dict
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def test_every_option_and_command_has_help_text() -> None:
    missing = [
        f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
        for parser in _parsers(_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert missing == []


def test_order_place_requires_side_and_type_and_knows_post_only() -> None:
    args = _parser().parse_args(
        "order place --exchange mock --symbol BTC-USDT --side sell --type market "
        "--quantity 1 --post-only --tif ioc".split()
    )
    assert (args.side, args.type, args.post_only, args.tif) == ("sell", "market", True, "ioc")
    assert _parser().parse_args(["order", "status", "--exchange", "mock"]).action == "status"


def test_order_place_never_guesses_side_or_type(capsys: pytest.CaptureFixture[str]) -> None:
    base = "order place --exchange mock --symbol BTC-USDT --quantity 0.001 --price 1".split()
    for missing, extra in (("--side, --type", []), ("--type", ["--side", "buy"])):
        with pytest.raises(SystemExit) as caught:
            _parser().parse_args([*base, *extra])
        assert caught.value.code == 2
        assert f"the following arguments are required: {missing}\n" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        _parser().parse_args(["order", "place", "--help"])
    assert caught.value.code == 0
    helped = capsys.readouterr().out
    assert helped.startswith("usage: titan-grpc order place")
    assert "--post-only" in helped and "--tif {fok,gtc,ioc}" in helped


def test_json_is_the_proto3_mapping_with_lower_camel_names() -> None:
    order = pb.Order(
        client_order_id="a-1", filled_quantity="0.5", status=pb.ORDER_STATUS_FILLED, price="1"
    )
    assert _as_dict(order) == {
        "clientOrderId": "a-1",
        "filledQuantity": "0.5",
        "status": "ORDER_STATUS_FILLED",
        "price": "1",
    }


class ScriptedBestPrice:
    def __init__(self, answer: pb.FindBestPriceResponse) -> None:
        self.answer = answer

    def best_price(self, symbol: str, side: int, quantity: str = "") -> pb.FindBestPriceResponse:
        return self.answer


def test_best_price_renders_the_arbitrage() -> None:
    answer = pb.FindBestPriceResponse(
        symbol="BTC-USDT",
        side=pb.SIDE_BUY,
        best=pb.VenueQuote(exchange="kucoin", price="100", price_after_fees="100.1"),
        quotes=[pb.VenueQuote(exchange="kucoin", price="100", price_after_fees="100.1")],
        arbitrage=[
            pb.ArbitrageOpportunity(
                buy_exchange="kucoin",
                sell_exchange="binance",
                buy_price="100",
                sell_price="101",
                quantity="2",
                gross_profit="2",
                net_profit="1.6",
            )
        ],
    )
    args = argparse.Namespace(symbol="BTC-USDT", side="buy", quantity="")
    _, renderable = _best_price(ScriptedBestPrice(answer), args)  # type: ignore[arg-type]
    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(renderable)
    text = console.export_text()
    assert "Arbitrage (after fees)" in text and "binance" in text and "1.6" in text

    args_none = argparse.Namespace(symbol="BTC-USDT", side="buy", quantity="")
    del answer.arbitrage[:]
    _, renderable = _best_price(ScriptedBestPrice(answer), args_none)  # type: ignore[arg-type]
    console.print(renderable)
    assert "Arbitrage: none pays" in console.export_text()


def test_the_server_and_the_json_cli_never_import_rich() -> None:
    code = (
        "import sys, titan_grpc.__main__, titan_grpc.server, titan_grpc.cli\n"
        "assert 'rich' not in sys.modules, sorted(m for m in sys.modules if 'rich' in m)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
