"""A short TITAN client: a few unary calls and a quote stream, using the generated stubs.

Run the server (`make run`), then: .venv/bin/python clients/python/example.py
"""

from __future__ import annotations

import argparse
import itertools
import uuid

import grpc

from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--symbol", default="BTC-USDT")
    parser.add_argument("--quotes", type=int, default=5, help="stream this many quotes")
    args = parser.parse_args()

    with grpc.insecure_channel(args.address) as channel:
        stub = pb_grpc.ExchangeServiceStub(channel)

        status = stub.GetStatus(pb.GetStatusRequest(), timeout=5)
        print("mode:", pb.Mode.Name(status.mode), "venues:", [v.exchange for v in status.venues])

        ticker = stub.GetMarketData(
            pb.GetMarketDataRequest(symbol=args.symbol, exchange="binance"), timeout=5
        ).ticker
        origin = "simulated" if ticker.source.simulated else "live"
        print(f"{ticker.symbol} on binance ({origin}): bid {ticker.bid} ask {ticker.ask}")

        # A limit buy far below the market rests; then cancel it by our own id.
        # Client order ids are idempotency keys: a new order needs a new id.
        client_order_id = f"example-{uuid.uuid4().hex[:12]}"
        placed = stub.PlaceOrder(
            pb.PlaceOrderRequest(
                exchange="binance",
                symbol=args.symbol,
                side=pb.SIDE_BUY,
                type=pb.ORDER_TYPE_LIMIT,
                quantity="0.001",
                price="10000",
                client_order_id=client_order_id,
            ),
            timeout=5,
        ).order
        print("placed", placed.order_id, pb.OrderStatus.Name(placed.status))
        cancelled = stub.CancelOrder(
            pb.CancelOrderRequest(exchange="binance", client_order_id=client_order_id), timeout=5
        ).order
        print("cancelled", cancelled.order_id, pb.OrderStatus.Name(cancelled.status))

        stream = stub.StreamQuotes(
            pb.StreamQuotesRequest(symbols=[args.symbol], exchanges=["binance", "coinbase"])
        )
        for message in itertools.islice(stream, args.quotes):
            quote = message.quote
            print(f"quote #{quote.sequence} {quote.exchange:8} bid {quote.bid} ask {quote.ask}")
        stream.cancel()


if __name__ == "__main__":
    main()
