"""KuCoin's REST API as TITAN calls it: public and signed requests, each weighed against
its pool (corrected from the venue's gw-ratelimit headers), and the clock offset the
signatures need. The adapter (adapter.py) turns the answers into domain values."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from titan_grpc.config import VenueSettings
from titan_grpc.errors import NotConfigured
from titan_grpc.exchanges.kucoin import auth, endpoints, parse
from titan_grpc.exchanges.kucoin.endpoints import Endpoint
from titan_grpc.net import ClockSync, RestClient, RestRequest, RestResponse, RetryPolicy
from titan_grpc.net.ratelimit import BudgetFactory, WindowBudget
from titan_grpc.net.rest import RequestObserver

VENUE = "kucoin"


class KucoinClient:
    def __init__(
        self,
        base_url: str,
        settings: VenueSettings,
        *,
        live_trading: bool,
        clock: Callable[[], float],
        budgets: BudgetFactory,
        retry: RetryPolicy,
        total_timeout: float,
        rate_limit_max_wait_seconds: float,
        request_observer: RequestObserver | None,
    ) -> None:
        self._credentials = settings.credentials
        self._live_trading = live_trading
        self._clock_sync = ClockSync(clock)
        plan = settings.budget
        self._public_limiter = budgets.window(
            VENUE,
            "public",
            plan.public_weight_per_window or endpoints.PUBLIC_POOL,
            endpoints.WINDOW_SECONDS,
            clock=clock,
            max_wait_seconds=rate_limit_max_wait_seconds,
        )
        self._private_limiter = budgets.window(
            VENUE,
            "private",
            plan.weight_per_window or endpoints.PRIVATE_POOL,
            endpoints.WINDOW_SECONDS,
            clock=clock,
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

    def rate_budget_used(self) -> float:
        return max(self._public_limiter.usage_ratio, self._private_limiter.usage_ratio)

    async def close(self) -> None:
        await self._rest.close()

    async def server_time(self) -> datetime:
        """The venue's clock; also brings the signing clock offset up to date."""
        sent = self._clock_sync.local_ms()
        venue_ms = int(await self.public(endpoints.TIMESTAMP))
        self._clock_sync.update(venue_ms, sent, self._clock_sync.local_ms())
        return datetime.fromtimestamp(venue_ms / 1000, tz=UTC)

    @staticmethod
    def _observe(limiter: WindowBudget, response: RestResponse) -> None:
        limit = response.headers.get(endpoints.LIMIT_HEADER, "")
        remaining = response.headers.get(endpoints.REMAINING_HEADER, "")
        if limit.isdigit() and remaining.isdigit():
            limiter.observe_used(int(limit) - int(remaining))
        reset_ms = response.headers.get(endpoints.RESET_HEADER, "")
        if reset_ms.isdigit():
            # A pool's window starts with its first request, not on the clock's boundary.
            limiter.observe_reset(int(reset_ms) / 1000)

    @staticmethod
    def _endpoint(
        endpoint: Endpoint, params: Sequence[tuple[str, str]], **parts: str
    ) -> tuple[str, str]:
        path = endpoint.path.format(**{k: quote(v, safe="") for k, v in parts.items()})
        return path, urlencode(list(params))

    async def public(self, endpoint: Endpoint, params: Sequence[tuple[str, str]] = ()) -> Any:
        path, query = self._endpoint(endpoint, params)
        request = RestRequest(
            endpoint.method, path, query=query, weight=endpoint.weight, endpoint=endpoint.name()
        )
        response = await self._rest.send(request)
        self._observe(self._public_limiter, response)
        return parse.data(response)

    async def signed(
        self,
        endpoint: Endpoint,
        params: Sequence[tuple[str, str]] = (),
        body: dict[str, Any] | None = None,
        **parts: str,
    ) -> Any:
        if not self._credentials.api_key:
            raise NotConfigured(
                "kucoin: account and trading calls need KUCOIN_API_KEY, KUCOIN_API_SECRET "
                "and KUCOIN_PASSPHRASE",
                variable="KUCOIN_API_KEY",
            )
        if not self._live_trading:
            raise NotConfigured(
                "kucoin: KuCoin has no sandbox; set KUCOIN_SANDBOX=false to use your keys on "
                "live KuCoin",
                variable="KUCOIN_SANDBOX",
            )
        if not self._clock_sync.synced:
            await self.server_time()
        path, query = self._endpoint(endpoint, params, **parts)
        text = json.dumps(body, separators=(",", ":")) if body is not None else ""
        signed_path = f"{path}?{query}" if query else path
        credentials = self._credentials
        request = RestRequest(
            endpoint.method,
            path,
            query=query,
            body=text,
            weight=endpoint.weight,
            idempotent=endpoint.idempotent,
            endpoint=endpoint.name(),
        )

        async def sign(unsigned: RestRequest) -> RestRequest:
            headers = auth.headers(
                credentials.api_key.reveal(),
                credentials.api_secret.reveal(),
                credentials.passphrase.reveal(),
                str(self._clock_sync.now_ms()),
                unsigned.method,
                signed_path,
                text,
            )
            return unsigned.with_signature(unsigned.query, unsigned.body, headers)

        response = await self._rest.send(request, sign, limiter=self._private_limiter)
        self._observe(self._private_limiter, response)
        return parse.data(response)
