"""TITAN: a gRPC gateway in front of Binance, Coinbase Exchange and KuCoin."""

__version__ = "0.1.0"
