"""The one exception hierarchy of TITAN.

Every layer raises these; the service layer maps them to gRPC status codes in exactly
one place (``titan_grpc.status``). Venue adapters translate venue error codes into
this tree through a table per venue, keeping the venue's own code and message.

    TitanError
    ├── InvalidArgument(field, reason)        bad request input       -> INVALID_ARGUMENT
    │   └── UnknownExchange                   no such venue id        -> INVALID_ARGUMENT
    ├── NotConfigured(variable)               keys missing            -> FAILED_PRECONDITION
    ├── FeatureUnavailable                    not built yet           -> UNIMPLEMENTED
    ├── ConfigError                           bad configuration       (start-up only)
    ├── StoreUnavailable                      journal/claims store busy or down -> UNAVAILABLE
    └── ExchangeError(exchange, venue_code, venue_message)
        ├── UnknownSymbol                     market not listed       -> INVALID_ARGUMENT
        ├── InvalidOrder(field)               filter / parameter      -> INVALID_ARGUMENT
        ├── AuthenticationError                                       -> UNAUTHENTICATED
        ├── PermissionDenied                                          -> PERMISSION_DENIED
        ├── RateLimited(retry_after)                                  -> RESOURCE_EXHAUSTED
        ├── InsufficientFunds                                         -> FAILED_PRECONDITION
        ├── OrderRejected                     venue refused it        -> FAILED_PRECONDITION
        │   └── OrderTypeUnsupported          venue lacks the type    -> FAILED_PRECONDITION
        ├── OrderNotCancelable                already done            -> FAILED_PRECONDITION
        ├── VenueLacksFeature                 venue cannot do that    -> FAILED_PRECONDITION
        ├── DuplicateOrder                    client id reused        -> ALREADY_EXISTS
        ├── OrderNotFound                                             -> NOT_FOUND
        ├── ExchangeUnavailable               network, 5xx, down      -> UNAVAILABLE
        │   ├── VenueTimeout                  no answer in time       -> UNAVAILABLE
        │   └── MalformedResponse             unreadable answer       -> UNAVAILABLE
        └── AmbiguousOutcome                  sent, result unknown    -> UNAVAILABLE

Messages never contain secrets: adapters build them from venue answers, never from
request headers or signed payloads.
"""

from __future__ import annotations

from dataclasses import dataclass

EXCERPT_CHARS = 32


def excerpt(value: str, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable quotation of a caller's value for an error message.

    At most ``limit`` characters of it, non-ASCII and control characters escaped
    (``\\x00``, ``\\u0663``), and the full length when cut: an error never echoes a
    whole hostile value, so its trailers stay small after percent-encoding.
    """
    shown = "".join(_printable(char) for char in value[:limit])
    if len(value) > limit:
        return f'"{shown}"... ({len(value)} characters)'
    return f'"{shown}"'


def _printable(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if " " <= char <= "~":
        return char
    return ascii(char)[1:-1]  # \x00, \n, \u0663


class TitanError(Exception):
    """Base of every error TITAN raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(TitanError):
    """Invalid configuration; ``problems`` holds one line per invalid variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class StoreUnavailable(TitanError):
    """The order journal or the claim store could not be used now (busy, unreachable)."""


class InvalidArgument(TitanError):
    """A request field is missing or malformed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Inadmissible:
    """What a transport hands the servicer instead of a request it refused while parsing
    it (a malformed body, an over-long field): the servicer's decorators raise ``error``,
    so the refusal gets the call's request id, log line and metrics like any other."""

    error: InvalidArgument


class UnknownExchange(InvalidArgument):
    """The venue id is not configured."""


class NotConfigured(TitanError):
    """The operation needs configuration (usually API keys) that is absent."""

    def __init__(self, message: str, variable: str = "") -> None:
        super().__init__(message)
        self.variable = variable


class FeatureUnavailable(TitanError):
    """The RPC exists in the contract but is not implemented in this build."""


class ExchangeError(TitanError):
    """An error reported by, or while talking to, one venue."""

    def __init__(
        self,
        message: str,
        *,
        exchange: str = "",
        venue_code: str = "",
        venue_message: str = "",
    ) -> None:
        super().__init__(message)
        self.exchange = exchange
        self.venue_code = venue_code
        self.venue_message = venue_message


class UnknownSymbol(ExchangeError):
    """The venue does not list the market."""


class InvalidOrder(ExchangeError):
    """The order breaks a market rule (tick, step, minimum) or has a bad parameter."""

    def __init__(
        self,
        message: str,
        *,
        field: str = "",
        exchange: str = "",
        venue_code: str = "",
        venue_message: str = "",
    ) -> None:
        super().__init__(
            message, exchange=exchange, venue_code=venue_code, venue_message=venue_message
        )
        self.field = field


class AuthenticationError(ExchangeError):
    """Keys, signature, passphrase or timestamp rejected."""


class PermissionDenied(ExchangeError):
    """Keys valid but not allowed to do this."""


class RateLimited(ExchangeError):
    """Over the venue's rate limit; ``retry_after`` seconds until allowed again."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float = 0.0,
        exchange: str = "",
        venue_code: str = "",
        venue_message: str = "",
    ) -> None:
        super().__init__(
            message, exchange=exchange, venue_code=venue_code, venue_message=venue_message
        )
        self.retry_after = retry_after


class InsufficientFunds(ExchangeError):
    """The account cannot pay for the order."""


class OrderRejected(ExchangeError):
    """The venue refused the order for a business reason (e.g. post-only would take)."""


class OrderTypeUnsupported(OrderRejected):
    """The venue (as TITAN drives it) has no such order type, e.g. stop-market on Coinbase."""


class OrderNotCancelable(ExchangeError):
    """The order is already filled, cancelled or expired."""


class VenueLacksFeature(ExchangeError):
    """The venue (e.g. one reached through ccxt) does not offer what the call needs;
    the message names the venue and the feature."""


class DuplicateOrder(ExchangeError):
    """An order with this client order id already exists."""


class OrderNotFound(ExchangeError):
    """No order with that id."""


class ExchangeUnavailable(ExchangeError):
    """The venue could not be reached or answered with a server error."""


class VenueTimeout(ExchangeUnavailable):
    """The venue did not answer in time (it may be hung: the read path suspects it)."""


class MalformedResponse(ExchangeUnavailable):
    """The venue answered, but the answer could not be read (bad JSON, bad number)."""


class AmbiguousOutcome(ExchangeError):
    """An order request was sent but its outcome is unknown; it must be reconciled."""


def error_class(name: str) -> type[TitanError]:
    """The TitanError subclass called ``name`` (for replaying a journaled rejection)."""
    found = globals().get(name)
    if isinstance(found, type) and issubclass(found, TitanError):
        return found
    return ExchangeError
