"""One aiohttp session per venue: rate limited, signed, retried only where safe.

The client knows no venue. A venue adapter gives it a signing hook, an error mapper
(venue answer -> TitanError) and a usage observer (venue headers -> limiter).

Outcome rules:
* Idempotent requests (GETs, cancels by id) are retried on network errors and 5xx with
  exponential backoff and jitter.
* Non-idempotent requests (order placement) are sent exactly once. A failure that may
  have happened after the venue received the request (timeout, reset, 5xx, unreadable
  answer) raises AmbiguousOutcome so the caller reconciles instead of re-sending. A
  failure to connect at all raises ExchangeUnavailable: nothing was sent.
* 429/418 block the venue in the limiter for Retry-After and raise RateLimited.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from titan_grpc.errors import (
    AmbiguousOutcome,
    ExchangeUnavailable,
    MalformedResponse,
    RateLimited,
    TitanError,
    VenueTimeout,
)
from titan_grpc.net.ratelimit import RateLimiter
from titan_grpc.net.retry import DEFAULT_RETRY, RetryPolicy

log = logging.getLogger("titan_grpc.upstream")

USER_AGENT = "titan-grpc/0.1"


@dataclass(frozen=True, slots=True)
class RestRequest:
    method: str
    path: str
    # Already encoded query string, sent byte-for-byte as signed ("" for none). Query,
    # body and headers stay out of repr: they carry signatures and API keys.
    query: str = field(default="", repr=False)
    body: str = field(default="", repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    weight: int = 1
    idempotent: bool = True
    endpoint: str = ""  # name for logs and metrics; never includes the query

    def with_signature(self, query: str, body: str, headers: Mapping[str, str]) -> RestRequest:
        return RestRequest(
            self.method,
            self.path,
            query,
            body,
            headers,
            self.weight,
            self.idempotent,
            self.endpoint,
        )


@dataclass(frozen=True, slots=True)
class RestResponse:
    status: int
    headers: Mapping[str, str]
    text: str
    venue: str

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            raise MalformedResponse(
                f"{self.venue} answered with malformed JSON (HTTP {self.status})",
                exchange=self.venue,
            ) from None


Signer = Callable[[RestRequest], Awaitable[RestRequest]]
# (venue, endpoint, status, seconds) after every request, for metrics.
RequestObserver = Callable[[str, str, str, float], None]
ErrorMapper = Callable[[RestResponse], TitanError | None]
UsageObserver = Callable[[Mapping[str, str]], None]


def _retry_after(headers: Mapping[str, str], default: float) -> float:
    value = headers.get("Retry-After", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return default


class RestClient:
    def __init__(
        self,
        venue: str,
        base_url: str,
        *,
        limiter: RateLimiter,
        error_mapper: ErrorMapper,
        usage_observer: UsageObserver | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        total_timeout: float = 10.0,
        connect_timeout: float = 3.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        observer: RequestObserver | None = None,
    ) -> None:
        self.venue = venue
        self._observer = observer
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self._error_mapper = error_mapper
        self._usage_observer = usage_observer
        self._retry = retry
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout)
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self.requests_sent = 0

    def _session_or_new(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self,
        request: RestRequest,
        signer: Signer | None = None,
        limiter: RateLimiter | None = None,
    ) -> RestResponse:
        """Send with retries where safe. ``limiter`` overrides the client's default budget."""
        budget = limiter or self.limiter
        attempts = self._retry.attempts if request.idempotent else 1
        last_error: TitanError | None = None
        for attempt in range(attempts):
            if attempt:
                await self._sleep(self._retry.delay(attempt - 1, self._rng))
            await budget.acquire(request.weight)
            prepared = await signer(request) if signer else request
            try:
                return await self._send_once(prepared, budget)
            except _Retryable as retryable:
                last_error = retryable.error
                if not request.idempotent:
                    raise retryable.ambiguous or retryable.error from None
        assert last_error is not None
        raise last_error

    async def _send_once(self, request: RestRequest, budget: RateLimiter) -> RestResponse:
        url = URL(
            self.base_url + request.path + (f"?{request.query}" if request.query else ""),
            encoded=True,
        )
        started = time.perf_counter()
        status_text = "error"
        try:
            session = self._session_or_new()
            self.requests_sent += 1
            async with session.request(
                request.method,
                url,
                data=request.body.encode() if request.body else None,
                headers=dict(request.headers),
            ) as answer:
                text = await answer.text()
                response = RestResponse(answer.status, dict(answer.headers), text, self.venue)
            status_text = str(response.status)
        except aiohttp.ClientConnectorError as error:
            # Never connected: the venue cannot have seen the request.
            unavailable = ExchangeUnavailable(
                f"{self.venue}: cannot connect ({type(error).__name__})", exchange=self.venue
            )
            raise _Retryable(unavailable, None) from None
        except (TimeoutError, aiohttp.ClientError) as error:
            timed_out = isinstance(error, TimeoutError)
            reason = "timed out" if timed_out else type(error).__name__
            unavailable = (VenueTimeout if timed_out else ExchangeUnavailable)(
                f"{self.venue}: {reason}", exchange=self.venue
            )
            ambiguous = AmbiguousOutcome(
                f"{self.venue}: {reason} after sending; outcome unknown", exchange=self.venue
            )
            raise _Retryable(unavailable, ambiguous) from None
        finally:
            elapsed = time.perf_counter() - started
            endpoint = request.endpoint or f"{request.method} {request.path}"
            log.info(
                "upstream venue=%s endpoint=%s status=%s weight=%d duration_ms=%.1f",
                self.venue,
                endpoint,
                status_text,
                request.weight,
                elapsed * 1000,
            )
            if self._observer is not None:
                self._observer(self.venue, endpoint, status_text, elapsed)
        if self._usage_observer is not None:
            self._usage_observer(response.headers)
        if response.status in (418, 429):
            retry_after = _retry_after(response.headers, 60.0)
            budget.block_for(retry_after)
            mapped = self._error_mapper(response)
            raise RateLimited(
                f"{self.venue}: rate limited (HTTP {response.status}); retry in {retry_after:g}s",
                retry_after=retry_after,
                exchange=self.venue,
                venue_code=getattr(mapped, "venue_code", ""),
                venue_message=getattr(mapped, "venue_message", ""),
            )
        if response.status >= 500:
            message = f"{self.venue}: server error HTTP {response.status}"
            raise _Retryable(
                ExchangeUnavailable(message, exchange=self.venue),
                AmbiguousOutcome(message + "; outcome unknown", exchange=self.venue),
            )
        mapped_error = self._error_mapper(response)
        if mapped_error is not None:
            raise mapped_error
        return response


class _Retryable(Exception):
    """Internal: a failure worth retrying for idempotent requests."""

    def __init__(self, error: TitanError, ambiguous: AmbiguousOutcome | None) -> None:
        super().__init__(error.message)
        self.error = error
        self.ambiguous = ambiguous
