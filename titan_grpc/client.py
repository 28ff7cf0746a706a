"""A small typed Python client for TITAN: connection, bearer token, deadlines, retries.

    from titan_grpc.client import TitanClient
    with TitanClient("127.0.0.1:50051", token="...") as titan:
        print(titan.market_data("BTC-USDT", "binance").ticker.bid)

Reads are retried by gRPC itself (service-config retry policy) on UNAVAILABLE with
exponential backoff; PlaceOrder, CancelOrder and CancelAllOrders are never retried by the
client — repeat a PlaceOrder with the same client_order_id instead, which TITAN answers
idempotently.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from types import TracebackType

import grpc

from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc

SERVICE = "titan.v1.ExchangeService"
READ_METHODS = (
    "GetStatus",
    "TestConnections",
    "TestAuth",
    "GetMarketData",
    "GetAggregatedMarketData",
    "GetOrderBook",
    "GetRecentTrades",
    "GetBalances",
    "GetPortfolioValue",
    "FindBestPrice",
    "PlanRoute",
    "GetOrderStatus",
    "ListOrders",
    "ListTrades",
    "ListLedgerEntries",
    "ListOpenOrders",
    "GetMarkets",
)


def _service_config(attempts: int) -> str:
    return json.dumps(
        {
            "methodConfig": [
                {
                    "name": [{"service": SERVICE, "method": m} for m in READ_METHODS],
                    "retryPolicy": {
                        "maxAttempts": attempts,
                        "initialBackoff": "0.1s",
                        "maxBackoff": "2s",
                        "backoffMultiplier": 2,
                        "retryableStatusCodes": ["UNAVAILABLE"],
                    },
                }
            ]
        }
    )


class TitanClient:
    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        *,
        token: str = "",
        root_certificates: bytes | None = None,
        timeout: float = 10.0,
        read_attempts: int = 3,
    ) -> None:
        options = [
            ("grpc.service_config", _service_config(read_attempts)),
            ("grpc.enable_retries", 1),
        ]
        if root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates)
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self.stub = pb_grpc.ExchangeServiceStub(self._channel)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {token}"),) if token else ()
        )
        self._timeout = timeout

    def __enter__(self) -> TitanClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def status(self) -> pb.GetStatusResponse:
        return self.stub.GetStatus(
            pb.GetStatusRequest(), timeout=self._timeout, metadata=self._metadata
        )

    def market_data(self, symbol: str, exchange: str) -> pb.GetMarketDataResponse:
        return self.stub.GetMarketData(
            pb.GetMarketDataRequest(symbol=symbol, exchange=exchange),
            timeout=self._timeout,
            metadata=self._metadata,
        )

    def aggregated(
        self, symbol: str, exchanges: Sequence[str] = ()
    ) -> pb.GetAggregatedMarketDataResponse:
        request = pb.GetAggregatedMarketDataRequest(symbol=symbol, exchanges=list(exchanges))
        return self.stub.GetAggregatedMarketData(
            request, timeout=self._timeout, metadata=self._metadata
        )

    def order_book(self, symbol: str, exchange: str, depth: int = 10) -> pb.GetOrderBookResponse:
        request = pb.GetOrderBookRequest(symbol=symbol, exchange=exchange, depth=depth)
        return self.stub.GetOrderBook(request, timeout=self._timeout, metadata=self._metadata)

    def best_price(
        self,
        symbol: str,
        side: pb.Side.ValueType,
        quantity: str = "",
        exchanges: Sequence[str] = (),
    ) -> pb.FindBestPriceResponse:
        request = pb.FindBestPriceRequest(
            symbol=symbol, side=side, quantity=quantity, exchanges=list(exchanges)
        )
        return self.stub.FindBestPrice(request, timeout=self._timeout, metadata=self._metadata)

    def plan_route(self, request: pb.PlanRouteRequest) -> pb.PlanRouteResponse:
        return self.stub.PlanRoute(request, timeout=self._timeout, metadata=self._metadata)

    def balances(self, exchanges: Sequence[str] = ()) -> pb.GetBalancesResponse:
        return self.stub.GetBalances(
            pb.GetBalancesRequest(exchanges=list(exchanges)),
            timeout=self._timeout,
            metadata=self._metadata,
        )

    def portfolio(
        self, quote_asset: str = "", exchanges: Sequence[str] = ()
    ) -> pb.GetPortfolioValueResponse:
        request = pb.GetPortfolioValueRequest(quote_asset=quote_asset, exchanges=list(exchanges))
        return self.stub.GetPortfolioValue(request, timeout=self._timeout, metadata=self._metadata)

    def place_order(self, request: pb.PlaceOrderRequest) -> pb.PlaceOrderResponse:
        return self.stub.PlaceOrder(request, timeout=self._timeout, metadata=self._metadata)

    def cancel_order(self, request: pb.CancelOrderRequest) -> pb.CancelOrderResponse:
        return self.stub.CancelOrder(request, timeout=self._timeout, metadata=self._metadata)

    def order_status(self, request: pb.GetOrderStatusRequest) -> pb.GetOrderStatusResponse:
        return self.stub.GetOrderStatus(request, timeout=self._timeout, metadata=self._metadata)

    def markets(
        self, exchanges: Sequence[str] = (), symbols: Sequence[str] = ()
    ) -> pb.GetMarketsResponse:
        request = pb.GetMarketsRequest(exchanges=list(exchanges), symbols=list(symbols))
        return self.stub.GetMarkets(request, timeout=self._timeout, metadata=self._metadata)

    def open_orders(
        self, exchanges: Sequence[str] = (), symbol: str = ""
    ) -> pb.ListOpenOrdersResponse:
        request = pb.ListOpenOrdersRequest(exchanges=list(exchanges), symbol=symbol)
        return self.stub.ListOpenOrders(request, timeout=self._timeout, metadata=self._metadata)

    def cancel_all(
        self, exchanges: Sequence[str] = (), symbol: str = ""
    ) -> pb.CancelAllOrdersResponse:
        """The kill switch: every open order on these venues (all but "mock" when empty)."""
        request = pb.CancelAllOrdersRequest(exchanges=list(exchanges), symbol=symbol)
        return self.stub.CancelAllOrders(request, timeout=self._timeout, metadata=self._metadata)

    def all_trades(self, request: pb.ListTradesRequest) -> Iterator[pb.Fill]:
        """Every fill the request selects, page after page (set page_size for the page
        length; start_time/end_time narrow it)."""
        page = pb.ListTradesRequest()
        page.CopyFrom(request)
        if not page.page_size:
            page.page_size = 1000
        while True:
            answer = self.stub.ListTrades(page, timeout=self._timeout, metadata=self._metadata)
            yield from answer.trades
            if not answer.next_page_token:
                return
            page.page_token = answer.next_page_token

    def all_ledger_entries(self, request: pb.ListLedgerEntriesRequest) -> Iterator[pb.LedgerEntry]:
        """Every ledger entry the request selects, page after page."""
        page = pb.ListLedgerEntriesRequest()
        page.CopyFrom(request)
        if not page.page_size:
            page.page_size = 1000
        while True:
            answer = self.stub.ListLedgerEntries(
                page, timeout=self._timeout, metadata=self._metadata
            )
            yield from answer.entries
            if not answer.next_page_token:
                return
            page.page_token = answer.next_page_token

    def stream_quotes(
        self, symbols: Sequence[str], exchanges: Sequence[str] = ()
    ) -> Iterator[pb.StreamQuotesResponse]:
        request = pb.StreamQuotesRequest(symbols=list(symbols), exchanges=list(exchanges))
        stream: Iterator[pb.StreamQuotesResponse] = self.stub.StreamQuotes(
            request, metadata=self._metadata
        )
        return stream
