"""Which venue ids exist and which backend serves each."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from titan_grpc.errors import UnknownExchange, excerpt
from titan_grpc.exchanges.base import ExchangeBackend

# Venues left out when a request names none: "mock" duplicates a simulated Binance.
EXCLUDED_FROM_ALL = frozenset({"mock"})


class ExchangeRegistry:
    def __init__(self, backends: Mapping[str, ExchangeBackend]) -> None:
        self._backends = dict(backends)

    @property
    def names(self) -> list[str]:
        return list(self._backends)

    def all(self) -> list[ExchangeBackend]:
        return list(self._backends.values())

    def resolve(self, name: str, field: str = "exchange") -> ExchangeBackend:
        key = name.strip().lower()
        if not key:
            raise UnknownExchange(field, f"is required (one of: {', '.join(self.names)})")
        try:
            return self._backends[key]
        except KeyError:
            raise UnknownExchange(
                field, f"unknown exchange {excerpt(name)} (one of: {', '.join(self.names)})"
            ) from None

    def resolve_many(self, names: Iterable[str], field: str = "exchanges") -> list[ExchangeBackend]:
        """The named venues in request order, de-duplicated; all but "mock" when empty."""
        requested = [name for name in names]
        if not requested:
            return [b for n, b in self._backends.items() if n not in EXCLUDED_FROM_ALL]
        chosen: dict[str, ExchangeBackend] = {}
        for index, name in enumerate(requested):
            backend = self.resolve(name, f"{field}[{index}]")
            chosen.setdefault(backend.name, backend)
        return list(chosen.values())

    async def close(self) -> None:
        for backend in self._backends.values():
            await backend.close()
