"""Binance spot: signing, endpoints, parsing and the backend adapter."""

from titan_grpc.exchanges.binance.adapter import BinanceExchange, validate_credentials

__all__ = ["BinanceExchange", "validate_credentials"]
