"""Coinbase signing against the vectors in EXCHANGES.md / EXCHANGES-REFERENCE.md."""

import uuid

from titan_grpc.exchanges.coinbase import auth

SECRET = "dGl0YW4tZXhhbXBsZS1jb2luYmFzZS1zZWNyZXQtMzJieXRlcyEh"
THIRD_PARTY_SECRET = (
    "QiM6irV9cW5NJo3xei+MLD0a4GLnsz+HSFwucGXdt+c8gZwRUxTltMfh09w8pZ2VHXKdM8LzqxhaMUg4WHSsvQ=="
)


def test_post_with_json_body() -> None:
    body = (
        '{"product_id":"BTC-USD","side":"buy","type":"limit","price":"43000.00","size":"0.01",'
        '"client_oid":"5b4c52a4-3b7c-4b7e-9d0c-1f2f3c4d5e6f"}'
    )
    assert auth.sign(SECRET, "1700000000.123", "POST", "/orders", body) == (
        "HMdiZBo44TXuLxK+LjMwIsN4XX/P2TSs6xVA7POP44M="
    )


def test_get_signs_the_path_with_its_query() -> None:
    assert auth.sign(
        SECRET, "1700000000.123", "get", "/fills?product_id=BTC-USD&limit=100", ""
    ) == ("kv3edRKf+Zee/NH8JHh7ZoFcZg8h0ECig5IAo0Tz5eA=")


def test_independent_client_vectors() -> None:
    body = (
        '{"from":"86602c68-306a-4500-ac73-4ce56a91d83c","to":"e87429d3-f0a7-4f28-8dff-8dd93d383de1",'
        '"currency":"ETH","amount":100}'
    )
    assert auth.sign(THIRD_PARTY_SECRET, "1573653521.402", "POST", "/profiles/transfer", body) == (
        "xBQCYBLmE0rX9tKUzNL4vgeuX7kIlpMdqILMftUiFzU="
    )
    assert auth.sign(THIRD_PARTY_SECRET, "1573653521.402", "GET", "/accounts", "") == (
        "7fF/Orhb4TQmCJ+nQ3f/q25/4ZU3kwDGCkOr/JyG4jA="
    )


def test_client_order_ids_become_stable_uuids() -> None:
    assert auth.venue_client_oid("my-order-1") == auth.venue_client_oid("my-order-1")
    assert auth.venue_client_oid("my-order-1") != auth.venue_client_oid("my-order-2")
    uuid.UUID(auth.venue_client_oid("my-order-1"))
    given = "5b4c52a4-3b7c-4b7e-9d0c-1f2f3c4d5e6f"
    assert auth.venue_client_oid(given) == given
