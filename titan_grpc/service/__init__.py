"""The gRPC servicer: parse and validate, call one domain operation, convert, return.

One ``ExchangeService`` composed of one class per RPC family (STYLE.md 14), each method
thin; error mapping and the per-RPC log line live in ``base.unary``/``base.streaming``.
"""

from __future__ import annotations

from titan_grpc.gen.titan.v1 import exchange_pb2_grpc as pb_grpc
from titan_grpc.service.account import AccountRpcs
from titan_grpc.service.base import GatewayInfo
from titan_grpc.service.market_data import MarketDataRpcs
from titan_grpc.service.markets import MarketsRpcs
from titan_grpc.service.multi_venue import MultiVenueRpcs
from titan_grpc.service.status_rpcs import StatusRpcs
from titan_grpc.service.streams import StreamRpcs
from titan_grpc.service.trading import TradingRpcs


class ExchangeService(
    StatusRpcs,
    MarketDataRpcs,
    AccountRpcs,
    TradingRpcs,
    MarketsRpcs,
    MultiVenueRpcs,
    StreamRpcs,
    pb_grpc.ExchangeServiceServicer,
):
    """titan.v1.ExchangeService."""


__all__ = ["ExchangeService", "GatewayInfo"]
