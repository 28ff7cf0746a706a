"""Venue backends behind one abstract interface."""

from titan_grpc.exchanges.base import ExchangeBackend
from titan_grpc.exchanges.registry import ExchangeRegistry

__all__ = ["ExchangeBackend", "ExchangeRegistry"]
