"""KuCoin request signing, API key version 2 (pure; the timestamp is passed in)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _b64_hmac(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign(secret: str, timestamp_ms: str, method: str, endpoint: str, body: str) -> str:
    """base64(HMAC-SHA256(secret, timestamp + METHOD + endpoint-with-query + body))."""
    return _b64_hmac(secret, f"{timestamp_ms}{method.upper()}{endpoint}{body}")


def signed_passphrase(secret: str, passphrase: str) -> str:
    """Key version 2 sends the passphrase HMAC-signed with the secret."""
    return _b64_hmac(secret, passphrase)


def headers(
    key: str, secret: str, passphrase: str, timestamp_ms: str, method: str, endpoint: str, body: str
) -> dict[str, str]:
    return {
        "KC-API-KEY": key,
        "KC-API-SIGN": sign(secret, timestamp_ms, method, endpoint, body),
        "KC-API-TIMESTAMP": timestamp_ms,
        "KC-API-PASSPHRASE": signed_passphrase(secret, passphrase),
        "KC-API-KEY-VERSION": "2",
        "Content-Type": "application/json",
    }
