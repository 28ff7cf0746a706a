"""Coinbase Exchange's REST API as TITAN calls it: public and signed requests, each under
its rate budget, CB-AFTER paging, and the clock offset the signatures need. The adapter
(adapter.py) turns the answers into domain values."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from titan_grpc.config import VenueSettings
from titan_grpc.errors import NotConfigured
from titan_grpc.exchanges.coinbase import auth, endpoints, parse
from titan_grpc.exchanges.coinbase.endpoints import Endpoint
from titan_grpc.net import ClockSync, RestClient, RestRequest, RestResponse, RetryPolicy
from titan_grpc.net.ratelimit import BudgetFactory
from titan_grpc.net.rest import RequestObserver

VENUE = "coinbase"


class CoinbaseClient:
    def __init__(
        self,
        base_url: str,
        settings: VenueSettings,
        *,
        clock_sync: ClockSync,
        budgets: BudgetFactory,
        retry: RetryPolicy,
        total_timeout: float,
        rate_limit_max_wait_seconds: float,
        request_observer: RequestObserver | None,
    ) -> None:
        self._credentials = settings.credentials
        self.clock_sync = clock_sync
        # No usage headers to correct from (EXCHANGES-REFERENCE 2.6): stay under the
        # documented rates; a plan's own rates replace them.
        plan = settings.budget
        public_rate = plan.public_rate_per_second or endpoints.PUBLIC_RATE
        private_rate = plan.private_rate_per_second or endpoints.PRIVATE_RATE
        self._public_limiter = budgets.bucket(
            VENUE,
            "public",
            public_rate,
            endpoints.burst_for(public_rate, endpoints.PUBLIC_RATE, endpoints.PUBLIC_BURST),
            max_wait_seconds=rate_limit_max_wait_seconds,
        )
        self._private_limiter = budgets.bucket(
            VENUE,
            "private",
            private_rate,
            endpoints.burst_for(private_rate, endpoints.PRIVATE_RATE, endpoints.PRIVATE_BURST),
            max_wait_seconds=rate_limit_max_wait_seconds,
        )
        self._rest = RestClient(
            VENUE,
            base_url,
            limiter=self._public_limiter,
            error_mapper=parse.parse_error,
            retry=retry,
            total_timeout=total_timeout,
            observer=request_observer,
        )

    @property
    def credentials_configured(self) -> bool:
        return bool(self._credentials.api_key)

    def rate_budget_used(self) -> float:
        return max(self._public_limiter.usage_ratio, self._private_limiter.usage_ratio)

    async def close(self) -> None:
        await self._rest.close()

    async def server_time(self) -> datetime:
        """The venue's clock; also brings the signing clock offset up to date."""
        sent = self.clock_sync.local_ms()
        answer = await self.public(endpoints.TIME)
        received = self.clock_sync.local_ms()
        epoch = parse.decimal(answer["epoch"])
        self.clock_sync.update(int(epoch * 1000), sent, received)
        return datetime.fromtimestamp(float(epoch), tz=UTC)

    @staticmethod
    def _path(endpoint: Endpoint, params: Sequence[tuple[str, str]] = (), **parts: str) -> str:
        path = endpoint.path.format(**{k: quote(v, safe="") for k, v in parts.items()})
        return f"{path}?{urlencode(list(params))}" if params else path

    async def public(
        self, endpoint: Endpoint, params: Sequence[tuple[str, str]] = (), **parts: str
    ) -> Any:
        path = self._path(endpoint, params, **parts)
        path_only, _, query = path.partition("?")
        request = RestRequest(endpoint.method, path_only, query=query, endpoint=endpoint.name())
        return (await self._rest.send(request)).json()

    async def signed_response(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]] = (),
        body: dict[str, Any] | None = None,
        **parts: str,
    ) -> RestResponse:
        if not self.credentials_configured:
            raise NotConfigured(
                "coinbase: account and trading calls need COINBASE_API_KEY, "
                "COINBASE_API_SECRET and COINBASE_PASSPHRASE",
                variable="COINBASE_API_KEY",
            )
        if not self.clock_sync.synced:
            await self.server_time()
        path = self._path(endpoint, params, **parts)
        path_only, _, query = path.partition("?")
        text = json.dumps(body, separators=(",", ":")) if body is not None else ""
        request = RestRequest(
            endpoint.method,
            path_only,
            query=query,
            body=text,
            idempotent=endpoint.idempotent,
            endpoint=endpoint.name(),
        )
        credentials = self._credentials

        async def sign(unsigned: RestRequest) -> RestRequest:
            timestamp = f"{self.clock_sync.now_ms() / 1000:.3f}"
            signed_headers = auth.headers(
                credentials.api_key.reveal(),
                credentials.api_secret.reveal(),
                credentials.passphrase.reveal(),
                timestamp,
                unsigned.method,
                path,
                text,
            )
            return unsigned.with_signature(unsigned.query, unsigned.body, signed_headers)

        return await self._rest.send(request, sign, limiter=self._private_limiter)

    async def signed(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]] = (),
        body: dict[str, Any] | None = None,
        **parts: str,
    ) -> Any:
        return (await self.signed_response(endpoint, params, body, **parts)).json()

    async def paged(
        self, endpoint: Endpoint, params: list[tuple[str, str]], limit: int, **parts: str
    ) -> list[Any]:
        """Follow CB-AFTER cursors until ``limit`` rows (newest first, as Coinbase lists)."""
        rows: list[Any] = []
        after = ""
        while len(rows) < limit:
            page_params = [*params, ("limit", str(min(endpoints.PAGE_SIZE, limit - len(rows))))]
            if after:
                page_params.append(("after", after))
            response = await self.signed_response(endpoint, page_params, None, **parts)
            page = response.json()
            rows.extend(page)
            after = response.headers.get("CB-AFTER", "")
            if not page or not after:
                break
        return rows[:limit]
