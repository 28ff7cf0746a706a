"""Coinbase Exchange request signing (pure; the timestamp is passed in)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

# Client order ids that are not UUIDs map to a stable UUID (Coinbase requires one).
CLIENT_ID_NAMESPACE = uuid.UUID("5f0c7a52-6a55-4d1b-9a51-1c1e7a4f7c10")


def sign(secret_b64: str, timestamp: str, method: str, request_path: str, body: str) -> str:
    """base64(HMAC-SHA256(base64decode(secret), timestamp + METHOD + path?query + body))."""
    key = base64.b64decode(secret_b64)
    message = f"{timestamp}{method.upper()}{request_path}{body}".encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def headers(
    key: str, secret_b64: str, passphrase: str, timestamp: str, method: str, path: str, body: str
) -> dict[str, str]:
    return {
        "CB-ACCESS-KEY": key,
        "CB-ACCESS-SIGN": sign(secret_b64, timestamp, method, path, body),
        "CB-ACCESS-TIMESTAMP": timestamp,
        "CB-ACCESS-PASSPHRASE": passphrase,
        "Content-Type": "application/json",
    }


def feed_subscription_fields(
    key: str, secret_b64: str, passphrase: str, timestamp: str
) -> dict[str, str]:
    """What an authenticated ws-feed subscribe carries: the signature of a
    ``GET /users/self/verify`` request, as the venue documents."""
    return {
        "signature": sign(secret_b64, timestamp, "GET", "/users/self/verify", ""),
        "key": key,
        "passphrase": passphrase,
        "timestamp": timestamp,
    }


def venue_client_oid(client_order_id: str) -> str:
    """The UUID Coinbase sees for our client order id (itself when it is a UUID)."""
    try:
        return str(uuid.UUID(client_order_id))
    except ValueError:
        return str(uuid.uuid5(CLIENT_ID_NAMESPACE, client_order_id))
