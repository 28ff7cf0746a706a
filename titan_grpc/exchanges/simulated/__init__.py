"""Simulated venues: market model, matching engine and the backend adapter."""

from titan_grpc.exchanges.simulated.adapter import SimulatedExchange
from titan_grpc.exchanges.simulated.world import SimulatedWorld

__all__ = ["SimulatedExchange", "SimulatedWorld"]
