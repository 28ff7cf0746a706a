"""One fee model: markets carry the account's rates once known, defaults until then."""

from __future__ import annotations

from decimal import Decimal as D

from titan_grpc.domain import FeeSource, Market, Symbol
from titan_grpc.exchanges.fees import AccountFees

BTC, ETH = Symbol("BTC", "USDT"), Symbol("ETH", "USDT")


def market(symbol: Symbol) -> Market:
    return Market(
        "kucoin",
        symbol,
        symbol.canonical,
        D("0.1"),
        D("0.0001"),
        D("0.0001"),
        None,
        D("1"),
        D("0.001"),
        D("0.001"),
    )


def test_defaults_then_account_rates_then_per_symbol_rates() -> None:
    fees = AccountFees(D("0.001"), D("0.001"))
    markets = {BTC: market(BTC), ETH: market(ETH)}
    first = fees.apply(markets)
    assert first[BTC].fee_source is FeeSource.DEFAULT
    assert fees.apply(markets) is first  # cached until rates or markets change
    fees.set_account(D("0.0004"), D("0.0006"))
    account = fees.apply(markets)
    assert (account[ETH].maker_fee_rate, account[ETH].taker_fee_rate) == (D("0.0004"), D("0.0006"))
    assert account[ETH].fee_source is FeeSource.ACCOUNT
    fees.set_symbol(BTC, D("0.0002"), D("0.0003"))
    per_symbol = fees.apply(markets)
    assert per_symbol[BTC].taker_fee_rate == D("0.0003")
    assert per_symbol[ETH].taker_fee_rate == D("0.0006")
    assert fees.knows(BTC) and not fees.knows(ETH)
