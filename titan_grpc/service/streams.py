"""Server streams: quotes and order books from the fan-out hubs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from titan_grpc import convert
from titan_grpc.domain import Quote, Symbol
from titan_grpc.errors import InvalidArgument, UnknownSymbol
from titan_grpc.exchanges import ExchangeBackend
from titan_grpc.gen.titan.v1 import exchange_pb2 as pb
from titan_grpc.market.hub import Notice, NoticeKind
from titan_grpc.service.base import DEFAULT_DEPTH, MAX_DEPTH, ServiceBase, streaming


class StreamRpcs(ServiceBase):
    @streaming
    async def StreamQuotes(
        self, request: pb.StreamQuotesRequest, context: Any
    ) -> AsyncIterator[pb.StreamQuotesResponse]:
        symbols = convert.symbols_from_proto(request.symbols)
        backends = self._registry.resolve_many(request.exchanges)
        explicit = bool(request.exchanges)
        pairs: list[tuple[ExchangeBackend, Symbol]] = []
        for backend in backends:
            for index, symbol in enumerate(symbols):
                try:
                    await backend.market_for_data(symbol)
                except UnknownSymbol:
                    if explicit:
                        raise UnknownSymbol(
                            f"{backend.name} does not list {symbol.canonical} (symbols[{index}])",
                            exchange=backend.name,
                        ) from None
                    continue
                pairs.append((backend, symbol))
        listed = {symbol for _, symbol in pairs}
        for index, symbol in enumerate(symbols):  # a symbol no venue lists is a typo: say so
            if symbol not in listed:
                raise InvalidArgument(
                    f"symbols[{index}]", f"{symbol.canonical} is not listed on any exchange"
                )
        subscription = self._quote_hub.subscribe(*((b.name, s) for b, s in pairs))
        self._count_subscriptions(pairs, +1)
        if self._shutdown.is_set():  # opened while the server was stopping
            subscription.end()
        try:
            async for event in subscription:
                venue, symbol = event.key
                if event.notice is not None:
                    yield pb.StreamQuotesResponse(notice=_notice(event.notice, venue, symbol))
                elif event.item is not None:
                    yield self._quote_message(event.key, event.item)
        finally:
            subscription.close()
            self._count_subscriptions(pairs, -1)
        if self._shutdown.is_set():
            yield pb.StreamQuotesResponse(notice=_shutdown_notice())

    def _quote_message(self, key: tuple[str, Symbol], quote: Quote) -> pb.StreamQuotesResponse:
        """The answer for ``quote``, built once and shared by every subscriber it reaches.

        Its sequence numbers the feed's quotes as the gateway sends them, so a subscriber
        that reads slower than quotes come (and was conflated) sees the jump."""
        cached = self._quote_messages.get(key)
        if cached is not None and cached[0] is quote:
            return cached[1]
        sequence = self._quote_sequences.get(key, 0) + 1
        message = pb.StreamQuotesResponse(quote=convert.quote_to_proto(quote, sequence))
        self._quote_sequences[key] = sequence
        self._quote_messages[key] = (quote, message)
        return message

    def end_streams(self) -> None:
        """End every open stream (server shutdown): each sends SHUTDOWN and finishes."""
        self._market.close()
        self._quote_hub.end_all()
        self._book_hub.end_all()
        self._accounts.end_all()

    @streaming
    async def StreamOrderBook(
        self, request: pb.StreamOrderBookRequest, context: Any
    ) -> AsyncIterator[pb.StreamOrderBookResponse]:
        depth = convert.bounded(
            request.depth, default=DEFAULT_DEPTH, maximum=MAX_DEPTH, field="depth"
        )
        backend, symbol = self._resolved.get(
            (request.exchange, request.symbol)
        ) or await self._venue_and_symbol(request.exchange, request.symbol)
        subscription = self._book_hub.subscribe((backend.name, symbol, depth))
        self._count_subscriptions([(backend, symbol)], +1)
        if self._shutdown.is_set():  # opened while the server was stopping
            subscription.end()
        try:
            async for event in subscription:
                if event.notice is not None:
                    notice = _notice(event.notice, backend.name, symbol)
                    yield pb.StreamOrderBookResponse(notice=notice)
                elif event.item is not None:
                    yield pb.StreamOrderBookResponse(book=convert.book_to_proto(event.item))
        finally:
            subscription.close()
            self._count_subscriptions([(backend, symbol)], -1)
        if self._shutdown.is_set():
            yield pb.StreamOrderBookResponse(notice=_shutdown_notice())


_NOTICE_KINDS = {
    NoticeKind.GAP: pb.STREAM_NOTICE_KIND_GAP,
    NoticeKind.RECOVERED: pb.STREAM_NOTICE_KIND_RECOVERED,
}


def _notice(notice: Notice, exchange: str, symbol: Symbol) -> pb.StreamNotice:
    return pb.StreamNotice(
        kind=_NOTICE_KINDS[notice.kind],
        exchange=exchange,
        symbol=symbol.canonical,
        message=notice.message,
    )


def _shutdown_notice() -> pb.StreamNotice:
    return pb.StreamNotice(
        kind=pb.STREAM_NOTICE_KIND_SHUTDOWN, message="server shutting down; reconnect"
    )
