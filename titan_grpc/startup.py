"""Start-up rules: configurations TITAN refuses to serve, all reported at once.

Reached through ``load_settings(checks=startup_problems)`` (the CLI) and
``server.check_startup_rules`` (every start), so an operator sees every problem in one
go, one line each, never a secret's value:

- beyond loopback, the gRPC address needs bearer tokens (TITAN_AUTH_TOKENS);
- bearer tokens beyond loopback need TLS (TITAN_TLS_CERT/KEY), or the explicit opt-out
  TITAN_ALLOW_PLAINTEXT_TOKENS=true when a TLS-terminating proxy sits in front;
- the HTTP/JSON and metrics addresses follow the same two rules (beyond loopback every
  metrics scrape must carry a token with the ``read`` scope);
- in real mode, every venue's key variables are well-formed.
"""

from __future__ import annotations

from titan_grpc.config import Settings, is_loopback_address
from titan_grpc.exchanges.binance import validate_credentials as binance_problems
from titan_grpc.exchanges.coinbase import validate_credentials as coinbase_problems
from titan_grpc.exchanges.kucoin import validate_settings as kucoin_problems


def startup_problems(settings: Settings) -> list[str]:
    problems = _exposure_problems(
        "TITAN_GRPC_ADDRESS", settings.grpc_address, settings.binds_loopback_only, settings
    )
    for variable, address in (
        ("TITAN_HTTP_ADDRESS", settings.http_address),
        ("TITAN_METRICS_ADDRESS", settings.metrics_address),
    ):
        if address:
            loopback = is_loopback_address(address)
            problems += _exposure_problems(variable, address, loopback, settings)
    if settings.use_real_exchanges:
        problems += binance_problems(settings.binance)
        problems += coinbase_problems(settings.coinbase)
        problems += kucoin_problems(settings.kucoin)
    return problems


def _exposure_problems(
    variable: str, address: str, loopback: bool, settings: Settings
) -> list[str]:
    if loopback:
        return []
    if not settings.auth_grants:
        return [
            f"{variable}: {address} is not a loopback address and TITAN_AUTH_TOKENS is "
            "empty; bind to 127.0.0.1 or configure bearer tokens"
        ]
    if not settings.tls_cert and not settings.allow_plaintext_tokens:
        return [
            f"{variable}: bearer tokens would cross the network in plaintext on {address}; "
            "set TITAN_TLS_CERT and TITAN_TLS_KEY, or TITAN_ALLOW_PLAINTEXT_TOKENS=true "
            "if a TLS-terminating proxy is in front"
        ]
    return []


def plaintext_token_warnings(settings: Settings) -> list[str]:
    """What the TITAN_ALLOW_PLAINTEXT_TOKENS opt-out lets through, said at every start."""
    if settings.tls_cert or not settings.auth_grants or not settings.allow_plaintext_tokens:
        return []
    exposed = [
        f"{variable}={address}"
        for variable, address in (
            ("TITAN_GRPC_ADDRESS", settings.grpc_address),
            ("TITAN_HTTP_ADDRESS", settings.http_address),
            ("TITAN_METRICS_ADDRESS", settings.metrics_address),
        )
        if address and not is_loopback_address(address)
    ]
    if not exposed:
        return []
    return [
        "TITAN_ALLOW_PLAINTEXT_TOKENS=true: bearer tokens are accepted WITHOUT TLS on "
        f"{', '.join(exposed)}; this is safe only behind a TLS-terminating proxy on a "
        "trusted network"
    ]
