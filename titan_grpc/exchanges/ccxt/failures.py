"""ccxt's exceptions as TITAN's errors: the kind, the venue's message without secrets or
signed query strings, and which failures of a placement may have reached the venue."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ccxt.base import errors as ccxt_errors

from titan_grpc import errors
from titan_grpc.errors import VenueLacksFeature

# Most specific first: ccxt's classes -> TITAN's (errors.py's tree).
ERRORS: tuple[tuple[type[BaseException], type[errors.ExchangeError]], ...] = (
    (ccxt_errors.OrderNotFound, errors.OrderNotFound),
    (ccxt_errors.DuplicateOrderId, errors.DuplicateOrder),
    (ccxt_errors.InsufficientFunds, errors.InsufficientFunds),
    (ccxt_errors.OrderImmediatelyFillable, errors.OrderRejected),
    (ccxt_errors.OrderNotFillable, errors.OrderRejected),
    (ccxt_errors.InvalidOrder, errors.InvalidOrder),
    (ccxt_errors.BadSymbol, errors.UnknownSymbol),
    (ccxt_errors.PermissionDenied, errors.PermissionDenied),
    (ccxt_errors.AuthenticationError, errors.AuthenticationError),
    (ccxt_errors.RateLimitExceeded, errors.RateLimited),
    (ccxt_errors.DDoSProtection, errors.RateLimited),
    (ccxt_errors.NotSupported, VenueLacksFeature),
    (ccxt_errors.RequestTimeout, errors.VenueTimeout),
    (ccxt_errors.BadResponse, errors.MalformedResponse),
    (ccxt_errors.NetworkError, errors.ExchangeUnavailable),
    (ccxt_errors.BadRequest, errors.InvalidOrder),
    (ccxt_errors.ExchangeError, errors.ExchangeError),
)
# A placement that failed like this may have reached the venue.
AMBIGUOUS = (
    errors.ExchangeUnavailable,  # network, 5xx, timeouts, unreadable answers
    errors.ExchangeError,  # unclassified venue answers: cannot tell
)
DEFINITE = (
    errors.OrderNotFound,
    errors.DuplicateOrder,
    errors.InsufficientFunds,
    errors.OrderRejected,
    errors.InvalidOrder,
    errors.UnknownSymbol,
    errors.PermissionDenied,
    errors.AuthenticationError,
    errors.RateLimited,
    VenueLacksFeature,
)
_QUERY_RE = re.compile(r"\?[^\s\"']*")
_DUPLICATE_RE = re.compile(r"duplicate (order|client)", re.IGNORECASE)


def clean(text: str, secrets: Sequence[str]) -> str:
    """ccxt's message without secrets or query strings (signed URLs carry signatures)."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return _QUERY_RE.sub("?…", text)


def translate(
    error: Exception, venue: str, feature: str, secrets: Sequence[str]
) -> errors.TitanError:
    if isinstance(error, errors.TitanError):
        return error
    message = clean(str(error) or type(error).__name__, secrets)
    for ccxt_kind, kind in ERRORS:
        if isinstance(error, ccxt_kind):
            text = f"{venue} {feature}: {message}"
            if kind in (errors.InvalidOrder, errors.ExchangeError) and _DUPLICATE_RE.search(
                message
            ):
                kind = errors.DuplicateOrder  # ccxt files some venues' "duplicate" as invalid
            if kind is errors.RateLimited:
                return errors.RateLimited(text, retry_after=1.0, exchange=venue)
            return kind(text, exchange=venue, venue_message=message)
    # Not a ccxt error: ccxt could not read the venue's answer.
    return errors.MalformedResponse(
        f"{venue} {feature}: unreadable answer ({type(error).__name__}: {message})",
        exchange=venue,
    )
