"""Pieces the venue stream modules share: the quote state a feed keeps, and the
malformed-frame guard. Venue-specific parsing stays in each venue's stream.py."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from titan_grpc.domain import Quote, Ticker
from titan_grpc.errors import MalformedResponse

log = logging.getLogger("titan_grpc.upstream")

# What a venue frame can throw when a field is missing or not a number.
FRAME_ERRORS = (
    AttributeError,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    InvalidOperation,
    MalformedResponse,
)

_UNSET = object()


@dataclass
class FrameStats:
    malformed: int = 0

    def skip(self, exchange: str, what: str, error: Exception) -> None:
        self.malformed += 1
        log.warning("%s: skipped a malformed %s frame (%s)", exchange, what, type(error).__name__)


def quote_from_ticker(ticker: Ticker) -> Quote:
    return Quote(
        exchange=ticker.exchange,
        symbol=ticker.symbol,
        venue_symbol=ticker.venue_symbol,
        bid=ticker.bid,
        bid_size=ticker.bid_size,
        ask=ticker.ask,
        ask_size=ticker.ask_size,
        last=ticker.last,
        simulated=ticker.simulated,
        venue_time=ticker.venue_time,
        received_time=ticker.received_time,
        note=ticker.note,
        fallback=ticker.fallback,
    )


class QuoteState:
    """Top of book + last price merged from the venue's partial updates; ``update``
    answers the new Quote, or None when nothing a subscriber sees has changed."""

    def __init__(self, seed: Quote, clock: Callable[[], float] = time.time) -> None:
        self._quote = seed
        self._clock = clock

    @classmethod
    def from_ticker(cls, ticker: Ticker, clock: Callable[[], float] = time.time) -> QuoteState:
        return cls(quote_from_ticker(ticker), clock)

    @property
    def quote(self) -> Quote:
        return self._quote

    def update(
        self,
        *,
        bid: Decimal | object | None = _UNSET,
        bid_size: Decimal | object | None = _UNSET,
        ask: Decimal | object | None = _UNSET,
        ask_size: Decimal | object | None = _UNSET,
        last: Decimal | object | None = _UNSET,
        venue_time: datetime | None = None,
    ) -> Quote | None:
        given = {
            name: value
            for name, value in (
                ("bid", bid),
                ("bid_size", bid_size),
                ("ask", ask),
                ("ask_size", ask_size),
                ("last", last),
            )
            if value is not _UNSET
        }
        if all(getattr(self._quote, name) == value for name, value in given.items()):
            return None
        self._quote = replace(
            self._quote,
            **given,  # type: ignore[arg-type]
            venue_time=venue_time or self._quote.venue_time,
            received_time=datetime.fromtimestamp(self._clock(), tz=UTC),
        )
        return self._quote
