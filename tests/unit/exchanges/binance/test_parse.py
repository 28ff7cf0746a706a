"""Pure parsing of Binance answers, including the error-code table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from titan_grpc import errors
from titan_grpc.domain import Liquidity, OrderStatus, OrderType, Side, Symbol, TimeInForce
from titan_grpc.exchanges.binance import parse
from titan_grpc.net.rest import RestResponse

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def answer(status: int, body: object) -> RestResponse:
    text = body if isinstance(body, str) else json.dumps(body)
    return RestResponse(status, {}, text, "binance")


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (400, -1121, "Invalid symbol.", errors.UnknownSymbol),
        (
            400,
            -2010,
            "Account has insufficient balance for requested action.",
            errors.InsufficientFunds,
        ),
        (400, -2010, "Duplicate order sent.", errors.DuplicateOrder),
        (400, -2010, "Order would immediately match and take.", errors.OrderRejected),
        (400, -2011, "Unknown order sent.", errors.OrderNotFound),
        (400, -2013, "Order does not exist.", errors.OrderNotFound),
        (
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
            errors.AuthenticationError,
        ),
        (400, -1022, "Signature for this request is not valid.", errors.AuthenticationError),
        (401, -2015, "Invalid API-key, IP, or permissions for action.", errors.AuthenticationError),
        (429, -1003, "Too much request weight used.", errors.RateLimited),
        (400, -1013, "Filter failure: LOT_SIZE", errors.InvalidOrder),
        (400, -1102, "Mandatory parameter 'price' was not sent.", errors.InvalidOrder),
        (503, -1007, "Timeout waiting for response from backend server.", errors.AmbiguousOutcome),
        (400, -9999, "Something new.", errors.ExchangeError),
    ],
)
def test_error_codes_map_to_the_taxonomy_keeping_code_and_message(
    status: int, code: int, message: str, kind: type[errors.ExchangeError]
) -> None:
    error = parse.parse_error(answer(status, {"code": code, "msg": message}))
    assert type(error) is kind
    assert isinstance(error, errors.ExchangeError)
    assert (error.venue_code, error.venue_message, error.exchange) == (
        str(code),
        message,
        "binance",
    )
    assert str(code) in error.message and message in error.message


def test_filter_failures_name_the_field() -> None:
    price = parse.parse_error(answer(400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}))
    lot = parse.parse_error(answer(400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}))
    assert isinstance(price, errors.InvalidOrder) and price.field == "price"
    assert isinstance(lot, errors.InvalidOrder) and lot.field == "quantity"


def test_non_json_errors_map_by_http_status() -> None:
    assert parse.parse_error(answer(200, {"ok": 1})) is None
    assert isinstance(parse.parse_error(answer(403, "<html>WAF</html>")), errors.PermissionDenied)
    assert isinstance(parse.parse_error(answer(401, "nope")), errors.AuthenticationError)


def test_markets_from_exchange_info_filters() -> None:
    info = {
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 6000,
            }
        ],
        "symbols": [
            {
                "symbol": "BTCUSDT",
                "status": "TRADING",
                "baseAsset": "BTC",
                "quoteAsset": "USDT",
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "minPrice": "0.01",
                        "maxPrice": "1000000",
                        "tickSize": "0.01000000",
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": "0.00001",
                        "maxQty": "9000.00000000",
                        "stepSize": "0.00001000",
                    },
                    {"filterType": "MIN_NOTIONAL", "minNotional": "10.00000000"},
                ],
            },
            {
                "symbol": "OLDBTC",
                "status": "BREAK",
                "baseAsset": "OLD",
                "quoteAsset": "BTC",
                "filters": [],
            },
        ],
    }
    markets = parse.parse_markets(info, D("0.001"), D("0.002"))
    btc = markets[Symbol("BTC", "USDT")]
    assert (btc.venue_symbol, btc.tick_size, btc.step_size) == ("BTCUSDT", D("0.01"), D("0.00001"))
    assert (btc.min_quantity, btc.max_quantity, btc.min_notional) == (
        D("0.00001"),
        D("9000"),
        D("10"),
    )
    assert (btc.maker_fee_rate, btc.taker_fee_rate, btc.trading_enabled) == (
        D("0.001"),
        D("0.002"),
        True,
    )
    assert markets[Symbol("OLD", "BTC")].trading_enabled is False
    assert parse.parse_weight_limit(info) == 6000


def test_full_order_answer_with_fills() -> None:
    info_market = parse.parse_markets(
        {
            "symbols": [
                {
                    "symbol": "BTCUSDT",
                    "status": "TRADING",
                    "baseAsset": "BTC",
                    "quoteAsset": "USDT",
                    "filters": [],
                }
            ]
        },
        D("0.001"),
        D("0.001"),
    )[Symbol("BTC", "USDT")]
    order = parse.parse_order(
        {
            "symbol": "BTCUSDT",
            "orderId": 28,
            "clientOrderId": "abc",
            "transactTime": 1507725176595,
            "price": "0.00000000",
            "origQty": "1.00000000",
            "executedQty": "1.00000000",
            "cummulativeQuoteQty": "43000.50000000",
            "status": "FILLED",
            "timeInForce": "GTC",
            "type": "MARKET",
            "side": "BUY",
            "fills": [
                {
                    "price": "43000.00",
                    "qty": "0.5",
                    "commission": "21.5",
                    "commissionAsset": "USDT",
                    "tradeId": 56,
                },
                {
                    "price": "43001.00",
                    "qty": "0.5",
                    "commission": "21.5005",
                    "commissionAsset": "USDT",
                    "tradeId": 57,
                },
            ],
        },
        info_market,
        NOW,
    )
    assert (order.order_id, order.client_order_id, order.status) == (
        "28",
        "abc",
        OrderStatus.FILLED,
    )
    assert (order.type, order.side, order.time_in_force, order.price) == (
        OrderType.MARKET,
        Side.BUY,
        TimeInForce.GTC,
        None,
    )
    assert (order.fee, order.fee_asset) == (D("43.0005"), "USDT")
    assert order.average_fill_price == D("43000.5")
    assert [f.liquidity for f in order.fills] == [Liquidity.TAKER, Liquidity.TAKER]
    queried = parse.parse_order(
        {
            "symbol": "BTCUSDT",
            "orderId": 29,
            "clientOrderId": "x",
            "price": "1.0",
            "origQty": "1",
            "executedQty": "0",
            "cummulativeQuoteQty": "0",
            "status": "EXPIRED_IN_MATCH",
            "type": "LIMIT",
            "side": "SELL",
            "timeInForce": "IOC",
            "time": 1,
            "updateTime": 2,
        },
        info_market,
        NOW,
    )
    assert (queried.status, queried.fee, queried.time_in_force) == (
        OrderStatus.EXPIRED,
        None,
        TimeInForce.IOC,
    )


def test_trades_newest_first_with_taker_side() -> None:
    trades = parse.parse_trades(
        [
            {"id": 1, "price": "1", "qty": "1", "time": 1000, "isBuyerMaker": True},
            {"id": 2, "price": "2", "qty": "1", "time": 2000, "isBuyerMaker": False},
        ]
    )
    assert [(t.trade_id, t.taker_side) for t in trades] == [("2", Side.BUY), ("1", Side.SELL)]


def test_malformed_numbers_are_malformed_responses() -> None:
    with pytest.raises(errors.MalformedResponse):
        parse.decimal("12,5")
