"""Coinbase Exchange (formerly Coinbase Pro): signing, endpoints, parsing, adapter."""

from titan_grpc.exchanges.coinbase.adapter import CoinbaseExchange, validate_credentials

__all__ = ["CoinbaseExchange", "validate_credentials"]
