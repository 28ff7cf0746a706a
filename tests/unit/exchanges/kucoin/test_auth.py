"""KuCoin signing against the official docs' example and the EXCHANGES.md vectors."""

from titan_grpc.exchanges.kucoin import auth


def test_official_documentation_example() -> None:
    assert (
        auth.sign(
            "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3",
            "1547015186532",
            "POST",
            "/api/v1/deposit-addresses",
            '{"currency":"BTC"}',
        )
        == "7QP/oM0ykidMdrfNEUmng8eZjg/ZvPafjIqmxiVfYu4="
    )


def test_order_and_query_vectors_and_signed_passphrase() -> None:
    secret = "titan-example-kucoin-secret"
    assert (
        auth.signed_passphrase(secret, "titan-passphrase")
        == "AzZtmVF/yxGFttdkqG8anKWTK5FgR5ZWGoqaKYmYkvM="
    )
    body = (
        '{"clientOid":"titan-0001","side":"buy","symbol":"BTC-USDT","type":"limit",'
        '"price":"43000.0","size":"0.001","timeInForce":"GTC"}'
    )
    assert auth.sign(secret, "1700000000123", "POST", "/api/v1/orders", body) == (
        "Fs/S0T0da4ZJ8N825LMggFfFsIVQZZiAkKQBy9+7R7E="
    )
    assert auth.sign(
        secret,
        "1700000000123",
        "GET",
        "/api/v1/fills?symbol=BTC-USDT&currentPage=1&pageSize=50",
        "",
    ) == ("cWI+mVecxJsNiaOslJSDp4ktoDQN/qGl6Ff1X94kF1g=")
    headers = auth.headers(
        "k", secret, "titan-passphrase", "1700000000123", "GET", "/api/v1/accounts", ""
    )
    assert headers["KC-API-KEY-VERSION"] == "2"
    assert headers["KC-API-PASSPHRASE"] == "AzZtmVF/yxGFttdkqG8anKWTK5FgR5ZWGoqaKYmYkvM="
