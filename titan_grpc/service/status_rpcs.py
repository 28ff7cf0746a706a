"""Gateway status, connectivity and key checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from titan_grpc import convert
from titan_grpc.exchanges import ExchangeBackend
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.market.health import VenueHealth
from titan_grpc.service.base import ServiceBase, unary


class StatusRpcs(ServiceBase):
    @unary
    async def GetStatus(self, request: pb.GetStatusRequest, context: Any) -> pb.GetStatusResponse:
        backends = self._registry.all()
        markets, _ = await self._per_venue(backends, lambda b: b.markets(), context)
        counts = {backend.name: len(found) for backend, found in markets}
        return pb.GetStatusResponse(
            mode=pb.MODE_REAL if self._info.real_mode else pb.MODE_SIMULATED,
            version=self._info.version,
            server_time=convert.timestamp(datetime.now(UTC)),
            venues=[
                _venue_status(b, counts.get(b.name, 0), self._monitor.health(b.name))
                for b in backends
            ],
            quote_aliases=list(self._info.quote_aliases),
        )

    @unary
    async def TestConnections(
        self, request: pb.TestConnectionsRequest, context: Any
    ) -> pb.TestConnectionsResponse:
        backends = self._registry.resolve_many(request.exchanges)
        results, errors = await self._per_venue(backends, lambda b: b.ping(), context)
        by_name = {backend.name: check for backend, check in results}
        error_by_name = {error.exchange: error for error in errors}
        return pb.TestConnectionsResponse(
            results=[
                pb.ConnectionResult(
                    exchange=b.name,
                    ok=b.name in by_name,
                    simulated=b.simulated,
                    latency=convert.duration(by_name[b.name].latency_seconds)
                    if b.name in by_name
                    else None,
                    venue_time=convert.timestamp(by_name[b.name].venue_time)
                    if b.name in by_name
                    else None,
                    error=error_by_name.get(b.name),
                )
                for b in backends
            ]
        )

    @unary
    async def TestAuth(self, request: pb.TestAuthRequest, context: Any) -> pb.TestAuthResponse:
        backends = self._registry.resolve_many(request.exchanges)
        results, errors = await self._per_venue(backends, lambda b: b.check_auth(), context)
        by_name = {backend.name: check for backend, check in results}
        error_by_name = {error.exchange: error for error in errors}
        return pb.TestAuthResponse(
            results=[
                pb.AuthResult(
                    exchange=b.name,
                    ok=b.name in by_name,
                    simulated=b.simulated,
                    permissions=list(by_name[b.name].permissions) if b.name in by_name else [],
                    error=error_by_name.get(b.name),
                )
                for b in backends
            ]
        )


def _venue_status(
    backend: ExchangeBackend, market_count: int, health: VenueHealth
) -> pb.VenueStatus:
    return pb.VenueStatus(
        exchange=backend.name,
        simulated=backend.simulated,
        credentials_configured=backend.credentials_configured,
        testnet=backend.testnet,
        market_count=market_count,
        healthy=health.healthy,
        latency=convert.duration(health.latency_seconds)
        if health.latency_seconds is not None
        else None,
        last_error=health.last_error,
        consecutive_failures=health.consecutive_failures,
        last_check_time=convert.timestamp(health.last_check),
    )
