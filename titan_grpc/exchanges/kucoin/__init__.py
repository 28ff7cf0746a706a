"""KuCoin spot: signing (key version 2), endpoints, parsing and the backend adapter."""

from titan_grpc.exchanges.kucoin.adapter import KucoinExchange, validate_settings

__all__ = ["KucoinExchange", "validate_settings"]
