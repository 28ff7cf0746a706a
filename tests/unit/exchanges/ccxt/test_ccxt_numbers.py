"""Where ccxt could lose precision, and the guards (no network)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from titan_grpc.errors import ConfigError, MalformedResponse

pytest.importorskip("ccxt")

from ccxt.base import errors as ccxt_errors

from titan_grpc.exchanges.ccxt import load_ccxt_settings
from titan_grpc.exchanges.ccxt.adapter import CcxtExchange
from titan_grpc.exchanges.ccxt.instance import build_exchange
from titan_grpc.exchanges.ccxt.parse import decimal


def test_floats_are_taken_exactly_or_refused() -> None:
    assert decimal("0.00000001") == Decimal("0.00000001")
    assert decimal(0.001) == Decimal("0.001")  # a fee rate from ccxt's static tables
    assert decimal(12345) == Decimal(12345)
    with pytest.raises(MalformedResponse):
        decimal(0.1 + 0.2)  # 0.30000000000000004: not a value any venue sent
    with pytest.raises(MalformedResponse):
        decimal(float("nan"))
    with pytest.raises(MalformedResponse):
        decimal("Infinity")


async def test_json_numbers_and_book_levels_keep_the_venues_digits() -> None:
    exchange = build_exchange(load_ccxt_settings("ccxt:okx", {}))
    try:
        parsed = exchange.on_json_response('{"px": 43000.123456789012345, "sz": 7}')
        assert parsed == {"px": "43000.123456789012345", "sz": 7}
        book = exchange.parse_order_book(
            {"bids": [["1.10", "2"], ["1.2", "3"]], "asks": [[1.3, "4"]]}, "BTC/USDT"
        )
        assert book["bids"] == [[Decimal("1.2"), Decimal("3")], [Decimal("1.10"), Decimal("2")]]
        assert book["asks"] == [[Decimal("1.3"), Decimal("4")]]
        assert exchange.number is str
    finally:
        await exchange.close()


async def test_a_venue_without_a_sandbox_refuses_to_start_unless_told() -> None:
    with pytest.raises(ConfigError) as caught:
        build_exchange(load_ccxt_settings("ccxt:kraken", {}))
    assert caught.value.problems[0].startswith("CCXT_KRAKEN_SANDBOX: ccxt's kraken has no sandbox")
    live = build_exchange(load_ccxt_settings("ccxt:kraken", {"CCXT_KRAKEN_SANDBOX": "false"}))
    assert live.urls["api"]["public"].startswith("https://")
    await live.close()


async def test_unknown_ccxt_ids_and_secrets_stay_out_of_reprs_and_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        build_exchange(load_ccxt_settings("ccxt:nosuchvenue", {}))
    assert caught.value.problems == [
        "TITAN_VENUES: ccxt:nosuchvenue: ccxt has no exchange 'nosuchvenue'"
    ]
    settings = load_ccxt_settings(
        "ccxt:okx",
        {
            "CCXT_OKX_API_KEY": "key-value-123",
            "CCXT_OKX_SECRET": "secret-value-456",
            "CCXT_OKX_OPTIONS": '{"headers": {"X-Proxy-Auth": "proxy-pass"}}',
        },
    )
    text = repr(settings)
    assert "secret-value-456" not in text and "proxy-pass" not in text
    backend = CcxtExchange(settings)
    raised = ccxt_errors.ExchangeError(
        "okx GET https://x/api?sign=abc&key=1 secret-value-456 failed"
    )
    error = backend._translate(raised, "fetchTicker")
    await backend.close()
    assert str(error) == "ccxt:okx fetchTicker: okx GET https://x/api?… *** failed"


class _StubPro:
    """ccxt.pro's watch_ticker: two tickers (the second unchanged), then a dropped feed."""

    def __init__(self) -> None:
        self.answers: list[object] = [
            {"bid": "43000.00", "bidVolume": "1.5", "ask": "43001.00", "askVolume": "0.5"},
            {"bid": "43000.00", "bidVolume": "1.5", "ask": "43001.00", "askVolume": "0.5"},
            {"bid": "43000.10", "bidVolume": "1", "ask": "43001.00", "askVolume": "0.5"},
        ]

    async def watch_ticker(self, symbol: str) -> object:
        answer = self.answers.pop(0) if self.answers else None
        if answer is None:
            import ccxt

            raise ccxt.NetworkError("binance connection closed")
        return answer

    async def close(self) -> None:
        return None


async def test_watched_quotes_are_exact_deduplicated_and_gaps_are_notices() -> None:
    from tests.fakes.binance import FakeBinance
    from tests.integration.test_ccxt import ccxt_environment
    from titan_grpc.domain import FeedInterrupted, Quote, Symbol

    fake = FakeBinance()
    await fake.start()
    settings = load_ccxt_settings(
        "ccxt:binance", {**ccxt_environment(fake.url), "CCXT_BINANCE_POLL_SECONDS": "0.05"}
    )
    backend = CcxtExchange(settings)
    backend._pro = _StubPro()
    seen: list[Quote | FeedInterrupted] = []
    try:
        async for item in backend.watch_quotes(Symbol("BTC", "USDT")):
            seen.append(item)
            if len(seen) == 3:
                break
    finally:
        await backend.close()
        await fake.stop()
    first, second, gap = seen
    assert isinstance(first, Quote) and first.bid == Decimal("43000.00")
    assert isinstance(second, Quote) and second.bid == Decimal("43000.10")  # duplicate skipped
    assert isinstance(gap, FeedInterrupted) and "connection closed" in gap.reason


async def test_the_ccxt_pro_instance_is_built_like_the_rest_one() -> None:
    import ccxt.pro

    pro = build_exchange(load_ccxt_settings("ccxt:okx", {}), ccxt.pro)
    try:
        assert pro.has["watchTicker"] and pro.number is str
        assert pro.isSandboxModeEnabled and pro.headers == {"x-simulated-trading": "1"}
    finally:
        await pro.close()
